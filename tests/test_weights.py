"""Weights files: every format a training script writes loads into the architecture (bit-identical
logits); mismatches are one line naming the first offending keys; nothing in a file runs code; a weights
file enters job keys by its content hash (issue 13, items 1 and 6)."""

from __future__ import annotations

import argparse
import copy
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from compressbench.baseline import build_baseline
from compressbench.checkpoint import save_model
from compressbench.cli import main as cli_main
from compressbench.config import ConfigError
from compressbench.errors import CheckpointError
from compressbench.models.weights import read_weights
from compressbench.plan import plan
from compressbench.validate import validate

CFG = {"name": "tinycnn", "width": 1.0, "kwargs": {}}


def _net_sd(model) -> dict:
    return {k: v.clone() for k, v in model.net.state_dict().items()}


class _Evil:
    """Unpickling this would run a shell command (if the loader ran code)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Callback:
    """A training script's own class, pickled next to the weights: its code must not run on load."""

    def __init__(self, marker: str):
        self.marker = marker

    def __setstate__(self, state):
        Path(state["marker"]).touch()


def _formats(model, tmp: Path) -> dict[str, Path]:
    from safetensors.torch import save_file

    net = _net_sd(model)
    full = {k: v.contiguous() for k, v in model.state_dict().items()}
    files = {
        "bare.pt": net,
        "lightning.ckpt": {
            "state_dict": {f"model.{k}": v for k, v in net.items()},
            "epoch": 3,
            "hyper_parameters": {"lr": 0.1, "arch": "tinycnn"},
        },
        "torchvision_reference.pth": {
            "model": net,
            "optimizer": {"state": {}, "param_groups": []},
            "epoch": 7,
            "args": argparse.Namespace(lr=0.1, model="tinycnn"),
        },
        "ddp.pth": {f"module.{k}": v for k, v in net.items()},
        "compiled_lightning.ckpt": {"state_dict": {f"model._orig_mod.{k}": v for k, v in net.items()}},
        "timm_train.pth.tar": {"state_dict": net, "state_dict_ema": {k: v * 0 for k, v in net.items()}, "epoch": 1},
        "whole_classifier_keys.pt": full,
        "pickled_module.pt": model.net,
    }
    out = {}
    for name, obj in files.items():
        torch.save(obj, tmp / name)
        out[name] = tmp / name
    save_file(full, str(tmp / "full.safetensors"))
    save_file(net, str(tmp / "net.safetensors"))
    out["full.safetensors"] = tmp / "full.safetensors"
    out["net.safetensors"] = tmp / "net.safetensors"
    spec = {"model": "tinycnn", "width": 1.0, "kwargs": {}, "meta": None}
    out["compressbench_model.pt"] = save_model(model, tmp / "model.pt", spec)
    return out


def test_every_format_loads_bit_identically(tiny_model, digits_bundle, tmp_path):
    x = torch.rand(16, 1, 16, 16)
    with torch.inference_mode():
        ref = tiny_model(x)
    files = _formats(tiny_model, tmp_path)
    where = {}
    for name, path in files.items():
        base = build_baseline({**CFG, "weights": str(path)}, digits_bundle.meta, transfer=False)
        with torch.inference_mode():
            assert torch.equal(base.model.eval()(x), ref), name
        where[name] = base.where
    assert "key 'state_dict'" in where["lightning.ckpt"] and "key 'model'" in where["torchvision_reference.pth"]
    assert "key 'state_dict'" in where["timm_train.pth.tar"]  # the trained weights, not the EMA copy
    assert "pickled" in where["pickled_module.pt"] and "compressbench checkpoint" in where["compressbench_model.pt"]


def test_no_code_runs_from_a_weights_file(tiny_model, digits_bundle, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": _net_sd(tiny_model), "callback": _Callback(str(marker))}, tmp_path / "cb.pth")
    base = build_baseline({**CFG, "weights": str(tmp_path / "cb.pth")}, digits_bundle.meta, transfer=False)
    assert not marker.exists() and base.where.endswith("(key 'state_dict')")  # the class was never imported
    torch.save(_Callback(str(marker)), tmp_path / "only_object.pth")
    with pytest.raises(CheckpointError, match="holds no state dict"):
        read_weights(tmp_path / "only_object.pth")
    torch.save({"state_dict": _net_sd(tiny_model), "x": _Evil(str(marker))}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="never runs code.*GLOBAL posix.system") as e:
        read_weights(tmp_path / "evil.pth")
    assert "\n" not in str(e.value) and not marker.exists()


@pytest.mark.parametrize(
    "damage, expect",
    [
        ("drop", "1 missing key(s): net.5.running_var"),
        ("extra", "1 unexpected key(s): net.extra.weight"),
        ("shape", "shape of net.0.weight is [8, 1, 5, 5] in the file but [8, 1, 3, 3] in the model"),
        ("classes", "another number of classes: fine-tune them on this dataset with train: {init: weights"),
    ],
)
def test_mismatch_is_one_line_naming_the_key(tiny_model, digits_bundle, tmp_path, damage, expect):
    sd = _net_sd(tiny_model)
    if damage == "drop":
        del sd["5.running_var"]
    elif damage == "extra":
        sd["extra.weight"] = torch.zeros(2)
    elif damage == "shape":
        sd["0.weight"] = torch.zeros(8, 1, 5, 5)
    else:
        sd["9.weight"], sd["9.bias"] = torch.zeros(1000, 16), torch.zeros(1000)
    torch.save(sd, tmp_path / "w.pt")
    with pytest.raises(CheckpointError) as e:
        build_baseline({**CFG, "weights": str(tmp_path / "w.pt")}, digits_bundle.meta, transfer=False)
    msg = str(e.value)
    assert expect in msg and "\n" not in msg and "do not fit tinycnn built for digits" in msg


def _config(tmp: Path, weights: str, **over) -> dict:
    raw = {
        "name": "own",
        "dataset": {"name": "digits"},
        "model": {"name": "tinycnn", "weights": weights},
        "train": None,
        "variants": [{"method": "quantize.dynamic"}],
        "cache_dir": str(tmp / "cache"),
        "store": str(tmp / "r.sqlite"),
    }
    raw.update(over)
    return raw


def test_cli_validate_mismatch_exit_2_one_line(tiny_model, tmp_path, capsys):
    sd = _net_sd(tiny_model)
    del sd["9.bias"]
    torch.save(sd, tmp_path / "w.pt")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_config(tmp_path, str(tmp_path / "w.pt"))))
    assert cli_main(["validate", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: model.weights: weights ") and "net.9.bias" in err[0]
    assert not (tmp_path / "cache").exists()


TIMM = pytest.mark.extras("timm")  # the timm rows name timm's architectures and tags


@pytest.mark.parametrize(
    "over, expect",
    [
        (
            {"model": {"name": "tinycnn", "weights": "/no/such/file.pt"}},
            "model.weights: no such file '/no/such/file.pt'",
        ),
        ({"model": {"name": "tinycnn"}}, "train: null means the model is not trained here"),
        ({"train": {"epochs": 1, "init": "scratch"}}, "train.init: 'scratch' ignores model.weights"),
        ({"model": {"name": "tinycnn"}, "train": {"epochs": 1, "init": "weights"}}, "train.init: 'weights' needs"),
        ({"train": {"epochs": 1, "freeze_epochs": 2}}, "train.freeze_epochs: 2 > train.epochs (1)"),
        ({"model": {"name": "tinycnn", "weights": "torchvision:IMAGENET1K_V1"}}, "model 'tinycnn' has no published"),
        ({"model": {"name": "tv_resnet18", "weights": "torchvision:IMAGENET1K_V9"}}, "did you mean 'IMAGENET1K_V1'"),
        pytest.param(
            {"model": {"name": "timm:resnet18", "weights": "timm:a1_in1"}}, "did you mean 'a1_in1k'", marks=TIMM
        ),
        pytest.param(
            {"model": {"name": "timm:resnt18"}},
            "unknown timm architecture 'resnt18'; did you mean 'timm:resnet18'?",
            marks=TIMM,
        ),
        pytest.param(
            {"model": {"name": "timm:resnet18.a1_in1k"}},
            "the pretrained tag as model.weights ('timm:a1_in1k')",
            marks=TIMM,
        ),
    ],
)
def test_config_mistakes_are_one_line(tiny_model, tmp_path, over, expect):
    torch.save(_net_sd(tiny_model), tmp_path / "w.pt")
    raw = _config(tmp_path, str(tmp_path / "w.pt"), **over)
    with pytest.raises(ConfigError) as e:
        validate(raw)
    assert expect in str(e.value) and "\n" not in str(e.value)


def test_weights_without_train_is_a_choice_not_a_silent_finetune(tiny_model, tmp_path, capsys):
    """model.weights with no `train:` line would fine-tune the user's model with the default recipe: validate
    refuses it (exit 2, one line) and offers both choices; each choice validates."""
    torch.save(_net_sd(tiny_model), tmp_path / "w.pt")
    raw = _config(tmp_path, str(tmp_path / "w.pt"))
    del raw["train"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    assert cli_main(["validate", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: train: model.weights is given but 'train' is not")
    assert "'train: null'" in err[0] and "'train: {init: weights" in err[0]
    assert not (tmp_path / "cache").exists()
    assert not validate({**raw, "train": None}).config.trains_baseline
    assert validate({**raw, "train": {"init": "weights", "epochs": 1}}).config.transfer


def test_weights_enter_the_key_by_content_not_path(tiny_model, tmp_path):
    sd = _net_sd(tiny_model)
    torch.save(sd, tmp_path / "a.pt")
    (tmp_path / "moved").mkdir()
    shutil.copy(tmp_path / "a.pt", tmp_path / "moved" / "b.pt")  # the same bytes elsewhere
    key = {
        n: plan(validate(_config(tmp_path, str(p))))[0].key
        for n, p in (("a", tmp_path / "a.pt"), ("b", tmp_path / "moved" / "b.pt"))
    }
    assert key["a"] == key["b"]
    sd["0.weight"] = sd["0.weight"] + 1e-3
    torch.save(sd, tmp_path / "moved" / "b.pt")
    changed = plan(validate(_config(tmp_path, str(tmp_path / "moved" / "b.pt"))))
    assert changed[0].key != key["a"]
    assert changed[0].spec.weights == str((tmp_path / "moved" / "b.pt").resolve())  # the job gets the path
    # train.epochs: 0 trains nothing either: the same baseline job as train: null (its recipe is for fine-tunes)
    zero = plan(validate(_config(tmp_path, str(tmp_path / "a.pt"), train={"epochs": 0, "batch_size": 32})))
    assert zero[0].key == key["a"] and zero[0].describe() == "load baseline weights seed=0"
    assert (
        zero[1].spec.recipe.batch_size == 32
        and zero[1].key != plan(validate(_config(tmp_path, str(tmp_path / "a.pt"))))[1].key
    )


def test_new_fields_at_defaults_keep_every_key():
    """The quickstart's jobs keep the keys they had before issue 13 (commit 52e96a2): nothing re-runs —
    except the evaluations that use a corruption whose version issue 27 bumped (the large-image paths:
    gaussian_noise, defocus_blur, motion_blur, zoom_blur, snow, brightness, contrast; their 32-px bytes
    are unchanged, but a version is part of the key); the baseline's key is unchanged."""
    import hashlib

    from compressbench.validate import load_config

    root = Path(__file__).parents[1]
    jobs = plan(load_config(root / "configs" / "quickstart.yaml"))
    assert jobs[0].key == "c0de933b628298da5c61a647"
    digest = hashlib.sha256("".join(j.key for j in jobs).encode()).hexdigest()
    # distill v2 (issue 20: a student no uniform width fits is trimmed) re-keys the quickstart's distill variant
    # and its evaluations (its numbers do not move: 0.25 is met by a width, untrimmed); issue 27's corruption
    # versions re-key the corruption and calibration evaluations (their 32-px bytes do not move), and so does
    # its second kernel pass (defocus_blur 5, gaussian_blur 3, ...: the 10 corruption evaluations) and its third
    # (uint8 in, uint8 out at 224 px: motion_blur 4, snow 5, spatter 6, elastic_transform 4, frost 3; again only the
    # 10 corruption evaluations); every other key is kept
    assert digest == "aebbe7247eb783dd18f3fb7a2a58840d412887963a4937e1aa8ee996ff0afcf6"
    raw = yaml.safe_load((root / "configs" / "quickstart.yaml").read_text())
    explicit = copy.deepcopy(raw)
    explicit["dataset"].update(resize=None, val_fraction=None)
    explicit["model"].update(weights=None, mean=None, std=None)
    explicit["train"].update(init=None, freeze_epochs=0.0, rotation=0.0, color_jitter=None)
    assert [j.key for j in plan(validate(explicit))] == [j.key for j in jobs]
    raw["dataset"]["val_fraction"] = 0.1
    assert plan(validate(raw))[0].key != jobs[0].key


# ------------------------------------------------------------------ issue 22: the weights file's chain of custody
def _top1(store: Path) -> float:
    from compressbench.store import ResultStore

    rows = [
        r
        for r in ResultStore(store).rows()
        if r["evaluator"] == "clean" and r["metric"] == "top1" and r["variant"] == "baseline"
    ]
    assert len(rows) == 1
    return rows[0]["value"]


def test_weights_swapped_after_planning_fail_the_job_and_poison_nothing(tiny_model, tmp_path, caplog, monkeypatch):
    """Before issue 22: a file swapped between plan and the baseline job filled the entry keyed by the original
    with the replacement's numbers, forever. Now the job reads the bytes once and checks the planned sha256: the
    job fails (one line naming the file), nothing is cached; the original restored gives the right numbers."""
    import logging

    from compressbench.runner import run

    good, other = tmp_path / "w.pt", tmp_path / "other.pt"
    torch.save(_net_sd(tiny_model), good)
    torch.save({k: torch.randn_like(v) if v.is_floating_point() else v for k, v in _net_sd(tiny_model).items()}, other)
    raw = _config(tmp_path, str(good), variants=[], evaluations=[{"evaluator": "clean"}])
    ref = run(
        validate({**raw, "cache_dir": str(tmp_path / "ref"), "store": str(tmp_path / "ref.sqlite")}), progress=False
    )
    assert ref.failed == 0
    import compressbench.runner as runner

    backup = good.read_bytes()

    def plan_then_swap(exp):  # run() plans (the key holds good's sha256), then the file is swapped before any job
        jobs = real_plan(exp)
        shutil.copy(other, good)
        return jobs

    real_plan = runner.plan
    monkeypatch.setattr(runner, "plan", plan_then_swap)
    with caplog.at_level(logging.ERROR, logger="compressbench"):
        s = run(validate(raw), progress=False)
    monkeypatch.setattr(runner, "plan", real_plan)
    assert s.failed >= 1 and s.ran == 0
    msgs = [r.getMessage() for r in caplog.records]
    assert any(str(good) in m and "changed since this run was planned" in m for m in msgs), msgs
    assert not list((tmp_path / "cache" / "jobs").glob("*/result.json"))  # nothing cached under good's key
    good.write_bytes(backup)  # restored
    s = run(validate(raw), progress=False)
    assert (s.failed, s.cached) == (0, 0)
    assert _top1(tmp_path / "r.sqlite") == _top1(tmp_path / "ref.sqlite")


def _garbled(tmp: Path, sd: dict) -> Path:
    """200 bytes inside the largest tensor's data of a torch.save zip: still a loadable zip, wrong CRC."""
    import zipfile

    p = tmp / "w.pt"
    torch.save(sd, p)
    with zipfile.ZipFile(p) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    blob = bytearray(p.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 16
    blob[start : start + 200] = bytes((b + 97) % 256 for b in blob[start : start + 200])
    p.write_bytes(bytes(blob))
    return p


@pytest.mark.parametrize(
    "damage, expect",
    [
        ("garbled-200-bytes", "fails its CRC-32 check"),
        ("all-nan", "non-finite values (NaN or infinity)"),
        ("safetensors-i32", "weights must be floating point"),
        ("std-1e-30", "normalisation"),
    ],
)
def test_damaged_weights_are_one_line_at_validate(tiny_model, tmp_path, capsys, damage, expect):
    """Each was accepted before issue 22 (NLL 6e34, a stored top-1 of 0.12, an integer file cast silently, inputs
    multiplied by 1e30); now `validate` says one line and exits 2, and nothing is computed."""
    sd = _net_sd(tiny_model)
    if damage == "garbled-200-bytes":
        w = _garbled(tmp_path, sd)
    elif damage == "all-nan":
        w = tmp_path / "w.pt"
        torch.save({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in sd.items()}, w)
    elif damage == "safetensors-i32":  # a consistent header: the dtype is a lie about what the values are
        from safetensors.torch import save_file

        w = tmp_path / "w.safetensors"
        save_file({k: (v * 1000).to(torch.int32).contiguous() for k, v in sd.items()}, str(w))
    else:
        w = tmp_path / "w.pt"
        torch.save(sd, w)
    raw = _config(tmp_path, str(w))
    if damage == "std-1e-30":
        raw["model"] = {**raw["model"], "mean": [0.5], "std": [1e-30]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    assert cli_main(["validate", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err
    assert not (tmp_path / "cache").exists()


def test_proc_self_mem_as_weights_is_one_line(tmp_path, capsys):
    (tmp_path / "w.pt").symlink_to("/proc/self/mem")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_config(tmp_path, str(tmp_path / "w.pt"))))
    assert cli_main(["validate", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a regular file (it resolves to /proc/" in err[0], err
