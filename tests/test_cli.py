import subprocess
import sys

import pytest
import yaml

from compressbench.cli import main


def test_list_models_and_datasets(capsys):
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    assert "cnn5" in out and "resnet20" in out
    assert main(["list", "datasets"]) == 0
    assert "fashion-mnist" in capsys.readouterr().out


def test_run_results_csv_and_module_entry(tmp_path, monkeypatch):
    cfg = {
        "name": "c",
        "dataset": {"name": "digits", "eval_subset": 100},
        "model": {"name": "tinycnn"},
        "train": {"epochs": 1, "batch_size": 128},
        "cache_dir": str(tmp_path / "cache"),
        "store": str(tmp_path / "c.sqlite"),
    }
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("COMPRESSBENCH_PROGRESS", "0")
    r = subprocess.run(
        [sys.executable, "-m", "compressbench", "run", str(p), "--quiet"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert "2 jobs — 2 ran" in r.stdout and f"results: {tmp_path / 'c.sqlite'}" in r.stdout
    assert main(["results", str(tmp_path / "c.sqlite"), "--csv", str(tmp_path / "out.csv")]) == 0
    import pandas as pd

    df = pd.read_csv(tmp_path / "out.csv")
    assert {"variant", "metric", "value", "seed", "evaluator"} <= set(df.columns)
    assert (df.query("metric == 'top1'")["value"].between(0, 1)).all()


def test_results_missing_store(tmp_path, capsys):
    assert main(["results", str(tmp_path / "none.sqlite")]) == 2
    assert "no results store" in capsys.readouterr().err


def test_run_prints_a_table_per_sibling_experiment(tmp_path, capsys):
    """A dataset with several source domains runs sibling experiments: `run` prints each one's table."""
    from compressbench.cli import main

    cfg = tmp_path / "d.yaml"
    cfg.write_text(f"""
name: sib
dataset: {{name: digits-domains, source: [printed, handwritten], options: {{size: 8, renders: 1}},
          train_subset: 128}}
model: {{name: tinycnn}}
train: {{epochs: 0.5, batch_size: 64, augment: none}}
evaluations: [{{evaluator: clean}}]
cache_dir: {tmp_path / "c"}
store: {tmp_path / "s.sqlite"}
""")
    assert main(["run", str(cfg), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "sib.printed (mean over seeds)" in out and "sib.handwritten (mean over seeds)" in out


@pytest.mark.parametrize("args", [["--help"], ["plan", "--help"], ["run", "--help"]])
def test_help_does_not_import_torch(args):
    """``--help`` answers without importing torch (about 2.5 s of CPU before anything is said)."""
    code = (
        "import runpy, sys\nsys.argv = ['compressbench', *sys.argv[1:]]\ntry:\n"
        "    runpy.run_module('compressbench', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print('TORCH', 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    assert "usage:" in out.stdout and out.stdout.strip().endswith("TORCH False")


def test_cuda_home_warning_is_silenced_by_the_cli(capfd):
    """A smoke run printed torch's `No CUDA runtime is found, using CUDA_HOME=...` (nvcc, no GPU): the CLI's
    logging setup silences that one logger (nothing here builds C++ extensions)."""
    import logging
    import subprocess
    import sys

    from compressbench.cli import _setup_logging

    _setup_logging(0)
    assert logging.getLogger("torch.utils.cpp_extension").getEffectiveLevel() >= logging.ERROR
    code = (
        "import logging, os; os.environ['CUDA_HOME'] = '/nonexistent-cuda'; from compressbench.cli import "
        "_setup_logging; _setup_logging(0); import torch.utils.cpp_extension"
    )
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stderr
    assert "No CUDA runtime is found" not in err


def test_run_with_a_missing_dataset_is_one_line_and_exit_2(tmp_path):
    """A dataset that is not there stops ``run`` before any job with the loader's one-line error and exit 2 —
    not a failed row for each of the plan's jobs (the local executor loads the data first, as Ray's driver
    does). A second run with the data in place then runs every job."""
    from test_config_hardening import _fake_fashion

    empty = tmp_path / "fm"
    empty.mkdir()
    cfg = {
        "name": "m",
        "dataset": {"name": "fashion-mnist", "root": str(empty), "download": False, "eval_subset": 20},
        "model": {"name": "tinycnn"},
        "train": {"epochs": 0.5, "batch_size": 32, "augment": "none"},
        "evaluations": [{"evaluator": "clean"}],
        "cache_dir": str(tmp_path / "cache"),
        "store": str(tmp_path / "m.sqlite"),
    }
    p = tmp_path / "m.yaml"
    p.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "compressbench", "run", str(p), "--quiet", "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2, (r.stdout, r.stderr)
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and f"dataset.root {empty}" in err[0] and "Fashion-MNIST not found" in err[0], r.stderr
    assert "FAILED" not in r.stdout and "jobs —" not in r.stdout
    _fake_fashion(empty)  # the four IDX files
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "2 jobs — 2 ran, 0 cached, 0 failed" in r.stdout
