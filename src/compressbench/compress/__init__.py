"""Compression methods. Importing this package registers every built-in method and rebuilder."""

from . import distill, lowrank, pipeline, quantize, structured, unstructured  # noqa: F401
