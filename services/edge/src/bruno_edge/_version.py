"""The installed version of the edge, shown in the OpenAPI document."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bruno-edge")
except PackageNotFoundError:  # pragma: no cover - a source tree without package metadata
    __version__ = "0.0.0"
