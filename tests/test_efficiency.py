"""The measurement core and the efficiency evaluator: exact counts against hand formulas, byte math of
the sparse encoding, int8 sizes, one answer to "quantized?", the numbers of a trained model computed
independently, a sane latency protocol (in-process and in a fresh process), and the profile CLI."""

from __future__ import annotations

import argparse
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from compressbench import profile_cli
from compressbench.data.base import DataMeta
from compressbench.evaluate.efficiency import EfficiencyParams, to_measurements
from compressbench.measure import counting, flops, onnxrt, precision, profiling, sizes, timing
from compressbench.models import create_model

META = DataMeta("t", 10, 3, (32, 32), (0.5,) * 3, (0.25,) * 3)


# ----------------------------------------------------------------- params and FLOPs
def test_conv_flops_and_params_exact():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=True)
    macs = 8 * 16 * 16 * (3 * 3 * 3)  # out elements × (cin × kh × kw)
    assert flops.count_flops(conv, (1, 3, 16, 16)) == 2 * macs
    assert counting.param_counts(conv)["params"] == 8 * 3 * 9 + 8
    assert flops.shape_macs(conv, (1, 3, 16, 16))[""]["macs"] == macs
    # grouped + strided
    g = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4, bias=False)
    assert flops.count_flops(g, (2, 8, 16, 16)) == 2 * (2 * 16 * 8 * 8) * (8 // 4 * 9)


def test_linear_flops_and_params_exact():
    lin = nn.Linear(20, 5)
    assert flops.count_flops(lin, (4, 20)) == 2 * 4 * 20 * 5
    assert counting.param_counts(lin) == {"params": 20 * 5 + 5, "params_nonzero": 105}
    prof = flops.flop_profile(lin, (4, 20))
    assert prof["macs"] == 400 and prof["flops_effective"] == 800 and prof["int8_ops"] == 0


def _resnet8_macs() -> int:
    """He et al. ResNet-8 (16/32/64, one basic block per stage, 1×1 projection shortcuts), 32×32 input."""

    def conv(cout, hw, cin, k):
        return cout * hw * hw * cin * k * k

    return (
        conv(16, 32, 3, 3)  # stem
        + 2 * conv(16, 32, 16, 3)  # layer1
        + conv(32, 16, 16, 3)
        + conv(32, 16, 32, 3)
        + conv(32, 16, 16, 1)  # layer2 (+ shortcut)
        + conv(64, 8, 32, 3)
        + conv(64, 8, 64, 3)
        + conv(64, 8, 32, 1)  # layer3 (+ shortcut)
        + 64 * 10
    )  # fc


def _resnet8_params() -> int:
    convs = 3 * 16 * 9 + 2 * 16 * 16 * 9 + (16 * 32 * 9 + 32 * 32 * 9 + 16 * 32) + (32 * 64 * 9 + 64 * 64 * 9 + 32 * 64)
    bns = 2 * (16 + 2 * 16 + 3 * 32 + 3 * 64)
    return convs + bns + 64 * 10 + 10


def test_small_resnet_exact():
    m = create_model("resnet8", META).eval()
    prof = flops.flop_profile(m, (1, 3, 32, 32))
    assert prof["macs"] == _resnet8_macs() == 12_501_632
    assert prof["flops"] == 2 * _resnet8_macs()
    assert counting.param_counts(m)["params"] == _resnet8_params() == 78_042
    # the shape counter agrees with FlopCounterMode on a float model
    assert sum(r["macs"] for r in flops.shape_macs(m, (1, 3, 32, 32)).values()) == _resnet8_macs()


def test_masked_pruning_counts_effective_weights():
    m = create_model("resnet8", META).eval()
    dense_bytes = sizes.dense_bytes(m)
    nz0 = counting.param_counts(m)["params_nonzero"]  # BN biases start at zero
    conv = m.net.layer3[0].conv2
    prune.l1_unstructured(conv, "weight", amount=0.9)
    assert counting.is_masked_model(m)
    pc = counting.param_counts(m)
    assert pc["params"] == _resnet8_params()  # weight_orig is not counted twice
    assert pc["params_nonzero"] == nz0 - round(0.9 * conv.weight.numel())
    dens = {r["layer"]: r["density"] for r in counting.layer_density(m)}
    assert dens["net.layer3.0.conv2"] == pytest.approx(0.1, abs=1e-3)
    prof = flops.flop_profile(m, (1, 3, 32, 32))
    removed = 2 * 64 * 8 * 8 * 64 * 9 * 0.9
    assert prof["flops_effective"] == pytest.approx(prof["flops"] - removed, rel=1e-3)
    # masks are folded: the deployable dense file is as big as the unpruned one (not bigger)
    assert abs(sizes.dense_bytes(m) - dense_bytes) < 2_000
    assert "net.layer3.0.conv2.weight" in sizes.deployable_state_dict(m)


# ----------------------------------------------------------------- bytes
def test_sparse_encoding_byte_math_and_roundtrip():
    g = torch.Generator().manual_seed(0)
    w = torch.zeros(1000, 64)
    idx = torch.randperm(w.numel(), generator=g)[:6400]
    w.view(-1)[idx] = torch.randn(6400, generator=g)
    dense = torch.randn(10, 10)  # 100 % dense: stays in the torch.save blob
    sd = {"w": w, "dense": dense}
    blob = sizes.encode_sparse_state_dict(sd)
    assert sizes.bitmask_encoded_size(64_000, 6_400, 4) == 8_000 + 25_600
    rest = io.BytesIO()
    torch.save({"dense": dense}, rest)
    head = json.dumps(
        {
            "tensors": [{"name": "w", "shape": [1000, 64], "dtype": "float32", "mask": 8000, "values": 25600}],
            "rest": rest.tell(),
        }
    ).encode()
    assert len(blob) == len(b"CBSPARSE1\n") + 8 + len(head) + 33_600 + rest.tell()
    back = sizes.decode_sparse_state_dict(blob)
    assert torch.equal(back["w"], w) and torch.equal(back["dense"], dense)
    with pytest.raises(ValueError, match="magic"):
        sizes.decode_sparse_state_dict(b"nope")


def test_unstructured_90_compressed_bytes():
    m = create_model("resnet8", META).eval()
    params = [(mod, "weight") for mod in m.modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]
    prune.global_unstructured(params, prune.L1Unstructured, amount=0.9)
    enc = sizes.compressed_sizes(m)
    assert enc["bitmask"] < 0.2 * enc["torch.save"]
    assert enc["bitmask+zstd"] <= enc["bitmask"]


def _quantize_fx(model: nn.Module, shape) -> nn.Module:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    x = torch.rand(*shape)
    p = prepare_fx(copy.deepcopy(model).eval(), get_default_qconfig_mapping("x86"), (x,))
    with torch.no_grad():
        for _ in range(2):
            p(torch.rand(8, *shape[1:]))
    return convert_fx(p)


def test_quantized_model_bytes_params_and_int8_ops():
    net = nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    ).eval()
    q = _quantize_fx(net, (1, 3, 16, 16))
    assert precision.quantization_kind(q) == "int8" and precision.quantization_kind(net) is None
    weights = 64 * 3 * 9 + 64 * 64 * 9 + 64 * 10
    assert counting.param_counts(q)["params"] == counting.param_counts(net)["params"]
    qb, fb = sizes.dense_bytes(q), sizes.dense_bytes(net)
    assert weights <= qb <= weights + 16_000  # one byte per weight + scales, biases, pickle overhead
    assert qb < 0.35 * fb  # small model: per-channel scales and pickle overhead weigh in
    prof = flops.flop_profile(q, (1, 3, 16, 16))
    float_macs = flops.flop_profile(net, (1, 3, 16, 16))["macs"]
    assert prof["int8_ops"] == 2 * float_macs  # FlopCounterMode sees none of these
    assert prof["flops"] == prof["int8_ops"]


def _conv_linear_macs(model: nn.Module, hw: int) -> dict[str, int]:
    """tinycnn's MACs per layer by formula (3×3 convs, padding 1; a 2×2 max-pool between them)."""
    net = model.net
    c1, c2, fc = net[0], net[4], net[-1]
    return {
        "net.0": c1.out_channels * hw * hw * c1.in_channels * 9,
        "net.4": c2.out_channels * (hw // 2) ** 2 * c2.in_channels * 9,
        "net.9": fc.in_features * fc.out_features,
    }


def test_trained_model_profile_numbers_by_independent_computation(tiny_model, digits_bundle, tmp_path):
    """Every static figure of the profile JSON of the trained fixture, recomputed without the measure
    package: parameters from ``model.parameters()``, bytes from ``torch.save`` / zlib, FLOPs by formula."""
    import zlib

    from compressbench.checkpoint import save_model
    from compressbench.runner import measure_size

    m = copy.deepcopy(tiny_model)
    shape = (1, digits_bundle.meta.channels, *digits_bundle.meta.size)
    assert shape == (1, 1, 16, 16)
    with torch.no_grad():  # prune half of conv2 (exactly 576 of 1152 weights) so density matters
        w = m.net[4].weight
        w.view(-1)[w.abs().view(-1).argsort()[: w.numel() // 2]] = 0
    rep = profiling.profile(m, shape, profiling.ProfileSettings(timing=False))
    ps = list(m.parameters())
    assert rep["params"] == {
        "params": sum(p.numel() for p in ps),
        "params_nonzero": sum(int((p != 0).sum()) for p in ps),
    }
    assert rep["params"]["params"] == 8 * 9 + 2 * 8 + 16 * 8 * 9 + 2 * 16 + 16 * 10 + 10 == 1442
    buf = io.BytesIO()
    torch.save(dict(m.state_dict()), buf)  # the tensors as a plain dict (no module-version metadata)
    dense = buf.getvalue()
    assert rep["bytes"]["torch.save"] == len(dense) and rep["bytes"]["zlib"] == len(zlib.compress(dense, 6))
    macs = _conv_linear_macs(m, 16)
    assert rep["flops"]["macs"] == sum(macs.values()) == 92_320 and rep["flops"]["flops"] == 2 * 92_320
    density = {k: float((m.get_submodule(k).weight != 0).float().mean()) for k in macs}
    assert density["net.4"] == 0.5
    eff_flops = sum(2 * v * density[k] for k, v in macs.items())
    assert rep["flops"]["flops_effective"] == pytest.approx(eff_flops, abs=1e-6) and rep["flops"]["int8_ops"] == 0
    # the three sizes: checkpoint file, dense weights, theoretical sparse payload
    ck = save_model(
        m, tmp_path / "m.pt", {"model": "tinycnn", "width": 1.0, "kwargs": {}, "meta": digits_bundle.meta.to_dict()}
    )
    size = measure_size(m, ck, shape)
    rows = size.rows()
    assert size.checkpoint_bytes == (tmp_path / "m.pt").stat().st_size == sizes.checkpoint_bytes(ck)
    assert sizes.dense_bytes(m) == len(dense)
    payload = 0
    for t in m.state_dict().values():
        n, es = t.numel(), t.element_size()
        payload += min(n * es, (n + 7) // 8 + int((t != 0).sum()) * es) if t.is_floating_point() else n * es
    assert sizes.sparse_payload_bytes(m) == payload
    assert {r["metric"]: r["tag"] for r in rows}["params_nonzero"] == "theoretical"
    ms = {x.metric: x for x in to_measurements({**rep, "torch": None})}
    assert ms["params_nonzero"].tag == "theoretical" and ms["params_nonzero"].value == size.params_nonzero
    # int8 of the same model: every MAC becomes an int8 op
    q = _quantize_fx(m, shape)
    qf = flops.flop_profile(q, shape)
    assert qf["int8_ops"] == 2 * 92_320 and qf["flops"] == qf["int8_ops"] + qf["float_flops"]


def test_quantization_kind_one_answer_for_both_call_sites():
    from compressbench.compress.quantize import cast_model
    from compressbench.evaluate.attacks.quantsim import is_quantized_model

    net = create_model("tinycnn", META).eval()

    class QDQ(nn.Module):
        def forward(self, x):
            return torch.dequantize(torch.quantize_per_tensor(x, 0.1, 0, torch.quint8))

    cases = {
        "float": (net, None),
        "int8": (_quantize_fx(net, (1, 3, 16, 16)), "int8"),
        "dynamic": (torch.ao.quantization.quantize_dynamic(copy.deepcopy(net), {nn.Linear}), "int8"),
        "fp16": (cast_model(copy.deepcopy(net), "float16"), "float16"),
        "bf16": (copy.deepcopy(net).bfloat16(), "bfloat16"),
        "qdq": (nn.Sequential(torch.fx.symbolic_trace(QDQ()), copy.deepcopy(net)), "int8-qdq"),
    }
    for name, (model, kind) in cases.items():
        assert precision.quantization_kind(model) == kind, name
        assert is_quantized_model(model) == (kind is not None), name  # the attacks' question
        if name in ("float", "int8", "dynamic", "fp16"):  # the profile's question: int8 kernels?
            assert profiling.static_profile(model, (1, 3, 16, 16))["quantized"] == (kind == "int8"), name


# ----------------------------------------------------------------- latency protocol
def test_time_torch_sane():
    m = create_model("tinycnn", META).eval()
    r = timing.time_torch(m, torch.rand(1, 3, 32, 32), threads=1, warmup=2, repeats=5)
    assert r["n"] == 5 and 0 < r["min_ms"] <= r["median_ms"] < 1_000 and r["iqr_ms"] >= 0
    with pytest.raises(ValueError, match="repeats"):
        timing.time_torch(m, torch.rand(1, 3, 32, 32), threads=1, repeats=0)


def _fake_ctx(bundle, workdir, extra=None):
    from compressbench.interfaces import EvalContext, VariantInfo

    return EvalContext(
        data=bundle,
        meta=bundle.meta,
        device=torch.device("cpu"),
        seed=0,
        workdir=workdir,
        variant=VariantInfo("baseline", "baseline", is_parent=True),
        load_parent=lambda: None,
        progress=False,
        extra=extra or {},
    )


def test_evaluator_in_process(digits_bundle, tmp_path):
    from compressbench.registry import evaluators

    tiny_model = create_model("tinycnn", digits_bundle.meta).eval()  # speed needs no training

    fn = evaluators.get("efficiency")
    params = evaluators.spec("efficiency").params.model_validate(
        {"repeats": 3, "warmup": 1, "throughput_batch": 8, "throughput_repeats": 2, "onnx": False}
    )
    ms = fn(tiny_model, _fake_ctx(digits_bundle, tmp_path), params)
    by = {m.metric: m for m in ms}
    for k in (
        "params",
        "params_nonzero",
        "bytes_dense",
        "bytes_compressed",
        "flops",
        "flops_effective",
        "macs",
        "latency_b1_ms",
        "latency_b1_iqr_ms",
        "throughput_img_s",
        "peak_mem_mb",
    ):
        assert k in by, k
    assert by["latency_b1_ms"].tag == "realised" and by["flops"].tag == "theoretical"
    assert by["latency_b1_ms"].condition["process"] == "in-process"
    assert by["latency_b1_ms"].value > 0 and by["throughput_img_s"].value > 0
    assert by["macs"].value * 2 == by["flops"].value
    assert (tmp_path / "efficiency.json").is_file()


@pytest.mark.extras("onnx")  # the ONNX Runtime rows are the point
def test_fresh_process_checkpoint_and_onnx(digits_bundle, tmp_path):
    """Worker processes: torch timing from the saved checkpoint, ONNX Runtime without torch."""
    from compressbench.checkpoint import save_model
    from compressbench.registry import evaluators

    tiny_model = create_model("tinycnn", digits_bundle.meta).eval()

    spec = {"model": "tinycnn", "width": 1.0, "kwargs": {}, "meta": digits_bundle.meta.to_dict()}
    ck = save_model(tiny_model, tmp_path / "model.pt", spec, [])
    params = EfficiencyParams(repeats=3, warmup=1, throughput_batch=8, throughput_repeats=2)
    ms = evaluators.get("efficiency")(tiny_model, _fake_ctx(digits_bundle, tmp_path, {"checkpoint": str(ck)}), params)
    by = {(m.metric, m.condition.get("dtype")): m for m in ms}
    lat = by[("latency_b1_ms", None)]
    assert lat.condition["process"] == "fresh" and lat.value > 0 and lat.condition["threads"] == 1
    assert by[("peak_mem_mb", None)].value > 0
    onnx = by[("onnx_latency_b1_ms", "fp32")]
    assert onnx.value > 0 and onnx.condition["runtime"].startswith("onnxruntime")
    rep = json.loads((tmp_path / "efficiency.json").read_text())
    assert rep["torch"]["torch_threads"] == 1 and rep["onnx"]["fp32"]["torch_imported"] is False
    assert (tmp_path / "model_fp32.onnx").is_file()  # the ONNX file is kept with the job's artifacts
    assert not list(tmp_path.glob("cb-profile-*"))  # the scratch folder (job files) is not


def test_onnx_int8_static_quantization(tmp_path):
    m = create_model("tinycnn", META).eval()
    fp32 = onnxrt.export_onnx(m, tmp_path / "m.onnx", (1, 3, 32, 32))
    calib = [np.random.default_rng(i).random((4, 3, 32, 32), dtype=np.float32) for i in range(2)]
    q = onnxrt.quantize_onnx_static(fp32, tmp_path / "m_int8.onnx", calib)
    import onnx

    ops = {n.op_type for n in onnx.load(str(q)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    r = onnxrt.time_onnx(q, (1, 3, 32, 32), threads=1, throughput_batch=4, warmup=1, repeats=3, throughput_repeats=2)
    assert r["latency"]["median_ms"] > 0 and r["throughput"]["img_s"] > 0


# ----------------------------------------------------------------- CLI
def test_profile_command_table_and_json(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    profile_cli.add_profile_arguments(parser)
    out = tmp_path / "p.json"
    args = parser.parse_args(
        [
            "tinycnn",
            "--input-shape",
            "1,3,16,16",
            "--no-onnx",
            "--in-process",
            "--repeats",
            "3",
            "--warmup",
            "1",
            "--batch",
            "4",
            "--json",
            str(out),
        ]
    )
    assert profile_cli.profile_command(args) == 0
    rep = json.loads(out.read_text())
    assert (
        rep["params"]["params"]
        == counting.param_counts(create_model("tinycnn", DataMeta("p", 10, 3, (16, 16), (0.5,) * 3, (0.25,) * 3)))[
            "params"
        ]
    )
    assert rep["torch"]["latency"]["median_ms"] > 0 and rep["hardware"]["torch"] == torch.__version__
    printed = capsys.readouterr().out
    assert "size and compute" in printed and "b1 ms" in printed


@pytest.mark.parametrize(
    "argv, match",
    [
        (["torchvision.models:resnet18"], "give --input-shape"),
        (["tinycnn", "--input-shape", "1,a,3"], "--input-shape must be positive integers"),
        (["tinycnn", "--input-shape", "1,3,0,8"], "--input-shape must be positive integers"),
        (["missing.pt"], "checkpoint 'missing.pt' does not exist"),
        (["no_such_model", "--input-shape", "1,3,8,8"], "neither a checkpoint file"),
        (["no_such_pkg.mod:fn", "--input-shape", "1,3,8,8"], "cannot import profile target"),
        (["tinycnn", "--input-shape", "1,3,8,8", "--repeats", "0"], "--repeats: "),
        (["tinycnn", "--input-shape", "1,3,8,8", "--warmup", "-1"], "--warmup: "),
        (["tinycnn", "--input-shape", "1,3,8,8", "--threads", "-2"], "--threads: "),
        (["tinycnn", "--input-shape", "1,3,8,8", "--batch", "-4"], "--batch: "),
    ],
)
def test_profile_bad_input_is_one_line_exit_2(argv, match, capsys, tmp_path, monkeypatch):
    from compressbench.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["profile", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and match in err and len(err.splitlines()) == 1, err


def test_profile_without_input_shape_cli_subprocess(tmp_path):
    """The issue's reproduction, end to end: one line on stderr, exit 2, no traceback."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(Path(profile_cli.__file__).parents[1]))
    p = subprocess.run(
        [sys.executable, "-m", "compressbench", "profile", "torchvision.models:resnet18"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "Traceback" not in p.stderr, p.stderr
    assert "give --input-shape" in p.stderr


def test_efficiency_params_constraints():
    for bad in (
        {"repeats": 0},
        {"warmup": -1},
        {"threads": -1},
        {"throughput_batch": -1},
        {"throughput_repeats": 0},
        {"calib_batches": 0},
        {"timeout_s": 0},
        {"timeout_s": float("inf")},
        {"zstd_level": 23},
        {"bogus": 1},
    ):
        with pytest.raises(ValueError):  # pydantic ValidationError (a ValueError): the config check names the field
            EfficiencyParams.model_validate(bad)
    assert EfficiencyParams.model_validate({"throughput_batch": 0}).throughput_batch == 0  # 0: no throughput run


@pytest.mark.extras("onnx")  # the ONNX Runtime rows are the point
def test_profile_quantized_variant_uses_float_source_for_ort(tmp_path):
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4)
    ).eval()
    q = _quantize_fx(net, (1, 3, 16, 16))
    params = EfficiencyParams(repeats=3, warmup=1, throughput_batch=4, throughput_repeats=2, fresh_process=False)
    rep = profiling.profile(q, (1, 3, 16, 16), params, float_model=net, workdir=tmp_path)
    assert set(rep["onnx"]) >= {"int8"} and "fp32" not in rep["onnx"]
    ms = to_measurements(rep)
    ort = [m for m in ms if m.metric == "onnx_latency_b1_ms"]
    assert len(ort) == 1 and ort[0].condition["dtype"] == "int8" and ort[0].condition["source"] == "float-source"
    assert any(m.metric == "int8_ops" and m.tag == "theoretical" for m in ms)
    lat = next(m for m in ms if m.metric == "latency_b1_ms")
    assert lat.condition["runtime"].endswith("-int8") and lat.condition["process"] == "in-process"
