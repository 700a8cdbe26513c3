"""Shared tiny fixtures: the digits dataset (scikit-learn, offline), a synthetic RGB set,
and tiny CNNs trained for a few seconds. Everything is cached per test session."""

from __future__ import annotations

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
