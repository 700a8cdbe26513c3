"""Metric declarations as data (issue 21): the split of ``MetricSpec``, the record each run stores, what
the report does with a record whose code it does not have, the store's ``declarations`` table, evaluator-
declared report options and roles."""

from __future__ import annotations

import argparse
import json
import sqlite3
from dataclasses import replace

import pytest

from compressbench.declarations import evaluator_record, record_run, spec_from_record, to_json
from compressbench.report import ReportContext, ReportOptions, add_report_arguments, build_report, load_experiment
from compressbench.report.declared import known_specs, specs_for
from compressbench.specs import ANY, CLEAN_ACCURACY, Console, EvaluatorSpec, MetricSpec, Presentation, Selection
from compressbench.store import ResultStore
from synthetic_store import EXPERIMENT, make_store


def test_metric_spec_splits_flat_arguments_into_selection_and_presentation():
    m = MetricSpec(
        "top1",
        label="Clean acc. %",
        fmt="pct",
        where={},
        exact=True,
        summary=True,
        key="clean_top1",
        console=Console("clean"),
        role=CLEAN_ACCURACY,
    )
    assert m.select == Selection(where={}, exact=True) and m.show.label == "Clean acc. %" and m.show.summary
    assert (m.title, m.column, m.role) == ("Clean acc. %", "clean_top1", CLEAN_ACCURACY)
    assert MetricSpec("top1", select=m.select, show=m.show, role=CLEAN_ACCURACY) == m  # ready parts, the same
    r = replace(m, protocol=("threads",), fmt="f3")  # flat fields override the parts
    assert r.select.protocol == ("threads",) and r.select.exact and r.show.fmt == "f3" and r.show.summary
    with pytest.raises(TypeError, match=r"metric 'x': unknown field\(s\) \['lable'\]; selection: where"):
        MetricSpec("x", lable="typo")
    with pytest.raises(TypeError, match="metric 'x': fallback=True needs summary=True"):
        MetricSpec("x", fallback=True)
    with pytest.raises(TypeError, match="metric 'x': fmt must be one of"):
        MetricSpec("x", fmt="percent")


def test_every_builtin_declaration_round_trips_through_json():
    for name, spec in known_specs().items():
        record = json.loads(to_json(evaluator_record(spec)))
        back = spec_from_record(name, record, spec)
        assert back.spec == spec and not back.notes, name


def test_a_record_without_its_code_renders_what_is_data_and_says_what_is_not():
    spec = EvaluatorSpec(
        metrics=(
            MetricSpec("score", label="Score", fmt="f2", summary=True, order=95),
            MetricSpec("score_rel", label="Score vs base", summary=True, derive="my_plugin.report:relative"),
            MetricSpec("detail", label="Detail", where={"k": ANY}, table=None),
        ),
        report="my_plugin.report:tables",
        captions={"x.png": "an image"},
        version=3,
    )
    record = json.loads(to_json(evaluator_record(spec)))
    assert record["metrics"][1]["select"]["derive"] == "my_plugin.report:relative"  # a name, for information
    out = spec_from_record("my.eval", record, None)  # nothing registered under that name here
    assert [m.name for m in out.spec.metrics] == ["score", "detail"]  # the derived column is left out ...
    assert out.spec.metrics[0] == spec.metrics[0] and out.spec.version == 3
    assert out.spec.metrics[1].show.table == ""  # ... its own tables' metric goes to the generic table
    assert out.spec.report is None and out.spec.captions == {"x.png": "an image"}
    assert any("Score vs base (my.eval)" in n and "my_plugin.report:relative" in n for n in out.notes)
    assert any("my_plugin.report:tables" in n for n in out.notes)


def test_store_declarations_table_is_additive(tmp_path):
    path = tmp_path / "s.sqlite"
    store = ResultStore(path)
    with sqlite3.connect(path) as c:  # a store written by a version without the table
        c.execute("DROP TABLE declarations")
    assert ResultStore(path).declarations(["r1"]) == {}
    record_run(store, "r1", ["clean"])
    record_run(store, "r1", ["clean"])  # once per (run, evaluator)
    got = ResultStore(path).declarations(["r1", "r2"])
    assert set(got["r1"]) == {"train", "compress", "export", "clean"}  # export: `compressbench export`'s rows
    assert got["r1"]["clean"]["metrics"][0]["name"] == "top1"
    with sqlite3.connect(path) as c:
        assert c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "3"
        assert c.execute("SELECT COUNT(*), MIN(evaluator_version) FROM declarations").fetchone() == (4, 1)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    d = tmp_path_factory.mktemp("decl")
    make_store(d / "s.db")
    return d / "s.db"


def test_stored_declarations_win_over_the_registry(synthetic, tmp_path):
    """The report renders the labels the run stored (its declarations), not this installation's."""
    path = tmp_path / "s.db"
    path.write_bytes(synthetic.read_bytes())
    store = ResultStore(path)
    store.add_run("r9", EXPERIMENT, "2099-01-01T00:00:00", {"name": EXPERIMENT}, None, {}, "cpu", {})
    rec = evaluator_record(known_specs()["clean"])
    rec["metrics"][0]["show"]["label"] = "Top-1 as stored"
    store.add_declarations("r9", {"clean": to_json(rec)}, {"clean": 1})
    data = load_experiment(ResultStore(path), EXPERIMENT)
    assert data.declared["clean"]["metrics"][0]["show"]["label"] == "Top-1 as stored"
    build_report(path, tmp_path / "out", formats=("csv", "md"))
    assert "Top-1 as stored" in (tmp_path / "out" / EXPERIMENT / "summary.md").read_text()


def test_role_names_a_column_without_naming_its_evaluator(synthetic):
    data = load_experiment(ResultStore(synthetic), EXPERIMENT)
    ctx = ReportContext.build(data)
    assert ctx.role_key(CLEAN_ACCURACY) == "clean_top1"
    assert ctx.role(CLEAN_ACCURACY).equals(ctx.column("clean_top1")) and len(ctx.role(CLEAN_ACCURACY))
    assert ctx.role("no-such-role").empty


def test_report_options_are_declared_by_evaluators(synthetic, tmp_path):
    parser = argparse.ArgumentParser()
    add_report_arguments(parser)
    flags = {a.option_strings[0]: a for a in parser._actions if a.option_strings}
    assert "--main-eps" in flags and "adversarial" in flags["--main-eps"].help  # from the adversarial spec
    assert flags["--norm"].choices == ["linf", "l2", "l0"]
    data = load_experiment(ResultStore(synthetic), EXPERIMENT)
    ctx = ReportContext.build(data).at("adversarial")
    assert ctx.option("main_eps") == pytest.approx(8 / 255) and ctx.option("norm") == "linf"  # declared defaults
    assert ReportContext.build(data, ReportOptions(norm="l2")).at("adversarial").option("norm") == "l2"
    with pytest.raises(KeyError, match="no evaluator declares the report option 'nope'"):
        ctx.option("nope")
    with pytest.raises(ValueError, match=r"unknown report option 'eps' \(declared: main_eps, norm\)"):
        build_report(synthetic, tmp_path / "o", options=ReportOptions(eps=0.1))
    with pytest.raises(ValueError, match="--main-eps must be a number or a fraction like 8/255, got 'x'"):
        build_report(synthetic, tmp_path / "o", options=ReportOptions(main_eps="x"))


def test_specs_for_keeps_unknown_evaluators_and_unreadable_records():
    declared = specs_for(["ghost"], {"broken": {"metrics": [{"name": "x"}]}})
    assert declared.specs["ghost"] is None and "broken" not in declared.specs  # unreadable: skipped
    assert Presentation().table == "" and Selection().aggregate == "mean"
