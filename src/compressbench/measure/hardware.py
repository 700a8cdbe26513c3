"""What every timing depends on: CPU model, cores, threads, GPU, library versions, load.

:func:`cpu_model` is the only ``/proc/cpuinfo`` parser in the package (the runner's run
provenance uses it too).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def _cpuinfo(*keys: str) -> str | None:
    """The value of the first ``/proc/cpuinfo`` line starting with one of ``keys`` (Linux; None elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(keys):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's marketing name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_flags(wanted: tuple[str, ...]) -> list[str]:
    """Which of the ISA extensions ``wanted`` this CPU reports (``/proc/cpuinfo`` flags; [] elsewhere)."""
    have = set((_cpuinfo("flags", "features") or "").split())
    return [f for f in wanted if f in have]


def total_memory() -> int | None:
    """This machine's physical memory in bytes (None where the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def hardware_info(device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """The hardware/software record written with every profile."""
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "threads": threads,
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "quantized_engine": torch.backends.quantized.engine,
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:  # pragma: no cover
        info["onnxruntime"] = None
    try:
        info["loadavg_1m"] = os.getloadavg()[0]
    except OSError:  # pragma: no cover
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
    return info
