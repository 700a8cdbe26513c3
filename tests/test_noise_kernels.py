"""The fused numba loops of the noise corruptions (``corruptions.kernels``) give the numpy paths' bytes and leave
every image's random stream where the numpy paths leave it."""

import numpy as np
import pytest
import torch

from compressbench.evaluate.corruptions import corrupt, kernels, large, ops

pytest.importorskip("numba")

NOISE = ("gaussian_noise", "speckle_noise", "shot_noise", "impulse_noise")


@pytest.fixture(scope="module")
def images():
    """Large enough for the kernels (≥ 112×112 RGB worth of values): RGB, gray with an odd width, a
    smooth image (mid-range values) and a random one (every value, 0 and 255 included)."""
    g = torch.Generator().manual_seed(11)
    smooth = torch.nn.functional.interpolate(torch.rand(2, 3, 9, 9, generator=g), size=(112, 120), mode="bicubic")
    return [
        (smooth.clamp(0, 1) * 255).round().to(torch.uint8),
        torch.randint(0, 256, (3, 3, 113, 112), generator=g, dtype=torch.uint8),
        torch.randint(0, 256, (2, 1, 224, 171), generator=g, dtype=torch.uint8),
    ]


def _numpy_paths(monkeypatch, on: bool) -> None:
    monkeypatch.setenv(kernels.OFF_ENV, "1" if on else "0")
    kernels._compiled.cache_clear()


@pytest.mark.parametrize("name", NOISE)
def test_fused_noise_equals_the_numpy_passes(images, monkeypatch, name):
    outs = {}
    for fused in (True, False):
        _numpy_paths(monkeypatch, fused)
        assert kernels.available() is fused
        outs[fused] = [
            corrupt(x, torch.arange(len(x)) + 5, name, s, seed=9, params=p)
            for x in images
            for s in range(1, 6)
            for p in ("imagenet", "cifar")
        ]
    kernels._compiled.cache_clear()
    for a, b in zip(outs[True], outs[False]):
        assert a.dtype == torch.uint8 and torch.equal(a, b)


def test_fused_noise_consumes_the_same_words(images, monkeypatch):
    """A draw after the fused call continues each image's stream where the numpy path continues it."""
    x = images[1]
    offsets = np.arange(-300, 300, dtype=np.int16).repeat(110)[: 1 << 16]
    factors = (ops.normal_table() * np.float32(0.3) + np.float32(1)).astype(np.float32)
    calls = [
        lambda r: large.offset_uint8(x, offsets, r),
        lambda r: large.scale_uint8(x, factors, r),
        lambda r: large.impulse_uint8(x, r, np.uint32(1 << 30), np.uint32(1 << 29)),
        lambda r: ops.poisson_uint8(r, x, 60.0, uint8=True),
    ]
    for call in calls:
        after = {}
        for fused in (True, False):
            _numpy_paths(monkeypatch, fused)
            rng = ops.BatchRNG([3, 4, 5])
            y = call(rng)
            after[fused] = (y, rng.words(2))
        assert torch.equal(after[True][0], after[False][0])
        assert np.array_equal(after[True][1], after[False][1])
    kernels._compiled.cache_clear()


def test_small_images_keep_the_numpy_paths():
    """CIFAR-size work never imports numba: the kernels start at 112×112 RGB worth of values per image."""
    assert not kernels.large_enough(3 * 64 * 64) and kernels.large_enough(3 * 112 * 112)
