"""Study tables declared in the experiment file (issue 16): rows grouped per variant name / family with the
baseline on top, reduction labels, any measurement as a column with a scale — from a real tiny run."""

from __future__ import annotations

import csv

import pytest

from compressbench.config import ConfigError, validate
from compressbench.report import build_report
from compressbench.runner import run
from compressbench.store import ResultStore

LAYOUT = {"tables": [
    {"name": "per-name", "title": "Accuracy and size per method", "group_by": "name", "row_label": "reduction",
     "columns": [{"label": "Acc %", "evaluator": "clean", "metric": "top1", "exact": True, "fmt": "pct"},
                 {"label": "Size MB", "evaluator": "efficiency", "metric": "bytes_dense", "scale": 1.0e-6,
                  "fmt": "f3"},
                 {"label": "Params", "evaluator": "compress", "metric": "params_nonzero", "fmt": "int"}]},
]}


def _raw(tmp_path, **over):
    raw = {"name": "study", "seeds": [0], "dataset": {"name": "digits", "eval_subset": 150},
           "model": {"name": "tinycnn"}, "train": {"epochs": 4, "batch_size": 64, "lr": 0.2, "augment": "none"},
           "variants": [{"name": "l1", "method": "prune.unstructured", "params": {"finetune": {"epochs": 0}},
                         "budgets": {"params": [0.9, 0.5]}},
                        {"name": "filters", "method": "prune.structured", "params": {"finetune": {"epochs": 0}},
                         "budget": {"params": 0.5}}],
           "evaluations": [{"evaluator": "clean"}, {"evaluator": "efficiency",
                                                    "params": {"timing": False, "onnx": False}}],
           "cache_dir": str(tmp_path / "cache"), "store": str(tmp_path / "s.sqlite"), "report": LAYOUT}
    raw.update(over)
    return raw


def test_study_table_from_a_real_run(tmp_path):
    exp = validate(_raw(tmp_path))
    assert run(exp, progress=False).failed == 0
    build_report(exp.store_path, tmp_path / "rep", formats=("html", "csv", "md"))
    rows = list(csv.DictReader(open(tmp_path / "rep" / "study" / "study-per-name.csv")))
    # two blocks in the experiment file's order (entries, then budgets as listed), each starting with the baseline
    assert [(r["group"], r["row"]) for r in rows] == [("l1", "baseline"), ("l1", "10 % smaller (params)"),
                                                     ("l1", "50 % smaller (params)"), ("filters", "baseline"),
                                                     ("filters", "50 % smaller (params)")]
    store = [r for r in ResultStore(exp.store_path).rows("study") if r["error"] is None]

    def one(variant, evaluator, metric, cond=""):
        v = [r["value"] for r in store if (r["variant"], r["evaluator"], r["metric"], r["condition"])
             == (variant, evaluator, metric, cond)]
        assert len(v) == 1, (variant, metric, v)
        return v[0]

    for r in rows:
        assert float(r["c0"]) == pytest.approx(one(r["variant"], "clean", "top1"))
        assert float(r["c1"]) == pytest.approx(one(r["variant"], "efficiency", "bytes_dense",
                                                   "encoding=torch.save") * 1e-6)
        assert float(r["c2"]) == pytest.approx(one(r["variant"], "compress", "params_nonzero"))
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Accuracy and size per method" in html and "Size MB" in html
    md = (tmp_path / "rep" / "study" / "study-per-name.md").read_text()
    assert "50 % smaller (params)" in md


def test_study_layout_is_validated(tmp_path):
    bad = {"tables": [{"name": "t", "title": "T", "columns": [{"label": "x", "evaluator": "adversarial",
                                                                 "metric": "robust_top1"}]}]}
    with pytest.raises(ConfigError, match=r"report.tables\[0\].columns\[0\].evaluator: 'adversarial' is not among"):
        validate(_raw(tmp_path, report=bad))
    with pytest.raises(ConfigError, match="group_by"):
        validate(_raw(tmp_path, report={"tables": [{**LAYOUT["tables"][0], "group_by": "families"}]}))
