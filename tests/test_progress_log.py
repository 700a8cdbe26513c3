"""Logs that say what runs: with stdout/stderr piped (not a terminal), a real run's log names the running job
and a training job logs epoch / loss / images-per-second lines, at least every COMPRESSBENCH_PROGRESS_LOG_S
seconds (30 by default; shortened here so a tiny run shows several)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_piped_run_logs_the_running_job_and_its_epochs(tmp_path):
    cfg = {
        "name": "logs",
        "dataset": {"name": "digits", "eval_subset": 100},
        "model": {"name": "tinycnn"},
        "train": {"epochs": 8, "batch_size": 64},  # ≈ 1 s of training: several log periods
        "cache_dir": str(tmp_path / "cache"),
        "store": str(tmp_path / "r.sqlite"),
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if k != "COMPRESSBENCH_PROGRESS"}  # decided by isatty: a pipe
    env.update(COMPRESSBENCH_PROGRESS_LOG_S="0.1", PYTHONPATH=str(ROOT / "src"))
    r = subprocess.run(
        [sys.executable, "-m", "compressbench", "run", str(tmp_path / "c.yaml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    log = r.stdout + r.stderr
    assert "\r" not in log and "\x1b[" not in log  # no bar, no live table: plain lines
    # the summary line names the running job ...
    assert re.search(r"jobs: .*running: train baseline seed=0 \(\d+s\)", log), log[-3000:]
    # ... and the training loop says where it is: epoch, step, loss, images/s
    epochs = re.findall(
        r"train seed=0: epoch (\d)/8 \(step (\d+)/(\d+)\), loss (\d+\.\d+), acc (\d\.\d+), "
        r"(\d+) images/s",
        log,
    )
    assert epochs, log[-3000:]
    steps = [int(s) for _, s, _, _, _, _ in epochs]
    assert steps == sorted(steps) and all(1 <= int(e) <= 8 for e, *_ in epochs)
    totals = {int(t) for _, _, t, _, _, _ in epochs}
    assert len(totals) == 1 and totals.pop() % 8 == 0  # 8 epochs of whole batches
    assert all(float(loss) > 0 and int(ips) > 0 for _, _, _, loss, _, ips in epochs)
