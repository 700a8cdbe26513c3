"""Extras by concern: a feature whose pip extra is missing is one line naming the extra at validate (exit 2),
never an ImportError mid-run; the core install runs the quickstart minus attacks.

The always-on tests hide the extras' packages from a real ``compressbench`` process with a meta-path finder
(the import system itself answers "not installed"); the fresh-venv test builds a core-only install (slow,
``COMPRESSBENCH_TEST_FRESH_VENV=1``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from compressbench.extras import EXTRAS, extra_of, needs_message

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"

# the CLI's own entry point, with the named top-level packages made uninstallable (tests/hide_modules.py)
HIDDEN = textwrap.dedent(f"""
    import runpy, sys

    runpy.run_path({str(Path(__file__).with_name("hide_modules.py"))!r})["hide"](sys.argv[1].split(","))
    from compressbench.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def _cli_without(extra: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-c", HIDDEN, ",".join(EXTRAS[extra]), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize(
    "extra, args, line",
    [
        (
            "attacks",
            [],
            "error: evaluations[2]: the adversarial evaluator needs the 'attacks' extra: "
            "pip install 'compressbench[attacks]'",
        ),
        (
            "onnx",
            ["--set", "evaluations.5.params.onnx=true"],
            "error: evaluations[5].params.onnx: ONNX Runtime timing needs the 'onnx' extra: "
            "pip install 'compressbench[onnx]' (or onnx: false)",
        ),
        (
            "timm",
            ["--set", "model.name=timm:resnet18"],
            "error: model 'timm:resnet18' needs the 'timm' extra: pip install 'compressbench[timm]'",
        ),
    ],
)
def test_missing_extra_is_one_line_at_validate(tmp_path, extra, args, line):
    r = _cli_without(extra, "validate", str(QUICKSTART), *args, cwd=tmp_path)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr[-2000:]
    assert err == [line] or (err and err[-1].startswith(line)), r.stderr[-2000:]
    assert "Traceback" not in r.stderr and not list(tmp_path.iterdir())  # nothing computed, nothing written


def test_onnx_timing_defaults_to_what_is_installed(tmp_path):
    """efficiency.onnx unset: ONNX Runtime timing where the extra is installed, none (said once) where not;
    the decision is part of the validated params, so it is part of the cache key."""
    from compressbench.validate import validate

    raw = {
        "name": "e",
        "dataset": {"name": "digits"},
        "model": {"name": "tinycnn"},
        "train": {"epochs": 1},
        "evaluations": [{"evaluator": "efficiency"}],
        "cache_dir": str(tmp_path / "c"),
    }
    exp = validate(raw)
    assert exp.evaluations[0].params.onnx is all(_installed(m) for m in EXTRAS["onnx"])
    r = _cli_without(
        "onnx", "validate", "--set", "evaluations=[{evaluator: efficiency}]", str(QUICKSTART), cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "no ONNX Runtime timing (the 'onnx' extra is not installed" in r.stderr


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_message_names_the_extra():
    assert needs_message("the adversarial evaluator", "attacks") == (
        "the adversarial evaluator needs the 'attacks' extra: pip install 'compressbench[attacks]'"
    )
    assert extra_of("foolbox.attacks") == "attacks" and extra_of("torch") is None


@pytest.mark.skipif(
    os.environ.get("COMPRESSBENCH_TEST_FRESH_VENV") != "1",
    reason="builds a fresh core-only venv (minutes): set COMPRESSBENCH_TEST_FRESH_VENV=1",
)
def test_fresh_core_venv_runs_the_quickstart_minus_attacks(tmp_path):
    """``pip install compressbench`` (no extras) in a fresh venv: the quickstart without its adversarial
    evaluation runs at a tiny scale and reports; asking for attacks is the one line naming [attacks]."""
    venv = tmp_path / "core"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the venv's own install, not the tree's
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip, cb = venv / "bin" / "pip", venv / "bin" / "compressbench"
    subprocess.run(
        [str(pip), "install", "-q", "torch==2.14.1", "torchvision==0.29.1"], check=True, timeout=1800, env=env
    )
    subprocess.run([str(pip), "install", "-q", str(ROOT)], check=True, timeout=1800, env=env)
    py = venv / "bin" / "python"
    for extra, modules in EXTRAS.items():  # the core pulls in no extra
        found = subprocess.run(
            [str(py), "-c", f"import importlib.util as u; print([m for m in {list(modules)!r} if u.find_spec(m)])"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        assert found.stdout.strip() == "[]", (extra, found.stdout)
    r = subprocess.run([str(cb), "validate", str(QUICKSTART)], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: evaluations[2]: the adversarial evaluator needs the 'attacks' extra: "
        "pip install 'compressbench[attacks]'"
    ], r.stderr
    tiny = [
        "--set",
        "dataset.train_subset=1000",
        "--set",
        "dataset.eval_subset=100",
        "--set",
        "train.epochs=1",
        "--set",
        f"cache_dir={tmp_path / 'cache'}",
        "--set",
        f"store={tmp_path / 'r.sqlite'}",
        "--set",
        "evaluations=[{evaluator: clean, params: {subset: 200}}, {evaluator: corruptions, params: "
        "{suites: [cifar10-c], severities: [3], subset: 100}}, {evaluator: calibration, params: "
        "{corruptions: [gaussian_noise], severities: [3]}}, {evaluator: agreement, params: "
        "{thumbnails: 4}}, {evaluator: efficiency, params: {repeats: 3, throughput_repeats: 1}}]",
    ]
    r = subprocess.run(
        [str(cb), "run", str(QUICKSTART), *tiny], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=1800
    )
    assert r.returncode == 0 and " 0 failed" in r.stdout, (r.stdout[-3000:], r.stderr[-3000:])
    r = subprocess.run(
        [str(cb), "report", str(tmp_path / "r.sqlite"), "--out", str(tmp_path / "rep")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0 and (tmp_path / "rep" / "report.html").exists(), r.stderr[-3000:]
    du = subprocess.run(["du", "-sh", str(venv)], capture_output=True, text=True).stdout.split()[0]
    print(f"core venv: {du}")
