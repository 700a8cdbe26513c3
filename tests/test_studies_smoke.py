"""Every study preset runs at smoke scale — the same graph (every family, budget kind, evaluator and
study table) on offline data with tiny epochs and subsets — so a preset can never rot (issue 16)."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import pytest

from compressbench.findings import evaluate_store
from compressbench.report import build_report
from compressbench.report.console import print_run_tables, run_tables
from compressbench.report.data import load_experiment, series_of
from compressbench.report.html import _slug
from compressbench.report.plots import Plotter
from compressbench.runner import run
from compressbench.store import ResultStore
from compressbench.validate import load_config

STUDIES = sorted((Path(__file__).parents[1] / "configs" / "studies").glob("*.yaml"))


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_study_preset_at_smoke_scale(path, tmp_path, capsys):
    exp = load_config(path, {"cache_dir": str(tmp_path / "cache"), "store": str(tmp_path / "s.sqlite")}, scale="smoke")
    t0 = time.perf_counter()
    summary = run(exp, progress=False)
    secs = time.perf_counter() - t0
    assert summary.failed == 0, summary.failures
    assert summary.ran == summary.jobs
    build_report(exp.store_path, tmp_path / "report", formats=("html", "csv"))
    assert exp.report is not None and exp.report.tables
    for name in [p.name for p in exp.parts]:  # each experiment (one per source domain for domain studies)
        exp_dir = tmp_path / "report" / _slug(name)
        for table in exp.report.tables:  # every study table renders with a number in every column
            rows = list(csv.DictReader(open(exp_dir / f"study-{table.name}.csv")))
            assert rows, table.name
            for i, col in enumerate(table.columns):
                assert any(r[f"c{i}"] not in ("", "nan") for r in rows), (name, table.name, col.label)
        # `compressbench run` prints the study's tables; the vs-budget figures draw one series per file entry
        tables = run_tables(exp.store_path, name)
        assert [t.title for t in tables] == [f"{t.title} ({name})" for t in exp.report.tables]
        capsys.readouterr()
        print_run_tables(exp.store_path, name)  # piped (not a terminal): every cell printed whole, none squeezed
        printed = capsys.readouterr().out
        assert all(cell in printed for t in tables for row in t.rows for cell in row if cell), name
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
    # the study's claims are tested on every experiment: one seed, so by the paired bootstrap over the images
    # whose outcomes the evaluators wrote (the verdicts themselves mean nothing at this scale)
    assert exp.findings and 'id="findings"' in html and (tmp_path / "report" / "findings.csv").is_file()
    tests = [t for r in evaluate_store(exp.store_path, n_boot=200) for t in r.tests]
    assert len(tests) >= len(exp.findings) * len(exp.parts)
    for t in tests:
        assert t.estimate is not None and not math.isnan(t.estimate.mean), (t.fid, t.experiment, t.reason)
        assert t.estimate.method == "bootstrap" and t.estimate.n_images > 0, (t.fid, t.experiment, t.reason)
        assert t.verdict in ("holds", "contradicted", "inconclusive")
    print(f"{path.stem} at smoke scale: {summary.jobs} jobs in {secs:.1f} s")
