"""``digits-domains``: an offline two-domain digit benchmark — **printed** digits rendered from the
TrueType fonts that ship with matplotlib vs **handwritten** digits (scikit-learn's ``load_digits``,
1,797 images from 43 writers: the UCI optdigits test set).

Both domains go through the *same* acquisition pipeline, the one UCI used for the handwritten digits:
a 32 × 32 binary bitmap of the digit, divided into 4 × 4 blocks whose "on" pixels are counted, giving
an 8 × 8 image with values 0..16. So the two domains differ in what was drawn — type design vs human
handwriting — not in resolution or intensity scale (no synthetic tint). Both are then resized to
``size`` × ``size`` (bilinear, as the ``digits`` dataset does) as uint8, one channel.

The printed domain (seeded, ``seed``): every font of ``matplotlib/mpl-data/fonts/ttf`` that has the ten
digits — DejaVu Sans / Serif / Mono in regular, bold, oblique and bold-oblique, STIX General in four
styles, Computer Modern roman, bold, sans, typewriter, italic and math italic (old-style figures): 22
faces. Three are left out: ``LastResortHE`` draws placeholder boxes, ``cmex10`` and ``cmsy10`` map the
digit code points to math symbols. Each digit is rendered ``renders`` times at a font size drawn from
24, 32, 48 px with a stroke width of 0, 1 or 2 px, then given a small random affine jitter (rotation
±12°, shear ±0.25, width ×0.8–1.15), then size-normalised as the bitmaps UCI counted are (in every one
of the 1,797 the digit spans the full height, and the outer columns are nearly always empty): height
31–32 px, aspect ratio kept, width at most 28 px, centred ±1 px — thresholded at half intensity and
block-counted. With the default 8 renders: 22 × 10 × 8 = 1,760 images, 176 per class.

Built once (about two seconds) and cached as uint8 tensors in the cache dir, keyed by the options, the
font files (names and sha256), the Pillow / FreeType / matplotlib / numpy versions and a version number.
The same inputs and a digest of the images are the dataset's provenance (``fingerprint``, stored with
every run): FreeType rasterises the glyphs, so another FreeType or font file can draw other pixels.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch

from ..catalog.data import DigitsDomainsOptions  # noqa: F401 (torch-free: compressbench.catalog)
from ..registry import datasets
from .base import DataMeta, ImageSet
from .domains import DomainImages, cached_sets

log = logging.getLogger(__name__)

DOMAINS = ("printed", "handwritten")
EXCLUDED_FONTS = {
    "LastResortHE-Regular.ttf": "placeholder glyphs",
    "cmex10.ttf": "math extension symbols",
    "cmsy10.ttf": "math symbols at the digit code points",
}
FONT_SIZES = (24, 32, 48)
STROKES = (0, 1, 2)
_VERSION = 1  # bump when the rendering could change pixels (part of the cache key)


def font_files() -> list[Path]:
    """matplotlib's bundled TrueType fonts that map all ten digits to digit glyphs (sorted by name)."""
    import matplotlib
    from matplotlib.ft2font import FT2Font

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    out = []
    for f in sorted(folder.glob("*.ttf")):
        if f.name in EXCLUDED_FONTS:
            continue
        cmap = FT2Font(str(f)).get_charmap()
        if all(ord(c) in cmap for c in "0123456789"):
            out.append(f)
    return out


def block_count(bitmap: np.ndarray) -> np.ndarray:
    """32 × 32 binary bitmap(s) -> 8 × 8 counts of "on" pixels per 4 × 4 block (0..16), as UCI optdigits."""
    b = bitmap.reshape(*bitmap.shape[:-2], 8, 4, 8, 4)
    return b.sum(axis=(-3, -1))


def render_digit(font, digit: int, stroke: int, rng: np.random.Generator) -> np.ndarray:
    """One printed digit as a 32 × 32 binary bitmap (size-normalised, jittered; see the module docstring)."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (160, 160), 0)
    ImageDraw.Draw(canvas).text((40, 20), str(digit), font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    glyph = canvas.crop(canvas.getbbox())
    angle = math.radians(rng.uniform(-12, 12))
    shear, sx = rng.uniform(-0.25, 0.25), rng.uniform(0.8, 1.15)
    # inverse affine map output -> input about the glyph centre (PIL's AFFINE takes the inverse)
    a, b = math.cos(angle) * sx, -math.sin(angle) + shear
    c, d = math.sin(angle) * sx, math.cos(angle)
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    w, h = glyph.size
    big = max(w, h) * 2
    cx, cy = big / 2, big / 2
    gx, gy = w / 2, h / 2
    padded = Image.new("L", (big, big), 0)
    padded.paste(glyph, (int(cx - gx), int(cy - gy)))
    warped = padded.transform(
        (big, big),
        Image.AFFINE,
        (ia, ib, cx - ia * cx - ib * cy, ic, id_, cy - ic * cx - id_ * cy),
        resample=Image.BILINEAR,
    )
    warped = warped.crop(warped.getbbox())
    # size-normalised like the bitmaps UCI counted: the height fills the 32-px box (less 0-1 px), the
    # aspect ratio is kept (width at most 28 px), centred with a ±1 px horizontal offset
    w, h = warped.size
    nh = 32 - int(rng.integers(0, 2))
    nw = max(1, min(28, round(w * nh / h)))
    small = warped.resize((nw, nh), Image.BILINEAR)
    box = Image.new("L", (32, 32), 0)
    ox = (32 - nw) // 2 + int(rng.integers(-1, 2))
    box.paste(small, (min(max(ox, 0), 32 - nw), int(rng.integers(0, 32 - nh + 1))))
    return (np.asarray(box) >= 128).astype(np.uint8)


def printed_digits(renders: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(8 × 8 counts N×8×8 in 0..16, labels, font names): every usable font × digit × ``renders``."""
    from PIL import ImageFont

    rng = np.random.default_rng(seed)
    fonts = font_files()
    xs, ys = [], []
    for f in fonts:
        faces = {s: ImageFont.truetype(str(f), s) for s in FONT_SIZES}
        for digit in range(10):
            for _ in range(renders):
                size = FONT_SIZES[rng.integers(len(FONT_SIZES))]
                stroke = STROKES[rng.integers(len(STROKES))] if size >= 32 else STROKES[rng.integers(2)]
                xs.append(block_count(render_digit(faces[size], digit, stroke, rng)))
                ys.append(digit)
    return np.stack(xs), np.array(ys, dtype=np.int64), [f.name for f in fonts]


def _to_images(counts: np.ndarray, labels: np.ndarray, size: int) -> ImageSet:
    """8 × 8 counts (0..16) -> uint8 1×size×size, as the ``digits`` dataset resizes them."""
    x = torch.from_numpy(counts.astype(np.float32) / 16.0)[:, None]
    if size != 8:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return ImageSet((x.clamp(0, 1) * 255).round().to(torch.uint8), torch.from_numpy(labels.astype(np.int64)))


def _probe(root: Path | None, size: int = 16, renders: int = 8, seed: int = 0) -> DataMeta:
    """The metadata without rendering a digit (statistics: placeholders, computed on the source at load)."""
    return DataMeta(
        "digits-domains", 10, 1, (size, size), (0.5,), (0.25,), tuple(str(i) for i in range(10)), augment="none"
    )


def _sizes(root: Path | None, size: int = 16, renders: int = 8, seed: int = 0) -> dict[str, int]:
    """Printed: every usable font × 10 digits × ``renders``; handwritten: scikit-learn's 1,797."""
    return {"printed": len(font_files()) * 10 * renders, "handwritten": 1797}


def _render_inputs() -> dict[str, object]:
    """What the printed digits' pixels depend on besides the options: the font files (name, sha256) and
    the libraries that rasterise them (Pillow's FreeType draws; matplotlib ships the fonts)."""
    import matplotlib
    import PIL
    from PIL import features

    from ..provenance import sha256_file

    return {
        "fonts": [[f.name, sha256_file(f)] for f in font_files()],
        "matplotlib": matplotlib.__version__,
        "pillow": PIL.__version__,
        "freetype": features.version("freetype2"),
        "numpy": np.__version__,
    }


def _domain_sets(
    cache: Path, requested: tuple[str, ...], size: int, renders: int, seed: int
) -> tuple[dict[str, ImageSet], dict[str, object]]:
    """The domains' images (built once per inputs, cached) and the render inputs they were built from."""

    def build() -> dict[str, ImageSet]:
        out = {}
        if "printed" in requested:
            counts, labels, _ = printed_digits(renders, seed)
            out["printed"] = _to_images(counts, labels, size)
        if "handwritten" in requested:
            from sklearn.datasets import load_digits

            d = load_digits()
            out["handwritten"] = _to_images(d.images.round().astype(np.int64), d.target, size)
        return out

    inputs = _render_inputs() if "printed" in requested else {}
    fingerprint = {
        "v": _VERSION,
        "size": size,
        "renders": renders,
        "seed": seed,
        "domains": sorted(requested),
        **inputs,
    }
    return cached_sets(cache, "digits-domains", fingerprint, build), inputs


def _fingerprint(root: Path | None, cache: Path, size: int = 16, renders: int = 8, seed: int = 0) -> dict[str, object]:
    """Provenance (``DatasetSpec.fingerprint``): the render inputs, scikit-learn's version (the handwritten
    digits ship with it) and a sha256 of each domain's images and labels."""
    import sklearn

    from ..provenance import sha256_tensors

    sets, inputs = _domain_sets(cache, DOMAINS, size, renders, seed)
    return {
        "generator_version": _VERSION,
        "options": {"size": size, "renders": renders, "seed": seed},
        **inputs,
        "scikit-learn": sklearn.__version__,
        "images_sha256": {d: sha256_tensors([sets[d].x, sets[d].y]) for d in DOMAINS},
    }


@datasets.register("digits-domains", domains=DOMAINS, probe=_probe, sizes=_sizes, fingerprint=_fingerprint)
def digits_domains(
    root: Path | None,
    cache: Path,
    download: bool,
    *,
    requested: tuple[str, ...] = DOMAINS,
    size: int = 16,
    renders: int = 8,
    seed: int = 0,
) -> DomainImages:
    sets, inputs = _domain_sets(cache, requested, size, renders, seed)
    meta = DataMeta("digits-domains", 10, 1, (size, size), (), (), tuple(str(i) for i in range(10)), augment="none")
    return DomainImages(meta, sets, {"fonts": [n for n, _ in inputs.get("fonts", [])]})
