"""Calibration and agreement: metric functions on known values, evaluators on a tiny model."""

from __future__ import annotations

import copy
import math

import pydantic
import pytest
import torch

from compressbench.evaluate.analysis import (
    AgreementParams,
    CalibrationParams,
    agreement,
    brier_score,
    calibration,
    disagreement,
    expected_calibration_error,
    negative_log_likelihood,
    probability_shift,
)
from compressbench.interfaces import EvalContext, VariantInfo
from compressbench.registry import evaluators

PROBS = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.55, 0.45]])
TARGETS = torch.tensor([0, 1, 1, 0])
LOGITS = PROBS.log()


def test_ece_known_value():
    # bins of width 1/15: {0.9, 0.9} acc 0.5; {0.7} acc 1; {0.55} acc 1
    expected = 2 / 4 * abs(0.5 - 0.9) + 1 / 4 * abs(1 - 0.7) + 1 / 4 * abs(1 - 0.55)
    assert expected_calibration_error(LOGITS, TARGETS, 15) == pytest.approx(expected, abs=1e-6)
    # one bin: |mean acc − mean conf|
    assert expected_calibration_error(LOGITS, TARGETS, 1) == pytest.approx(
        abs(0.75 - (0.9 + 0.9 + 0.7 + 0.55) / 4), abs=1e-6
    )


def test_ece_zero_for_confident_correct_and_bad_bins():
    logits = torch.tensor([[50.0, 0.0], [0.0, 50.0]])
    assert expected_calibration_error(logits, torch.tensor([0, 1])) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(logits, torch.tensor([0, 1]), 0)


def test_brier_and_nll_known_values():
    expected = (0.01 + 0.01 + 0.81 + 0.81 + 0.09 + 0.09 + 0.45**2 + 0.45**2) / 4
    assert brier_score(LOGITS, TARGETS) == pytest.approx(expected, abs=1e-6)
    nll = -(math.log(0.9) + math.log(0.1) + math.log(0.7) + math.log(0.55)) / 4
    assert negative_log_likelihood(LOGITS, TARGETS) == pytest.approx(nll, abs=1e-6)


def test_disagreement_and_shift():
    a = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 3.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 3.0], [0.0, 3.0]])
    assert disagreement(a, b) == 0.5
    s = probability_shift(a, b)
    assert s[0] == pytest.approx(0) and s[3] == pytest.approx(0)
    p = torch.softmax(torch.tensor([3.0, 0.0]), 0)
    assert s[2] == pytest.approx(float(p[0] - p[1]), abs=1e-6)  # TV distance of swapped distributions


def test_registered():
    assert "calibration" in evaluators.names() and "agreement" in evaluators.names()
    CalibrationParams.model_validate({"corruptions": [], "n_bins": 10})
    with pytest.raises(pydantic.ValidationError):
        AgreementParams.model_validate({"thumbnail": 3})


def _ctx(bundle, tmp_path, method, parent):
    return EvalContext(
        data=bundle,
        meta=bundle.meta,
        device=torch.device("cpu"),
        seed=0,
        workdir=tmp_path,
        variant=VariantInfo(name=method, method=method, is_parent=method == "baseline"),
        load_parent=lambda: parent,
        eval_size=300,
        progress=False,
    )


def test_calibration_evaluator_clean(tiny_model, digits_bundle, tmp_path):
    ms = calibration(
        tiny_model, _ctx(digits_bundle, tmp_path, "baseline", tiny_model), CalibrationParams(corruptions=[])
    )
    got = {m.metric: m.value for m in ms}
    assert set(got) == {"ece", "nll", "brier"} and all(m.condition == {} for m in ms)
    assert 0 <= got["ece"] < 0.5 and 0 < got["brier"] < 1 and got["nll"] > 0


def test_calibration_evaluator_corrupted(tiny_model, digits_bundle, tmp_path):
    from compressbench.evaluate import corruptions as mod

    if not hasattr(mod, "corrupt"):
        pytest.skip("compressbench.evaluate.corruptions.corrupt not available yet")
    ms = calibration(
        tiny_model,
        _ctx(digits_bundle, tmp_path, "baseline", tiny_model),
        CalibrationParams(corruptions=["gaussian_noise"], severities=[5], subset=200),
    )
    corr = [m for m in ms if m.condition]
    assert {m.metric for m in corr} == {"ece", "nll", "brier"}
    assert corr[0].condition == {"corruption": "gaussian_noise", "severity": 5}


def test_agreement_evaluator(tiny_model, digits_bundle, tmp_path):
    # baseline vs itself: no disagreement, no thumbnails
    ms = {
        m.metric: m.value
        for m in agreement(tiny_model, _ctx(digits_bundle, tmp_path / "b", "baseline", tiny_model), AgreementParams())
    }
    assert ms["disagreement"] == 0 and ms["agreement_top1"] == 1
    assert not (tmp_path / "b" / "disagreed.png").exists()
    # a damaged copy disagrees on some images
    variant = copy.deepcopy(tiny_model)
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for p in variant.parameters():
            p.add_(0.5 * p.std() * torch.randn(p.shape, generator=g))
    ms = {
        m.metric: m.value
        for m in agreement(
            variant,
            _ctx(digits_bundle, tmp_path / "v", "prune.unstructured", tiny_model),
            AgreementParams(thumbnails=8),
        )
    }
    assert 0 < ms["disagreement"] <= 1 and ms["agreement_top1"] == pytest.approx(1 - ms["disagreement"])
    assert ms["churn_correct_to_wrong"] <= ms["disagreement"]
    assert (tmp_path / "v" / "disagreed.png").stat().st_size > 1000
    assert (tmp_path / "v" / "disagreed.json").exists()
