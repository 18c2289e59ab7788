"""``bruno``: Agent Bruno's command line, a client of the edge's REST API.

    bruno ingest docs/ --collection homelab     # sync a folder into a collection
    bruno ingest manuals/ --no-wait             # as ingest jobs, without waiting for them
    bruno jobs                                  # your recent jobs
    bruno jobs watch 5f0c…                      # follow one to its end
    bruno jobs cancel 5f0c…                     # stop it; what it committed stays
    bruno ask "How do I restore a Velero backup?"
    bruno collections
    bruno reindex homelab

The edge is ``BRUNO_URL`` (or ``--url``), the key ``BRUNO_API_KEY`` (or ``--api-key``).
"""

from bruno_cli.main import main, run

__all__ = ["main", "run"]
