"""Promote images to a Kubernetes overlay by GitOps (Flux applies the commit).

    uv run --package bruno-pipelines python pipelines/deploy.py --overlay dev --tag <sha> [--commit]

See bruno_pipelines.gitops.
"""

import sys
from pathlib import Path

from bruno_pipelines.gitops import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], repo=Path(__file__).resolve().parent.parent))
