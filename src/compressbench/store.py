"""The results store: SQLite, one flat typed row per measurement, append-only.

Tables
------
``runs``     one row per ``compressbench run`` invocation: provenance (resolved config, git hash,
             package versions, device, host, timestamp).
``results``  one row per measurement: experiment, variant, method, budget, seed, evaluator,
             condition, metric, value (unrounded float) — plus the job key, the run that produced
             it, a tag (``realised`` / ``theoretical`` / ``simulated`` / ``transfer`` ...), and for a
             failed job the error (value NULL, metric ``error``).

Nothing is updated or deleted. A job's rows are inserted once per store (keyed by job key).
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

SCHEMA_VERSION = 1

COLUMNS = ["experiment", "variant", "method", "budget_kind", "budget_target", "budget_achieved", "seed",
           "evaluator", "evaluator_version", "condition", "metric", "value", "unit", "tag", "error",
           "job_key", "run_id", "created_at"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, experiment TEXT, started_at TEXT, config_json TEXT, git_hash TEXT,
    versions_json TEXT, device TEXT, host_json TEXT);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment TEXT NOT NULL, variant TEXT NOT NULL, method TEXT NOT NULL,
    budget_kind TEXT, budget_target REAL, budget_achieved REAL, seed INTEGER,
    evaluator TEXT NOT NULL, evaluator_version INTEGER, condition TEXT NOT NULL DEFAULT '',
    condition_json TEXT NOT NULL DEFAULT '{}', metric TEXT NOT NULL, value REAL, unit TEXT DEFAULT '',
    tag TEXT DEFAULT '', error TEXT, job_key TEXT NOT NULL, run_id TEXT, created_at TEXT);
CREATE TABLE IF NOT EXISTS artifacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job_key TEXT NOT NULL, experiment TEXT, variant TEXT, method TEXT,
    seed INTEGER, evaluator TEXT, name TEXT, path TEXT, created_at TEXT);
CREATE INDEX IF NOT EXISTS results_job ON results(job_key);
CREATE INDEX IF NOT EXISTS results_exp ON results(experiment, variant, evaluator);
"""


def condition_str(cond: dict[str, Any]) -> str:
    """Canonical, readable condition label: ``corruption=fog,severity=3``."""
    return ",".join(f"{k}={cond[k]}" for k in sorted(cond))


class ResultStore:
    """SQLite results store. Safe to open from several processes (WAL, short transactions)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as c:
            c.executescript(_SCHEMA)
            c.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=60)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            with conn:
                yield conn
        finally:
            conn.close()

    # ------------------------------------------------------------------ writing
    def add_run(self, run_id: str, experiment: str, started_at: str, config: dict, git_hash: str | None,
                versions: dict, device: str, host: dict) -> None:
        with self._conn() as c:
            c.execute("INSERT OR IGNORE INTO runs VALUES (?,?,?,?,?,?,?,?)",
                      (run_id, experiment, started_at, json.dumps(config, sort_keys=True, default=str), git_hash,
                       json.dumps(versions, sort_keys=True), device, json.dumps(host, sort_keys=True)))

    def has_job(self, job_key: str, experiment: str | None = None, variant: str | None = None) -> bool:
        """Whether a job's (successful) rows are already stored, under these labels if given."""
        q, args = "SELECT 1 FROM results WHERE job_key=? AND error IS NULL", [job_key]
        if experiment is not None:
            q, args = q + " AND experiment=?", args + [experiment]
        if variant is not None:
            q, args = q + " AND variant=?", args + [variant]
        with self._conn() as c:
            return c.execute(q + " LIMIT 1", args).fetchone() is not None

    def add_rows(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert measurement dicts (keys from :data:`COLUMNS`, ``condition`` may be a dict)."""
        recs = []
        for r in rows:
            cond = r.get("condition") or {}
            if isinstance(cond, str):
                cond_s, cond_j = cond, "{}"
            else:
                cond_s, cond_j = condition_str(cond), json.dumps(cond, sort_keys=True, default=str)
            v = r.get("value")
            recs.append((r["experiment"], r["variant"], r["method"], r.get("budget_kind"), r.get("budget_target"),
                         r.get("budget_achieved"), r.get("seed"), r["evaluator"], r.get("evaluator_version"),
                         cond_s, cond_j, r["metric"], None if v is None else float(v), r.get("unit", ""),
                         r.get("tag", ""), r.get("error"), r["job_key"], r.get("run_id"), r.get("created_at")))
        with self._conn() as c:
            c.executemany(
                "INSERT INTO results (experiment, variant, method, budget_kind, budget_target, budget_achieved, "
                "seed, evaluator, evaluator_version, condition, condition_json, metric, value, unit, tag, error, "
                "job_key, run_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", recs)
        return len(recs)

    def add_artifact(self, job_key: str, experiment: str, variant: str, method: str, seed: int | None,
                     evaluator: str, name: str, path: str | Path, created_at: str | None = None) -> None:
        """Record a file an evaluator wrote (an image, a JSON) so the report can embed it."""
        with self._conn() as c:
            if c.execute("SELECT 1 FROM artifacts WHERE job_key=? AND name=?", (job_key, name)).fetchone():
                return
            c.execute("INSERT INTO artifacts (job_key, experiment, variant, method, seed, evaluator, name, path, "
                      "created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                      (job_key, experiment, variant, method, seed, evaluator, name, str(path), created_at))

    def artifacts(self, experiment: str | None = None) -> list[dict[str, Any]]:
        q, args = "SELECT * FROM artifacts", []
        if experiment is not None:
            q, args = q + " WHERE experiment=?", [experiment]
        with self._conn() as c:
            c.row_factory = sqlite3.Row
            return [dict(r) for r in c.execute(q + " ORDER BY id", args)]

    # ------------------------------------------------------------------ reading
    def rows(self, experiment: str | None = None, **where: Any) -> list[dict[str, Any]]:
        q, args = "SELECT * FROM results", []
        conds = []
        if experiment is not None:
            where["experiment"] = experiment
        for k, v in where.items():
            conds.append(f"{k}=?")
            args.append(v)
        if conds:
            q += " WHERE " + " AND ".join(conds)
        q += " ORDER BY id"
        with self._conn() as c:
            c.row_factory = sqlite3.Row
            out = [dict(r) for r in c.execute(q, args)]
        for r in out:
            r["condition_json"] = json.loads(r["condition_json"] or "{}")
        return out

    def runs(self) -> list[dict[str, Any]]:
        with self._conn() as c:
            c.row_factory = sqlite3.Row
            out = [dict(r) for r in c.execute("SELECT * FROM runs ORDER BY started_at")]
        for r in out:
            for k in ("config_json", "versions_json", "host_json"):
                r[k] = json.loads(r[k] or "{}")
        return out

    def dataframe(self, experiment: str | None = None):
        """All rows as a pandas DataFrame (``condition_json`` parsed into a dict column)."""
        import pandas as pd

        rows = self.rows(experiment)
        if not rows:
            return pd.DataFrame(columns=["id"] + COLUMNS + ["condition_json"])
        return pd.DataFrame(rows)

    def experiments(self) -> list[str]:
        with self._conn() as c:
            return [r[0] for r in c.execute("SELECT DISTINCT experiment FROM results ORDER BY experiment")]


def load_results(path: str | Path, experiment: str | None = None):
    """Public API: the store's rows as a DataFrame."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no results store at {p}")
    return ResultStore(p).dataframe(experiment)
