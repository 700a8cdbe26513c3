import gzip
import struct

import numpy as np
import pytest
import torch

from compressbench.data import DatasetError, eval_indices, load_dataset, read_idx
from compressbench.data.base import ImageSet


def _write_idx(path, arr: np.ndarray, gz=True):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def _fake_fashion(folder, n_train=50, n_test=20):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    _write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, 28, 28)))
    _write_idx(folder / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, (n_train,)))
    _write_idx(folder / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, 28, 28)), gz=False)
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, (n_test,)))


def test_idx_roundtrip(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "x.gz", arr)
    assert np.array_equal(read_idx(tmp_path / "x.gz"), arr)


def test_fashion_mnist_from_root(tmp_path):
    _fake_fashion(tmp_path / "fm")
    b = load_dataset("fashion-mnist", root=tmp_path / "fm", cache_dir=tmp_path / "cache", download=False)
    assert b.train.x.shape == (50, 1, 28, 28) and b.train.x.dtype == torch.uint8
    assert b.test.x.shape == (20, 1, 28, 28)
    assert b.meta.channels == 1 and b.meta.num_classes == 10 and len(b.meta.class_names) == 10


def test_fashion_mnist_missing_is_one_line(tmp_path, monkeypatch):
    import compressbench.data as d

    monkeypatch.setattr(d, "DEBIAN_FASHION_MNIST", tmp_path / "nope")
    with pytest.raises(DatasetError) as e:
        load_dataset("fashion-mnist", cache_dir=tmp_path / "c", download=False)
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "\n" not in msg
    assert "dataset.download: false" in msg


def test_debian_fashion_mnist_if_installed():
    from compressbench.data import DEBIAN_FASHION_MNIST

    if not (DEBIAN_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz").exists():
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    b = load_dataset("fashion-mnist", download=False)
    assert len(b.train) == 60000 and len(b.test) == 10000
    assert set(b.test.y.unique().tolist()) == set(range(10))


def test_digits(digits_bundle):
    b = digits_bundle
    assert b.train.x.shape[1:] == (1, 16, 16)
    assert len(b.train) + len(b.test) == 1797
    x, y, idx = next(b.test.batches(32))
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and len(y) == 32


def test_eval_subset_fixed_and_seeded():
    a, b = eval_indices(1000, 100, 0), eval_indices(1000, 100, 0)
    assert torch.equal(a, b) and len(a) == 100 and torch.all(a[1:] > a[:-1])
    assert not torch.equal(a, eval_indices(1000, 100, 1))
    assert torch.equal(eval_indices(50, None), torch.arange(50))


def test_imageset_validates_dtype():
    with pytest.raises(DatasetError):
        ImageSet(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long))


def test_imagefolder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 2)):
        for c in ("cat", "dog"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
                Image.fromarray(img).save(tmp_path / split / c / f"{i}.png")
    b = load_dataset("imagefolder", root=tmp_path, cache_dir=tmp_path / "c", size=24)
    assert b.train.x.shape == (12, 3, 24, 24) and b.test.x.shape == (4, 3, 24, 24)
    assert b.meta.class_names == ("cat", "dog") and len(b.meta.mean) == 3


def test_cifar_offline_error(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar10", root=tmp_path / "none", cache_dir=tmp_path, download=False)
    assert "cifar10" in str(e.value) and "\n" not in str(e.value)
