"""Run Agent Bruno's CI pipeline on a Dagger engine.

    dagger run uv run python pipelines/ci.py [--only STAGE[,STAGE]] [--skip STAGE[,STAGE]]

Stages: lint, sast, proto, test, build, smoke, scan, sbom, manifests, publish.
See bruno_pipelines.cli for what each does.
"""

import sys
from pathlib import Path

from bruno_pipelines.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], repo_root=Path(__file__).resolve().parent.parent))
