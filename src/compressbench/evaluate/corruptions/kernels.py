"""Fused CPU loops for the noise corruptions, the per-pixel colour maps (brightness, saturate, frost) and defocus
blur's disk by runs of large uint8 images (numba), with the numpy / torch paths' bytes.

Gaussian, speckle, shot and impulse noise at ImageNet size are, per value, a keyed random word
(``ops.BatchRNG``: SplitMix64 of the image's key and a counter), a table lookup or a threshold, an
addition or a product, a clip and a cast. numpy runs each of those as a pass over the image — 10 to 15
passes and a gather whose per-element cost dominates (≈ 0.7–0.9 ns a value here) — where one compiled
loop per image does them in registers: the mixing loop vectorises (≈ 11 µs for one 224-px image's
37,632 words against ≈ 58 µs in numpy) and the lookups run without numpy's per-call casts and checks.
No maintained library fuses a keyed counter RNG with these maps (numpy's own generators are other
streams, and the streams are part of the corruptions' versions), so the loops are ours; numba compiles
them (``cache=True``: once per installation where the package directory is writable).

Every kernel gives exactly the bytes of the numpy path it replaces — the same words, the same
integer arithmetic, and for speckle the same float32 operations in the same order (no fast-math, no
contraction into FMA) — tested value for value (``tests/test_noise_kernels.py``). Where numba is missing
or unusable, or with ``COMPRESSBENCH_NUMBA=0`` (for a side-by-side measurement), :func:`available` is
False and the numpy paths run. numba is imported on the first large CPU noise batch only (≈ 0.7 s).

The colour maps (brightness, saturate, frost of large uint8 RGB CPU batches) are one loop over an image's
pixels instead of ≈ 10–20 torch passes and their temporaries (≈ 3–5× faster at 224 px, measured). They
reproduce torch's CPU kernels operation by operation: the same float32 operations in the same order, and
where torch's ``addcmul`` / ``add(alpha=)`` use a fused multiply-add (its vector kernels on CPUs with FMA), an
FMA (LLVM's intrinsic). Since that is a property of the CPU and the torch build, ``hendrycks.colour_maps_exact``
checks once per process that the loops give the torch paths' bytes here, else the torch paths run. Checked
beyond that on this machine: every one of the 2²⁴ RGB triples, all 20 severities of brightness and saturate,
equal to the torch paths.

Defocus blur of large uint8 CPU batches, where ``large.disk_runs`` accepts the kernel (every severity but
ImageNet's 4 and 5, radii 8 and 10, which keep the FFT path), is one loop per plane (:func:`disk_uint8`) instead
of ``large.disk_filter``'s ≈ 20–30 torch passes over float32 chunks and the cast: REFLECT_101 padding along the
rows (the columns by index), the disk's sums in 16-bit integers (vertical running sums per distinct half-height of
its columns, then the columns' shifted sums — every partial sum an exact integer, as the float32 prefix sums of
the torch path), then the anti-aliasing Gaussian's vertical and horizontal passes in float32 exactly as torch
orders them (``torch.mul`` by the first tap, ``add_(alpha=)`` — an FMA — for the others), + 10⁻⁴, clip, truncate.
The same bytes; ``hendrycks.defocus_exact`` checks that once per process (else the torch path runs). ≈ 5× faster
at 224 px (severities 1–3, measured).

JPEG at ImageNet size runs libjpeg-turbo image by image (Pillow's encoder, simplejpeg's decoder), which take and
give interleaved pixels: two loops move a planar image into RGBX words and back (≈ 8 µs each per 224-px image,
against ≈ 30 µs for Pillow's ``Image.merge`` and ≈ 16 µs for numpy's casts); pure data movement, the same bytes.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

OFF_ENV = "COMPRESSBENCH_NUMBA"


@functools.cache
def _compiled() -> Any:
    """The module's kernels compiled by numba (a namespace), or None where numba cannot be used."""
    if os.environ.get(OFF_ENV, "") == "0":
        return None
    try:
        from . import _numba_kernels
    except Exception as e:  # not installed, or no build for this Python / numpy
        log.info("noise kernels: numba not usable (%s); the numpy paths run", e)
        return None
    return _numba_kernels


def available() -> bool:
    """Whether the fused kernels run (numba importable and not turned off)."""
    return _compiled() is not None


def large_enough(m: int) -> bool:
    """Whether images of ``m`` values take the kernels: from 112×112 RGB (the chunked numpy paths' size,
    ``ops.chunk_rows``); smaller images keep numpy (no numba import, no compilation for CIFAR-size work)."""
    return 4 * m >= 3 * 224 * 224


def fuses(m: int, device: Any) -> bool:
    """Whether a uint8 batch of images of ``m`` values on ``device`` runs its noise in the fused loops."""
    return getattr(device, "type", device) == "cpu" and large_enough(m) and available()


def _noise(kernel: str, x: np.ndarray, rng: Any, per_word: int, *args: Any, dtype: Any = np.uint8) -> np.ndarray:
    """Run the noise loop ``kernel`` on a uint8 N×… batch: ``per_word`` values per random word, the next words of
    every image's stream (``rng``: an ``ops.BatchRNG``, advanced as the numpy path advances it), the loop's own
    ``args``, a ``dtype`` result of ``x``'s shape."""
    xr = np.ascontiguousarray(x.reshape(len(x), -1))
    n = (xr.shape[1] + per_word - 1) // per_word
    keys, ctr0 = rng.reserve(n)
    out = np.empty(xr.shape, dtype=dtype)
    getattr(_compiled(), kernel)(xr, keys, np.uint64(ctr0), *args, out, np.empty(n, dtype=np.uint64))
    return out.reshape(x.shape)


def offset_uint8(x: np.ndarray, rng: Any, offsets: np.ndarray) -> np.ndarray:
    """``clip(x + offsets[j], 0, 255)``, j the images' next 16-bit normal indices (``BatchRNG.normal_index``'s:
    four per word, little-endian)."""
    return _noise("offset_uint8", x, rng, 4, offsets)


def scale_uint8(x: np.ndarray, rng: Any, factors: np.ndarray) -> np.ndarray:
    """``⌊clip(x·factors[j] + 10⁻⁴, 0, 255)⌋`` in float32, j as in :func:`offset_uint8`."""
    return _noise("scale_uint8", x, rng, 4, np.asarray(factors, dtype=np.float32))


def impulse_uint8(x: np.ndarray, rng: Any, flip: np.uint32, half: np.uint32) -> np.ndarray:
    """Per value a 32-bit uniform u (two per word): 255 where u < half, 0 where half ≤ u < flip, else x."""
    return _noise("impulse_uint8", x, rng, 2, np.uint32(flip), np.uint32(half))


def poisson_uint8(
    v: np.ndarray, rng: Any, inv: np.ndarray, ambiguous: int, offset: np.ndarray, K: int, table: np.ndarray
) -> np.ndarray:
    """``ops.poisson_uint8``'s draw (uint8 v) with 32-bit uniforms: the bucket table ``inv``, the exact search
    over the offset CDFs where a bucket is ``ambiguous``, then ``table[k]`` (its dtype is the result's)."""
    return _noise("poisson_uint8", v, rng, 2, inv, np.int64(ambiguous), offset, np.int64(K), table, dtype=table.dtype)


# --------------------------------------------------------------------------- per-pixel colour maps
def brightness_rgb(x: np.ndarray, c: float) -> np.ndarray:
    """``hendrycks._brightness`` of a uint8 N×3×H×W batch in one loop per image."""
    xr = np.ascontiguousarray(x.reshape(len(x), 3, -1))
    out = np.empty_like(xr)
    _compiled().brightness_rgb(xr, np.float32(255 * c), out)
    return out.reshape(x.shape)


def saturate_rgb(x: np.ndarray, c: tuple[float, float]) -> np.ndarray:
    """``hendrycks._saturate_uint8`` of a uint8 N×3×H×W batch in one loop per image."""
    xr = np.ascontiguousarray(x.reshape(len(x), 3, -1))
    out = np.empty_like(xr)
    _compiled().saturate_rgb(xr, np.float32(c[0]), np.float32(c[1]), out)
    return out.reshape(x.shape)


def frost_rgb(x: np.ndarray, tex: np.ndarray, where: np.ndarray, c: tuple[float, float]) -> np.ndarray:
    """``hendrycks._frost_uint8`` of a uint8 N×3×H×W batch (``where``: N×(texture, row, column))."""
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    _compiled().frost_rgb(x, tex, np.ascontiguousarray(where, dtype=np.int64), np.float32(c[0]), np.float32(c[1]), out)
    return out


# --------------------------------------------------------------------------- defocus disk by runs
def disk_uint8(x: np.ndarray, rows: tuple[tuple[int, int], ...], g: np.ndarray, inv_area: float) -> np.ndarray:
    """``large.disk_filter`` of a uint8 N×C×H×W batch in uint8 units, + 10⁻⁴, clipped and truncated to uint8 — one
    loop per plane; ``rows``, ``g``, ``inv_area``: ``large.disk_runs``' plan (the disk's (row offset, half-width)
    runs, the Gaussian's taps, 1 / the disk's area). Needs r + len(g) // 2 < min(H, W) (r: the disk's reach)."""
    hs, hidx = np.unique(np.array([w for _, w in rows], dtype=np.int64), return_inverse=True)
    pad = -len(rows) % 4  # the loop sums four columns per pass: pad with the row of zeros (index len(hs))
    offs = np.array([s for s, _ in rows] + [0] * pad, dtype=np.int64)
    hidx = np.concatenate([hidx.astype(np.int64), np.full(pad, len(hs), dtype=np.int64)])
    area = round(1.0 / inv_area)
    acc = np.zeros(1, dtype=np.uint16 if 255 * area < 1 << 16 else np.int32)  # the sums' type: exact, narrow
    gv = np.asarray(g * inv_area, dtype=np.float32)  # torch's float(gv[a]) as float32
    N, C, H, W = x.shape
    xr = np.ascontiguousarray(x).reshape(N * C, H, W)
    out = np.empty_like(xr)
    r = max(abs(s) for s, _ in rows)
    _compiled().disk_uint8(xr, offs, hidx, hs, gv, np.asarray(g, dtype=np.float32), r, acc, out)
    return out.reshape(x.shape)


# --------------------------------------------------------------------------- JPEG's pixel layouts
def interleaves() -> bool:
    """Whether :func:`rgbx_from_planes` / :func:`planes_from_rgbx` run: the kernels are available and the CPU is
    little-endian (the words' byte order is libjpeg's RGBX order)."""
    return sys.byteorder == "little" and available()


def rgbx_from_planes(planes: np.ndarray, rgbx: np.ndarray) -> None:
    """Write one image's uint8 planes (3×H×W, C-contiguous) into ``rgbx`` (uint8 H×W×4, C-contiguous) as RGBX
    pixels, X = 255."""
    p = planes.reshape(3, -1)
    _compiled().rgbx_words(p[0], p[1], p[2], rgbx.reshape(-1).view(np.uint32))


def planes_from_rgbx(rgbx: np.ndarray, planes: np.ndarray) -> None:
    """Write ``rgbx``'s pixels (uint8 H×W×4, C-contiguous) into one image's uint8 planes (3×H×W, C-contiguous)."""
    p = planes.reshape(3, -1)
    _compiled().rgb_planes(rgbx.reshape(-1).view(np.uint32), p[0], p[1], p[2])
