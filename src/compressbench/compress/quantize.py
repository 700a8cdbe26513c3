"""Placeholder: implemented by the compression-methods work (issue 3)."""
