"""``compressbench report --redact``: a report to share without the machine it was made on.

A report states its provenance on purpose (docs/reliability.md, "What a report reveals"): each run's
platform string (kernel and distribution), CPU model and GPU name, the absolute paths in its config (the
store, ``cache_dir``, ``dataset.root``, ``model.weights``), and the store's own path. ``--redact`` writes the
report as usual, then replaces each of those strings — and this machine's host name, home folder and
working folder — in every text file of the report (HTML, CSV, Markdown, JSON, LaTeX, SVG) with a placeholder:
``<path>``, ``<platform>``, ``<cpu>``, ``<gpu>``, ``<host>``. Numbers, labels, versions and the kernel
selection stay (they are what a reader needs to judge the numbers). Figures in PNG carry no such text.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Iterable

TEXT_SUFFIXES = {".html", ".htm", ".csv", ".md", ".json", ".tex", ".svg", ".txt"}


def _paths(obj: Any) -> Iterable[str]:
    """Absolute paths among a config's string values (any depth)."""
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _paths(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _paths(v)
    elif isinstance(obj, str) and (obj.startswith(("/", "~")) or (len(obj) > 2 and obj[1:3] in (":\\", ":/"))):
        yield obj


def secrets(stores: Iterable[Any], store_paths: Iterable[str | Path]) -> dict[str, str]:
    """{text to hide: its placeholder}, longest first when applied."""
    out: dict[str, str] = {}
    for s in stores:
        for run in s.runs():
            host = run.get("host_json") or {}
            for key, mark in (("platform", "<platform>"), ("cpu", "<cpu>"), ("gpu", "<gpu>")):
                if isinstance(host.get(key), str) and len(host[key]) > 3:
                    out[host[key]] = mark
            for p in _paths(run.get("config_json") or {}):
                out[p] = "<path>"
                out[str(Path(p).expanduser().resolve())] = "<path>"
    for p in store_paths:
        out[str(Path(p).resolve())] = "<path>"
        out[str(Path(p).resolve().parent)] = "<path>"
    for p in (Path.cwd(), Path.home()):
        if len(str(p)) > 1:
            out[str(p)] = "<path>"
    name = socket.gethostname()
    if len(name) > 3:
        out[name] = "<host>"
    return {k: v for k, v in out.items() if k and k not in ("/", "~")}


def redact_folder(out_dir: str | Path, hide: dict[str, str]) -> int:
    """Replace every ``hide`` key in the report's text files; returns how many files changed."""
    order = sorted(hide, key=len, reverse=True)
    changed = 0
    for f in Path(out_dir).rglob("*"):
        if not f.is_file() or f.suffix.lower() not in TEXT_SUFFIXES:
            continue
        text = f.read_text(encoding="utf-8", errors="surrogateescape")
        new = text
        for k in order:
            new = new.replace(k, hide[k])
        if new != text:
            tmp = f.with_name(f".{f.name}.{os.getpid()}.tmp")
            tmp.write_text(new, encoding="utf-8", errors="surrogateescape")
            os.replace(tmp, f)
            changed += 1
    return changed


__all__ = ["secrets", "redact_folder", "TEXT_SUFFIXES"]
