"""Conda environment files: reading, translating to the overlay, building prefixes."""
