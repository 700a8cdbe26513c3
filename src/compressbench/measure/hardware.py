"""What every timing depends on: CPU model, cores, threads, GPU, library versions, load.

:func:`_cpuinfo_fields` is the only ``/proc/cpuinfo`` parser in the package (:func:`cpu_model`,
:func:`cpu_id` and :func:`cpu_flags` read it; the runner's run provenance uses them too).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def _cpuinfo_fields(text: str | None = None) -> dict[str, str]:
    """The fields of the first processor in ``/proc/cpuinfo`` (``text``: that file's text; default: read it),
    keys lower-cased; {} where there is no such file."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    return fields


def cpu_model() -> str:
    """The CPU's marketing name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    return _cpuinfo_fields().get("model name") or platform.processor() or platform.machine()


def cpu_id(cpuinfo: str | None = None) -> str:
    """The CPU's identity beyond its marketing name, from the first processor of ``/proc/cpuinfo``: vendor,
    family, model and stepping on x86 (``AuthenticAMD family 26 model 2 stepping 1``), implementer, part,
    variant and revision on ARM; '' where the platform does not say. Two VMs that both call their CPU "AMD
    EPYC" can be different generations (family 25, Zen 4; family 26, Zen 5) with other kernel speeds, so a
    timing or a ratio is quoted with this, not with the name alone. ``cpuinfo``: that file's text (default:
    read it)."""
    fields = _cpuinfo_fields(cpuinfo)
    x86 = ("cpu family", "model", "stepping")
    arm = ("cpu implementer", "cpu part", "cpu variant", "cpu revision")
    if "vendor_id" in fields and all(k in fields for k in x86):
        return " ".join([fields["vendor_id"], *(f"{k.removeprefix('cpu ')} {fields[k]}" for k in x86)])
    if all(k in fields for k in arm):
        return " ".join(f"{k.removeprefix('cpu ')} {fields[k]}" for k in arm)
    return ""


def cpu_flags(wanted: tuple[str, ...]) -> list[str]:
    """Which of the ISA extensions ``wanted`` this CPU reports (``/proc/cpuinfo`` flags; [] elsewhere)."""
    fields = _cpuinfo_fields()
    have = set((fields.get("flags") or fields.get("features") or "").split())
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
        "cpu_id": cpu_id(),
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
