"""A CompressContext for tests (built on train.train / train.accuracy, like the runner's) and tests
of the shared compression helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from compressbench.adapt import make_adaptation
from compressbench.interfaces import CompressContext
from compressbench.train import TrainRecipe, accuracy, train

BASE_RECIPE = TrainRecipe(epochs=8, batch_size=64, lr=0.05, augment="none")


def make_context(
    bundle, workdir: Path, spec: dict | None = None, seed: int = 0, recipe: TrainRecipe = BASE_RECIPE
) -> CompressContext:
    """What the runner builds: ``train(model, epochs, lr=None -> 0.1 × baseline lr, ...)``."""

    def ctx_train(
        model,
        epochs,
        lr=None,
        optimizer=None,
        schedule=None,
        teacher=None,
        kd_alpha=0.9,
        kd_temperature=4.0,
        kd_kind="hinton",
        desc="finetune",
        epoch_end=None,
        adapt=None,
        amp=None,
    ):
        r = TrainRecipe(
            **{
                **recipe.__dict__,
                "epochs": epochs,
                "lr": recipe.lr * 0.1 if lr is None else lr,
                "optimizer": optimizer or recipe.optimizer,
                "schedule": schedule or recipe.schedule,
                "amp": recipe.amp if amp is None else amp,
            }
        )
        train(
            model,
            bundle.train,
            r,
            seed=seed,
            teacher=teacher,
            kd_alpha=kd_alpha,
            kd_temperature=kd_temperature,
            kd_kind=kd_kind,
            desc=desc,
            show_progress=False,
            epoch_end=epoch_end,
            adapt=make_adaptation(adapt, bundle),
        )
        return model

    def ctx_accuracy(model, images=None):
        return accuracy(model, images if images is not None else bundle.test)

    spec = spec or {"model": "tinycnn", "width": 1.0, "kwargs": {}, "meta": bundle.meta.to_dict()}
    return CompressContext(
        data=bundle,
        meta=bundle.meta,
        device=torch.device("cpu"),
        seed=seed,
        workdir=workdir,
        train=ctx_train,
        accuracy=ctx_accuracy,
        parent_spec=spec,
        progress=False,
    )


def with_target(bundle):
    """``bundle`` with its test split as a target domain "target" (for methods that adapt)."""
    import dataclasses

    from compressbench.data.domains import unlabeled

    return dataclasses.replace(
        bundle, source="source", targets={"target": bundle.test}, unlabeled={"target": unlabeled(bundle.test)}
    )


@pytest.fixture
def ctx(digits_bundle, tmp_path):
    return make_context(digits_bundle, tmp_path)


def test_search_knob_bisection():
    from compressbench.compress.budget import search_knob, within

    knob, val, hist = search_knob(lambda r: 1 - r**2, 0.25, 0.0, 1.0, decreasing=True)
    assert within(val, 0.25) and abs(knob - 0.75**0.5) < 0.01
    knob, val, _ = search_knob(lambda w: w, 0.4, 0.0, 1.0, decreasing=False)
    assert within(val, 0.4)


def test_model_stats_and_fractions(tiny_model, digits_bundle):
    from compressbench.compress.common import fractions, model_stats

    s = model_stats(tiny_model, digits_bundle.meta)
    assert s.params > 1000 and s.flops > 0 and s.bytes > 4 * s.params
    f = fractions(s, s)
    assert f == {"params": 1.0, "bytes": 1.0, "flops": 1.0}
