"""Reliability: loading runs no code, artifacts are verified, the store and the cache are checked before
any work, concurrent drivers write each row once and run each job once (docs/reliability.md).

Real files, real SQLite, real subprocesses; nothing is mocked. The experiment is tiny (digits,
tinycnn, one pruned variant, clean + agreement: 6 jobs, a few seconds)."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import pickle
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from compressbench import execute
from compressbench.checkpoint import atomic_write_bytes, load_model, save_model
from compressbench.cli import main as cli_main
from compressbench.config import ConfigError
from compressbench.data.base import DataMeta
from compressbench.errors import CacheError, CheckpointError, StoreError
from compressbench.execute import claim_job, clean_stale_tmp, file_sha256
from compressbench.models import create_model
from compressbench.registry import models
from compressbench.runner import run
from compressbench.store import ResultStore
from compressbench.validate import validate

SRC = str(Path(__file__).resolve().parents[1] / "src")
META = DataMeta("t", 10, 1, (8, 8), (0.5,), (0.25,))
RAW = {
    "name": "rel",
    "seeds": [0],
    "threads": 1,  # the same numbers in this process and in CLI subprocesses
    "dataset": {"name": "digits", "eval_subset": 200},
    "model": {"name": "tinycnn"},
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.2, "augment": "none"},
    "variants": [{"method": "prune.unstructured", "params": {"finetune": {"epochs": 1}}, "budget": {"params": 0.5}}],
    "evaluations": [{"evaluator": "clean"}, {"evaluator": "agreement"}],
}
N_JOBS = 6
NONDETERMINISTIC = ("train_seconds", "train_images_per_s")


def _raw(d: Path, **over) -> dict:
    return {**RAW, "cache_dir": str(d / "cache"), "store": str(d / "r.sqlite"), **over}


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=SRC, COMPRESSBENCH_PROGRESS="0")


def _cli(*args, cwd=None, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "compressbench", *args], capture_output=True, text=True, cwd=cwd, env=env or _env(), **kw
    )


def _values(store: Path) -> dict:
    """{(variant, evaluator, condition, metric): value} of the successful rows; asserts each appears once."""
    with sqlite3.connect(store) as c:
        rows = c.execute(
            "SELECT variant, evaluator, condition, metric, value FROM results WHERE error IS NULL "
            "AND metric NOT IN (?, ?)",
            NONDETERMINISTIC,
        ).fetchall()
    out = {r[:4]: r[4] for r in rows}
    assert len(out) == len(rows), "a measurement is stored twice"
    return out


def _job_dirs(cache: Path) -> dict[str, Path]:
    """{describe-ish label: job folder} from each result.json ('train', 'compress', 'evaluate:<evaluator>:<kind>')."""
    out = {}
    for f in (cache / "jobs").glob("*/result.json"):
        rec = json.loads(f.read_text())
        label = rec["kind"]
        if rec["kind"] == "evaluate":
            on = "variant" if rec["spec"]["model_job"] != rec["spec"]["parent_job"] else "baseline"
            label += f":{rec['spec']['evaluator']}:{on}"
        out[label] = f.parent
    return out


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """An uninterrupted run (umask 022): its folder, cache and values."""
    d = tmp_path_factory.mktemp("pristine")
    old = os.umask(0o022)
    try:
        s = run(validate(_raw(d)), progress=False)
    finally:
        os.umask(old)
    assert (s.ran, s.failed) == (N_JOBS, 0)
    return d


def _copy_cache(pristine: Path, d: Path) -> Path:
    shutil.copytree(pristine / "cache", d / "cache")
    return d / "cache"


def _measurements(job: Path) -> list:
    return [
        m for m in json.loads((job / "result.json").read_text())["measurements"] if m["metric"] not in NONDETERMINISTIC
    ]


# =========================================================================== 1-2: loading runs no code
EVIL_MODULE = """
from pathlib import Path
Path({marker!r}).write_text("imported")          # runs on import
def build(meta, width=1.0, **kw):
    Path({marker!r} + ".called").write_text("called")
    import torch.nn as nn
    return nn.Sequential(nn.Flatten(), nn.Linear(meta.channels * meta.size[0] * meta.size[1], meta.num_classes))
"""


def _factory_checkpoint(tmp_path: Path, monkeypatch, modname: str) -> tuple[Path, Path]:
    """A checkpoint whose spec names ``<modname>:build``, a module in a folder on sys.path that touches
    a marker file when imported. The checkpoint is written by hand (nothing resolved in this process)."""
    marker = tmp_path / f"{modname}.marker"
    (tmp_path / f"{modname}.py").write_text(EVIL_MODULE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    from compressbench.models import Classifier

    path = save_model(
        Classifier(net, META.mean, META.std),
        tmp_path / "user.pt",
        {"model": f"{modname}:build", "width": 1.0, "kwargs": {}, "meta": META.to_dict()},
    )
    return path, marker


def test_checkpoint_naming_os_system_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = save_model(
        create_model("tinycnn", META),
        tmp_path / "evil.pt",
        {"model": "os:system", "width": 1.0, "kwargs": {"command": f"touch {marker}"}, "meta": META.to_dict()},
    )
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "'os:system'" in msg and "trust=True" in msg
    assert "--trust-code" in msg and not marker.exists() and "os:system" not in models


def test_checkpoint_naming_a_local_module_imports_nothing(tmp_path, monkeypatch):
    path, marker = _factory_checkpoint(tmp_path, monkeypatch, "cb_evil_mod")
    with pytest.raises(CheckpointError, match="cb_evil_mod:build.*not registered") as e:
        load_model(path)
    assert "\n" not in str(e.value)
    assert not marker.exists() and "cb_evil_mod" not in sys.modules  # not even imported


def test_trusted_or_user_named_factory_loads(tmp_path, monkeypatch):
    path, marker = _factory_checkpoint(tmp_path, monkeypatch, "cb_legit_mod")
    try:
        model, ck = load_model(path, trust=True)  # the caller vouches for the file
        assert marker.exists() and model(torch.rand(2, 1, 8, 8)).shape == (2, 10)
        # naming the factory in a config resolves it; then loading needs no trust
        # (no variants: this flatten-linear model has no layer but its head for pruning, which validate refuses)
        validate({**RAW, "model": {"name": "cb_legit_mod:build"}, "variants": []})
        load_model(path)
    finally:
        models.unregister("cb_legit_mod:build")


def test_distill_student_name_is_resolved_at_validation(tmp_path, monkeypatch):
    marker = tmp_path / "cb_student_mod.marker"
    (tmp_path / "cb_student_mod.py").write_text(EVIL_MODULE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        validate({**RAW, "variants": [{"method": "distill", "params": {"student": {"model": "cb_student_mod:build"}}}]})
        assert marker.exists() and "cb_student_mod:build" in models  # the distill rebuilder will find it
    finally:
        models.unregister("cb_student_mod:build")
    msg = str(
        pytest.raises(
            ConfigError,
            validate,
            {**RAW, "variants": [{"method": "distill", "params": {"student": {"model": "cb_no_such_mod:build"}}}]},
        ).value
    )
    assert "variants[0].params.student.model" in msg and "cannot import" in msg


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_unsafe_pickle_is_one_line(tmp_path):
    marker = tmp_path / "pwned"
    bad = {"reduce.pt": None, "plain.pt": None, "truncated.pt": None, "garbage.pt": None, "empty.pt": None}
    torch.save({"spec": _Evil(str(marker))}, tmp_path / "reduce.pt")
    (tmp_path / "plain.pt").write_bytes(pickle.dumps(_Evil(str(marker))))
    good = save_model(
        create_model("tinycnn", META),
        tmp_path / "good.pt",
        {"model": "tinycnn", "width": 1.0, "kwargs": {}, "meta": META.to_dict()},
    ).read_bytes()
    (tmp_path / "truncated.pt").write_bytes(good[: len(good) // 2])
    (tmp_path / "garbage.pt").write_bytes(os.urandom(3000))
    (tmp_path / "empty.pt").write_bytes(b"")
    for name in bad:
        with pytest.raises(CheckpointError) as e:
            load_model(tmp_path / name)
        bad[name] = str(e.value)
        assert "\n" not in bad[name] and str(tmp_path / name) in bad[name], bad[name]
    assert "unsafe pickle" in bad["reduce.pt"] and "posix.system" in bad["reduce.pt"]
    assert "not a compressbench checkpoint" in bad["plain.pt"]
    assert "damaged or truncated" in bad["truncated.pt"] and "damaged or truncated" in bad["empty.pt"]
    assert not marker.exists()


def test_profile_cli_refuses_code_and_pickles_with_one_line(tmp_path, capsys):
    marker = tmp_path / "pwned"
    torch.save({"spec": _Evil(str(marker))}, tmp_path / "reduce.pt")
    mod_marker = tmp_path / "cb_cli_mod.marker"
    (tmp_path / "cb_cli_mod.py").write_text(EVIL_MODULE.format(marker=str(mod_marker)))
    from compressbench.models import Classifier

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    save_model(
        Classifier(net, META.mean, META.std),
        tmp_path / "user.pt",
        {"model": "cb_cli_mod:build", "width": 1.0, "kwargs": {}, "meta": META.to_dict()},
    )
    r = _cli("profile", "reduce.pt", "--no-timing", "--no-onnx", cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "unsafe pickle" in lines[0] and "Traceback" not in r.stderr
    assert cli_main(["profile", str(tmp_path / "user.pt"), "--no-timing", "--no-onnx"]) == 2
    assert "--trust-code" in _one_line(capsys)
    assert not marker.exists() and not mod_marker.exists()
    # trusted: the factory is imported here and in the fresh timing process (trust travels in the job JSON)
    r = _cli(
        "profile",
        "user.pt",
        "--trust-code",
        "--no-onnx",
        "--repeats",
        "3",
        "--throughput-repeats",
        "1",
        "--warmup",
        "1",
        "--batch",
        "0",
        "--json",
        "p.json",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "p.json").read_text())
    assert rep["torch"]["latency"]["n"] == 3 and mod_marker.exists()


# =========================================================================== 3: artifact integrity
def test_result_json_records_checksums(pristine):
    jobs = _job_dirs(pristine / "cache")
    rec = json.loads((jobs["compress"] / "result.json").read_text())
    assert set(rec["files"]) >= {"model.pt", "record.json"}
    assert rec["files"]["model.pt"] == {
        "sha256": file_sha256(jobs["compress"] / "model.pt"),
        "size": (jobs["compress"] / "model.pt").stat().st_size,
    }
    train = (jobs["train"] / "result.json").read_bytes()
    import hashlib

    assert rec["upstream"] == {json.loads(train)["key"]: hashlib.sha256(train).hexdigest()}
    assert rec["format"] == execute.RECORD_FORMAT == 3 and rec["record_sha256"] == execute.record_hash(rec)


def test_garbled_variant_checkpoint_is_detected_and_rebuilt(pristine, tmp_path, caplog):
    """The reported case: 200 garbled bytes in a cached model.pt are detected; the variant and what was
    computed from it re-run; the numbers equal the uninterrupted run's."""
    cache = _copy_cache(pristine, tmp_path)
    jobs = _job_dirs(cache)
    ck = jobs["compress"] / "model.pt"
    blob = bytearray(ck.read_bytes())
    mid = len(blob) // 2
    blob[mid : mid + 200] = os.urandom(200)
    ck.write_bytes(bytes(blob))
    with caplog.at_level(logging.WARNING, logger="compressbench"):
        s = run(validate(_raw(tmp_path)), progress=False)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("model.pt does not match its sha256" in w for w in warned), warned
    assert any("upstream job" in w and "rebuilt" in w for w in warned), warned  # its evaluations are stale
    assert (s.ran, s.cached, s.failed) == (3, 3, 0)  # compress + its 2 evaluations; train + 2 baseline evals cached
    assert _values(tmp_path / "r.sqlite") == _values(pristine / "r.sqlite")
    new, ref = _job_dirs(cache), _job_dirs(pristine / "cache")
    for label in ("compress", "evaluate:clean:variant", "evaluate:agreement:variant"):
        assert _measurements(new[label]) == _measurements(ref[label])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="compressbench"):
        assert run(validate(_raw(tmp_path)), progress=False).cached == N_JOBS
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_truncated_baseline_checkpoint_is_retrained(pristine, tmp_path, caplog):
    """Today: OSError 'Invalid argument' in every dependent, forever. Now: detected, re-trained."""
    cache = _copy_cache(pristine, tmp_path)
    ck = _job_dirs(cache)["train"] / "model.pt"
    ck.write_bytes(ck.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING, logger="compressbench"):
        s = run(validate(_raw(tmp_path)), progress=False)
    assert any("model.pt has 1000 bytes" in r.getMessage() for r in caplog.records)
    assert (s.ran, s.failed) == (N_JOBS, 0)  # everything depends on the baseline
    assert _values(tmp_path / "r.sqlite") == _values(pristine / "r.sqlite")


@pytest.mark.parametrize("damage", ["truncated", "no-measurements", "not-an-object", "missing-artifact", "no-record"])
def test_unreadable_job_record_is_rerun(pristine, tmp_path, caplog, damage):
    cache = _copy_cache(pristine, tmp_path)
    job = _job_dirs(cache)["evaluate:agreement:variant"]  # it has artifacts (disagreed.json / .png)
    f = job / "result.json"
    text = f.read_text()
    if damage == "truncated":
        f.write_text(text[: len(text) // 2])
    elif damage == "no-measurements":
        rec = json.loads(text)
        del rec["measurements"]
        f.write_text(json.dumps(rec))
    elif damage == "not-an-object":
        f.write_text("[1, 2]")
    elif damage == "missing-artifact":
        next(p for p in job.iterdir() if p.name != "result.json").unlink()
    else:
        f.unlink()
    with caplog.at_level(logging.WARNING, logger="compressbench"):
        s = run(validate(_raw(tmp_path)), progress=False)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "evaluate agreement on prune.unstructured" in warned[0], warned
    assert (s.ran, s.cached, s.failed) == (1, N_JOBS - 1, 0)
    assert _values(tmp_path / "r.sqlite") == _values(pristine / "r.sqlite")


@pytest.mark.parametrize("damage", ["format-1", "no-files", "value-edit", "info-edit", "condition-bit-flip"])
def test_record_without_checksums_or_edited_is_rerun(pristine, tmp_path, caplog, damage):
    """Issue 22: a record without checksums is *not cached* (never "older version, trusted"): a format-1 cache, a
    format-2 record without its ``files`` key (15 wrong rows before), a valid-JSON edit of a value, an edit of the
    info dependents read, and a bit flip renaming a condition each re-run what they touch; the numbers equal the
    uninterrupted run's."""
    cache = _copy_cache(pristine, tmp_path)
    jobs = _job_dirs(cache)
    reruns = {"format-1": N_JOBS, "no-files": 1, "value-edit": 1, "info-edit": 3, "condition-bit-flip": 1}[damage]
    if damage == "format-1":
        for f in (cache / "jobs").glob("*/result.json"):
            rec = json.loads(f.read_text())
            for k in ("files", "upstream", "format", "record_sha256"):
                rec.pop(k, None)
            f.write_text(json.dumps(rec))
    elif damage == "no-files":
        f = jobs["evaluate:agreement:variant"] / "result.json"
        rec = json.loads(f.read_text())
        del rec["files"]
        f.write_text(json.dumps(rec, indent=1))
    elif damage == "value-edit":  # 0.452 instead of the measured top-1: valid JSON, the hash no longer matches
        f = jobs["evaluate:clean:variant"] / "result.json"
        rec = json.loads(f.read_text())
        next(m for m in rec["measurements"] if m["metric"] == "top1")["value"] = 0.452
        f.write_text(json.dumps(rec, indent=1))
    elif damage == "info-edit":  # the achieved budget the rows are labelled with: the variant and its 2 evaluations
        f = jobs["compress"] / "result.json"
        rec = json.loads(f.read_text())
        rec["info"]["achieved"]["params"] = 0.9
        f.write_text(json.dumps(rec, indent=1))
    else:  # one bit: "class": "3" -> "class": "2" (0x33 -> 0x32)
        f = jobs["evaluate:clean:variant"] / "result.json"
        blob = bytearray(f.read_bytes())
        i = blob.index(b'"class": "3"') + len(b'"class": "')
        blob[i] ^= 0x01
        json.loads(bytes(blob))  # still valid JSON: one row renamed, one missing
        f.write_bytes(bytes(blob))
    with caplog.at_level(logging.WARNING, logger="compressbench"):
        s = run(validate(_raw(tmp_path)), progress=False)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    want = "carries no content hash" if damage in ("format-1", "no-files") else "does not match its own content hash"
    assert any(want in w for w in warned), warned
    assert (s.ran, s.cached, s.failed) == (reruns, N_JOBS - reruns, 0)
    assert _values(tmp_path / "r.sqlite") == _values(pristine / "r.sqlite")


def test_no_bit_flip_in_a_record_is_used(pristine, tmp_path):
    """40 seeded single-bit flips anywhere in a result.json: each is refused by :func:`inspect_cached`, or leaves
    the parsed record exactly as it was (e.g. ``1e-05`` -> ``1E-05``)."""
    import random

    cache = _copy_cache(pristine, tmp_path)
    f = _job_dirs(cache)["evaluate:clean:variant"] / "result.json"
    orig = f.read_bytes()
    key = f.parent.name
    rng = random.Random(22)
    refused = 0
    for _ in range(40):
        blob = bytearray(orig)
        i = rng.randrange(len(blob))
        blob[i] ^= 1 << rng.randrange(8)
        f.write_bytes(bytes(blob))
        res, problem = execute.inspect_cached(cache, key)
        if res is None:
            assert problem, "refused without a reason"
            refused += 1
        else:
            assert json.loads(bytes(blob)) == json.loads(orig)
    f.write_bytes(orig)
    assert execute.inspect_cached(cache, key)[0] is not None
    assert refused >= 35


def test_hashing_cost(tmp_path):
    """Verification re-hashes every artifact on every load: a 50 MB checkpoint costs well under a second."""
    f = tmp_path / "big.bin"
    f.write_bytes(os.urandom(50 * 2**20))
    t0 = time.process_time()
    file_sha256(f)
    assert time.process_time() - t0 < 2.0  # CPU time, ≈ 0.1 s on one core of the CI box (load-proof)


# =========================================================================== 4: store and cache checks
def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


def test_store_with_bad_header(tmp_path, capsys):
    p = tmp_path / "bad.sqlite"
    p.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="bad file header.*move it away.*compressbench run"):
        ResultStore(p)
    assert cli_main(["results", str(p)]) == 2
    assert str(p) in _one_line(capsys)


def test_store_with_garbled_pages(pristine, tmp_path, capsys):
    p = tmp_path / "r.sqlite"
    shutil.copy(pristine / "r.sqlite", p)
    with sqlite3.connect(p) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = c.execute("PRAGMA page_size").fetchone()[0]
        n = c.execute("PRAGMA page_count").fetchone()[0]
    assert n >= 4
    blob = bytearray(p.read_bytes())
    for i in range(2, n):  # every page but the schema's: b-tree headers and cells become noise
        blob[i * page : i * page + 64] = b"\xa5" * 64
    p.write_bytes(bytes(blob))
    with pytest.raises(StoreError, match="damaged") as e:
        ResultStore(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)
    assert cli_main(["results", str(p)]) == 2
    _one_line(capsys)


def test_filesystem_mistakes_are_one_line_before_any_work(tmp_path, capsys):
    cases = {}
    d = tmp_path / "store-is-dir"
    (d / "r.sqlite").mkdir(parents=True)
    cases["store-is-dir"] = (d, {}, StoreError, "is a folder")
    d = tmp_path / "store-folder-is-file"
    d.mkdir()
    (d / "results").write_text("x")
    cases["results-is-file"] = (d, {"store": str(d / "results" / "r.sqlite")}, StoreError, "is a file")
    d = tmp_path / "cache-is-file"
    d.mkdir()
    (d / "cache").write_text("x")
    cases["cache-is-file"] = (d, {}, CacheError, "is a file")
    d = tmp_path / "jobs-is-file"
    (d / "cache").mkdir(parents=True)
    (d / "cache" / "jobs").write_text("x")
    cases["jobs-is-file"] = (d, {}, CacheError, "is a file")
    for name, (d, over, err, expect) in cases.items():
        raw = _raw(d, **over)
        with pytest.raises(err, match=expect) as e:
            run(validate(raw), progress=False)
        assert "\n" not in str(e.value), name
        assert not list(d.rglob("model.pt")) and not (d / "cache" / "data").exists(), name  # no work done
        cfg = d / "exp.yaml"
        cfg.write_text(yaml.safe_dump(raw))
        assert cli_main(["run", str(cfg), "-q"]) == 2, name
        _one_line(capsys)


def _as_other_user() -> list[str] | None:
    """A command prefix that drops root (read-only means nothing to root), or [] when not root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        return None
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_read_only_cache(pristine, tmp_path_factory):
    """Everything cached: a read-only cache serves the run. One job missing: one line, exit 2."""
    prefix = _as_other_user()
    if prefix is None:
        pytest.skip("running as root without setpriv: cannot make a cache read-only")
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="cb-ro-"))  # pytest's tmp folders are private to root
    try:
        os.chmod(d, 0o755)
        shutil.copytree(pristine / "cache", d / "cache")
        (d / "out").mkdir()
        os.chmod(d / "out", 0o777)
        for p in [d / "cache", *(d / "cache").rglob("*")]:
            os.chmod(p, 0o555 if p.is_dir() else 0o444)
        cfg = d / "exp.yaml"
        cfg.write_text(yaml.safe_dump(_raw(d, store=str(d / "out" / "r.sqlite"))))
        env = {**_env(), "HOME": str(d / "out")}
        r = subprocess.run(
            [*prefix, sys.executable, "-m", "compressbench", "run", str(cfg), "-q"],
            capture_output=True,
            text=True,
            env=env,
            cwd=d / "out",
        )
        assert r.returncode == 0 and f"{N_JOBS} cached" in r.stdout, r.stderr
        victim = _job_dirs(d / "cache")["evaluate:agreement:variant"]
        os.chmod(victim.parent, 0o755)
        shutil.rmtree(victim)
        os.chmod(victim.parent, 0o555)
        r = subprocess.run(
            [*prefix, sys.executable, "-m", "compressbench", "run", str(cfg), "-q"],
            capture_output=True,
            text=True,
            env=env,
            cwd=d / "out",
        )
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and "read-only" in lines[0] and "1 of 6 jobs" in lines[0], r.stderr
    finally:
        for p in [d, *d.rglob("*")]:
            if p.is_dir():
                os.chmod(p, 0o755)
        shutil.rmtree(d, ignore_errors=True)


# =========================================================================== 5: umask
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_cache_files_respect_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == mode


def test_a_run_leaves_shareable_files(pristine):
    """The pristine run ran under umask 022: every file is readable by the team (no 0600 from mkstemp)."""
    files = [p for p in (pristine / "cache").rglob("*") if p.is_file()] + [pristine / "r.sqlite"]
    modes = {stat.S_IMODE(p.stat().st_mode) for p in files}
    assert modes == {0o644}, {oct(m) for m in modes}


# =========================================================================== 6a: one row per measurement
ROW = {
    "experiment": "x",
    "variant": "v",
    "method": "m",
    "seed": 0,
    "evaluator": "clean",
    "metric": "top1",
    "job_key": "k",
}


def test_store_rows_are_unique_and_idempotent(tmp_path):
    s = ResultStore(tmp_path / "s.sqlite")
    rows = [
        {**ROW, "value": 0.5},
        {**ROW, "metric": "top5", "value": 0.9},
        {**ROW, "metric": "top1", "condition": {"severity": 3}, "value": 0.3},
    ]
    assert s.add_job(rows, [{"job_key": "k", "name": "a.png", "path": "/x/a.png"}]) == 3
    assert (
        s.add_job(
            [{**r, "value": 0.0, "run_id": "other"} for r in rows],
            [{"job_key": "k", "name": "a.png", "path": "/y/a.png"}],
        )
        == 0
    )  # a second driver, same job
    assert [r["value"] for r in s.rows("x")] == [0.5, 0.9, 0.3]  # the first write wins
    assert len(s.artifacts()) == 1
    err = {**ROW, "metric": "error", "value": None, "error": "boom"}
    s.add_job([{**err, "run_id": "r1"}])
    s.add_job([{**err, "run_id": "r1"}])  # the same failure, twice in one run: once
    s.add_job([{**err, "run_id": "r2"}])  # retried by the next run: its own record
    assert len([r for r in s.rows("x") if r["error"]]) == 2
    assert len(s.dataframe("x")) == 5


def test_store_migrates_a_version_1_store(tmp_path):
    p = tmp_path / "old.sqlite"
    v1 = """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
    CREATE TABLE runs (run_id TEXT PRIMARY KEY, experiment TEXT, started_at TEXT, config_json TEXT, git_hash TEXT,
        versions_json TEXT, device TEXT, host_json TEXT);
    CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, experiment TEXT NOT NULL, variant TEXT NOT NULL,
        method TEXT NOT NULL, budget_kind TEXT, budget_target REAL, budget_achieved REAL, seed INTEGER,
        evaluator TEXT NOT NULL, evaluator_version INTEGER, condition TEXT NOT NULL DEFAULT '',
        condition_json TEXT NOT NULL DEFAULT '{}', metric TEXT NOT NULL, value REAL, unit TEXT DEFAULT '',
        tag TEXT DEFAULT '', error TEXT, job_key TEXT NOT NULL, run_id TEXT, created_at TEXT);
    CREATE TABLE artifacts (id INTEGER PRIMARY KEY AUTOINCREMENT, job_key TEXT NOT NULL, experiment TEXT,
        variant TEXT, method TEXT, seed INTEGER, evaluator TEXT, name TEXT, path TEXT, created_at TEXT);
    INSERT INTO meta VALUES ('schema_version', '1');
    """
    with sqlite3.connect(p) as c:
        c.executescript(v1)
        ins = (
            "INSERT INTO results (experiment, variant, method, evaluator, metric, value, job_key, run_id, error) "
            "VALUES (?,?,?,?,?,?,?,?,?)"
        )
        for run_id, value in (("a", 0.5), ("b", 0.6), ("a", 0.7)):  # a duplicated key, as two drivers left it
            c.execute(ins, ("x", "v", "m", "clean", "top1", value, "k", run_id, None))
        c.execute(ins, ("x", "v", "m", "clean", "top5", 0.9, "k", "a", None))
        c.execute(ins, ("x", "v", "m", "clean", "error", None, "k2", "a", "boom"))
        c.execute("INSERT INTO artifacts (job_key, name, path) VALUES ('k', 'a.png', '/1'), ('k', 'a.png', '/2')")
    s = ResultStore(p)
    assert [(r["metric"], r["value"]) for r in s.rows("x")] == [("top1", 0.5), ("top5", 0.9), ("error", None)]
    assert [a["path"] for a in s.artifacts()] == ["/1"]
    assert s.add_rows([{**ROW, "value": 0.1}]) == 0
    with sqlite3.connect(p) as c:
        assert c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("3",)


# =========================================================================== 6b: claims
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _write_lock(cache: Path, key: str, **info) -> Path:
    lock = cache / "jobs" / f"{key}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps({"token": "t0", "key": key, **info}))
    return lock


def test_claims_and_stale_locks(tmp_path):
    cache = tmp_path / "cache"
    (cache / "jobs").mkdir(parents=True)
    host = execute._HOST
    # free: claimed; claimed: refused; released: free again
    c = claim_job(cache, "a")
    assert c is not None and claim_job(cache, "a") is None
    assert json.loads(c.path.read_text())["pid"] == os.getpid()
    c.release()
    assert not c.path.exists() and claim_job(cache, "a") is not None
    # same host, owner dead: stale at once
    _write_lock(cache, "b", pid=_dead_pid(), host=host)
    assert claim_job(cache, "b") is not None
    # same host, owner alive: held, however old its heartbeat... until LOCK_STALE_S without one
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lock = _write_lock(cache, "c", pid=sleeper.pid, host=host)
        assert claim_job(cache, "c") is None
        old = time.time() - execute.LOCK_STALE_S - 5
        os.utime(lock, (old, old))
        assert claim_job(cache, "c") is not None
    finally:
        sleeper.kill()
        sleeper.wait()
    # another host: judged by the heartbeat alone
    lock = _write_lock(cache, "d", pid=1, host="elsewhere.example")
    assert claim_job(cache, "d") is None
    os.utime(lock, (time.time() - execute.LOCK_STALE_S - 5,) * 2)
    assert claim_job(cache, "d") is not None
    # a half-written lock (no JSON yet) is live while fresh
    (cache / "jobs" / "e.lock").write_text("")
    assert claim_job(cache, "e") is None


def test_heartbeat_keeps_a_claim_fresh(tmp_path):
    """A live driver's lock mtime is refreshed (here every 0.2 s), so a long job is never judged stale."""
    code = (
        "import os, sys, time; from pathlib import Path; from compressbench.execute import claim_job\n"
        "c = claim_job(Path(sys.argv[1]), 'k'); os.utime(c.path, (0, 0)); time.sleep(1.5)\n"
        "print(time.time() - c.path.stat().st_mtime)"
    )
    (tmp_path / "jobs").mkdir()
    r = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**_env(), "COMPRESSBENCH_LOCK_HEARTBEAT_S": "0.2"},
    )
    assert r.returncode == 0, r.stderr
    assert float(r.stdout) < 1.0


def _race(cache: str, key: str, start: float, q, done) -> None:
    while time.time() < start:
        pass
    q.put(claim_job(Path(cache), key) is not None)
    done.wait(30)  # a winner stays alive (its claim live) until every contender has tried


def test_taking_over_a_stale_lock_is_race_free(tmp_path):
    cache = tmp_path / "cache"
    ctx = multiprocessing.get_context("fork")
    for rnd in range(3):
        key = f"k{rnd}"
        _write_lock(cache, key, pid=_dead_pid(), host=execute._HOST)
        q, done = ctx.Queue(), ctx.Event()
        start = time.time() + 0.5
        procs = [ctx.Process(target=_race, args=(str(cache), key, start, q, done)) for _ in range(4)]
        for p in procs:
            p.start()
        wins = [q.get(timeout=30) for _ in procs]
        done.set()
        for p in procs:
            p.join()
        assert sum(wins) == 1, (rnd, wins)


def test_stale_temporary_folders_are_cleaned(tmp_path):
    jobs = tmp_path / "cache" / "jobs"
    here = __import__("hashlib").sha256(execute._HOST.encode()).hexdigest()[:8]
    dead = jobs / f".tmp-aaa-1-{_dead_pid()}-{here}"
    mine = jobs / f".tmp-bbb-1-{os.getpid()}-{here}"
    other_host = jobs / ".tmp-ccc-1-123-00000000"
    _write_lock(tmp_path / "cache", "ccc", pid=123, host="elsewhere.example")  # its owner is alive over there
    for d in (dead, mine, other_host):
        (d / "sub").mkdir(parents=True)
    assert clean_stale_tmp(tmp_path / "cache") == 1
    assert not dead.exists() and mine.exists() and other_host.exists()


# =========================================================================== 6c: concurrent drivers, kill -9
def _summary(out: str) -> tuple[int, int, int]:
    import re

    m = re.search(r"(\d+) jobs — (\d+) ran, (\d+) cached, (\d+) failed", out)
    assert m, out
    return int(m.group(2)), int(m.group(3)), int(m.group(4))


def test_two_concurrent_drivers_write_each_row_once_and_run_each_job_once(pristine, tmp_path):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump(_raw(tmp_path)))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "compressbench", "run", str(cfg)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            cwd=tmp_path,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    ran, cached, failed = zip(*(_summary(o) for o, _ in outs))
    assert sum(ran) == N_JOBS and sum(failed) == 0  # every job ran exactly once, across both drivers
    assert all(r + c == N_JOBS for r, c in zip(ran, cached))
    # the baseline was trained once: one driver logged its training time, the other found it cached
    import re

    logs = [e for _, e in outs]
    assert sum(len(re.findall(r"train baseline seed=0: \d", e)) for e in logs) == 1, logs
    assert sum(len(re.findall(r"train baseline seed=0: cached", e)) for e in logs) == 1, logs
    assert not list((tmp_path / "cache" / "jobs").glob("*.lock"))  # every claim released
    assert _values(tmp_path / "r.sqlite") == _values(pristine / "r.sqlite")  # each row once, same numbers
    with sqlite3.connect(tmp_path / "r.sqlite") as c:
        assert c.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2
        per_key = c.execute(
            "SELECT COUNT(DISTINCT run_id) FROM results WHERE evaluator='train' AND metric='train_seconds'"
        ).fetchone()[0]
    assert per_key == 1  # the training rows came from one driver


def test_kill_9_mid_run_then_rerun(pristine, tmp_path):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump(_raw(tmp_path)))
    p = subprocess.Popen(
        [sys.executable, "-m", "compressbench", "run", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=tmp_path,
    )
    seen = []
    jobs = tmp_path / "cache" / "jobs"
    for line in p.stderr:  # kill while a later job runs (after the baseline is stored)
        seen.append(line)
        if "[1/6]" in line:
            break
    deadline = time.monotonic() + 60  # a loaded machine: wait until a job holds its claim, then kill inside it
    while not list(jobs.glob("*.lock")) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert any("[1/6]" in s for s in seen), seen
    assert list(jobs.glob("*.lock")) or list(jobs.glob(".tmp-*"))  # killed inside a job: its claim is left behind
    before = _values(tmp_path / "r.sqlite")
    assert before and len(before) < len(_values(pristine / "r.sqlite"))  # a partial run: some rows, not all
    r = _cli("run", str(cfg), "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ran, cached, failed = _summary(r.stdout)
    assert failed == 0 and cached >= 1 and ran + cached == N_JOBS
    assert _values(tmp_path / "r.sqlite") == _values(pristine / "r.sqlite")
    assert not list(jobs.glob(".tmp-*")) and not list(jobs.glob("*.lock"))  # the killed run's leftovers are gone


# =========================================================================== 6d: per-row integrity (issue 22)
def _flip_value(store: Path, metric: str = "top1") -> int:
    """Flip one bit of a stored float (0.51 -> 0.5105, as a bit flip on disk would) with plain SQL; returns its id."""
    import struct

    with sqlite3.connect(store) as c:
        i, v = c.execute(
            "SELECT id, value FROM results WHERE metric=? AND variant != 'baseline' AND error IS NULL", (metric,)
        ).fetchone()
        b = bytearray(struct.pack("<d", v))
        b[5] ^= 0x04
        c.execute("UPDATE results SET value=? WHERE id=?", (struct.unpack("<d", bytes(b))[0], i))
    return i


def test_flipped_value_is_found_by_verify_refused_by_report_and_replaced_by_run(pristine, tmp_path, capsys):
    """A 1-bit flip in a stored value passes SQLite's checks; before issue 22 `results` and the report showed it
    and a rerun kept it. Now: `verify` names the row (exit 1), `report`/`results` refuse with one line, `run`
    replaces it from the verified cache and `verify` is clean again."""
    from compressbench.verify import verify_store

    shutil.copytree(pristine / "cache", tmp_path / "cache")
    store = tmp_path / "r.sqlite"
    shutil.copy(pristine / "r.sqlite", store)
    rep = verify_store(store, tmp_path / "cache")
    assert rep.ok and rep.derived == rep.tables["results"].rows  # every row re-derived, none failed
    bad = _flip_value(store)
    assert cli_main(["verify", str(store), "--cache", str(tmp_path / "cache")]) == 1
    out = capsys.readouterr().out
    assert f"FAIL id {bad}:" in out and "1 FAIL their hash" in out
    for cmd in (["report", str(store), "-o", str(tmp_path / "rep")], ["results", str(store)]):
        assert cli_main(cmd) == 2
        assert "fail their integrity hash" in _one_line(capsys)
    assert not (tmp_path / "rep" / "report.html").exists()
    s = run(validate(_raw(tmp_path)), progress=False)
    assert (s.ran, s.failed) == (0, 0)
    assert verify_store(store, tmp_path / "cache").ok
    assert _values(store) == _values(pristine / "r.sqlite")


def test_consistent_forgery_is_found_by_rederiving_from_the_records(pristine, tmp_path, capsys):
    """A row edited *and* re-hashed (its own hash passes) differs from its job record: `verify --cache` says so."""
    from compressbench.store import row_hash

    store = tmp_path / "r.sqlite"
    shutil.copy(pristine / "r.sqlite", store)
    bad = _flip_value(store)
    with sqlite3.connect(store) as c:
        c.row_factory = sqlite3.Row
        row = dict(c.execute("SELECT * FROM results WHERE id=?", (bad,)).fetchone())
        c.execute("UPDATE results SET row_sha256=? WHERE id=?", (row_hash("results", row), bad))
    assert cli_main(["verify", str(store)]) == 0  # the hashes alone cannot see it
    assert cli_main(["verify", str(store), "--cache", str(pristine / "cache")]) == 1
    out = capsys.readouterr().out
    assert f"row id {bad} " in out and "differs from its job record: value" in out


def test_dropped_results_table_is_one_line_and_run_says_what_to_do(pristine, tmp_path, capsys):
    store = tmp_path / "r.sqlite"
    shutil.copy(pristine / "r.sqlite", store)
    with sqlite3.connect(store) as c:
        c.execute("DROP TABLE results")
    for cmd in (["report", str(store), "-o", str(tmp_path / "rep")], ["results", str(store)], ["verify", str(store)]):
        assert cli_main(cmd) == 2
        assert "'results' table is missing" in _one_line(capsys)
    with pytest.raises(StoreError, match="'results' table is missing.*move it away"):
        run(validate(_raw(tmp_path, cache_dir=str(pristine / "cache"))), progress=False)


def test_random_bit_flips_in_the_store_are_never_a_traceback(pristine, tmp_path, capsys):
    """40 seeded single-bit flips anywhere in the store file (tables, indexes, runs.config_json, text columns,
    free space): `verify`, `results` and `report` each exit 0/1/2 with at most one error line; whenever `verify`
    says 0, every stored value is the measured one."""
    import random

    base = tmp_path / "base.sqlite"
    shutil.copy(pristine / "r.sqlite", base)
    with sqlite3.connect(base) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        c.execute("PRAGMA journal_mode=DELETE")
    orig = base.read_bytes()
    want = _values(base)
    rng = random.Random(2022)
    codes: dict[str, list[int]] = {"verify": [], "results": [], "report": []}
    for n in range(40):
        p = tmp_path / f"f{n}.sqlite"
        blob = bytearray(orig)
        i = rng.randrange(len(blob))
        blob[i] ^= 1 << rng.randrange(8)
        p.write_bytes(bytes(blob))
        for cmd in codes:
            argv = [cmd, str(p)] + (["-o", str(tmp_path / "rep")] if cmd == "report" else [])
            rc = cli_main(argv)
            err = capsys.readouterr().err
            assert "Traceback" not in err and rc in (0, 1, 2), (n, cmd, err)
            assert len([x for x in err.splitlines() if x.startswith("error:")]) <= 1, (n, cmd, err)
            codes[cmd].append(rc)
        if codes["verify"][-1] == 0:
            try:
                got = _values(p)
            except sqlite3.DatabaseError:
                continue  # unreadable by a plain SELECT too; `verify` read what it could check
            assert got == want, f"flip {n} at byte {i}: verify passed a changed value"
    assert len(codes["verify"]) == 40
    print({k: {c: v.count(c) for c in set(v)} for k, v in codes.items()})


# =========================================================================== 7: what a report reveals (issue 22)
def test_report_redact_removes_paths_platform_cpu_and_host(pristine, tmp_path):
    """A report names the machine (platform string, CPU model), absolute paths (store, cache_dir) and the host;
    `report --redact` replaces each in every text file, and the numbers stay."""
    import socket

    from compressbench.report.redact import TEXT_SUFFIXES

    host = ResultStore(pristine / "r.sqlite").runs()[0]["host_json"]
    hidden = [
        host["platform"],
        host["cpu"],
        str((pristine / "cache").resolve()),
        str(pristine.resolve()),
        *([socket.gethostname()] if len(socket.gethostname()) > 3 else []),
    ]  # "vm" would hit words

    def texts(d: Path) -> str:
        return "\n".join(f.read_text(errors="replace") for f in d.rglob("*") if f.suffix in TEXT_SUFFIXES)

    assert (
        cli_main(
            ["report", str(pristine / "r.sqlite"), "-o", str(tmp_path / "plain"), "--formats", "html", "csv", "md"]
        )
        == 0
    )
    plain = texts(tmp_path / "plain")
    assert all(h in plain for h in hidden[:3]), [h for h in hidden[:3] if h not in plain]  # they were there
    assert (
        cli_main(
            [
                "report",
                str(pristine / "r.sqlite"),
                "-o",
                str(tmp_path / "red"),
                "--formats",
                "html",
                "csv",
                "md",
                "--redact",
            ]
        )
        == 0
    )
    red = texts(tmp_path / "red")
    assert [h for h in hidden if h in red] == []
    assert "<platform>" in red and "<cpu>" in red and "<path>" in red
    top1 = f"{_values(pristine / 'r.sqlite')[('baseline', 'clean', '', 'top1')] * 100:.1f}"
    assert top1 in red  # the numbers stay


def test_schema_2_rows_are_reported_unhashed_and_rehashed_from_the_cache(pristine, tmp_path, capsys):
    """Rows written before row hashes (a schema-2 store, migrated on open with empty hashes): `verify` says they
    carry none; `--rehash` gives the rows their job record re-derives exactly their hashes; then all check out."""
    store = tmp_path / "r.sqlite"
    shutil.copy(pristine / "r.sqlite", store)
    with sqlite3.connect(store) as c:
        n = c.execute("UPDATE results SET row_sha256=NULL, record_sha256=NULL").rowcount
    assert cli_main(["verify", str(store)]) == 0
    out = capsys.readouterr().out
    assert f"{n} carry no row hash (written by schema 2, before hashes)" in out
    assert cli_main(["verify", str(store), "--cache", str(pristine / "cache")]) == 0
    assert f"{n} of {n} unhashed row(s) equal their job record: `--rehash`" in capsys.readouterr().out
    assert cli_main(["verify", str(store), "--cache", str(pristine / "cache"), "--rehash"]) == 0
    assert f"{n} unhashed row(s) given their hashes" in capsys.readouterr().out
    assert cli_main(["verify", str(store), "--cache", str(pristine / "cache")]) == 0
    out = capsys.readouterr().out
    assert "carry no row hash" not in out and "OK: every row checks out" in out
    q = "SELECT id, row_sha256, record_sha256 FROM results ORDER BY id"
    with sqlite3.connect(store) as c, sqlite3.connect(pristine / "r.sqlite") as p:
        assert c.execute(q).fetchall() == p.execute(q).fetchall()  # the re-derived hashes are the run's own
    assert _values(store) == _values(pristine / "r.sqlite")
