"""The numba loops behind :mod:`.kernels` (imported, and so compiled or loaded from numba's cache, on first
use only). Each works one image at a time: the image's SplitMix64 words into ``wbuf`` (a loop that
vectorises), then one pass over its values. Integer arithmetic, and float32 operations exactly as numpy's
passes order them (numba's default: no fast-math, no FMA contraction)."""

from __future__ import annotations

import numpy as np
from numba import njit

from .ops import _GAMMA, _M1, _M2


@njit(cache=True, nogil=True)
def _mix_words(key, ctr0, wbuf):  # pragma: no cover — compiled
    """``wbuf[w]`` = SplitMix64 word ``ctr0 + w + 1`` of the stream ``key`` (``ops.BatchRNG.words``)."""
    for w in range(wbuf.shape[0]):
        z = key + (ctr0 + np.uint64(w + 1)) * _GAMMA
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
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
