"""End to end (issue 13, "done when"): scripts/export_baseline.py exports a trained baseline as a plain state
dict and as safetensors; a `train: null` experiment compresses the file with every family, trains nothing,
and gets exactly the numbers the experiment that trained the baseline gets."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

from compressbench.runner import run
from compressbench.store import ResultStore
from compressbench.validate import load_config

ROOT = Path(__file__).parents[1]
VARIANTS = [
    {"method": "prune.unstructured", "params": {"finetune": {"epochs": 0.2, "lr": 0.01}}, "budget": {"params": 0.5}},
    {"method": "prune.structured", "params": {"finetune": {"epochs": 0.2, "lr": 0.01}}, "budget": {"params": 0.5}},
    {"method": "distill", "params": {"epochs": 0.3, "lr": 0.1}, "budget": {"params": 0.5}},
    {"method": "lowrank", "params": {"finetune": {"epochs": 0.2, "lr": 0.01}}, "budget": {"params": 0.6}},
    {"method": "quantize.static", "params": {"calibration_batches": 2}},
    {"method": "quantize.dynamic"},
]


def _export_script():
    spec = importlib.util.spec_from_file_location("export_baseline", ROOT / "scripts" / "export_baseline.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _clean(store: Path) -> dict[str, float]:
    df = ResultStore(store).dataframe()
    rows = df[(df.evaluator == "clean") & (df.metric == "top1")]
    return dict(zip(rows.variant, rows.value))


def test_exported_weights_compress_to_the_same_numbers(tmp_path):
    base = {
        "name": "tiny-base",
        "dataset": {"name": "digits"},
        "model": {"name": "tinycnn"},
        "train": {"epochs": 2, "batch_size": 64, "lr": 0.1, "augment": "none"},
        "variants": VARIANTS,
        "evaluations": [{"evaluator": "clean"}],
        "cache_dir": str(tmp_path / "cache"),
        "store": str(tmp_path / "base.sqlite"),
    }
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    pt = _export_script().main(["--config", str(tmp_path / "base.yaml"), "--out", str(tmp_path / "out")])
    assert pt == tmp_path / "out" / "tinycnn_digits.pt" and pt.with_suffix(".safetensors").is_file()

    trained = run(load_config(tmp_path / "base.yaml"), progress=False)
    assert trained.failed == 0 and trained.cached == 1  # the export trained the baseline through the cache
    # epochs: 0 -> nothing trained; the recipe (batch size, lr ...) is what the compression fine-tunes use
    own = {
        **base,
        "name": "tiny-own",
        "model": {"name": "tinycnn", "weights": str(pt)},
        "train": {**base["train"], "epochs": 0},
        "store": str(tmp_path / "own.sqlite"),
    }
    (tmp_path / "own.yaml").write_text(yaml.safe_dump(own))
    s = run(load_config(tmp_path / "own.yaml"), progress=False)
    assert s.failed == 0 and s.cached == 0 and s.jobs == 2 * (1 + len(VARIANTS))
    want, got = _clean(tmp_path / "base.sqlite"), _clean(tmp_path / "own.sqlite")
    assert len(want) == 1 + len(VARIANTS) and got == want  # every family, the same numbers, nothing trained
    df = ResultStore(tmp_path / "own.sqlite").dataframe()
    assert "train_seconds" not in set(df.metric)

    sft = {
        **own,
        "model": {"name": "tinycnn", "weights": str(pt.with_suffix(".safetensors"))},
        "train": None,
        "variants": [VARIANTS[-2]],
        "store": str(tmp_path / "sft.sqlite"),
    }  # train: null, the same baseline
    (tmp_path / "sft.yaml").write_text(yaml.safe_dump(sft))
    assert run(load_config(tmp_path / "sft.yaml"), progress=False).failed == 0
    got = _clean(tmp_path / "sft.sqlite")
    assert got == {k: want[k] for k in ("baseline", "quantize.static")}
