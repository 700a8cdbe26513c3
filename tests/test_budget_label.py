"""A variant whose shared budget is not met within ±2 % is labelled "budget not matched" in the report's
summary table, the HTML page and the run's printed table — from its stored ``budget_matched`` row, not
from a log line (issue 20)."""

from __future__ import annotations

import pytest
from torch import nn

from compressbench.interfaces import CompressResult, Params
from compressbench.registry import methods
from compressbench.report import build_report, summary_table
from compressbench.report.data import load_experiment
from compressbench.report.summary import console_summary
from compressbench.runner import run
from compressbench.specs import Knob
from compressbench.store import ResultStore
from compressbench.validate import validate


class KeepParams(Params):
    keep: float = 1.0


def _keep(parent: nn.Module, ctx, sol, params: KeepParams) -> CompressResult:
    """A plug-in whose knob does not change the size: every params budget below 1 is missed."""
    return CompressResult(sol.model, record={})


@pytest.fixture(autouse=True)
def _register():
    methods.register(
        "test.keep",
        _keep,
        params=KeepParams,
        budgets=("knob", "params"),
        description="test",
        knob=Knob("keep", lo=0.0, hi=1.0, shrinks=True, exact=lambda *a: 0.5),
        apply=lambda model, knob, ctx, params: model,
    )
    yield
    methods.unregister("test.keep")


def test_budget_not_matched_is_labelled(tmp_path):
    exp = validate(
        {
            "name": "lbl",
            "seeds": [0],
            "dataset": {"name": "digits"},
            "model": {"name": "tinycnn"},
            "train": {"epochs": 1, "batch_size": 64, "lr": 0.1, "augment": "none"},
            "variants": [
                {"method": "test.keep", "budget": {"params": 0.5}},
                {"method": "prune.unstructured", "params": {"finetune": {"epochs": 0}}, "budget": {"params": 0.5}},
            ],
            "evaluations": [{"evaluator": "clean"}],
            "cache_dir": str(tmp_path / "cache"),
            "store": str(tmp_path / "r.sqlite"),
        }
    )
    assert run(exp, progress=False).failed == 0
    rows = {r["variant"]: r["value"] for r in ResultStore(tmp_path / "r.sqlite").rows(metric="budget_matched")}
    assert rows == {"test.keep@params=0.5": 0.0, "prune.unstructured@params=0.5": 1.0}
    data = load_experiment(ResultStore(tmp_path / "r.sqlite"), "lbl")
    _, cells, notes = console_summary(data)
    names = [c[0] for c in cells]
    assert "test.keep@params=0.5 (budget not matched)" in names and "prune.unstructured@params=0.5" in names
    assert any(
        n.startswith("test.keep@params=0.5: budget not matched: params 1 of the parent for a target of 0.5")
        for n in notes
    )
    assert any("budget not matched" in n for n in summary_table(data).notes)
    page = build_report(tmp_path / "r.sqlite", tmp_path / "out").read_text()
    assert "budget not matched" in page and "Failed checks" in page
