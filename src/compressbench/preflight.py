"""The last checks of ``validate``: the ones that need the parent model.

``config.validate`` calls :func:`check_parent` after everything cheaper passed. It learns the dataset's
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

from .errors import UserError

log = logging.getLogger(__name__)


def check_weights_source(model_name: str, source: str) -> str | None:
    """Cheap checks of ``model.weights``: a file exists; a published tag resolves. None: fine."""
    from .baseline import published_for
    from .models.weights import is_published

    if is_published(source):
        try:
            published_for(model_name, source)
        except UserError as e:
            return str(e).removeprefix("model.weights: ")
        return None
    p = Path(source).expanduser()
    if not p.exists():
        return (f"no such file '{source}' (give a .pt / .pth / .safetensors weights file or a compressbench "
                f"model.pt, or published weights: torchvision:<ENUM>, timm:<tag>)")
    if not p.is_file():
        return f"'{source}' is not a file"
    return None


def _config_error(msg: str) -> Exception:
    from .config import ConfigError

    return ConfigError(msg)


@lru_cache(maxsize=8)
def _parent(model_json: str, data_json: str, transfer: bool, cache_dir: str) -> Any:
    from .baseline import build_baseline
    from .data.prepare import dataset_meta

    d = json.loads(data_json)
    try:
        meta = dataset_meta(d["name"], d.get("root"), d.get("options") or {}, resize=d.get("resize"),
                            cache_dir=cache_dir, download=d.get("download", True))
    except UserError as e:
        raise _config_error(f"dataset: {e}") from None
    cfg = json.loads(model_json)
    try:
        base = build_baseline(cfg, meta, transfer=transfer, fetch=False)
    except UserError as e:
        where = "model.weights" if cfg.get("weights") else "model"
        raise _config_error(f"{where}: {str(e).removeprefix('model.weights: ')}") from None
    except (TypeError, ValueError, RuntimeError, AssertionError) as e:
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        raise _config_error(f"model: cannot build '{cfg['name']}' for {meta.name} ({meta.channels} channel(s), "
                            f"{meta.num_classes} classes, {meta.size[0]}×{meta.size[1]}): {type(e).__name__}: "
                            f"{lines[0][:200] if lines else ''}") from None
    base.model.eval()
    return meta, base


@lru_cache(maxsize=64)
def _method_check(method: str, params_json: str, model_json: str, data_json: str, transfer: bool,
                  cache_dir: str) -> str | None:
    from .compress.budget import check_model
    from .interfaces import CompressContext
    from .registry import methods

    meta, base = _parent(model_json, data_json, transfer, cache_dir)
    schema = methods.spec(method).params
    params = schema.model_validate(json.loads(params_json)) if schema is not None else None
    cfg = json.loads(model_json)
    spec = {"model": cfg["name"], "width": cfg.get("width", 1.0), "kwargs": cfg.get("kwargs") or {},
            "meta": meta.to_dict()}

    def no_training(*a: Any, **k: Any) -> Any:
        raise RuntimeError("check_model must not train")

    ctx = CompressContext(data=None, meta=meta, device=torch.device("cpu"), seed=0, workdir=Path("."),  # type: ignore[arg-type]
                          train=no_training, accuracy=no_training, parent_spec=spec, progress=False)
    with torch.random.fork_rng():
        return check_model(method, base.model, ctx, params)


def check_parent(exp: Any, variants: list[Any]) -> None:
    """Build the parent and check its weights and every variant's method against it (see above)."""
    data_json = json.dumps(exp.dataset.model_dump(mode="json"), sort_keys=True)
    model_json = json.dumps(exp.model.model_dump(mode="json"), sort_keys=True)
    args = (model_json, data_json, exp.transfer, str(Path(exp.cache_dir)))
    meta, base = _parent(*args)
    cj = exp.train.color_jitter if exp.train is not None else None
    if cj is not None and (cj.saturation > 0 or cj.hue > 0) and meta.channels != 3:
        raise _config_error(f"train.color_jitter: saturation and hue need 3-channel images; {meta.name} has "
                            f"{meta.channels} channel(s) (use brightness / contrast)")
    if not base.checked:
        log.info("model.weights %s", base.where)
    from .registry import models

    family = models.spec(exp.model.name).family
    for v in variants:
        params_json = json.dumps(v.params.model_dump(mode="json") if v.params is not None else {}, sort_keys=True)
        msg = _method_check(v.method, params_json, *args)
        if msg:
            raise _config_error(f"variants[{v.index}].method: '{v.method}' cannot handle {exp.model.name} "
                                f"({family}): {msg}")
