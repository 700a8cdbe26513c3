"""The Ray executor on a real local Ray instance (no mocks): the same rows as the local executor, value
for value; a worker killed mid-job is retried; a driver killed with SIGKILL is resumed by a rerun with no
duplicate or partial rows; a job claimed by another driver is waited for; failed jobs are rows.

One Ray instance (2 CPUs, bound to 127.0.0.1, usage stats off) serves the module; the experiment is the
reliability tests' tiny one (digits, tinycnn, one pruned variant, 6 jobs). The test jobs that crash,
sleep or wait for each other are evaluators of ``tests/plugins/cb_ray_plugin.py``, named in the configs
as ``"cb_ray_plugin:<fn>"``: the workers import the plug-in the way they would import a user's."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from compressbench.cli import main as cli_main
from compressbench.config import ConfigError
from compressbench.execute import claim_job
from compressbench.execute.ray_options import RayOptions
from compressbench.registry import evaluators
from compressbench.runner import run
from compressbench.validate import validate

ray = pytest.importorskip("ray")

SRC = str(Path(__file__).resolve().parents[1] / "src")
PLUGINS = str(Path(__file__).parent / "plugins")
RAW = {
    "name": "rayx",
    "seeds": [0],
    "threads": 1,  # one thread per job, in this process and in the workers: the same numbers
    "dataset": {"name": "digits", "eval_subset": 200},
    "model": {"name": "tinycnn"},
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.2, "augment": "none"},
    "variants": [{"method": "prune.unstructured", "params": {"finetune": {"epochs": 1}}, "budget": {"params": 0.5}}],
    "evaluations": [{"evaluator": "clean"}, {"evaluator": "agreement"}],
}
NONDETERMINISTIC = ("train_seconds", "train_images_per_s")


def _raw(d: Path, **over) -> dict:
    return {**RAW, "cache_dir": str(d / "cache"), "store": str(d / "r.sqlite"), **over}


def _values(store: Path, evaluators_: tuple[str, ...] | None = None) -> dict:
    """{(variant, evaluator, condition, metric): value} of the successful rows; asserts each appears once."""
    with sqlite3.connect(store) as c:
        rows = c.execute(
            "SELECT variant, evaluator, condition, metric, value FROM results WHERE error IS NULL "
            "AND metric NOT IN (?, ?)",
            NONDETERMINISTIC,
        ).fetchall()
    out = {r[:4]: r[4] for r in rows if evaluators_ is None or r[1] in evaluators_}
    assert len({r[:4] for r in rows}) == len(rows), "a measurement is stored twice"
    return out


def _rows_per_job(store: Path) -> dict[str, int]:
    with sqlite3.connect(store) as c:
        return dict(c.execute("SELECT job_key, COUNT(*) FROM results GROUP BY job_key").fetchall())


def _leftovers(d: Path) -> list[str]:
    jobs = d / "cache" / "jobs"
    return sorted(p.name for p in jobs.iterdir() if p.name.endswith(".lock") or p.name.startswith((".tmp-", ".trash-")))


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray instance for the module: 2 CPUs, loopback only, no usage stats."""
    from compressbench.execute.ray_executor import _loopback_only

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        mp.syspath_prepend(PLUGINS)
        _loopback_only()
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level=logging.WARNING)
        try:
            assert ray.nodes()[0]["NodeManagerAddress"] == "127.0.0.1"  # nothing listens beyond loopback
            yield ray.get_runtime_context().gcs_address
        finally:
            ray.shutdown()
            for name in ("raytest.crash_once", "raytest.rendezvous", "raytest.sleepy", "raytest.fails", "raytest.spy"):
                if name in evaluators:
                    evaluators.unregister(name)
            sys.modules.pop("cb_ray_plugin", None)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("local")
    s = run(validate(_raw(d)), progress=False)
    assert (s.ran, s.failed) == (6, 0)
    return d


@pytest.fixture(scope="module")
def ray_run(ray_address, tmp_path_factory):
    d = tmp_path_factory.mktemp("ray")
    s = run(validate(_raw(d, executor={"name": "ray", "max_retries": 2})), progress=False)
    assert (s.ran, s.cached, s.failed) == (6, 0, 0), s.failures
    return d


def _copy(src: Path, d: Path) -> Path:
    shutil.copytree(src / "cache", d / "cache")
    return d


# =========================================================================== same rows as the local executor
def test_ray_rows_equal_the_local_rows_value_for_value(local_run, ray_run):
    ray_values = _values(ray_run / "r.sqlite")
    assert ray_values == _values(local_run / "r.sqlite")
    assert len(ray_values) > 40 and ("baseline", "clean", "", "top1") in ray_values
    assert _leftovers(ray_run) == []  # every claim released, no temporary folder left
    s = run(validate(_raw(ray_run, executor="ray")), progress=False)  # a rerun: all cached, no new rows
    assert (s.ran, s.cached, s.failed) == (0, 6, 0)
    assert _values(ray_run / "r.sqlite") == ray_values


# =========================================================================== resolved once, never validated
def test_a_worker_resolves_the_experiment_once_and_never_validates_it(ray_address, tmp_path, monkeypatch):
    """Counted by spies around the real functions inside the workers (``cb_ray_plugin``): each worker process
    resolves variants and evaluations exactly once (then checks the fingerprint), and never calls
    ``check_parent`` — the driver validated the experiment, the worker only runs jobs."""
    monkeypatch.setenv("COMPRESSBENCH_TEST_SPY", str(os.getpid()))  # the spies wrap only outside this process
    raw = _raw(tmp_path, executor="ray", seeds=[0, 1], evaluations=[{"evaluator": "cb_ray_plugin:spy"}])
    s = run(validate(raw), progress=False)
    assert (s.ran, s.failed) == (8, 0), s.failures  # 2 × (train, compress, spy on baseline, spy on the variant)
    rows: dict = {}
    with sqlite3.connect(tmp_path / "r.sqlite") as c:
        for key, metric, value in c.execute(
            "SELECT job_key, metric, value FROM results WHERE evaluator = 'raytest.spy'"
        ):
            rows.setdefault(key, {})[metric] = value
    assert len(rows) == 4
    for r in rows.values():
        assert r["pid"] != os.getpid()  # measured in a worker
        assert (r["resolve_variants"], r["resolve_evaluations"], r["check_parent"]) == (1, 1, 0), r


# =========================================================================== a worker killed mid-job
def test_killed_worker_is_retried_jobs_run_concurrently_failures_are_rows(ray_run, tmp_path):
    d = _copy(ray_run, tmp_path)
    marks = tmp_path / "marks"
    marks.mkdir()
    params = {"dir": str(marks)}
    raw = _raw(
        d,
        executor={"name": "ray", "max_retries": 1},
        evaluations=[
            {"evaluator": "cb_ray_plugin:crash_once", "params": params},  # kills its worker on the baseline
            {"evaluator": "cb_ray_plugin:rendezvous", "params": {**params, "n": 2}},  # the two must overlap
            {"evaluator": "cb_ray_plugin:fails"},
        ],
    )
    s = run(validate(raw), progress=False)
    assert (s.ran, s.cached, s.failed) == (4, 2, 2), s.failures
    assert {e for _, e in s.failures} == {"ValueError: this evaluator always fails"}
    v = _values(d / "r.sqlite", ("raytest.crash_once", "raytest.rendezvous"))
    first = v[("baseline", "raytest.crash_once", "", "first_pid")]
    retry = v[("baseline", "raytest.crash_once", "", "pid")]
    assert first != retry and os.getpid() not in (first, retry)  # the retry ran in a new worker process
    assert not (Path(f"/proc/{int(first)}")).exists()  # the first worker is dead
    assert 0.3 < v[("baseline", "raytest.crash_once", "", "top1")] <= 1
    assert (
        v[("baseline", "raytest.rendezvous", "", "met")]
        == v[("prune.unstructured@params=0.5", "raytest.rendezvous", "", "met")]
        == 1.0
    )
    with sqlite3.connect(d / "r.sqlite") as c:
        errs = c.execute("SELECT variant, error FROM results WHERE error IS NOT NULL").fetchall()
    assert sorted(errs) == [
        ("baseline", "ValueError: this evaluator always fails"),
        ("prune.unstructured@params=0.5", "ValueError: this evaluator always fails"),
    ]
    assert _leftovers(d) == []  # the dead attempt's lock was taken over, its temporary folder removed


# =========================================================================== the driver killed with SIGKILL
def test_driver_killed_with_sigkill_then_rerun(ray_address, local_run, ray_run, tmp_path):
    d = _copy(ray_run, tmp_path)
    marks = tmp_path / "marks"
    marks.mkdir()
    raw = _raw(
        d,
        executor="ray",
        evaluations=[*RAW["evaluations"], {"evaluator": "cb_ray_plugin:sleepy", "params": {"dir": str(marks)}}],
    )
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([SRC, PLUGINS]),
        COMPRESSBENCH_PROGRESS="0",
        RAY_AUTH_MODE="token",
        RAY_USAGE_STATS_ENABLED="0",
    )
    p = subprocess.Popen(
        [sys.executable, "-m", "compressbench", "run", str(cfg), "--address", ray_address],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        t0 = time.monotonic()
        while not (marks / "started").exists() and p.poll() is None and time.monotonic() - t0 < 120:
            time.sleep(0.1)
        assert (marks / "started").exists(), p.stderr.read() if p.poll() is not None else "no job started"
        os.kill(p.pid, signal.SIGKILL)  # a sleepy job is mid-run in a worker
        p.wait()
    finally:
        if p.poll() is None:
            p.kill()
    committed = [j for j in (d / "cache" / "jobs").iterdir() if (j / "result.json").is_file()]
    partial = _rows_per_job(d / "r.sqlite")
    assert 6 <= len(committed) < 8 and 0 < len(partial) < 8  # killed mid-run: some jobs done and stored, not all
    s = run(validate(raw), progress=False)  # the rerun, on this process's connection to the same instance
    assert (s.ran, s.cached, s.failed) == (8 - len(committed), len(committed), 0)  # only unfinished jobs ran
    full = _rows_per_job(d / "r.sqlite")
    assert all(full[k] == n for k, n in partial.items())  # the killed driver stored whole jobs only
    v = _values(d / "r.sqlite")  # each measurement once
    assert {k: x for k, x in v.items() if k[1] != "raytest.sleepy"} == _values(local_run / "r.sqlite")
    assert sum(1 for k in v if k[1] == "raytest.sleepy") == 2
    assert _leftovers(d) == []  # the killed worker's temporary folder is gone


# =========================================================================== a job another driver runs
def test_job_claimed_by_another_driver_is_waited_for(ray_run, tmp_path, caplog):
    d = _copy(ray_run, tmp_path)
    plan_raw = _raw(d, executor="ray")
    from compressbench.plan import plan

    job = next(
        j
        for j in plan(validate(plan_raw))
        if j.kind == "evaluate" and j.labels.evaluator == "clean" and j.labels.variant == "baseline"
    )
    shutil.rmtree(d / "cache" / "jobs" / job.key)  # this job must run again ...
    claim = claim_job(d / "cache", job.key)  # ... but "another driver" (this process) holds it
    assert claim is not None
    out: dict = {}
    caplog.set_level(logging.INFO, logger="compressbench")
    t = threading.Thread(target=lambda: out.update(s=run(validate(plan_raw), progress=False)))
    t.start()
    t0 = time.monotonic()
    while "waiting for its result" not in caplog.text and time.monotonic() - t0 < 60:
        time.sleep(0.1)
    assert "evaluate clean on baseline seed=0 is being run by pid" in caplog.text
    assert t.is_alive()  # it waits; it does not run the job itself
    claim.release()  # the other driver gave up without a result: this one runs it
    t.join(timeout=120)
    assert (out["s"].ran, out["s"].cached, out["s"].failed) == (1, 5, 0)
    assert _values(d / "r.sqlite") == _values(ray_run / "r.sqlite")
    assert _leftovers(d) == []


# =========================================================================== resources
def test_resources_threads_and_infeasible_requests(ray_address, tmp_path):
    from compressbench.execute import ExecutorError, RayExecutor, create_executor
    from compressbench.plan import plan

    raw = _raw(
        tmp_path,
        threads=None,
        evaluations=[{"evaluator": "clean"}, {"evaluator": "efficiency"}],
        executor={
            "name": "ray",
            "resources": {"compress": {"num_cpus": 0.5}, "evaluators": {"clean": {"num_cpus": 2}}},
        },
    )
    exp = validate(raw)
    ex = create_executor(exp, tmp_path / "cache", False)
    assert isinstance(ex, RayExecutor)
    asks, threads = ex._plan_resources(ray, plan(exp))
    got = {
        (j.kind, j.labels.evaluator, j.labels.variant): (
            asks[j.key]["num_cpus"],
            asks[j.key]["num_gpus"],
            threads[j.key],
        )
        for j in plan(exp)
    }
    v = "prune.unstructured@params=0.5"
    assert got[("train", None, "baseline")] == (1, 0, 1)
    assert got[("compress", None, v)] == (0.5, 0, 1)  # a fraction of a CPU still runs one thread
    assert got[("evaluate", "clean", v)] == (2, 0, 2)
    assert got[("evaluate", "efficiency", v)] == (2, 0, 2)  # it measures time: the whole (2-CPU) node
    raw["executor"] = {"name": "ray", "resources": {"train": {"num_gpus": 1}}}
    with pytest.raises(
        ExecutorError,
        match=r"^executor.resources.train: a train job asks for 1 CPU\(s\) and 1 "
        r"GPU\(s\), but the largest node of the Ray cluster has 2 CPU\(s\) and 0",
    ):
        run(validate(raw), progress=False)
    assert not list((tmp_path / "cache" / "jobs").iterdir())  # no job was started


# =========================================================================== configuration and CLI surface
def test_executor_options_are_validated(tmp_path):
    g = {**RAW, "cache_dir": str(tmp_path / "c")}

    def err(**over) -> str:
        with pytest.raises(ConfigError) as e:
            validate({**g, **over})
        return str(e.value)

    ok = validate(
        {
            **g,
            "executor": {
                "name": "ray",
                "address": "ray://head:10001",
                "max_retries": 3,
                "resources": {
                    "train": {"num_gpus": 1},
                    "compress": {"num_gpus": 0.5},
                    "evaluate": {"num_gpus": 0.25, "num_cpus": 1},
                },
            },
        }
    )
    assert ok.executor.name == "ray" and ok.executor.options.max_retries == 3
    assert validate({**g, "executor": "ray"}).executor.options == RayOptions()
    assert err(executor={"name": "ray", "adress": "auto"}).startswith(
        "executor.adress: unknown option (did you mean 'address'?); allowed: address, resources, max_retries"
    )
    assert err(executor={"name": "local", "max_retries": 1}) == (
        "executor: executor 'local' takes no options; got {'max_retries': 1}"
    )
    assert err(executor={"name": "ray", "address": "head"}).startswith("executor.address: give null")
    assert err(executor={"name": "ray", "resources": {"train": {"num_gpus": 1.5}}}).startswith(
        "executor.resources.train.num_gpus: above 1, a GPU count must be whole"
    )
    assert err(executor={"name": "ray", "resources": {"evaluat": {}}}).startswith(
        "executor.resources.evaluat: unknown option (did you mean 'evaluate'?)"
    )
    assert err(executor={"name": "ray", "resources": {"evaluators": {"clen": {"num_cpus": 2}}}}) == (
        "executor.resources.evaluators.clen: no evaluation of this experiment uses evaluator 'clen' (did you mean "
        "'clean'?); its evaluators: agreement, clean"
    )
    assert err(executor="ray", device="cuda:1").startswith("device: 'cuda:1' names one GPU")
    assert err(executor="ray", device="cuda").startswith(
        "executor.resources.train.num_gpus: device is 'cuda' but train jobs ask for no GPU"
    )
    assert err(executor={"name": "ray", "resources": {"train": {"num_cpus": 2}}}).startswith(
        "threads: 1, but train jobs ask for num_cpus 2"
    )
    assert err(executor={"name": "ray", "max_retries": -1}).startswith("executor.max_retries: ")


def test_cli_executor_flags_and_ray_missing(tmp_path, capsys, monkeypatch):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump({**RAW, "cache_dir": str(tmp_path / "c")}))
    assert cli_main(["validate", str(cfg), "--executor", "ray", "--address", "auto"]) == 0
    assert cli_main(["validate", str(cfg), "--address", "auto"]) == 2
    assert capsys.readouterr().err == "error: --address: the local executor joins no cluster; add --executor ray\n"
    assert cli_main(["validate", str(cfg), "--executor", "slurm"]) == 2
    assert "unknown executor 'slurm'" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    for cmd in ("validate", "run"):
        assert cli_main([cmd, str(cfg), "--executor", "ray"]) == 2
        assert capsys.readouterr().err == (
            "error: executor: the ray executor needs Ray, which is not installed: pip install 'compressbench[ray]'\n"
        )
    assert not (tmp_path / "c").exists()  # nothing done


def test_a_dead_attempt_of_the_same_task_is_taken_over_on_any_host(tmp_path):
    """A claim left by an earlier attempt of this Ray task on another node (its pid means nothing here)
    is taken over at once; any other live-looking claim from another host is respected."""
    import json

    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "k.lock").write_text(json.dumps({"pid": 1, "host": "node-7.example", "token": "t", "ray_task": "T1"}))
    assert claim_job(tmp_path, "k", owner={"ray_task": "T2"}, is_dead=lambda i: i.get("ray_task") == "T2") is None
    c = claim_job(tmp_path, "k", owner={"ray_task": "T1"}, is_dead=lambda i: i.get("ray_task") == "T1")
    assert c is not None and json.loads((jobs / "k.lock").read_text())["ray_task"] == "T1"
    c.release()
    assert not (jobs / "k.lock").exists()
