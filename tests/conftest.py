"""Shared tiny fixtures: the digits dataset (scikit-learn, offline), a synthetic RGB set,
and tiny CNNs trained for a few seconds. Everything is cached per test session."""

from __future__ import annotations

import contextlib
import os

import pytest
import torch

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
    train(model, bundle.train, TrainRecipe(epochs=epochs, batch_size=64, lr=0.1, augment="none"), seed=0,
          show_progress=False)
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
