#!/usr/bin/env bash
# Make the Dockerfile's base image available to the local Docker engine.
#
#   scripts/base-image.sh [IMAGE]        (default: python:3.11-slim-bookworm)
#   scripts/base-image.sh full           (python:3.11-bookworm, the full image; benchmarks only)
#
# 1. already present in the engine: nothing to do;
# 2. pullable (Docker Hub reachable): pulled;
# 3. otherwise a local stand-in is built with debootstrap from Debian's own archive
#    (bookworm minbase + python3.11 + venv + pip), laid out like the official image
#    (/usr/local/bin/python3.11, python, pip) and tagged with the base image's name, so the
#    Dockerfile builds unchanged. The stand-in is a local test fixture, never published:
#    it also trusts the host's extra CA certificates (a TLS-intercepting egress proxy
#    would otherwise break pip and uv inside the build).
#
# The debootstrap root file system is cached as a tarball (BRUNO_IMAGE_CACHE, default
# build/cache) so later runs import it in seconds, even after the engine's storage is wiped.
#
# `full` (or python:3.11-bookworm / python:3.11) is the image a conventional naive Dockerfile
# starts from; scripts/benchmark_images.py compares against it. Present or pulled as above;
# otherwise its stand-in is scripts/python-full.Dockerfile built on the slim stand-in:
# buildpack-deps:bookworm's package lists (compilers, -dev libraries, git, ...) + python3.11-dev.
set -euo pipefail

IMAGE="${1:-python:3.11-slim-bookworm}"
FULL=0
case "$IMAGE" in
    full | python:3.11-bookworm | python:3.11) FULL=1 ;;
esac
[[ "$IMAGE" == full ]] && IMAGE=python:3.11-bookworm
DOCKER="${DOCKER:-/usr/bin/docker}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE_DIR="${BRUNO_IMAGE_CACHE:-$(cd "$(dirname "$0")/.." && pwd)/build/cache}"
TARBALL="$CACHE_DIR/python3.11-bookworm-rootfs.tar"

log() { echo "base-image: $*" >&2; }

if "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
    log "$IMAGE is present"
    exit 0
fi
if timeout "${BRUNO_PULL_TIMEOUT:-30}" "$DOCKER" pull --quiet "$IMAGE" >/dev/null 2>&1; then
    log "pulled $IMAGE"
    exit 0
fi

if [[ "$FULL" == 1 ]]; then
    SLIM=python:3.11-slim-bookworm
    log "cannot pull $IMAGE; building a stand-in on $SLIM (first run only, a minute or more)"
    bash "$0" "$SLIM"
    mkdir -p "$CACHE_DIR"
    DOCKER_BUILDKIT=1 "$DOCKER" build --network host --build-arg "BASE=$SLIM" \
        -f "$(dirname "$0")/python-full.Dockerfile" -t "$IMAGE" "$(dirname "$0")" \
        >"$CACHE_DIR/python-full.log" 2>&1 \
        || { tail -30 "$CACHE_DIR/python-full.log" >&2; exit 1; }
    log "built stand-in $IMAGE"
    exit 0
fi
log "cannot pull $IMAGE; using a debootstrap stand-in"

if [[ ! -s "$TARBALL" ]]; then
    if ! command -v debootstrap >/dev/null 2>&1; then
        log "installing debootstrap"
        apt-get install -y -qq debootstrap >/dev/null
    fi
    mkdir -p "$CACHE_DIR"
    ROOTFS="$(mktemp -d /tmp/bruno-rootfs.XXXXXX)"
    trap 'rm -rf "$ROOTFS"' EXIT
    log "debootstrap bookworm into $ROOTFS (first run only)"
    debootstrap --variant=minbase \
        --include=ca-certificates,python3.11,python3.11-venv,python3-pip \
        bookworm "$ROOTFS" "$MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1 \
        || { tail -30 "$CACHE_DIR/debootstrap.log" >&2; exit 1; }
    # The official image's layout: interpreter and pip under /usr/local/bin.
    ln -sf /usr/bin/python3.11 "$ROOTFS/usr/local/bin/python3.11"
    ln -sf /usr/bin/python3.11 "$ROOTFS/usr/local/bin/python3"
    ln -sf /usr/bin/python3.11 "$ROOTFS/usr/local/bin/python"
    ln -sf /usr/bin/pip3 "$ROOTFS/usr/local/bin/pip"
    # The official image's pip installs freely into /usr/local; Debian's refuses (PEP 668).
    rm -f "$ROOTFS"/usr/lib/python3.11/EXTERNALLY-MANAGED
    # Trust the host's extra CAs (see above).
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
        chroot "$ROOTFS" update-ca-certificates >/dev/null 2>&1
    fi
    # Slim it the way the official image is slimmed.
    rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
        "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/usr/share/doc/* \
        "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/locale/*
    tar -C "$ROOTFS" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
fi

log "importing $TARBALL as $IMAGE"
"$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' \
    "$TARBALL" "$IMAGE" >/dev/null
log "built stand-in $IMAGE"
