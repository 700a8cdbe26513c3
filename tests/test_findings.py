"""Declared findings on hand-built stores: the paired difference and its interval over seeds, the one-seed
image bootstrap from outcomes files, trends, each variant vs the parent, Holm across a file's findings,
verdicts rendered (holds / contradicted / inconclusive), and validate rejecting what the file does not produce."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from compressbench.cli import main
from compressbench.execute.cache import artifact_manifest
from compressbench.findings import evaluate_store, frame, print_console, to_html, to_markdown
from compressbench.outcomes import OutcomeRecorder
from compressbench.stats import holm, paired_difference, t_estimate, trend_weights
from compressbench.store import ResultStore

EXP = "hand"


def _store(
    tmp_path,
    values: dict[str, list[float]],
    findings: list[dict],
    entries: list[dict] | None = None,
    bits: dict[tuple[str, int], np.ndarray] | None = None,
    evaluator: str = "clean",
    metric: str = "top1",
):
    """A store with one row per (variant, seed) of ``evaluator.metric`` (the clean top-1 by default), the run's
    config declaring ``findings``; ``bits``: per-image outcomes written as the evaluators write them."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "hand.sqlite"
    st = ResultStore(path)
    entries = (
        entries
        if entries is not None
        else [{"name": v, "method": "prune.unstructured"} for v in values if v != "baseline"]
    )
    cfg = {"name": EXP, "variants": entries, "findings": findings, "cache_dir": str(tmp_path / "cache")}
    st.add_run("r1", EXP, "2025-01-01T00:00:00", cfg, None, {}, "cpu", {})
    for v, vals in values.items():
        for seed, x in enumerate(vals):
            key = f"{v}-{seed}".replace("@", "_").replace("=", "_")
            budget = v.split("@")[1].split("=") if "@" in v else (None, None)
            row = {
                "experiment": EXP,
                "variant": v,
                "method": "baseline" if v == "baseline" else "prune.unstructured",
                "budget_kind": budget[0],
                "budget_target": float(budget[1]) if budget[1] else None,
                "seed": seed,
                "evaluator": evaluator,
                "metric": metric,
                "value": x,
                "condition": {},
                "job_key": key,
                "run_id": "r1",
            }
            arts = []
            if bits and (v, seed) in bits:
                rec = OutcomeRecorder()
                b = bits[(v, seed)]
                rec.mean(metric, x, {}, rec.image_set("test", np.arange(len(b))), b)
                folder = tmp_path / "cache" / "jobs" / key
                f = rec.save(folder)
                (folder / "result.json").write_text(
                    json.dumps({"measurements": [], "files": artifact_manifest(folder)})
                )
                arts = [{"job_key": key, "experiment": EXP, "variant": v, "seed": seed, "name": f.name, "path": f}]
            st.add_job([row], arts)
    return path


A, B = [0.80, 0.82, 0.81], [0.75, 0.78, 0.74]  # a − b = 0.05, 0.04, 0.07


def test_known_difference_and_interval_over_seeds(tmp_path):
    path = _store(
        tmp_path,
        {"baseline": [0.9] * 3, "a": A, "b": B},
        [{"claim": "a beats b", "compare": {"a": "a", "b": "b"}, "metric": "clean_top1", "expect": "a > b"}],
    )
    (res,) = evaluate_store(path)
    (t,) = res.tests
    want = paired_difference(A, B)
    assert t.estimate.method == "seeds" and t.estimate.n_seeds == 3
    assert (t.estimate.mean, t.estimate.lo, t.estimate.hi) == pytest.approx((want.mean, want.lo, want.hi))
    assert t.estimate.mean == pytest.approx(0.0533333, abs=1e-6) and t.estimate.lo > 0
    assert t.p == pytest.approx(0.0263, abs=5e-4)  # two-sided one-sample t-test, t = 6.05 with 2 d.o.f.
    assert t.p_holm == t.p and t.verdict == "holds"
    row = frame([res]).iloc[0]
    assert row["verdict"] == "holds" and row["n_seeds"] == 3 and row["method"] == "seeds"


def test_contradicted_and_inconclusive_rendered_with_holm(tmp_path, capsys):
    a, c = [0.90, 0.94, 0.88], [0.80, 0.74, 0.79]  # a − b = 0.15, 0.16, 0.14; c − b = 0.05, −0.04, 0.05
    path = _store(
        tmp_path,
        {"baseline": [0.9] * 3, "a": a, "b": B, "c": c},
        [
            {"claim": "b beats a", "compare": {"a": "a", "b": "b"}, "metric": "clean_top1", "expect": "a < b"},
            {
                "claim": "c beats b",
                "compare": {"a": "c", "b": "b"},
                "metric": "clean_top1",
                "expect": "a > b",
                "id": "noisy",
            },
        ],
    )
    (res,) = evaluate_store(path)
    contra, noisy = res.tests
    assert contra.verdict == "contradicted" and contra.estimate.mean > 0
    assert noisy.verdict == "inconclusive" and noisy.fid == "noisy" and "not significant" in noisy.reason
    assert [contra.p_holm, noisy.p_holm] == pytest.approx(list(holm([contra.p, noisy.p])))
    md, html = to_markdown([res]), to_html([res])
    assert "**contradicted**" in md and "**inconclusive**" in md and "F1 CONTRADICTED: b beats a" in md
    assert 'data-verdict="contradicted"' in html and 'data-verdict="inconclusive"' in html
    print_console([res])
    out = capsys.readouterr().out
    assert "F1 CONTRADICTED" in out and "noisy INCONCLUSIVE" in out and "3 seeds (t)" in out


def test_holm_across_the_files_findings_changes_a_verdict(tmp_path):
    # alone, "a > b" holds at p = 0.026; with a second, null comparison in the file, Holm doubles it: inconclusive
    one = [{"claim": "a beats b", "compare": {"a": "a", "b": "b"}, "metric": "clean_top1", "expect": "a > b"}]
    two = one + [{"claim": "b ≈ b2", "compare": {"a": "b2", "b": "b"}, "metric": "clean_top1", "expect": "a > b"}]
    vals = {"baseline": [0.9] * 3, "a": A, "b": B, "b2": [0.76, 0.77, 0.75]}
    (single,) = evaluate_store(_store(tmp_path / "1", vals, one))
    (double,) = evaluate_store(_store(tmp_path / "2", vals, two))
    assert single.tests[0].verdict == "holds"
    assert double.tests[0].p == pytest.approx(single.tests[0].p)
    assert double.tests[0].p_holm == pytest.approx(min(1.0, 2 * single.tests[0].p))
    assert double.tests[0].verdict == "inconclusive" and "after Holm over 2 tests" in double.tests[0].reason


def _bits(n: int, correct: int, rng: np.random.Generator) -> np.ndarray:
    b = np.zeros(n, dtype=bool)
    b[rng.choice(n, correct, replace=False)] = True
    return b


def test_one_seed_uses_the_paired_image_bootstrap(tmp_path):
    rng = np.random.default_rng(0)
    b = _bits(300, 210, rng)  # 70 %
    a = b.copy()
    a[np.flatnonzero(~b)[:30]] = True  # right on 30 more images: +10 points, paired
    base = b | a
    bits = {("a", 0): a, ("b", 0): b, ("baseline", 0): base}
    vals = {k[0]: [float(v.mean())] for k, v in bits.items()}
    finding = [{"claim": "a beats b", "compare": {"a": "a", "b": "b"}, "metric": "clean_top1", "expect": "a > b"}]
    (res,) = evaluate_store(_store(tmp_path, vals, finding, bits=bits), n_boot=1000)
    (t,) = res.tests
    e = t.estimate
    assert e.method == "bootstrap" and e.n_seeds == 1 and e.n_images == 300
    assert e.mean == pytest.approx(0.10)
    se = math.sqrt(0.1 * 0.9 / 300)  # per-image differences: 1 on 30 of 300 images
    assert e.lo == pytest.approx(0.10 - 1.96 * se, abs=0.012) and e.hi == pytest.approx(0.10 + 1.96 * se, abs=0.012)
    assert t.verdict == "holds" and "choice of test images" in "; ".join(t.notes)
    assert "1 seed, 300 images (paired bootstrap)" in to_markdown([res])


def test_one_seed_without_outcomes_is_never_holds(tmp_path):
    finding = [{"claim": "a beats b", "compare": {"a": "a", "b": "b"}, "metric": "clean_top1", "expect": "a > b"}]
    (res,) = evaluate_store(_store(tmp_path, {"baseline": [0.9], "a": [0.95], "b": [0.5]}, finding))
    (t,) = res.tests
    assert t.verdict == "inconclusive" and t.estimate.method == "none" and t.estimate.mean == pytest.approx(0.45)
    assert t.reason.startswith("1 seed and no image-level test: no per-image outcomes")


def test_damaged_outcomes_file_is_not_used(tmp_path):
    rng = np.random.default_rng(1)
    a, b = _bits(100, 90, rng), _bits(100, 50, rng)
    bits = {("a", 0): a, ("b", 0): b, ("baseline", 0): a}
    finding = [{"claim": "a beats b", "compare": {"a": "a", "b": "b"}, "metric": "clean_top1", "expect": "a > b"}]
    path = _store(tmp_path, {k[0]: [float(v.mean())] for k, v in bits.items()}, finding, bits=bits)
    f = tmp_path / "cache" / "jobs" / "a-0" / "outcomes.npz"
    f.write_bytes(f.read_bytes()[:-1] + bytes([f.read_bytes()[-1] ^ 1]))  # one bit flipped on disk
    (res,) = evaluate_store(path, n_boot=200)
    assert res.tests[0].verdict == "inconclusive" and "no image-level test" in res.tests[0].reason


def test_trend_over_budgets_and_each_variant_vs_parent(tmp_path):
    vals = {
        "baseline": [0.90, 0.91, 0.89],
        "p@params=0.5": [0.88, 0.90, 0.87],
        "p@params=0.25": [0.84, 0.85, 0.84],
        "p@params=0.1": [0.70, 0.74, 0.71],
    }
    entries = [{"name": "p", "method": "prune.unstructured", "budgets": {"params": [0.5, 0.25, 0.1]}}]
    findings = [
        {
            "claim": "falls with compression",
            "trend": "p",
            "parent": True,
            "metric": "clean_top1",
            "expect": "decreases",
        },
        {"claim": "every variant loses", "vs_parent": "all", "metric": "clean_top1", "expect": "a < b"},
    ]
    (res,) = evaluate_store(_store(tmp_path, vals, findings, entries))
    trend, *each = res.tests
    order = ["baseline", "p@params=0.5", "p@params=0.25", "p@params=0.1"]  # least compressed first
    slopes = np.array([vals[v] for v in order]).T @ trend_weights(4)
    want = t_estimate(slopes)
    assert (trend.estimate.mean, trend.estimate.lo, trend.estimate.hi) == pytest.approx((want.mean, want.lo, want.hi))
    assert trend.verdict == "holds" and trend.estimate.mean < 0 and "4 points" in trend.subject
    assert [t.subject for t in each] == [f"{v} − parent" for v in order[1:]] and len(res.tests) == 4


# ---------------------------------------------------------------- validate
CFG = {
    "name": "fv",
    "dataset": {"name": "digits"},
    "model": {"name": "tinycnn"},
    "train": {"epochs": 1},
    "variants": [{"method": "prune.unstructured", "budgets": {"params": [0.5, 0.25]}}],
    "evaluations": [{"evaluator": "clean"}],
}


@pytest.mark.parametrize(
    "finding, start",
    [
        (
            {
                "claim": "x",
                "compare": {"a": "prune.unstructured@params=0.5", "b": "prune.unstructured@params=0.3"},
                "metric": "clean_top1",
                "expect": "a > b",
            },
            "error: findings[0].compare.b: unknown variant 'prune.unstructured@params=0.3'",
        ),
        (
            {"claim": "x", "vs_parent": ["prune.unstructured@params=0.5"], "metric": "robust_top1", "expect": "a < b"},
            "error: findings[0].metric: 'robust_top1' is not a metric this experiment produces",
        ),
        (
            {"claim": "x", "trend": "prune.structured", "metric": "clean_top1", "expect": "decreases"},
            "error: findings[0].trend: 'prune.structured' names no budgets list",
        ),
        (
            {
                "claim": "x",
                "compare": {"a": "baseline", "b": "prune.unstructured@params=0.5"},
                "metric": {"evaluator": "corruptions", "metric": "top1"},
                "expect": "a > b",
            },
            "error: findings[0].metric.evaluator: 'corruptions' is not among this experiment's evaluations",
        ),
    ],
)
def test_validate_rejects_what_the_file_does_not_produce(tmp_path, capsys, finding, start):
    p = tmp_path / "f.yaml"
    p.write_text(yaml.safe_dump({**CFG, "findings": [finding]}))
    rc, err = main(["validate", str(p)]), capsys.readouterr().err
    assert rc == 2 and err.startswith(start) and err.count("\n") == 1, err


def test_validate_accepts_the_three_forms(tmp_path, capsys):
    p = tmp_path / "f.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                **CFG,
                "findings": [
                    {
                        "claim": "c",
                        "compare": {"a": "prune.unstructured@params=0.5", "b": "prune.unstructured@params=0.25"},
                        "metric": "clean_top1",
                        "expect": "a>b",
                    },
                    {
                        "claim": "t",
                        "trend": "prune.unstructured",
                        "parent": True,
                        "metric": "clean_top1",
                        "expect": "decreases",
                    },
                    {
                        "claim": "v",
                        "vs_parent": "all",
                        "metric": {"evaluator": "clean", "metric": "top1", "where": {}},
                        "expect": "a ≈ b",
                        "margin": 0.01,
                    },
                ],
            }
        )
    )
    assert main(["validate", str(p)]) == 0, capsys.readouterr().err


def test_the_coral_statement_comes_from_declared_findings():
    """docs/domain_shift.md's "did CORAL help?" is the verdict of findings the demo declares: every CORAL
    variant against its source-only twin on the target domain."""
    from pathlib import Path

    from compressbench.validate import load_config

    root = Path(__file__).parents[1]
    exp = load_config(root / "configs" / "digits_domain_shift.yaml")
    coral = {v.name for v in exp.variants if "coral" in v.name and "control" not in v.name}
    tested = {f.compare.a for f in exp.findings if f.compare and f.metric == "target_top1" and f.expect == "a > b"}
    assert coral == tested
    assert "compressbench findings" in (root / "docs" / "domain_shift.md").read_text()


def test_findings_command(tmp_path, capsys):
    path = _store(
        tmp_path,
        {"baseline": [0.9] * 3, "a": A, "b": B},
        [{"claim": "a beats b", "compare": {"a": "a", "b": "b"}, "metric": "clean_top1", "expect": "a > b"}],
    )
    assert main(["findings", str(path), "--csv", str(tmp_path / "f.csv"), "--md", str(tmp_path / "f.md")]) == 0
    out = capsys.readouterr().out
    assert "F1 HOLDS: a beats b" in out and "3 seeds (t)" in out
    assert "holds" in (tmp_path / "f.csv").read_text() and "**holds**" in (tmp_path / "f.md").read_text()
    for bad, msg in (
        (["--confidence", "2"], "--confidence"),
        (["--bootstrap", "5"], "--bootstrap"),
        (["--main-eps", "x"], "--main-eps"),
        (["--scale", "smoke"], "--config"),
        (["-e", "nope"], "experiment 'nope' not in"),
    ):
        assert main(["findings", str(path), *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and msg in err and err.count("\n") == 1, err
