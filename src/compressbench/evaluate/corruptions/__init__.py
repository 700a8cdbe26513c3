"""Placeholder: corruptions (issue 5)."""
