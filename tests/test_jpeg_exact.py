"""The batched JPEG round trip (compressbench.evaluate.corruptions.jpeg) against Pillow's own
(``Image.save(format="JPEG", quality=q)`` + ``Image.open``, libjpeg-turbo), bit for bit, plus its
building blocks against literal ports of the libjpeg-turbo C code."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from compressbench.evaluate.corruptions import jpeg

QUALITIES = (7, 10, 15, 18, 25, 40, 50, 58, 65, 80, 95)  # the corruption constants, plus extremes
SIZES = ((32, 32), (28, 28), (17, 23), (8, 8), (1, 1))


def _pillow(x: np.ndarray, quality: int) -> np.ndarray:
    """Pillow's round trip of each image of a uint8 N×C×H×W batch."""
    out = []
    for img in x:
        buf = io.BytesIO()
        Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)).save(buf, "JPEG", quality=quality)
        buf.seek(0)
        dec = np.asarray(Image.open(buf))
        out.append(dec[None] if dec.ndim == 2 else dec.transpose(2, 0, 1))
    return np.stack(out)


def _images(seed: int, c: int, h: int, w: int) -> np.ndarray:
    """Random, smooth and extreme test images (uint8, 6×c×h×w)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    ch = np.arange(c)[:, None, None]
    smooth = 127.5 + 120 * np.sin(xx / 3.7 + ch) * np.cos(yy / 5.3 - ch)
    ramp = (xx * 7 + yy * 5 + 40 * ch) % 256
    x = np.stack(
        [
            rng.integers(0, 256, (c, h, w)),  # noise
            smooth,  # smooth
            np.clip(smooth + rng.normal(0, 12, (c, h, w)), 0, 255),  # smooth + noise
            ramp,  # gradients with wrap-around edges
            rng.integers(0, 2, (c, h, w)) * 255,  # extreme values
            np.broadcast_to(((xx + yy) % 2) * 255, (c, h, w)),  # checkerboard
        ]
    )
    return np.clip(x, 0, 255).astype(np.uint8)


def _check(x: np.ndarray, quality: int) -> None:
    ours = jpeg.jpeg_roundtrip(torch.from_numpy(x), quality).numpy()
    ref = _pillow(x, quality)
    diff = np.abs(ours.astype(np.int16) - ref)
    assert diff.max() == 0, (
        f"quality {quality}, {x.shape}: {int((diff > 0).sum())} values differ, by up to {int(diff.max())}"
    )


# ---------------------------------------------------------------------------------------------------
# the whole round trip


@pytest.mark.parametrize("c", [3, 1], ids=["RGB", "L"])
@pytest.mark.parametrize("size", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
def test_roundtrip_bit_exact(c, size):
    x = _images(100 * size[0] + size[1] + c, c, *size)
    for q in QUALITIES:
        _check(x, q)


@pytest.mark.parametrize("c", [3, 1], ids=["RGB", "L"])
@pytest.mark.parametrize("size", [(2, 9), (9, 4), (16, 3), (5, 6), (40, 33), (3, 1)])
def test_roundtrip_bit_exact_more_sizes(c, size):
    """Odd sizes, one-row images, and widths whose chroma is box-upsampled (downsampled width ≤ 2)."""
    x = _images(7 * size[0] + size[1], c, *size)
    for q in (1, 7, 50, 95, 100):
        _check(x, q)


def test_saturating_range_limit():
    """A block whose IDCT output is −564 at quality 1: libjpeg's C IDCT would wrap it to 255
    (``& RANGE_MASK``); the SIMD IDCT of Pillow's libjpeg-turbo saturates to 0, and so do we."""
    bits = 0x1643D1058310BD72
    block = (np.array([(bits >> k) & 1 for k in range(64)], dtype=np.uint8) * 255).reshape(1, 1, 8, 8)
    assert _idct_reference(block[0, 0].astype(np.int64) - 128, 1).min() < -512  # the case is reached
    _check(block, 1)


def test_float64_path_and_chunks(monkeypatch):
    """The float64 path (used off the CPU) and a batch split into chunks give the same result."""
    x = torch.from_numpy(np.concatenate([_images(3, 3, 17, 23), _images(4, 3, 17, 23)]))
    ref = jpeg.jpeg_roundtrip(x, 40)
    monkeypatch.setattr(jpeg, "_lo_dtype", lambda device: torch.float64)
    monkeypatch.setattr(jpeg, "_CHUNK_PIXELS", 3 * 24 * 32)  # 3 images per chunk: 3 + 3 + 3 + 3
    assert torch.equal(jpeg.jpeg_roundtrip(x, 40), ref)
    assert torch.equal(jpeg.jpeg_roundtrip(x[1::2], 40), ref[1::2])  # non-contiguous input


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    x = torch.from_numpy(_images(5, 3, 28, 28))
    assert torch.equal(jpeg.jpeg_roundtrip(x.cuda(), 18).cpu(), jpeg.jpeg_roundtrip(x, 18))


def test_bad_input():
    with pytest.raises(ValueError):
        jpeg.jpeg_roundtrip(torch.zeros(2, 3, 8, 8), 50)  # float
    with pytest.raises(ValueError):
        jpeg.jpeg_roundtrip(torch.zeros(2, 2, 8, 8, dtype=torch.uint8), 50)  # 2 channels
    assert jpeg.jpeg_roundtrip(torch.zeros(0, 3, 8, 8, dtype=torch.uint8), 50).shape == (0, 3, 8, 8)


# ---------------------------------------------------------------------------------------------------
# the building blocks


@pytest.mark.parametrize("quality", QUALITIES + (1, 100))
def test_quant_tables_match_pillow(quality):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    tables = Image.open(buf).quantization  # natural order
    assert np.array_equal(np.array(tables[0]).reshape(8, 8), jpeg.quant_table(quality, False))
    assert np.array_equal(np.array(tables[1]).reshape(8, 8), jpeg.quant_table(quality, True))


def test_reciprocal_division_is_rounded_division():
    """jcdctmgr.c compute_reciprocal + quantize (16-bit DCTELEM, as with SIMD) = rounded division,
    for every divisor 8·qval (qval 1..255) and every |coefficient| < 2^15."""
    t = np.arange(1 << 15, dtype=np.int64)
    for qval in range(1, 256):
        d = 8 * qval
        b = d.bit_length() - 1  # flss(divisor) - 1
        r = 16 + b
        fq, fr = divmod(1 << r, d)
        c = d // 2
        if fr == 0:
            fq, r = fq >> 1, r - 1
        elif fr <= d // 2:
            c += 1
        else:
            fq += 1
        assert np.array_equal(((t + c) * fq) >> r, (t + d // 2) // d), qval


def _descale(x, n):
    return (x + (1 << (n - 1))) >> n


def _fdct_reference(block: np.ndarray) -> np.ndarray:
    """jfdctint.c jpeg_fdct_islow, literally, on int64 (…, 8, 8) blocks of samples − 128."""
    c = {k: jpeg._fix(k, 13) for k in jpeg._C}
    d = block.astype(np.int64).copy()
    for axis, (shift, left) in enumerate([(11, True), (15, False)]):  # rows, then columns
        x = np.moveaxis(d, -1 if axis == 0 else -2, 0)
        tmp0, tmp7 = x[0] + x[7], x[0] - x[7]
        tmp1, tmp6 = x[1] + x[6], x[1] - x[6]
        tmp2, tmp5 = x[2] + x[5], x[2] - x[5]
        tmp3, tmp4 = x[3] + x[4], x[3] - x[4]
        tmp10, tmp13, tmp11, tmp12 = tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2
        out = np.empty_like(x)
        out[0] = (tmp10 + tmp11) << 2 if left else _descale(tmp10 + tmp11, 2)  # PASS1_BITS
        out[4] = (tmp10 - tmp11) << 2 if left else _descale(tmp10 - tmp11, 2)
        z1 = (tmp12 + tmp13) * c[0.541196100]
        out[2] = _descale(z1 + tmp13 * c[0.765366865], shift)
        out[6] = _descale(z1 + tmp12 * -c[1.847759065], shift)
        z1, z2, z3, z4 = tmp4 + tmp7, tmp5 + tmp6, tmp4 + tmp6, tmp5 + tmp7
        z5 = (z3 + z4) * c[1.175875602]
        tmp4, tmp5, tmp6, tmp7 = (
            tmp4 * c[0.298631336],
            tmp5 * c[2.053119869],
            tmp6 * c[3.072711026],
            tmp7 * c[1.501321110],
        )
        z1, z2, z3, z4 = z1 * -c[0.899976223], z2 * -c[2.562915447], z3 * -c[1.961570560], z4 * -c[0.390180644]
        z3, z4 = z3 + z5, z4 + z5
        out[7], out[5] = _descale(tmp4 + z1 + z3, shift), _descale(tmp5 + z2 + z4, shift)
        out[3], out[1] = _descale(tmp6 + z2 + z3, shift), _descale(tmp7 + z1 + z4, shift)
        d = np.moveaxis(out, 0, -1 if axis == 0 else -2)
    return d


def _idct_pass(x: np.ndarray, shift: int) -> np.ndarray:
    """One jidctint.c pass along axis 0 (with the all-AC-zero shortcut), before range limiting."""
    c = {k: jpeg._fix(k, 13) for k in jpeg._C}
    z2, z3 = x[2], x[6]
    z1 = (z2 + z3) * c[0.541196100]
    tmp2, tmp3 = z1 + z3 * -c[1.847759065], z1 + z2 * c[0.765366865]
    tmp0, tmp1 = (x[0] + x[4]) << 13, (x[0] - x[4]) << 13
    tmp10, tmp13, tmp11, tmp12 = tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2
    t0, t1, t2, t3 = x[7], x[5], x[3], x[1]
    z1, z2, z3, z4 = t0 + t3, t1 + t2, t0 + t2, t1 + t3
    z5 = (z3 + z4) * c[1.175875602]
    t0, t1, t2, t3 = t0 * c[0.298631336], t1 * c[2.053119869], t2 * c[3.072711026], t3 * c[1.501321110]
    z1, z2, z3, z4 = z1 * -c[0.899976223], z2 * -c[2.562915447], z3 * -c[1.961570560], z4 * -c[0.390180644]
    z3, z4 = z3 + z5, z4 + z5
    t0, t1, t2, t3 = t0 + z1 + z3, t1 + z2 + z4, t2 + z2 + z3, t3 + z1 + z4
    out = np.stack([tmp10 + t3, tmp11 + t2, tmp12 + t1, tmp13 + t0, tmp13 - t0, tmp12 - t1, tmp11 - t2, tmp10 - t3])
    out = _descale(out, shift)
    ac_zero = (x[1:] == 0).all(0)
    dc = x[0] << 2 if shift == 11 else _descale(x[0], 5)  # the shortcuts of both passes
    return np.where(ac_zero, dc, out)


def _idct_reference(samples: np.ndarray, quality: int) -> np.ndarray:
    """FDCT, quantization (rounded division), dequantization and IDCT of one 8×8 block of samples −
    128, as libjpeg computes them, before the range limit."""
    q = jpeg.quant_table(quality, False)
    t = _fdct_reference(samples)
    coef = np.sign(t) * ((np.abs(t) + 4 * q) // (8 * q)) * q
    ws = _idct_pass(coef, 11)  # columns: along axis 0 of [u, v]
    return _idct_pass(ws.T, 18).T  # rows


def test_dct_constants_and_matrices():
    assert [jpeg._fix(k, 13) for k in sorted(jpeg._C)] == [
        2446,
        3196,
        4433,
        6270,
        7373,
        9633,
        12299,
        15137,
        16069,
        16819,
        20995,
        25172,
    ]
    m = jpeg.dct_matrices()
    rng = np.random.default_rng(0)
    blocks = np.concatenate([rng.integers(-128, 128, (2000, 8, 8)), rng.choice([-128, 127], (2000, 8, 8))])
    s1, s2 = jpeg.FDCT_SHIFTS
    rows = _descale(np.einsum("vj,bij->biv", m["fdct"], blocks), s1)
    assert np.array_equal(_descale(np.einsum("ui,biv->buv", m["fdct"], rows), s2), _fdct_reference(blocks))
    coef = rng.integers(-1024, 1024, (4000, 8, 8)) * (rng.random((4000, 8, 8)) < 0.3)  # many zero AC
    r1, r2 = jpeg.IDCT_SHIFTS
    cols = _descale(np.einsum("iu,buv->biv", m["idct"], coef), r1)
    ours = _descale(np.einsum("jv,biv->bij", m["idct"], cols), r2)
    ws = _idct_pass(coef.transpose(1, 2, 0), 11)  # [u, v, b] -> [i, v, b]
    ref = _idct_pass(ws.transpose(1, 0, 2), 18).transpose(2, 1, 0)  # [v, i, b] -> [j, i, b] -> [b, i, j]
    assert np.array_equal(ours, ref)


@pytest.mark.parametrize("quality", (1, 10, 50, 95, 100))
def test_quantize_matches_integer_arithmetic(quality):
    """_Plan.quantize on every coefficient t in (−2^15, 2^15), at both ends of its DESCALE range
    (v = 2^15·t − 2^14 and 2^15·t + 2^14 − 1), for all 64 positions of both tables."""
    p = jpeg._Plan(3, 8, 8, quality, torch.device("cpu"), torch.float32)
    d = 8 * np.stack([jpeg.quant_table(quality, False), jpeg.quant_table(quality, True)])  # [R, u, v]
    t_all = np.arange(-(1 << 15) + 1, 1 << 15, dtype=np.int64)
    for t in np.array_split(t_all, 8):
        v = np.concatenate([t * 2**15 - 2**14, t * 2**15 + 2**14 - 1])
        w = torch.from_numpy(v.astype(np.float64) * 2.0**12).view(1, 1, 1, 1, -1).expand(8, 2, 1, 8, -1)
        out = torch.empty(w.shape, dtype=torch.float64)
        got = p.quantize(w, out)[:, :, 0].numpy()  # [u, R, v, m]
        tt = np.concatenate([t, t])
        dd = d.transpose(1, 0, 2)[..., None]  # [u, R, v, 1]
        ref = np.sign(tt) * ((np.abs(tt) + dd // 2) // dd) * (dd // 8)
        assert np.array_equal(got, ref)
