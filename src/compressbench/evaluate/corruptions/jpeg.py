"""Batched, bit-exact emulation of a libjpeg-turbo JPEG encode + decode round trip in torch.

What it reproduces: ``np.asarray(PIL.Image.open(buf))`` after
``PIL.Image.fromarray(a).save(buf, "JPEG", quality=q)`` with Pillow's defaults on libjpeg-turbo
(Pillow 13 bundles 3.x; Pillow's ``JpegEncode.c`` calls ``jpeg_set_defaults`` and
``jpeg_set_quality(q, force_baseline=TRUE)`` and nothing else that is lossy): baseline sequential,
4:2:0 chroma subsampling for RGB (a single Y component for mode "L"), the JDCT_ISLOW integer DCT
both ways, no smoothing, fancy (triangle) upsampling on decode. Entropy coding is lossless and is
skipped; every lossy step is done with libjpeg's own integer arithmetic, so the result is equal bit
for bit (checked against Pillow on random, smooth and extreme images of every size up to 40×40 and
larger ones, qualities 1–100; see tests/test_jpeg_exact.py). One module (~450 lines, much of it the
standard's tables) because it is one algorithm whose steps must match libjpeg's exactly.

Why our own: libjpeg codes one image at a time, on the CPU only; this runs a whole uint8 N×C×H×W
batch as tensor ops on any device, with the same result. On one CPU thread, 32×32 RGB at batch 128:
≈ 18–23 µs per image, against ≈ 26 µs for OpenCV's per-image imencode/imdecode and ≈ 115 µs for
Pillow's (gray: ≈ 6–11 against ≈ 14 and ≈ 95) on the machine it was written on. The time goes to
memory traffic (some fifty whole-batch passes, half of the total), the four DCT matmuls (a quarter;
three of them in float64), the final uint8 transposition and a fixed ≈ 250 µs of per-op overhead.

The steps, and where every constant comes from (libjpeg-turbo sources):

1. ``jccolor.c`` ``rgb_ycc_start``/``rgb_ycc_convert``: Y/Cb/Cr = (Σ FIX(k)·x + offset) >> 16 with
   SCALEBITS = 16, FIX(x) = (INT32)(x·2^16 + 0.5), offset ONE_HALF for Y and 128·2^16 + ONE_HALF − 1
   for Cb, Cr (the "0.5 − epsilon" fudge).
2. Edge expansion (``jcprepct.c`` ``pre_process_data``, ``jcsample.c`` ``expand_right_edge``): the
   colour-converted rows are padded to an even count (max v_samp_factor) and the columns to whole
   blocks of every component by repeating the last row/column, *before* downsampling; afterwards
   the downsampled planes are padded to a whole iMCU by repeating their last *downsampled* row. Blocks
   outside ``width_in_blocks × height_in_blocks`` are dummy blocks (``jccoefct.c``) never decoded.
3. ``jcsample.c`` ``h2v2_downsample``: (a + b + c + d + bias) >> 2, bias 1, 2, 1, 2, ... along a row.
4. ``jfdctint.c`` ``jpeg_fdct_islow`` on samples − 128 (``jcdctmgr.c`` ``convsamp``): per pass an
   exact integer linear map then DESCALE (x + 2^(s−1)) >> s, s = 11 (rows), 15 (columns); the outputs
   libjpeg left-shifts instead are the same map at that shift. The 8×8 integer matrices are derived
   here from the butterflies (``_fdct_1d``), CONST_BITS = 13, PASS1_BITS = 2, FIX_x = x·2^13 rounded.
5. ``jcparam.c``: ``std_luminance_quant_tbl``/``std_chrominance_quant_tbl`` (ITU-T T.81 Annex K,
   natural order), ``jpeg_quality_scaling`` (5000/q below 50, else 200 − 2q) and
   ``jpeg_add_quant_table`` ((t·scale + 50) / 100 clamped to 1..255 with force_baseline).
   ``jcdctmgr.c`` divides by d = 8·qval via ``compute_reciprocal`` (reciprocal, correction, shift);
   that equals sign(t)·((|t| + d/2) // d) for every |t| < 2^15 and every d used (checked exhaustively
   in the tests), which is what we compute.
6. ``jddctmgr.c``/``jidctint.c`` ``jpeg_idct_islow`` on coefficient·qval: pass 1 (columns) DESCALE
   by 11, pass 2 (rows) by 18, + 128 and range limiting (``jdmaster.c``
   ``prepare_range_limit_table``). The C code wraps results beyond ±512 (``& RANGE_MASK``, reachable
   only by adversarial blocks at very low quality); the x86 SIMD IDCT that Pillow's libjpeg-turbo runs
   saturates instead (packsswb), and so do we. All other SIMD kernels are bit-exact with the C code.
7. ``jdsample.c`` ``h2v2_fancy_upsample``: column sums 3·near + far row (``jdmainct.c`` supplies a
   copy of the first/last row above/below the image), then (3·this + previous + 8) >> 4 for the even
   and (3·this + next + 7) >> 4 for the odd output column, the edge columns using the edge sample as
   neighbour. ``jinit_upsampler`` uses box replication (``h2v2_upsample``) instead when the
   downsampled width is ≤ 2.
8. ``jdcolor.c`` ``build_ycc_rgb_table``/``ycc_rgb_convert``: R = Y + ((FIX(1.402)·Cr' + ONE_HALF)
   >> 16), G = Y + ((−FIX(0.34414)·Cb' − FIX(0.71414)·Cr' + ONE_HALF) >> 16), B = Y + ((FIX(1.772)·Cb'
   + ONE_HALF) >> 16) (Cb' = Cb − 128, Cr' = Cr − 128), range-limited to 0..255.

How it is computed: every step is "integer linear map, then floor" (or a clamp), so each is a matmul
or a few whole-batch elementwise ops followed by one rounding op. Floating point is exact because
every operand and every partial sum is an integer times a power of two that fits the mantissa:
float32 (24 bits) for the colour conversions, the resampling and FDCT pass 1 (|partial sums| < 2^24,
asserted), float64 (53 bits) for FDCT pass 2, quantization and the IDCT (at most 42 significant bits
there). Rounding ops are only used where no tie can occur, with the offsets that make them equal
libjpeg's floors (see ``_Plan``). On devices other than the CPU, or when float32 matmuls may run at
reduced precision, float64 is used throughout. See ``_Run`` for the memory layout (the batch is the
innermost dimension, so that each DCT pass is one matmul by an 8×8 matrix).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict

import numpy as np
import torch

__all__ = ["jpeg_roundtrip", "quant_table", "dct_matrices"]

# jcparam.c: Annex K (ITU-T T.81) sample quantization tables, natural (row-major) order.
_STD_LUMINANCE = np.array(
    [
        16,
        11,
        10,
        16,
        24,
        40,
        51,
        61,
        12,
        12,
        14,
        19,
        26,
        58,
        60,
        55,
        14,
        13,
        16,
        24,
        40,
        57,
        69,
        56,
        14,
        17,
        22,
        29,
        51,
        87,
        80,
        62,
        18,
        22,
        37,
        56,
        68,
        109,
        103,
        77,
        24,
        35,
        55,
        64,
        81,
        104,
        113,
        92,
        49,
        64,
        78,
        87,
        103,
        121,
        120,
        101,
        72,
        92,
        95,
        98,
        112,
        100,
        103,
        99,
    ],
    dtype=np.int64,
).reshape(8, 8)
_STD_CHROMINANCE = np.array(
    [
        17,
        18,
        24,
        47,
        99,
        99,
        99,
        99,
        18,
        21,
        26,
        66,
        99,
        99,
        99,
        99,
        24,
        26,
        56,
        99,
        99,
        99,
        99,
        99,
        47,
        66,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
        99,
    ],
    dtype=np.int64,
).reshape(8, 8)

# jccolor.c / jdcolor.c: SCALEBITS = 16, FIX(x) = (INT32)(x·2^16 + 0.5), ONE_HALF = 2^15.
_SCALEBITS = 16
_ONE_HALF = 1 << (_SCALEBITS - 1)


def _fix(x: float, bits: int) -> int:
    return int(x * (1 << bits) + 0.5)


# jccolor.c rgb_ycc_start: rows Y, Cb, Cr; columns R, G, B; offsets added before ">> 16".
_RGB_YCC = np.array(
    [
        [_fix(0.29900, 16), _fix(0.58700, 16), _fix(0.11400, 16)],
        [-_fix(0.16874, 16), -_fix(0.33126, 16), _fix(0.50000, 16)],
        [_fix(0.50000, 16), -_fix(0.41869, 16), -_fix(0.08131, 16)],
    ],
    dtype=np.int64,
)
_RGB_YCC_OFFSET = np.array([_ONE_HALF, (128 << _SCALEBITS) + _ONE_HALF - 1, (128 << _SCALEBITS) + _ONE_HALF - 1])
# jdcolor.c build_ycc_rgb_table: rows R, G, B; columns Cb − 128, Cr − 128 (Y is added as is).
_YCC_RGB = np.array(
    [[0, _fix(1.40200, 16)], [-_fix(0.34414, 16), -_fix(0.71414, 16)], [_fix(1.77200, 16), 0]], dtype=np.int64
)

# jfdctint.c / jidctint.c: CONST_BITS = 13, PASS1_BITS = 2, FIX_0_298631336 = FIX(0.298631336) = 2446 ...
_CONST_BITS, _PASS1_BITS = 13, 2
_C = {
    x: _fix(x, _CONST_BITS)
    for x in (
        0.298631336,
        0.390180644,
        0.541196100,
        0.765366865,
        0.899976223,
        1.175875602,
        1.501321110,
        1.847759065,
        1.961570560,
        2.053119869,
        2.562915447,
        3.072711026,
    )
}
# DESCALE shifts of the four 1-D passes (outputs that libjpeg left-shifts instead are scaled to match)
FDCT_SHIFTS = (_CONST_BITS - _PASS1_BITS, _CONST_BITS + _PASS1_BITS)  # 11 (rows), 15 (columns)
IDCT_SHIFTS = (_CONST_BITS - _PASS1_BITS, _CONST_BITS + _PASS1_BITS + 3)  # 11 (columns), 18 (rows)


def quant_table(quality: int, chroma: bool) -> np.ndarray:
    """The 8×8 quantization table (natural order) of ``jpeg_set_quality(quality, TRUE)``."""
    q = min(max(int(quality), 1), 100)
    scale = 5000 // q if q < 50 else 200 - 2 * q  # jpeg_quality_scaling
    base = _STD_CHROMINANCE if chroma else _STD_LUMINANCE
    return np.clip((base * scale + 50) // 100, 1, 255)  # jpeg_add_quant_table with force_baseline


def _fdct_1d(d: list) -> list:
    """One 1-D pass of ``jpeg_fdct_islow`` (both passes share the butterflies) before its final
    DESCALE: output = DESCALE(returned, FDCT_SHIFTS[pass]). Linear in ``d``."""
    c = _C
    tmp0, tmp7 = d[0] + d[7], d[0] - d[7]
    tmp1, tmp6 = d[1] + d[6], d[1] - d[6]
    tmp2, tmp5 = d[2] + d[5], d[2] - d[5]
    tmp3, tmp4 = d[3] + d[4], d[3] - d[4]
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
    out = [None] * 8
    # pass 1: LEFT_SHIFT(x, PASS1_BITS) = DESCALE(x << CONST_BITS, 11); pass 2: DESCALE(x, PASS1_BITS)
    # = DESCALE(x << CONST_BITS, 15)
    out[0] = (tmp10 + tmp11) * (1 << _CONST_BITS)
    out[4] = (tmp10 - tmp11) * (1 << _CONST_BITS)
    z1 = (tmp12 + tmp13) * c[0.541196100]
    out[2] = z1 + tmp13 * c[0.765366865]
    out[6] = z1 - tmp12 * c[1.847759065]
    z1, z2, z3, z4 = tmp4 + tmp7, tmp5 + tmp6, tmp4 + tmp6, tmp5 + tmp7
    z5 = (z3 + z4) * c[1.175875602]
    tmp4, tmp5 = tmp4 * c[0.298631336], tmp5 * c[2.053119869]
    tmp6, tmp7 = tmp6 * c[3.072711026], tmp7 * c[1.501321110]
    z1, z2 = -z1 * c[0.899976223], -z2 * c[2.562915447]
    z3, z4 = -z3 * c[1.961570560] + z5, -z4 * c[0.390180644] + z5
    out[7], out[5], out[3], out[1] = tmp4 + z1 + z3, tmp5 + z2 + z4, tmp6 + z2 + z3, tmp7 + z1 + z4
    return out


def _idct_1d(d: list) -> list:
    """One 1-D pass of ``jpeg_idct_islow`` before its final DESCALE (shift IDCT_SHIFTS[pass]). Linear
    in ``d``; the all-AC-zero shortcuts of the C code give the same values (DC·2^13 at that shift)."""
    c = _C
    z1 = (d[2] + d[6]) * c[0.541196100]
    tmp2, tmp3 = z1 - d[6] * c[1.847759065], z1 + d[2] * c[0.765366865]
    tmp0, tmp1 = (d[0] + d[4]) * (1 << _CONST_BITS), (d[0] - d[4]) * (1 << _CONST_BITS)
    tmp10, tmp13, tmp11, tmp12 = tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2
    t0, t1, t2, t3 = d[7], d[5], d[3], d[1]
    z1, z2, z3, z4 = t0 + t3, t1 + t2, t0 + t2, t1 + t3
    z5 = (z3 + z4) * c[1.175875602]
    t0, t1, t2, t3 = t0 * c[0.298631336], t1 * c[2.053119869], t2 * c[3.072711026], t3 * c[1.501321110]
    z1, z2 = -z1 * c[0.899976223], -z2 * c[2.562915447]
    z3, z4 = -z3 * c[1.961570560] + z5, -z4 * c[0.390180644] + z5
    t0, t1, t2, t3 = t0 + z1 + z3, t1 + z2 + z4, t2 + z2 + z3, t3 + z1 + z4
    return [tmp10 + t3, tmp11 + t2, tmp12 + t1, tmp13 + t0, tmp13 - t0, tmp12 - t1, tmp11 - t2, tmp10 - t3]


@functools.cache
def dct_matrices() -> dict[str, np.ndarray]:
    """Exact integer 8×8 matrices of the islow passes, out = DESCALE(M @ in, shift): ``fdct`` (both
    FDCT passes, on samples − 128), ``idct`` (both IDCT passes, on coefficient·qval)."""
    eye = list(np.eye(8, dtype=np.int64))
    return {"fdct": np.stack(_fdct_1d(eye)), "idct": np.stack(_idct_1d(eye))}  # row k: output k


def _ceil_to(n: int, m: int) -> int:
    return -(-n // m) * m


class _Plan:
    """Sizes and constants of one (channels, size, quality, device) configuration."""

    def __init__(self, channels: int, h: int, w: int, quality: int, device: torch.device, lo: torch.dtype):
        def t(a, dtype=lo):
            return torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype, device=device)

        f64 = torch.float64
        self.device, self.lo, self.rgb, self.h, self.w = device, lo, channels == 3, h, w
        fdct, idct = dct_matrices()["fdct"], dct_matrices()["idct"]
        # float32 is exact for FDCT pass 1 iff every partial sum stays below 2^24 (samples 0..255)
        assert lo == f64 or np.abs(fdct).sum(1).max() * 255 < 2**24
        s1, s2 = FDCT_SHIFTS
        r1, r2 = IDCT_SHIFTS
        self.fdct1 = t(fdct / 2**s1)
        self.fdct2 = t(fdct * 2.0**12, f64)  # w = v·2^12 for the integer pass-2 sum v: see quantize
        # IDCT pass 1 has a 9th input, the constant row of _Run.a (self.dc), with the weight of u = 0
        idct1 = idct / 2**r1
        self.idct1, self.idct2 = t(np.hstack([idct1, idct1[:, :1]]), f64), t(idct / 2**r2, f64)
        self.hy = _ceil_to(h, 8)  # rows of whole luma blocks
        self.wp = _ceil_to(w, 16 if self.rgb else 8)  # columns of whole blocks of every component
        self.nby, self.nbx = self.hy // 8, self.wp // 8
        tables = [quant_table(quality, False)] * self.nby
        if self.rgb:
            self.row_b = t(np.full((8, 1), 0.5))  # the DESCALE's rounding
            self.he = _ceil_to(h, 2)  # chroma rows before downsampling (jcprepct.c pads to v_samp 2)
            self.hd, self.wd = self.he // 2, -(-w // 2)  # real downsampled size (jdiv_round_up)
            self.hc, self.wc = _ceil_to(h, 16) // 2, self.wp // 2  # downsampled, whole blocks
            tables += [quant_table(quality, True)] * (self.hc // 8)
            # jccolor.c, centred (− 128 for the FDCT): floor(offset/2^16 + Σ FIX(k)/2^16 · x)
            self.enc_k = (_RGB_YCC / 2**_SCALEBITS).tolist()
            self.enc_off = t(_RGB_YCC_OFFSET / 2**_SCALEBITS - 128)
            self.down_b = t(np.tile([1, 2], self.wc // 2) / 4)  # jcsample.c h2v2_downsample bias / 4
            self.half16 = t(1 / 32)  # see _Run._upsample
            self.dec_k = (_YCC_RGB / 2**_SCALEBITS).tolist()  # jdcolor.c, see _Run.__call__
        else:
            # uncentred samples: the − 128 only moves the DC output, by 128·2^16 / 2^11
            self.row_b = t(0.5 - 128 * fdct.sum(1, keepdims=True) / 2**s1)
        self.r = r = len(tables)  # block rows: luma, then chroma
        q = np.stack(tables).astype(np.float64).transpose(1, 0, 2).reshape(8, r, 1, 8, 1)  # [u, R, ., v, .]
        self.q, self.inv = t(q, f64), t(1 / (8 * q * 2.0 ** (s2 + 12)), f64)  # 1/(D·2^12), D = 2^15·8·qval
        self.clamp_lo, self.clamp_hi = -(2.0**14 - 0.5) * 2**12, (2.0**14 + 0.5) * 2**12
        # dc: added to the dequantized u = 0 coefficients (through IDCT pass 1's 9th input). Every
        # pass-1 output moves by 4× this (weight 2^13 / 2^11): by 2^-12 everywhere, so that round()
        # equals libjpeg's floor(x + 1/2) on these multiples of 2^-11, and in column v = 0 also by the
        # integer 32·shift, which moves every pass-2 output by 32·shift·2^13 / 2^18 = shift: the pass-2
        # DESCALE's 1/2, plus 128 for the luma (decoded uncentred); chroma stays centred.
        dc = np.full((r, 8), 2.0**-14)  # [R, v]
        dc[: self.nby, 0] += 8 * 128.5
        dc[self.nby :, 0] += 8 * 0.5
        self.dc = t(dc, f64)

    def quantize(self, w: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """FDCT pass-2 DESCALE, quantization and dequantization of w = v·2^12 (v: integer pass-2 sum),
        (8, R, ., 8, .) = [u, R, ., v, .]; writes Q·qval into ``out`` and returns it.

        libjpeg: t = floor((v + 2^14) / 2^15), then Q = sign(t)·floor((|t| + d/2) / d) (d = 8·qval, even).
        Nesting the floors (floor(floor(a)/n) = floor(a/n)) with v' = v + 1/2 gives, for either sign,
        Q = sign(v')·floor(z), z = (|v'| + 2^14 − 1/2 + D/2) / D, D = 2^15·d. z is a multiple of 1/D, so
        floor(z) = round(z − 1/2 + 1/(2D)) without ties: Q = round((v + 2^14 + 1/2) / D) for v > 0,
        round((v − 2^14 + 1/2) / D) for v < 0. The offset is clamp(w, lo, hi) / 2^12 where it matters:
        for |v| ≤ 2^14 the clamp returns w itself, but then |2v / D| ≤ 1/8 and Q = 0 either way. The
        float64 error of the product (≤ 2^-39) is far below the distance to a tie (≥ 2^-27)."""
        torch.clamp(w, self.clamp_lo, self.clamp_hi, out=out)
        return out.add_(w).mul_(self.inv).round_().mul_(self.q)


class _Run:
    """Scratch buffers and views for chunks of n images of one plan (kept between calls: fresh
    multi-megabyte tensors cost page faults); calling it does the round trip.

    Layout. The colour conversion works on channel-major planes. FDCT pass 1 reads them transposed
    (a transposed matmul operand costs little), and from then on the batch is the innermost
    dimension. All blocks of all components sit in one float64 array ``a`` (8, R, wp·N) = [sample
    row, block row, (block column, sample column, image)] -- R: luma block rows, then chroma block
    rows holding Cb and Cr side by side -- so that FDCT pass 2 and IDCT pass 1 are one 8×8 matmul
    each; the rounding after IDCT pass 1 writes its result with the sample column outermost, so that
    IDCT pass 2 is one too. The decoder then works on (rows, columns, N) planes, where the upsampling
    taps are slices of whole rows or of N-vectors, and the uint8 result is transposed back at the
    end (a blocked 2-D copy)."""

    def __init__(self, p: _Plan, n: int):
        self.p, self.n = p, n
        lo, f64 = p.lo, torch.float64
        h, w, hy, wp, nby, nbx = p.h, p.w, p.hy, p.wp, p.nby, p.nbx
        c = 3 if p.rgb else 1

        def buf(*shape, dtype=lo):
            return torch.empty(shape, dtype=dtype, device=p.device)

        self.src = buf(c, n, h, w)
        # FDCT pass 1 input, per image: the luma plane, then the downsampled chroma [row, plane, column];
        # read transposed as [(row, block column), column, image]
        k = p.r * 8 * wp
        self.enc = buf(n, k)
        self.enc_in = self.enc.view(n, k // 8, 8).permute(1, 2, 0)
        self.enc_luma = self.enc[:, : hy * wp].view(n, hy, wp)
        self.fdct1 = p.fdct1.expand(k // 8, 8, 8)
        self.rows = buf(k // 8, 8, n)  # FDCT pass 1 output [(block row, sample row, bx), v, image]
        self.rows_t = self.rows.view(p.r, 8, wp * n).transpose(0, 1)
        # all blocks: a = [sample row, block row, (block column, sample column, image)] + a 9th row
        self.a, self.b = buf(9, p.r, wp * n, dtype=f64), buf(8, p.r, wp * n, dtype=f64)
        self.a[8] = p.dc[:, None, :, None].expand(p.r, nbx, 8, n).reshape(p.r, wp * n)
        self.a8, self.a9, self.b8 = self.a[:8], self.a.view(9, -1), self.b.view(8, -1)
        self.a8_2d = self.a8.view(8, -1)
        self.a5, self.b5 = self.a8.view(8, p.r, nbx, 8, n), self.b.view(8, p.r, nbx, 8, n)  # [u, R, bx, v, n]
        self.a_vt = self.a8.view(8, 8, p.r, nbx, n).permute(1, 2, 3, 0, 4)  # a as [v, i, R, bx, n]
        # IDCT pass 2 output b = [j, i, R, bx, n] -> planes (rows, columns, N)
        b6 = self.b.view(8, 8, p.r, nbx, n)
        self.luma = buf(hy, wp, n)  # uncentred (+ 1/2 for RGB)
        self.luma_blocks = self.luma.view(nby, 8, nbx, 8, n)
        self.luma_pix = b6[:, :, :nby].permute(2, 1, 3, 0, 4)
        self.luma_cut = self.luma[:h, :w]
        self.res = buf(c, h, w, n, dtype=torch.int16)  # (float -> uint8 conversions are slow)
        self.res8 = buf(c * h * w, n, dtype=torch.uint8)
        if not p.rgb:
            return
        hd, wd, hc, wc, ncby = p.hd, p.wd, p.hc, p.wc, p.hc // 8
        chroma_full = buf(2, n, hy, wp)  # Cb, Cr before downsampling
        self.color_out = (self.enc_luma[:, :h, :w], chroma_full[0, :, :h, :w], chroma_full[1, :, :h, :w])
        self.chroma_full = chroma_full
        self.even_odd_rows = chroma_full[:, :, 0 : p.he : 2], chroma_full[:, :, 1 : p.he : 2]
        pairs = buf(n, hd, 2, wp)  # row pairs [image, row, plane, column]
        self.pairs_t = pairs.permute(2, 0, 1, 3)
        self.even_odd_cols = pairs[..., 0::2], pairs[..., 1::2]
        self.down = self.enc[:, hy * wp :].view(n, hc, 2, wc)
        self.down_real = self.down[:, :hd]
        # decoded chroma between copies of its edge rows (jdmainct.c provides them above and below)
        c = self.chroma = buf(hc + 2, 2, wc, n)
        self.chroma_blocks = c[1 : hc + 1].view(ncby, 8, 2, wc // 8, 8, n)
        self.chroma_real = c[1 : hd + 1]
        self.vert_in = c[None, : hd + 2, :, :wd]
        self.chroma_pix = b6[:, :, nby:].view(8, 8, ncby, 2, wc // 8, n).permute(2, 1, 3, 4, 0, 5)
        self.vert = buf(hd, 2, 2, wd + 2, n)  # [row, phase, plane, column (+ edge columns), image]
        self.vert_out = self.vert[None, ..., 1:-1, :]
        self.up = buf(2 * hd, 2, wd, 2, n)  # [row, plane, column, phase, image]
        self.up_odd = self.up[..., 1, :]
        self.rgb = buf(3, h, w, n)
        up = self.up.view(2 * hd, 2, 2 * wd, n)[:h, :, :w]
        self.cb, self.cr = up[:, 0], up[:, 1]

    def __call__(self, u8: torch.Tensor, out: torch.Tensor) -> None:
        p, n = self.p, self.n
        h, w = p.h, p.w

        # --- encoder: colour conversion (centred), edge expansion, downsampling, FDCT pass 1
        x = self.src
        x.copy_(u8.transpose(0, 1))
        if p.rgb:
            for k, dst in enumerate(self.color_out):  # partial sums: multiples of 2^-16 below 2^8, exact
                torch.add(p.enc_off[k], x[0], alpha=p.enc_k[k][0], out=dst)
                dst.add_(x[1], alpha=p.enc_k[k][1]).add_(x[2], alpha=p.enc_k[k][2]).floor_()
            _replicate_edges(self.chroma_full, h, w)
            # jcsample.c: floor((sum of 2×2 + bias) / 4); jcprepct.c: bottom rows replicated after
            torch.add(*self.even_odd_rows, out=self.pairs_t)
            real = torch.add(*self.even_odd_cols, out=self.down_real)
            torch.add(p.down_b, real, alpha=0.25, out=real).floor_()
            if p.hd < p.hc:
                self.down[:, p.hd :] = self.down[:, p.hd - 1 : p.hd]
        else:
            self.enc_luma[:, :h, :w] = x[0]
        _replicate_edges(self.enc_luma, h, w)
        torch.baddbmm(p.row_b, self.fdct1, self.enc_in, out=self.rows).floor_()
        self.a8.copy_(self.rows_t)

        # --- FDCT pass 2, quantization, IDCT pass 1, IDCT pass 2: one matmul each
        torch.mm(p.fdct2, self.a8_2d, out=self.b8)
        p.quantize(self.b5, self.a5)
        torch.mm(p.idct1, self.a9, out=self.b8)  # [i, R, (bx, v, n)]
        torch.round(self.b5, out=self.a_vt)
        torch.mm(p.idct2, self.a8_2d, out=self.b8).floor_()  # [j, i, R, bx, n]

        # --- decoder; range limiting saturates (see the module docstring)
        self.luma_blocks.copy_(self.luma_pix)
        luma = self.luma_cut.clamp_(0, 255)
        if not p.rgb:
            self.res[0] = luma
        else:
            luma.add_(0.5)  # the tables' ONE_HALF
            self._upsample()
            # Y + 1/2 + FIX(k)/2^16 · (Cb', Cr') (the Cb, Cr terms first for G): each partial sum is a
            # multiple of 2^-16 below 2^8 in magnitude, or the result is out of range anyway: exact.
            k, rgb = p.dec_k, self.rgb
            torch.add(luma, self.cr, alpha=k[0][1], out=rgb[0])
            torch.mul(self.cb, k[1][0], out=rgb[1]).add_(self.cr, alpha=k[1][1]).add_(luma)
            torch.add(luma, self.cb, alpha=k[2][0], out=rgb[2])
            self.res.copy_(rgb.clamp_(0, 255))  # the conversion truncates: clamp(floor(v), 0, 255)
        self.res8.copy_(self.res.view(-1, n))
        out.view(n, -1).copy_(self.res8.t())  # 2-D transpose (blocked copy)

    def _upsample(self) -> None:
        """h2v2_fancy_upsample (or box replication) of the decoded chroma into self.up: rows, then
        columns, on (chroma + 1/2) / 16, so that the sums come out / 16 and with the + 8 of the even
        output columns; the odd ones get + 7; floor."""
        hd, wd, n = self.p.hd, self.p.wd, self.n
        fancy = wd > 2  # jinit_upsampler: fancy only if downsampled_width > 2
        c, vert = self.chroma, self.vert
        self.chroma_blocks.copy_(self.chroma_pix)
        real = self.chroma_real.clamp_(-128, 127)
        torch.add(self.p.half16, real, alpha=1 / 16, out=real)
        c[0], c[hd + 1] = c[1], c[hd]
        _upsample(self.vert_in, self.vert_out, fancy)
        vert[..., 0, :], vert[..., -1, :] = vert[..., 1, :], vert[..., -2, :]  # edge columns
        _upsample(vert.view(4 * hd, wd + 2, n), self.up.view(4 * hd, wd, 2, n), fancy)
        self.up_odd.sub_(1 / 16)
        self.up.floor_()


def _replicate_edges(x: torch.Tensor, h: int, w: int) -> None:
    """Fill ``x[..., h:, :]`` and ``x[..., :, w:]`` with copies of row h−1 and column w−1 (in place)."""
    if w < x.shape[-1]:
        x[..., :h, w:] = x[..., :h, w - 1 : w]
    if h < x.shape[-2]:
        x[..., h:, :] = x[..., h - 1 : h, :]


def _upsample(x: torch.Tensor, out: torch.Tensor, fancy: bool) -> None:
    """One axis of ``h2v2_fancy_upsample`` (or of box replication): x (A, m + 2, ...) holds m samples
    along axis 1 between copies of the edge samples; out (A, m, 2, ...) gets 3·near + far for the two
    output samples of each input (far: the previous / the next sample), or 4·near (box)."""
    near = x[:, 1:-1]
    torch.add(x[:, :-2] if fancy else near, near, alpha=3, out=out[:, :, 0])
    torch.add(x[:, 2:] if fancy else near, near, alpha=3, out=out[:, :, 1])


@functools.lru_cache(maxsize=16)
def _plan(channels: int, h: int, w: int, quality: int, device: torch.device, lo: torch.dtype) -> _Plan:
    return _Plan(channels, h, w, quality, device, lo)


def _lo_dtype(device: torch.device) -> torch.dtype:
    """float32 where it is provably exact: CPU kernels at full float32 precision."""
    exact32 = device.type == "cpu" and torch.get_float32_matmul_precision() == "highest"
    return torch.float32 if exact32 else torch.float64


_LOCK = threading.Lock()  # guards _RUNS: scratch buffers are reused across calls
_RUNS: OrderedDict = OrderedDict()  # (plan, chunk size) -> _Run, the two most recent
_CHUNK_PIXELS = 1 << 18  # pixels per plane in one chunk (scratch ≈ 110 bytes per pixel)


def jpeg_roundtrip(u8: torch.Tensor, quality: int) -> torch.Tensor:
    """Pillow's default JPEG save at ``quality`` + load, for a uint8 N×C×H×W batch (C = 1: mode "L",
    C = 3: RGB), bit-exact; returns a new uint8 tensor of the same shape on the same device."""
    if u8.dtype != torch.uint8 or u8.dim() != 4 or u8.shape[1] not in (1, 3):
        raise ValueError(
            f"jpeg_roundtrip() needs a uint8 N×C×H×W tensor with C in (1, 3), got {tuple(u8.shape)} {u8.dtype}"
        )
    n, c, h, w = u8.shape
    out = torch.empty(u8.shape, dtype=torch.uint8, device=u8.device)
    if out.numel() == 0:
        return out
    p = _plan(c, h, w, int(quality), u8.device, _lo_dtype(u8.device))
    chunk = max(1, _CHUNK_PIXELS // (p.hy * p.wp))
    with torch.no_grad(), _LOCK:
        for i in range(0, n, chunk):
            part = u8[i : i + chunk]
            key = (p, len(part))
            run = _RUNS.pop(key, None) or _Run(p, len(part))
            _RUNS[key] = run
            while len(_RUNS) > 2:
                _RUNS.popitem(last=False)
            run(part, out[i : i + chunk])
    return out
