"""Compression methods. Importing this package registers every built-in method and rebuilder."""

from . import unstructured, structured, quantize, distill, lowrank, pipeline  # noqa: F401
