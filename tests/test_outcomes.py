"""Per-image outcomes (compressbench.outcomes): the real evaluators write ``outcomes.npz`` next to their rows,
every recorded row is reproduced exactly by its per-image form, and the file is verified when read."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from compressbench.data.domains import unlabeled
from compressbench.evaluate.attacks import AdversarialParams
from compressbench.evaluate.attacks.evaluator import adversarial
from compressbench.evaluate.clean import CleanParams, clean
from compressbench.evaluate.corruptions.evaluator import CorruptionsParams, corruptions_evaluator
from compressbench.evaluate.domain_shift import DomainShiftParams, domain_shift
from compressbench.interfaces import EvalContext, VariantInfo
from compressbench.outcomes import FILE, OutcomeRecorder, OutcomesError, condition_key, load_outcomes


def _ctx(bundle, workdir, parent):
    return EvalContext(
        data=bundle,
        meta=bundle.meta,
        device=torch.device("cpu"),
        seed=0,
        workdir=workdir,
        variant=VariantInfo("baseline", "baseline"),
        load_parent=lambda: parent,
        eval_size=150,
        progress=False,
    )


def _check(ms, workdir, expect: set[str]) -> None:
    """Every row of the metrics in ``expect`` has a form in the file, and each form gives its row's value."""
    oc = load_outcomes(workdir / FILE)
    rows = {condition_key(m.metric, m.condition): m.value for m in ms}
    covered = {k[0] for k in oc.forms}
    assert expect <= covered, covered
    for key in oc.forms:
        assert oc.value(key) == pytest.approx(rows[key], abs=1e-6), key  # float32 means: 1e-7
    for m in ms:  # every row of those metrics is explained
        if m.metric in expect:
            assert condition_key(m.metric, m.condition) in oc.forms, (m.metric, m.condition)


def test_clean_and_corruptions_write_outcomes_reproducing_their_rows(tiny_model, digits_bundle, tmp_path):
    ms = clean(tiny_model, _ctx(digits_bundle, tmp_path / "c", tiny_model), CleanParams())
    _check(ms, tmp_path / "c", {"top1"})
    oc = load_outcomes(tmp_path / "c" / FILE)
    (iset,) = oc.sets
    assert iset.name == "test" and len(iset.index) == 150  # the experiment's evaluation subset, its indices
    params = CorruptionsParams(corruptions=["gaussian_noise", "contrast"], severities=[2, 5], subset=100)
    ms = corruptions_evaluator(tiny_model, _ctx(digits_bundle, tmp_path / "k", tiny_model), params)
    _check(ms, tmp_path / "k", {"top1", "mean_top1", "mce_unnormalised", "clean_top1"})


def test_adversarial_and_domain_shift_write_outcomes(tiny_model, digits_bundle, tmp_path):
    params = AdversarialParams(
        subset=40, batch_size=40, attacks=[{"name": "fgsm", "eps": [0.0, 0.05]}, {"name": "deepfool", "steps": 5}]
    )
    ms = adversarial(tiny_model, _ctx(digits_bundle, tmp_path / "a", tiny_model), params)
    _check(ms, tmp_path / "a", {"robust_top1", "robust_top1_at_norm"})
    inverted = dataclasses.replace(digits_bundle.test, x=255 - digits_bundle.test.x)
    b = dataclasses.replace(digits_bundle, source="s", targets={"t": inverted}, unlabeled={"t": unlabeled(inverted)})
    ms = domain_shift(
        tiny_model, _ctx(b, tmp_path / "d", tiny_model), DomainShiftParams(corruptions=["contrast"], severities=[3])
    )
    _check(
        ms, tmp_path / "d", {"source_top1", "target_top1", "gap", "target_corruption_top1", "target_corruption_mean"}
    )
    assert {s.name for s in load_outcomes(tmp_path / "d" / FILE).sets} == {"test", "domain:t"}


def test_a_form_that_does_not_reproduce_its_row_is_not_written(tmp_path, caplog):
    rec = OutcomeRecorder()
    s = rec.image_set("test", torch.arange(4))
    rec.mean("top1", 0.75, {}, s, torch.tensor([True, True, True, False]))
    rec.mean("wrong", 0.9, {"k": 1}, s, torch.tensor([True, False, False, False]))
    path = rec.save(tmp_path)
    oc = load_outcomes(path)
    assert list(oc.forms) == [("top1", "")] and "not recorded" in caplog.text
    with np.load(path, allow_pickle=False) as z:  # plain arrays and one JSON string: nothing names code
        assert json.loads(str(z["meta"]))["format"] == 1 and z["bits_0"].dtype == np.uint8


def test_outcomes_file_is_verified_when_read(tmp_path):
    rec = OutcomeRecorder()
    rec.mean("top1", 0.5, {}, rec.image_set("test", np.arange(6)), np.array([1, 0, 1, 0, 1, 0], bool))
    path = rec.save(tmp_path)
    from compressbench.execute.cache import artifact_manifest

    (tmp_path / "result.json").write_text(json.dumps({"files": artifact_manifest(tmp_path)}))
    assert load_outcomes(path).value(("top1", "")) == 0.5
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(OutcomesError, match="sha256"):
        load_outcomes(path)
    (tmp_path / "result.json").unlink()
    with pytest.raises(OutcomesError):  # and without a record: not a readable file
        load_outcomes(path)
