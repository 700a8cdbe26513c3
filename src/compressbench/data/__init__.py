"""Built-in datasets. Each loader returns a :class:`DatasetBundle` of decoded uint8 tensors.

Loaders take ``(root: Path | None, cache_dir: Path, download: bool, **options)`` where ``options``
are exactly the fields of the loader's options schema (a :class:`DatasetOptions` registered as the
dataset spec's ``params``; none registered = the loader takes no options)::

    class MyOptions(DatasetOptions):
        size: int = Field(32, ge=1)

    @datasets.register("my-set", params=MyOptions, description="...")
    def my_set(root, cache, download, size=32) -> DatasetBundle: ...

``dataset.options`` are validated against the schema at ``validate`` (unknown ones are errors).
A ``root`` the user gives is the only place looked at (no silent fallback to another copy); with
``download: false`` nothing is downloaded. Nothing is downloaded silently when offline: a missing
dataset fails with one line saying how to get it.
"""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..catalog.data import DigitsOptions, ImageFolderOptions, SyntheticOptions  # noqa: F401 (torch-free)
from ..registry import datasets
from .base import DataMeta, DatasetBundle, DatasetError, DatasetOptions, ImageSet, eval_indices, to_uint8_nchw

__all__ = [
    "DataMeta",
    "DatasetBundle",
    "DatasetError",
    "DatasetOptions",
    "ImageSet",
    "eval_indices",
    "load_dataset",
    "dataset_options",
    "DEBIAN_FASHION_MNIST",
]

log = logging.getLogger(__name__)
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def default_cache_dir() -> Path:
    return Path(os.environ.get("COMPRESSBENCH_CACHE", Path.home() / ".cache" / "compressbench"))


def dataset_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` checked against dataset ``name``'s schema, with defaults filled in (the loader's kwargs).
    Raises ConfigError (one line, "did you mean" for unknown options)."""
    from ..config.params import validate_params

    params = validate_params(
        datasets.spec(name).params, options, "dataset.options", kind="option", owner=f"dataset '{name}'"
    )
    return params.model_dump() if params is not None else {}


def load_dataset(
    name: str,
    root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = True,
    source: str | None = None,
    targets: list[str] | None = None,
    split: dict[str, Any] | None = None,
    **options: Any,
) -> DatasetBundle:
    """Load a registered dataset. ``root``: the folder to read it from (the only place looked at when
    given); ``download``: may a missing dataset be downloaded; ``options``: the loader's options. For a
    dataset with named domains (``DatasetSpec.domains``): ``source`` / ``targets`` (default: the first
    declared domain / every other one) and ``split`` (``{test_fraction, seed, target_holdout}``), see
    :mod:`.domains`."""
    loader = datasets.get(name)
    kwargs = dataset_options(name, options)
    folder = Path(root).expanduser() if root else None
    if folder is not None and not folder.is_dir():
        raise DatasetError(f"{name}: dataset.root {root} is not an existing folder")
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if datasets.spec(name).domain_names(kwargs):
        from .domains import load_domain_dataset

        return load_domain_dataset(name, loader, folder, cache / "data", download, source, targets, split, **kwargs)
    if source is not None or targets is not None:
        raise DatasetError(f"dataset '{name}' has no named domains; 'source' / 'targets' need one that does")
    return loader(folder, cache / "data", download, **kwargs)


def _counts_match(images: Path, x: np.ndarray, labels: Path, y: np.ndarray) -> None:
    if len(x) != len(y):
        raise DatasetError(
            f"{images} has {len(x):,} images but {labels} has {len(y):,} labels; "
            f"the files do not belong together (re-download or re-extract them)"
        )


# --------------------------------------------------------------------------- IDX (MNIST family)
def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): the MNIST / Fashion-MNIST format."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DatasetError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise DatasetError(f"{path} is truncated: expected {int(np.prod(shape))} values, found {arr.size}")
    return arr.reshape(shape)


_IDX = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


def _find_idx(folder: Path) -> dict[str, Path] | None:
    found = {}
    for key, stem in _IDX.items():
        for cand in (
            folder / stem,
            folder / f"{stem}.gz",
            folder / "raw" / stem,
            folder / "raw" / f"{stem}.gz",
            folder / "FashionMNIST" / "raw" / stem,
            folder / "FashionMNIST" / "raw" / f"{stem}.gz",
        ):
            if cand.is_file():
                found[key] = cand
                break
        else:
            return None
    return found


FASHION_META = DataMeta("fashion-mnist", 10, 1, (28, 28), (0.2860,), (0.3530,), FASHION_CLASSES, augment="crop")


@datasets.register(
    "fashion-mnist", probe=lambda root: FASHION_META, sizes=lambda root: {"train": 60_000, "test": 10_000}
)
def fashion_mnist(root: Path | None, cache: Path, download: bool) -> DatasetBundle:
    """Search order: the Debian package, the cache dir, then a torchvision download (into the cache);
    with ``root``: only ``root`` (downloaded into it when ``download``)."""
    target = root if root is not None else cache / "fashion-mnist"
    places = [root] if root is not None else [DEBIAN_FASHION_MNIST, target]
    files = next((f for f in (_find_idx(p) for p in places) if f), None)
    if files is None and download:
        try:
            from torchvision.datasets import FashionMNIST

            FashionMNIST(str(target), train=True, download=True)
            FashionMNIST(str(target), train=False, download=True)
            files = _find_idx(target)
        except Exception as e:  # offline: fall through to the one-line error
            log.debug("Fashion-MNIST download failed: %s", e)
    if files is None:
        how = "could not be downloaded" if download else "was not downloaded (dataset.download: false)"
        fix = (
            "put the four IDX files there, or leave dataset.root out to use the system copy "
            "('apt-get install dataset-fashion-mnist' on Debian/Ubuntu)"
            if root is not None
            else "install it with 'apt-get install dataset-fashion-mnist' (Debian/Ubuntu) or set dataset.root "
            "to a folder with the four IDX files"
        )
        where = f"dataset.root {root}" if root is not None else ", ".join(str(p) for p in places)
        raise DatasetError(f"Fashion-MNIST not found in {where} and {how}; {fix}")

    def split(xk: str, yk: str) -> ImageSet:
        x, y = read_idx(files[xk]), read_idx(files[yk])
        _counts_match(files[xk], x, files[yk], y)
        if y.size and int(y.max()) >= 10:
            raise DatasetError(f"{files[yk]} has label {int(y.max())}; Fashion-MNIST labels are 0..9")
        return ImageSet(to_uint8_nchw(x), torch.from_numpy(y.astype(np.int64)))

    train, test = split("train_x", "train_y"), split("test_x", "test_y")
    return DatasetBundle(FASHION_META, train, test)


# --------------------------------------------------------------------------- CIFAR
def _cifar(name: str, tv_cls: str, num_classes: int, mean: tuple, std: tuple):
    def loader(root: Path | None, cache: Path, download: bool) -> DatasetBundle:
        """torchvision's CIFAR reader: from ``root`` when given (downloaded into it when ``download``),
        else from the cache dir."""
        import torchvision.datasets as tvd

        folder = root or cache / name
        cls = getattr(tvd, tv_cls)
        try:
            tr = cls(str(folder), train=True, download=download)
            te = cls(str(folder), train=False, download=download)
        except Exception as e:
            where = f"dataset.root {folder}" if root is not None else str(folder)
            how = "could not be downloaded" if download else "was not downloaded (dataset.download: false)"
            raise DatasetError(
                f"{name} not found in {where} and {how} ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}); put the python-version archive's "
                f"extracted folder there or run once with internet"
            ) from None
        if len(tr.data) != len(tr.targets) or len(te.data) != len(te.targets):
            raise DatasetError(f"{name} in {folder}: images and labels differ in number; re-extract the archive")
        classes = tuple(getattr(tr, "classes", ()))
        meta = DataMeta(name, num_classes, 3, (32, 32), mean, std, classes, augment="flip_crop")
        return DatasetBundle(
            meta,
            ImageSet(to_uint8_nchw(tr.data), torch.tensor(tr.targets)),
            ImageSet(to_uint8_nchw(te.data), torch.tensor(te.targets)),
        )

    return loader


def _cifar_probe(name: str, num_classes: int, mean: tuple, std: tuple, classes: tuple = ()):
    meta = DataMeta(name, num_classes, 3, (32, 32), mean, std, classes, augment="flip_crop")
    return lambda root: meta


_CIFAR_SIZES = {"train": 50_000, "test": 10_000}
_C10 = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
_C100 = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
datasets.register(
    "cifar10",
    _cifar("cifar10", "CIFAR10", 10, *_C10),
    probe=_cifar_probe("cifar10", 10, *_C10, CIFAR10_CLASSES),
    sizes=lambda root: _CIFAR_SIZES,
)
datasets.register(
    "cifar100",
    _cifar("cifar100", "CIFAR100", 100, *_C100),
    probe=_cifar_probe("cifar100", 100, *_C100),
    sizes=lambda root: _CIFAR_SIZES,
)


def _folder_domains(options: dict[str, Any]) -> tuple[str, ...]:
    return tuple(options.get("domains") or ())


def _imagefolder_probe(
    root: Path | None,
    size: int = 32,
    channels: int = 3,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    domains: dict[str, str] | None = None,
) -> DataMeta:
    """Classes from the folder names; mean / std are placeholders (computed from the images at load)."""
    if root is None or not Path(root).is_dir():
        raise DatasetError(f"imagefolder needs dataset.root to be an existing folder, got {root}")
    if domains:  # the first domain's class folders (every domain must have the same classes)
        base = root / next(iter(domains.values()))
    else:
        base = root / "train" if (root / "train").is_dir() and (root / "test").is_dir() else root
    classes = tuple(sorted(d.name for d in base.iterdir() if d.is_dir())) if base.is_dir() else ()
    return DataMeta(
        root.name,
        len(classes),
        channels,
        (size, size),
        (0.5,) * channels,
        (0.25,) * channels,
        classes,
        augment="flip_crop",
    )


def _count_images(folder: Path) -> int:
    from .domains import IMAGE_SUFFIXES

    return sum(1 for d in folder.iterdir() if d.is_dir() for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)


def _imagefolder_sizes(
    root: Path | None,
    size: int = 32,
    channels: int = 3,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    domains: dict[str, str] | None = None,
) -> dict[str, int]:
    """Image files per split (``train/`` + ``test/``, or the split by ``test_fraction``) or per domain; none decoded."""
    if root is None or not Path(root).is_dir():
        raise DatasetError(f"imagefolder needs dataset.root to be an existing folder, got {root}")
    root = Path(root)
    if domains:
        return {d: _count_images((root / f).expanduser()) for d, f in domains.items()}
    if (root / "train").is_dir() and (root / "test").is_dir():
        return {"train": _count_images(root / "train"), "test": _count_images(root / "test")}
    n = _count_images(root)
    k = max(1, int(n * test_fraction))
    return {"train": n - k, "test": k}


@datasets.register("imagefolder", domains=_folder_domains, probe=_imagefolder_probe, sizes=_imagefolder_sizes)
def imagefolder(
    root: Path | None,
    cache: Path,
    download: bool,
    *,
    requested: tuple[str, ...] | None = None,
    size: int = 32,
    channels: int = 3,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    domains: dict[str, str] | None = None,
) -> Any:
    """``root/train/<class>/*`` and ``root/test/<class>/*``, or ``root/<class>/*`` split by seed.
    Images are decoded and resized once (PIL), then kept as tensors. With ``domains`` (domain name ->
    class-folder tree, relative to ``root``) it is a dataset with domains: ``requested`` are read by
    :func:`.domains.folder_domains` (source / targets / split as for every dataset with domains)."""
    if requested is not None:
        from .domains import folder_domains

        return folder_domains(root, cache, domains or {}, requested, size, channels)
    if root is None or not Path(root).is_dir():
        raise DatasetError(f"imagefolder needs dataset.root to be an existing folder, got {root}")
    root = Path(root)

    def read(folder: Path, classes: list[str]) -> ImageSet:
        from PIL import Image

        xs, ys = [], []
        for ci, c in enumerate(classes):
            for f in sorted((folder / c).iterdir()) if (folder / c).is_dir() else []:
                if f.suffix.lower() not in {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}:
                    continue
                with Image.open(f) as im:
                    im = im.convert("L" if channels == 1 else "RGB").resize((size, size), Image.BILINEAR)
                    xs.append(np.asarray(im))
                ys.append(ci)
        if not xs:
            raise DatasetError(f"no images found under {folder}")
        return ImageSet(to_uint8_nchw(np.stack(xs)), torch.tensor(ys))

    if (root / "train").is_dir() and (root / "test").is_dir():
        classes = sorted(d.name for d in (root / "train").iterdir() if d.is_dir())
        train, test = read(root / "train", classes), read(root / "test", classes)
    else:
        classes = sorted(d.name for d in root.iterdir() if d.is_dir())
        full = read(root, classes)
        perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(split_seed))
        k = max(1, int(len(full) * test_fraction))
        test, train = full.subset(perm[:k].sort().values), full.subset(perm[k:].sort().values)
    xf = train.x.float() / 255
    mean = tuple(xf.mean(dim=(0, 2, 3)).tolist())
    std = tuple(xf.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())
    meta = DataMeta(root.name, len(classes), channels, (size, size), mean, std, tuple(classes), augment="flip_crop")
    return DatasetBundle(meta, train, test)


@datasets.register(
    "digits",
    probe=lambda root, size=16, test_fraction=0.25: DataMeta(
        "digits", 10, 1, (size, size), (0.5,), (0.25,), tuple(map(str, range(10))), augment="none"
    ),
    sizes=lambda root, size=16, test_fraction=0.25: {
        "train": 1797 - max(1, int(1797 * test_fraction)),
        "test": max(1, int(1797 * test_fraction)),
    },
)
def digits(
    root: Path | None, cache: Path, download: bool, size: int = 16, test_fraction: float = 0.25
) -> DatasetBundle:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    if size != 8:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    y = torch.from_numpy(d.target.astype(np.int64))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    k = max(1, int(len(y) * test_fraction))
    full = ImageSet(x, y)
    xf = x.float() / 255
    meta = DataMeta(
        "digits",
        10,
        1,
        (size, size),
        (float(xf.mean()),),
        (float(xf.std()),),
        tuple(str(i) for i in range(10)),
        augment="none",
    )
    return DatasetBundle(meta, full.subset(perm[k:].sort().values), full.subset(perm[:k].sort().values))


def _synthetic_probe(
    root: Path | None,
    n_train: int = 600,
    n_test: int = 200,
    size: int = 32,
    num_classes: int = 4,
    channels: int = 3,
    seed: int = 0,
) -> DataMeta:
    return DataMeta(
        "synthetic",
        num_classes,
        channels,
        (size, size),
        (0.5,) * channels,
        (0.25,) * channels,
        tuple(f"c{i}" for i in range(num_classes)),
        augment="none",
    )


def _synthetic_sizes(
    root: Path | None,
    n_train: int = 600,
    n_test: int = 200,
    size: int = 32,
    num_classes: int = 4,
    channels: int = 3,
    seed: int = 0,
) -> dict[str, int]:
    return {"train": n_train, "test": n_test}


def _synthetic_fingerprint(root: Path | None, cache: Path, **options: int) -> dict[str, object]:
    """Provenance (``DatasetSpec.fingerprint``): drawn from torch's RNG with torch's CPU kernels (exp, sin,
    cos): the options, torch's version and CPU capability, and a sha256 of the generated images."""
    from ..provenance import cpu_capability, sha256_tensors

    b = synthetic(root, cache, False, **options)
    return {
        "options": dict(options),
        "torch": torch.__version__,
        "cpu_capability": cpu_capability(),
        "images_sha256": sha256_tensors([b.train.x, b.train.y, b.test.x, b.test.y]),
    }


@datasets.register("synthetic", probe=_synthetic_probe, sizes=_synthetic_sizes, fingerprint=_synthetic_fingerprint)
def synthetic(
    root: Path | None,
    cache: Path,
    download: bool,
    n_train: int = 600,
    n_test: int = 200,
    size: int = 32,
    num_classes: int = 4,
    channels: int = 3,
    seed: int = 0,
) -> DatasetBundle:
    """A learnable RGB dataset generated on the fly: class c draws a bright blob whose position and
    colour depend on c, over textured noise. Used where a 3-channel image set is needed offline."""
    g = torch.Generator().manual_seed(seed)

    def make(n: int) -> ImageSet:
        y = torch.randint(0, num_classes, (n,), generator=g)
        yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        base = torch.rand(n, channels, size, size, generator=g) * 0.3
        ang = 2 * torch.pi * y.float() / num_classes
        cy = size / 2 + size / 4 * torch.sin(ang) + torch.randn(n, generator=g) * size / 16
        cx = size / 2 + size / 4 * torch.cos(ang) + torch.randn(n, generator=g) * size / 16
        r2 = (yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2
        blob = torch.exp(-r2 / (2 * (size / 8) ** 2))
        colour = torch.stack([torch.cos(ang + k) * 0.35 + 0.65 for k in range(channels)], 1)
        img = (base + blob[:, None] * colour[:, :, None, None]).clamp(0, 1)
        return ImageSet((img * 255).round().to(torch.uint8), y)

    train, test = make(n_train), make(n_test)
    xf = train.x.float() / 255
    meta = DataMeta(
        "synthetic",
        num_classes,
        channels,
        (size, size),
        tuple(xf.mean(dim=(0, 2, 3)).tolist()),
        tuple(xf.std(dim=(0, 2, 3)).tolist()),
        tuple(f"c{i}" for i in range(num_classes)),
        augment="none",
    )
    return DatasetBundle(meta, train, test)


from . import cifar_c, digits_domains, office31  # noqa: E402,F401
