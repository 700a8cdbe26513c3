"""The official CIFAR-10-C / CIFAR-100-C files (Hendrycks & Dietterich 2019; Zenodo 2535967 /
3555552): ``<corruption>.npy`` = uint8 50000×32×32×3 — the 10,000 test images at severity 1,
then 2, …, 5 — and ``labels.npy``. These published files are the reference for reported CIFAR-10
numbers; the on-the-fly corruptions are a faithful re-implementation, not the same pixels.

Also reads folders written by ``compressbench corrupt`` (same layout + ``meta.json``).
Nothing is downloaded: put the extracted folder at ``dataset.root`` (or the cache dir).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..catalog.data import CifarCOptions  # noqa: F401 (torch-free: compressbench.catalog)
from ..registry import datasets
from .base import DataMeta, DatasetBundle, DatasetError, ImageSet, to_uint8_nchw

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_STATS = {
    "cifar10-c": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 10, "CIFAR-10-C"),
    "cifar100-c": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 100, "CIFAR-100-C"),
}


def _meta_json(folder: Path) -> dict[str, Any]:
    p = folder / "meta.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def _layout(folder: Path, corruption: str) -> tuple[np.ndarray, list[int], int]:
    f = folder / f"{corruption}.npy"
    if not f.is_file():
        have = sorted(p.stem for p in folder.glob("*.npy") if p.stem != "labels")
        raise DatasetError(
            f"{f} not found (corruptions in {folder}: {', '.join(have) or 'none'}); download "
            "CIFAR-10-C from https://zenodo.org/record/2535967 and extract it there"
        )
    arr = np.load(f, mmap_mode="r")
    sev = list(_meta_json(folder).get("severities", [1, 2, 3, 4, 5]))
    if arr.ndim != 4 or arr.shape[0] % len(sev):
        raise DatasetError(f"{f} has shape {arr.shape}; expected (k·N)×H×W×C for {len(sev)} severities")
    return arr, sev, arr.shape[0] // len(sev)


def load_cifar_c(folder: str | Path, corruption: str, severity: int) -> ImageSet:
    """The test images of one corruption at one severity as an :class:`ImageSet` (``index`` =
    the clean test set's indices)."""
    folder = Path(folder)
    arr, sev, n = _layout(folder, corruption)
    if severity not in sev:
        raise DatasetError(f"severity {severity} not in {folder / (corruption + '.npy')} (has {sev})")
    k = sev.index(severity)
    labels_f = folder / "labels.npy"
    if not labels_f.is_file():
        raise DatasetError(f"{labels_f} not found")
    y = np.load(labels_f, mmap_mode="r")
    if len(y) != len(arr):
        raise DatasetError(
            f"{folder / (corruption + '.npy')} has {len(arr):,} images but {labels_f} has "
            f"{len(y):,} labels; the files do not belong together"
        )
    x = to_uint8_nchw(np.asarray(arr[k * n : (k + 1) * n]))
    lab = torch.from_numpy(np.asarray(y[k * n : (k + 1) * n]).astype(np.int64))
    idx = _meta_json(folder).get("indices")
    return ImageSet(x, lab, torch.tensor(idx) if idx is not None else torch.arange(n))


def load_cifar_c_rows(
    folder: Path, corruption: str, severity: int, index: torch.Tensor, test_index: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float [0, 1] images and labels of the test images with dataset indices ``index``.

    Rows of official files are test-split positions: ``test_index`` (the clean test split's
    dataset indices, in order) maps indices to positions (identity when None). Folders written by
    ``compressbench corrupt`` record their dataset indices in meta.json and are matched by those."""
    arr, sev, n = _layout(folder, corruption)
    if severity not in sev:
        raise DatasetError(f"severity {severity} not in {folder / (corruption + '.npy')} (has {sev})")
    idx = _meta_json(folder).get("indices")
    pos = index.numpy().astype(np.int64)
    if idx is not None:
        where = {int(v): i for i, v in enumerate(idx)}
        missing = [int(i) for i in pos if int(i) not in where]
        if missing:
            raise DatasetError(f"{folder} does not contain test images {missing[:5]}…")
        pos = np.array([where[int(i)] for i in pos], dtype=np.int64)
    elif test_index is not None:
        where = {int(v): i for i, v in enumerate(test_index.tolist())}
        pos = np.array([where[int(i)] for i in pos], dtype=np.int64)
    if pos.size and pos.max() >= n:
        raise DatasetError(f"{folder / (corruption + '.npy')} has {n} images per severity; index {pos.max()} asked")
    rows = pos + sev.index(severity) * n
    x = to_uint8_nchw(np.asarray(arr[rows])).float() / 255
    y = torch.from_numpy(np.load(folder / "labels.npy", mmap_mode="r")[rows].astype(np.int64))
    return x, y


def _loader(name: str):
    mean, std, ncls, folder_name = _STATS[name]

    def load(
        root: Path | None, cache: Path, download: bool, corruption: str = "gaussian_noise", severity: int = 5
    ) -> DatasetBundle:
        folder = Path(root) if root else cache / folder_name
        if not folder.is_dir():
            raise DatasetError(
                f"{name}: folder {folder} not found; download the .npy files (Zenodo "
                f"{'2535967' if ncls == 10 else '3555552'}) and set dataset.root to it"
            )
        test = load_cifar_c(folder, corruption, int(severity))
        C, H, W = test.x.shape[1:]
        train = ImageSet(torch.zeros((0, C, H, W), dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
        meta = DataMeta(
            name,
            ncls,
            C,
            (H, W),
            mean if C == 3 else (0.5,),
            std if C == 3 else (0.25,),
            CIFAR10_CLASSES if ncls == 10 else tuple(str(i) for i in range(ncls)),
            augment="none",
        )
        return DatasetBundle(meta, train, test)

    return load


def _sizes(root: Path | None, corruption: str = "gaussian_noise", severity: int = 5) -> dict[str, int]:
    """No training images; the test images of one severity (from the file's header when ``root`` has it,
    else the published files' 10,000)."""
    f = Path(root) / f"{corruption}.npy" if root is not None else None
    n = _layout(Path(root), corruption)[2] if f is not None and f.is_file() else 10_000
    return {"train": 0, "test": n}


datasets.register("cifar10-c", _loader("cifar10-c"), sizes=_sizes)
datasets.register("cifar100-c", _loader("cifar100-c"), sizes=_sizes)
