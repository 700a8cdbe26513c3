"""Datasets with named domains: one source domain to train on, target domains to evaluate on.

A dataset declares its domains (``DatasetSpec.domains``); its loader, called with
``requested=(source, *targets)``, returns those domains' labelled images as a :class:`DomainImages`,
and :func:`load_domain_dataset` turns them into the :class:`~.base.DatasetBundle` every job uses:

* ``train`` / ``test``: the **source** domain split, stratified by class and seeded
  (``test_fraction``, ``seed``) — in-domain accuracy is measured on ``test``;
* ``targets[name]``: each **target** domain's labelled images, for evaluation only;
* ``unlabeled[name]``: the target images an adaptation method (Deep CORAL) may train on, with every
  label replaced by -1. By default (``target_holdout: None``) these are all of the target's images —
  the transductive protocol of the domain-adaptation literature (Office-31 results, Deep CORAL):
  the adapted model is scored on the images it saw without labels. With ``target_holdout: f`` a
  stratified, seeded fraction ``f`` of each target is held out: adaptation never sees it, and
  ``targets[name]`` holds only it.

Nothing else of a target reaches training: the training loop reads ``train`` (and, when adapting,
``unlabeled``), never ``targets``. Normalisation statistics (mean / std) are those of the source's
training split unless the loader fixes them (e.g. ImageNet statistics for pretrained backbones).

Also here: reading class folders into uint8 tensors once (PIL), and a small tensor cache keyed by
the files' names, sizes and modification times, so a large image tree is decoded only once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..registry import datasets
from .base import DataMeta, DatasetBundle, DatasetError, ImageSet, to_uint8_nchw

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


@dataclass
class DomainImages:
    """What a loader with domains returns: every requested domain's labelled images (one class list for
    all of them) and the metadata. ``meta.mean`` / ``meta.std`` empty: computed on the source's
    training split."""

    meta: DataMeta
    sets: dict[str, ImageSet]
    info: dict[str, Any] = field(default_factory=dict)


def domain_names(name: str, options: dict[str, Any] | None = None) -> tuple[str, ...]:
    """The domains dataset ``name`` declares (for these loader options); () when it has none."""
    return datasets.spec(datasets.resolve(name)).domain_names(options)


def resolve_domains(
    name: str, options: dict[str, Any] | None, source: str | None, targets: Sequence[str] | None
) -> tuple[str, tuple[str, ...]]:
    """(source, targets) with defaults filled in: the first declared domain is the default source; the
    default targets are every other declared domain. Raises :class:`DatasetError` (one line)."""
    declared = domain_names(name, options)
    if not declared:
        raise DatasetError(
            f"dataset '{name}' has no named domains; 'source' / 'targets' need one that does "
            f"({', '.join(n for n, s in datasets.items() if s.domains) or 'none registered'})"
        )
    bad = check_domains(declared, source, targets)
    if bad:
        raise DatasetError(f"{name}: dataset.{bad[0]}: {bad[1]}")
    src = source or declared[0]
    tg = tuple(targets) if targets is not None else tuple(d for d in declared if d != src)
    return src, tg


def check_domains(
    declared: Sequence[str], source: str | Sequence[str] | None, targets: Sequence[str] | None
) -> tuple[str, str] | None:
    """(field, why) when ``source`` / ``targets`` do not fit the declared domains (None: they do). A list
    of sources (sibling experiments) is checked source by source, each against the targets but itself."""
    import difflib

    def unknown(d: str, what: str) -> str:
        close = difflib.get_close_matches(d, list(declared), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown {what} domain '{d}'{hint}; declared domains: {', '.join(declared)}"

    sources = [source] if isinstance(source, str) or source is None else list(source)
    if not sources:
        return "source", "the list of source domains is empty"
    if len(set(sources)) != len(sources):
        return "source", f"{list(sources)} names a domain twice"
    for s in sources:
        if s is not None and s not in declared:
            return "source", unknown(s, "source")
    for t in targets or ():
        if t not in declared:
            return "targets", unknown(t, "target")
    if targets is not None and len(set(targets)) != len(targets):
        return "targets", f"{list(targets)} names a domain twice"
    for s in sources:
        s = s or declared[0]
        if targets is not None and len(sources) == 1 and s in targets:
            return "targets", f"the source domain '{s}' is also a target"
        if not [t for t in (targets if targets is not None else declared) if t != s]:
            return "targets", f"source '{s}' has no target domain left to evaluate on"
    return None


def stratified_split(y: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held-out) sorted index tensors: ``round(fraction · n_c)`` of each class ``c`` held out
    (at least one when the class has two or more images), chosen by a permutation seeded with ``seed``."""
    g = torch.Generator().manual_seed(int(seed))
    held: list[torch.Tensor] = []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        k = int(round(fraction * len(idx)))
        if fraction > 0 and len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        held.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    out = torch.cat(held).sort().values if held else torch.empty(0, dtype=torch.long)
    mask = torch.ones(len(y), dtype=torch.bool)
    mask[out] = False
    return torch.nonzero(mask).flatten(), out


def unlabeled(images: ImageSet) -> ImageSet:
    """The same images with every label replaced by -1 (what adaptation may see)."""
    return ImageSet(images.x, torch.full_like(images.y, -1), images.index)


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images in [0, 1] units (std floored at 1e-3)."""
    xf = x.float().div_(255)
    return tuple(xf.mean(dim=(0, 2, 3)).tolist()), tuple(xf.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())


def build_bundle(
    images: DomainImages,
    source: str,
    targets: Sequence[str],
    test_fraction: float = 0.2,
    seed: int = 0,
    target_holdout: float | None = None,
) -> DatasetBundle:
    """Split the source domain into train / test (stratified, seeded) and keep each target for evaluation
    (and, unlabeled, for adaptation); see the module docstring."""
    missing = [d for d in (source, *targets) if d not in images.sets]
    if missing:
        raise DatasetError(f"{images.meta.name}: the loader returned no images for domain(s) {missing}")
    src = images.sets[source]
    tr, te = stratified_split(src.y, test_fraction, seed)
    train, test = src.subset(tr), src.subset(te)
    if len(train) == 0 or len(test) == 0:
        raise DatasetError(
            f"{images.meta.name}: source domain '{source}' has {len(src)} images, too few to "
            f"split into train and test (test_fraction {test_fraction:g})"
        )
    evals, adapt = {}, {}
    for t in targets:
        full = images.sets[t]
        if target_holdout is None:
            evals[t], adapt[t] = full, unlabeled(full)
        else:
            seen, held = stratified_split(full.y, target_holdout, seed + 1)
            evals[t], adapt[t] = full.subset(held), unlabeled(full.subset(seen))
    meta = images.meta
    if not meta.mean:
        mean, std = channel_stats(train.x)
        meta = replace(meta, mean=mean, std=std)
    return DatasetBundle(meta, train, test, source=source, targets=evals, unlabeled=adapt)


def load_domain_dataset(
    name: str,
    loader: Callable[..., DomainImages],
    root: Path | None,
    cache: Path,
    download: bool,
    source: str | None = None,
    targets: Sequence[str] | None = None,
    split: dict[str, Any] | None = None,
    **options: Any,
) -> DatasetBundle:
    """Load only the source and target domains of dataset ``name`` and build its bundle.
    ``split``: ``{test_fraction, seed, target_holdout}`` (see :func:`build_bundle`)."""
    src, tg = resolve_domains(name, options, source, targets)
    images = loader(root, cache, download, requested=(src, *tg), **options)
    split = dict(split or {})
    return build_bundle(
        images,
        src,
        tg,
        test_fraction=split.get("test_fraction", 0.2),
        seed=split.get("seed", 0),
        target_holdout=split.get("target_holdout"),
    )


# --------------------------------------------------------------------------- reading image folders
def list_class_images(folder: Path) -> dict[str, list[Path]]:
    """``folder/<class>/*.<image>`` -> {class: sorted files} (classes sorted; empty classes kept)."""
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder")
    out = {}
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        out[d.name] = sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    return out


def decode(path: Path, size: int, channels: int, resize: int | None = None) -> np.ndarray:
    """One image as uint8 H×W(×C): resized to ``size`` × ``size`` (bilinear), or — with ``resize`` —
    its shorter side resized to ``resize`` and the centre ``size`` × ``size`` cropped."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L" if channels == 1 else "RGB")
        if resize is None:
            im = im.resize((size, size), Image.BILINEAR)
        else:
            w, h = im.size
            s = resize / min(w, h)
            im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
            w, h = im.size
            left, top = (w - size) // 2, (h - size) // 2
            im = im.crop((left, top, left + size, top + size))
        return np.asarray(im, dtype=np.uint8)


def read_class_folder(
    files: dict[str, list[Path]], classes: Sequence[str], size: int, channels: int, resize: int | None = None
) -> ImageSet:
    """Decode every file of ``files`` ({class: paths}) with label = position of its class in ``classes``."""
    xs, ys = [], []
    for c, paths in files.items():
        ci = classes.index(c)
        for f in paths:
            try:
                xs.append(decode(f, size, channels, resize))
            except OSError as e:
                raise DatasetError(f"cannot read image {f}: {e}") from None
            ys.append(ci)
    if not xs:
        raise DatasetError(f"no images found in {len(files)} class folder(s)")
    return ImageSet(to_uint8_nchw(np.stack(xs)), torch.tensor(ys, dtype=torch.long))


def cached_sets(
    cache: Path, tag: str, fingerprint: Any, build: Callable[[], dict[str, ImageSet]]
) -> dict[str, ImageSet]:
    """``build()`` once per ``fingerprint`` (JSON-able: files, sizes, options, version); the uint8
    tensors are kept in ``cache/<tag>/<hash>.pt`` and re-read afterwards (``weights_only``)."""
    key = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:20]
    path = cache / tag / f"{key}.pt"
    if path.is_file():
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
            return {d: ImageSet(v["x"], v["y"]) for d, v in raw.items()}
        except Exception as e:  # a damaged cache file is rebuilt, never trusted
            log.warning("ignoring unreadable cached images %s: %s", path, e)
    sets = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{id(sets)}")
    torch.save({d: {"x": s.x.contiguous(), "y": s.y} for d, s in sets.items()}, tmp)
    tmp.replace(path)
    return sets


def tree_fingerprint(files: dict[str, dict[str, list[Path]]]) -> list[tuple[str, str, int, int]]:
    """(domain, path, size, mtime_ns) of every file: changes when any image is added, removed or edited."""
    out = []
    for d, by_class in sorted(files.items()):
        for _, paths in sorted(by_class.items()):
            for f in paths:
                st = f.stat()
                out.append((d, str(f.resolve()), st.st_size, st.st_mtime_ns))
    return out


def folder_domains(
    root: Path | None, cache: Path, mapping: dict[str, str], requested: Sequence[str], size: int, channels: int
) -> DomainImages:
    """``imagefolder`` with ``domains: {name: folder}``: each folder (relative to ``root``, or absolute) is a
    ``<class>/*`` tree; labels follow the sorted union of the class names of all the mapped folders."""
    base = Path(root).expanduser() if root is not None else Path.cwd()
    folders = {d: (base / f).expanduser() for d, f in mapping.items()}
    for d in requested:
        if not folders[d].is_dir():
            raise DatasetError(f"imagefolder: domain '{d}' folder {folders[d]} does not exist")
    classes = sorted({c for f in folders.values() if f.is_dir() for c in list_class_images(f)})
    files = {d: list_class_images(folders[d]) for d in requested}
    fingerprint = {"v": 1, "size": size, "channels": channels, "classes": classes, "files": tree_fingerprint(files)}
    sets = cached_sets(
        cache,
        "imagefolder-domains",
        fingerprint,
        lambda: {d: read_class_folder(files[d], classes, size, channels) for d in requested},
    )
    meta = DataMeta(
        base.name or "imagefolder", len(classes), channels, (size, size), (), (), tuple(classes), augment="flip_crop"
    )
    return DomainImages(meta, sets)
