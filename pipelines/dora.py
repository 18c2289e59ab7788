"""Print the DORA metrics of an overlay from the GitOps history; export them for Prometheus.

    uv run --package bruno-pipelines python pipelines/dora.py --overlay prod --days 30 \
        [--until 2026-12-01] [--textfile build/dora/dora.prom] [--pushgateway URL]

See bruno_pipelines.dora.
"""

import sys
from pathlib import Path

from bruno_pipelines.dora import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], repo=Path(__file__).resolve().parent.parent))
