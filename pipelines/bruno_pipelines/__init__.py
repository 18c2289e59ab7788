"""Agent Bruno's CI/CD pipelines, written with the Dagger Python SDK.

Each function returns a lazy Dagger object (nothing runs until it is awaited), so stages
compose freely and can be inspected offline (see :mod:`bruno_pipelines.offline`).
``pipelines/ci.py`` is the command-line entry point.
"""

from .checks import PYTHON_IMAGE, TYPED_TREES, UV_VERSION, lint, python_toolchain, test, workspace
from .images import DOCKERFILE, SERVICES, ImageLabels, all_images, build_image
from .source import SOURCE_EXCLUDES, source

__all__ = [
    "DOCKERFILE",
    "PYTHON_IMAGE",
    "SERVICES",
    "SOURCE_EXCLUDES",
    "TYPED_TREES",
    "UV_VERSION",
    "ImageLabels",
    "all_images",
    "build_image",
    "lint",
    "python_toolchain",
    "source",
    "test",
    "workspace",
]
