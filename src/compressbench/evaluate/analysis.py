"""Placeholder: calibration and disagreement evaluators (issue 7)."""
