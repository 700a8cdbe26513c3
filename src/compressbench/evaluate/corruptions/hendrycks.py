"""The 15 CIFAR-10-C corruptions and the 4 extra ones of Hendrycks & Dietterich (ICLR 2019),
as batched torch operations on float [0, 1] N×C×H×W images (any device); those registered with
``uint8=True`` (shot noise, pixelate, JPEG) also take the caller's uint8 batch as is. One module
(~460 lines) because it mirrors one source file function by function, 19 short functions.

Each function mirrors the corresponding function of ``make_cifar_c.py`` / ``make_imagenet_c.py``
(named in its docstring). Where the source used a library call, the call's exact semantics
(boundary mode, kernel size, rounding) are reproduced; deviations are listed here:

* Random draws come from a per-image counter-based stream (SplitMix64 keyed by dataset index,
  corruption, severity and seed; see ``ops.BatchRNG``): same distributions as the source's numpy
  draws (normals by inversion of 16-bit uniforms, ``ops.normal_table``), different numbers.
* ``motion_blur``/``snow``: ImageMagick's ``MotionBlurImage`` is reimplemented (``ops.motion_blur``),
  so no ImageMagick/Wand is needed.
* ``jpeg_compression``: PIL's libjpeg-turbo round trip is emulated bit for bit in torch (``jpeg.py``).
  On CPU above 112×112 px libjpeg-turbo itself runs instead: Pillow's encoder (the reference's call) and
  the ``simplejpeg`` package's decoder — a thin TurboJPEG wrapper that decodes into a caller's buffer,
  ≈ 1.5× faster here than torchvision's decoder with its de-interleave (the fallback), which matters at
  ImageNet size; both are checked once per process to give the emulation's (= Pillow's) bytes.
* ``frost``: the six frost photographs are replaced by procedural textures (``textures.py``).
* ``glass_blur``: the source's pixel "swap" on numpy views copies one pixel over the other,
  sequentially; we reproduce that exactly (pointer jumping over the copy chain).
* ``elastic_transform``: cv2.warpAffine samples at 1/32-pixel resolution; we sample exactly.
* ``spatter`` (water branch, severities 1–3): OpenCV's Canny edges / L2 distance transform are
  approximated (Sobel magnitude with the 50/150 hysteresis thresholds, chamfer distance).
* Grayscale (1-channel) images: colour-dependent corruptions (saturate, spatter, frost) run on the
  gray image replicated to RGB and return its BT.601 luminance; the rest act per channel as is.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ...catalog.corruptions import CIFAR_C, EXTRA  # noqa: F401 (torch-free: compressbench.catalog)
from ...registry import corruptions
from . import kernels, large, ops
from .jpeg import jpeg_roundtrip
from .params import CIFAR, IMAGENET, REF_SIZE, zoom_factors
from .textures import frost_textures

Fn = Callable[[torch.Tensor, ops.BatchRNG, Any, str], torch.Tensor]


log = logging.getLogger(__name__)


def _register(name: str, deterministic: bool, uint8: bool = False, caveat: str = ""):
    """Register a corruption's code-side fields; its description, version and suites are declared in
    :mod:`compressbench.catalog.corruptions`. ``uint8=True``: the function also accepts the caller's uint8
    batch as is (it works in uint8 units) and may return uint8; the others always get float [0, 1] images."""
    return corruptions.register(
        name,
        deterministic=deterministic,
        uint8=uint8,
        caveat=caveat,
        constants={"cifar": CIFAR[name], "imagenet": IMAGENET[name]},
    )


def _as_unit(x: torch.Tensor) -> torch.Tensor:
    """The float [0, 1] images ``corrupt()`` gives a corruption registered without ``uint8`` (for the uint8
    corruptions' float paths: a uint8 batch that does not take their uint8-unit path)."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x


def _u8_cpu_large(x: torch.Tensor) -> bool:
    """Whether a batch takes the uint8-unit, image-by-image paths (:func:`_blend_uint8`): uint8 images of
    ImageNet size on the CPU (elsewhere the whole-batch float path is as fast or the only one)."""
    return x.dtype == torch.uint8 and large.is_large(x) and x.device.type == "cpu"


def _blend_uint8(
    x: torch.Tensor, fn: Callable[[torch.Tensor, int], torch.Tensor], offset: float | None = 1e-4
) -> torch.Tensor:
    """``fn(image in uint8 units, i)`` (a float 1×C×H×W blend of image i) for every image of a uint8 CPU batch,
    cast into the uint8 result as ``corrupt()`` casts (+10⁻⁴, clip, truncate; ``offset=None``: ``fn`` added its
    own): at 224 px, whole-batch float blends (fresh 9.6 MB tensors: page faults) and ``corrupt()``'s ×255 and
    cast cost more than they compute (frost 3.6×, contrast 2.3×, measured)."""
    out = torch.empty_like(x)
    for i in range(len(x)):
        y = fn(x[i : i + 1].float(), i)
        y = (y if offset is None else y.add_(offset)).clamp_(0, 255)
        np.copyto(out[i].numpy(), y[0].numpy(), casting="unsafe")  # truncation
    return out


@functools.cache
def colour_maps_exact() -> bool:
    """Whether the colour-map loops (``kernels.brightness_rgb`` / ``saturate_rgb`` / ``frost_rgb``) run: numba
    usable and, checked once per process, the loops give the torch paths' bytes here — they reproduce torch's CPU
    kernels operation by operation, including the fused multiply-adds of ``addcmul`` (one rounding on CPUs with
    FMA; a CPU or torch build without them rounds twice, and then the torch paths run). Checked on random images
    (every byte value, gray pixels, an odd size that leaves torch's vector loops a scalar tail) at the reference
    constants and beyond."""
    if not kernels.available():
        return False
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (2, 3, 67, 75), generator=g, dtype=torch.uint8)
    x[0, :, :9] = x[0, :1, :9]  # gray pixels
    x[1, :, :, :4] = 255
    checks = [
        (
            kernels.brightness_rgb,
            lambda x, c: _brightness(x, None, c, ""),
            (*CIFAR["brightness"], *IMAGENET["brightness"], -0.4, 0.9),
        ),
        (kernels.saturate_rgb, _saturate_uint8, (*CIFAR["saturate"], *IMAGENET["saturate"], (3.3, 0.7))),
    ]
    tex = torch.randint(0, 256, (2, 3, 90, 100), generator=g, dtype=torch.uint8)
    where = torch.tensor([[1, 3, 20], [0, 23, 25]])
    checks.append(
        (
            lambda x, c: kernels.frost_rgb(x, tex.numpy(), where.numpy(), c),
            lambda x, c: _frost_uint8(x, tex, where, c),
            (*CIFAR["frost"], *IMAGENET["frost"], (0.3, 1.9)),
        )
    )
    for fused, reference, constants in checks:
        for c in constants:
            if not np.array_equal(fused(x.numpy(), c), reference(x, c).numpy()):
                log.info("colour-map kernels: a loop differs from torch here (c = %s); the torch paths run", c)
                return False
    return True


def _via_rgb(fn: Fn) -> Fn:
    """Run a colour corruption on gray images by replicating to RGB and taking luminance."""

    def wrapped(x: torch.Tensor, rng: ops.BatchRNG, c: Any, pset: str) -> torch.Tensor:
        if x.shape[1] == 1:
            return ops.gray(fn(x.expand(-1, 3, -1, -1).contiguous(), rng, c, pset))
        return fn(x, rng, c, pset)

    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


def _by_images(random: bool) -> Callable[[Fn], Fn]:
    """Large CPU batches image by image (``large.by_images``: no whole-batch float intermediates, whose
    first-touch page faults cost as much as the work at 224 px); ``random``: with each image's part of the
    RNG. The same values as one call. Used where it measured faster at 224 px, batches of 16, one thread
    (brightness 1.4×, saturate 1.1×, glass blur 1.4×), not where the whole batch is as fast or faster (the
    noises, contrast, defocus blur, pixelate; per-op overhead outweighs). Large uint8 CPU batches of motion
    blur, snow, spatter, frost, elastic transform and saturate go from uint8 to uint8 image by image instead
    (``_blend_uint8``, ``ops.motion_blur``)."""

    def deco(fn: Fn) -> Fn:
        @functools.wraps(fn)
        def wrapped(x: torch.Tensor, rng: ops.BatchRNG, c: Any, pset: str) -> torch.Tensor:
            if len(x) > 1 and x.device.type == "cpu" and large.is_large(x):
                if random:
                    return large.by_images(x, lambda xi, r: fn(xi, r, c, pset), rng)
                return large.by_images(x, lambda xi: fn(xi, rng, c, pset))
            return fn(x, rng, c, pset)

        return wrapped

    return deco


# --------------------------------------------------------------------------- noise
# version 3 of the normal-based ones: normals by inversion of 16-bit uniforms (ops.normal_table)
# version 4: large uint8 images in integers (below)
@_register("gaussian_noise", False, uint8=True)
def gaussian_noise(x, rng, c, pset):
    """``x + N(0, c²)`` per pixel and channel. Large uint8 images: since x is an integer,
    ``⌊x + 255·z + ε⌋ = x + ⌊255·z + ε⌋``, so the normal's table is tabulated as integer offsets and
    the image is one int16 addition and a clip (the float path's bytes up to float32 rounding)."""
    if x.dtype == torch.uint8:
        if large.is_large(x):
            z = ops.normal_table() * np.float32(c)  # the float path's z, float32
            offsets = np.floor(z.astype(np.float64) * 255 + 1e-4).astype(np.int16)
            return large.offset_uint8(x, offsets, rng)
        x = _as_unit(x)
    return rng.normal(x.shape[1:], std=float(c)).to(x.dtype).add_(x)


# version 3: 32-bit uniforms for the inversion (was 24-bit; same table, different draws)
@_register("shot_noise", False, uint8=True)
def shot_noise(x, rng, c, pset):
    """``Poisson(x·c) / c``. For uint8-valued images (every dataset image) the Poisson draw is an
    exact inverse-CDF lookup over the 256 possible rates (``ops.poisson_uint8``)."""
    if x.dtype == torch.uint8:
        v = x
    else:
        x255 = x * 255
        v = torch.round(x255)
        if float(x255.sub_(v).abs_().max()) >= 1e-3:
            return rng.poisson(x * c).to(x.dtype) / c
    # uint8 in: uint8 out straight from the lookup (k -> truncated 255·k/c), else float32 k / c
    return ops.poisson_uint8(rng, v, float(c), uint8=x.dtype == torch.uint8)


# version 3: 32-bit uniforms compared with integer thresholds
@_register("impulse_noise", False, uint8=True)
def impulse_noise(x, rng, c, pset):
    """Each value (per channel, as skimage) is replaced with prob. ``c``: half 1 (salt), half 0.
    One 32-bit uniform u per value: u < c·2³² flips, and u < c/2·2³² (half of the flips) is salt.
    uint8 in: uint8 out, ``(x & keep) | salt`` with 0/255 byte masks (the float path's bytes)."""
    flip, half = np.uint32(min(round(c * 2**32), 2**32 - 1)), np.uint32(round(c / 2 * 2**32))
    if x.dtype == torch.uint8 and x.device.type == "cpu" and large.is_large(x):
        return large.impulse_uint8(x, rng, flip, half)
    u = rng.uniform_u32(x[0].numel())
    keep = (u >= flip).view(np.uint8)
    salt = (u < half).view(np.uint8)
    if x.dtype == torch.uint8:
        np.negative(keep, out=keep)  # 1 -> 255 (uint8 wrap-around)
        np.negative(salt, out=salt)
        if x.device.type == "cpu":
            out = np.bitwise_and(x.numpy().reshape(keep.shape), keep)
            return torch.from_numpy(np.bitwise_or(out, salt, out=out)).view(x.shape)
        k, s = (torch.from_numpy(m).to(x.device).view(x.shape) for m in (keep, salt))
        return x.bitwise_and(k).bitwise_or_(s)
    # branch-free x·keep + salt (a select on a random mask is ≈ 5× slower on CPU)
    keep_t, salt_t = (torch.from_numpy(m).to(x.device, x.dtype).view(x.shape) for m in (keep, salt))
    return torch.addcmul(salt_t, x, keep_t)


# version 4: large uint8 images in uint8 units (below)
@_register("speckle_noise", False, uint8=True)
def speckle_noise(x, rng, c, pset):
    """``x · (1 + N(0, c²))``. Large uint8 images: in uint8 units, ``⌊x·m + ε⌋`` with the factor m
    looked up from the normal's table (no conversion to [0, 1] and back)."""
    if x.dtype == torch.uint8:
        if large.is_large(x):
            m = ops.normal_table() * np.float32(c) + np.float32(1.0)  # the float path's factors
            return large.scale_uint8(x, m, rng)
        x = _as_unit(x)
    return rng.normal(x.shape[1:], mean=1.0, std=float(c)).to(x.dtype).mul_(x)


# --------------------------------------------------------------------------- blur
# size-dependent filter paths (sliced 1-D passes / FFT on large images; unchanged at ≤ 32 px): gaussian_blur 2,
# defocus_blur 3, glass_blur 3, random_fog 3 (spatter and elastic_transform were bumped in the same round);
# version 3 (glass_blur 4, spatter 5, random_fog 4): on planes from 96×96 px, 1-D passes of ≤ 25 taps as slices
# and odd kernels of 27–33 taps as one FFT product instead of matmuls (float32 rounding differs)
@_register("gaussian_blur", True)
def gaussian_blur(x, rng, c, pset):
    return ops.gaussian_blur(x, float(c))


# version 2: stacked rank-1 terms in two matmuls (float32 rounding differs, |Δ| ≈ 10⁻⁴/255);
# version 4: large images by runs of the disk in uint8 units (large.disk_filter; exact sums); version 5: the FFT
# path (radii 8 and 10 on large images) at power-of-two lengths where they are barely longer (planes._fft_len).
# Large uint8 CPU batches by runs: one numba loop per plane (large.disk_uint8: the same integer sums, the Gaussian's
# float32 operations in torch's order, checked once per process by defocus_exact) — the same bytes, no new version;
# else, and for radii 8 and 10 (the FFT path, whose float32 rounding no direct sum reproduces), the torch paths.
@_register("defocus_blur", True, uint8=True)
def defocus_blur(x, rng, c, pset):
    """``cv2.filter2D(x, -1, disk(radius, alias_blur))`` per channel (BORDER_REFLECT_101). Large
    images: ``large.disk_filter`` where the kernel is a blurred disk without border effects (every
    radius below 8), in uint8 units — for uint8 CPU batches in one numba loop per plane where
    :func:`defocus_exact`."""
    if large.is_large(x) and x.dtype == torch.uint8:  # in uint8 units, uint8 out (no round trip to [0, 1])
        runs = large.disk_runs(float(c[0]), float(c[1])) is not None  # (radii 8, 10: no numba import)
        if runs and x.device.type == "cpu" and defocus_exact():
            y = large.disk_uint8(x, float(c[0]), float(c[1]))  # one numba loop per plane, the same bytes
            if y is not None:
                return y
        return _defocus_uint8(x, c)
    if large.is_large(x):
        y = large.disk_filter(x * 255, float(c[0]), float(c[1]))
        if y is not None:
            return y.div_(255)
    x = _as_unit(x)
    return ops.filter2d(x, ops.disk_kernel(float(c[0]), float(c[1])), mode="mirror")


def _defocus_uint8(x: torch.Tensor, c: Any) -> torch.Tensor:
    """``defocus_blur`` of a large uint8 batch in uint8 units, in torch: ``large.disk_filter`` where it accepts the
    kernel, else the FFT path; + 10⁻⁴, clip, truncate."""

    def planes(p: torch.Tensor) -> torch.Tensor:  # a cache-sized chunk of uint8 planes: no float batch
        units = p.float()
        y = large.disk_filter(units, float(c[0]), float(c[1]))
        if y is None:
            y = ops.filter2d(units, ops.disk_kernel(float(c[0]), float(c[1])), mode="mirror")
        return ops.as_uint8(y.add_(1e-4).clamp_(0, 255))

    return large.per_plane(x, planes)


@functools.cache
def defocus_exact() -> bool:
    """Whether ``defocus_blur``'s runs path on large uint8 CPU batches is the numba loop (``large.disk_uint8``):
    numba usable and, checked once per process, the loop gives :func:`_defocus_uint8`'s bytes here — its integer
    sums are exact, and its Gaussian passes are torch's float32 operations in torch's order, with fused multiply-adds
    where ``add_(alpha=)`` uses them (a CPU or torch build without them: the torch path runs). Checked on random
    images (an odd size that leaves torch's vector loops a scalar tail, and per radius the smallest image its
    padding allows) at both constant sets' radii the runs accept and beyond."""
    if not kernels.available():
        return False
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (2, 3, 67, 75), generator=g, dtype=torch.uint8)
    x[0, :, :9] = 255
    x[1, :, :, :7] = 0
    for c in (*CIFAR["defocus_blur"], *IMAGENET["defocus_blur"], (2, 0.3), (5, 0.3), (6.5, 0.2)):
        plan = large.disk_runs(float(c[0]), float(c[1]))
        if plan is None:  # (radii 8 and 10: the FFT path)
            continue
        n = max(s for s, _ in plan[0]) + len(plan[1]) // 2 + 1  # padding at its limit (n − 1 rows)
        edge = torch.randint(0, 256, (1, 2, n, n + 3), generator=g, dtype=torch.uint8)
        for xi in (x, edge, edge.transpose(-1, -2).contiguous()):
            if not torch.equal(large.disk_uint8(xi, float(c[0]), float(c[1])), _defocus_uint8(xi, c)):
                log.info("defocus kernel: the loop differs from torch here (c = %s); the torch path runs", c)
                return False
    return True


def _glass_sources(rng: ops.BatchRNG, H: int, W: int, d: int, iters: int, device) -> list[torch.Tensor]:
    """For each iteration, the flat source index of every pixel after the source's sequential
    "swap" loop (``x[h, w] = x[h + dy, w + dx]`` for h, w descending, reading updated pixels)."""
    N = len(rng)
    deltas = rng.randint(-d, d, (iters, H, W, 2))  # numpy randint(-d, d): [-d, d-1]
    hh = torch.arange(H).view(H, 1).expand(H, W)
    ww = torch.arange(W).view(1, W).expand(H, W)
    proc = (hh >= d + 1) & (hh <= H - d) & (ww >= d + 1) & (ww <= W - d)  # range(size - d, d, -1)
    proc = proc & (hh < H) & (ww < W)
    order = (hh * W + ww).view(-1)  # processed in decreasing order
    out = []
    for it in range(iters):
        dy = deltas[:, it, ..., 1].cpu()  # (dx, dy) = randint(...) in the source; order irrelevant here
        dx = deltas[:, it, ..., 0].cpu()
        qh, qw = (hh + dy).clamp(0, H - 1), (ww + dx).clamp(0, W - 1)
        q = (qh * W + qw).view(N, -1)
        p = order.view(1, -1).expand(N, -1)
        procf = proc.view(1, -1).expand(N, -1)
        # q was already overwritten when p reads it iff q is processed and comes earlier (larger index)
        q_proc = procf.gather(1, q)
        chained = procf & q_proc & (q > p)
        src = torch.where(procf, q, p)
        # resolve chains: value(p) = value(q) if chained(p) -> follow src of q until unchained
        link = torch.where(chained, q, p)
        final = torch.where(chained, torch.zeros_like(src), src)
        done = ~chained
        while not bool(done.all()):
            nxt = link.gather(1, link)
            nd = done.gather(1, link)
            fin = final.gather(1, link)
            newly = ~done & nd
            final = torch.where(newly, fin, final)
            done = done | newly
            link = torch.where(done, link, nxt)
        out.append(final.to(device))
    return out


@_register("glass_blur", False)
@_by_images(random=True)
def glass_blur(x, rng, c, pset):
    sigma, d, iters = float(c[0]), int(c[1]), int(c[2])
    N, C, H, W = x.shape
    y = torch.floor(ops.gaussian_blur(x, sigma) * 255) / 255  # np.uint8(gaussian(...) * 255): truncation
    flat = y.reshape(N, C, H * W)
    for src in _glass_sources(rng, H, W, d, iters, x.device):
        flat = flat.gather(2, src[:, None].expand(N, C, H * W))
    return ops.gaussian_blur(flat.reshape(N, C, H, W), sigma)


# version 3: large images accumulate the taps with fused multiply-adds (32 px unchanged); version 4: large uint8
# CPU images in uint8 units, rounded to uint8 image by image (float32 rounding differs)
@_register("motion_blur", False, uint8=True)
def motion_blur(x, rng, c, pset):
    """ImageMagick's motion blur (``ops.motion_blur``), written as a uint8 PNG (rounded). Large uint8 CPU
    images: blurred in uint8 units and rounded to uint8 image by image (no float batch)."""
    angle = rng.uniform((), -45, 45)
    if _u8_cpu_large(x):
        return ops.motion_blur(x, float(c[0]), float(c[1]), angle)
    x = _as_unit(x)
    y = ops.motion_blur(x, float(c[0]), float(c[1]), angle)
    return torch.round(y * 255) / 255  # ImageMagick writes a uint8 PNG


def _clipped_zoom(x: torch.Tensor, z: float) -> torch.Tensor:
    """Dense matrices on small images, gathers on large ones (``large.clipped_zoom``)."""
    if large.is_large(x):
        return large.clipped_zoom(x, z)
    H, W = x.shape[-2:]
    return ops.apply_matrices(x, ops.clipped_zoom_matrix(H, z), ops.clipped_zoom_matrix(W, z))


# version 2: large images zoom by gathers (float32 rounding differs from the matmuls; 32 px unchanged)
@_register("zoom_blur", True)
def zoom_blur(x, rng, c, pset):
    zs = zoom_factors(c)
    if large.is_large(x):

        def zoom_sum(p: torch.Tensor) -> torch.Tensor:
            acc = p.clone()
            for z in zs:
                acc.add_(large.clipped_zoom(p, float(z)))
            return acc.div_(len(zs) + 1)

        return large.per_plane(x, zoom_sum)
    out = x.clone()
    for z in zs:
        out = out + _clipped_zoom(x, float(z))
    return out / (len(zs) + 1)


# --------------------------------------------------------------------------- weather
def plasma_fractal(rng: ops.BatchRNG, mapsize: int, wibbledecay: float, device) -> torch.Tensor:
    """Diamond-square height map in [0, 1] (N×M×M), the source's ``plasma_fractal`` batched."""
    N, M = len(rng), mapsize
    steps = []
    s = M
    while s >= 2:
        steps.append(s)
        s //= 2
    counts = [(M // s) ** 2 for s in steps]
    u = rng.uniform((3 * sum(counts),), -1.0, 1.0).to(device, torch.float64)
    a = torch.zeros(N, M, M, dtype=torch.float64, device=device)
    wibble, pos = 100.0, 0

    def take(n: int, shape) -> torch.Tensor:
        nonlocal pos
        r = u[:, pos : pos + n].reshape(N, *shape)
        pos += n
        return r

    for s, n in zip(steps, counts, strict=False):
        k = M // s
        h = s // 2
        corner = a[:, 0:M:s, 0:M:s]
        sq = corner + torch.roll(corner, -1, 1)
        sq = sq + torch.roll(sq, -1, 2)
        a[:, h:M:s, h:M:s] = sq / 4 + wibble * wibble * take(n, (k, k))
        dr = a[:, h:M:s, h:M:s]
        ul = a[:, 0:M:s, 0:M:s]
        lt = dr + torch.roll(dr, 1, 1) + ul + torch.roll(ul, -1, 2)
        a[:, 0:M:s, h:M:s] = lt / 4 + wibble * wibble * take(n, (k, k))
        tt = dr + torch.roll(dr, 1, 2) + ul + torch.roll(ul, -1, 1)
        a[:, h:M:s, 0:M:s] = tt / 4 + wibble * wibble * take(n, (k, k))
        wibble /= wibbledecay
    a = a - a.amin((1, 2), keepdim=True)
    return a / a.amax((1, 2), keepdim=True)


@_register("fog", False)
def fog(x, rng, c, pset):
    N, C, H, W = x.shape
    M = ops.next_pow2(max(H, W))
    if pset == "imagenet":
        M = max(M, 256)
    plasma = plasma_fractal(rng, M, float(c[1]), x.device)[:, :H, :W].to(x.dtype)
    max_val = x.amax((1, 2, 3), keepdim=True)
    y = x + c[0] * plasma[:, None]
    return y * max_val / (max_val + c[0])


# version 3: large uint8 CPU images blended in uint8 units image by image (float32 rounding differs)
@_register(
    "frost",
    False,
    uint8=True,
    caveat="the original frost photographs are not redistributable: procedural textures replace them, so "
    "frost numbers differ from the published CIFAR-10-C files (use dataset cifar10-c for those)",
)
def frost(x, rng, c, pset):
    """``c0·x + c1·frost_crop`` with a random crop of one of the first five textures (the
    source's ``randint(5)``). Textures: ``textures.frost_textures`` (procedural, see there). Large uint8
    CPU images: in uint8 units, one image at a time (``_frost_uint8``; RGB: its numba loop, ``kernels.frost_rgb``,
    the same bytes), uint8 out."""
    N, C, H, W = x.shape
    tex = frost_textures(max(128, 2 * ops.next_pow2(max(H, W))))  # 6×3×S×S uint8, CPU (128 for 32 px)
    S = tex.shape[-1]
    r = rng.uniform((3,))  # texture, row, column
    ti = (r[:, 0] * 5).long().clamp(0, 4).cpu()
    ys = (r[:, 1] * (S - H)).long().cpu()
    xs = (r[:, 2] * (S - W)).long().cpu()
    if _u8_cpu_large(x):
        where = torch.stack([ti, ys, xs], 1)
        if C == 3 and colour_maps_exact():  # one numba loop per image, the same bytes
            return torch.from_numpy(kernels.frost_rgb(x.numpy(), tex.numpy(), where.numpy(), c))
        return _frost_uint8(x, tex, where, c)
    x = _as_unit(x)
    if large.is_large(x):  # one slice per image (the gather below costs ≈ 4 ns per value at 224 px)
        crops = torch.stack(
            [tex[t, :, y : y + H, c : c + W] for t, y, c in zip(ti.tolist(), ys.tolist(), xs.tolist(), strict=True)]
        )
    else:
        rows = (ys[:, None] + torch.arange(H))[:, None, :, None]  # one gather for the whole batch
        cols = (xs[:, None] + torch.arange(W))[:, None, None, :]
        crops = tex[ti[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols]
    crops = crops.to(x.device, x.dtype).mul_(1 / 255)
    if C == 1:
        crops = ops.gray(crops)
    return c[0] * x + c[1] * crops


def _frost_uint8(x: torch.Tensor, tex: torch.Tensor, where: torch.Tensor, c) -> torch.Tensor:
    """``frost``'s blend of a large uint8 CPU batch in uint8 units, image by image (``_blend_uint8``); ``where``:
    N×(texture, row, column) of each image's crop."""
    H, W = x.shape[-2:]
    at = where.tolist()

    def blend(xi: torch.Tensor, i: int) -> torch.Tensor:
        t, y, cx = at[i]
        crop = tex[t, :, y : y + H, cx : cx + W].float()[None]
        return xi.mul_(c[0]).add_(ops.gray(crop) if x.shape[1] == 1 else crop, alpha=c[1])

    return _blend_uint8(x, blend)


def _snow_uint8(x: torch.Tensor, layer: torch.Tensor, angle: torch.Tensor, c) -> torch.Tensor:
    """``snow``'s flake layer and blend for a large uint8 CPU batch in uint8 units: the layer as uint8 (the
    source's ``astype(np.uint8)``), motion-blurred and rounded in uint8 units (``ops.motion_blur``), the blend
    image by image into the uint8 result — at 224 px the float path's whole-batch blend passes (fresh 9.6 MB
    tensors: page faults) cost more than the flakes (measured ≈ 2×). The float path's bytes up to float32
    rounding (a value moved across an integer by an ulp)."""
    lay = ops.motion_blur(ops.as_uint8(layer.clamp_(0, 1).mul_(255)), float(c[4]), float(c[5]), angle)
    flakes = lay.float()
    flakes.add_(flakes.flip((-2, -1)))  # layer + its 180° rotation, N×1×H×W in uint8 units

    def blend(xi: torch.Tensor, i: int) -> torch.Tensor:
        y = torch.maximum(xi, ops.gray(xi).mul(1.5).add_(0.5 * 255)).mul_(1 - c[6])
        return y.add_(xi, alpha=c[6]).add_(flakes[i])

    return _blend_uint8(x, blend)


# version 4: large images zoom by gathers (see zoom_blur); version 5: large uint8 CPU images in uint8 units
# (_snow_uint8; float32 rounding differs)
@_register("snow", False, uint8=True)
def snow(x, rng, c, pset):
    N, C, H, W = x.shape
    layer = rng.normal((1, H, W), mean=float(c[0]), std=float(c[1])).to(torch.float32)
    angle = rng.uniform((), -135, -45)
    layer = _clipped_zoom(layer, float(c[2]))
    layer = F.threshold(layer, _below(c[3]), 0.0, inplace=True)  # layer[layer < c3] = 0 (branch-free, in place)
    if _u8_cpu_large(x):
        return _snow_uint8(x, layer, angle, c)
    x = _as_unit(x)
    layer = layer.to(x.dtype)
    layer = torch.floor(layer.clamp(0, 1) * 255) / 255  # (np.clip(...) * 255).astype(np.uint8)
    layer = torch.round(ops.motion_blur(layer, float(c[4]), float(c[5]), angle) * 255) / 255
    g = ops.gray(x)
    y = c[6] * x + (1 - c[6]) * torch.maximum(x, g * 1.5 + 0.5)
    return y + layer + torch.flip(layer, (-2, -1))


def _below(t: float) -> float:
    """The largest float32 below ``t``: ``F.threshold(v, _below(t), 0)`` zeroes exactly v < t."""
    return float(np.nextafter(np.float32(t), np.float32(-np.inf)))


# large images on the CPU: this many per chamfer distance (chunks of 4 made the relaxation 1.4× faster than one
# whole-batch call, measured; kept for the closed form, ``_chamfer_closed``)
CHAMFER_CHUNK = 4


def _chamfer(init: torch.Tensor) -> torch.Tensor:
    """Relaxation to the fixed point (≤ 20 steps) of the chamfer (1, √2) distance from ``init`` (0 at edges,
    20 elsewhere). An +inf frame is equivalent to edge replication here: a replicated neighbour never
    offers a shorter path than the pixel's real neighbours."""
    N, _, H, W = init.shape
    p = torch.full((N, 1, H + 2, W + 2), float("inf"), dtype=init.dtype, device=init.device)
    dist = p[..., 1:-1, 1:-1]
    dist.copy_(init)
    for it in range(20):
        vert = torch.minimum(p[..., :-2, :], p[..., 2:, :])  # up/down neighbours, all columns
        cand = torch.minimum(vert[..., :-2], vert[..., 2:]).add_(2**0.5)  # diagonal neighbours
        cross = torch.minimum(torch.minimum(p[..., 1:-1, :-2], p[..., 1:-1, 2:]), vert[..., 1:-1]).add_(1)
        torch.minimum(cand, cross, out=cand)
        if it % 4 == 3 and not bool((cand < dist).any()):  # the fixed point (checked every 4th step)
            break
        torch.minimum(dist, cand, out=dist)  # cand was computed from the previous step (Jacobi)
    return dist


_OCT_DIAG = float(np.float32(2**0.5 - 1))  # a diagonal step costs √2 = 1 + (√2 − 1)


def _chamfer_closed(edges: torch.Tensor) -> torch.Tensor:
    """``_chamfer`` (then clipped at 20) in closed form, for large images: without obstacles the chamfer (1, √2)
    distance to an edge at offset (dx, dy) is max(|dx|, |dy|) + (√2 − 1)·min(|dx|, |dy|). So: each row's 1-D
    distance b to its nearest edge (capped at 21: shifted minima at offsets 1, 2, 4, 8, 16 — every distance ≤ 31
    is a sum of distinct powers of two), then D = min over a = |dy| ≤ 19 of f(min(b[y − a], b[y + a]), a) with
    f(b, a) = max(a, b) + (√2 − 1)·min(a, b) (a ≥ 20 gives f ≥ 20: the clip). 5 passes per row offset instead of
    ≈ 8.5 per Jacobi step: 1.4–2.5× faster where edges are sparse (the water branch), measured. The values
    differ from the relaxation's sums by float32 rounding (≤ 4·10⁻⁶, measured); the caller's 3×3 box blur and
    floor never see it (a sum m + n√2 of ≤ 9 such values is never within 10⁻⁵ of a multiple of 9 for n ≠ 0,
    and n = 0 sums are exact integers in both)."""
    N, _, H, W = edges.shape
    cap, R, S = 21.0, 19, 16
    P = torch.full((N, 1, H + 2 * R, W + 2 * S), cap, device=edges.device)  # cap outside the image
    b = P[..., R : R + H, S : S + W]
    torch.mul(edges.logical_not(), cap, out=b)
    rows = P[..., R : R + H, :]
    for s in (1, 2, 4, 8, 16):
        t = torch.minimum(rows[..., S - s : S - s + W], rows[..., S + s : S + s + W]).add_(s)
        torch.minimum(b, t, out=b)
    D = b.clone()
    cols = P[..., S : S + W]
    for a in range(1, R + 1):
        bb = torch.minimum(cols[..., R - a : R - a + H, :], cols[..., R + a : R + a + H, :])
        t = bb.clamp_max(a)
        torch.minimum(D, bb.clamp_min_(a).add_(t, alpha=_OCT_DIAG), out=D)
    return D.clamp_(max=20)


def _sobel_sq(lq: torch.Tensor) -> torch.Tensor:
    """gx² + gy² of the 3×3 Sobel gradients (border REFLECT_101) of integer-valued planes, from one padded
    copy: [1 2 1]ᵀ ⊗ [−1 0 1] and its transpose as shifted slices (every value an integer below 2²⁴)."""
    p = F.pad(lq, (1, 1, 1, 1), mode="reflect")
    s = torch.add(p[..., :-2, :], p[..., 2:, :]).add_(p[..., 1:-1, :], alpha=2)  # vertical smoothing
    d = torch.sub(p[..., 2:, :], p[..., :-2, :])  # vertical difference
    gx = torch.sub(s[..., 2:], s[..., :-2])
    gy = torch.add(d[..., :-2], d[..., 2:]).add_(d[..., 1:-1], alpha=2)
    return gx.mul_(gx).addcmul_(gy, gy)


def _emboss(d: torch.Tensor) -> torch.Tensor:
    """``cv2.filter2D`` with [[−2, −1, 0], [−1, 1, 1], [0, 1, 2]] (REFLECT_101) of integer-valued planes as
    shifted slices of one padded copy: exact integer sums."""
    p = F.pad(d, (1, 1, 1, 1), mode="reflect")
    mid = p[..., 1:-1, :]
    out = torch.sub(p[..., 2:, 2:], p[..., :-2, :-2]).mul_(2)
    out.add_(mid[..., 1:-1]).add_(mid[..., 2:]).sub_(mid[..., :-2])
    return out.add_(p[..., 2:, 1:-1]).sub_(p[..., :-2, 1:-1])


def _spatter_rgb(x, rng, c, pset):
    """``spatter`` of an RGB batch: float [0, 1], or — large CPU batches — uint8, blended in uint8 units
    image by image (``_blend_uint8``) and returned as uint8 (the float path's bytes up to float32 rounding)."""
    N, C, H, W = x.shape
    u8 = x.dtype == torch.uint8
    dt = torch.float32 if u8 else x.dtype
    liquid = rng.normal((1, H, W), mean=float(c[0]), std=float(c[1])).to(dt)
    liquid = ops.gaussian_blur(liquid, float(c[2]))
    liquid = F.threshold(liquid, _below(c[3]), 0.0)  # liquid[liquid < c3] = 0 (branch-free)
    if c[5] == 0:
        big = large.is_large(x)
        lq = torch.floor(liquid * 255).clamp(0, 255)  # astype(uint8) (values ≤ 1 here)
        # Canny(50, 150) approximated by the Sobel gradient magnitude with hysteresis-like thresholds
        # (Sobel = [1 2 1]ᵀ ⊗ [−1 0 1]: separable integer taps, exact in float32 as in OpenCV)
        if big:  # |∇|² from one padded copy (integers below 2²⁴: exact, the same edges as hypot's thresholds)
            sq = _sobel_sq(lq)
            strong, weak = sq >= 150**2, sq >= 50**2
        else:
            smooth, diff = np.array([1.0, 2.0, 1.0]), np.array([-1.0, 0.0, 1.0])
            mag = torch.hypot(
                ops.separable_filter(lq, smooth, diff, "mirror"), ops.separable_filter(lq, diff, smooth, "mirror")
            )
            strong = mag >= 150
            weak = mag >= 50
        # any strong pixel in the 3×3 neighbourhood (edge replication adds nothing new to a max), in bytes
        grow = ops.max3x3(strong.view(torch.uint8)).view(torch.bool)
        edges = strong | (weak & grow)
        # distance to the nearest edge (chamfer 1/√2), truncated at 20 like cv2.threshold(TRUNC, 20)
        if big and x.device.type == "cpu":  # closed form, a few images at a time (the passes stay in cache)
            dist = torch.cat([_chamfer_closed(edges[s : s + CHAMFER_CHUNK]) for s in range(0, N, CHAMFER_CHUNK)])
        else:
            dist = _chamfer(torch.where(edges, 0.0, 20.0).to(lq.dtype))
        dist = torch.floor(ops.box_blur(dist.clamp(max=20), 3))  # blur then astype(uint8)
        # equalizeHist per image
        di = dist.long().clamp(0, 255).view(N, -1)
        ones = torch.ones_like(di, dtype=dt)
        hist = torch.zeros(N, 256, dtype=dt, device=x.device).scatter_add_(1, di, ones)
        cdf = hist.cumsum(1)
        cmin = torch.where(hist > 0, cdf, torch.full_like(cdf, float("inf"))).amin(1, keepdim=True)
        denom = (H * W - cmin).clamp_min(1)
        lut = torch.round((cdf - cmin).clamp_min(0) / denom * 255)
        dist = lut.gather(1, di).view(N, 1, H, W)
        ker = np.array([[-2.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])
        if big:  # integer taps on integers: the exact sums as shifted slices of one padded copy
            dist = _emboss(dist).clamp_(0, 255)
        else:
            dist = torch.round(ops.filter2d(dist, ker, "mirror")).clamp(0, 255)  # CV_8U saturation
        dist = ops.box_blur(dist, 3)
        m = liquid * dist
        m = m / m.amax((2, 3), keepdim=True).clamp_min(1e-12) * c[4]
        if u8:
            color = torch.tensor([175.0, 238.0, 238.0]).view(1, 3, 1, 1)
            return _blend_uint8(x, lambda xi, i: xi.addcmul_(m[i : i + 1], color))
        color = torch.tensor([175 / 255, 238 / 255, 238 / 255], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return torch.addcmul(x, m, color)
    m = (liquid > c[3]).to(dt)
    m = ops.gaussian_blur(m, float(c[4]))
    m = F.threshold(m, _below(0.8), 0.0)
    if u8:
        color = torch.tensor([63.0, 42.0, 20.0]).view(1, 3, 1, 1)
        return _blend_uint8(x, lambda xi, i: xi.mul_(1 - m[i : i + 1]).addcmul_(color, m[i : i + 1]))
    color = torch.tensor([63 / 255, 42 / 255, 20 / 255], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return torch.addcmul(x * (1 - m), color, m)


_spatter_float = _via_rgb(_spatter_rgb)


# version 3: exact integer Sobel (before: float rank-1 terms whose rounding could flip edge pixels);
# version 4: normals by inversion of 16-bit uniforms; version 6: large uint8 RGB CPU batches blended in uint8 units
@_register("spatter", False, uint8=True)
def spatter(x, rng, c, pset):
    """Water (severities 1–3) or mud (4–5) spatter (``_spatter_rgb``; gray images through RGB)."""
    if x.shape[1] == 3 and _u8_cpu_large(x):
        return _spatter_rgb(x, rng, c, pset)
    return _spatter_float(_as_unit(x), rng, c, pset)


# --------------------------------------------------------------------------- digital
# HSV corruptions in closed form: with v = max(rgb), δ = max − min, s = δ/v, skimage's hsv2rgb
# gives rgb = v − δ·w(h) (w ∈ [0, 1]³ depends on the hue only); so a change of v or s is a
# per-pixel affine map of rgb — no hue, no sector selects (a select on data-dependent masks is
# several times slower on CPU than arithmetic). Equal to rgb2hsv → edit → hsv2rgb in exact
# arithmetic; float32 rounding differs by ≈ 10⁻⁷ (version 2).
# version 3: large uint8 images in uint8 units (below)
@_register("brightness", True, uint8=True)
def brightness(x, rng, c, pset):
    """``hsv2rgb(h, s, clip(v + c, 0, 1))``: rgb·v'/v, and (v', v', v') for black pixels (``_brightness``;
    large uint8 RGB CPU batches: its numba loop, ``kernels.brightness_rgb``, the same bytes)."""
    if _u8_cpu_large(x) and x.shape[1] == 3 and colour_maps_exact():  # one numba loop per image
        return torch.from_numpy(kernels.brightness_rgb(x.numpy(), c))
    return _brightness(x, rng, c, pset)


@_by_images(random=False)
def _brightness(x, rng, c, pset):
    """``brightness``. Large uint8 images: the same map in uint8 units (no conversion to [0, 1] and back; float32
    rounding differs from the float path)."""
    if x.dtype == torch.uint8:
        if large.is_large(x):
            xf = x.float()
            if x.shape[1] == 1:
                return ops.as_uint8(xf.add_(255 * c + 1e-4).clamp_(0, 255))
            v = x.amax(1, keepdim=True).float()
            v2 = (v + 255 * c).clamp_(0, 255)
            r = v2 / v.clamp_min(1e-12)
            return ops.as_uint8(torch.addcmul(v2.addcmul_(v, r, value=-1).add_(1e-4), xf, r).clamp_(0, 255))
        x = _as_unit(x)
    if x.shape[1] == 1:
        return (x + c).clamp(0, 1)
    v = x.amax(1, keepdim=True)
    v2 = (v + c).clamp_(0, 1)
    r = v2 / v.clamp_min(1e-12)
    return torch.addcmul(v2 - v * r, x, r)  # the first term is v' for v = 0, else 0 (± rounding)


def _saturate_rgb(x, rng, c, pset):
    """``hsv2rgb(h, clip(s·a + b, 0, 1), v)``: v − (v − rgb)·v·s'/δ; gray pixels (δ = 0, hue 0)
    become v·(1, 1 − s', 1 − s'), as in skimage."""
    v = x.amax(1, keepdim=True)
    delta = v - x.amin(1, keepdim=True)
    s2 = (delta / v.clamp_min(1e-12)).mul_(c[0]).add_(c[1]).clamp_(0, 1)
    g = v * s2 / delta.clamp_min(1e-12)
    out = torch.addcmul(v, v - x, g, value=-1)
    if c[1]:  # s' > 0 on gray pixels only when b > 0
        out[:, 1:] -= (delta == 0).to(x.dtype) * v * s2
    return out


_saturate_one = _via_rgb(_saturate_rgb)
_saturate_float = _by_images(random=False)(_saturate_one)


@_register("saturate", True, uint8=True)
def saturate(x, rng, c, pset):
    """``_saturate_rgb`` (gray images through RGB). Large uint8 CPU batches: image by image from uint8 to
    uint8 (``_saturate_uint8``; RGB: its numba loop, ``kernels.saturate_rgb``), the same float operations and
    bytes as ``corrupt()``'s conversions around the float path, without its whole-batch float tensors."""
    if _u8_cpu_large(x):
        if x.shape[1] == 3 and colour_maps_exact():  # one numba loop per image, the same bytes
            return torch.from_numpy(kernels.saturate_rgb(x.numpy(), c))
        return _saturate_uint8(x, c)
    return _saturate_float(_as_unit(x), rng, c, pset)


def _saturate_uint8(x: torch.Tensor, c) -> torch.Tensor:
    """``saturate`` of a large uint8 CPU batch: image by image from uint8 to uint8 (``_blend_uint8``), the float
    path's operations and ``corrupt()``'s casts around them."""
    return _blend_uint8(x, lambda xi, i: _saturate_one(xi.div_(255), None, c, "").mul_(255))


def _contrast_units(xf: torch.Tensor, c: float) -> torch.Tensor:
    """Contrast of float images in uint8 units, +10⁻⁴ for the cast: the channel sums are exact integers in
    float32 (below 2²⁴ = 255 · 65,793 pixels), so a batch and its images one by one give the same bytes."""
    m = xf.sum((2, 3), keepdim=True).double().div_(xf.shape[-2] * xf.shape[-1])
    return torch.add((m * (1 - c) + 1e-4).float(), xf, alpha=c)


# version 2: large uint8 images in uint8 units (below)
@_register("contrast", True, uint8=True)
def contrast(x, rng, c, pset):
    """Per channel ``(x − mean)·c + mean``. Large uint8 images: in uint8 units, with the exact integer
    mean (float32 rounding differs); on the CPU image by image (``_blend_uint8``, the same bytes)."""
    if x.dtype == torch.uint8:
        if _u8_cpu_large(x):
            return _blend_uint8(x, lambda xi, i: _contrast_units(xi, c), offset=None)
        if large.is_large(x):
            return ops.as_uint8(_contrast_units(x.float(), c).clamp_(0, 255))
        x = _as_unit(x)
    m = x.mean((2, 3), keepdim=True)
    return torch.add(m * (1 - c), x, alpha=c)


@_register("pixelate", True, uint8=True)
def pixelate(x, rng, c, pset):
    """The source works on a PIL (uint8) image: so do we, and return uint8."""
    H, W = x.shape[-2:]
    if large.is_large(x):  # gathers instead of matmuls: the same bits (both equal Pillow's)
        y = x if x.dtype == torch.uint8 else ops.as_uint8(torch.round(x * 255).clamp_(0, 255))
        return large.box_resize(large.box_resize(y, (int(H * c), int(W * c))), (H, W))
    y = x if x.dtype == torch.uint8 else torch.round(x * 255)
    y = ops.pil_box_resize(y, (int(H * c), int(W * c)))
    return ops.pil_box_resize(y, (H, W))  # BOX upscaling: a gather


JPEG_EMULATION_MAX_PIXELS = 112 * 112  # on CPU, above this libjpeg per image is faster (measured)


def _decode_simplejpeg(data: list[bytes], out: np.ndarray) -> None:
    """Decode Pillow's JPEGs into ``out`` (uint8 N×C×H×W) with simplejpeg (libjpeg-turbo's TurboJPEG API):
    accurate IDCT and fancy upsampling, as Pillow decodes. An RGB image is decoded as RGBX into one
    reused buffer (it stays in the cache) and de-interleaved from there by one numba loop over its pixels as
    32-bit words (``kernels.planes_from_rgbx``) or, without numba, by three casts: the buffer read as
    little-endian 32-bit words from byte offset k (k = 0, 1, 2) holds channel k in each word's low byte, and
    numpy's truncating uint32 → uint8 cast keeps exactly that byte. Measured at 224 px: ≈ 100 µs per image
    for decode + de-interleave (≈ 8 µs of it for the loop, ≈ 16 µs for the casts), against ≈ 155 µs for
    torchvision's decoder and a strided copy."""
    import simplejpeg

    n, c, h, w = out.shape
    opts = {"fastdct": False, "fastupsample": False}
    if c == 1:
        for i, d in enumerate(data):
            simplejpeg.decode_jpeg(d, colorspace="GRAY", buffer=out[i].reshape(h, w, 1), **opts)
        return
    m = h * w
    raw = np.empty(4 * m + 4, dtype=np.uint8)  # 4 spare bytes: the offset words' last one stays inside
    rgbx = raw[: 4 * m].reshape(h, w, 4)
    if kernels.interleaves():  # one vectorised loop per image (≈ 8 µs at 224 px against ≈ 16 µs)
        for i, d in enumerate(data):
            simplejpeg.decode_jpeg(d, colorspace="RGBX", buffer=rgbx, **opts)
            kernels.planes_from_rgbx(rgbx, out[i])
        return
    words = [raw[k : k + 4 * m].view("<u4") for k in range(3)]
    for i, d in enumerate(data):
        simplejpeg.decode_jpeg(d, colorspace="RGBX", buffer=rgbx, **opts)
        planes = out[i].reshape(3, m)
        for k in range(3):
            np.copyto(planes[k], words[k], casting="unsafe")


def _decode_torchvision(data: list[bytes], out: np.ndarray) -> None:
    """Decode Pillow's JPEGs into ``out`` (uint8 N×C×H×W) with torchvision's batched ``decode_jpeg``; its
    images are H×W×C in memory, de-interleaved by numpy's strided copy (≈ 2× faster than torch.stack's)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    tensors = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in data]
    mode = ImageReadMode.RGB if out.shape[1] == 3 else ImageReadMode.GRAY
    for i, img in enumerate(decode_jpeg(tensors, mode=mode)):  # C×H×W views of H×W×C decodes
        out[i] = img.numpy()


_LIBJPEG_DECODERS = {"simplejpeg": _decode_simplejpeg, "torchvision": _decode_torchvision}


@functools.cache
def _libjpeg_decoder() -> Callable[[list[bytes], np.ndarray], None] | None:
    """The first decoder whose libjpeg round trip gives the emulation's bytes here — simplejpeg's, else
    torchvision's — or ``None`` (then the emulation is used everywhere). Checked once per process on small
    random and smooth RGB and gray images at a low and a high quality: a build against another libjpeg, e.g.
    IJG's, or one with other decoder defaults would differ."""
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (1, 3, 40, 56), generator=g, dtype=torch.uint8)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 5, 7, generator=g), size=(40, 56), mode="bicubic")
    x = torch.cat([noise, ops.as_uint8(smooth.clamp(0, 1) * 255)])
    for name, decode in _LIBJPEG_DECODERS.items():
        try:
            if all(
                torch.equal(_jpeg_libjpeg(t, q, decode), jpeg_roundtrip(t, q))
                for t in (x, x[:, :1].contiguous())
                for q in (7, 80)
            ):
                return decode
            log.info("JPEG: %s's libjpeg decodes differently from Pillow's; not used", name)
        except Exception as e:  # not installed, or no image backend
            log.info("JPEG: %s's libjpeg not usable (%s)", name, e)
    log.info("JPEG: no libjpeg decoder matches Pillow's; using the emulation")
    return None


def _jpeg_libjpeg(u8: torch.Tensor, quality: int, decode: Callable[[list[bytes], np.ndarray], None]) -> torch.Tensor:
    """libjpeg-turbo's round trip image by image: encoded by Pillow (its default save, the reference's
    call) from the planar bands — RGB images interleaved into RGBX pixels by a numba loop
    (``kernels.rgbx_from_planes``) that an "RGBX" ``Image.frombuffer`` shares, which Pillow saves as RGB with the
    same bytes as an "RGB" image; without numba, ``Image.frombuffer`` shares the tensor's planes and
    ``Image.merge`` interleaves them in C — and decoded by ``decode`` straight into the C×H×W result. Pillow is the
    encoder because it is the reference: simplejpeg's encoder (other defaults) gives other bytes, and
    torchvision's ``encode_jpeg`` was ≈ 2× slower here (it transposes to H×W×C first); Pillow's decoder +
    a transposition was slower than either decoder (measured at 224 px)."""
    import io

    from PIL import Image

    n, c, h, w = u8.shape
    planes = u8.numpy()
    data = []
    rgbx = np.empty((h, w, 4), dtype=np.uint8) if c == 3 and kernels.interleaves() else None
    for i in range(n):
        if rgbx is not None:  # RGBX pixels from one loop, shared with an "RGBX" image (saved as RGB, as "RGB")
            kernels.rgbx_from_planes(planes[i], rgbx)
            im = Image.frombuffer("RGBX", (w, h), rgbx, "raw", "RGBX", 0, 1)
        else:
            bands = [Image.frombuffer("L", (w, h), planes[i, k], "raw", "L", 0, 1) for k in range(c)]
            im = bands[0] if c == 1 else Image.merge("RGB", bands)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=int(quality))
        data.append(buf.getvalue())
    out = np.empty((n, c, h, w), dtype=np.uint8)
    decode(data, out)
    return torch.from_numpy(out)


@_register("jpeg_compression", True, uint8=True)
def jpeg_compression(x, rng, c, pset):
    """``PIL.Image.save(format='JPEG', quality=c)`` and decode, on uint8 (rounded) images: the
    batched, bit-exact torch emulation of libjpeg-turbo's round trip (``jpeg.jpeg_roundtrip``; any
    device), or — on CPU for images above 112×112 px, where libjpeg's per-image code is faster than
    the batched tensor passes — libjpeg-turbo itself (Pillow's encoder; simplejpeg's or torchvision's
    decoder), where it gives the emulation's bytes (checked once per process). All give Pillow's bytes."""
    u8 = x if x.dtype == torch.uint8 else ops.as_uint8((x * 255).round_().clamp_(0, 255))
    if u8.device.type == "cpu" and u8.shape[-2] * u8.shape[-1] > JPEG_EMULATION_MAX_PIXELS:
        decode = _libjpeg_decoder()
        if decode is not None:
            return _jpeg_libjpeg(u8.contiguous(), int(c), decode)
    return jpeg_roundtrip(u8, int(c))


# version 2: float32 sampling grids from fused affine_grid / one multiply-add (was float64
# coordinate arithmetic; |Δ| ≈ 10⁻⁶ px); version 3: large images apply θ to a cached base grid by broadcasting
# and blur the fields by the size-dependent filter paths (see gaussian_blur)
# version 4: large uint8 CPU images sampled in uint8 units image by image, uint8 out (float32 rounding differs)
@_register("elastic_transform", False, uint8=True)
def elastic_transform(x, rng, c, pset):
    """Random affine (three points around the centre moved by U(−a, a), ``cv2.getAffineTransform``
    + ``warpAffine`` with BORDER_REFLECT_101), then a smooth random displacement field
    (uniform noise, Gaussian-blurred, × alpha; ``map_coordinates(order=1, mode='reflect')``). Large uint8
    CPU images: both samplings in uint8 units one image at a time, uint8 out (``_blend_uint8``)."""
    N, C, H, W = x.shape
    u8 = _u8_cpu_large(x)
    if not u8:
        x = _as_unit(x)
    scale = min(H, W) / REF_SIZE[pset]
    alpha, sigma, aff = c[0] * scale, c[1] * scale, c[2] * scale
    dev, dt = x.device, torch.float32 if u8 else x.dtype
    r_aff = rng.uniform((3, 2), -aff, aff).to(torch.float64)
    fields = rng.uniform((2, H, W), -1.0, 1.0).to(dev, dt)
    cs = torch.tensor([H // 2, W // 2], dtype=torch.float64)
    ss = min(H, W) // 3
    p1 = torch.stack([cs + ss, torch.stack([cs[0] + ss, cs[1] - ss]), cs - ss])  # 3×2, (x, y) as cv2 reads it
    P1 = torch.cat([p1, torch.ones(3, 1, dtype=torch.float64)], 1)  # 3×3
    M = torch.linalg.solve(P1[None].expand(N, 3, 3), p1[None] + r_aff).transpose(1, 2)  # N×2×3: dst = M·[x y 1]
    Ainv = torch.linalg.inv(M[:, :, :2])
    # warpAffine samples src = A⁻¹(dst − b) in pixels; in grid_sample's normalised coordinates
    # (align_corners=True: px = D(n + 1), D = diag((W−1)/2, (H−1)/2)) that is θ = [D⁻¹A⁻¹D | D⁻¹A⁻¹(D1 − b) − 1]
    D = torch.tensor([max(W - 1, 1) / 2, max(H - 1, 1) / 2], dtype=torch.float64)
    lin = Ainv * D[None, None, :] / D[None, :, None]
    shift = torch.einsum("nij,nj->ni", Ainv, D[None] - M[:, :, 2]) / D - 1
    theta = torch.cat([lin, shift[:, :, None]], 2).to(dev, dt)

    def affine(t: torch.Tensor) -> torch.Tensor:  # the affine sampling grid of the images whose θ are t
        if not large.is_large(x):
            return F.affine_grid(t, [len(t), C, H, W], align_corners=True)
        # θ applied to the cached base grid by broadcasting (affine_grid's batched matmul with K = 3 costs
        # ≈ 0.8 ms per 224-px image here, measured; float32 rounding differs, |Δ| ≈ 10⁻⁷)
        b = large.base_grid(H, W, True, dt, dev)  # (H, W, 2)
        grid = torch.addcmul(t[:, None, None, :, 2], b[..., :1], t[:, None, None, :, 0])
        return grid.addcmul_(b[..., 1:], t[:, None, None, :, 1])

    d = None
    if alpha != 0:
        d = ops.gaussian_blur(fields.reshape(N * 2, 1, H, W), sigma, mode="reflect", truncate=3.0).view(N, 2, H, W)
    # map_coordinates(order=1, mode='reflect') at (x + dx, y + dy) == half-sample reflection
    # (align_corners=False): n = (2(px + d) + 1)/S − 1 = base + d·2α/S
    k = torch.tensor([2 * alpha / W, 2 * alpha / H], dtype=dt, device=dev)

    def warp(xi: torch.Tensor, s: slice) -> torch.Tensor:
        # BORDER_REFLECT_101 == reflection about the edge pixel centres (align_corners=True)
        y = F.grid_sample(xi, affine(theta[s]), mode="bilinear", padding_mode="reflection", align_corners=True)
        if d is None:
            return y
        grid = torch.addcmul(large.base_grid(H, W, False, dt, dev)[None], d[s].permute(0, 2, 3, 1), k)
        return F.grid_sample(y, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    if u8:
        return _blend_uint8(x, lambda xi, i: warp(xi, slice(i, i + 1)))
    return warp(x, slice(0, N))
