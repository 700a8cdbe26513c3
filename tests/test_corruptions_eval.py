"""Corruptions evaluator, metrics, gallery, CIFAR-10-C loader and the corrupt command."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch

from compressbench.evaluate.corruptions import (
    CorruptionsParams,
    add_corrupt_arguments,
    corrupt,
    corrupt_command,
    corruption_error,
    make_gallery,
    mean_corruption_error,
    relative_ce,
    retention,
)
from compressbench.interfaces import EvalContext, VariantInfo
from compressbench.registry import evaluators


# --------------------------------------------------------------------------- metrics
def test_corruption_error_formulas():
    # model errors 0.2, 0.4; parent errors 0.1, 0.3 -> CE = 0.6 / 0.4
    assert corruption_error([0.8, 0.6], [0.9, 0.7]) == pytest.approx(1.5)
    # relative: model clean err 0.1 -> (0.1 + 0.3) / parent clean err 0.05 -> (0.05 + 0.25)
    assert relative_ce([0.8, 0.6], 0.9, [0.9, 0.7], 0.95) == pytest.approx(0.4 / 0.3)
    assert mean_corruption_error(
        {"a": [0.8, 0.6], "b": [0.5, 0.5]}, {"a": [0.9, 0.7], "b": [0.5, 0.5]}
    ) == pytest.approx((1.5 + 1.0) / 2)
    assert mean_corruption_error({"a": [0.8, 0.6]}, {"a": [0.9, 0.7]}, 0.9, 0.95) == pytest.approx(0.4 / 0.3)
    assert retention(0.45, 0.9) == pytest.approx(0.5)
    assert math.isnan(corruption_error([0.5], [1.0])) and math.isnan(retention(0.5, 0.0))
    with pytest.raises(ValueError):
        corruption_error([0.5, 0.4], [0.5])


# --------------------------------------------------------------------------- evaluator
def _ctx(bundle, tmp_path, method="baseline"):
    return EvalContext(
        data=bundle,
        meta=bundle.meta,
        device=torch.device("cpu"),
        seed=0,
        workdir=tmp_path,
        variant=VariantInfo(name=method, method=method, is_parent=method == "baseline"),
        load_parent=lambda: None,
        eval_size=120,
        progress=False,
    )


def test_params_validation():
    P = evaluators.spec("corruptions").params
    assert P is CorruptionsParams
    with pytest.raises(ValueError, match="severities"):
        P.model_validate({"severities": [0, 3]})
    with pytest.raises(ValueError, match="suite"):
        P.model_validate({"suites": ["cifar-10c"]})
    with pytest.raises(ValueError, match="did you mean"):
        P.model_validate({"corruptions": ["gausian_noise"]})
    assert P.model_validate({"suites": ["noise"]}).plan()[0][1][0] == "gauss_noise"


def test_evaluator_rows_and_gallery(tiny_model, digits_bundle, tmp_path):
    fn = evaluators.get("corruptions")
    p = CorruptionsParams(corruptions=["gaussian_noise", "contrast"], severities=[1, 5], batch_size=50)
    rows = fn(tiny_model, _ctx(digits_bundle, tmp_path), p)
    top = {(r.condition["corruption"], r.condition["severity"]): r.value for r in rows if r.metric == "top1"}
    assert set(top) == {(c, s) for c in ("gaussian_noise", "contrast") for s in (1, 5)}
    assert all(0 <= v <= 1 for v in top.values())
    mean = [r for r in rows if r.metric == "mean_top1" and set(r.condition) == {"suite"}][0]
    assert mean.value == pytest.approx(sum(top.values()) / 4)
    mce = [r for r in rows if r.metric == "mce_unnormalised"][0]
    assert mce.value == pytest.approx(1 - mean.value)
    clean = [r for r in rows if r.metric == "clean_top1"][0].value
    assert clean > 0.5 and top["contrast", 5] < clean  # contrast 0.15 hurts a digits CNN
    sev = {r.condition["severity"]: r.value for r in rows if r.metric == "mean_top1" and "severity" in r.condition}
    assert sev[1] == pytest.approx((top["gaussian_noise", 1] + top["contrast", 1]) / 2)
    assert (tmp_path / "gallery.png").stat().st_size > 1000
    # deterministic: a second run gives identical numbers; no gallery for a compressed variant
    rows2 = fn(tiny_model, _ctx(digits_bundle, tmp_path / "v", method="prune.unstructured"), p)
    assert [r.value for r in rows2] == [r.value for r in rows]
    assert not (tmp_path / "v" / "gallery.png").exists()


def test_make_gallery(tmp_path, rgb_bundle):
    p = make_gallery(rgb_bundle.test.x[0], ["fog", "snow"], [1, 3], tmp_path / "g.png")
    assert p.is_file() and p.stat().st_size > 1000


# --------------------------------------------------------------------------- files: corrupt command + loader
def test_corrupt_command_writes_cifar_c_layout_and_loader_reads_it(tmp_path):
    parser = argparse.ArgumentParser()
    add_corrupt_arguments(parser)
    out = tmp_path / "digits-c"
    args = parser.parse_args(
        [
            "--dataset",
            "digits",
            "--out",
            str(out),
            "--corruptions",
            "fog",
            "contrast",
            "--severities",
            "2",
            "4",
            "--subset",
            "30",
            "--cache-dir",
            str(tmp_path / "c"),
        ]
    )
    assert corrupt_command(args) == 0
    arr = np.load(out / "fog.npy")
    assert arr.shape == (60, 16, 16, 1) and arr.dtype == np.uint8
    assert np.load(out / "labels.npy").shape == (60,)

    from compressbench.data import load_dataset

    bundle = load_dataset("digits", cache_dir=tmp_path / "c")
    sub = bundle.eval_subset(30)
    expect = corrupt(sub.x.float() / 255, sub.index, "fog", 4, quantize=True)
    assert np.array_equal(arr[30:], (expect * 255 + 1e-3).floor().to(torch.uint8).permute(0, 2, 3, 1).numpy())

    c = load_dataset("cifar10-c", root=out, corruption="fog", severity=4)
    assert torch.equal(c.test.index, sub.index) and torch.equal(c.test.y, sub.y)
    assert torch.equal(c.test.x, torch.from_numpy(arr[30:]).permute(0, 3, 1, 2))
    with pytest.raises(Exception, match="severity 3"):
        load_dataset("cifar10-c", root=out, corruption="fog", severity=3)
    bad = parser.parse_args(["--dataset", "digits", "--out", str(out), "--corruptions", "fgo"])
    assert corrupt_command(bad) == 2


def test_official_layout_fake_files_and_evaluator_files_mode(tmp_path, tiny_model, digits_bundle):
    """Fake official files: 5 severities × all test images, labels.npy; no meta.json."""
    from compressbench.data import load_dataset

    test = digits_bundle.test
    n = len(test)
    rng = np.random.default_rng(0)
    x = test.x.permute(0, 2, 3, 1).numpy()
    blocks = [np.clip(x.astype(int) + rng.integers(-10 * s, 10 * s + 1, x.shape), 0, 255) for s in range(1, 6)]
    np.save(tmp_path / "gaussian_noise.npy", np.concatenate(blocks).astype(np.uint8))
    np.save(tmp_path / "labels.npy", np.tile(test.y.numpy(), 5).astype(np.uint8))
    b = load_dataset("cifar10-c", root=tmp_path, corruption="gaussian_noise", severity=3)
    assert len(b.test) == n and torch.equal(b.test.x, torch.from_numpy(blocks[2].astype(np.uint8)).permute(0, 3, 1, 2))
    assert len(b.train) == 0 and b.meta.channels == 1
    with pytest.raises(Exception, match="not found"):
        load_dataset("cifar10-c", root=tmp_path, corruption="fog")
    fn = evaluators.get("corruptions")
    p = CorruptionsParams(corruptions=["gaussian_noise"], severities=[1, 5], files=str(tmp_path), subset=100)
    rows = fn(tiny_model, _ctx(digits_bundle, tmp_path / "w"), p)
    top = {r.condition["severity"]: r.value for r in rows if r.metric == "top1"}
    assert 0 <= top[5] <= top[1] + 0.05


def test_corruption_parameters_given_directly(tiny_model, digits_bundle, tmp_path):
    """issue 16: {name: gauss_noise, params: {var_limit: [0, 2]}} — the protocol's exact setting, one condition
    labelled by its parameters; its constant is what albumentations 1.x means (σ² ~ U(0, 2) in uint8² units)."""
    from compressbench.registry import corruptions

    P = evaluators.spec("corruptions").params
    p = P.model_validate(
        {
            "corruptions": [
                "contrast",
                {"name": "gauss_noise", "params": {"var_limit": [0, 2]}},
                {"name": "rgb_shift", "params": {"r_shift_limit": 20, "g_shift_limit": 20, "b_shift_limit": 20}},
            ],
            "severities": [3],
            "subset": 60,
        }
    )
    ((suite, cells),) = p.cells()
    assert suite == "custom" and [c.name for c in cells] == ["contrast", "gauss_noise", "rgb_shift"]
    assert cells[1].constant == (0.0, 2.0) and cells[1].condition["params"] == "var_limit=[0.0, 2.0]"
    # the study's settings are the severity-3 constants of the noise set: same numbers either way
    assert cells[1].constant == corruptions.spec("gauss_noise").constant(3, "cifar")
    assert cells[2].constant == corruptions.spec("rgb_shift").constant(3, "cifar")
    x = digits_bundle.test.x[:8]
    a = corrupt(x, None, "gauss_noise", 0, constant=cells[1].constant)
    b = corrupt(x, None, "gauss_noise", 0, constant=cells[1].constant)
    assert torch.equal(a, b) and (a.int() - x.int()).abs().max() <= 6  # σ ≤ √2/255 per pixel: a few levels
    ms = evaluators.get("corruptions")(tiny_model, _ctx(digits_bundle, tmp_path), p)
    by = {(m.metric, tuple(sorted(m.condition.items()))): m.value for m in ms}
    direct = [m for m in ms if m.metric == "top1" and "params" in m.condition]
    assert len(direct) == 2 and all(0 <= m.value <= 1 for m in direct)
    assert ("mean_top1", (("severity", 3), ("suite", "custom"))) in by  # the by-name corruptions' mean
    with pytest.raises(ValueError, match="takes no parameters directly"):
        P.model_validate({"corruptions": [{"name": "fog", "params": {"x": 1}}]})
    with pytest.raises(ValueError, match="unknown parameter 'var'"):
        P.model_validate({"corruptions": [{"name": "gauss_noise", "params": {"var": [0, 2]}}]})
    with pytest.raises(ValueError, match="lower end"):
        P.model_validate({"corruptions": [{"name": "gauss_noise", "params": {"var_limit": [3, 2]}}]})
