"""The fresh-process side of timing an exported artifact (``measure/worker.py``'s ``artifact`` mode).

The worker hands over the job file's ``format``; it is only looked up in the export-format registry
(a name no format is registered under is an error), then that format's runtime opens the file and the
efficiency protocol times it (:func:`compressbench.measure.protocol.time_calls`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..measure.protocol import time_calls
from .formats import formats


def time_artifact(job: dict[str, Any]) -> dict[str, Any]:
    """Latency and throughput of ``job["path"]`` in format ``job["format"]``'s runtime."""
    predict = formats.spec(job["format"]).open(Path(job["path"]), int(job["threads"]))
    res = time_calls(
        predict,
        tuple(job["input_shape"]),
        int(job["throughput_batch"]),
        int(job["warmup"]),
        int(job["repeats"]),
        int(job["throughput_repeats"]),
    )
    res["format"] = job["format"]
    return res
