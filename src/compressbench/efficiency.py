"""Placeholder: efficiency profile (issue 4)."""
