"""MLflow tracking against a REAL local MLflow tracking store (its SQLite backend under tmp_path), read back through
MLflow's own client: one run per variant × seed, params and metrics equal to the store's rows."""

from __future__ import annotations

import sys

import pytest

from compressbench.cli import main
from compressbench.config import ConfigError
from compressbench.runner import run
from compressbench.store import ResultStore
from compressbench.validate import validate

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

from compressbench.tracking import KEY_TAG, metric_name  # noqa: E402


def _raw(tmp_path, **over):
    raw = {
        "name": "trk",
        "seeds": [0, 1],
        "dataset": {"name": "digits", "eval_subset": 100},
        "model": {"name": "tinycnn"},
        "train": {"epochs": 1, "batch_size": 64, "augment": "none"},
        "variants": [
            {"method": "prune.unstructured", "budget": {"params": 0.5}, "params": {"finetune": {"epochs": 0}}}
        ],
        "evaluations": [{"evaluator": "clean"}],  # per-class rows: a condition per class
        "cache_dir": str(tmp_path / "cache"),
        "store": str(tmp_path / "r.sqlite"),
    }
    raw.update(over)
    return raw


def _readback(uri: str, experiment: str) -> dict[str, object]:
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return {r.data.tags[KEY_TAG]: r for r in client.search_runs([exp.experiment_id], max_results=1000)}


def _check_equal(store_path, uri: str) -> dict[str, object]:
    rows = ResultStore(store_path).rows("trk")
    runs = _readback(uri, "trk")
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(f"trk/{r['variant']}/{r['seed']}", []).append(r)
    assert set(runs) == set(groups) and len(runs) == 4  # baseline + 1 variant, × 2 seeds
    for key, rs in groups.items():
        run_ = runs[key]
        expected = {metric_name(r): r["value"] for r in rs if r["error"] is None}
        assert len(expected) == len([r for r in rs if r["error"] is None])  # names are one-to-one
        assert run_.data.metrics == pytest.approx(expected, rel=1e-12)
        p = run_.data.params
        assert (p["variant"], p["method"], p["seed"]) == (rs[0]["variant"], rs[0]["method"], str(rs[0]["seed"]))
        if rs[0]["budget_kind"]:
            assert p["budget"] == "params=0.5" and float(p["budget_target"]) == 0.5
            assert float(p["budget_achieved"]) == next(r["budget_achieved"] for r in rs if r["budget_achieved"])
    return runs


def test_run_with_tracking_then_export_again(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    exp = validate(_raw(tmp_path, tracking={"mlflow": {"uri": uri}}))
    assert run(exp, progress=False).failed == 0
    runs = _check_equal(tmp_path / "r.sqlite", uri)
    # conditions are flattened into the name
    assert any("/class-" in m for m in next(iter(runs.values())).data.metrics)
    # the CLI exports again into the same runs (nothing duplicated), with the report attached
    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "report.html").write_text("<html>r</html>")
    assert (
        main(["export-mlflow", str(tmp_path / "r.sqlite"), "--tracking-uri", uri, "--report", str(tmp_path / "rep")])
        == 0
    )
    again = _check_equal(tmp_path / "r.sqlite", uri)
    assert {k: r.info.run_id for k, r in again.items()} == {k: r.info.run_id for k, r in runs.items()}
    client = MlflowClient(tracking_uri=uri)
    rid = next(iter(again.values())).info.run_id
    assert [a.path for a in client.list_artifacts(rid, "report")] == ["report/report.html"]


def test_tracking_config_is_validated(tmp_path):
    with pytest.raises(ConfigError, match=r"tracking\.mlflow\.uri"):
        validate(_raw(tmp_path, tracking={"mlflow": {"uri": "ftp://x"}}))
    with pytest.raises(ConfigError, match=r"tracking\.mlflow"):
        validate(_raw(tmp_path, tracking={"mlflow": {"url": "file:/x"}}))


def test_export_of_a_missing_store_is_one_line(tmp_path, capsys):
    assert main(["export-mlflow", str(tmp_path / "none.sqlite"), "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]) == 2
    assert "no results store" in capsys.readouterr().err


def test_without_mlflow_the_feature_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"tracking\.mlflow: .*compressbench\[mlflow\]"):
        validate(_raw(tmp_path, tracking={"mlflow": {"uri": f"sqlite:///{tmp_path}/m.db"}}))
    ResultStore(tmp_path / "r.sqlite")  # an empty store
    assert main(["export-mlflow", str(tmp_path / "r.sqlite")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "compressbench[mlflow]" in err
