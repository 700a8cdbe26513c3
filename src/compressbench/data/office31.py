"""Office-31 (Saenko et al., ECCV 2010): 31 office-object classes photographed in three domains —
Amazon (product images, 2,817), DSLR (498) and Webcam (795) — the standard domain-adaptation benchmark
(Deep CORAL's six tasks A→W, A→D, W→A, W→D, D→A, D→W).

Nothing is downloaded (the archive has no stable public URL): extract ``domain_adaptation_images.tar.gz``
and point ``dataset.root`` at it (without ``root``: ``<cache_dir>/data/office31``). Accepted layouts
(``<d>`` ∈ amazon, dslr, webcam)::

    <root>/<d>/images/<class>/*.jpg                              the archive's layout
    <root>/domain_adaptation_images/<d>/images/<class>/*.jpg     the archive's top folder kept
    <root>/<d>/<class>/*.jpg                                     without the images/ level

Images are decoded once with PIL, resized (``size``; with ``resize``: shorter side to ``resize``, then
the centre ``size`` × ``size`` crop — e.g. 256 / 224 as for ImageNet backbones) and cached as uint8
tensors in the cache dir (keyed by the files' names, sizes and times and the options). Labels follow
the sorted class-folder names of all three domains, so they agree whichever domains are loaded.
Normalisation: the source's training-split statistics, or ``stats: imagenet`` (the statistics
ImageNet-pretrained backbones expect).
"""

from __future__ import annotations

from pathlib import Path

from ..catalog.data import Office31Options  # noqa: F401 (torch-free: compressbench.catalog)
from ..registry import datasets
from .base import DataMeta, DatasetError
from .domains import DomainImages, cached_sets, list_class_images, read_class_folder, tree_fingerprint

DOMAINS = ("amazon", "dslr", "webcam")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_VERSION = 1  # bump when decoding could change pixels (part of the cache key)


def domain_folder(root: Path, domain: str) -> Path | None:
    """The class-folder parent of ``domain`` under ``root`` in any accepted layout (None: not found)."""
    for base in (root, root / "domain_adaptation_images"):
        for cand in (base / domain / "images", base / domain):
            if cand.is_dir() and any(p.is_dir() for p in cand.iterdir()):
                return cand
    return None


NUM_CLASSES = 31


def _probe(
    root: Path | None, size: int = 224, resize: int | None = None, channels: int = 3, stats: str = "source"
) -> DataMeta:
    """The metadata without decoding an image (validate builds the model from it): 31 classes, the class
    names from the extracted tree when it is there; placeholder statistics (``stats: source`` computes them
    from the source domain at load). A missing archive is reported when the data is loaded, before any work."""
    names: tuple[str, ...] = ()
    if root is not None and Path(root).is_dir():
        folders = [f for f in (domain_folder(Path(root), d) for d in DOMAINS) if f is not None]
        names = tuple(sorted({c for f in folders for c in list_class_images(f)}))
    mean, std = (
        (IMAGENET_MEAN, IMAGENET_STD)
        if stats == "imagenet" and channels == 3
        else ((0.5,) * channels, (0.25,) * channels)
    )
    return DataMeta(
        "office31", len(names) or NUM_CLASSES, channels, (size, size), mean, std, names, augment="flip_crop"
    )


PUBLISHED_SIZES = {"amazon": 2817, "dslr": 498, "webcam": 795}  # images per domain in the archive


def _sizes(
    root: Path | None, size: int = 224, resize: int | None = None, channels: int = 3, stats: str = "source"
) -> dict[str, int]:
    """Images per domain: counted in the extracted tree when it is there (none decoded), else the archive's;
    no option changes the counts."""
    out = dict(PUBLISHED_SIZES)
    if root is not None and Path(root).is_dir():
        for d in DOMAINS:
            folder = domain_folder(Path(root), d)
            if folder is not None:
                out[d] = sum(len(v) for v in list_class_images(folder).values())
    return out


@datasets.register("office31", domains=DOMAINS, probe=_probe, sizes=_sizes)
def office31(
    root: Path | None,
    cache: Path,
    download: bool,
    *,
    requested: tuple[str, ...] = DOMAINS,
    size: int = 224,
    resize: int | None = None,
    channels: int = 3,
    stats: str = "source",
) -> DomainImages:
    if stats == "imagenet" and channels != 3:
        raise DatasetError("office31: stats: imagenet needs channels: 3 (ImageNet statistics are per RGB channel)")
    given = root is not None
    root = Path(root).expanduser() if given else cache / "office31"
    folders = {d: domain_folder(root, d) if root.is_dir() else None for d in DOMAINS}
    missing = [d for d in requested if folders[d] is None]
    if missing:
        where = f"under {root}" if given else f"under {root} (dataset.root not set)"
        raise DatasetError(
            f"office31: no {'/'.join(missing)} images {where}; extract "
            f"domain_adaptation_images.tar.gz and set dataset.root to it (expected "
            f"<root>/<domain>/images/<class>/*.jpg); it cannot be downloaded automatically"
        )
    classes = sorted({c for f in folders.values() if f is not None for c in list_class_images(f)})
    files = {d: list_class_images(folders[d]) for d in requested}  # type: ignore[arg-type]
    fingerprint = {
        "v": _VERSION,
        "size": size,
        "resize": resize,
        "channels": channels,
        "classes": classes,
        "files": tree_fingerprint(files),
    }
    sets = cached_sets(
        cache,
        "office31",
        fingerprint,
        lambda: {d: read_class_folder(files[d], classes, size, channels, resize) for d in requested},
    )
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if stats == "imagenet" else ((), ())
    meta = DataMeta("office31", len(classes), channels, (size, size), mean, std, tuple(classes), augment="flip_crop")
    return DomainImages(meta, sets, {"root": str(root)})
