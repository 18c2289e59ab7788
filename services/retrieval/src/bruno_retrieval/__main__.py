"""``python -m bruno_retrieval`` runs the retrieval service."""

from bruno_retrieval.server import main

main()
