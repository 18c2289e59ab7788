"""``python -m bruno_edge`` runs the edge server."""

from bruno_edge.server import main

main()
