"""The large-image fast paths of the cheap per-pixel corruptions give the bytes of the general paths they replace
(issue 27: faster at 224 px with the same bytes). Each test runs the old form, kept as the general path, next to
the fast one on a few images with the cases the fast path special-cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compressbench.evaluate.corruptions import corrupt, hendrycks, ops
from compressbench.evaluate.corruptions.params import CIFAR, IMAGENET

PARAMS = ("cifar", "imagenet")


def _images(seed: int, size: int = 72) -> torch.Tensor:
    """Random RGB images with a few gray pixels (r = g = b), a mostly gray one, and black and white ones."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (5, 3, size, size), generator=g, dtype=torch.uint8)
    x[0, :, :3, :5] = x[0, :1, :3, :5]  # a few gray pixels
    x[1] = x[1, :1]  # a gray photograph stored as RGB
    x[1, 0, :4, :4] = 7  # ... with a few coloured pixels
    x[2, :, ::7] = 0
    x[3, :, :, ::5] = 255
    return x


def test_noise_tables_looked_up_in_chunks_equal_the_plain_gather():
    """gaussian and speckle noise of large uint8 CPU batches (``large.offset_uint8`` / ``scale_uint8``: chunks of
    images, ``np.take(mode="wrap")``) equal the plain formula on the whole batch's table indices."""
    from compressbench.evaluate.corruptions import large

    x = _images(2, 128)  # 3 images per chunk (ops.chunk_rows)
    keys = [5, 6, 7, 8, 9]
    for c in (0.08, 0.38):
        offsets = np.floor((ops.normal_table() * np.float32(c)).astype(np.float64) * 255 + 1e-4).astype(np.int16)
        factors = ops.normal_table() * np.float32(c) + np.float32(1.0)
        j = torch.from_numpy(ops.BatchRNG(keys).normal_index(x[0].numel()).astype(np.int64)).view(x.shape)
        off = torch.from_numpy(offsets)[j].add_(x).clamp_(0, 255).to(torch.uint8)
        scaled = torch.from_numpy(factors)[j].mul_(x).add_(1e-4).clamp_(0, 255).to(torch.uint8)
        assert torch.equal(large.offset_uint8(x, offsets, ops.BatchRNG(keys)), off), c
        assert torch.equal(large.scale_uint8(x, factors, ops.BatchRNG(keys)), scaled), c


def _torch_paths(monkeypatch, off: bool) -> None:
    from compressbench.evaluate.corruptions import kernels

    monkeypatch.setenv(kernels.OFF_ENV, "0" if off else "1")
    kernels._compiled.cache_clear()
    hendrycks.colour_maps_exact.cache_clear()
    hendrycks.defocus_exact.cache_clear()


def test_colour_map_kernels_equal_the_torch_paths():
    """The numba loops of brightness, saturate and frost give the torch paths' bytes for every pair of a pixel's
    maximum and value (brightness), every (value, texture) pair (frost), gray pixels and mostly gray images, an odd
    size (torch's scalar tails), every severity of both constant sets and constants beyond them."""
    pytest.importorskip("numba")
    from compressbench.evaluate.corruptions import kernels

    if not kernels.available():
        pytest.skip(f"numba missing or turned off ({kernels.OFF_ENV}=0)")
    if not hendrycks.colour_maps_exact():
        pytest.skip("torch's CPU kernels round differently here (no FMA): the torch paths run")
    ramp = torch.arange(256, dtype=torch.uint8)
    pairs = torch.stack(
        [ramp[:, None].expand(256, 256), ramp[None, :].expand(256, 256), (ramp // 2)[None, :].expand(256, 256)]
    )[None]
    for x in (pairs.contiguous(), _images(4, 67)):
        for c in (*CIFAR["brightness"], *IMAGENET["brightness"], -0.2, 1.0):
            ref = hendrycks._brightness(x, None, c, "")
            assert np.array_equal(kernels.brightness_rgb(x.numpy(), c), ref.numpy()), c
        for c in (*CIFAR["saturate"], *IMAGENET["saturate"], (0.0, 1.0)):
            assert np.array_equal(kernels.saturate_rgb(x.numpy(), c), hendrycks._saturate_uint8(x, c).numpy()), c
        H, W = x.shape[-2:]
        tex = torch.stack([pairs[0].transpose(-1, -2)] * 2)[..., :H, :W].contiguous()  # texture value = row
        tex = torch.nn.functional.pad(tex, (3, 3, 2, 2))
        where = torch.tensor([[1, 2, 3]] * len(x))
        for c in (*CIFAR["frost"], *IMAGENET["frost"], (0.3, 1.9)):
            fused = kernels.frost_rgb(x.numpy(), tex.numpy(), where.numpy(), c)
            assert np.array_equal(fused, hendrycks._frost_uint8(x, tex, where, c).numpy()), c


@pytest.mark.parametrize("name", ["brightness", "saturate", "frost"])
def test_corrupt_with_and_without_numba_gives_the_same_bytes(monkeypatch, name):
    """``corrupt()`` on large uint8 RGB and gray batches: the numba loops and the torch paths agree."""
    pytest.importorskip("numba")
    x = _images(5, 80)
    outs = {}
    for off in (False, True):
        _torch_paths(monkeypatch, off)
        outs[off] = [corrupt(b, None, name, s, params=p) for b in (x, x[:, :1]) for s in (1, 3, 5) for p in PARAMS]
    _torch_paths(monkeypatch, False)
    for a, b in zip(outs[False], outs[True], strict=True):
        assert a.dtype == torch.uint8 and torch.equal(a, b)


DEFOCUS = [(p, s) for p in PARAMS for s in range(1, 6)]


def _defocus_images() -> list[torch.Tensor]:
    """Large enough for the large path (``large.is_large``): RGB with an odd width, gray non-square, an RGB image
    with black and white areas (the clip at 0 and 255), each with random values."""
    g = torch.Generator().manual_seed(27)
    x = torch.randint(0, 256, (1, 3, 224, 171), generator=g, dtype=torch.uint8)
    x[0, :, :40] = 255
    x[0, :, 60:90, 30:] = 0
    return [
        torch.randint(0, 256, (2, 3, 113, 120), generator=g, dtype=torch.uint8),
        torch.randint(0, 256, (2, 1, 97, 150), generator=g, dtype=torch.uint8),
        x,
    ]


def test_defocus_kernel_equals_the_torch_path():
    """The numba loop of defocus blur's runs path (``large.disk_uint8``) gives the torch path's bytes at every
    severity of both constant sets whose kernel the runs accept (all but ImageNet's radii 8 and 10, which keep the
    FFT path), on odd, non-square, RGB and gray images of the large path's sizes."""
    pytest.importorskip("numba")
    from compressbench.evaluate.corruptions import kernels, large

    if not kernels.available():
        pytest.skip(f"numba missing or turned off ({kernels.OFF_ENV}=0)")
    if not hendrycks.defocus_exact():
        pytest.skip("torch's CPU kernels round differently here (no FMA): the torch path runs")
    runs = 0
    for x in _defocus_images():
        assert large.is_large(x)
        for pset, s in DEFOCUS:
            c = (CIFAR if pset == "cifar" else IMAGENET)["defocus_blur"][s - 1]
            fused = large.disk_uint8(x, *c)
            if large.disk_runs(*map(float, c)) is None:
                assert fused is None and c[0] >= 8
                continue
            runs += 1
            assert fused.dtype == torch.uint8 and torch.equal(fused, hendrycks._defocus_uint8(x, c)), (x.shape, c)
    assert runs == 3 * 8  # CIFAR's five severities and ImageNet's first three, on each image


def test_defocus_dispatch_takes_the_kernel_with_the_torch_paths_bytes(monkeypatch):
    """``corrupt()`` of large uint8 CPU batches runs the loop for every runs severity (and only those) and gives the
    bytes of the torch paths (``COMPRESSBENCH_NUMBA=0``)."""
    pytest.importorskip("numba")
    from compressbench.evaluate.corruptions import kernels

    x = _images(6, 80)
    cases = [(b, s, p) for b in (x, x[:, :1]) for s in (1, 3, 4, 5) for p in PARAMS]
    outs = {}
    for off in (True, False):
        _torch_paths(monkeypatch, off)
        exact = hendrycks.defocus_exact()  # (its own check calls the loop)
        calls = []
        real = kernels.disk_uint8
        monkeypatch.setattr(kernels, "disk_uint8", lambda *a, calls=calls, real=real: calls.append(a[3]) or real(*a))
        outs[off] = [corrupt(b, None, "defocus_blur", s, params=p) for b, s, p in cases]
        monkeypatch.setattr(kernels, "disk_uint8", real)
        if off:
            assert not calls
        elif exact:
            assert len(calls) == len(cases) - 4  # all but ImageNet's severities 4 and 5 (the FFT path)
    _torch_paths(monkeypatch, False)
    for a, b in zip(outs[False], outs[True], strict=True):
        assert a.dtype == torch.uint8 and torch.equal(a, b)


def test_defocus_kernel_general_gaussian_equals_the_torch_path(monkeypatch):
    """The loop's general Gaussian passes (any odd number of taps; the source's kernels have 1 or 3 after trimming)
    give the torch path's bytes: a 5-tap plan given to both paths."""
    pytest.importorskip("numba")
    from compressbench.evaluate.corruptions import kernels, large

    if not kernels.available() or not hendrycks.defocus_exact():
        pytest.skip("numba missing or turned off, or torch's CPU kernels round differently here")
    rows, _, inv_area = large.disk_runs(3.0, 0.1)
    plan = (rows, ops.cv2_gaussian_kernel(5, 0.8), inv_area)
    monkeypatch.setattr(large, "disk_runs", lambda r, a: plan)
    for x in _defocus_images()[:2]:
        assert torch.equal(large.disk_uint8(x, 3.0, 0.1), hendrycks._defocus_uint8(x, (3.0, 0.1)))
