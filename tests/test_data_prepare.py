"""Preprocessing studies need (issue 13, item 5): dataset.resize per batch, rotation / colour jitter,
and a stratified validation split that picks the best epoch and calibrates int8 — the test split is
touched by evaluators only."""

from __future__ import annotations

import pytest
import torch

from compressbench.config import ConfigError
from compressbench.data.base import DatasetBundle, ImageSet
from compressbench.data.prepare import prepare_bundle, stratified_split
from compressbench.data.transforms import color_jitter, fit_size, photometric, rotate
from compressbench.validate import validate


def test_validation_split_is_stratified_seeded_and_disjoint(digits_bundle):
    b = prepare_bundle(digits_bundle, val_fraction=0.2)
    tr, va = b.train.index, b.val.index
    assert set(tr.tolist()).isdisjoint(va.tolist())
    assert sorted(tr.tolist() + va.tolist()) == sorted(digits_bundle.train.index.tolist())
    full = torch.bincount(digits_bundle.train.y, minlength=10)
    got = torch.bincount(b.val.y, minlength=10)
    assert torch.equal(got, (full.float() * 0.2).round().long())  # 20 % of every class
    again = prepare_bundle(digits_bundle, val_fraction=0.2)
    assert torch.equal(again.val.index, va) and torch.equal(b.test.index, digits_bundle.test.index)
    tr_idx, va_idx = stratified_split(torch.tensor([0, 0, 1, 2, 2, 2]), 0.01)
    assert va_idx.tolist() and len(va_idx) == 2  # one per class that has two images; a lone image stays
    assert set(tr_idx.tolist()) == {0, 1, 2, 3, 4, 5} - set(va_idx.tolist())


def test_resize_happens_per_batch(rgb_bundle):
    b = prepare_bundle(rgb_bundle, resize=[48, 40], val_fraction=0.1)
    assert b.meta.size == (48, 40) and b.train.x.shape[-2:] == (32, 32)  # stored images keep their size
    for split in (b.train, b.val, b.test, b.test.subset([0, 1])):
        x, _, _ = next(split.batches(8))
        assert x.shape[1:] == (3, 48, 40) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
        u, _, _ = next(split.batches(8, uint8=True))
        assert u.shape[1:] == (3, 48, 40) and u.dtype == torch.uint8
    x = torch.rand(2, 3, 8, 8)
    assert fit_size(x, (8, 8)) is x


def test_rotation_and_colour_jitter_are_seeded_and_bounded():
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    x = torch.rand(6, 3, 16, 16)
    r1, r2 = rotate(x, 30, g()), rotate(x, 30, g())
    assert torch.equal(r1, r2) and not torch.equal(r1, x) and r1.shape == x.shape
    assert torch.equal(rotate(x, 0, g()), x)
    b = color_jitter(torch.full((64, 3, 4, 4), 0.5), g(), brightness=0.4)
    factors = b[:, 0, 0, 0] / 0.5
    assert factors.min() >= 0.6 - 1e-6 and factors.max() <= 1.4 + 1e-6 and factors.std() > 0.1
    grey = torch.full((4, 3, 4, 4), 0.3)
    assert torch.allclose(color_jitter(grey, g(), saturation=0.9, hue=0.5), grey, atol=1e-5)  # grey stays grey
    gen = torch.Generator().manual_seed(0)
    before = gen.get_state()
    photometric(x, type("R", (), {"rotation": 0.0, "color_jitter": None})(), gen)
    assert torch.equal(gen.get_state(), before)  # off: no random number drawn (old runs keep their stream)


def test_colour_on_grey_images_fails_at_validate():
    raw = {
        "name": "x",
        "dataset": {"name": "digits"},
        "model": {"name": "tinycnn"},
        "train": {"epochs": 1, "color_jitter": {"hue": 0.1}},
    }
    with pytest.raises(ConfigError, match="train.color_jitter: saturation and hue need 3-channel images"):
        validate(raw)
    raw["train"]["color_jitter"] = {"brightness": 0.2, "contrast": 0.2}
    validate(raw)


class _Trap(ImageSet):
    """A test split that fails whoever reads it."""

    def batches(self, *a, **k):
        raise AssertionError("the test split was read")

    def subset(self, idx):
        return _Trap(self.x[idx], self.y[idx], self.index[idx], self.size)


def test_training_finetuning_and_calibration_never_touch_the_test_split(tmp_path, monkeypatch, digits_bundle):
    import compressbench.runner as runner
    from compressbench.store import ResultStore

    real = runner._dataset.__wrapped__

    def trapped(spec_json, cache_dir):
        b = real(spec_json, cache_dir)
        return DatasetBundle(b.meta, b.train, _Trap(b.test.x, b.test.y, b.test.index, b.test.size), b.val)

    monkeypatch.setattr(runner, "_dataset", trapped)
    raw = {
        "name": "trap",
        "dataset": {"name": "digits", "val_fraction": 0.2},
        "model": {"name": "tinycnn"},
        "train": {"epochs": 2, "batch_size": 64, "lr": 0.1, "augment": "none"},
        "variants": [
            {"method": "prune.structured", "params": {"finetune": {"epochs": 0.2}}, "budget": {"params": 0.6}},
            {"method": "quantize.static", "params": {"calibration_batches": 2}},
            {"method": "distill", "params": {"epochs": 0.2}, "budget": {"params": 0.5}},
        ],
        "evaluations": [{"evaluator": "clean"}],
        "cache_dir": str(tmp_path / "c"),
        "store": str(tmp_path / "r.sqlite"),
    }
    s = runner.run(validate(raw), progress=False)
    rows = ResultStore(tmp_path / "r.sqlite").dataframe()
    failed = rows[rows.metric == "error"]
    # training, the fine-tunes, distillation and calibration ran; only the evaluators hit the trap
    assert s.failed == 4 and set(failed.evaluator) == {"clean"}
    assert failed.error.str.contains("the test split was read").all()
    val = rows[(rows.evaluator == "train") & (rows.metric == "val_images")].value
    assert val.tolist() == [float(len(stratified_split(digits_bundle.train.y, 0.2)[1]))]
    best = rows[(rows.evaluator == "train") & (rows.metric == "best_epoch")].value.iloc[0]
    assert best in (1.0, 2.0)
