"""``train.amp``: true (fp16 + gradient scaler on CUDA, fp32 on CPU), false (fp32), "bf16" (bf16 autocast on CPU
and CUDA) — what each runs, that fine-tunes inherit it, that existing job keys stay, and the refusals."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from compressbench.config import ConfigError
from compressbench.models import create_model
from compressbench.plan import plan
from compressbench.runner import run
from compressbench.store import ResultStore
from compressbench.train import NATIVE_BF16_CPU, TrainRecipe, accuracy, native_bf16_cpu, train, train_precision
from compressbench.validate import validate

ROOT = Path(__file__).parents[1]


class AutocastSpy:
    """A forward hook on every leaf module recording, during training, whether CPU autocast was on and its dtype."""

    def __init__(self, model: torch.nn.Module, device: str = "cpu"):
        self.seen: set[tuple[bool, torch.dtype | None]] = set()
        self.handles = [
            m.register_forward_hook(self._hook) for m in model.modules() if not list(m.children()) and m.training
        ]
        self.device = device

    def _hook(self, module, args, out) -> None:
        if module.training:  # training steps only (the loop ends in eval mode)
            on = torch.is_autocast_enabled(self.device)
            self.seen.add((on, torch.get_autocast_dtype(self.device) if on else None))

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _train(bundle, amp, device="cpu"):
    torch.manual_seed(0)
    model = create_model("tinycnn", bundle.meta)
    spy = AutocastSpy(model.train(), device)
    recipe = TrainRecipe(epochs=2, batch_size=64, lr=0.2, augment="none", amp=amp)
    stats = train(model, bundle.train, recipe, seed=0, device=device, show_progress=False)
    spy.close()
    return model, stats, spy.seen


def test_bf16_trains_under_bf16_autocast_with_fp32_weights_and_differs_from_fp32(digits_bundle):
    m16, s16, seen16 = _train(digits_bundle, "bf16")
    m32, s32, seen32 = _train(digits_bundle, False)
    mtrue, _, seen_true = _train(digits_bundle, True)
    assert seen16 == {(True, torch.bfloat16)}  # every layer of every step ran under bf16 autocast
    assert seen32 == seen_true == {(False, None)}  # false, and true on a CPU: plain fp32
    assert math.isfinite(s16["train_loss"]) and s16["train_loss"] < math.log(10) - 0.1
    assert accuracy(m16, digits_bundle.test) > 0.25  # it learnt (10 classes; fp32 and bf16 reach 0.40 here)
    assert (s16["train_bf16"], s32["train_bf16"]) == (1.0, 0.0)
    # autocast casts op inputs only: the master weights (and so the checkpoint) stay fp32
    assert all(p.dtype == torch.float32 for p in m16.parameters())
    assert all(b.dtype in (torch.float32, torch.int64) for b in m16.buffers())
    flat = torch.nn.utils.parameters_to_vector
    p16, p32 = flat(m16.parameters()), flat(m32.parameters())
    assert not torch.equal(p16, p32)  # bf16 rounding changed the trajectory
    # amp: true on a CPU is exactly what it was before bf16 existed: fp32, the same weights as amp: false
    assert torch.equal(flat(mtrue.parameters()), p32)


def test_precision_of_each_value():
    assert [train_precision(a, "cpu") for a in (True, False, "bf16")] == ["fp32", "fp32", "bf16"]
    assert [train_precision(a, "cuda") for a in (True, False, "bf16")] == ["fp16", "fp32", "bf16"]


def test_native_bf16_cpu_reads_the_cpu_flags():
    """The predicate agrees with the kernel's flags (Linux x86: /proc/cpuinfo's avx512_bf16 / amx_bf16)."""
    info = Path("/proc/cpuinfo")
    if not info.is_file() or "flags" not in info.read_text():
        pytest.skip("no /proc/cpuinfo flags here")
    flags = set(next(ln for ln in info.read_text().splitlines() if ln.startswith("flags")).split(":")[1].split())
    assert native_bf16_cpu() == bool(flags & set(NATIVE_BF16_CPU))


@pytest.mark.parametrize("bad", ["fp16", "on", "True", 1, 0.5, [True]])
def test_a_bad_amp_is_one_line_naming_the_choices(bad):
    raw = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    raw["train"]["amp"] = bad
    with pytest.raises(ConfigError) as e:
        validate(raw)
    msg = str(e.value)
    assert msg.startswith("train.amp: allowed: true") and '"bf16"' in msg and repr(bad) in msg and "\n" not in msg


def test_amp_true_and_false_keep_their_job_keys():
    """Job keys computed before ``amp`` took "bf16" (main at b8b80ed): the quickstart's train and compress jobs
    with amp true (its default, also tests/test_weights.py's digest) and amp false; "bf16" is a key of its own."""
    raw = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    want = {
        True: ("c0de933b628298da5c61a647", "712d5333b0c1fb6397ca655f583bcd382cdbb7aebc708b6598e55c7e904afb16"),
        False: ("55753dd48265a8315840dcf0", "0b5d7a6eeae7561bc0a1f2a8e28a0323a20d0bbdf70e1e5f5cfa6bdf1f45bdf6"),
    }
    got = {}
    for amp in (True, False, "bf16"):
        jobs = [j for j in plan(validate({**raw, "train": {**raw["train"], "amp": amp}})) if j.kind != "evaluate"]
        got[amp] = (jobs[0].key, hashlib.sha256("".join(j.key for j in jobs).encode()).hexdigest())
    assert {k: got[k] for k in want} == want
    assert got["bf16"][0] not in (want[True][0], want[False][0])


def test_fine_tunes_inherit_bf16_and_qat_stays_fp32(tmp_path):
    """A real run with ``train.amp: bf16``: the baseline and a pruning fine-tune train in bf16 (the compress job
    records what its training steps ran in); QAT's fine-tune runs in fp32 (torch.ao's fake-quantize is fp32-only)."""
    exp = validate(
        {
            "name": "amp",
            "seeds": [0],
            "dataset": {"name": "digits", "eval_subset": 100},
            "model": {"name": "tinycnn"},
            "train": {"epochs": 0.5, "batch_size": 64, "lr": 0.1, "augment": "none", "amp": "bf16"},
            "variants": [
                {"method": "prune.unstructured", "params": {"finetune": {"epochs": 0.2}}, "budget": {"knob": 0.5}},
                {"method": "quantize.qat", "params": {"finetune": {"epochs": 0.1}, "calibration_batches": 1}},
            ],
            "evaluations": [{"evaluator": "clean"}],
            "cache_dir": str(tmp_path / "cache"),
            "store": str(tmp_path / "r.sqlite"),
        }
    )
    summary = run(exp, progress=False)
    assert summary.failed == 0
    precision = {}
    for f in (tmp_path / "cache" / "jobs").glob("*/result.json"):
        res = json.loads(f.read_text())
        rec = (res.get("info") or {}).get("record") or {}
        if "precision" in rec:
            precision[res["spec"].get("method", "train")] = rec["precision"]
    assert precision == {"train": "bf16", "prune.unstructured": "bf16", "quantize.qat": "fp32"}
    rows = ResultStore(exp.store_path).rows("amp", metric="train_bf16")
    assert [(r["evaluator"], r["variant"], r["value"]) for r in rows] == [("train", "baseline", 1.0)]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_bf16_and_fp16_on_cuda(digits_bundle):
    """On a GPU: bf16 where it has bf16 (else the one-line refusal), and amp: true's fp16 with its scaler."""
    from compressbench.train import bf16_problem

    if bf16_problem("cuda") is not None:
        with pytest.raises(ValueError, match="train.amp: bf16 needs a GPU with bf16"):
            _train(digits_bundle, "bf16", "cuda")
    else:
        m, s, seen = _train(digits_bundle, "bf16", "cuda")
        assert seen == {(True, torch.bfloat16)} and math.isfinite(s["train_loss"])
        assert all(p.dtype == torch.float32 for p in m.parameters())
    _, s, seen = _train(digits_bundle, True, "cuda")
    assert seen == {(True, torch.float16)} and math.isfinite(s["train_loss"]) and s["train_bf16"] == 0.0
