"""User-facing errors: bad input from the user (a config field, a dataset, a file, a flag).

``str()`` of every :class:`UserError` is one line saying what is wrong and how to fix it; the CLI
prints it as ``error: ...`` and exits with code 2, with no traceback. Anything else is a bug (or a
failed job, which becomes a row with its error).
"""

from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """Bad user input. The message is one line; the CLI exits 2."""


class CheckpointError(UserError):
    """A checkpoint or weights file that cannot be loaded (missing, damaged, untrusted code, mismatch)."""


class StoreError(UserError):
    """A results store that cannot be opened or is damaged (the message names the file and what to do)."""


class CacheError(UserError):
    """The artifact cache cannot be used (not a folder, not writable ...)."""


class ConfigError(UserError, ValueError):
    """A bad experiment config. ``str()`` is a single line (line breaks in a message are folded)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split("\n")))


def did_you_mean(name: object, known: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known`` to ``name``, or ``""``."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""
