"""Installer backends (pip, uv) behind one small interface (`base.Installer`)."""
