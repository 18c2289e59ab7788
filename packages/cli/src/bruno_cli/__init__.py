"""``bruno``: Agent Bruno's command line, a client of the edge's REST API.

    bruno ingest docs/ --collection homelab     # sync a folder into a collection
    bruno ask "How do I restore a Velero backup?"
    bruno collections
    bruno reindex homelab

The edge is ``BRUNO_URL`` (or ``--url``), the key ``BRUNO_API_KEY`` (or ``--api-key``).
"""

from bruno_cli.main import main, run

__all__ = ["main", "run"]
