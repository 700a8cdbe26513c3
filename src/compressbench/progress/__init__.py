"""Progress bars (tqdm) that stay quiet when output is not a terminal and COMPRESSBENCH_PROGRESS=0."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def progress_enabled() -> bool:
    flag = os.environ.get("COMPRESSBENCH_PROGRESS")
    if flag is not None:
        return flag not in ("0", "false", "no")
    return sys.stderr.isatty()


def log_interval() -> float:
    """Seconds between progress lines when the output is a log, not a terminal: the run's summary line and a
    training loop's epoch / loss / images-per-second line (``COMPRESSBENCH_PROGRESS_LOG_S``, default 30;
    0: none)."""
    return float(os.environ.get("COMPRESSBENCH_PROGRESS_LOG_S", "30"))


def progress_bar(total: int | None = None, desc: str = "", unit: str = "it", disable: bool = False, **kw):
    """A tqdm bar with rate and ETA; disabled when not wanted (tests, logs)."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=disable or not progress_enabled(),
        dynamic_ncols=True,
        leave=False,
        mininterval=0.5,
        **kw,
    )
