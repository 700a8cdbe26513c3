"""Batched tensor primitives for the corruptions: per-image keyed RNG, padding modes of
scipy/OpenCV, separable and 2-D filters, HSV/HLS colour spaces (skimage / OpenCV formulas),
resampling matrices (scipy ``zoom``, PIL ``BOX``) and the ImageMagick motion-blur kernel.

Why our own: the reference generators (``make_cifar_c.py``, ``imagecorruptions``) work one
numpy/PIL/ImageMagick image at a time; here every op acts on a float N×C×H×W batch on any
device, and each primitive reproduces the boundary handling of the library the reference used
(scipy ``nearest``/``reflect``/``mirror``, OpenCV ``BORDER_REFLECT_101``, ImageMagick edge pixels).
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
import torch

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as cv2.COLOR_RGB2GRAY


# --------------------------------------------------------------------------- keyed RNG
def image_key(seed: int, name: str, severity: int, index: int) -> int:
    """63-bit key from (seed, corruption, severity, dataset index): the only inputs of the noise."""
    h = hashlib.blake2b(f"{seed}|{name}|{severity}|{index}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & 0x7FFF_FFFF_FFFF_FFFF


class BatchRNG:
    """One CPU ``torch.Generator`` per image, seeded by :func:`image_key`.

    Every draw is made per image on the CPU and then moved to ``device``, so an image's
    corruption depends only on its key — not on the batch it sits in, nor on the device.
    """

    def __init__(self, keys: Sequence[int] | Callable[[], Sequence[int]], device: torch.device | str = "cpu",
                 n: int | None = None):
        # keys (or a function returning them) are only turned into generators on the first draw,
        # so deterministic corruptions pay nothing
        self._keys = keys
        self._gens: list[torch.Generator] | None = None
        self._n = n if n is not None else (None if callable(keys) else len(keys))
        self.device = torch.device(device)

    @property
    def gens(self) -> list[torch.Generator]:
        if self._gens is None:
            keys = self._keys() if callable(self._keys) else self._keys
            self._gens = [torch.Generator().manual_seed(int(k)) for k in keys]
        return self._gens

    def __len__(self) -> int:
        return self._n if self._n is not None else len(self.gens)

    def _stack(self, parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(parts).to(self.device)

    def uniform(self, shape: Sequence[int] = (), low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        u = self._stack([torch.rand(tuple(shape), generator=g) for g in self.gens])
        return u * (high - low) + low

    def uniform_double(self, shape: Sequence[int] = ()) -> torch.Tensor:
        return self._stack([torch.rand(tuple(shape), generator=g, dtype=torch.float64) for g in self.gens])

    def normal(self, shape: Sequence[int] = (), mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
        z = self._stack([torch.randn(tuple(shape), generator=g) for g in self.gens])
        return z if (std == 1.0 and mean == 0.0) else z.mul_(std).add_(mean)

    def randint(self, low: int, high: int, shape: Sequence[int] = ()) -> torch.Tensor:
        """Integers in [low, high) (numpy's ``randint`` convention)."""
        return self._stack([torch.randint(low, high, tuple(shape), generator=g) for g in self.gens])

    def poisson(self, rates: torch.Tensor) -> torch.Tensor:
        """Poisson samples with per-element rates (N×...), drawn image by image on the CPU."""
        r = rates.detach().to("cpu", torch.float32).clamp_min(0)
        return self._stack([torch.poisson(r[i], generator=g) for i, g in enumerate(self.gens)])


QUANTILES = 2048


@lru_cache(maxsize=32)
def _poisson_table(c: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    """For the 256 rates c·v/255: the CDFs offset by +v (flat, rows kept apart) and an inverse
    table ``inv[v, j]`` = the Poisson value k for every u in [j/Q, (j+1)/Q), or −1 when a CDF
    step falls inside that bucket (then the exact search decides)."""
    from scipy.special import pdtr

    K = int(math.ceil(c + 12 * math.sqrt(c) + 30))
    lam = c * np.arange(256) / 255.0
    cdf = pdtr(np.arange(K)[None, :], lam[:, None])
    cdf[:, -1] = 1.0
    cdf = np.maximum.accumulate(cdf, axis=1)
    Q = QUANTILES
    edges = np.arange(Q + 1) / Q
    lo = np.stack([np.searchsorted(cdf[v], edges[:-1], side="left") for v in range(256)])
    hi = np.stack([np.searchsorted(cdf[v], np.nextafter(edges[1:], 0), side="left") for v in range(256)])
    inv = np.where(lo == hi, lo, -1).astype(np.int16)
    offset = torch.from_numpy((cdf + np.arange(256)[:, None]).reshape(-1))
    return offset, torch.from_numpy(inv).reshape(-1), K


def poisson_uint8(rng: BatchRNG, v: torch.Tensor, c: float) -> torch.Tensor:
    """Exact Poisson(c·v/255) samples for integer v in 0..255 (N×...), by inversion
    k = min{k : CDF(k) ≥ u}: a table lookup for most u, a binary search for the rest."""
    offset, inv, K = _poisson_table(float(c))
    u = rng.uniform(v.shape[1:])  # 24-bit uniforms: the tail beyond 1 − 2⁻²⁴ is not reached
    j = u.mul(QUANTILES).long().clamp_(max=QUANTILES - 1)
    k = inv.to(v.device)[j.add_(v * QUANTILES)].to(torch.int64)
    amb = k < 0
    if bool(amb.any()):
        vv = v[amb]
        k[amb] = torch.searchsorted(offset.to(v.device), u[amb].double() + vv.to(torch.float64)) - vv * K
    return k.to(torch.float32)


# --------------------------------------------------------------------------- padding
def pad_index(n: int, before: int, after: int, mode: str) -> torch.Tensor:
    """Source indices of a padded axis. Modes (scipy names): ``nearest`` (edge), ``reflect``
    (half-sample symmetric, d c b a | a b c d), ``mirror`` (whole-sample, = OpenCV
    BORDER_REFLECT_101, d c b | a b c d), ``wrap``. Any pad width (repeated reflection)."""
    i = torch.arange(-before, n + after)
    if mode == "nearest":
        return i.clamp(0, n - 1)
    if mode == "wrap":
        return i % n
    if mode == "reflect":
        p = i % (2 * n)
        return torch.where(p < n, p, 2 * n - 1 - p)
    if mode == "mirror":
        if n == 1:
            return torch.zeros_like(i)
        p = i % (2 * n - 2)
        return torch.where(p < n, p, 2 * n - 2 - p)
    raise ValueError(f"unknown padding mode '{mode}'")


def pad2d(x: torch.Tensor, ph: int, pw: int, mode: str) -> torch.Tensor:
    """Pad the last two dims of ``x`` by (ph, pw) on each side with a scipy-style mode."""
    H, W = x.shape[-2:]
    if ph:
        x = x.index_select(-2, pad_index(H, ph, ph, mode).to(x.device))
    if pw:
        x = x.index_select(-1, pad_index(W, pw, pw, mode).to(x.device))
    return x


# --------------------------------------------------------------------------- filters
def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy.ndimage's Gaussian kernel: radius ``int(truncate·σ + 0.5)``, normalised to sum 1."""
    radius = int(truncate * float(sigma) + 0.5)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


@lru_cache(maxsize=1024)
def _filter_matrix_cached(n: int, weights: tuple[float, ...], first: int, mode: str) -> np.ndarray:
    M = np.zeros((n, n))
    k = len(weights)
    idx = pad_index(n, max(0, -first), max(0, first + k - 1), mode).numpy()
    off = max(0, -first)
    for i in range(n):
        for j, w in enumerate(weights):
            M[i, idx[i + first + j + off]] += w
    return M


def filter_matrix(n: int, weights, first: int, mode: str) -> np.ndarray:
    """n×n matrix of a 1-D correlation ``y[i] = Σ_j w[j]·x[i + first + j]`` with the scipy
    boundary ``mode`` folded in. Filtering a batch is then one (batched) matmul per axis —
    much faster on CPU than ``conv2d`` on many small single-channel planes."""
    return _filter_matrix_cached(int(n), tuple(float(w) for w in np.asarray(weights).ravel()), int(first), mode)


def _tensor(a: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(a, dtype=x.dtype, device=x.device)


def separable_filter(x: torch.Tensor, kh: np.ndarray, kw: np.ndarray, mode: str) -> torch.Tensor:
    """Correlate with the odd-length ``kh`` along H and ``kw`` along W, scipy boundary ``mode``."""
    H, W = x.shape[-2:]
    A = filter_matrix(H, kh, -(len(kh) // 2), mode)
    B = filter_matrix(W, kw, -(len(kw) // 2), mode)
    return torch.matmul(torch.matmul(_tensor(A, x), x), _tensor(B, x).T)


def gaussian_blur(x: torch.Tensor, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> torch.Tensor:
    """``skimage.filters.gaussian(x, sigma)`` per channel (scipy ``gaussian_filter``, default
    mode ``nearest``, truncate 4). σ = 0 is the identity, as in scipy."""
    if sigma <= 0:
        return x
    k = gaussian_kernel1d(sigma, truncate)
    return separable_filter(x, k, k, mode)


@lru_cache(maxsize=64)
def _svd_terms(kernel_bytes: bytes, shape: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
    k = np.frombuffer(kernel_bytes, dtype=np.float64).reshape(shape)
    U, S, Vt = np.linalg.svd(k)
    keep = S > S[0] * 1e-9
    return [(U[:, r] * S[r], Vt[r]) for r in np.nonzero(keep)[0]]


def filter2d(x: torch.Tensor, kernel: np.ndarray, mode: str = "mirror") -> torch.Tensor:
    """``cv2.filter2D`` (correlation, default border REFLECT_101 = ``mirror``) with an odd kernel,
    computed exactly as a sum of separable rank-1 terms (SVD of the kernel)."""
    k = np.asarray(kernel, dtype=np.float64)
    H, W = x.shape[-2:]
    out = None
    for u, v in _svd_terms(k.tobytes(), k.shape):
        A = _tensor(filter_matrix(H, u, -(len(u) // 2), mode), x)
        B = _tensor(filter_matrix(W, v, -(len(v) // 2), mode), x)
        y = torch.matmul(torch.matmul(A, x), B.T)
        out = y if out is None else out + y
    return out if out is not None else torch.zeros_like(x)


def box_blur(x: torch.Tensor, k: int, mode: str = "mirror") -> torch.Tensor:
    """``cv2.blur(x, (k, k))``: normalised box, OpenCV's anchor ``k // 2``, border REFLECT_101."""
    if k <= 1:
        return x
    H, W = x.shape[-2:]
    w = np.full(k, 1.0 / k)
    A = _tensor(filter_matrix(H, w, -(k // 2), mode), x)
    B = _tensor(filter_matrix(W, w, -(k // 2), mode), x)
    return torch.matmul(torch.matmul(A, x), B.T)


def cv2_gaussian_kernel(ksize: int, sigma: float) -> np.ndarray:
    """``cv2.getGaussianKernel(ksize, sigma)`` for σ > 0 (normalised samples of a Gaussian)."""
    t = np.arange(ksize, dtype=np.float64) - (ksize - 1) / 2
    k = np.exp(-(t ** 2) / (2 * sigma * sigma))
    return k / k.sum()


@lru_cache(maxsize=64)
def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The ``disk()`` of make_cifar_c.py / make_imagenet_c.py: an aliased disk on a 17×17 grid
    (or (2r+1)² for r > 8), normalised, then ``cv2.GaussianBlur`` (3×3 or 5×5, REFLECT_101).
    Returned cropped to its non-zero support (identical result, fewer multiply-adds)."""
    if radius <= 8:
        L, ksize = np.arange(-8, 8 + 1), 3
    else:
        L, ksize = np.arange(-radius, radius + 1), 5
    X, Y = np.meshgrid(L, L)
    d = ((X ** 2 + Y ** 2) <= radius ** 2).astype(np.float64)
    d /= d.sum()
    g = cv2_gaussian_kernel(ksize, alias_blur)
    r = ksize // 2
    n = d.shape[0]
    idx = pad_index(n, r, r, "mirror").numpy()
    p = d[idx][:, idx]
    out = np.zeros_like(d)
    for a in range(ksize):
        for b in range(ksize):
            out += g[a] * g[b] * p[a:a + n, b:b + n]
    out = out.astype(np.float32)
    nz = np.nonzero(np.abs(out) > 0)
    c = n // 2
    h = max(int(np.abs(nz[0] - c).max()), int(np.abs(nz[1] - c).max()))
    return out[c - h:c + h + 1, c - h:c + h + 1]


# --------------------------------------------------------------------------- colour spaces
def gray(x: torch.Tensor) -> torch.Tensor:
    """N×1×H×W luminance (BT.601) of an RGB batch; a 1-channel batch is returned as is."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """skimage.color.rgb2hsv on N×3×H×W (same tie-breaking: blue > green > red for the max)."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    v = x.amax(1)
    delta = v - x.amin(1)
    zero = delta == 0
    ds = torch.where(zero, torch.ones_like(delta), delta)
    s = torch.where(zero, torch.zeros_like(delta), delta / torch.where(v == 0, torch.ones_like(v), v))
    h = (g - b) / ds
    h = torch.where(g == v, 2.0 + (b - r) / ds, h)
    h = torch.where(b == v, 4.0 + (r - g) / ds, h)
    h = torch.remainder(h / 6.0, 1.0)
    h = torch.where(zero, torch.zeros_like(h), h)
    return h, s, v


def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """skimage.color.hsv2rgb (N×H×W planes -> N×3×H×W), in the closed form
    ``c_n = v − v·s·clip(min(k, 4 − k), 0, 1)`` with ``k = (n + 6h) mod 6``, n = 5, 3, 1 for R, G, B
    (the same values as skimage's sector table)."""
    h6 = (h * 6)[:, None]
    n = torch.tensor([5.0, 3.0, 1.0], dtype=h.dtype, device=h.device).view(1, 3, 1, 1)
    k = torch.remainder(n + h6, 6.0)
    w = torch.minimum(k, 4 - k).clamp(0, 1)
    return v[:, None] * (1 - s[:, None] * w)


def rgb_to_hls(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """OpenCV float RGB->HLS: H in [0, 360), L, S in [0, 1]."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    vmax, vmin = x.amax(1), x.amin(1)
    diff = vmax - vmin
    L = (vmax + vmin) / 2
    eps = torch.finfo(x.dtype).eps
    S = torch.where(L < 0.5, diff / (vmax + vmin + eps), diff / (2 - vmax - vmin + eps))
    d = torch.where(diff > eps, diff, torch.ones_like(diff))
    H = torch.where(vmax == r, (g - b) * 60 / d,
                    torch.where(vmax == g, (b - r) * 60 / d + 120, (r - g) * 60 / d + 240))
    H = torch.where(diff > eps, H, torch.zeros_like(H))
    H = torch.where(H < 0, H + 360, H)
    S = torch.where(diff > eps, S, torch.zeros_like(S))
    return H, L, S


def hls_to_rgb(H: torch.Tensor, L: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
    """OpenCV float HLS->RGB (standard formula)."""
    q = torch.where(L <= 0.5, L * (1 + S), L + S - L * S)
    p = 2 * L - q

    def ch(t: torch.Tensor) -> torch.Tensor:
        t = torch.remainder(t, 360.0)
        return torch.where(t < 60, p + (q - p) * t / 60,
                           torch.where(t < 180, q, torch.where(t < 240, p + (q - p) * (240 - t) / 60, p)))

    return torch.stack([ch(H + 120), ch(H), ch(H - 120)], 1)


# --------------------------------------------------------------------------- resampling matrices
def _linear_rows(coords: np.ndarray, n_in: int) -> np.ndarray:
    """Matrix (len(coords) × n_in) of 1-D linear interpolation at the given coordinates (clamped)."""
    c = np.clip(coords, 0, n_in - 1)
    i0 = np.floor(c).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = c - i0
    A = np.zeros((len(c), n_in))
    A[np.arange(len(c)), i0] += 1 - w1
    A[np.arange(len(c)), i1] += w1
    return A


@lru_cache(maxsize=512)
def clipped_zoom_matrix(n: int, zoom: float) -> np.ndarray:
    """1-D version of ``clipped_zoom`` (make_*_c.py): crop the centre ``ceil(n / z)``, zoom it
    with ``scipy.ndimage.zoom(order=1)`` (corner-aligned grid, output ``round(ch·z)``), trim
    back to ``n``. Returned as an n×n matrix."""
    ch = int(np.ceil(n / zoom))
    top = (n - ch) // 2
    out_n = int(round(ch * zoom))
    ratio = (ch - 1) / (out_n - 1) if out_n > 1 else 0.0
    coords = np.arange(out_n) * ratio
    trim = (out_n - n) // 2
    A = np.zeros((n, n))
    A[:, top:top + ch] = _linear_rows(coords[trim:trim + n], ch)
    return A


def apply_matrices(x: torch.Tensor, A: np.ndarray | torch.Tensor, B: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``A @ x @ Bᵀ`` on every plane (A: H'×H, B: W'×W)."""
    A = torch.as_tensor(A, dtype=x.dtype, device=x.device)
    B = torch.as_tensor(B, dtype=x.dtype, device=x.device)
    return torch.matmul(torch.matmul(A, x), B.T)


def _pil_box_coeffs(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's ``precompute_coeffs`` for the BOX filter (support 0.5): out×in weights."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    M = np.zeros((out_size, in_size))
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        ws = []
        for x in range(xmin, xmax):
            t = (x - center + 0.5) / filterscale
            ws.append(1.0 if -0.5 < t <= 0.5 else 0.0)
        tot = sum(ws)
        if tot:
            M[xx, xmin:xmax] = np.array(ws) / tot
    return M


@lru_cache(maxsize=128)
def pil_box_matrix(in_size: int, out_size: int) -> np.ndarray:
    return _pil_box_coeffs(in_size, out_size)


def pil_box_resize(x: torch.Tensor, size: tuple[int, int], round_uint8: bool = True) -> torch.Tensor:
    """``PIL.Image.resize(size, BOX)`` on a batch: horizontal pass then vertical, each rounded
    to uint8 steps like Pillow's 8-bit path (``round_uint8``)."""
    H, W = x.shape[-2:]
    oh, ow = size
    if ow != W:
        x = torch.matmul(x, torch.as_tensor(pil_box_matrix(W, ow), dtype=x.dtype, device=x.device).T)
        if round_uint8:
            x = torch.round(x * 255) / 255
    if oh != H:
        x = torch.matmul(torch.as_tensor(pil_box_matrix(H, oh), dtype=x.dtype, device=x.device), x)
        if round_uint8:
            x = torch.round(x * 255) / 255
    return x


# --------------------------------------------------------------------------- motion blur
def motion_kernel(radius: float, sigma: float) -> np.ndarray:
    """ImageMagick ``MotionBlurImage`` weights: width ``2·ceil(r)+1``, one-sided Gaussian."""
    width = int(2 * math.ceil(radius) + 1)
    i = np.arange(width, dtype=np.float64)
    k = np.exp(-(i * i) / (2 * sigma * sigma))
    return k / k.sum()


def motion_blur(x: torch.Tensor, radius: float, sigma: float, angle_deg: torch.Tensor) -> torch.Tensor:
    """ImageMagick ``-motion-blur radius×sigma+angle`` with per-image angles, in torch.

    out(x, y) = Σᵢ kᵢ · in(x + ⌈i·cos a − ½⌉, y + ⌈i·sin a − ½⌉), edge pixels repeated
    (ImageMagick's default virtual-pixel method). No ImageMagick needed.
    """
    N, C, H, W = x.shape
    k = motion_kernel(radius, sigma)
    k = k[k > 1e-9 * k[0]]  # taps below float32 resolution change nothing
    a = torch.deg2rad(angle_deg.to(x.device, torch.float64)).view(N, 1)
    i = torch.arange(len(k), device=x.device, dtype=torch.float64).view(1, -1)
    ox = torch.ceil(i * torch.cos(a) - 0.5).long()  # N×K
    oy = torch.ceil(i * torch.sin(a) - 0.5).long()
    rows = torch.arange(H, device=x.device).view(1, 1, H, 1)
    cols = torch.arange(W, device=x.device).view(1, 1, 1, W)
    flat = x.reshape(N, C, H * W)
    out = torch.zeros_like(flat)
    for j, w in enumerate(k):
        r = (rows + oy[:, j].view(N, 1, 1, 1)).clamp(0, H - 1)
        c = (cols + ox[:, j].view(N, 1, 1, 1)).clamp(0, W - 1)
        idx = (r * W + c).reshape(N, 1, H * W).expand(N, C, H * W)
        out += float(w) * flat.gather(2, idx)
    return out.reshape(N, C, H, W)


# --------------------------------------------------------------------------- helpers
def per_image(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape an N-vector to broadcast against an N×C×H×W batch."""
    return t.to(x.device, x.dtype).view(-1, *([1] * (x.dim() - 1)))


def to_rgb(x: torch.Tensor) -> torch.Tensor:
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def next_pow2(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())
