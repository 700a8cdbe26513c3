"""Corrupt once, evaluate many: an evaluator's ``group`` form gives every model exactly the rows it gets alone,
and the scheduler runs one evaluator's jobs of a seed together while each job keeps its own cache entry,
store rows and resume (``execute.group``)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.ao.quantization as tq
from torch import nn

from compressbench.evaluate.attacks import AdversarialParams, AttackConfig, adversarial
from compressbench.evaluate.attacks.evaluator import adversarial_group
from compressbench.evaluate.corruptions import CorruptionsParams
from compressbench.evaluate.corruptions import core as corruption_core
from compressbench.evaluate.corruptions.evaluator import corruptions_evaluator, corruptions_group
from compressbench.interfaces import EvalContext, Measurement, VariantInfo
from compressbench.registry import evaluators
from compressbench.runner import run
from compressbench.store import ResultStore
from compressbench.validate import validate

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _ctx(bundle, workdir, name, parent=None, quantized=False) -> EvalContext:
    return EvalContext(
        data=bundle,
        meta=bundle.meta,
        device=torch.device("cpu"),
        seed=0,
        workdir=workdir,
        variant=VariantInfo(
            name=name, method=name, capabilities={"quantizes": quantized}, is_parent=name == "baseline"
        ),
        load_parent=lambda: copy.deepcopy(parent),
        eval_size=120,
        progress=False,
    )


def _variants(model: nn.Module) -> dict[str, nn.Module]:
    """The parent, a copy with its smaller weights zeroed, a dynamically quantized copy (int8 on the CPU)."""
    pruned = copy.deepcopy(model)
    with torch.no_grad():
        for p in pruned.parameters():
            if p.dim() > 1:
                p[p.abs() < p.abs().median()] = 0
    dyn = tq.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)
    return {"baseline": model, "pruned": pruned.eval(), "dynamic": dyn.eval()}


def _key(ms: list[Measurement]) -> list[tuple]:
    return [(m.metric, json.dumps(m.condition, sort_keys=True), m.tag, m.value) for m in ms]


def _same_outcomes(a, b) -> None:
    with np.load(a / "outcomes.npz") as fa, np.load(b / "outcomes.npz") as fb:
        assert sorted(fa.files) == sorted(fb.files)
        for k in fa.files:
            assert np.array_equal(fa[k], fb[k]), k


def test_corruptions_group_gives_each_model_its_own_rows(tiny_model, digits_bundle, tmp_path):
    p = CorruptionsParams(corruptions=["gaussian_noise", "contrast", "pixelate"], severities=[1, 5], batch_size=50)
    models = _variants(tiny_model)
    alone = {n: corruptions_evaluator(m, _ctx(digits_bundle, tmp_path / "alone" / n, n), p) for n, m in models.items()}
    calls = []
    real = corruption_core.corrupt

    def counting(*a, **k):
        calls.append(len(a[0]))
        return real(*a, **k)

    corruption_core.corrupt = counting
    try:
        together = corruptions_group(
            [(m, _ctx(digits_bundle, tmp_path / "group" / n, n)) for n, m in models.items()], p
        )
    finally:
        corruption_core.corrupt = real
    # cells × batches (120 images / 50): once for the three models; and the parent's gallery (1 image a cell)
    assert sorted(calls) == [1] * 6 + [20] * 6 + [50] * 12
    for (n, ms), got in zip(alone.items(), together, strict=True):
        assert not isinstance(got, BaseException)
        assert _key(got) == _key(ms), n
        _same_outcomes(tmp_path / "alone" / n, tmp_path / "group" / n)
    assert (tmp_path / "group" / "baseline" / "gallery.png").is_file()
    assert not (tmp_path / "group" / "pruned" / "gallery.png").exists()


def test_corruptions_group_a_failing_model_fails_alone(tiny_model, digits_bundle, tmp_path):
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("broken model")

    p = CorruptionsParams(corruptions=["contrast"], severities=[3])
    out = corruptions_group(
        [
            (Broken(), _ctx(digits_bundle, tmp_path / "b", "broken")),
            (tiny_model, _ctx(digits_bundle, tmp_path / "ok", "baseline")),
        ],
        p,
    )
    assert isinstance(out[0], RuntimeError) and "broken model" in str(out[0])
    assert _key(out[1]) == _key(corruptions_evaluator(tiny_model, _ctx(digits_bundle, tmp_path / "a", "baseline"), p))


def test_adversarial_group_crafts_the_transfer_attack_once(tiny_model, digits_bundle, tmp_path):
    torch.set_num_threads(1)
    p = AdversarialParams(
        attacks=[
            AttackConfig(name="fgsm", eps=[0.0, 0.05]),
            AttackConfig(name="pgd", eps=[0.05], steps=3, stronger_steps=0),
        ],
        subset=60,
        batch_size=30,
        modes=["auto-transfer"],
    )
    m = _variants(tiny_model)
    dyn2 = tq.quantize_dynamic(copy.deepcopy(m["pruned"]), {nn.Linear}, dtype=torch.qint8).eval()
    members = {"baseline": (m["baseline"], False), "dynamic": (m["dynamic"], True), "dyn2": (dyn2, True)}
    alone = {
        n: adversarial(mod, _ctx(digits_bundle, tmp_path / "alone" / n, n, tiny_model, q), p)
        for n, (mod, q) in members.items()
    }
    loads = []

    def ctx(n, q):
        c = _ctx(digits_bundle, tmp_path / "group" / n, n, tiny_model, q)
        return EvalContext(**{**c.__dict__, "load_parent": lambda: loads.append(n) or copy.deepcopy(tiny_model)})

    together = adversarial_group([(mod, ctx(n, q)) for n, (mod, q) in members.items()], p)
    assert loads == ["dynamic"]  # the parent loaded once, for both int8 models
    for (n, ms), got in zip(alone.items(), together, strict=True):
        assert _key(got) == _key(ms), n
        _same_outcomes(tmp_path / "alone" / n, tmp_path / "group" / n)
    assert {mm.tag for mm in together[0]} == {"whitebox"} and {mm.tag for mm in together[1]} == {"transfer"}


# --------------------------------------------------------------------------- scheduling
_SEEN: list[list[str]] = []


def _shared(model, ctx, params):
    return _shared_group([(model, ctx)], params)[0]


def _shared_group(members, params):
    _SEEN.append([ctx.variant.name for _, ctx in members])
    out = []
    for model, ctx in members:
        if "boom" in ctx.variant.name:
            out.append(RuntimeError("this member fails"))
        else:
            x, y, _ = next(ctx.eval_set().batches(64))
            out.append([Measurement("top1_64", float((model(x).argmax(1) == y).float().mean()))])
    return out


@pytest.fixture()
def shared_evaluator():
    evaluators.register("test.shared", _shared, description="test", group=_shared_group)
    _SEEN.clear()
    yield
    evaluators.unregister("test.shared")


def _exp(tmp_path, variants):
    return validate(
        {
            "name": "g",
            "seeds": [0],
            "dataset": {"name": "digits", "eval_subset": 120},
            "model": {"name": "tinycnn"},
            "train": {"epochs": 2, "batch_size": 64, "lr": 0.2, "augment": "none"},
            "variants": variants,
            "evaluations": [
                {"evaluator": "test.shared"},
                {"evaluator": "corruptions", "params": {"corruptions": ["contrast"], "severities": [2]}},
            ],
            "cache_dir": str(tmp_path / "cache"),
            "store": str(tmp_path / "r.sqlite"),
        }
    )


def test_a_group_runs_together_and_each_job_is_cached_alone(tmp_path, shared_evaluator):
    two = [
        {"method": "prune.unstructured", "params": {"finetune": {"epochs": 0}}, "budget": {"params": 0.5}},
        {
            "name": "boom",
            "method": "prune.unstructured",
            "params": {"finetune": {"epochs": 0}},
            "budget": {"params": 0.25},
        },
    ]
    s1 = run(_exp(tmp_path, two), progress=False)
    assert (s1.jobs, s1.failed) == (9, 1)
    assert _SEEN == [["baseline", "prune.unstructured@params=0.5", "boom"]]  # one call, the three models
    rows = ResultStore(tmp_path / "r.sqlite").rows("g")
    err = [r for r in rows if r["metric"] == "error"]
    assert len(err) == 1 and err[0]["variant"] == "boom" and "this member fails" in err[0]["error"]
    corr = {r["variant"]: r["value"] for r in rows if r["evaluator"] == "corruptions" and r["metric"] == "top1"}
    assert set(corr) == {"baseline", "prune.unstructured@params=0.5", "boom"}
    jobs = tmp_path / "cache" / "jobs"
    infos = [json.loads((d / "result.json").read_text())["info"] for d in jobs.iterdir() if d.is_dir()]
    # groups of 3: the corruption jobs and test.shared's (the failed one is not cached)
    assert sum(i.get("group", {}).get("jobs") == 3 for i in infos) == 5

    # one more variant: its evaluations run (alone), the others' are cached; the failed one is retried
    _SEEN.clear()
    s2 = run(
        _exp(
            tmp_path,
            [*two, {"method": "prune.unstructured", "params": {"finetune": {"epochs": 0}}, "budget": {"params": 0.75}}],
        ),
        progress=False,
    )
    assert (s2.jobs, s2.cached, s2.failed) == (12, 8, 1)
    assert _SEEN == [["boom", "prune.unstructured@params=0.75"]]
    rows2 = ResultStore(tmp_path / "r.sqlite").rows("g")
    corr2 = {r["variant"]: r["value"] for r in rows2 if r["evaluator"] == "corruptions" and r["metric"] == "top1"}
    assert {k: corr2[k] for k in corr} == corr and "prune.unstructured@params=0.75" in corr2


def test_a_group_gives_the_rows_of_jobs_run_one_by_one(tmp_path, monkeypatch):
    """The same experiment with grouping switched off in the local executor: identical stored values."""
    from compressbench.execute.local import _InProcess

    variants = [
        {"method": "prune.unstructured", "params": {"finetune": {"epochs": 0}}, "budget": {"params": 0.5}},
        {"method": "quantize.dynamic"},
    ]
    evals = [
        {
            "evaluator": "corruptions",
            "params": {"corruptions": ["contrast", "gaussian_noise"], "severities": [1, 4], "batch_size": 50},
        },
        {
            "evaluator": "adversarial",
            "params": {
                "subset": 40,
                "batch_size": 20,
                "modes": ["auto-transfer"],
                "attacks": [{"name": "fgsm", "eps": [0.0, 0.05]}],
            },
        },
    ]

    def values(folder):
        exp = validate(
            {
                "name": "v",
                "seeds": [0],
                "dataset": {"name": "digits", "eval_subset": 120},
                "model": {"name": "tinycnn"},
                "train": {"epochs": 2, "batch_size": 64, "lr": 0.2, "augment": "none"},
                "variants": variants,
                "evaluations": evals,
                "cache_dir": str(folder / "cache"),
                "store": str(folder / "r.sqlite"),
            }
        )
        assert run(exp, progress=False).failed == 0
        return {
            (r["variant"], r["evaluator"], r["condition"], r["metric"]): r["value"]
            for r in ResultStore(folder / "r.sqlite").rows("v")
            if r["evaluator"] != "train"
        }  # no timings

    grouped = values(tmp_path / "a")
    monkeypatch.delattr(_InProcess, "start_group")
    alone = values(tmp_path / "b")
    assert grouped == alone and len(grouped) > 50
