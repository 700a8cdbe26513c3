"""User-facing errors: bad input from the user (a config field, a dataset, a file, a flag).

``str()`` of every :class:`UserError` is one line saying what is wrong and how to fix it; the CLI
prints it as ``error: ...`` and exits with code 2, with no traceback. Anything else is a bug (or a
failed job, which becomes a row with its error).
"""

from __future__ import annotations


class UserError(Exception):
    """Bad user input. The message is one line; the CLI exits 2."""


class CheckpointError(UserError):
    """A checkpoint or weights file that cannot be loaded (missing, damaged, untrusted code, mismatch)."""


class StoreError(UserError):
    """A results store that cannot be opened or is damaged (the message names the file and what to do)."""


class CacheError(UserError):
    """The artifact cache cannot be used (not a folder, not writable ...)."""
