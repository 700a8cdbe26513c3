import torch

from compressbench.models import create_model
from compressbench.train import TrainRecipe, accuracy, augment_batch, kd_loss, train


def test_training_learns_and_is_seeded(digits_bundle):
    r = TrainRecipe(epochs=6, batch_size=64, lr=0.2, augment="none")
    torch.manual_seed(0)
    a = create_model("tinycnn", digits_bundle.meta)
    torch.manual_seed(0)
    b = create_model("tinycnn", digits_bundle.meta)
    sa = train(a, digits_bundle.train, r, seed=1, show_progress=False)
    train(b, digits_bundle.train, r, seed=1, show_progress=False)
    assert sa["train_steps"] == 6 * -(-len(digits_bundle.train) // 64)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert accuracy(a, digits_bundle.test) > 0.6


def test_fractional_epochs(digits_bundle):
    m = create_model("tinycnn", digits_bundle.meta)
    s = train(m, digits_bundle.train, TrainRecipe(epochs=0.5, batch_size=100), show_progress=False)
    assert s["train_steps"] == round(0.5 * -(-len(digits_bundle.train) // 100))


def test_augment_shapes_and_flip():
    x = torch.rand(5, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    assert augment_batch(x, "none", g) is x
    y = augment_batch(x, "flip_crop", g)
    assert y.shape == x.shape


def test_kd_loss_limits():
    z = torch.randn(4, 10)
    y = torch.tensor([1, 2, 3, 4])
    # alpha=0 -> plain cross-entropy; identical logits -> zero KL term
    assert torch.isclose(kd_loss(z, z, y, 0.0, 4.0), torch.nn.functional.cross_entropy(z, y))
    assert torch.isclose(kd_loss(z, z, y, 1.0, 4.0), torch.tensor(0.0), atol=1e-6)
    assert kd_loss(z, -z, y, 1.0, 4.0) > 0


def test_kd_loss_variants_equal_their_formulas():
    """issue 16: reverse-KL and 2T²α losses, on fixed logits, against the formulas written out."""
    g = torch.Generator().manual_seed(0)
    zs, zt = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    y = torch.randint(0, 5, (8,), generator=g)
    a, t = 0.7, 3.0
    ps, pt = (zs / t).softmax(1), (zt / t).softmax(1)
    kl_ts = (pt * (pt.log() - ps.log())).sum(1).mean()  # KL(p_t ‖ p_s)
    kl_st = (ps * (ps.log() - pt.log())).sum(1).mean()  # KL(p_s ‖ p_t)
    ce = torch.nn.functional.cross_entropy(zs, y)
    assert torch.isclose(kd_loss(zs, zt, y, a, t), a * t * t * kl_ts + (1 - a) * ce, atol=1e-6)
    assert torch.isclose(kd_loss(zs, zt, y, a, t, kind="hinton_2t2"), 2 * t * t * a * kl_ts + (1 - a) * ce, atol=1e-6)
    assert torch.isclose(kd_loss(zs, zt, y, a, t, kind="reverse_kl"), a * t * t * kl_st + (1 - a) * ce, atol=1e-6)
    assert not torch.isclose(kl_ts, kl_st)  # the two directions really differ here


def test_flip_only_augmentation_flips_without_cropping():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 8, 8)
    out = augment_batch(x, "flip", g)
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(3)).flatten(1).all(1)
    assert (same | flipped).all() and same.any() and flipped.any()
