"""End-to-end: plan -> cached jobs -> store, on digits with the tiny CNN."""

import pytest
import torch
from torch import nn

from compressbench.interfaces import CompressResult, Measurement, Params
from compressbench.jobs import dump_params
from compressbench.registry import evaluators, methods
from compressbench.runner import run
from compressbench.specs import Knob
from compressbench.store import ResultStore
from compressbench.validate import validate


class HalfParams(Params):
    scale: float = 0.5


def _halve(parent: nn.Module, ctx, sol, params: HalfParams) -> CompressResult:
    """Test compressor: zero the smaller half of the last layer's weights (no architecture change)."""
    m = sol.model  # the solver's copy of the parent
    w = m.net[-1].weight.data
    w[w.abs() < w.abs().median()] = 0
    acc = ctx.accuracy(m)
    return CompressResult(m, record={"knob": params.scale, "acc_after": acc})


def _boom(model, ctx, params):
    raise RuntimeError("evaluator exploded")


def _parent_agree(model, ctx, params):
    parent = ctx.load_parent()
    x, _, _ = next(ctx.eval_set().batches(64))
    same = (parent(x).argmax(1) == model(x).argmax(1)).float().mean()
    return [Measurement("agree", float(same)), Measurement("is_baseline", float(ctx.variant.method == "baseline"))]


@pytest.fixture(scope="module", autouse=True)
def _register():
    methods.register(
        "test.halve",
        _halve,
        params=HalfParams,
        budgets=("knob",),
        description="test",
        knob=Knob("scale", lo=0.0, hi=1.0, shrinks=True, default=lambda p: p.scale),
        apply=lambda model, knob, ctx, params: model,
    )
    evaluators.register("test.boom", _boom, description="test")
    evaluators.register("test.agree", _parent_agree, description="test")
    yield
    methods.unregister("test.halve")  # registries are global: leave them as found
    evaluators.unregister("test.boom")
    evaluators.unregister("test.agree")


def _exp(tmp_path, **over):
    raw = {
        "name": "t",
        "seeds": [0],
        "dataset": {"name": "digits", "eval_subset": 200},
        "model": {"name": "tinycnn"},
        "train": {"epochs": 4, "batch_size": 64, "lr": 0.2, "augment": "none"},
        "variants": [{"method": "test.halve", "budget": {"knob": 0.5}}],
        "evaluations": [{"evaluator": "clean"}, {"evaluator": "test.agree"}],
        "cache_dir": str(tmp_path / "cache"),
        "store": str(tmp_path / "r.sqlite"),
    }
    raw.update(over)
    return validate(raw)


def test_run_then_cached_then_partial(tmp_path):
    exp = _exp(tmp_path)
    s1 = run(exp, progress=False)
    assert (s1.jobs, s1.ran, s1.cached, s1.failed) == (6, 6, 0, 0)
    store = ResultStore(exp.store_path)
    rows = store.rows("t")
    n1 = len(rows)
    top1 = {r["variant"]: r["value"] for r in rows if r["evaluator"] == "clean" and r["metric"] == "top1"}
    assert set(top1) == {"baseline", "test.halve@knob=0.5"}
    assert 0.3 < top1["baseline"] <= 1.0
    agree = {r["variant"]: r["value"] for r in rows if r["metric"] == "agree"}
    assert agree["baseline"] == 1.0  # the parent agrees with itself
    # budget columns carried on every row of the variant
    v = [r for r in rows if r["variant"] == "test.halve@knob=0.5"]
    assert all(r["budget_kind"] == "knob" and r["budget_target"] == 0.5 and r["budget_achieved"] == 0.5 for r in v)
    # provenance
    run_row = store.runs()[0]
    assert run_row["versions_json"]["torch"] == torch.__version__.split("+")[0] or run_row["versions_json"]["torch"]
    assert run_row["config_json"]["name"] == "t"

    s2 = run(exp, progress=False)  # nothing re-runs, nothing duplicated
    assert (s2.ran, s2.cached) == (0, 6)
    assert len(store.rows("t")) == n1

    # change one evaluator's params -> only that job re-runs
    exp3 = _exp(
        tmp_path, evaluations=[{"evaluator": "clean", "params": {"per_class": False}}, {"evaluator": "test.agree"}]
    )
    s3 = run(exp3, progress=False)
    assert (s3.ran, s3.cached) == (2, 4)  # clean on baseline and on the variant


def test_renaming_a_variant_reruns_nothing(tmp_path):
    run(_exp(tmp_path), progress=False)
    exp = _exp(tmp_path, variants=[{"method": "test.halve", "name": "renamed", "budget": {"knob": 0.5}}])
    s = run(exp, progress=False)
    assert s.ran == 0
    names = {r["variant"] for r in ResultStore(exp.store_path).rows("t")}
    assert "renamed" in names


def test_failed_job_is_a_row_and_sweep_goes_on(tmp_path):
    exp = _exp(tmp_path, evaluations=[{"evaluator": "test.boom"}, {"evaluator": "clean"}])
    s = run(exp, progress=False)
    assert s.failed == 2 and s.ran == 4  # train, compress, 2 × clean
    errs = [r for r in ResultStore(exp.store_path).rows("t") if r["metric"] == "error"]
    assert len(errs) == 2 and all("evaluator exploded" in r["error"] and r["value"] is None for r in errs)
    # the failure was not cached: it is retried next time
    s2 = run(exp, progress=False)
    assert s2.failed == 2 and s2.cached == 4


def test_seeds_give_separate_runs(tmp_path):
    exp = _exp(tmp_path, seeds=[0, 1], variants=[], evaluations=[{"evaluator": "clean"}])
    s = run(exp, progress=False)
    assert s.jobs == 4
    top1 = [r for r in ResultStore(exp.store_path).rows("t") if r["metric"] == "top1"]
    assert sorted(r["seed"] for r in top1) == [0, 1]
    assert top1[0]["value"] != top1[1]["value"] or True  # different seeds may coincide; rows exist


def test_checkpoints_reload_weights_only(tmp_path):
    from compressbench.checkpoint import load_model

    exp = _exp(tmp_path, variants=[], evaluations=[{"evaluator": "clean"}])
    run(exp, progress=False)
    ckpts = list((tmp_path / "cache").rglob("model.pt"))
    assert len(ckpts) == 1
    torch.load(ckpts[0], weights_only=True)  # no pickled code
    model, ck = load_model(ckpts[0])
    assert ck["spec"]["model"] == "tinycnn"
    assert model(torch.rand(2, 1, 16, 16)).shape == (2, 10)


def test_evaluation_key_covers_the_corruption_versions(tmp_path):
    """A changed corruption (new version) re-keys the evaluations that use it, for every model;
    the other evaluations keep their keys."""
    from compressbench.plan import plan
    from compressbench.registry import corruptions

    raw = {
        "evaluations": [
            {"evaluator": "clean"},
            {"evaluator": "corruptions", "params": {"corruptions": ["fog", "gaussian_noise"]}},
            {"evaluator": "corruptions", "params": {"corruptions": ["contrast"]}},
        ]
    }
    keys = lambda: {
        (j.labels.evaluator, j.labels.variant, str(dump_params(j.spec.params))): j.key  # noqa: E731
        for j in plan(_exp(tmp_path, **raw))
        if j.kind == "evaluate"
    }
    before = keys()
    import dataclasses

    entry = corruptions.entry("fog")
    old = entry.spec
    entry.spec = dataclasses.replace(old, version=old.version + 100)
    try:
        after = keys()
    finally:
        entry.spec = old
    changed = {k for k in before if before[k] != after[k]}
    assert changed and all(k[0] == "corruptions" and "fog" in k[2] for k in changed)
    assert len(changed) == 2  # baseline and the compressed variant
    assert keys() == before


def test_an_experiment_is_resolved_and_validated_once_per_run(tmp_path, monkeypatch):
    """Spies around the real functions count the calls: loading a config resolves its variants and its
    evaluations once and validates it (builds the parent: ``check_parent``) once; the run — plan, executor,
    every job — uses that resolved experiment and never resolves or validates again."""
    import yaml

    import compressbench.config.resolve as resolve_mod
    import compressbench.validate as validate_mod
    from compressbench.validate import load_config

    calls: dict[str, int] = {}

    def spy(owner, name: str) -> None:
        real = getattr(owner, name)

        def counted(*a, **k):
            calls[name] = calls.get(name, 0) + 1
            return real(*a, **k)

        monkeypatch.setattr(owner, name, counted)

    for owner, name in (
        (resolve_mod, "resolve_variants"),
        (resolve_mod, "resolve_evaluations"),
        (validate_mod, "check_parent"),
    ):
        spy(owner, name)
    raw = {
        "name": "t",
        "seeds": [0, 1],
        "dataset": {"name": "digits", "eval_subset": 100},
        "model": {"name": "tinycnn"},
        "train": {"epochs": 1, "batch_size": 64, "lr": 0.2, "augment": "none"},
        "variants": [{"method": "test.halve", "budgets": {"knob": [0.5, 0.25]}}],
        "evaluations": [{"evaluator": "clean"}, {"evaluator": "test.agree"}],
        "cache_dir": str(tmp_path / "cache"),
        "store": str(tmp_path / "r.sqlite"),
    }
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    exp = load_config(cfg)
    assert calls == {"resolve_variants": 1, "resolve_evaluations": 1, "check_parent": 1}
    s = run(exp, progress=False)
    assert (s.jobs, s.ran, s.failed) == (18, 18, 0)  # 2 seeds × (train, 2 × compress, 3 models × 2 evaluations)
    assert calls == {"resolve_variants": 1, "resolve_evaluations": 1, "check_parent": 1}
    calls.clear()
    s = run(cfg, progress=False)  # a path: loaded (once) inside run
    assert s.cached == 18 and calls == {"resolve_variants": 1, "resolve_evaluations": 1, "check_parent": 1}


def test_a_new_process_resolves_the_config_once_and_checks_the_fingerprint(tmp_path):
    """What a Ray worker does with the job function, in this process with its cache emptied: it resolves the
    config JSON once (same fingerprint as the driver's) and keeps it; a job function whose fingerprint is not
    what this process resolves (another plug-in version on a node) fails in one line."""
    from compressbench import runner

    exp = _exp(tmp_path)
    fn = runner.JobRunner.for_experiment(exp, tmp_path / "cache", False)
    assert runner._RESOLVED[exp.fingerprint] is exp  # the driver never resolves again
    runner._RESOLVED.clear()  # as in a fresh worker process
    again = fn.experiment()
    assert again is not exp and again.fingerprint == exp.fingerprint and fn.experiment() is again
    assert [v.name for v in again.variants] == [v.name for v in exp.variants]
    other = runner.JobRunner(fn.config, fn.plugins, "0" * 64, fn.cache, False)
    with pytest.raises(runner.FingerprintError, match="resolves the experiment differently from the driver"):
        other.experiment()
