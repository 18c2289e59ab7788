"""``python -m bruno_embedding`` runs the embedding service."""

from bruno_embedding.server import main

main()
