"""Export a results store to MLflow: one MLflow run per (experiment, variant, seed).

MLflow is where many teams keep their runs; compressbench's store stays the source of truth and this module
copies it there, through MLflow's own client (``MlflowClient``; the ``[mlflow]`` extra, ``mlflow-skinny``
suffices). Used by ``compressbench export-mlflow STORE [--tracking-uri URI]`` and, at the end of
``compressbench run``, by an experiment's ``tracking: {mlflow: {uri: ...}}``.

What one run holds (MLflow experiment = the store's experiment name):

* params: ``experiment``, ``variant``, ``method``, ``seed``, ``budget`` (its label, e.g. ``params=0.5``),
  ``budget_kind``, ``budget_target``, ``budget_achieved`` and ``knob`` (the compress job's solved knob) when
  the store has them;
* metrics: every successful row, named ``<evaluator>/<metric>`` and, for a row with a condition, one more
  path segment per condition key in sorted order, ``<key>-<value>``: e.g.
  ``corruptions/top1/corruption-fog/severity-3``. Characters MLflow does not allow in a name become ``_``.
  (:func:`metric_name`; the conditions are flattened into the name, not into tags, so that every row is
  one metric of the run);
* tags: ``compressbench.key`` (``experiment/variant/seed``, how a re-export finds the run), the store's
  path, and ``compressbench.error.<evaluator>.<metric>`` for each failed job's error;
* the report (``report.html``) as an artifact under ``report/`` when one is given (a new experiment in a
  local ``sqlite:///PATH`` database keeps its artifacts in ``mlartifacts/`` next to the database file).

MLflow 3 keeps runs in a database (its default URI is ``sqlite:///mlflow.db`` in the current folder, hence
SQLAlchemy and Alembic in the ``[mlflow]`` extra); its file backend (``./mlruns``) refuses to open unless
``MLFLOW_ALLOW_FILE_STORE=true``.

Exporting again reuses each run (found by ``compressbench.key``) and adds only the metrics it lacks, so a
store that grew is exported incrementally and nothing is duplicated.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import Any

from .errors import UserError
from .store import ResultStore

log = logging.getLogger(__name__)

KEY_TAG = "compressbench.key"
_BAD = re.compile(r"[^\w.\- /]")


class MissingExtra(UserError):
    """A feature's optional dependency is not installed (one line naming the extra)."""


def _mlflow() -> Any:
    try:
        import mlflow  # noqa: F401
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise MissingExtra(
            "MLflow tracking needs the mlflow extra: pip install 'compressbench[mlflow]' (or pip install mlflow-skinny)"
        ) from None
    return MlflowClient


def _clean(s: Any) -> str:
    return _BAD.sub("_", str(s))


def metric_name(row: dict[str, Any]) -> str:
    """The MLflow metric name of a store row (see the module docstring)."""
    cond = row.get("condition_json") or {}
    parts = [row["evaluator"], row["metric"]] + [f"{k}-{cond[k]}" for k in sorted(cond)]
    return "/".join(_clean(p) for p in parts)


def _params(rows: list[dict[str, Any]]) -> dict[str, str]:
    first = rows[0]
    out = {
        "experiment": first["experiment"],
        "variant": first["variant"],
        "method": first["method"],
        "seed": first["seed"],
    }
    kind, target = first["budget_kind"], first["budget_target"]
    if kind is not None:
        out.update(budget=f"{kind}={target:g}", budget_kind=kind, budget_target=target)
    achieved = next((r["budget_achieved"] for r in rows if r["budget_achieved"] is not None), None)
    if achieved is not None:
        out["budget_achieved"] = achieved
    knob = next((r["value"] for r in rows if r["metric"] == "knob" and r["value"] is not None), None)
    if knob is not None:
        out["knob"] = knob
    return {k: str(v) for k, v in out.items() if v is not None}


def _report_file(report: str | Path | None) -> Path | None:
    if report is None:
        return None
    p = Path(report)
    p = p / "report.html" if p.is_dir() else p
    if not p.is_file():
        raise UserError(
            f"--report: no report at {report} (give a report.html or the folder `compressbench report` wrote)"
        )
    return p


def _artifact_root(uri: str | None) -> str | None:
    """A local SQLite tracking database keeps its artifacts next to it (``<db folder>/mlartifacts``), not in
    the current folder (MLflow's default for a new experiment); None: MLflow's default."""
    if uri and uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).expanduser().resolve().parent / "mlartifacts").as_uri()
    return None


def export_store(
    store_path: str | Path,
    tracking_uri: str | None = None,
    *,
    experiment: str | None = None,
    report: str | Path | None = None,
) -> dict[str, str]:
    """Copy the store's rows (all experiments, or ``experiment``) to MLflow at ``tracking_uri`` (MLflow's
    default when None). Returns {``experiment/variant/seed``: MLflow run id}."""
    client_cls = _mlflow()
    from mlflow.entities import Metric, Param, RunTag

    path = Path(store_path)
    if not path.is_file():
        raise UserError(f"no results store at {store_path}")
    store = ResultStore(path)
    client = client_cls(tracking_uri=tracking_uri)
    report_file = _report_file(report)
    groups: dict[tuple[str, str, Any], list[dict[str, Any]]] = {}
    for r in store.rows(experiment):
        groups.setdefault((r["experiment"], r["variant"], r["seed"]), []).append(r)
    exp_ids: dict[str, str] = {}
    out: dict[str, str] = {}
    for (exp_name, variant, seed), rows in groups.items():
        if exp_name not in exp_ids:
            found = client.get_experiment_by_name(exp_name)
            exp_ids[exp_name] = (
                found.experiment_id
                if found
                else client.create_experiment(exp_name, artifact_location=_artifact_root(tracking_uri))
            )
        key = f"{exp_name}/{variant}/{seed}"
        hits = client.search_runs([exp_ids[exp_name]], filter_string=f"tags.`{KEY_TAG}` = '{key}'", max_results=1)
        run = (
            hits[0]
            if hits
            else client.create_run(
                exp_ids[exp_name],
                run_name=f"{variant} seed {seed}",
                tags={KEY_TAG: key, "compressbench.store": str(path.resolve())},
            )
        )
        rid = run.info.run_id
        have_m, have_p = dict(run.data.metrics), dict(run.data.params)
        metrics, tags, seen = [], [], set()
        for r in rows:
            name = metric_name(r)
            if r["error"] is not None:
                tags.append(
                    RunTag(
                        f"compressbench.error.{_clean(r['evaluator'])}.{_clean(r['metric'])}", str(r["error"])[:5000]
                    )
                )
            elif r["value"] is not None and name not in have_m and name not in seen:
                seen.add(name)
                metrics.append(Metric(name, float(r["value"]), 0, 0))
        params = [Param(k, v) for k, v in _params(rows).items() if k not in have_p]
        for i in range(0, max(len(metrics), 1), 1000):  # MLflow's batch limit: 1000 metrics
            client.log_batch(
                rid, metrics=metrics[i : i + 1000], params=params if i == 0 else [], tags=tags if i == 0 else []
            )
        if report_file is not None:
            client.log_artifact(rid, str(report_file), artifact_path="report")
        client.set_terminated(rid)
        out[key] = rid
        log.info("mlflow: %s -> run %s (%d new metrics)", key, rid, len(metrics))
    return out


def add_export_mlflow_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", help="results store (SQLite file written by `compressbench run`)")
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: MLflow's own, i.e. $MLFLOW_TRACKING_URI or ./mlruns)",
    )
    parser.add_argument("--experiment", "-e", default=None, help="only this experiment (default: all)")
    parser.add_argument("--report", default=None, help="a report.html (or its folder) to attach to every run")


def export_mlflow_command(args: argparse.Namespace) -> int:
    runs = export_store(args.store, args.tracking_uri, experiment=args.experiment, report=args.report)
    print(
        f"mlflow: {len(runs)} run(s) exported from {args.store}"
        + (f" to {args.tracking_uri}" if args.tracking_uri else "")
    )
    return 0
