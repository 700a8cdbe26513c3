"""Every registered compression method on the tiny model: it runs, reports all achieved fractions,
and its output round-trips through checkpoint.save_model / load_model with identical predictions."""

from __future__ import annotations

import pytest
import torch

from compressbench.checkpoint import load_model, save_model
from compressbench.compress import capabilities, compress
from compressbench.interfaces import Budget, CompressResult
from compressbench.registry import methods
from test_compress_common import make_context, with_target

FT = {"epochs": 0.2}
# cheap params per method; every registered method must appear here
TEST_PARAMS: dict[str, tuple[dict, Budget | None]] = {
    "prune.unstructured": ({"finetune": FT}, Budget("knob", 0.6)),
    "prune.structured": ({"finetune": FT}, Budget("knob", 0.4)),
    "prune.soft_filter": ({"train": FT}, Budget("params", 0.6)),
    "quantize.static": ({"calibration_batches": 4, "batch_size": 64}, None),
    "quantize.dynamic": ({}, None),
    "quantize.qat": ({"finetune": FT, "calibration_batches": 2}, None),
    "quantize.fp16": ({}, None),
    "quantize.bf16": ({}, None),
    "distill": ({"epochs": 0.3}, Budget("knob", 0.5)),
    "lowrank": ({"finetune": FT}, Budget("knob", 0.5)),
    "finetune": (FT, None),
    "adapt.coral": ({"weight": 1.0, "epochs": 0.2}, None),
    "pipeline": (
        {
            "stages": [
                {"method": "prune.structured", "params": {"finetune": {"epochs": 0}}},
                {"method": "finetune", "params": FT},
                {"method": "quantize.static", "params": {"calibration_batches": 2}},
            ]
        },
        Budget("params", 0.6),
    ),
}


def test_every_method_has_test_params_and_metadata():
    names = methods.names()
    assert set(names) == set(TEST_PARAMS), f"untested or stale methods: {set(names) ^ set(TEST_PARAMS)}"
    for n in names:
        spec = methods.spec(n)
        assert spec.description and spec.version >= 1 and spec.params is not None
        assert isinstance(spec.budgets, tuple)
        shared = [b for b in spec.budgets if b != "knob"]
        assert spec.stages is not None or not shared or (spec.knob is not None and spec.apply is not None)


@pytest.mark.parametrize("name", sorted(TEST_PARAMS))
def test_method_runs_and_round_trips(name, tiny_model, digits_bundle, tmp_path):
    params, budget = TEST_PARAMS[name]
    p = methods.spec(name).params.model_validate(params)
    # a method that adapts to a target domain gets one (the digits test split, unlabeled)
    bundle = with_target(digits_bundle) if capabilities(name, p)["adapts"] else digits_bundle
    ctx = make_context(bundle, tmp_path)
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    res = compress(name, tiny_model, ctx, budget, p)
    assert isinstance(res, CompressResult)
    # the parent is untouched
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())
    assert set(res.achieved) >= {"params", "bytes", "flops"}
    assert all(0 < v <= 1.05 for v in res.achieved.values()), res.achieved
    if budget is not None:  # the runner stores record["knob"] as a float metric
        assert isinstance(res.record["knob"], float)
    x = digits_bundle.test.x[:32].float() / 255
    with torch.inference_mode():
        y = res.model(x)
    assert y.shape == (32, digits_bundle.meta.num_classes) and y.dtype == torch.float32
    path = save_model(res.model, tmp_path / "v.pt", ctx.parent_spec, res.steps)
    reloaded, ck = load_model(path)
    with torch.inference_mode():
        assert torch.equal(reloaded(x), y)
    assert not any(k.endswith(("weight_orig", "weight_mask")) for k in ck["state_dict"])


@pytest.mark.parametrize("arch", ["tv_resnet50", "cifar_resnet18"])
def test_static_int8_on_zoo_resnets_round_trips(arch, digits_bundle, tmp_path):
    """Eager int8 on torchvision's Bottleneck and BasicBlock ResNets: fused, converted, reloaded exactly
    (the Bottleneck's new ReLUs must share the block's mode, or conv-bn-relu fusion refuses them)."""
    from compressbench.models import create_model

    torch.manual_seed(0)
    parent = create_model(arch, digits_bundle.meta, width=0.0625).eval()
    spec = {"model": arch, "width": 0.0625, "kwargs": {}, "meta": digits_bundle.meta.to_dict()}
    ctx = make_context(digits_bundle, tmp_path, spec=spec)
    res = compress(
        "quantize.static",
        parent,
        ctx,
        None,
        methods.spec("quantize.static").params(calibration_batches=2, batch_size=32),
    )
    x = digits_bundle.test.x[:16].float() / 255
    with torch.inference_mode():
        y = res.model(x)
    reloaded, _ = load_model(save_model(res.model, tmp_path / "q.pt", spec, res.steps))
    with torch.inference_mode():
        assert torch.equal(reloaded(x), y)
    assert res.achieved["bytes"] < 0.5
