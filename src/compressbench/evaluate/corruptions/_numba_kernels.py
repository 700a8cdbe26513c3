"""The numba loops behind :mod:`.kernels` (imported, and so compiled or loaded from numba's cache, on first
use only). Each works one image at a time: the image's SplitMix64 words into ``wbuf`` (a loop that
vectorises), then one pass over its values. Integer arithmetic, and float32 operations exactly as numpy's
passes order them (numba's default: no fast-math, no FMA contraction)."""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from .splitmix import GAMMA, M1, M2


@njit(cache=True, nogil=True)
def _mix_words(key, ctr0, wbuf):  # pragma: no cover — compiled
    """``wbuf[w]`` = SplitMix64 word ``ctr0 + w + 1`` of the stream ``key`` (``ops.BatchRNG.words``)."""
    for w in range(wbuf.shape[0]):
        z = key + (ctr0 + np.uint64(w + 1)) * GAMMA
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
        wbuf[w] = z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def offset_uint8(x, keys, ctr0, offsets, out, wbuf):  # pragma: no cover — compiled
    u16 = wbuf.view(np.uint16)
    t = np.empty(x.shape[1], dtype=np.int16)
    for i in range(x.shape[0]):
        _mix_words(keys[i], ctr0, wbuf)
        xi, oi = x[i], out[i]
        for j in range(xi.shape[0]):  # the lookups (a gather) ...
            t[j] = offsets[u16[j]]
        for j in range(xi.shape[0]):  # ... then the addition and the clip (vectorises)
            oi[j] = min(max(np.int16(xi[j]) + t[j], 0), 255)


@njit(cache=True, nogil=True)
def scale_uint8(x, keys, ctr0, factors, out, wbuf):  # pragma: no cover — compiled
    u16 = wbuf.view(np.uint16)
    t = np.empty(x.shape[1], dtype=np.float32)
    eps, hi = np.float32(1e-4), np.float32(255.0)
    for i in range(x.shape[0]):
        _mix_words(keys[i], ctr0, wbuf)
        xi, oi = x[i], out[i]
        for j in range(xi.shape[0]):  # the lookups (a gather) ...
            t[j] = factors[u16[j]]
        for j in range(xi.shape[0]):  # ... then numpy's t *= x; t += 1e-4; clip; truncating cast (vectorises)
            v = t[j] * np.float32(xi[j]) + eps
            oi[j] = np.uint8(min(max(v, np.float32(0.0)), hi))


@njit(cache=True, nogil=True)
def impulse_uint8(x, keys, ctr0, flip, half, out, wbuf):  # pragma: no cover — compiled
    u32 = wbuf.view(np.uint32)
    for i in range(x.shape[0]):
        _mix_words(keys[i], ctr0, wbuf)
        xi, oi = x[i], out[i]
        for j in range(xi.shape[0]):
            u = u32[j]
            oi[j] = 255 if u < half else (0 if u < flip else xi[j])


@njit(cache=True, nogil=True)
def poisson_uint8(v, keys, ctr0, inv, ambiguous, offset, K, table, out, wbuf):  # pragma: no cover — compiled
    u32 = wbuf.view(np.uint32)
    for i in range(v.shape[0]):
        _mix_words(keys[i], ctr0, wbuf)
        vi, oi = v[i], out[i]
        for j in range(vi.shape[0]):
            r = u32[j]
            va = np.int64(vi[j])
            k = np.int64(inv[(va << 11) | np.int64(r >> np.uint32(21))])
            if k == ambiguous:  # a CDF step inside the bucket: the exact search (numpy's searchsorted, left)
                k = np.searchsorted(offset, np.float64(r) * 2.0**-32 + va) - va * K
            oi[j] = table[k]


# --------------------------------------------------------------------------- per-pixel colour maps
# torch's CPU kernels compute ``addcmul`` and ``add(..., alpha=)`` with a fused multiply-add where the CPU has
# one (``Vectorized::fmadd``: one rounding); these loops do the same through LLVM's fma intrinsic, and
# ``kernels`` checks once per process that they give torch's bytes here before using them.
@intrinsic
def _fma(typingctx, a, b, c):  # pragma: no cover — compiled
    """a·b + c with one rounding (float32)."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return sig, codegen


# The loops over an image's values take its three planes as separate arrays (called once per image): LLVM then
# checks at run time that they do not overlap and vectorises; stores into three planes of one array it does not
# (measured ≈ 20× slower). ``error_model="numpy"``: IEEE division, without Python's zero-division check.
@njit(cache=True, nogil=True, inline="always")
def _byte(y):  # pragma: no cover — compiled
    """``corrupt()``'s cast of a float32 value: clip to 0..255, truncate."""
    y = y if y > np.float32(0.0) else np.float32(0.0)
    return np.uint8(y if y < np.float32(255.0) else np.float32(255.0))


@njit(cache=True, nogil=True, error_model="numpy")
def _brightness_planes(x0, x1, x2, o0, o1, o2, s):  # pragma: no cover — compiled
    zero, hi, tiny, eps = np.float32(0.0), np.float32(255.0), np.float32(1e-12), np.float32(1e-4)
    for j in range(x0.shape[0]):
        q0, q1, q2 = np.float32(x0[j]), np.float32(x1[j]), np.float32(x2[j])
        v = q0 if q0 > q1 else q1  # amax over the channels
        v = v if v > q2 else q2
        v2 = v + s  # (v + 255·c).clamp_(0, 255)
        v2 = v2 if v2 > zero else zero
        v2 = v2 if v2 < hi else hi
        r = v2 / (v if v > tiny else tiny)  # v2 / v.clamp_min(1e-12)
        a = _fma(-v, r, v2) + eps  # v2.addcmul_(v, r, value=-1).add_(1e-4)
        o0[j], o1[j], o2[j] = _byte(_fma(q0, r, a)), _byte(_fma(q1, r, a)), _byte(_fma(q2, r, a))  # addcmul(a, x, r)


@njit(cache=True, nogil=True)
def brightness_rgb(x, s, out):  # pragma: no cover — compiled
    """``hendrycks._brightness``'s uint8 path (x, out: uint8 N×3×m; s = float32(255·c))."""
    for i in range(x.shape[0]):
        _brightness_planes(x[i, 0], x[i, 1], x[i, 2], out[i, 0], out[i, 1], out[i, 2], s)


@njit(cache=True, nogil=True, error_model="numpy")
def _saturate_planes(x0, x1, x2, o0, o1, o2, a, b):  # pragma: no cover — compiled
    zero, one, tiny = np.float32(0.0), np.float32(1.0), np.float32(1e-12)
    u, eps = np.float32(255.0), np.float32(1e-4)
    gray = b != zero
    for j in range(x0.shape[0]):
        p0, p1, p2 = np.float32(x0[j]) / u, np.float32(x1[j]) / u, np.float32(x2[j]) / u  # x.float().div_(255)
        v = p0 if p0 > p1 else p1  # amax, amin over the channels
        v = v if v > p2 else p2
        mn = p0 if p0 < p1 else p1
        mn = mn if mn < p2 else p2
        delta = v - mn
        s2 = delta / (v if v > tiny else tiny) * a + b  # (δ / v.clamp_min(1e-12)).mul_(a).add_(b).clamp_(0, 1)
        s2 = s2 if s2 > zero else zero
        s2 = s2 if s2 < one else one
        g = v * s2 / (delta if delta > tiny else tiny)
        y0, y1, y2 = _fma(-(v - p0), g, v), _fma(-(v - p1), g, v), _fma(-(v - p2), g, v)  # addcmul(v, v − x, g, −1)
        gs = v * s2 if gray and delta == zero else zero  # gray pixels: (v, v − v·s', v − v·s')
        o0[j], o1[j], o2[j] = _byte(y0 * u + eps), _byte((y1 - gs) * u + eps), _byte((y2 - gs) * u + eps)


@njit(cache=True, nogil=True)
def saturate_rgb(x, a, b, out):  # pragma: no cover — compiled
    """``hendrycks._saturate_uint8`` (x, out: uint8 N×3×m; a, b: float32 of the constants)."""
    for i in range(x.shape[0]):
        _saturate_planes(x[i, 0], x[i, 1], x[i, 2], out[i, 0], out[i, 1], out[i, 2], a, b)


@njit(cache=True, nogil=True, error_model="numpy")
def _frost_plane(x, t, o, a, b):  # pragma: no cover — compiled
    eps = np.float32(1e-4)
    for r in range(x.shape[0]):
        for j in range(x.shape[1]):  # x.mul_(a).add_(t, alpha=b), then + 1e-4 and the cast
            o[r, j] = _byte(_fma(np.float32(t[r, j]), b, np.float32(x[r, j]) * a) + eps)


@njit(cache=True, nogil=True)
def frost_rgb(x, tex, where, a, b, out):  # pragma: no cover — compiled
    """``hendrycks._frost_uint8`` (x, out: uint8 N×3×H×W; tex: the textures; where: N×(texture, row,
    column) of each image's crop; a, b: float32 of the constants)."""
    H, W = x.shape[2], x.shape[3]
    for i in range(x.shape[0]):
        t, y, c = where[i, 0], where[i, 1], where[i, 2]
        for k in range(3):
            _frost_plane(x[i, k], tex[t, k, y : y + H, c : c + W], out[i, k], a, b)


# --------------------------------------------------------------------------- defocus disk by runs
@njit(cache=True, nogil=True, inline="always")
def _reflect(i, n):  # pragma: no cover — compiled
    """Row ``i`` of REFLECT_101 padding of ``n`` rows (|overhang| < n)."""
    i = -i if i < 0 else i
    return 2 * (n - 1) - i if i >= n else i


@njit(cache=True, nogil=True, inline="always")
def _pad_rows(x, xp, R):  # pragma: no cover — compiled
    """The rows of ``x`` padded by ``R`` columns each side (REFLECT_101) into ``xp`` (the sums' type)."""
    W = x.shape[1]
    for i in range(x.shape[0]):
        xi, pi = x[i], xp[i]
        mid = pi[R : R + W]
        for q in range(W):
            mid[q] = xi[q]
        for q in range(R):
            pi[R - 1 - q] = xi[q + 1]
            pi[R + W + q] = xi[W - 2 - q]


@njit(cache=True, nogil=True, inline="always")
def _disk_row(V, D, offs, hidx, r):  # pragma: no cover — compiled
    """One row of disk sums: the columns' vertical sums (rows of ``V``) shifted by their offsets, four per pass
    (the list padded with the row of zeros)."""
    Wo = D.shape[0]
    for c in range(0, offs.shape[0], 4):
        s0, s1, s2, s3 = r + offs[c], r + offs[c + 1], r + offs[c + 2], r + offs[c + 3]
        v0, v1 = V[hidx[c], s0 : s0 + Wo], V[hidx[c + 1], s1 : s1 + Wo]
        v2, v3 = V[hidx[c + 2], s2 : s2 + Wo], V[hidx[c + 3], s3 : s3 + Wo]
        if c == 0:
            for j in range(Wo):
                D[j] = v0[j] + v1[j] + v2[j] + v3[j]
        else:
            for j in range(Wo):
                D[j] += v0[j] + v1[j] + v2[j] + v3[j]


@njit(cache=True, nogil=True, inline="always")
def _gauss_row(Y, T, oi, i, gv, g):  # pragma: no cover — compiled
    """Output row ``i`` from the float32 disk rows i … i + 2gr (``Y``, a ring): the vertical pass (``torch.mul`` by
    the first tap, then ``add_(alpha=)``: FMA), the horizontal pass likewise, + 1e-4, the cast."""
    nt, W = gv.shape[0], oi.shape[0]
    eps = np.float32(1e-4)
    if nt == 3:  # the source's 3×3 Gaussian: each pass one loop, the taps in torch's order
        y0, y1, y2 = Y[i % 3], Y[(i + 1) % 3], Y[(i + 2) % 3]
        w0, w1, w2 = gv[0], gv[1], gv[2]
        for j in range(T.shape[0]):
            T[j] = _fma(y2[j], w2, _fma(y1[j], w1, y0[j] * w0))
        t0, t1, t2 = T[0:W], T[1 : W + 1], T[2 : W + 2]
        w0, w1, w2 = g[0], g[1], g[2]
        for j in range(W):
            oi[j] = _byte(_fma(t2[j], w2, _fma(t1[j], w1, t0[j] * w0)) + eps)
        return
    y, w = Y[i % nt], gv[0]
    for j in range(T.shape[0]):
        T[j] = y[j] * w
    for a in range(1, nt):
        y, w = Y[(i + a) % nt], gv[a]
        for j in range(T.shape[0]):
            T[j] = _fma(y[j], w, T[j])
    t, w = T[0:W], g[0]
    u = Y[i % nt, 0:W]  # (its disk sums are used)
    for j in range(W):
        u[j] = t[j] * w
    for b in range(1, nt):
        t, w = T[b : b + W], g[b]
        for j in range(W):
            u[j] = _fma(t[j], w, u[j])
    for j in range(W):
        oi[j] = _byte(u[j] + eps)


@njit(cache=True, nogil=True, error_model="numpy")
def _disk_plane(x, o, xp, V, D, Y, T, offs, hidx, hs, gv, g, r):  # pragma: no cover — compiled
    """One H×W uint8 plane ``x`` into ``o``: ``large.disk_filter``'s sums in integers, its Gaussian passes in float32
    as torch orders them, the uint8 cast. Scratch (the sums' integer type): ``xp`` the rows padded horizontally
    (H × W + 2R), ``V`` the vertical running sums of every distinct half-height (and a row of zeros), ``D`` one row
    of disk sums; float32: ``Y`` the last len(g) rows of them (a ring), ``T`` one row of the vertical pass.
    Slices rather than offset indices in the inner loops: numba's wraparound of an index that might be negative
    (i + s < 0?) keeps a loop from vectorising."""
    H, W = x.shape
    nt = gv.shape[0]
    gr = nt // 2
    R = r + gr
    Wp = W + 2 * R
    _pad_rows(x, xp, R)
    V[:] = 0
    for k in range(hs.shape[0]):  # sums of 2h + 1 padded rows centred on row −gr
        h, Vk = hs[k], V[k]
        for t in range(-gr - h, -gr + h + 1):
            row = xp[_reflect(t, H)]
            for q in range(Wp):
                Vk[q] += row[q]
    for m in range(-gr, H + gr):  # the disk sums centred on row m (columns −gr … W + gr − 1)
        if m > -gr:
            for k in range(hs.shape[0]):
                h, Vk = hs[k], V[k]
                add, sub = xp[_reflect(m + h, H)], xp[_reflect(m - 1 - h, H)]
                for q in range(Wp):
                    Vk[q] = Vk[q] + add[q] - sub[q]
        _disk_row(V, D, offs, hidx, r)
        if nt == 1:  # no Gaussian (m is the output row): torch.mul, + 1e-4, the cast
            oi, w, eps = o[m], gv[0], np.float32(1e-4)
            for j in range(W):
                oi[j] = _byte(np.float32(D[j]) * w + eps)
            continue
        y = Y[(m + gr) % nt]
        for j in range(D.shape[0]):
            y[j] = np.float32(D[j])
        if m >= gr:  # output row m − gr: its disk rows are in Y
            _gauss_row(Y, T, o[m - gr], m - gr, gv, g)


@njit(cache=True, nogil=True)
def disk_uint8(x, offs, hidx, hs, gv, g, r, acc, out):  # pragma: no cover — compiled
    """``hendrycks.defocus_blur``'s runs path on uint8 planes (x, out: P×H×W): ``offs`` the disk's column offsets
    (= its row offsets, r the largest) and ``hs[hidx[c]]`` the half-height of column ``offs[c]``, padded to a
    multiple of 4 with ``hidx`` = len(hs) (a row of zeros); ``gv`` / ``g`` the Gaussian's taps (float32) with /
    without 1 / the disk's area; ``acc`` (one value) the integer type of the sums."""
    H, W = x.shape[1], x.shape[2]
    nt = gv.shape[0]
    R = r + nt // 2
    Wp, Wo = W + 2 * R, W + nt - 1
    xp = np.empty((H, Wp), dtype=acc.dtype)
    V = np.empty((hs.shape[0] + 1, Wp), dtype=acc.dtype)
    D = np.empty(Wo, dtype=acc.dtype)
    Y = np.empty((nt, Wo), dtype=np.float32)
    T = np.empty(Wo, dtype=np.float32)
    for p in range(x.shape[0]):
        _disk_plane(x[p], out[p], xp, V, D, Y, T, offs, hidx, hs, gv, g, r)


# --------------------------------------------------------------------------- JPEG's pixel layouts
# libjpeg takes and gives interleaved pixels; the batches are planar. Each pixel as one little-endian 32-bit RGBX
# word (channel k in bits 8k..8k+7) makes both conversions loops LLVM vectorises (measured at 224 px: ≈ 8 µs
# each way per image, against ≈ 30 µs for Pillow's ``Image.merge`` and ≈ 16 µs for numpy's three casts).
@njit(cache=True, nogil=True)
def rgbx_words(p0, p1, p2, words):  # pragma: no cover — compiled
    """``words[j]`` = the RGBX word of pixel j of the uint8 planes (X = 255)."""
    for j in range(words.shape[0]):
        words[j] = (
            np.uint32(p0[j])
            | (np.uint32(p1[j]) << np.uint32(8))
            | (np.uint32(p2[j]) << np.uint32(16))
            | np.uint32(0xFF000000)
        )


@njit(cache=True, nogil=True)
def rgb_planes(words, o0, o1, o2):  # pragma: no cover — compiled
    """The three uint8 planes of RGBX words (the inverse of :func:`rgbx_words`, X dropped)."""
    for j in range(words.shape[0]):
        v = words[j]
        o0[j] = np.uint8(v & np.uint32(255))
        o1[j] = np.uint8((v >> np.uint32(8)) & np.uint32(255))
        o2[j] = np.uint8((v >> np.uint32(16)) & np.uint32(255))
