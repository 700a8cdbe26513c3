"""Placeholder: report (issue 7)."""
