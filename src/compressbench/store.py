"""The results store: SQLite, one flat typed row per measurement, append-only.

Tables
------
``runs``     one row per ``compressbench run`` invocation: provenance (resolved config, git hash,
             package versions, device, host, timestamp).
``declarations`` one row per (run, evaluator): what the report needs of the evaluator's spec — its metric
             declarations, as JSON (:mod:`compressbench.declarations`), so a report renders a plug-in's
             metrics without its code. Added in place (created on the first write; the schema version
             stays 2, so an older compressbench still reads the store and ignores the table).
``results``  one row per measurement: experiment, variant, method, budget, seed, evaluator,
             condition, metric, value (unrounded float) — plus the job key, the run that produced
             it, a tag (``realised`` / ``theoretical`` / ``simulated`` / ``transfer`` ...), and for a
             failed job the error (value NULL, metric ``error``).

Nothing is updated or deleted. Each measurement is stored exactly once: a UNIQUE index over
(experiment, variant, job_key, evaluator, condition, metric) of the successful rows, and
``INSERT OR IGNORE``, so several drivers (or a re-run) writing the same job add nothing twice; the
first row written wins. An error row is kept once per (run, job, evaluator, metric): each run that
retries a failing job records its own failure. A job's rows and artifacts go in one transaction.

Opening checks the file (SQLite header, ``PRAGMA quick_check``) and says in one line which file is
damaged and what to do (:class:`~compressbench.errors.StoreError`). Schema version 1 stores (no
uniqueness) are migrated on open: duplicates dropped (the first row kept), then the index created.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import StoreError

SCHEMA_VERSION = 2

COLUMNS = ["experiment", "variant", "method", "budget_kind", "budget_target", "budget_achieved", "seed",
           "evaluator", "evaluator_version", "condition", "metric", "value", "unit", "tag", "error",
           "job_key", "run_id", "created_at"]

# the identity of a measurement (successful rows) and of a failure record (error rows)
UNIQUE_KEY = ("experiment", "variant", "job_key", "evaluator", "condition", "metric")
ERROR_KEY = ("run_id", "job_key", "evaluator", "metric")

_DECLARATIONS = """
CREATE TABLE IF NOT EXISTS declarations (
    run_id TEXT NOT NULL, evaluator TEXT NOT NULL, evaluator_version INTEGER, json TEXT NOT NULL,
    PRIMARY KEY (run_id, evaluator))"""

_TABLES = _DECLARATIONS + """;
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

_UNIQUE = f"""
CREATE UNIQUE INDEX IF NOT EXISTS results_once ON results({", ".join(UNIQUE_KEY)}) WHERE error IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS results_error_once ON results({", ".join(ERROR_KEY)}) WHERE error IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS artifacts_once ON artifacts(job_key, name);
"""

_DEDUP = f"""
DELETE FROM results WHERE error IS NULL AND id NOT IN
    (SELECT MIN(id) FROM results WHERE error IS NULL GROUP BY {", ".join(UNIQUE_KEY)});
DELETE FROM results WHERE error IS NOT NULL AND run_id IS NOT NULL AND id NOT IN
    (SELECT MIN(id) FROM results WHERE error IS NOT NULL AND run_id IS NOT NULL GROUP BY {", ".join(ERROR_KEY)});
DELETE FROM artifacts WHERE id NOT IN (SELECT MIN(id) FROM artifacts GROUP BY job_key, name);
"""

_SQLITE_MAGIC = b"SQLite format 3\x00"
_WHAT_TO_DO = ("move it away (e.g. `mv {p} {p}.damaged`); the cache still holds every finished job, so "
               "`compressbench run` rebuilds the rows")


def condition_str(cond: dict[str, Any]) -> str:
    """Canonical, readable condition label: ``corruption=fog,severity=3``."""
    return ",".join(f"{k}={cond[k]}" for k in sorted(cond))


class ResultStore:
    """SQLite results store. Safe to open from several processes (WAL, short transactions, unique rows)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._dedup_reads = False  # a version-1 store we could not migrate (read-only): dedup when reading
        self._prepare_path()
        self._check_header()
        try:
            self._open_schema()
        except StoreError:
            raise
        except sqlite3.DatabaseError as e:  # "file is not a database", "database disk image is malformed" ...
            raise self._damaged(str(e)) from None

    # ------------------------------------------------------------------ opening
    def _damaged(self, detail: str) -> StoreError:
        return StoreError(f"{self.path}: the results store is damaged ({detail}); "
                          + _WHAT_TO_DO.format(p=self.path))

    def _prepare_path(self) -> None:
        p = self.path
        if p.is_dir():
            raise StoreError(f"{p}: the results store path is a folder, not a file; set 'store' to a file path "
                             f"(e.g. {p / 'results.sqlite'})")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            blocker = next((q for q in [p.parent, *p.parent.parents] if q.exists() and not q.is_dir()), p.parent)
            raise StoreError(f"{p}: cannot create the store's folder: {blocker} is a file, not a folder; move it "
                             f"away or choose another 'store' path") from None
        except OSError as e:
            raise StoreError(f"{p}: cannot create the store's folder {p.parent} ({e.strerror})") from None

    def _check_header(self) -> None:
        p = self.path
        if not p.exists():
            return
        try:
            with open(p, "rb") as f:
                head = f.read(16)
        except OSError as e:
            raise StoreError(f"{p}: cannot read the results store ({e.strerror})") from None
        if head and head != _SQLITE_MAGIC:  # an empty file is an empty SQLite database
            raise StoreError(f"{p}: not a SQLite results store (bad file header); " + _WHAT_TO_DO.format(p=p))

    def _open_schema(self) -> None:
        with self._conn() as c:
            bad = [r[0] for r in c.execute("PRAGMA quick_check(5)")]
            if bad != ["ok"]:
                lines = [ln.strip() for b in bad for ln in str(b).splitlines() if ln.strip() and "***" not in ln]
                more = f" and {len(lines) - 1} more problem(s)" if len(lines) > 1 else ""
                raise self._damaged(f"integrity check: {lines[0][:120] if lines else bad[0]}{more}")
            version = self._version(c)
            if version == SCHEMA_VERSION:
                return
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: written by a newer compressbench (store schema {version}, this version "
                                 f"reads up to {SCHEMA_VERSION}); upgrade compressbench or use another store")
            try:
                with self._tx(c):
                    version = self._version(c)  # another process may have migrated it meanwhile
                    if version is None:
                        for stmt in _statements(_TABLES + _UNIQUE):
                            c.execute(stmt)
                        c.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                    elif version < SCHEMA_VERSION:
                        for stmt in _statements(_TABLES + _DEDUP + _UNIQUE):
                            c.execute(stmt)
                        c.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
            except sqlite3.OperationalError as e:
                if "readonly" not in str(e) and "read-only" not in str(e):
                    raise
                if version is None:
                    raise StoreError(f"{self.path}: cannot create the results store ({e})") from None
                self._dedup_reads = True  # readable as is; duplicates hidden when reading

    @staticmethod
    def _version(c: sqlite3.Connection) -> int | None:
        if not c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone():
            return None
        row = c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else None

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)  # transactions: _tx
        except sqlite3.OperationalError as e:
            raise StoreError(f"{self.path}: cannot open the results store ({e})") from None
        try:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError:
                pass  # a read-only store keeps its journal mode
            yield conn
        finally:
            conn.close()

    @staticmethod
    @contextmanager
    def _tx(c: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """One write transaction (taken at once: no lock upgrade that could deadlock two writers)."""
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    def check_writable(self) -> None:
        """Raise :class:`StoreError` unless this process may write the store (the file, and its folder for
        SQLite's journal files) — checked by ``run`` before any work."""
        p = self.path
        if (p.exists() and not os.access(p, os.W_OK)) or not os.access(p.parent, os.W_OK | os.X_OK):
            raise StoreError(f"{p}: the results store (or its folder) is not writable; fix the permissions or "
                             f"choose another 'store' path")

    # ------------------------------------------------------------------ writing
    def add_run(self, run_id: str, experiment: str, started_at: str, config: dict, git_hash: str | None,
                versions: dict, device: str, host: dict) -> None:
        with self._conn() as c, self._tx(c):
            c.execute("INSERT OR IGNORE INTO runs VALUES (?,?,?,?,?,?,?,?)",
                      (run_id, experiment, started_at, json.dumps(config, sort_keys=True, default=str), git_hash,
                       json.dumps(versions, sort_keys=True), device, json.dumps(host, sort_keys=True)))

    def add_declarations(self, run_id: str, records: dict[str, str], versions: dict[str, int]) -> None:
        """Store each evaluator's declarations (``records``: evaluator -> JSON) for run ``run_id``, once."""
        with self._conn() as c, self._tx(c):
            c.execute(_DECLARATIONS)
            c.executemany("INSERT OR IGNORE INTO declarations VALUES (?,?,?,?)",
                          [(run_id, ev, versions.get(ev), js) for ev, js in records.items()])

    def declarations(self, run_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``{run_id: {evaluator: record}}`` of these runs ({} for a store without the table)."""
        ids = list(run_ids)
        with self._conn() as c:
            if not ids or not c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='declarations'"
                                        ).fetchone():
                return {}
            out: dict[str, dict[str, Any]] = {}
            for run_id, ev, js in c.execute(f"SELECT run_id, evaluator, json FROM declarations WHERE run_id IN "
                                            f"({','.join('?' * len(ids))})", ids):
                out.setdefault(run_id, {})[ev] = json.loads(js)
        return out

    def has_job(self, job_key: str, experiment: str | None = None, variant: str | None = None) -> bool:
        """Whether a job's (successful) rows are already stored, under these labels if given."""
        q, args = "SELECT 1 FROM results WHERE job_key=? AND error IS NULL", [job_key]
        if experiment is not None:
            q, args = q + " AND experiment=?", args + [experiment]
        if variant is not None:
            q, args = q + " AND variant=?", args + [variant]
        with self._conn() as c:
            return c.execute(q + " LIMIT 1", args).fetchone() is not None

    @staticmethod
    def _row_tuple(r: dict[str, Any]) -> tuple:
        cond = r.get("condition") or {}
        if isinstance(cond, str):
            cond_s, cond_j = cond, "{}"
        else:
            cond_s, cond_j = condition_str(cond), json.dumps(cond, sort_keys=True, default=str)
        v = r.get("value")
        return (r["experiment"], r["variant"], r["method"], r.get("budget_kind"), r.get("budget_target"),
                r.get("budget_achieved"), r.get("seed"), r["evaluator"], r.get("evaluator_version"),
                cond_s, cond_j, r["metric"], None if v is None else float(v), r.get("unit", ""),
                r.get("tag", ""), r.get("error"), r["job_key"], r.get("run_id"), r.get("created_at"))

    _INSERT_ROW = ("INSERT OR IGNORE INTO results (experiment, variant, method, budget_kind, budget_target, "
                   "budget_achieved, seed, evaluator, evaluator_version, condition, condition_json, metric, value, "
                   "unit, tag, error, job_key, run_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
    _INSERT_ARTIFACT = ("INSERT OR IGNORE INTO artifacts (job_key, experiment, variant, method, seed, evaluator, "
                        "name, path, created_at) VALUES (?,?,?,?,?,?,?,?,?)")

    def add_job(self, rows: Iterable[dict[str, Any]], artifacts: Iterable[dict[str, Any]] = ()) -> int:
        """Insert one job's measurement rows (keys from :data:`COLUMNS`, ``condition`` may be a dict) and
        artifact records (keyword arguments of :meth:`add_artifact`) in one transaction. Rows already
        stored (same :data:`UNIQUE_KEY`) are skipped. Returns the number of rows inserted."""
        recs = [self._row_tuple(r) for r in rows]
        arts = [(a["job_key"], a.get("experiment"), a.get("variant"), a.get("method"), a.get("seed"),
                 a.get("evaluator"), a["name"], str(a["path"]), a.get("created_at")) for a in artifacts]
        with self._conn() as c, self._tx(c):
            before = c.total_changes
            c.executemany(self._INSERT_ROW, recs)
            inserted = c.total_changes - before
            c.executemany(self._INSERT_ARTIFACT, arts)
        return inserted

    def add_rows(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert measurement dicts in one transaction (idempotent). Returns the number inserted."""
        return self.add_job(rows)

    def add_artifact(self, job_key: str, experiment: str, variant: str, method: str, seed: int | None,
                     evaluator: str, name: str, path: str | Path, created_at: str | None = None) -> None:
        """Record a file an evaluator wrote (an image, a JSON) so the report can embed it (once per job and name)."""
        with self._conn() as c, self._tx(c):
            c.execute(self._INSERT_ARTIFACT, (job_key, experiment, variant, method, seed, evaluator, name, str(path),
                                              created_at))

    def artifacts(self, experiment: str | None = None) -> list[dict[str, Any]]:
        q, args = "SELECT * FROM artifacts", []
        if experiment is not None:
            q, args = q + " WHERE experiment=?", [experiment]
        if self._dedup_reads:
            q += (" AND" if experiment is not None else " WHERE") + \
                " id IN (SELECT MIN(id) FROM artifacts GROUP BY job_key, name)"
        with self._conn() as c:
            c.row_factory = sqlite3.Row
            return [dict(r) for r in c.execute(q + " ORDER BY id", args)]

    # ------------------------------------------------------------------ reading
    def rows(self, experiment: str | None = None, **where: Any) -> list[dict[str, Any]]:
        """Rows in insertion order, each measurement once (the unique index guarantees it)."""
        q, args = "SELECT * FROM results", []
        conds = []
        if experiment is not None:
            where["experiment"] = experiment
        for k, v in where.items():
            if k not in COLUMNS and k != "id":
                raise ValueError(f"unknown results column '{k}'")
            conds.append(f"{k}=?")
            args.append(v)
        if self._dedup_reads:  # an unmigrated (read-only, version 1) store
            conds.append(f"(error IS NOT NULL OR id IN (SELECT MIN(id) FROM results WHERE error IS NULL "
                         f"GROUP BY {', '.join(UNIQUE_KEY)}))")
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


def _statements(script: str) -> list[str]:
    return [st.strip() for st in script.split(";") if st.strip()]


def load_results(path: str | Path, experiment: str | None = None):
    """Public API: the store's rows as a DataFrame."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no results store at {p}")
    return ResultStore(p).dataframe(experiment)
