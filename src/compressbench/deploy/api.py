"""``compressbench.export``: one variant of a study, exported, verified, stored and carded.

The variant's model comes from the cache (:mod:`.locate`), is written in the format (:mod:`.builtin`),
run by its runtime on the run's evaluation subset and timed there (:mod:`.verify`). The rows go into
the store through its API (evaluator ``export``, condition ``format=...``) under a key made of the model's
job key, the format and the settings, so exporting the same thing again stores nothing twice; the export
is a run of its own in the ``runs`` table (experiment ``<name>:export``: its git hash, package versions
and machine). A failed or non-equivalent export is stored as an error row too, and the card says so.
"""

from __future__ import annotations

import datetime as dt
import logging
import shlex
import sys
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ..interfaces import Measurement
from .formats import Written, formats, missing_reason, runtime_name
from .locate import ExportError, Located, locate
from .verify import VerifySettings

log = logging.getLogger(__name__)

EXPORT_VERSION = 1  # bump when an export's numbers could move (part of the rows' job key)
_RUNTIME_PACKAGES = ("onnx", "onnxruntime", "openvino", "executorch", "torchao", "safetensors")


@dataclass
class ExportResult:
    """What :func:`export` did: the files (``card`` is the model card), this export's rows, whether the
    artifact is verified (else ``error`` says why) and how many rows the store took (0: stored before)."""

    format: str
    out: Path
    files: list[Path]
    card: Path
    rows: list[Measurement]
    verified: bool
    error: str | None
    stored: int
    located: Located


def export(
    store: str | Path,
    variant: str,
    *,
    format: str = "onnx",
    out: str | Path,
    seed: int | None = None,
    experiment: str | None = None,
    cache: str | Path | None = None,
    settings: VerifySettings | None = None,
    subset: int | None = -1,
    trust: bool = False,
    command: str | None = None,
) -> ExportResult:
    """Export ``variant`` (seed ``seed``) of the study in ``store`` as ``format`` into ``out``, verify it in its
    runtime on ``subset`` evaluation images (-1: the run's ``eval_subset``; None: the whole test split),
    store the rows and write ``out/README.md``, the model card. ``cache``: the run's cache folder when it
    moved; ``trust``: the checkpoint or the run's config may name code (``"pkg.mod:factory"``)."""
    from ..checkpoint import load_model, worker_trust
    from ..execute.cache import file_sha256
    from ..measure.hardware import hardware_info
    from ..measure.profiling import resolve
    from ..plan import content_key
    from ..runner import _git_hash, versions
    from .card import render
    from .engine import evidence, export_one

    settings = settings or VerifySettings()
    formats.spec(format)  # an unknown name: one line with the known ones
    why = missing_reason(format)
    if why:
        raise ExportError(f"--format {format}: cannot export here: {why}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out}: a file is in the way (give a folder)")
    loc = locate(store, variant, seed=seed, experiment=experiment, cache=cache)
    model, ck = load_model(loc.model_path, trust=trust)
    data, eval_size = loc.dataset(trust)
    images = data.eval_subset(eval_size if subset == -1 else subset)
    log.info("export %s (seed %s) as %s: verifying on %d images", loc.variant, loc.seed, format, len(images))
    ev = evidence(model, images, data, settings.calib_batches, loc.seed or 0)
    _, threads, _ = resolve(settings.profile())
    created = dt.datetime.now(dt.timezone.utc).isoformat()
    run_id = "export-" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    host = hardware_info("cpu", threads)
    vers = dict(versions())
    for pkg in _RUNTIME_PACKAGES:
        try:
            vers[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    shape = (1, data.meta.channels, *data.meta.size)
    out.mkdir(parents=True, exist_ok=True)
    written, mine = export_one(format, model, ck, out, shape, ev, settings, target=worker_trust(trust))
    ok = any(m.metric == "verified" and m.value == 1.0 for m in mine)
    error = None if ok else "; ".join(m.condition.get("reason", "") for m in mine if m.metric == "verified")
    files = list(written.files) if written is not None else []
    config = {
        "export": {
            "store": str(Path(store)),
            "experiment": loc.experiment,
            "variant": loc.variant,
            "seed": loc.seed,
            "format": format,
            "out": str(out),
            "model_job": loc.job_key,
            "subset": len(images),
            "settings": settings.model_dump(mode="json"),
        }
    }
    key = content_key(
        {
            "kind": "export",
            "model_job": loc.job_key,
            "format": format,
            "subset": len(images),
            "settings": settings.model_dump(mode="json"),
            "v": EXPORT_VERSION,
        }
    )
    store_obj = loc.store
    store_obj.add_run(run_id, f"{loc.experiment}:export", created, config, _git_hash(), vers, "cpu", host)
    rows = _rows(loc, mine, key, run_id, created, format, error)
    card = out / "README.md"
    arts = [
        {
            "job_key": key,
            "experiment": loc.experiment,
            "variant": loc.variant,
            "method": loc.method,
            "seed": loc.seed,
            "evaluator": "export",
            "name": f"{format}/{f.name}",
            "path": f.resolve(),
            "created_at": created,
        }
        for f in files + [card]
    ]
    stored = store_obj.add_job(rows, arts)
    if stored == 0:
        log.info(
            "export %s/%s: the store holds this export's rows already (key %s): nothing added", loc.variant, format, key
        )
    prov = {
        "run_id": run_id,
        "created": created,
        "git": _git_hash(),
        "versions": vers,
        "host": host,
        "threads": threads,
        "runtime": runtime_name(format),
        "command": command or f"compressbench.export({str(store)!r}, {loc.variant!r}, format={format!r})",
    }
    card.write_text(
        render(loc, ck, format, written, mine, prov, [(f.name, f.stat().st_size, file_sha256(f)) for f in files])
    )
    return ExportResult(format, out, files, card, mine, ok, error, stored, loc)


def _rows(
    loc: Located, mine: list[Measurement], key: str, run_id: str, created: str, fmt: str, error: str | None
) -> list[dict[str, Any]]:
    base = {
        "experiment": loc.experiment,
        "variant": loc.variant,
        "method": loc.method,
        "seed": loc.seed,
        "evaluator": "export",
        "evaluator_version": EXPORT_VERSION,
        "job_key": key,
        "run_id": run_id,
        "created_at": created,
        **loc.labels,
    }
    rows = [
        {**base, "metric": m.metric, "value": float(m.value), "condition": m.condition, "tag": m.tag, "unit": m.unit}
        for m in mine
    ]
    if error is not None:
        rows.append(
            {**base, "metric": "error", "value": None, "error": f"export {fmt}: {error}", "condition": {"format": fmt}}
        )
    return rows


def command_line() -> str:
    """This process's command line, as typed (for the card's provenance)."""
    return " ".join(shlex.quote(a) for a in ["compressbench", *sys.argv[1:]])


__all__ = ["export", "ExportResult", "ExportError", "Written"]
