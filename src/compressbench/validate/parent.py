"""The checks of ``validate`` that concern the parent model: how its fields fit together
(:func:`check_model_fields`), and, last, the ones that need the model built (:func:`check_parent`).

:func:`compressbench.validate.check` calls :func:`check_parent` after everything cheaper passed. It learns the dataset's
metadata (``DatasetSpec.probe``: classes, channels, image size — no image decoded; ``dataset.resize``
applied), builds the parent exactly as the baseline job will (:func:`baseline.build_baseline`: the
weights file read, mapped and checked key by key and shape by shape; published weights are checked
when cached), and asks every variant's method whether it can handle that architecture
(``MethodSpec.check_model``: e.g. Torch-Pruning finds channels to remove, eager or FX int8 can prepare
it, a derived distillation student can be built). Any refusal is one :class:`ConfigError` line naming
the field, before any work. Results are cached per process, so validating twice costs once; the
global random state is left as it was.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from ..baseline import build_baseline, published_for
from ..compress.budget import SIZE_KINDS, unreachable
from ..compress.budget import check_model as check_method_model
from ..config import ResolvedExperiment
from ..data.prepare import dataset_meta
from ..errors import ConfigError, UserError
from ..interfaces import CompressContext
from ..models import check_factory_kwargs
from ..models.weights import is_published
from ..registry import evaluators, methods, models

log = logging.getLogger(__name__)


def check_weights_source(model_name: str, source: str) -> str | None:
    """Cheap checks of ``model.weights``: a file exists; a published tag resolves. None: fine."""
    if is_published(source):
        try:
            published_for(model_name, source)
        except UserError as e:
            return str(e).removeprefix("model.weights: ")
        return None
    p = Path(source).expanduser()
    if not p.exists():
        return (
            f"no such file '{source}' (give a .pt / .pth / .safetensors weights file or a compressbench "
            f"model.pt, or published weights: torchvision:<ENUM>, timm:<tag>)"
        )
    if not p.is_file():
        return f"'{source}' is not a file"
    return None


def check_model(exp: ResolvedExperiment) -> None:
    """The factory's keyword arguments (``model.kwargs``), then how the model's fields fit together."""
    bad = check_factory_kwargs(exp.model.name, exp.model.kwargs)
    if bad:
        raise ConfigError(f"{bad[0]}: {bad[1]}")
    check_model_fields(exp)


def check_model_fields(exp: Any) -> None:
    """How ``model.weights`` / ``mean`` / ``std`` and ``train`` (null, ``init``, ``epochs: 0``,
    ``freeze_epochs``) fit together, and the weights source itself — no model built yet. One line each."""
    m, t = exp.model, exp.train
    if (m.mean is None) != (m.std is None) or (m.mean is not None and len(m.mean) != len(m.std)):
        raise ConfigError("model.mean / model.std: give both, with one value per input channel")
    if t is None and m.weights is None:
        raise ConfigError(
            "train: null means the model is not trained here, so model.weights must give the "
            "weights to compress (a file, torchvision:<ENUM> or timm:<tag>); or give a train: recipe"
        )
    if t is not None and t.epochs == 0 and m.weights is None:
        raise ConfigError(
            "train.epochs: 0 trains nothing, so model.weights must give the baseline (the recipe is "
            "then what compression fine-tunes build on); or train for epochs > 0"
        )
    if t is not None and t.init == "weights" and m.weights is None:
        raise ConfigError("train.init: 'weights' needs model.weights (the weights to start from)")
    if t is not None and t.init == "scratch" and m.weights is not None:
        raise ConfigError(
            "train.init: 'scratch' ignores model.weights; drop one of them (init: weights "
            "fine-tunes the weights, train: null uses them as they are)"
        )
    if t is not None and t.freeze_epochs > 0:
        if t.freeze_epochs > t.epochs:
            raise ConfigError(f"train.freeze_epochs: {t.freeze_epochs:g} > train.epochs ({t.epochs:g})")
        if not exp.transfer:
            raise ConfigError(
                "train.freeze_epochs: freezing the backbone needs pretrained weights to keep: "
                "set model.weights (train.init: weights)"
            )
    if m.weights is not None and m.mean is not None and is_published(m.weights):
        raise ConfigError("model.mean / model.std: published weights bring their own normalisation; leave them out")
    if m.weights is not None:
        msg = check_weights_source(m.name, m.weights)
        if msg:
            raise ConfigError(f"model.weights: {msg}")


@lru_cache(maxsize=8)
def _parent(model_json: str, data_json: str, transfer: bool, cache_dir: str, stamp: Any = None) -> Any:
    """(meta, Baseline) — cached per process; ``stamp`` (a weights file's inode, size, mtime and
    ctime) re-checks a file that changed since."""
    d = json.loads(data_json)
    try:
        meta = dataset_meta(
            d["name"],
            d.get("root"),
            d.get("options") or {},
            resize=d.get("resize"),
            cache_dir=cache_dir,
            download=d.get("download", True),
        )
    except UserError as e:
        raise ConfigError(f"dataset: {e}") from None
    cfg = json.loads(model_json)
    try:
        base = build_baseline(cfg, meta, transfer=transfer, fetch=False)
    except UserError as e:
        where = "model.weights" if cfg.get("weights") else "model"
        msg = str(e).removeprefix("model.weights: ")
        raise ConfigError(msg if msg.startswith("model.") else f"{where}: {msg}") from None
    except (TypeError, ValueError, RuntimeError, AssertionError) as e:
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        raise ConfigError(
            f"model: cannot build '{cfg['name']}' for {meta.name} ({meta.channels} channel(s), "
            f"{meta.num_classes} classes, {meta.size[0]}×{meta.size[1]}): {type(e).__name__}: "
            f"{lines[0][:200] if lines else ''}"
        ) from None
    base.model.eval()
    return meta, base


@lru_cache(maxsize=64)
def _method_check(
    method: str, params_json: str, model_json: str, data_json: str, transfer: bool, cache_dir: str, stamp: Any = None
) -> str | None:
    meta, base = _parent(model_json, data_json, transfer, cache_dir, stamp)
    schema = methods.spec(method).params
    params = schema.model_validate(json.loads(params_json)) if schema is not None else None
    ctx = _context(meta, model_json)
    with torch.random.fork_rng():
        return check_method_model(method, base.model, ctx, params)


@lru_cache(maxsize=256)
def _reach_check(
    method: str,
    params_json: str,
    kind: str,
    target: float,
    model_json: str,
    data_json: str,
    transfer: bool,
    cache_dir: str,
    stamp: Any = None,
) -> str | None:
    """Why a shared budget cannot be met: the knob's closed form refuses it, or the smallest model the knob can
    make (one guarded dry run per method and params, shared with ``check_model``: :mod:`..compress.dryrun`)
    keeps more than the target. Composite methods and methods that solve the budget themselves are left to
    the run. Measured on the parent as built now (before any baseline training)."""
    meta, base = _parent(model_json, data_json, transfer, cache_dir, stamp)
    spec = methods.spec(method)
    schema = spec.params
    params = schema.model_validate(json.loads(params_json)) if schema is not None else None
    knob = spec.knob
    if (
        knob is None
        or spec.apply is None
        or spec.stages is not None
        or (spec.own_budget is not None and spec.own_budget(params))
    ):
        return None
    ctx = _context(meta, model_json)
    with torch.random.fork_rng():
        return unreachable(method, base.model, ctx, params, kind, target)


def _context(meta: Any, model_json: str) -> CompressContext:
    cfg = json.loads(model_json)
    spec = {
        "model": cfg["name"],
        "width": cfg.get("width", 1.0),
        "kwargs": cfg.get("kwargs") or {},
        "meta": meta.to_dict(),
    }

    def no_training(*a: Any, **k: Any) -> Any:
        raise RuntimeError("check_model must not train")

    return CompressContext(
        data=None,
        meta=meta,
        device=torch.device("cpu"),
        seed=0,
        workdir=Path("."),  # type: ignore[arg-type]
        train=no_training,
        accuracy=no_training,
        parent_spec=spec,
        progress=False,
    )


def _check_variants(exp: ResolvedExperiment, args: tuple) -> None:
    """Every variant's method, then its shared budget, against the parent (one line on the first refusal)."""
    family = models.spec(exp.model.name).family
    for v in exp.variants:
        params_json = json.dumps(v.params.model_dump(mode="json") if v.params is not None else {}, sort_keys=True)
        msg = _method_check(v.method, params_json, *args)
        if msg:
            raise ConfigError(
                f"variants[{v.index}].method: '{v.method}' cannot handle {exp.model.name} ({family}): {msg}"
            )
        if v.budget is not None and v.budget.kind in SIZE_KINDS:
            msg = _reach_check(v.method, params_json, v.budget.kind, v.budget.value, *args)
            if msg:
                raise ConfigError(
                    f"variants[{v.index}].budget: {v.budget.label()} is unreachable for '{v.method}' "
                    f"on {exp.model.name}: {msg}"
                )


def _parent_args(exp: ResolvedExperiment) -> tuple[str, str, bool, str, Any]:
    data_json = json.dumps(exp.dataset.model_dump(mode="json"), sort_keys=True)
    model_json = json.dumps(exp.model.model_dump(mode="json"), sort_keys=True)
    w = Path(exp.model.weights).expanduser() if exp.model.weights else None
    st = w.stat() if w is not None and w.is_file() else None
    stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) if st is not None else None
    return model_json, data_json, exp.transfer, str(Path(exp.cache_dir)), stamp


def parent_model(exp: ResolvedExperiment) -> tuple[Any, Any]:
    """(dataset metadata, :class:`~compressbench.baseline.Baseline`) of the experiment's parent, built as
    ``validate`` builds it (cached per process: after ``validate`` this costs nothing)."""
    return _parent(*_parent_args(exp))


def check_parent(exp: ResolvedExperiment) -> None:
    """Build the parent and check its weights and every variant's method against it (see above)."""
    args = _parent_args(exp)
    meta, base = _parent(*args)
    cj = exp.train.color_jitter if exp.train is not None else None
    if cj is not None and (cj.saturation > 0 or cj.hue > 0) and meta.channels != 3:
        raise ConfigError(
            f"train.color_jitter: saturation and hue need 3-channel images; {meta.name} has "
            f"{meta.channels} channel(s) (use brightness / contrast)"
        )
    if not base.checked:
        log.info("model.weights %s", base.where)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batch-1 dry runs: more threads only contend (measured faster on a loaded 2-core box)
    try:
        _check_variants(exp, args)
    finally:
        torch.set_num_threads(threads)
    for ev in exp.evaluations:
        check = evaluators.spec(ev.evaluator).check_data
        msg = check(ev.params, meta) if check is not None else None
        if msg:
            raise ConfigError(f"evaluations[{ev.index}].params: {msg}")
