"""Study tables declared in the experiment file (issue 16): rows grouped per variant name / family with the
baseline on top, reduction labels, any measurement as a column with a scale — from a real tiny run."""

from __future__ import annotations

import csv

import pytest

from compressbench.config import ConfigError
from compressbench.report import build_report
from compressbench.runner import run
from compressbench.store import ResultStore
from compressbench.validate import validate

LAYOUT = {
    "tables": [
        {
            "name": "per-name",
            "title": "Accuracy and size per method",
            "group_by": "name",
            "row_label": "reduction",
            "columns": [
                {"label": "Acc %", "evaluator": "clean", "metric": "top1", "exact": True, "fmt": "pct"},
                {"label": "Size MB", "evaluator": "efficiency", "metric": "bytes_dense", "scale": 1.0e-6, "fmt": "f3"},
                {"label": "Params", "evaluator": "compress", "metric": "params_nonzero", "fmt": "int"},
            ],
        },
    ]
}


def _raw(tmp_path, **over):
    raw = {
        "name": "study",
        "seeds": [0],
        "dataset": {"name": "digits", "eval_subset": 150},
        "model": {"name": "tinycnn"},
        "train": {"epochs": 4, "batch_size": 64, "lr": 0.2, "augment": "none"},
        "variants": [
            {
                "name": "l1",
                "method": "prune.unstructured",
                "params": {"finetune": {"epochs": 0}},
                "budgets": {"params": [0.9, 0.5]},
            },
            {
                "name": "filters",
                "method": "prune.structured",
                "params": {"finetune": {"epochs": 0}},
                "budget": {"params": 0.5},
            },
        ],
        "evaluations": [
            {"evaluator": "clean"},
            {"evaluator": "efficiency", "params": {"timing": False, "onnx": False}},
        ],
        "cache_dir": str(tmp_path / "cache"),
        "store": str(tmp_path / "s.sqlite"),
        "report": LAYOUT,
    }
    raw.update(over)
    return raw


def test_study_table_from_a_real_run(tmp_path):
    nothing = {"label": "Sev 9", "evaluator": "clean", "metric": "top1", "where": {"severity": 9}}  # matches no row
    layout = {"tables": [{**LAYOUT["tables"][0], "columns": [*LAYOUT["tables"][0]["columns"], nothing]}]}
    exp = validate(_raw(tmp_path, report=layout))
    assert run(exp, progress=False).failed == 0
    build_report(exp.store_path, tmp_path / "rep", formats=("html", "csv", "md"))
    rows = list(csv.DictReader(open(tmp_path / "rep" / "study" / "study-per-name.csv")))
    # two blocks in the experiment file's order (entries, then budgets as listed), each starting with the baseline
    assert [(r["group"], r["row"]) for r in rows] == [
        ("l1", "baseline"),
        ("l1", "10 % smaller (params)"),
        ("l1", "50 % smaller (params)"),
        ("filters", "baseline"),
        ("filters", "50 % smaller (params)"),
    ]
    store = [r for r in ResultStore(exp.store_path).rows("study") if r["error"] is None]

    def one(variant, evaluator, metric, cond=""):
        v = [
            r["value"]
            for r in store
            if (r["variant"], r["evaluator"], r["metric"], r["condition"]) == (variant, evaluator, metric, cond)
        ]
        assert len(v) == 1, (variant, metric, v)
        return v[0]

    for r in rows:
        assert float(r["c0"]) == pytest.approx(one(r["variant"], "clean", "top1"))
        assert float(r["c1"]) == pytest.approx(
            one(r["variant"], "efficiency", "bytes_dense", "encoding=torch.save") * 1e-6
        )
        assert float(r["c2"]) == pytest.approx(one(r["variant"], "compress", "params_nonzero"))
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Accuracy and size per method" in html and "Size MB" in html
    md = (tmp_path / "rep" / "study" / "study-per-name.md").read_text()
    assert "50 % smaller (params)" in md
    assert "EMPTY column 'Sev 9' matches no row (clean · top1 where {'severity': 9})" in md  # marked, not silent


def test_study_layout_is_validated(tmp_path):
    bad = {
        "tables": [
            {
                "name": "t",
                "title": "T",
                "columns": [{"label": "x", "evaluator": "adversarial", "metric": "robust_top1"}],
            }
        ]
    }
    with pytest.raises(ConfigError, match=r"report.tables\[0\].columns\[0\].evaluator: 'adversarial' is not among"):
        validate(_raw(tmp_path, report=bad))
    with pytest.raises(ConfigError, match="group_by"):
        validate(_raw(tmp_path, report={"tables": [{**LAYOUT["tables"][0], "group_by": "families"}]}))


SWEEP = {
    "tables": [
        {
            "name": "sweep",
            "title": "Pruning sweep: L1 vs random",
            "columns": [
                {"label": "Accuracy %", "evaluator": "clean", "metric": "top1", "exact": True, "fmt": "pct"},
                {
                    "label": "Dense size (% of base)",
                    "evaluator": "compress",
                    "metric": "achieved_bytes",
                    "scale": 100,
                    "fmt": "f1",
                },
            ],
        },
    ]
}


def test_study_outputs_keep_the_studys_series_order_and_console(tmp_path, capsys):
    """The trade-offs study's shape at toy size: L1 and random pruning of one method over one knob sweep stay
    two series in the figure (x: the knob's name), the study table has no repeated column and its rows follow
    the file (0.5 before 0.9), and `compressbench run` prints the study table, not the standard one."""
    import yaml

    from compressbench.cli import main
    from compressbench.report.data import load_experiment
    from compressbench.report.plots import Plotter

    raw = _raw(
        tmp_path,
        name="sweep",
        report=SWEEP,
        variants=[
            {
                "name": "l1-local",
                "method": "prune.unstructured",
                "budgets": {"knob": [0.5, 0.9]},
                "params": {"criterion": "l1", "scope": "local", "finetune": {"epochs": 0}},
            },
            {
                "name": "random",
                "method": "prune.unstructured",
                "budgets": {"knob": [0.5, 0.9]},
                "params": {"criterion": "random", "scope": "local", "finetune": {"epochs": 0}},
            },
        ],
        evaluations=[{"evaluator": "clean"}],
    )
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    assert main(["run", str(cfg), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Pruning sweep: L1 vs random" in out and "Dense size (% of base)" in out
    assert "corruption top-1" not in out and "mean over seeds" not in out  # not the standard table
    assert out.index("l1-local@knob=0.5") < out.index("l1-local@knob=0.9") < out.index("random@knob=0.5")

    build_report(tmp_path / "s.sqlite", tmp_path / "rep", formats=("html", "csv", "md", "png"))
    md = (tmp_path / "rep" / "sweep" / "study-sweep.md").read_text().splitlines()
    header = [c.strip() for c in md[2].strip("|").split("|")]
    assert header == ["variant", "method", "Accuracy %", "Dense size (% of base)"]  # no duplicate row/variant
    rows = [line.split("|")[1].strip() for line in md[4:9]]
    assert rows == ["baseline", "l1-local@knob=0.5", "l1-local@knob=0.9", "random@knob=0.5", "random@knob=0.9"]

    data = load_experiment(ResultStore(tmp_path / "s.sqlite"), "sweep")
    figs = {f.name: f for f in Plotter(data, tmp_path / "figs", {"png"}).draw_all()}
    knob = figs["acc_vs_budget_knob"]
    assert sorted(knob.series) == ["baseline", "l1-local (prune.unstructured)", "random (prune.unstructured)"]
    assert "sparsity" in knob.xlabel and "prune.unstructured" in knob.xlabel
    assert (tmp_path / "rep" / "sweep" / "figures" / "acc_vs_budget_knob.png").stat().st_size > 5_000
