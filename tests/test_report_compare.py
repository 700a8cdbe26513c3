"""A report across stores: two real tiny experiments with different models, each in its own store, in one
report (files and a folder), a comparison row per store · experiment · variant whose numbers — and changes
vs the parent — are each store's own measurements; bad store arguments are one line."""

from __future__ import annotations

import argparse
import math
import shutil

import pandas as pd
import pytest

from compressbench.report import add_report_arguments, build_report, report_command
from compressbench.runner import run
from compressbench.store import ResultStore
from compressbench.validate import validate

MODELS = {"tiny": "tinycnn", "five": "cnn5"}
PRUNED = "prune.unstructured@knob=0.5"


def _experiment(tmp, name: str, model: str) -> str:
    exp = validate(
        {
            "name": name,
            "seeds": [0],
            "dataset": {"name": "digits", "eval_subset": 120},
            "model": {"name": model},
            "train": {"epochs": 1, "batch_size": 64, "lr": 0.1, "augment": "none"},
            "variants": [
                {"method": "prune.unstructured", "params": {"finetune": {"epochs": 0}}, "budgets": {"knob": [0.5]}}
            ],
            "evaluations": [
                {"evaluator": "clean"},
                {
                    "evaluator": "efficiency",
                    "params": {
                        "repeats": 3,
                        "throughput_repeats": 1,
                        "warmup": 1,
                        "onnx": False,
                        "fresh_process": False,
                    },
                },
            ],
            "cache_dir": str(tmp / "cache"),
            "store": str(tmp / "stores" / f"{name}.sqlite"),
        }
    )
    summary = run(exp, progress=False)
    assert summary.failed == 0, summary.failures
    return str(exp.store_path)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    return tmp, {name: _experiment(tmp, name, model) for name, model in MODELS.items()}


def _measured(path: str, experiment: str, evaluator: str, metric: str) -> dict[str, float]:
    rows = [r for r in ResultStore(path).rows(experiment) if r["error"] is None]
    found: dict[str, float] = {}
    for r in rows:
        if r["evaluator"] == evaluator and r["metric"] == metric and (metric != "top1" or r["condition"] == ""):
            found.setdefault(r["variant"], r["value"])
    return found


def test_two_stores_one_report(stores):
    tmp, paths = stores
    html = build_report([paths["tiny"], paths["five"]], tmp / "rep", formats=("html", "csv", "md"))
    table = pd.read_csv(tmp / "rep" / "comparison" / "comparison.csv")
    assert list(table.columns[:3]) == ["store", "experiment", "variant"]
    assert [(r.store, r.experiment, r.variant) for r in table.itertuples()] == [
        ("tiny.sqlite", "tiny", "baseline"),
        ("tiny.sqlite", "tiny", PRUNED),
        ("five.sqlite", "five", "baseline"),
        ("five.sqlite", "five", PRUNED),
    ]
    for name, path in paths.items():
        rows = table[table["experiment"] == name].set_index("variant")
        top1 = _measured(path, name, "clean", "top1")
        size = _measured(path, name, "efficiency", "bytes_compressed")
        for v in ("baseline", PRUNED):
            assert rows.at[v, "clean_top1"] == pytest.approx(top1[v])
            assert rows.at[v, "bytes_compressed"] == pytest.approx(size[v])
        # changes vs the parent: each experiment against its own baseline
        assert rows.at[PRUNED, "clean_top1_delta_pp"] == pytest.approx(top1[PRUNED] - top1["baseline"])
        assert rows.at[PRUNED, "bytes_compressed_ratio"] == pytest.approx(size[PRUNED] / size["baseline"])
        assert math.isnan(rows.at["baseline", "clean_top1_delta_pp"])  # the parent itself: blank
        # each experiment keeps its own section and files, under its store's folder
        assert (tmp / "rep" / f"{name}-sqlite" / name / "summary.csv").exists()
    tiny, five = (table[table["experiment"] == n]["bytes_compressed"].iloc[0] for n in ("tiny", "five"))
    assert tiny != five  # two different models
    page = html.read_text()
    assert "Comparison across stores" in page and page.count('<section class="experiment"') >= 3
    assert 'id="tiny-sqlite-tiny"' in page and 'id="five-sqlite-five"' in page
    assert "tiny.sqlite" in page and "five.sqlite" in page


def test_folder_of_stores_from_the_cli(stores, capsys):
    tmp, paths = stores
    folder = tmp / "stores"  # both stores (and their -wal/-shm companions, if any) live here
    (folder / "notes.txt").write_text("not a store")
    p = argparse.ArgumentParser()
    add_report_arguments(p)
    assert report_command(p.parse_args([str(folder), "--out", str(tmp / "cli"), "--formats", "csv"])) == 0
    table = pd.read_csv(tmp / "cli" / "comparison" / "comparison.csv")
    assert set(table["experiment"]) == set(MODELS)
    # one experiment of several stores
    assert (
        report_command(
            p.parse_args([str(folder), "--out", str(tmp / "one"), "--formats", "csv", "--experiment", "five"])
        )
        == 0
    )
    assert set(pd.read_csv(tmp / "one" / "comparison" / "comparison.csv")["experiment"]) == {"five"}
    capsys.readouterr()
    empty = tmp / "empty"
    empty.mkdir()
    assert report_command(p.parse_args([str(empty), "--out", str(tmp / "x")])) == 2
    assert report_command(p.parse_args([paths["tiny"], str(tmp / "missing.sqlite"), "--out", str(tmp / "x")])) == 2
    assert report_command(p.parse_args([str(folder), "--experiment", "nope", "--out", str(tmp / "x")])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err), err
    assert "no results store (SQLite file) in the folder" in err[0] and "missing.sqlite" in err[1]
    assert "'nope'" in err[2]


def test_one_store_in_a_list_is_the_single_store_report(stores):
    tmp, paths = stores
    single = tmp / "single"
    shutil.rmtree(single, ignore_errors=True)
    build_report([paths["tiny"]], single, formats=("csv",))
    assert (single / "tiny" / "summary.csv").exists() and not (single / "comparison").exists()
