"""Shared tiny fixtures: the digits dataset (scikit-learn, offline), a synthetic RGB set,
and tiny CNNs trained for a few seconds. Everything is cached per test session."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import pytest

HIDE_ENV = "COMPRESSBENCH_TEST_HIDE"


def _hide_extras() -> list[str]:
    """``COMPRESSBENCH_TEST_HIDE=onnx,timm,...`` (pip extras, or ``all``): run the suite as in an install without
    those extras. Their packages are hidden from this process (:mod:`hide_modules`) before anything imports
    them, and from every child process that inherits the environment (a ``sitecustomize`` put first on
    ``PYTHONPATH``; a test that replaces ``PYTHONPATH`` for its child does not pass it on). Returns the extras
    hidden."""
    names = [n.strip() for n in os.environ.get(HIDE_ENV, "").split(",") if n.strip()]
    if not names:
        return []
    from compressbench.extras import EXTRAS
    from hide_modules import hide

    extras = list(EXTRAS) if names == ["all"] else names
    unknown = [e for e in extras if e not in EXTRAS]
    if unknown:
        raise pytest.UsageError(f"{HIDE_ENV}: unknown extra '{unknown[0]}'; known: {', '.join(EXTRAS)} (or all)")
    modules = sorted({m for e in extras for m in EXTRAS[e]})
    hide(modules)
    site = Path(tempfile.mkdtemp(prefix="cb-test-hide-"))
    (site / "sitecustomize.py").write_text(
        f"import runpy\nrunpy.run_path({str(Path(__file__).with_name('hide_modules.py'))!r})['hide']({modules!r})\n"
    )
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    return extras


HIDDEN_EXTRAS = _hide_extras()  # before torch: it probes optional packages (onnx ...) when imported

import torch  # noqa: E402

os.environ.setdefault("COMPRESSBENCH_PROGRESS", "0")
torch.set_num_threads(1)  # tiny models: threads only add overhead


@pytest.fixture(scope="session")
def digits_bundle(tmp_path_factory):
    from compressbench.data import load_dataset

    return load_dataset("digits", cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def rgb_bundle(tmp_path_factory):
    """Synthetic 3×32×32, 4 classes, 600 train / 200 test images."""
    from compressbench.data import load_dataset

    return load_dataset("synthetic", cache_dir=tmp_path_factory.mktemp("cache"))


def _trained(bundle, name="tinycnn", epochs=15, width=1.0):
    from compressbench.models import create_model
    from compressbench.train import TrainRecipe, train

    torch.manual_seed(0)  # the initial weights must not depend on which tests ran before
    model = create_model(name, bundle.meta, width=width)
    train(
        model,
        bundle.train,
        TrainRecipe(epochs=epochs, batch_size=64, lr=0.1, augment="none"),
        seed=0,
        show_progress=False,
    )
    return model.eval()


@pytest.fixture(scope="session")
def tiny_model(digits_bundle):
    """tinycnn trained on digits (≈ 97 % test accuracy, about a second)."""
    return _trained(digits_bundle)


@pytest.fixture(scope="session")
def tiny_rgb_model(rgb_bundle):
    return _trained(rgb_bundle)


@pytest.fixture(scope="session")
def trained_factory():
    return _trained


def _missing_extra(exc: BaseException) -> str | None:
    """The skip reason when ``exc`` says an optional extra is not installed (a core install), else None."""
    from pydantic import ValidationError

    from compressbench.errors import UserError
    from compressbench.extras import extra_of, install_hint

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:  # the error itself, or what it was raised from
        seen.add(id(exc))
        if isinstance(exc, ModuleNotFoundError) and exc.name and extra_of(exc.name):
            extra = extra_of(exc.name)
            return f"needs the '{extra}' extra ({exc.name} is not installed): {install_hint(extra)}"
        if isinstance(exc, (UserError, ValidationError)) and "' extra: pip install 'compressbench[" in str(exc):
            return str(exc).splitlines()[0]  # compressbench's own refusal (never an assertion quoting one)
        exc = exc.__cause__ or exc.__context__
    return None


def pytest_report_header(config):
    if HIDDEN_EXTRAS:
        return f"extras hidden ({HIDE_ENV}): {', '.join(HIDDEN_EXTRAS)}"
    return None


def pytest_collection_modifyitems(config, items):
    """``@pytest.mark.extras("attacks", ...)``: the test needs these pip extras (a subprocess run, say, where the
    refusal is an exit code, not an exception): skipped, naming the first missing one, where it is missing."""
    from compressbench.extras import install_hint, missing

    for item in items:
        for mark in item.iter_markers("extras"):
            absent = [e for e in mark.args if missing(e)]
            if absent:
                item.add_marker(pytest.mark.skip(reason=f"needs the '{absent[0]}' extra: {install_hint(absent[0])}"))


@contextlib.contextmanager
def _skip_if_extra_missing():
    """Tests of an optional feature skip, naming the extra, where it is not installed (a core install:
    ``pip install compressbench`` without ``[dev]``); with ``[dev]`` (what ``make test`` installs) they run."""
    try:
        yield
    except Exception as e:
        reason = _missing_extra(e)
        if reason:
            pytest.skip(reason)
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with _skip_if_extra_missing():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with _skip_if_extra_missing():
        return (yield)
