"""``python -m bruno_generation`` runs the generation service."""

from bruno_generation.server import main

main()
