"""The report from a synthetic store: table numbers, seed CIs, every figure, missing evaluators, CLI."""

from __future__ import annotations

import argparse
import math
import re

import pandas as pd
import pytest
from scipy import stats

from compressbench.report import (
    ReportOptions,
    add_report_arguments,
    all_tables,
    build_report,
    report_command,
    summary_table,
)
from compressbench.report.data import load_experiment, to_float
from compressbench.report.plots import pareto_front
from compressbench.report.stats import mean_ci
from compressbench.store import ResultStore
from synthetic_store import CLEAN, CORRUPTIONS, EXPERIMENT, SEED_OFFSETS, SEVERITIES, corruption_top1, make_store

T95_2 = float(stats.t.ppf(0.975, 2))  # 4.3027
CI3 = T95_2 * 0.01 / math.sqrt(3)  # offsets -0.01, 0, 0.01: s = 0.01
U25 = "prune.unstructured@params=0.25"

EXPECTED_FIGURES = {
    "acc_vs_budget_params",
    "acc_vs_budget_params_corruptions",
    "bars_corruptions",
    "acc_vs_severity",
    "retention_heatmap",
    "pareto_latency",
    "pareto_bytes",
    "robust_vs_eps_linf",
    "robust_vs_eps_l2",
    "calibration_ece",
}


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    d = tmp_path_factory.mktemp("full")
    make_store(d / "s.db", artifacts_dir=d / "art")
    return d


def test_mean_ci_matches_scipy():
    xs = [0.81, 0.84, 0.79, 0.83]
    e = mean_ci(xs)
    lo, hi = stats.t.interval(0.95, len(xs) - 1, loc=sum(xs) / 4, scale=stats.sem(xs))
    assert e.mean == pytest.approx(sum(xs) / 4) and e.n == 4
    assert e.low == pytest.approx(lo) and e.high == pytest.approx(hi)
    one = mean_ci([0.5])
    assert one.mean == 0.5 and math.isnan(one.ci) and one.n == 1
    assert mean_ci([]).n == 0 and math.isnan(mean_ci([float("nan")]).mean)


def test_helpers():
    assert to_float("8/255") == pytest.approx(8 / 255) and to_float(0.5) == 0.5 and math.isnan(to_float("x"))
    assert pareto_front([(1, 80), (2, 90), (3, 85), (0.5, 70), (2, 70)]) == [(0.5, 70), (1, 80), (2, 90)]


def test_summary_numbers(full):
    data = load_experiment(ResultStore(full / "s.db"), EXPERIMENT)
    assert data.seeds == [0, 1, 2] and data.variant_order[0] == "baseline"
    t = summary_table(data)
    m, ci = t.mean, t.ci
    for v, acc in CLEAN.items():
        assert m.at[v, "clean_top1"] == pytest.approx(acc)
        assert ci.at[v, "clean_top1"] == pytest.approx(CI3)
    # mean corruption accuracy and retention
    exp_corr = sum(corruption_top1(U25, c, s, 0.0) for c in CORRUPTIONS for s in SEVERITIES) / 9
    assert m.at[U25, "corr_top1"] == pytest.approx(exp_corr)
    ret = [
        sum(corruption_top1(U25, c, s, o) for c in CORRUPTIONS for s in SEVERITIES) / 9 / (CLEAN[U25] + o)
        for o in SEED_OFFSETS
    ]
    assert m.at[U25, "retention"] == pytest.approx(sum(ret) / 3)
    # CE and relative CE vs the baseline (ImageNet-C formulas), seed 0 offsets cancel per seed
    ces, rces = [], []
    for o in SEED_OFFSETS:
        ce_c, rce_c = [], []
        for c in CORRUPTIONS:
            ev = sum(1 - corruption_top1(U25, c, s, o) for s in SEVERITIES)
            eb = sum(1 - corruption_top1("baseline", c, s, o) for s in SEVERITIES)
            ce_c.append(ev / eb)
            rv = sum((1 - corruption_top1(U25, c, s, o)) - (1 - CLEAN[U25] - o) for s in SEVERITIES)
            rb = sum((1 - corruption_top1("baseline", c, s, o)) - (1 - CLEAN["baseline"] - o) for s in SEVERITIES)
            rce_c.append(rv / rb)
        ces.append(sum(ce_c) / 3)
        rces.append(sum(rce_c) / 3)
    assert m.at[U25, "mce"] == pytest.approx(sum(ces) / 3)
    assert m.at[U25, "rel_mce"] == pytest.approx(sum(rces) / 3)
    assert m.at["baseline", "mce"] == pytest.approx(1.0) and m.at["baseline", "rel_mce"] == pytest.approx(1.0)
    # robust accuracy: worst white-box attack (pgd < fgsm) at 8/255; the transfer row is ignored
    assert m.at["baseline", "robust_top1"] == pytest.approx(0.90 - 0.8 - 0.01)  # pgd with 20 steps is the worst
    assert "8/255" in next(c.label for c in t.columns if c.key == "robust_top1")
    # efficiency: compression % vs the baseline's dense bytes; realised latency
    assert m.at[U25, "compression_pct"] == pytest.approx(100 * (1 - 0.251 * 0.95))
    assert m.at["baseline", "latency_b1_ms"] == pytest.approx(1.01)
    assert math.isnan(m.at[U25, "latency_b1_ms"])  # its timing is tagged simulated: not shown as realised
    q = "quantize.dynamic@knob=8"  # different runtime (int8) still under the same threads/batch protocol
    assert m.at[q, "latency_b1_ms"] == pytest.approx(0.51)
    assert m.at[q, "onnx_latency_b1_ms"] == pytest.approx(0.51 * 0.3)  # fastest ONNX dtype
    assert m.at[U25, "bytes_compressed"] == pytest.approx(140_000 * 4 * 0.251 * 0.95)
    assert m.at["quantize.dynamic@knob=8", "gflops"] == pytest.approx(24.0)  # MFLOPs for a tiny model
    assert "MFLOPs (eff.)" in t.header()
    assert m.at[U25, "disagreement"] == pytest.approx(0.11)
    assert t.text.at[U25, "budget"] == "params=0.25" and t.text.at[U25, "achieved"] == "0.251"
    # formatted cells
    assert t.cell("baseline", "clean_top1") == f"90.00 ± {100 * CI3:.2f}"


def test_main_eps_option(full):
    data = load_experiment(ResultStore(full / "s.db"), EXPERIMENT)
    t = summary_table(data, ReportOptions(main_eps=5 / 255))  # largest stored eps <= 5/255 is 4/255
    assert t.mean.at["baseline", "robust_top1"] == pytest.approx(0.90 - 0.4)
    assert "4/255" in next(c.label for c in t.columns if c.key == "robust_top1")


def test_build_report_files(full):
    out = full / "out"
    html = build_report(full / "s.db", out)
    assert html == out / "report.html"
    exp = out / EXPERIMENT
    for name in ("summary", "corruptions", "robustness", "calibration"):
        for ext in ("csv", "md", "tex"):
            assert (exp / f"{name}.{ext}").stat().st_size > 100, (name, ext)
    figs = {p.stem for p in (exp / "figures").glob("*.png")}
    assert EXPECTED_FIGURES <= figs
    assert {p.stem for p in (exp / "figures").glob("*.svg")} == figs
    csv = pd.read_csv(exp / "summary.csv")
    row = csv.set_index("variant").loc["baseline"]
    assert row["clean_top1"] == pytest.approx(0.9) and row["clean_top1_ci95"] == pytest.approx(CI3)
    assert row["clean_top1_n"] == 3
    md = (exp / "summary.md").read_text()
    assert "3 seeds (0, 1, 2): mean ± 95 % CI" in md and md.count("\n| ") >= 6
    tex = (exp / "summary.tex").read_text()
    assert r"\begin{tabular}" in tex and r"$\pm$" in tex and r"prune.unstructured@params=0.25" in tex
    page = html.read_text().replace("<wbr>", "")  # names may wrap at <wbr>
    assert "http://" not in page and "https://" not in page  # self-contained
    assert page.count("data:image/png;base64,") >= len(EXPECTED_FIGURES) + 2  # figures + gallery + disagreed
    assert "gallery.png" in page and "disagreed.png" in page and "synthetic: true" in page
    assert "Failed checks" in page and "check_stronger_not_weaker" in page  # distill's failed self-check
    rob = (exp / "robustness.md").read_text()
    assert "pgd-20 linf ε=8/255" in rob and "pgd-10 linf ε=8/255" in rob and "(transfer)" in rob
    for v in CLEAN:
        assert v in page


def test_formats_and_errors(full, tmp_path):
    p = build_report(full / "s.db", tmp_path / "o", formats=["csv"])
    assert p == tmp_path / "o" and (p / EXPERIMENT / "summary.csv").exists()
    assert not list(p.rglob("*.png")) and not (p / "report.html").exists()
    with pytest.raises(ValueError, match="unknown report format"):
        build_report(full / "s.db", tmp_path / "x", formats=["pdf"])
    with pytest.raises(ValueError, match="experiment 'nope' not in"):
        build_report(full / "s.db", tmp_path / "x", experiment="nope")
    with pytest.raises(FileNotFoundError, match="no results store"):
        build_report(tmp_path / "missing.db", tmp_path / "x")


def test_one_seed_says_so(tmp_path):
    make_store(tmp_path / "s.db", seeds=[0])
    html = build_report(tmp_path / "s.db", tmp_path / "out", formats=("html", "csv", "md"))
    assert "1 seed: no confidence interval" in html.read_text()
    csv = pd.read_csv(tmp_path / "out" / EXPERIMENT / "summary.csv")
    assert csv["clean_top1_ci95"].isna().all()
    assert "±" not in (tmp_path / "out" / EXPERIMENT / "summary.md").read_text().split("- 1 seed")[0]


@pytest.mark.parametrize(
    "evaluators",
    [
        ("clean",),
        ("compress", "clean"),
        ("compress", "efficiency"),
        ("corruptions",),
        ("adversarial", "agreement"),
        ("calibration",),
    ],
)
def test_missing_evaluators_do_not_break(tmp_path, evaluators):
    make_store(tmp_path / "s.db", seeds=[0, 1], evaluators=evaluators, artifacts_dir=tmp_path / "a")
    html = build_report(tmp_path / "s.db", tmp_path / "out", formats=("html", "csv"))
    text = html.read_text()
    assert "Experiment: synthetic-demo" in text
    data = load_experiment(ResultStore(tmp_path / "s.db"), EXPERIMENT)
    t = all_tables(data)[0]
    keys = {c.key for c in t.columns}
    assert "clean_top1" in keys  # always shown, blank if not measured
    if "clean" not in evaluators:
        assert t.cell("baseline", "clean_top1") == ""
    if "efficiency" not in evaluators:
        assert "latency_b1_ms" not in keys


def test_no_baseline_and_failed_jobs(tmp_path):
    store = make_store(tmp_path / "s.db", seeds=[0], variants=[U25, "distill@params=0.25"])
    store.add_rows(
        [
            {
                "experiment": EXPERIMENT,
                "variant": "distill@params=0.25",
                "method": "distill",
                "seed": 0,
                "evaluator": "adversarial",
                "metric": "error",
                "value": None,
                "error": "RuntimeError: boom",
                "job_key": "failed-job",
            }
        ]
    )
    html = build_report(tmp_path / "s.db", tmp_path / "out", formats=("html",)).read_text()
    assert "Failed jobs" in html and "RuntimeError: boom" in html
    data = load_experiment(store, EXPERIMENT)
    t = summary_table(data)
    assert "mce" not in {c.key for c in t.columns}  # needs a baseline
    assert t.mean.at[U25, "clean_top1"] == pytest.approx(CLEAN[U25] + SEED_OFFSETS[0])


def test_cli(full, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_report_arguments(parser)
    args = parser.parse_args(
        [
            str(full / "s.db"),
            "--out",
            str(tmp_path / "r"),
            "--experiment",
            EXPERIMENT,
            "--formats",
            "html",
            "md",
            "--main-eps",
            "4/255",
        ]
    )
    assert report_command(args) == 0
    assert re.search(r"report written: .*report\.html", capsys.readouterr().out)
    assert "Robust acc. % (linf ε=4/255)" in (tmp_path / "r" / "report.html").read_text()
    assert not list((tmp_path / "r").rglob("*.svg"))


def test_only_failed_jobs(tmp_path):
    s = ResultStore(tmp_path / "s.db")
    s.add_rows(
        [
            {
                "experiment": "x",
                "variant": "baseline",
                "method": "baseline",
                "seed": 0,
                "evaluator": "train",
                "metric": "error",
                "value": None,
                "error": "RuntimeError: out of memory",
                "job_key": "k",
            }
        ]
    )
    html = build_report(tmp_path / "s.db", tmp_path / "out", formats=("html", "md")).read_text()
    assert "RuntimeError: out of memory" in html and "No figure" in html
    md = (tmp_path / "out" / "x" / "summary.md").read_text()
    assert "No successful measurement yet." in md and "| baseline | baseline |" in md


def test_cli_errors_are_one_line(full, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_report_arguments(parser)
    for argv, msg in (
        ([str(full / "s.db"), "--experiment", "nope"], "experiment 'nope' not in"),
        ([str(full / "s.db"), "--main-eps", "abc"], "--main-eps must be"),
        ([str(tmp_path / "none.db")], "no results store"),
    ):
        assert report_command(parser.parse_args(argv + ["--out", str(tmp_path / "o")])) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1


def test_transfer_only_variant_gets_transfer_robustness(tmp_path):
    """An int8 variant attacked only by transfer still shows a robust figure, labelled as transfer."""
    store = ResultStore(tmp_path / "t.db")
    base = {"experiment": "q", "seed": 0, "job_key": "k", "budget_kind": None}
    rows = []
    for v, m in (("baseline", "baseline"), ("quantize.static", "quantize.static")):
        rows.append({**base, "variant": v, "method": m, "evaluator": "clean", "metric": "top1", "value": 0.9})
        modes = ("whitebox",) if v == "baseline" else ("transfer",)
        for mode in modes:
            rows.append(
                {
                    **base,
                    "variant": v,
                    "method": m,
                    "evaluator": "adversarial",
                    "metric": "robust_top1",
                    "value": 0.4 if v == "baseline" else 0.7,
                    "tag": mode,
                    "condition": {"attack": "pgd", "norm": "linf", "eps": 4 / 255, "steps": 5, "mode": mode},
                }
            )
    store.add_rows(rows)
    t = summary_table(load_experiment(store, "q")).to_frame().set_index("variant")
    col = next(c for c in t.columns if c.startswith("robust") and not c.endswith(("_ci95", "_n")))
    assert t.loc["baseline", col] == pytest.approx(0.4 * 100 if t.loc["baseline", col] > 1 else 0.4)
    assert t.loc["quantize.static", col] == pytest.approx(0.7 * 100 if t.loc["quantize.static", col] > 1 else 0.7)
    build_report(tmp_path / "t.db", tmp_path / "out", formats=("md",))
    md = (tmp_path / "out" / "q" / "summary.md").read_text()
    assert "quantize.static: transfer attacks from the float parent" in md


def _console_store(path):
    s = ResultStore(path)
    rows = []
    for v, m, top1, nz, ck, fl in (
        ("baseline", "baseline", 0.9, 1000, 5000, 2.5e6),
        ("q8", "quantize.static", 0.8, 990, 1500, 0.0),
    ):
        base = {"experiment": "c", "variant": v, "method": m, "seed": 0, "job_key": f"{v}/k"}
        rows += [
            {**base, "evaluator": "clean", "metric": "top1", "value": top1},
            {
                **base,
                "evaluator": "corruptions",
                "metric": "mean_top1",
                "value": top1 - 0.2,
                "condition": {"suite": "cifar10-c"},
            },
            {
                **base,
                "evaluator": "corruptions",
                "metric": "mean_top1",
                "value": 0.0,  # a per-severity mean
                "condition": {"suite": "cifar10-c", "severity": 1},
            },
            {**base, "evaluator": "compress", "metric": "params_nonzero", "value": nz, "tag": "realised"},
            {**base, "evaluator": "compress", "metric": "checkpoint_bytes", "value": ck, "tag": "realised"},
            {**base, "evaluator": "compress", "metric": "flops", "value": fl, "tag": "theoretical"},
        ]
    s.add_rows(rows)
    return s


def test_console_summary_from_declarations(tmp_path, capsys):
    from compressbench.cli import _print_summary
    from compressbench.report import console_summary

    store = _console_store(tmp_path / "c.db")
    headers, rows, notes = console_summary(load_experiment(store, "c"))
    assert headers == ["variant", "clean top-1", "corruption top-1", "params (nonzero)", "checkpoint bytes", "MFLOPs"]
    assert rows == [
        ["baseline", "90.00%", "70.00%", "1,000", "5,000", "2.50"],
        ["q8", "80.00%", "60.00%", "990", "1,500", "– (int8)"],
    ]  # 0 FLOPs: int8 kernels not counted
    assert notes and notes[0].startswith("MFLOPs: dense FLOPs")
    _print_summary(tmp_path / "c.db", "c")
    out = capsys.readouterr().out
    assert "c (mean over seeds)" in out and "– (int8)" in out and "MFLOPs: dense FLOPs" in out


def test_declared_hooks_resolve_and_report_names_nothing():
    """Every declared hook imports; no evaluator or metric name appears as a literal in report/ (the
    report reads declarations; budget kinds are another vocabulary)."""
    from pathlib import Path

    import compressbench.report as rep
    from compressbench.report.declared import hook, known_specs
    from compressbench.specs import SHARED_BUDGETS

    specs = known_specs()
    names = set(specs)
    for spec in specs.values():
        for h in (spec.report, spec.figures, *(m.select.derive for m in spec.metrics)):
            assert h is None or callable(hook(h))
        names |= {m.name for m in spec.metrics} | {m.column for m in spec.metrics}
    names -= {"knob", *SHARED_BUDGETS}
    src = "\n".join(p.read_text() for p in Path(rep.__file__).parent.glob("*.py"))
    found = sorted(n for n in names if f'"{n}"' in src or f"'{n}'" in src)
    assert not found, found
