"""Paths for large images (ImageNet-size; used from ``LARGE_PIXELS`` = 64×64 px): the same
operations as the small-image primitives of ``ops``, organised for images whose rows no longer fit
a dense matrix cheaply.

At 32 px a dense n×n matrix per axis (resampling, filtering) is one small GEMM and the fastest
form; at 224 px it costs n multiply-adds per output value where the operation needs 1–4. Here the
sparse structure is used instead: linear interpolation and BOX resampling as gathers of whole rows
(contiguous copies) or columns, and the defocus disk as runs of a prefix sum. Every function takes
and returns tensors on any device; on the CPU the column gather goes through numpy (``np.take`` along
the last axis is 3–10× faster than ``torch.index_select`` there, measured), and so do the BOX resize's
uniform factors of 2 and 4, on machine words (numpy's unsigned arithmetic wraps as the bit tricks need).

The small-image paths are unchanged, so 32-px outputs are bit-identical; at large sizes these
paths round differently (float32 ulps; each corruption that uses them bumped its version).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np
import torch

from . import kernels
from .planes import CHUNK_VALUES, fft_filter2d, per_plane  # noqa: F401 (part of this module's API)

LARGE_PIXELS = 64 * 64  # from this many pixels per image: the paths of this module


def is_large(x: torch.Tensor) -> bool:
    return x.shape[-2] * x.shape[-1] >= LARGE_PIXELS


def _index(idx: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(idx, dtype=torch.long, device=x.device)


def take(x: torch.Tensor, idx: np.ndarray, dim: int) -> torch.Tensor:
    """``x.index_select(dim, idx)`` for dim −1 or −2; on the CPU the last dimension through numpy's
    ``take`` (torch's CPU gather along the contiguous axis is several times slower)."""
    if dim == -1 and x.device.type == "cpu" and not x.requires_grad:
        return torch.from_numpy(np.take(x.numpy(), idx, axis=-1))
    return x.index_select(dim, _index(idx, x))


def by_images(x: torch.Tensor, fn: Callable[..., torch.Tensor], rng=None) -> torch.Tensor:
    """``fn(images)`` — or ``fn(images, rng)`` with that image's part of the batch's ``ops.BatchRNG`` — one image
    at a time on the CPU, into one result: no whole-batch float intermediates. The same values as one call (an
    image's numbers depend only on its key and the draws, not on its batch). Why: at 224 px a fresh float32
    batch of 16 images (9.6 MB) can cost as much in first-touch page faults as a light pass over it, while
    one image's buffers (≈ 600 KB) are reused from the heap — worth it for light per-pixel maps with few
    ops (brightness 1.4×, saturate 1.1×, measured), not where per-op overhead ×16 outweighs (see
    ``hendrycks._by_images``). One call on other devices."""
    if x.device.type != "cpu" or len(x) <= 1:
        return fn(x) if rng is None else fn(x, rng)
    out = None
    for i in range(len(x)):
        if rng is None:
            y = fn(x[i : i + 1])
        else:
            sub = rng.split(slice(i, i + 1))
            y = fn(x[i : i + 1], sub)
        if out is None:
            out = torch.empty((len(x), *y.shape[1:]), dtype=y.dtype)
        out[i : i + 1] = y
    if rng is not None:
        rng.follow(sub)
    return out


# --------------------------------------------------------------------------- linear interpolation
@lru_cache(maxsize=512)
def zoom_taps(n: int, zoom: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows of ``ops.clipped_zoom_matrix(n, zoom)`` as taps: output i = (1 − w[i])·x[i0[i]] +
    w[i]·x[i1[i]] (same crop, coordinates and clamping)."""
    ch = int(np.ceil(n / zoom))
    top = (n - ch) // 2
    out_n = int(round(ch * zoom))
    ratio = (ch - 1) / (out_n - 1) if out_n > 1 else 0.0
    trim = (out_n - n) // 2
    c = np.clip(np.arange(out_n)[trim : trim + n] * ratio, 0, ch - 1)
    i0 = np.floor(c).astype(np.int64)
    i1 = np.minimum(i0 + 1, ch - 1)
    return i0 + top, i1 + top, (c - i0).astype(np.float32)


def lerp_axis(x: torch.Tensor, taps: tuple[np.ndarray, np.ndarray, np.ndarray], dim: int) -> torch.Tensor:
    """Linear interpolation along ``dim`` (−1 or −2) at the given taps: two gathers and one lerp."""
    i0, i1, w = taps
    wt = torch.as_tensor(w, dtype=x.dtype, device=x.device)
    return torch.lerp(take(x, i0, dim), take(x, i1, dim), wt if dim == -1 else wt[:, None])


def clipped_zoom(x: torch.Tensor, zoom: float) -> torch.Tensor:
    """``clipped_zoom`` of make_imagenet_c.py (centre crop, ``scipy.ndimage.zoom(order=1)``, trim) on
    an N×C×H×W batch: rows, then columns, each two gathers and a lerp (the dense form:
    ``ops.apply_matrices`` with ``ops.clipped_zoom_matrix``)."""
    H, W = x.shape[-2:]
    y = lerp_axis(x, zoom_taps(H, float(zoom)), -2)
    return lerp_axis(y, zoom_taps(W, float(zoom)), -1)


@lru_cache(maxsize=16)
def base_grid(H: int, W: int, align_corners: bool, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``F.affine_grid`` of the identity for one H×W image, as (H, W, 2) (x, y); cached, read-only."""
    import torch.nn.functional as F

    eye = torch.eye(2, 3, dtype=dtype, device=device)[None]
    return F.affine_grid(eye, [1, 1, H, W], align_corners=align_corners)[0]


# --------------------------------------------------------------------------- defocus disk by runs
@lru_cache(maxsize=64)
def disk_runs(radius: float, alias_blur: float) -> tuple[tuple[tuple[int, int], ...], np.ndarray, float] | None:
    """The defocus kernel ``ops.disk_kernel(radius, alias_blur)`` as (row offset, half-width) runs of
    the binary disk, the anti-aliasing Gaussian's taps and 1 / the disk's area — or ``None`` when the
    kernel is not that separable composition. That is the case when the disk does not reach the edge
    of its grid (radius < 8 with the source's 17×17 grid): then ``cv2.GaussianBlur``'s border handling
    never applies and kernel = Gaussian ⊛ disk exactly (checked here against the kernel, to 10⁻¹²);
    the source's radii 8 and 10 touch the edge, and the caller keeps the exact 2-D path for them."""
    from scipy.signal import convolve2d

    from . import ops

    r = float(radius)
    L, d, g = ops.disk_parts(r, float(alias_blur))
    area = d.sum()

    full = convolve2d(d / area, np.outer(g, g))  # the disk blurred without any border
    kernel = ops.disk_kernel(r, float(alias_blur)).astype(np.float64)
    h, c = kernel.shape[0] // 2, full.shape[0] // 2
    if c < h:
        return None
    embedded = np.zeros_like(full)
    embedded[c - h : c + h + 1, c - h : c + h + 1] = kernel
    if np.abs(embedded - full).max() > 1e-7 * full.max():  # float32 kernel vs the float64 composition
        return None
    rows = tuple((int(s), int(np.count_nonzero(d[i]) // 2)) for i, s in enumerate(L) if d[i].any())
    g = g[g > 1e-9 * g.max()]  # taps below float32 resolution change nothing
    return rows, g, 1.0 / area


def disk_filter(x: torch.Tensor, radius: float, alias_blur: float) -> torch.Tensor | None:
    """``cv2.filter2D(x, -1, disk_kernel(radius, alias_blur))`` (border REFLECT_101) of an N×C×H×W
    float batch, by runs: one prefix sum along each row of the padded image, one difference of two
    prefix-sum views per distinct run width, one shifted add per disk row, then the Gaussian as two
    short separable passes — O(radius) passes instead of O(radius²) multiply-adds per pixel. Exact
    in integer units (uint8-valued input: every partial sum is an integer below 2²⁴). ``None``
    where :func:`disk_runs` declines the kernel."""
    import torch.nn.functional as F

    plan = disk_runs(float(radius), float(alias_blur))
    if plan is None:
        return None
    rows, g, inv_area = plan
    r = max(s for s, _ in rows)
    gr = len(g) // 2
    R = r + gr
    N, C, H, W = x.shape
    if R >= min(H, W):
        return None

    def one(p: torch.Tensor) -> torch.Tensor:
        xp = F.pad(p, (R, R, R, R), mode="reflect")  # torch's reflect = REFLECT_101
        Hp, Wp = xp.shape[-2:]
        P = xp.new_zeros((*xp.shape[:-1], Wp + 1))
        torch.cumsum(xp, -1, out=P[..., 1:])
        Wo, Ho = W + 2 * gr, H + 2 * gr  # the disk's output, with the Gaussian's margin
        boxes: dict[int, torch.Tensor] = {}
        for _, w in rows:
            if w not in boxes:
                boxes[w] = torch.sub(P[..., r + w + 1 : r + w + 1 + Wo], P[..., r - w : r - w + Wo])
        y = None
        for s, w in rows:
            part = boxes[w][..., r + s : r + s + Ho, :]
            y = part.clone() if y is None else y.add_(part)
        gv = g * inv_area
        out = torch.mul(y[..., 0:H, :], float(gv[0]))
        for a in range(1, len(g)):
            out.add_(y[..., a : a + H, :], alpha=float(gv[a]))
        if len(g) == 1:
            return out
        res = torch.mul(out[..., 0:W], float(g[0]))
        for b in range(1, len(g)):
            res.add_(out[..., b : b + W], alpha=float(g[b]))
        return res

    return per_plane(x, one)


def disk_uint8(x: torch.Tensor, radius: float, alias_blur: float) -> torch.Tensor | None:
    """:func:`disk_filter` of a uint8 CPU batch in uint8 units, + 10⁻⁴, clipped and truncated to uint8 — in one
    numba loop per plane (``kernels.disk_uint8``: the same integer sums, the Gaussian's float32 operations in
    torch's order; the caller checks once per process that the loop gives the torch path's bytes here). ``None``
    where :func:`disk_filter` would decline (the kernel, or padding wider than the image)."""
    plan = disk_runs(float(radius), float(alias_blur))
    if plan is None:
        return None
    rows, g, inv_area = plan
    if max(s for s, _ in rows) + len(g) // 2 >= min(x.shape[-2:]):
        return None
    return torch.from_numpy(kernels.disk_uint8(x.numpy(), rows, g, inv_area))


# --------------------------------------------------------------------------- FFT convolution
# --------------------------------------------------------------------------- PIL BOX resampling
@lru_cache(maxsize=128)
def _box_windows(n_in: int, n_out: int) -> tuple[tuple[int, ...], np.ndarray]:
    """A BOX pass's windows: the distinct window lengths and, for output pixel j, the index of its
    window's sum in the stack of running sums of those lengths (``slot · n_in + first``; BOX windows
    are contiguous runs)."""
    from .ops import _pil_box_pass

    ones = _pil_box_pass(n_in, n_out)[0] > 0
    n = ones.sum(1)
    sizes = np.unique(n)
    return tuple(int(s) for s in sizes), np.searchsorted(sizes, n) * n_in + ones.argmax(1)


@lru_cache(maxsize=128)
def _pair_windows(n_in: int, n_out: int) -> np.ndarray | None:
    """For a BOX pass whose windows all have 1 or 2 samples and whose pairs round halves up (Pillow's weight
    2²¹ each: ``(S·2²¹ + 2²¹) >> 22 = ⌈S/2⌉``): for output pixel j, the index of its value in the stack of the
    samples and the rounded-up means of neighbours (``first`` for a single sample, ``n_in + first`` for a
    pair), else ``None``."""
    from .ops import _pil_box_pass

    ones, _, bias, _ = _pil_box_pass(n_in, n_out)
    n = ones.sum(1).astype(np.int64)
    if n.max() > 2 or not np.all(bias[n == 2] == 0.5):
        return None
    first = (ones > 0).argmax(1)
    return np.where(n == 2, n_in + first, first)


def _pair_means(x: torch.Tensor, dim: int) -> torch.Tensor:
    """A uint8 batch and ⌈(a + b)/2⌉ of its neighbours a = x[i], b = x[i + 1] along ``dim``, stacked along it
    (length 2n; the last entry is never read) — uint8 operations on whole rows, no widening."""
    n = x.shape[dim]
    out = torch.empty((*x.shape[:dim], 2 * n, *x.shape[dim:][1:]), dtype=torch.uint8, device=x.device)
    out.narrow(dim, 0, n).copy_(x)
    a, b = x.narrow(dim, 0, n - 1), x.narrow(dim, 1, n - 1)
    half = torch.bitwise_xor(a, b).bitwise_right_shift_(1)
    means = out.narrow(dim, n, n - 1)
    torch.bitwise_or(a, b, out=means).sub_(half)  # ⌈(a + b) / 2⌉ = (a | b) − ((a ^ b) >> 1), no overflow
    return out


def _running_sums(x: torch.Tensor, sizes: tuple[int, ...], dim: int) -> torch.Tensor:
    """Integer sums of ``sizes[i]`` consecutive samples from every position along ``dim`` (−1 or −2) of a
    uint8 batch, stacked along that dimension (length ``len(sizes) · n``; the tail of each stack entry,
    where a window would leave the axis, is never read). Each length is the previous one plus shifted
    adds of whole rows (or row slices): no gathers."""
    n = x.shape[dim]
    dtype = torch.int16 if max(sizes) <= 128 else torch.int32  # 255 · length must fit
    x16 = x.to(dtype)
    out = torch.empty((*x.shape[:dim], len(sizes), *x.shape[dim:]), dtype=dtype, device=x.device)
    d = dim - 1  # the stack's entries are along dim − 1 of ``out``; their samples along ``dim``
    acc, k = None, 0
    for i, s in enumerate(sizes):
        slot = out.select(d, i)
        if acc is None:
            slot.copy_(x16) if s == 1 else torch.add(
                x16.narrow(dim, 0, n - 1), x16.narrow(dim, 1, n - 1), out=slot.narrow(dim, 0, n - 1)
            )
            k = 2 if s > 1 else 1
        else:
            slot.narrow(dim, 0, n - k).copy_(acc.narrow(dim, 0, n - k))
        while k < s:
            slot.narrow(dim, 0, n - k).add_(x16.narrow(dim, k, n - k))
            k += 1
        acc = slot
    return out.flatten(d, dim)


@lru_cache(maxsize=128)
def _uniform_factor(n_in: int, n_out: int) -> int:
    """k when a BOX pass averages every k consecutive samples into one (n_in = k·n_out) or repeats every
    sample k times (n_out = k·n_in), else 0."""
    from .ops import _pil_box_pass

    ones = _pil_box_pass(n_in, n_out)[0] > 0
    big, small = max(n_in, n_out), min(n_in, n_out)
    if big % small:
        return 0
    k = big // small
    blocks = np.arange(big)[None, :] // k == np.arange(small)[:, None]  # (small, big)
    return k if np.array_equal(ones, blocks if n_in > n_out else blocks.T) else 0


_WORDS = {2: ("<u2", 0x0101), 4: ("<u4", 0x01010101)}  # uniform factors done on machine words


def _words_down(x: np.ndarray, k: int) -> np.ndarray:
    """A uniform BOX downscale by k ∈ {2, 4} along the last axis of a uint8 array (its length a multiple of
    4), Pillow's rounding exactly — the weights are powers of two there: ``(S·2²¹ + 2²¹) >> 22 = (S + 1) >> 1``
    for pairs, ``(S + 2) >> 2`` for quads. Each 4 samples are read as one little-endian 32-bit word whose
    even and odd bytes are added as two 16-bit lanes (the pairs' sums, ≤ 510, no carry between lanes):
    a few whole-array word operations instead of running sums and a gather."""
    w = x.view("<u4")
    t = w >> 8
    t &= 0x00FF00FF
    t += w & 0x00FF00FF  # lanes: x0 + x1 (bits 0–15), x2 + x3 (bits 16–31)
    if k == 2:
        t += 0x00010001
        t >>= 1  # (S + 1) >> 1 per lane; a lane's low byte is its result (higher bits are dropped below)
        return t.view("<u2").astype(np.uint8)
    s = t >> 16
    t &= 0xFFFF
    s += t
    s += 2
    s >>= 2
    return s.astype(np.uint8)


def _words_up(v: np.ndarray, k: int) -> np.ndarray:
    """A uniform BOX upscale by k ∈ {2, 4} along the last axis of a uint8 array (every sample repeated k
    times): each sample times 0x0101 (0x01010101) is a 16-bit (32-bit) word of k copies of its byte."""
    dtype, ones = _WORDS[k]
    return (v.astype(dtype) * ones).view(np.uint8)


def _words_ready(x: torch.Tensor) -> bool:
    return x.dtype == torch.uint8 and x.device.type == "cpu" and not x.requires_grad and x.is_contiguous()


def _down_by_sums(x: torch.Tensor, n_out: int, dim: int) -> torch.Tensor:
    """A BOX downscale pass along ``dim`` by running sums of its window lengths and one gather of the sums,
    rounded as ``ops.pil_box_resize`` (``floor(S/n + ½ ± tie nudge)``, S the integer sum). On the CPU a few
    images at a time: the int16 sums of a whole batch (≈ 10 MB at 224 px) are new memory each call — page
    faults — while a chunk's are reused from the heap and stay in the cache (with the rounding as one
    ``addcmul``: the column pass ≈ 1.3–1.5× faster at 224 px, measured)."""
    from .ops import _pil_box_pass, as_uint8

    n_in = x.shape[dim]
    _, recip, bias, _ = _pil_box_pass(n_in, n_out)
    sizes, index = _box_windows(n_in, n_out)
    shape = (-1,) if dim == -1 else (-1, 1)
    r = torch.as_tensor(recip, dtype=torch.float32, device=x.device).view(shape)
    b = torch.as_tensor(bias, dtype=torch.float32, device=x.device).view(shape)

    def one(part: torch.Tensor) -> torch.Tensor:
        s = take(_running_sums(part, sizes, dim), index, dim)
        return as_uint8(torch.addcmul(b, s.to(torch.float32), r))  # the uint8 cast truncates = floor (≥ 0)

    # ≈ 1.2 MB of int16 sums per chunk (2 images at 224 px)
    step = max(1, 4 * CHUNK_VALUES // (x[0].numel() * len(sizes))) if x.device.type == "cpu" and dim == -1 else len(x)
    if step >= len(x):
        return one(x)
    out = torch.empty((*x.shape[:dim], n_out, *x.shape[dim:][1:]), dtype=torch.uint8)
    for i in range(0, len(x), step):
        out[i : i + step] = one(x[i : i + step])
    return out


def box_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``ops.pil_box_resize`` (Pillow's 8-bit BOX resize, bit-exact) for large uint8 batches, pass by pass
    (columns, then rows, as Pillow), each by the cheapest exact form: a uniform factor of 2 or 4 along the
    rows of a contiguous CPU batch on machine words (:func:`_words_down`, :func:`_words_up`); any other
    upscale (one tap per output pixel) a gather; windows of 1 or 2 samples rounding halves up one gather of
    the samples and their neighbours' means (:func:`_pair_means`); any other downscale running sums and a
    gather (:func:`_down_by_sums`) — instead of a dense matmul per pass (O(n) per output value)."""
    from .ops import _pil_box_pass

    H, W = x.shape[-2:]
    for dim, n_in, n_out in ((-1, W, size[1]), (-2, H, size[0])):
        if n_out == n_in:
            continue
        k = _uniform_factor(n_in, n_out) if dim == -1 and _words_ready(x) else 0
        if k in _WORDS and (n_out > n_in or n_in % 4 == 0):
            x = torch.from_numpy((_words_up if n_out > n_in else _words_down)(x.numpy(), k))
            continue
        copy = _pil_box_pass(n_in, n_out)[3]
        if copy is not None:  # one tap per output pixel (any BOX upscale): a copy
            x = take(x, copy, dim)
            continue
        pairs = _pair_windows(n_in, n_out)
        if pairs is not None and x.dtype == torch.uint8:  # windows of 1 or 2: one gather of samples and means
            x = take(_pair_means(x, dim), pairs, dim)
            continue
        x = _down_by_sums(x, n_out, dim)
    return x


# --------------------------------------------------------------------------- noise in uint8 units
def _chunk_words(x: torch.Tensor, rng, per_word: int):
    """The set-up of a loop over chunks of images (``ops.chunk_rows``) that draws ``1 / per_word`` 64-bit words
    per value: (N, the images as N × m uint8 rows, m, images per chunk, ``rng.image_words``' fill, a word
    buffer for one chunk, the uint8 result rows)."""
    from .ops import chunk_rows

    N = x.shape[0]
    xn = x.numpy().reshape(N, -1)
    m = xn.shape[1]
    step, nw = chunk_rows(m), (m + per_word - 1) // per_word
    fill = rng.image_words(nw)
    return N, xn, m, step, fill, np.empty(min(step, N) * nw, dtype=np.uint64), np.empty(xn.shape, dtype=np.uint8)


def _by_chunks(
    x: torch.Tensor, rng, table: np.ndarray, finish: Callable[[np.ndarray, np.ndarray], None]
) -> torch.Tensor:
    """uint8 ``finish(table[j], x)`` a few images at a time on the CPU (``ops.chunk_rows``), j the images'
    next normal-table indices (``rng.normal_index``'s, four per word): a chunk's words, lookups and
    arithmetic stay in the cache (measured 1.4× faster than whole-batch passes at 224 px). The lookup is
    ``np.take``'s ``mode="wrap"``: the same values (16-bit indices into the 2¹⁶-entry table never wrap) without
    the default mode's bounds checks (the take ≈ 15–20 % faster, measured at 224 px)."""
    assert len(table) == 1 << 16
    N, xn, m, step, fill, words, out = _chunk_words(x, rng, 4)
    t = np.empty((min(step, N), m), dtype=table.dtype)
    for s in range(0, N, step):
        rows = slice(s, min(N, s + step))
        tt = t[: rows.stop - s]
        np.take(table, fill(rows, words).view(np.uint16)[:, :m], out=tt, mode="wrap")  # no bounds checks
        finish(tt, xn[rows])
        out[rows] = tt  # the cast truncates (values already clipped to 0..255)
    return torch.from_numpy(out).view(x.shape)


def _device_values(table: np.ndarray, idx: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(table, device=x.device)[torch.from_numpy(idx.astype(np.int64)).to(x.device)].view(x.shape)


def offset_uint8(x: torch.Tensor, offsets: np.ndarray, rng) -> torch.Tensor:
    """``clip(x + offsets[j], 0, 255)`` as uint8 (x: uint8 N×C×H×W; offsets: int16 table; j: the next
    ``rng.normal_index`` of every value)."""
    if x.device.type != "cpu":
        return _device_values(offsets, rng.normal_index(x[0].numel()), x).add_(x).clamp_(0, 255).to(torch.uint8)
    if kernels.fuses(x[0].numel(), x.device):  # one numba loop per image, the same bytes
        return torch.from_numpy(kernels.offset_uint8(x.numpy(), rng, offsets))

    def finish(t: np.ndarray, xi: np.ndarray) -> None:
        np.add(t, xi, out=t)
        np.clip(t, 0, 255, out=t)

    return _by_chunks(x, rng, offsets, finish)


def scale_uint8(x: torch.Tensor, factors: np.ndarray, rng) -> torch.Tensor:
    """``⌊clip(x·factors[j] + 10⁻⁴, 0, 255)⌋`` as uint8 (x: uint8 N×C×H×W; factors: float32 table; j as
    in :func:`offset_uint8`)."""
    if x.device.type != "cpu":
        return (
            _device_values(factors, rng.normal_index(x[0].numel()), x).mul_(x).add_(1e-4).clamp_(0, 255).to(torch.uint8)
        )
    if kernels.fuses(x[0].numel(), x.device):  # one numba loop per image, the same bytes
        return torch.from_numpy(kernels.scale_uint8(x.numpy(), rng, factors))

    def finish(t: np.ndarray, xi: np.ndarray) -> None:
        np.multiply(t, xi, out=t)
        t += np.float32(1e-4)
        np.clip(t, 0, 255, out=t)

    return _by_chunks(x, rng, factors, finish)


def impulse_uint8(x: torch.Tensor, rng, flip: np.uint32, half: np.uint32) -> torch.Tensor:
    """Impulse noise of a uint8 CPU batch a few images at a time (``ops.chunk_rows``; the words of
    ``rng.uniform_u32`` of one chunk at a time, kept in the cache): ``(x & keep) | salt`` with byte masks
    255·[u ≥ flip], 255·[u < half]. With numba (``kernels``): one fused loop per image, the same bytes."""
    if kernels.fuses(x[0].numel(), x.device):
        return torch.from_numpy(kernels.impulse_uint8(x.numpy(), rng, flip, half))
    N, xn, m, step, fill, words, out = _chunk_words(x, rng, 2)
    keep, salt = np.empty((min(step, N), m), dtype=bool), np.empty((min(step, N), m), dtype=bool)
    for s in range(0, N, step):
        rows = slice(s, min(N, s + step))
        k, sa = keep[: rows.stop - s], salt[: rows.stop - s]
        u = fill(rows, words).view(np.uint32)[:, :m]
        k8, s8 = np.greater_equal(u, flip, out=k).view(np.uint8), np.less(u, half, out=sa).view(np.uint8)
        np.negative(k8, out=k8)  # 1 -> 255 (uint8 wrap-around)
        np.negative(s8, out=s8)
        np.bitwise_and(xn[rows], k8, out=out[rows])
        np.bitwise_or(out[rows], s8, out=out[rows])
    return torch.from_numpy(out).view(x.shape)
