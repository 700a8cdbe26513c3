"""Deep CORAL: the loss against its formula, its gradient path, and the training loop's use of target
images (unlabeled batches only)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from compressbench.adapt import Adaptation, AdaptParams, FeatureTap, coral_loss, covariance, make_adaptation
from compressbench.data.domains import unlabeled
from compressbench.models import create_model
from compressbench.train import TrainRecipe, train


def _np_coral(s: np.ndarray, t: np.ndarray) -> float:
    """The paper's formula, written out: C = (DᵀD − (1ᵀD)ᵀ(1ᵀD)/n) / (n − 1); ‖C_S − C_T‖²_F / (4d²)."""

    def cov(d):
        n = d.shape[0]
        ones = np.ones((1, n))
        return (d.T @ d - (ones @ d).T @ (ones @ d) / n) / (n - 1)

    d = s.shape[1]
    return float(((cov(s) - cov(t)) ** 2).sum() / (4 * d * d))


def test_coral_loss_equals_the_formula_on_fixed_tensors():
    s = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0], [2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    t = torch.tensor([[0.5, 0.0, 1.0], [3.0, 1.0, 0.0], [1.0, 2.0, 2.0]])
    # by hand: C_S = [[2/3, -1/3, -2/3], [-1/3, 2/3, -1/3], [-2/3, -1/3, 19/12]],
    # C_T = [[7/4, 1/4, -1], [1/4, 1, 1/2], [-1, 1/2, 1]]; ‖C_S − C_T‖²_F = 47/12, / (4 · 3²) = 47/432
    assert float(coral_loss(s, t)) == pytest.approx(47 / 432, rel=1e-6)
    assert float(coral_loss(s, t)) == pytest.approx(_np_coral(s.numpy(), t.numpy()), rel=1e-6)
    assert torch.allclose(covariance(s), torch.from_numpy(np.cov(s.numpy(), rowvar=False)).float(), atol=1e-6)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 16, generator=g), torch.randn(40, 16, generator=g) * 2 + 1
    assert float(coral_loss(a, b)) == pytest.approx(_np_coral(a.numpy(), b.numpy()), rel=1e-5)
    assert float(coral_loss(a, b)) == pytest.approx(float(coral_loss(b, a)))


def test_coral_loss_is_zero_for_equal_covariances():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(50, 8, generator=g)
    assert float(coral_loss(a, a)) == 0.0
    assert float(coral_loss(a, a + 5.0)) == pytest.approx(0.0, abs=1e-10)  # a shift leaves the covariance as is
    assert float(coral_loss(a, a[torch.randperm(50, generator=g)])) == pytest.approx(0.0, abs=1e-10)
    with pytest.raises(ValueError, match="features of one width"):
        coral_loss(a, a[:, :4])


def test_coral_gradient_reaches_the_backbone(digits_bundle):
    torch.manual_seed(0)
    model = create_model("tinycnn", digits_bundle.meta)
    tap = FeatureTap(model)
    xs = digits_bundle.train.x[:32].float() / 255
    xt = 1 - digits_bundle.test.x[:32].float() / 255  # another "domain": inverted images
    model(torch.cat([xs, xt]))
    feats = tap.features
    assert feats.shape == (64, 16)  # the head's input: tinycnn's 16 pooled channels
    loss = coral_loss(feats[:32], feats[32:])
    loss.backward()
    first_conv = model.net[0].weight
    assert loss.item() > 0 and first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    head = model.net[-1]
    assert head.weight.grad is None  # the loss is taken before the head: it shapes the features only
    tap.close()


def _with_target(bundle, target):
    return dataclasses.replace(bundle, source="s", targets={"t": target}, unlabeled={"t": unlabeled(target)})


def _train(bundle, adapt, epochs=1.0, seed=0):
    torch.manual_seed(seed)
    m = create_model("tinycnn", bundle.meta)
    stats = train(
        m,
        bundle.train,
        TrainRecipe(epochs=epochs, batch_size=64, lr=0.1, augment="crop"),
        seed=seed,
        show_progress=False,
        adapt=adapt,
    )
    return m, stats


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_coral_training_reads_target_images_never_their_labels(digits_bundle):
    target = digits_bundle.test
    scrambled = dataclasses.replace(target, y=target.y[torch.randperm(len(target))])
    a, stats = _train(digits_bundle, Adaptation("coral", 5.0, target))  # labels present: still unread
    b, _ = _train(
        digits_bundle, make_adaptation({"method": "coral", "weight": 5.0}, _with_target(digits_bundle, scrambled))
    )
    assert _same(a, b) and stats["train_adapt_loss"] > 0
    noise = dataclasses.replace(target, x=torch.randint(0, 256, target.x.shape, dtype=torch.uint8))
    c, _ = _train(digits_bundle, Adaptation("coral", 5.0, noise))
    assert not _same(a, c)  # the target images do matter
    plain, plain_stats = _train(digits_bundle, None)
    again, _ = _train(digits_bundle, None)
    assert _same(plain, again) and "train_adapt_loss" not in plain_stats


def test_adaptation_params_and_targets(digits_bundle):
    p = AdaptParams(method="coral", weight=2.5)
    assert p.label() == "coral(λ=2.5)"
    assert AdaptParams(weight=1, features="logits", targets=["t"]).label() == "coral(λ=1, logits)→t"
    with pytest.raises(ValueError, match="needs target domains"):
        make_adaptation(p, digits_bundle)
    b = _with_target(digits_bundle, digits_bundle.test)
    with pytest.raises(ValueError, match=r"target\(s\) \['x'\] are not targets"):
        make_adaptation({"targets": ["x"]}, b)
    ad = make_adaptation(p, b)
    assert (ad.target.y == -1).all() and len(ad.target) == len(digits_bundle.test)
    two = dataclasses.replace(
        b,
        targets={**b.targets, "u": digits_bundle.train},
        unlabeled={**b.unlabeled, "u": unlabeled(digits_bundle.train)},
    )
    pooled = make_adaptation(p, two).target  # no targets named: every target, pooled
    assert len(pooled) == len(digits_bundle.test) + len(digits_bundle.train) and (pooled.y == -1).all()
    assert len(make_adaptation({"targets": ["u"]}, two).target) == len(digits_bundle.train)
    first = next(ad.batches(16, seed=0, device=torch.device("cpu")))
    assert torch.equal(first, next(ad.batches(16, seed=0, device=torch.device("cpu"))))  # seeded


def test_domain_shift_evaluator_on_target_images(tiny_model, digits_bundle, tmp_path):
    """In-domain and target top-1, the gap, and top-1 on corrupted target images, measured directly."""
    from compressbench.evaluate.domain_shift import DomainShiftParams, domain_shift
    from compressbench.interfaces import EvalContext, VariantInfo
    from compressbench.train import accuracy

    inverted = dataclasses.replace(digits_bundle.test, x=255 - digits_bundle.test.x)  # another "domain"
    b = _with_target(digits_bundle, inverted)
    ctx = EvalContext(
        data=b,
        meta=b.meta,
        device=torch.device("cpu"),
        seed=0,
        workdir=tmp_path,
        variant=VariantInfo("baseline", "baseline", is_parent=True),
        load_parent=lambda: tiny_model,
        progress=False,
    )
    params = DomainShiftParams(corruptions=["gaussian_noise", "contrast"], severities=[2, 5])
    ms = {(m.metric, tuple(sorted(m.condition.items()))): m.value for m in domain_shift(tiny_model, ctx, params)}
    src, tgt = ms["source_top1", (("source", "s"),)], ms["target_top1", (("source", "s"), ("target", "t"))]
    assert src == pytest.approx(accuracy(tiny_model, digits_bundle.test)) and src > 0.9
    assert tgt == pytest.approx(accuracy(tiny_model, inverted)) and tgt < 0.5
    assert ms["gap", (("source", "s"), ("target", "t"))] == pytest.approx(src - tgt)
    cells = [v for (name, _), v in ms.items() if name == "target_corruption_top1"]
    assert len(cells) == 4 and all(0 <= v <= 1 for v in cells)
    assert ms["target_corruption_mean", (("source", "s"), ("target", "t"))] == pytest.approx(sum(cells) / 4)
    assert ms["composition", (("adapt", ""), ("compression", ""))] == 1.0
    small = domain_shift(tiny_model, ctx, DomainShiftParams(subset=50))
    assert ctx.eval_set(50, domain="t").x.shape[0] == 50 and len(small) == 4
