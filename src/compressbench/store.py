"""The results store: SQLite, one flat typed row per measurement, append-only.

Tables
------
``runs``     one row per ``compressbench run`` invocation: provenance (resolved config, git hash,
             package versions, device, host, timestamp).
``run_plugins`` one row per run: its plug-in set (``config.PluginSet``: the user modules the config named,
             their folders, the entry-point plug-ins loaded), read by :meth:`ResultStore.runs` as
             ``plugins_json``. Added in place like ``declarations``.
``declarations`` one row per (run, evaluator): what the report needs of the evaluator's spec — its metric
             declarations, as JSON (:mod:`compressbench.declarations`), so a report renders a plug-in's
             metrics without its code. Added in place (created on the first write; an older compressbench
             ignores the table).
``results``  one row per measurement: experiment, variant, method, budget, seed, evaluator,
             condition, metric, value (unrounded float) — plus the job key, the run that produced
             it, a tag (``realised`` / ``theoretical`` / ``simulated`` / ``transfer`` ...), and for a
             failed job the error (value NULL, metric ``error``).
``superseded`` one row per job whose rows of one evaluator no reader uses any more: ``compressbench remeasure``
             re-timed the job and kept the quieter of the two measurements (:mod:`compressbench.remeasure`).
             Each row names the superseded job (experiment, variant, seed, evaluator, ``job_key``), the job kept
             instead (``by_job_key``), the run that decided (``run_id``), when (``at``) and why. The superseded
             rows stay in ``results`` untouched; :meth:`ResultStore.rows` leaves them out unless asked.

Nothing is updated. Each measurement is stored exactly once: a UNIQUE index over
(experiment, variant, job_key, evaluator, condition, metric) of the successful rows, and
``INSERT OR IGNORE``, so several drivers (or a re-run) writing the same job add nothing twice; the
first row written wins — unless it is damaged (below). An error row is kept once per (run, job, evaluator,
metric): each run that retries a failing job records its own failure. A job's rows and artifacts go in one
transaction.

**Row integrity** (schema 3). Every row of every table carries ``row_sha256``: sha256 over its table's name and
its values (:data:`HASHED`, :func:`row_hash`); a result row also carries ``record_sha256``, the content hash of
the job record (``result.json``) it was derived from. Reading verifies: :meth:`ResultStore.rows`, ``runs``,
``declarations`` and ``artifacts`` — so ``results``, ``report``, ``findings``, ``compare`` and ``export`` —
refuse a store with a row whose hash fails, in one line naming the first one and what to do
(``compressbench verify STORE --cache DIR`` shows them all and re-derives every row from its job record:
:mod:`compressbench.verify`). Writing a job's rows first deletes that job's rows that fail their hash, so
``compressbench run`` repairs a damaged row from the (verified) cache. Rows of a schema-2 store (written before
hashes) stay unhashed on migration — hashing them would bless whatever they hold — and are read with one
warning; ``compressbench verify STORE --cache DIR --rehash`` gives a hash to each one its job record re-derives
exactly.

Opening checks the file (SQLite header, ``PRAGMA quick_check``, the tables and columns of its schema) and says
in one line which file is damaged and what to do (:class:`~compressbench.errors.StoreError`); so does any
SQLite, UTF-8 or JSON error met later while reading a damaged file — never a traceback. Schema version 1 stores
(no uniqueness) are migrated on open: duplicates dropped (the first row kept), then the index created.
(≈ 520 lines: the schema, its migrations and the integrity of every table are one contract, read together.)
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

from .errors import StoreError

log = logging.getLogger("compressbench")

# 2: unique rows; 3: row_sha256 on every row, record_sha256 on results; 4: rows superseded by a re-timing (table
# ``superseded`` holds some). A store is created, and migrated, as 3; it becomes 4 when its first row is superseded,
# so an older compressbench refuses it then instead of showing superseded rows as current.
SCHEMA_VERSION = 4
BASE_VERSION = 3

COLUMNS = [
    "experiment",
    "variant",
    "method",
    "budget_kind",
    "budget_target",
    "budget_achieved",
    "seed",
    "evaluator",
    "evaluator_version",
    "condition",
    "metric",
    "value",
    "unit",
    "tag",
    "error",
    "job_key",
    "run_id",
    "created_at",
]

# the identity of a measurement (successful rows) and of a failure record (error rows)
UNIQUE_KEY = ("experiment", "variant", "job_key", "evaluator", "condition", "metric")
ERROR_KEY = ("run_id", "job_key", "evaluator", "metric")

_DECLARATIONS = """
CREATE TABLE IF NOT EXISTS declarations (
    run_id TEXT NOT NULL, evaluator TEXT NOT NULL, evaluator_version INTEGER, json TEXT NOT NULL, row_sha256 TEXT,
    PRIMARY KEY (run_id, evaluator))"""

# each run's plug-in set (``config.PluginSet``), added in place like ``declarations``
_PLUGINS = "CREATE TABLE IF NOT EXISTS run_plugins (run_id TEXT PRIMARY KEY, json TEXT NOT NULL, row_sha256 TEXT)"

# rows no reader uses any more (``compressbench remeasure`` kept another measurement of the same keys): created with
# the first such row, which makes the store schema 4 (a store never re-timed keeps schema 3's tables and layout)
_SUPERSEDED = """
CREATE TABLE IF NOT EXISTS superseded (
    experiment TEXT NOT NULL, variant TEXT NOT NULL, seed INTEGER, evaluator TEXT NOT NULL, job_key TEXT NOT NULL,
    by_job_key TEXT NOT NULL, run_id TEXT, at TEXT, why TEXT, row_sha256 TEXT,
    PRIMARY KEY (experiment, variant, evaluator, job_key))"""

_TABLES = (
    _DECLARATIONS
    + ";\n"
    + _PLUGINS
    + """;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, experiment TEXT, started_at TEXT, config_json TEXT, git_hash TEXT,
    versions_json TEXT, device TEXT, host_json TEXT, row_sha256 TEXT);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment TEXT NOT NULL, variant TEXT NOT NULL, method TEXT NOT NULL,
    budget_kind TEXT, budget_target REAL, budget_achieved REAL, seed INTEGER,
    evaluator TEXT NOT NULL, evaluator_version INTEGER, condition TEXT NOT NULL DEFAULT '',
    condition_json TEXT NOT NULL DEFAULT '{}', metric TEXT NOT NULL, value REAL, unit TEXT DEFAULT '',
    tag TEXT DEFAULT '', error TEXT, job_key TEXT NOT NULL, run_id TEXT, created_at TEXT, record_sha256 TEXT,
    row_sha256 TEXT);
CREATE TABLE IF NOT EXISTS artifacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job_key TEXT NOT NULL, experiment TEXT, variant TEXT, method TEXT,
    seed INTEGER, evaluator TEXT, name TEXT, path TEXT, created_at TEXT, row_sha256 TEXT);
CREATE INDEX IF NOT EXISTS results_job ON results(job_key);
CREATE INDEX IF NOT EXISTS results_exp ON results(experiment, variant, evaluator);
"""
)

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

# the hashed columns of each table, in order, with their SQLite types (values are normalised to what SQLite
# hands back: REAL -> float, NaN -> NULL; INTEGER -> int; TEXT -> str), so a row read back hashes as written
HASHED: dict[str, tuple[tuple[str, str], ...]] = {
    "results": (
        ("experiment", "T"),
        ("variant", "T"),
        ("method", "T"),
        ("budget_kind", "T"),
        ("budget_target", "R"),
        ("budget_achieved", "R"),
        ("seed", "I"),
        ("evaluator", "T"),
        ("evaluator_version", "I"),
        ("condition", "T"),
        ("condition_json", "T"),
        ("metric", "T"),
        ("value", "R"),
        ("unit", "T"),
        ("tag", "T"),
        ("error", "T"),
        ("job_key", "T"),
        ("run_id", "T"),
        ("created_at", "T"),
        ("record_sha256", "T"),
    ),
    "runs": (
        ("run_id", "T"),
        ("experiment", "T"),
        ("started_at", "T"),
        ("config_json", "T"),
        ("git_hash", "T"),
        ("versions_json", "T"),
        ("device", "T"),
        ("host_json", "T"),
    ),
    "declarations": (("run_id", "T"), ("evaluator", "T"), ("evaluator_version", "I"), ("json", "T")),
    "run_plugins": (("run_id", "T"), ("json", "T")),
    "artifacts": (
        ("job_key", "T"),
        ("experiment", "T"),
        ("variant", "T"),
        ("method", "T"),
        ("seed", "I"),
        ("evaluator", "T"),
        ("name", "T"),
        ("path", "T"),
        ("created_at", "T"),
    ),
    "superseded": (
        ("experiment", "T"),
        ("variant", "T"),
        ("seed", "I"),
        ("evaluator", "T"),
        ("job_key", "T"),
        ("by_job_key", "T"),
        ("run_id", "T"),
        ("at", "T"),
        ("why", "T"),
    ),
}
# a store of any version has these (declarations / run_plugins are added on the first write)
_REQUIRED = ("meta", "runs", "results", "artifacts")
_ADDED_IN_3 = {
    "results": ("record_sha256", "row_sha256"),
    "runs": ("row_sha256",),
    "artifacts": ("row_sha256",),
    "declarations": ("row_sha256",),
    "run_plugins": ("row_sha256",),
}

_SQLITE_MAGIC = b"SQLite format 3\x00"
_WHAT_TO_DO = (
    "move it away (e.g. `mv {p} {p}.damaged`); the cache still holds every finished job, so "
    "`compressbench run` rebuilds the rows"
)


def condition_str(cond: dict[str, Any]) -> str:
    """Canonical, readable condition label: ``corruption=fog,severity=3``."""
    return ",".join(f"{k}={cond[k]}" for k in sorted(cond))


def _norm(v: Any, kind: str) -> Any:
    """A value as SQLite hands it back from a column of type ``kind`` (R: REAL, I: INTEGER, T: TEXT)."""
    if v is None:
        return None
    if kind == "R":
        f = float(v)
        return None if math.isnan(f) else f  # SQLite stores NaN as NULL
    if kind == "I":
        return int(v)
    return v if isinstance(v, str) else str(v)


def row_hash(table: str, row: dict[str, Any]) -> str:
    """sha256 over ``table`` and the row's :data:`HASHED` values (normalised as SQLite returns them)."""
    vals = [_norm(row.get(c), k) for c, k in HASHED[table]]
    return hashlib.sha256(json.dumps([table, vals], separators=(",", ":"), allow_nan=True).encode()).hexdigest()


def hashed_values(table: str, row: dict[str, Any]) -> tuple:
    """The row's :data:`HASHED` values, normalised, followed by its ``row_sha256`` (the INSERT's parameters)."""
    return (*(_norm(row.get(c), k) for c, k in HASHED[table]), row_hash(table, row))


def _insert(table: str) -> str:
    cols = [c for c, _ in HASHED[table]] + ["row_sha256"]
    return f"INSERT OR IGNORE INTO {table} ({', '.join(cols)}) VALUES ({','.join('?' * len(cols))})"


@dataclass
class TableCheck:
    """What :meth:`ResultStore.check_table` found: rows read, rows whose hash fails (``id``/key, why), rows
    without a hash (written before schema 3)."""

    table: str
    rows: int = 0
    bad: list[tuple[Any, str]] = field(default_factory=list)
    unhashed: int = 0


F = TypeVar("F", bound=Callable[..., Any])


def _guarded(fn: F) -> F:
    """A damaged file met while reading or writing (an SQLite error, text that is not UTF-8, JSON that does not
    parse) is one :class:`StoreError` line naming the store, never a traceback."""

    @functools.wraps(fn)
    def wrapper(self: ResultStore, *a: Any, **k: Any) -> Any:
        try:
            return fn(self, *a, **k)
        except StoreError:
            raise
        except (sqlite3.DatabaseError, UnicodeDecodeError, json.JSONDecodeError) as e:
            if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
                raise StoreError(
                    f"{self.path}: the results store stayed locked by another process for 60 s ({e})"
                ) from None
            detail = " ".join(str(e).split())[:160] or type(e).__name__
            raise self._damaged(f"{type(e).__name__}: {detail}") from None

    return wrapper  # type: ignore[return-value]


class ResultStore:
    """SQLite results store. Safe to open from several processes (WAL, short transactions, unique rows)."""

    _warned_unhashed: set[str] = set()  # stores whose unhashed rows were reported (once per process)

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._dedup_reads = False  # a version-1 store we could not migrate (read-only): dedup when reading
        self._unhashed_ok = False  # a schema-2 store opened read-only: its rows carry no hash columns
        self._prepare_path()
        self._check_header()
        try:
            self._open_schema()
        except StoreError:
            raise
        except (sqlite3.DatabaseError, UnicodeDecodeError, ValueError) as e:  # "file is not a database" ...
            raise self._damaged(" ".join(str(e).split())[:160]) from None

    # ------------------------------------------------------------------ opening
    def _damaged(self, detail: str) -> StoreError:
        return StoreError(f"{self.path}: the results store is damaged ({detail}); " + _WHAT_TO_DO.format(p=self.path))

    def _prepare_path(self) -> None:
        p = self.path
        if p.is_dir():
            raise StoreError(
                f"{p}: the results store path is a folder, not a file; set 'store' to a file path "
                f"(e.g. {p / 'results.sqlite'})"
            )
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            blocker = next((q for q in [p.parent, *p.parent.parents] if q.exists() and not q.is_dir()), p.parent)
            raise StoreError(
                f"{p}: cannot create the store's folder: {blocker} is a file, not a folder; move it "
                f"away or choose another 'store' path"
            ) from None
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
            if version is not None:
                self._check_tables(c, version)
            elif any(self._columns(c, t) for t in _REQUIRED):
                raise self._damaged("its schema version (table 'meta') is missing: a partial or damaged store")
            if version is not None and BASE_VERSION <= version <= SCHEMA_VERSION:
                return
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: written by a newer compressbench (store schema {version}, this version "
                    f"reads up to {SCHEMA_VERSION}); upgrade compressbench or use another store"
                )
            try:
                with self._tx(c):
                    version = self._version(c)  # another process may have migrated it meanwhile
                    if version is None:
                        for stmt in _statements(_TABLES + _UNIQUE):
                            c.execute(stmt)
                        c.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(BASE_VERSION),))
                    elif version < BASE_VERSION:
                        self._migrate(c, version)
            except sqlite3.OperationalError as e:
                if "readonly" not in str(e) and "read-only" not in str(e):
                    raise
                if version is None:
                    raise StoreError(f"{self.path}: cannot create the results store ({e})") from None
                self._dedup_reads = version < 2  # readable as is; duplicates hidden when reading
                self._unhashed_ok = True

    def _migrate(self, c: sqlite3.Connection, version: int) -> None:
        """Schema 1 -> 2 (unique rows: duplicates dropped) -> 3 (hash columns added; old rows stay unhashed)."""
        if version < 2:
            for stmt in _statements(_TABLES + _DEDUP + _UNIQUE):
                c.execute(stmt)
        for table, cols in _ADDED_IN_3.items():
            have = self._columns(c, table)
            for col in cols:
                if have and col not in have:
                    c.execute(f"ALTER TABLE {table} ADD COLUMN {col} TEXT")
        c.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(BASE_VERSION),))

    @staticmethod
    def _columns(c: sqlite3.Connection, table: str) -> set[str]:
        return {r[1] for r in c.execute(f"PRAGMA table_info({table})")}

    def _check_tables(self, c: sqlite3.Connection, version: int) -> None:
        """A store that says it has a schema has its tables and their columns (a dropped ``results`` table, a
        partial copy: one line, before any work)."""
        for table in _REQUIRED:
            have = self._columns(c, table)
            if not have:
                raise self._damaged(f"its '{table}' table is missing: a partial or damaged store")
            want = {col for col, _ in HASHED.get(table, ())} - set(_ADDED_IN_3.get(table, ()))
            if version >= 3:
                want |= set(_ADDED_IN_3.get(table, ()))
            missing = sorted(want - have)
            if missing:
                raise self._damaged(f"its '{table}' table lacks column(s) {', '.join(missing)}")
        if version >= 4 and not self._columns(c, "superseded"):
            raise self._damaged("its 'superseded' table is missing (schema 4): a partial or damaged store")

    @staticmethod
    def _version(c: sqlite3.Connection) -> int | None:
        if not c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone():
            return None
        row = c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        try:
            return int(row[0]) if row else None
        except (TypeError, ValueError):
            raise sqlite3.DatabaseError(f"schema_version {str(row[0])[:20]!r} is not a number") from None

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
            raise StoreError(
                f"{p}: the results store (or its folder) is not writable; fix the permissions or "
                f"choose another 'store' path"
            )

    # ------------------------------------------------------------------ integrity
    def check_table(self, rows: Iterable[dict[str, Any]], table: str = "results") -> TableCheck:
        """Recompute each row's hash (rows as read: ``SELECT *``). Never raises for a bad row."""
        out = TableCheck(table)
        for r in rows:
            out.rows += 1
            stored = r.get("row_sha256")
            if stored is None:
                out.unhashed += 1
            elif stored != row_hash(table, r):
                out.bad.append((r.get("id", r.get("run_id")), _describe(table, r)))
        return out

    def _verified(self, rows: list[dict[str, Any]], table: str) -> list[dict[str, Any]]:
        """``rows``, after checking their hashes: a row that fails is one :class:`StoreError` line (the
        report refuses to show a number that is not the one measured); unhashed rows warn once."""
        chk = self.check_table(rows, table)
        if chk.bad:
            what = chk.bad[0][1]
            fix = (
                "`compressbench run` replaces them from the cache"
                if table in ("results", "artifacts")
                else "which re-timing was kept cannot be rebuilt: move the store away and `compressbench run` again"
                if table == "superseded"
                else "a run's provenance cannot be rebuilt: move the store away and `compressbench run` again "
                "(the cache holds every job)"
            )
            raise StoreError(
                f"{self.path}: {len(chk.bad)} of {chk.rows} {table} row(s) fail their integrity hash "
                f"(first: {what}): the store changed after they were written; `compressbench verify "
                f"{self.path} --cache CACHE_DIR` lists them; {fix}"
            )
        if chk.unhashed and str(self.path) not in ResultStore._warned_unhashed:
            ResultStore._warned_unhashed.add(str(self.path))
            log.warning(
                "%s: %d row(s) were written before rows carried hashes (schema 2) and cannot be checked; "
                "`compressbench verify %s --cache CACHE_DIR --rehash` re-derives them from the cache",
                self.path,
                chk.unhashed,
                self.path,
            )
        return rows

    @_guarded
    def verify(self) -> dict[str, TableCheck]:
        """Every table's rows checked against their hashes (``compressbench verify``)."""
        out: dict[str, TableCheck] = {}
        with self._conn() as c:
            c.row_factory = sqlite3.Row
            for table in HASHED:
                if "row_sha256" not in self._columns(c, table):
                    out[table] = TableCheck(
                        table,
                        c.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] if self._columns(c, table) else 0,
                    )
                    out[table].unhashed = out[table].rows
                    continue
                out[table] = self.check_table((dict(r) for r in c.execute(f"SELECT * FROM {table}")), table)
        return out

    @_guarded
    def raw_rows(self) -> list[dict[str, Any]]:
        """Every results row as stored (``condition_json`` as text), unverified: for ``compressbench verify``."""
        with self._conn() as c:
            c.row_factory = sqlite3.Row
            return [dict(r) for r in c.execute("SELECT * FROM results ORDER BY id")]

    @_guarded
    def rehash(self, hashes: dict[int, tuple[str, str]]) -> int:
        """Give unhashed result rows ``{id: (record_sha256, row_sha256)}`` (``verify --rehash``: rows their job
        record re-derived exactly). Returns how many were updated."""
        with self._conn() as c, self._tx(c):
            before = c.total_changes
            c.executemany(
                "UPDATE results SET record_sha256=?, row_sha256=? WHERE id=? AND row_sha256 IS NULL",
                [(rec, row, i) for i, (rec, row) in hashes.items()],
            )
            return c.total_changes - before

    # ------------------------------------------------------------------ writing
    @_guarded
    def add_run(
        self,
        run_id: str,
        experiment: str,
        started_at: str,
        config: dict,
        git_hash: str | None,
        versions: dict,
        device: str,
        host: dict,
        plugins: dict | None = None,
    ) -> None:
        run = {
            "run_id": run_id,
            "experiment": experiment,
            "started_at": started_at,
            "config_json": json.dumps(config, sort_keys=True, default=str),
            "git_hash": git_hash,
            "versions_json": json.dumps(versions, sort_keys=True),
            "device": device,
            "host_json": json.dumps(host, sort_keys=True),
        }
        with self._conn() as c, self._tx(c):
            c.execute(_insert("runs"), hashed_values("runs", run))
            c.execute(_PLUGINS)
            c.execute(
                _insert("run_plugins"),
                hashed_values("run_plugins", {"run_id": run_id, "json": json.dumps(plugins or {}, sort_keys=True)}),
            )

    @_guarded
    def add_declarations(self, run_id: str, records: dict[str, str], versions: dict[str, int]) -> None:
        """Store each evaluator's declarations (``records``: evaluator -> JSON) for run ``run_id``, once."""
        with self._conn() as c, self._tx(c):
            c.execute(_DECLARATIONS)
            c.executemany(
                _insert("declarations"),
                [
                    hashed_values(
                        "declarations",
                        {"run_id": run_id, "evaluator": ev, "evaluator_version": versions.get(ev), "json": js},
                    )
                    for ev, js in records.items()
                ],
            )

    @_guarded
    def declarations(self, run_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``{run_id: {evaluator: record}}`` of these runs ({} for a store without the table)."""
        ids = list(run_ids)
        with self._conn() as c:
            if (
                not ids
                or not c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='declarations'").fetchone()
            ):
                return {}
            c.row_factory = sqlite3.Row
            rows = [
                dict(r)
                for r in c.execute(f"SELECT * FROM declarations WHERE run_id IN ({','.join('?' * len(ids))})", ids)
            ]
        out: dict[str, dict[str, Any]] = {}
        for r in self._verified(rows, "declarations"):
            out.setdefault(r["run_id"], {})[r["evaluator"]] = json.loads(r["json"])
        return out

    @_guarded
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
    def _row_values(r: dict[str, Any]) -> tuple:
        cond = r.get("condition") or {}
        if isinstance(cond, str):
            cond_s, cond_j = cond, "{}"
        else:
            cond_s, cond_j = condition_str(cond), json.dumps(cond, sort_keys=True, default=str)
        row = {**r, "condition": cond_s, "condition_json": cond_j, "unit": r.get("unit", ""), "tag": r.get("tag", "")}
        return hashed_values("results", row)

    @staticmethod
    def _artifact_values(a: dict[str, Any]) -> tuple:
        return hashed_values("artifacts", {**a, "path": str(a["path"])})

    def _drop_damaged(self, c: sqlite3.Connection, job_keys: set[str]) -> int:
        """Delete the rows of these jobs whose hash fails (a damaged row would otherwise win over the fresh one
        by the unique key). Returns how many."""
        c.row_factory = sqlite3.Row
        n = 0
        for table in ("results", "artifacts"):
            bad: list[int] = []
            for key in job_keys:
                rows = [dict(r) for r in c.execute(f"SELECT * FROM {table} WHERE job_key=?", (key,))]
                bad += [r["id"] for r in rows if r["row_sha256"] is not None and r["row_sha256"] != row_hash(table, r)]
            c.executemany(f"DELETE FROM {table} WHERE id=?", [(i,) for i in bad])
            n += len(bad)
        c.row_factory = None
        if n:
            log.warning(
                "%s: replaced %d damaged row(s) (their hash failed) with the job's verified record", self.path, n
            )
        return n

    @_guarded
    def add_job(
        self,
        rows: Iterable[dict[str, Any]],
        artifacts: Iterable[dict[str, Any]] = (),
        superseded: Iterable[dict[str, Any]] = (),
    ) -> int:
        """Insert one job's measurement rows (keys from :data:`COLUMNS`, ``condition`` may be a dict, plus the
        job record's ``record_sha256``) and artifact records (keyword arguments of :meth:`add_artifact`) in one
        transaction, each with its row hash. Rows already stored (same :data:`UNIQUE_KEY`) are skipped, unless
        their hash fails: those are replaced. ``superseded`` (``compressbench remeasure``): rows of the
        ``superseded`` table (:data:`HASHED`), written in the same transaction; the store becomes schema 4.
        Returns the number of rows inserted."""
        rows = list(rows)
        recs = [self._row_values(r) for r in rows]
        arts = [self._artifact_values(a) for a in artifacts]
        sups = [hashed_values("superseded", s) for s in superseded]
        with self._conn() as c, self._tx(c):
            self._drop_damaged(c, {r["job_key"] for r in rows if r.get("error") is None})
            before = c.total_changes
            c.executemany(_insert("results"), recs)
            inserted = c.total_changes - before
            c.executemany(_insert("artifacts"), arts)
            if sups:
                c.execute(_SUPERSEDED)
                c.executemany(_insert("superseded"), sups)
                c.execute(
                    "UPDATE meta SET value=? WHERE key='schema_version' AND CAST(value AS INTEGER) < ?",
                    (str(SCHEMA_VERSION), SCHEMA_VERSION),
                )
        return inserted

    def add_rows(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert measurement dicts in one transaction (idempotent). Returns the number inserted."""
        return self.add_job(rows)

    @_guarded
    def add_artifact(
        self,
        job_key: str,
        experiment: str,
        variant: str,
        method: str,
        seed: int | None,
        evaluator: str,
        name: str,
        path: str | Path,
        created_at: str | None = None,
    ) -> None:
        """Record a file an evaluator wrote (an image, a JSON) so the report can embed it (once per job and name)."""
        with self._conn() as c, self._tx(c):
            c.execute(
                _insert("artifacts"),
                self._artifact_values(
                    dict(
                        job_key=job_key,
                        experiment=experiment,
                        variant=variant,
                        method=method,
                        seed=seed,
                        evaluator=evaluator,
                        name=name,
                        path=path,
                        created_at=created_at,
                    )
                ),
            )

    @_guarded
    def artifacts(self, experiment: str | None = None) -> list[dict[str, Any]]:
        q, args = "SELECT * FROM artifacts", []
        if experiment is not None:
            q, args = q + " WHERE experiment=?", [experiment]
        if self._dedup_reads:
            q += (
                " AND" if experiment is not None else " WHERE"
            ) + " id IN (SELECT MIN(id) FROM artifacts GROUP BY job_key, name)"
        with self._conn() as c:
            c.row_factory = sqlite3.Row
            out = self._verified([dict(r) for r in c.execute(q + " ORDER BY id", args)], "artifacts")
        gone = self._superseded_keys()
        return [a for a in out if (a["experiment"], a["variant"], a["evaluator"], a["job_key"]) not in gone]

    @_guarded
    def superseded(self, experiment: str | None = None) -> list[dict[str, Any]]:
        """The ``superseded`` table's rows (each checked against its hash), oldest first: which job's rows a
        re-timing replaced, by which job, when and why ([] for a store without the table)."""
        with self._conn() as c:
            if not c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='superseded'").fetchone():
                return []
            c.row_factory = sqlite3.Row
            q, args = "SELECT * FROM superseded", []
            if experiment is not None:
                q, args = q + " WHERE experiment=?", [experiment]
            rows = [dict(r) for r in c.execute(q + " ORDER BY at, rowid", args)]
        return self._verified(rows, "superseded")

    def _superseded_keys(self) -> set[tuple[str, str, str, str]]:
        return {(s["experiment"], s["variant"], s["evaluator"], s["job_key"]) for s in self.superseded()}

    # ------------------------------------------------------------------ reading
    @_guarded
    def rows(self, experiment: str | None = None, superseded: bool = False, **where: Any) -> list[dict[str, Any]]:
        """Rows in insertion order, each measurement once (the unique index guarantees it), each checked
        against its hash (one :class:`StoreError` line if any fails). Rows a re-timing superseded (table
        ``superseded``) are left out unless ``superseded``: every reader sees the measurement that was kept."""
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
            conds.append(
                f"(error IS NOT NULL OR id IN (SELECT MIN(id) FROM results WHERE error IS NULL "
                f"GROUP BY {', '.join(UNIQUE_KEY)}))"
            )
        if conds:
            q += " WHERE " + " AND ".join(conds)
        q += " ORDER BY id"
        with self._conn() as c:
            c.row_factory = sqlite3.Row
            out = self._verified([dict(r) for r in c.execute(q, args)], "results")
        if not superseded:
            gone = self._superseded_keys()
            if gone:
                out = [r for r in out if (r["experiment"], r["variant"], r["evaluator"], r["job_key"]) not in gone]
        for r in out:
            r["condition_json"] = json.loads(r["condition_json"] or "{}")
        return out

    @_guarded
    def runs(self) -> list[dict[str, Any]]:
        """Every run's provenance, ``plugins_json`` included ({} for a run stored without its plug-in set)."""
        with self._conn() as c:
            c.row_factory = sqlite3.Row
            out = self._verified([dict(r) for r in c.execute("SELECT * FROM runs ORDER BY started_at")], "runs")
            has = c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='run_plugins'").fetchone()
            prows = [dict(r) for r in c.execute("SELECT * FROM run_plugins")] if has else []
        plugins = {r["run_id"]: r["json"] for r in self._verified(prows, "run_plugins")}
        for r in out:
            r["plugins_json"] = plugins.get(r["run_id"])
            for k in ("config_json", "versions_json", "host_json", "plugins_json"):
                r[k] = json.loads(r[k] or "{}")
        return out

    def dataframe(self, experiment: str | None = None):
        """All rows as a pandas DataFrame (``condition_json`` parsed into a dict column)."""
        import pandas as pd

        rows = self.rows(experiment)
        if not rows:
            return pd.DataFrame(columns=["id"] + COLUMNS + ["condition_json"])
        return pd.DataFrame(rows)

    @_guarded
    def experiments(self) -> list[str]:
        with self._conn() as c:
            return [r[0] for r in c.execute("SELECT DISTINCT experiment FROM results ORDER BY experiment")]


def _describe(table: str, r: dict[str, Any]) -> str:
    """A row for a message: the results row's labels, or another table's key."""
    if table == "results":
        return (
            f"id {r.get('id')}: {r.get('experiment')} / {r.get('variant')} / {r.get('evaluator')} "
            f"{r.get('condition') or ''} {r.get('metric')}"
        ).replace("  ", " ")
    if table == "artifacts":
        return f"artifact id {r.get('id')} ({r.get('name')})"
    return f"{table} row of run {r.get('run_id')}" + (f" / {r['evaluator']}" if r.get("evaluator") else "")


def _statements(script: str) -> list[str]:
    return [st.strip() for st in script.split(";") if st.strip()]


def open_existing(path: str | Path) -> ResultStore:
    """An existing compressbench store, opened; :class:`StoreError` (one line) for a path that is not one: absent,
    not an SQLite file, or an SQLite file without a compressbench schema (opening that with :class:`ResultStore`
    would create the schema in it). For commands that change a store they did not create (``remeasure``)."""
    p = Path(path)
    if not p.is_file():
        raise StoreError(f"{p}: no results store there")
    try:
        with open(p, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise StoreError(f"{p}: cannot read the results store ({e.strerror})") from None
    if head != _SQLITE_MAGIC:
        raise StoreError(f"{p}: not a compressbench results store (not an SQLite file)")
    try:
        conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        try:
            version = ResultStore._version(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise StoreError(
            f"{p}: not a readable compressbench results store ({' '.join(str(e).split())[:120]})"
        ) from None
    if version is None:
        raise StoreError(
            f"{p}: an SQLite file, but not a compressbench results store (no schema version in a 'meta' table)"
        )
    return ResultStore(p)


def load_results(path: str | Path, experiment: str | None = None):
    """Public API: the store's rows as a DataFrame."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no results store at {p}")
    return ResultStore(p).dataframe(experiment)
