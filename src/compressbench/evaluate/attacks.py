"""Placeholder: adversarial attacks (issue 6)."""
