"""The report from a store made by a real tiny run (digits, tinycnn, two pruned variants): the numbers in
the CSVs and the HTML are the ones measured; an evaluator registered here — outside the package — with
a declared metric reaches the summary, its own table and a figure without any report code; once
unregistered, its stored declarations still render it; and a store without declarations renders its rows
generically."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from compressbench.interfaces import Measurement
from compressbench.registry import evaluators
from compressbench.report import ReportContext, build_report, load_experiment, summary_table
from compressbench.runner import run
from compressbench.specs import MetricSpec
from compressbench.store import ResultStore
from compressbench.validate import validate

PLUGIN = "test.margin"
PRUNED = ("prune.unstructured@knob=0.5", "prune.unstructured@knob=0.75")


def margin(model, ctx, params) -> list[Measurement]:
    """Mean gap between the two largest logits; plus a metric it does not declare."""
    x, _, _ = next(ctx.eval_set().batches(128))
    with torch.inference_mode():
        top2 = model(x).topk(2, dim=1).values
    return [
        Measurement("margin", float((top2[:, 0] - top2[:, 1]).mean())),
        Measurement("n_seen", float(len(x)), {"split": "eval"}),
    ]


MARGIN = MetricSpec(
    "margin",
    label="Logit margin",
    fmt="f3",
    higher_is_better=True,
    summary=True,
    order=90,
    figure="margin_vs_budget_{kind}",
    description="mean top-1 minus top-2 logit",
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e")
    evaluators.register(PLUGIN, margin, metrics=(MARGIN,), description="test plug-in")
    try:
        exp = validate(
            {
                "name": "e2e",
                "seeds": [0],
                "dataset": {"name": "digits", "eval_subset": 200},
                "model": {"name": "tinycnn"},
                "train": {"epochs": 3, "batch_size": 64, "lr": 0.2, "augment": "none"},
                "variants": [
                    {
                        "method": "prune.unstructured",
                        "params": {"finetune": {"epochs": 0}},
                        "budgets": {"knob": [0.5, 0.75]},
                    }
                ],
                "evaluations": [
                    {"evaluator": "clean"},
                    {
                        "evaluator": "corruptions",
                        "params": {"corruptions": ["contrast"], "severities": [3], "subset": 100},
                    },
                    {"evaluator": "efficiency", "params": {"timing": False, "onnx": False}},
                    {"evaluator": PLUGIN},
                ],
                "cache_dir": str(d / "cache"),
                "store": str(d / "r.sqlite"),
            }
        )
        summary = run(exp, progress=False)
        assert summary.failed == 0, summary.failures
        out = build_report(exp.store_path, d / "out", formats=("html", "csv"))
    finally:
        evaluators.unregister(PLUGIN)  # registries are global: leave them as found
    return {"path": exp.store_path, "html": out.read_text(), "csv": d / "out" / "e2e"}


def _measured(path, evaluator: str, metric: str, condition: str = "") -> dict[str, float]:
    rows = ResultStore(path).rows("e2e")
    return {
        r["variant"]: r["value"]
        for r in rows
        if r["evaluator"] == evaluator and r["metric"] == metric and r["condition"] == condition
    }


def test_summary_csv_holds_the_measured_numbers(store):
    s = pd.read_csv(store["csv"] / "summary.csv").set_index("variant")
    assert list(s.index) == ["baseline", *PRUNED]  # baseline first, then the experiment file's order
    checks = {
        "clean_top1": ("clean", "top1", ""),
        "corr_top1": ("corruptions", "mean_top1", "suite=custom"),
        "params_nonzero": ("efficiency", "params_nonzero", ""),
        "margin": (PLUGIN, "margin", ""),
    }
    for col, (ev, metric, cond) in checks.items():
        measured = _measured(store["path"], ev, metric, cond)
        assert set(measured) == set(s.index), col
        for v, x in measured.items():
            assert s.at[v, col] == pytest.approx(x, rel=1e-12), (col, v)
    flops = _measured(store["path"], "efficiency", "flops_effective", "counter=FlopCounterMode")
    assert s.at["baseline", "gflops"] == pytest.approx(flops["baseline"] / 1e6)  # a tiny model: MFLOPs
    dense = _measured(store["path"], "efficiency", "bytes_dense", "encoding=torch.save")["baseline"]
    comp = ResultStore(store["path"]).rows("e2e", metric="bytes_compressed")
    for r in comp:
        assert s.at[r["variant"], "compression_pct"] == pytest.approx(100 * (1 - r["value"] / dense))
    assert s["clean_top1_n"].eq(1).all() and s["clean_top1_ci95"].isna().all()  # one seed: no CI
    assert "latency_b1_ms" not in s  # timing was off: the column is not shown


def test_html_shows_measured_values_and_the_plugin_metric(store):
    page = store["html"].replace("<wbr>", "")  # names may wrap at <wbr>
    clean = _measured(store["path"], "clean", "top1")
    for v, x in clean.items():
        assert f"{100 * x:.2f}" in page and v in page
    margins = _measured(store["path"], PLUGIN, "margin")
    assert "Logit margin" in page
    for x in margins.values():
        assert f"{x:.3f}" in page
    for fig in ("acc_vs_budget_knob", "margin_vs_budget_knob", "bars_corruptions", "retention_heatmap"):
        assert f'data-name="{fig}"' in page
    assert 'data-name="test-margin"' in page  # the plug-in's generic detail table
    corr = pd.read_csv(store["csv"] / "corruptions.csv").set_index("variant")
    cells = _measured(store["path"], "corruptions", "top1", "corruption=contrast,severity=3,suite=custom")
    for v, x in cells.items():
        assert corr.at[v, "contrast"] == pytest.approx(x)


def test_plugin_generic_table_lists_declared_and_undeclared_metrics(store):
    t = pd.read_csv(store["csv"] / "test-margin.csv").set_index("variant")
    margins = _measured(store["path"], PLUGIN, "margin")
    for v, x in margins.items():
        assert t.at[v, "margin"] == pytest.approx(x)
    assert (t["n_seen[split=eval]"] > 0).all()  # undeclared: still reported, under its raw name


def test_unregistered_evaluator_renders_from_its_stored_declarations(store, tmp_path):
    """Without the plug-in, the run's stored declarations still give its summary column and figure."""
    assert PLUGIN not in evaluators  # as on a machine without the plug-in
    data = load_experiment(ResultStore(store["path"]), "e2e")
    assert PLUGIN in data.evaluators and PLUGIN in data.declared
    t = summary_table(data, ctx=ReportContext.build(data))
    margins = _measured(store["path"], PLUGIN, "margin")
    assert next(c.label for c in t.columns if c.key == "margin") == "Logit margin"
    for v, x in margins.items():
        assert t.mean.at[v, "margin"] == pytest.approx(x)
    out = build_report(store["path"], tmp_path / "out", formats=("html", "csv"))
    page = out.read_text()
    assert 'data-name="margin_vs_budget_knob"' in page and 'data-name="test-margin"' in page


def test_store_without_declarations_renders_generically(store, tmp_path):
    """A store written before runs recorded their declarations (no table): an evaluator this installation
    does not know has no summary column, but its rows still render in its generic table."""
    import shutil
    import sqlite3

    old = tmp_path / "old.sqlite"
    shutil.copy(store["path"], old)
    with sqlite3.connect(old) as c:
        c.execute("DROP TABLE declarations")
    data = load_experiment(ResultStore(old), "e2e")
    assert data.declared == {}
    t = summary_table(data, ctx=ReportContext.build(data))
    assert "margin" not in {c.key for c in t.columns}  # no declaration: no summary column ...
    assert "clean_top1" in {c.key for c in t.columns}  # (the built-ins: from the registry)
    out = build_report(old, tmp_path / "out", formats=("html", "csv"))
    g = pd.read_csv(tmp_path / "out" / "e2e" / "test-margin.csv").set_index("variant")  # ... but its table
    margins = _measured(store["path"], PLUGIN, "margin")
    for v, x in margins.items():
        assert g.at[v, "margin"] == pytest.approx(x) and not math.isnan(x)
    assert 'data-name="test-margin"' in out.read_text()
