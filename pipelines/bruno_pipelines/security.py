"""Vulnerability scan and SBOM of an image, both with Trivy reading the image as a tarball."""

from __future__ import annotations

import dagger

__all__ = ["SCAN_SEVERITIES", "TRIVY_CACHE_VOLUME", "TRIVY_IMAGE", "sbom", "scan", "trivy"]

TRIVY_IMAGE = "aquasec/trivy:0.58.1"
TRIVY_CACHE_VOLUME = "bruno-trivy"
SCAN_SEVERITIES = "HIGH,CRITICAL"
_IMAGE_TAR = "/scan/image.tar"


def trivy(client: dagger.Client, image: dagger.Container) -> dagger.Container:
    """Trivy with its vulnerability database cached across runs and ``image`` mounted."""
    return (
        client.container()
        .from_(TRIVY_IMAGE)
        .with_mounted_cache("/root/.cache/trivy", client.cache_volume(TRIVY_CACHE_VOLUME))
        .with_mounted_file(_IMAGE_TAR, image.as_tarball())
    )


def scan(client: dagger.Client, image: dagger.Container) -> dagger.Container:
    """Fails (exit 1) when the image has a HIGH or CRITICAL vulnerability that has a fix."""
    return trivy(client, image).with_exec(
        [
            "trivy",
            "image",
            "--input",
            _IMAGE_TAR,
            "--scanners",
            "vuln",
            "--severity",
            SCAN_SEVERITIES,
            "--ignore-unfixed",
            "--exit-code",
            "1",
            "--no-progress",
        ]
    )


def sbom(client: dagger.Client, image: dagger.Container, service: str) -> dagger.File:
    """A CycloneDX (JSON) SBOM of the image, as a file to export."""
    out = f"/sbom/{service}.cdx.json"
    return (
        trivy(client, image)
        .with_directory("/sbom", client.directory())
        .with_exec(
            [
                "trivy",
                "image",
                "--input",
                _IMAGE_TAR,
                "--format",
                "cyclonedx",
                "--output",
                out,
                "--no-progress",
            ]
        )
        .file(out)
    )
