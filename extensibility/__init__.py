"""Add Python packages to a prebuilt inference image at container start."""

__version__ = "0.1.0"
