"""Every study preset runs at smoke scale — the same graph (every family, budget kind, evaluator and
study table) on offline data with tiny epochs and subsets — so a preset can never rot (issue 16)."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

from compressbench.config import load_config
from compressbench.domain_config import experiment_parts
from compressbench.report import build_report
from compressbench.report.console import run_tables
from compressbench.report.data import load_experiment, series_of
from compressbench.report.html import _slug
from compressbench.report.plots import Plotter
from compressbench.runner import run
from compressbench.store import ResultStore

STUDIES = sorted((Path(__file__).parents[1] / "configs" / "studies").glob("*.yaml"))


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_study_preset_at_smoke_scale(path, tmp_path):
    exp = load_config(path, {"cache_dir": str(tmp_path / "cache"), "store": str(tmp_path / "s.sqlite")},
                      scale="smoke")
    t0 = time.perf_counter()
    summary = run(exp, progress=False)
    secs = time.perf_counter() - t0
    assert summary.failed == 0, summary.failures
    assert summary.ran == summary.jobs
    build_report(exp.store_path, tmp_path / "report", formats=("html", "csv"))
    assert exp.report is not None and exp.report.tables
    for name, _ in experiment_parts(exp):  # each experiment (one per source domain for domain studies)
        exp_dir = tmp_path / "report" / _slug(name)
        for table in exp.report.tables:  # every study table renders with a number in every column
            rows = list(csv.DictReader(open(exp_dir / f"study-{table.name}.csv")))
            assert rows, table.name
            for i, col in enumerate(table.columns):
                assert any(r[f"c{i}"] not in ("", "nan") for r in rows), (name, table.name, col.label)
        # `compressbench run` prints the study's tables; the vs-budget figures draw one series per file entry
        assert [t.title for t in run_tables(exp.store_path, name)] == [f"{t.title} ({name})" for t in exp.report.tables]
        data = load_experiment(ResultStore(exp.store_path), name)
        plot = Plotter(data, tmp_path / "figs" / _slug(name), {"png"})
        for fig in plot.draw_all():
            kind = fig.name.removeprefix("acc_vs_budget_")
            if fig.name.startswith("acc_vs_budget_") and kind in set(data.variants["budget_kind"].dropna()):
                entries = {}
                for v in data.variants.loc[data.variants["budget_kind"] == kind, "variant"]:
                    entries.setdefault(series_of(v), []).append(v)
                assert set(fig.series) - {"baseline"} == {plot.series_label(vs) for vs in entries.values()}, fig.name
    html = (tmp_path / "report" / "report.html").read_text()
    assert all(t.title.split("(")[0].strip() in html for t in exp.report.tables)
    print(f"{path.stem} at smoke scale: {summary.jobs} jobs in {secs:.1f} s")
