"""Agent Bruno's edge: the public REST/SSE API in front of retrieval and generation."""

from bruno_edge._version import __version__
from bruno_edge.app import create_app
from bruno_edge.clients import Downstreams
from bruno_edge.config import EdgeSettings

__all__ = ["Downstreams", "EdgeSettings", "__version__", "create_app"]
