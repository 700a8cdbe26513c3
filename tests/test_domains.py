"""Datasets with named domains: the split, the office31 loader on a generated tree in the archive layout,
the digits-domains demo, imagefolder domains, and the config's one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compressbench.config import ConfigError
from compressbench.data import DatasetError, load_dataset
from compressbench.data.domains import build_bundle, stratified_split
from compressbench.validate import validate

OFFICE_CLASSES = ("back_pack", "bike", "mug")
# per domain: images per class (amazon has more, as in the archive)
OFFICE_COUNTS = {"amazon": 6, "dslr": 3, "webcam": 4}


def _office_tree(root, top: bool = True, images_level: bool = True):
    """A tiny Office-31 tree: <root>[/domain_adaptation_images]/<domain>[/images]/<class>/*.jpg. Pixel
    values encode (domain, class, index) so labels can be checked from the images."""
    from PIL import Image

    base = root / "domain_adaptation_images" if top else root
    for di, (d, n) in enumerate(OFFICE_COUNTS.items()):
        for ci, c in enumerate(OFFICE_CLASSES):
            folder = base / d / ("images" if images_level else "") / c
            folder.mkdir(parents=True)
            for i in range(n):
                arr = np.full((40 + 7 * i, 30 + 5 * ci, 3), (40 * di + 10, 60 * ci + 20, 10 * i + 5), np.uint8)
                Image.fromarray(arr).save(folder / f"frame_{i:04d}.jpg", quality=95)
    return root


def _office(root, tmp_path, **kw):
    return load_dataset("office31", root=root, cache_dir=tmp_path / "cache", **kw)


def test_stratified_split_is_per_class_and_seeded():
    y = torch.tensor([0] * 10 + [1] * 5 + [2] * 2 + [3])
    kept, held = stratified_split(y, 0.2, seed=3)
    assert torch.equal(torch.sort(torch.cat([kept, held])).values, torch.arange(len(y)))
    assert [int((y[held] == c).sum()) for c in range(4)] == [2, 1, 1, 0]  # round(0.2 n), ≥ 1 if n ≥ 2, 0 if n = 1
    k2, h2 = stratified_split(y, 0.2, seed=3)
    assert torch.equal(held, h2) and not torch.equal(held, stratified_split(y, 0.2, seed=4)[1])


def test_office31_reads_the_archive_layout(tmp_path):
    root = _office_tree(tmp_path / "office")
    b = _office(root, tmp_path, source="amazon", targets=["webcam", "dslr"], size=24)
    assert b.meta.name == "office31" and b.meta.class_names == OFFICE_CLASSES and b.meta.num_classes == 3
    assert b.meta.channels == 3 and b.meta.size == (24, 24) and b.source == "amazon"
    assert len(b.train) + len(b.test) == 3 * 6 and len(b.test) == 3  # round(0.2 · 6) = 1 per class
    assert {d: len(s) for d, s in b.targets.items()} == {"webcam": 12, "dslr": 9}
    assert b.train.x.dtype == torch.uint8 and b.train.x.shape[1:] == (3, 24, 24)
    # labels follow the class folders: the green channel encodes the class (JPEG: ± a few levels)
    for s in (b.train, b.targets["webcam"], b.targets["dslr"]):
        green = s.x[:, 1].float().mean(dim=(1, 2))
        assert torch.allclose(green, 60 * s.y.float() + 20, atol=4)
    red = b.targets["dslr"].x[:, 0].float().mean(dim=(1, 2))  # the dslr domain (index 1 -> 50)
    assert torch.allclose(red, torch.full_like(red, 50.0), atol=4)
    assert all((u.y == -1).all() for u in b.unlabeled.values())  # adaptation never sees target labels
    assert b.meta.mean and len(b.meta.mean) == 3  # statistics of amazon's training split


def test_office31_other_layouts_cache_and_options(tmp_path, monkeypatch):
    root = _office_tree(tmp_path / "flat", top=False, images_level=False)
    b = _office(root, tmp_path, source="webcam", size=16, resize=20, stats="imagenet")
    assert set(b.targets) == {"amazon", "dslr"} and b.meta.mean == (0.485, 0.456, 0.406)
    import compressbench.data.domains as dom

    monkeypatch.setattr(dom, "decode", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded twice")))
    again = _office(root, tmp_path, source="webcam", size=16, resize=20, stats="imagenet")  # from the tensor cache
    assert torch.equal(again.train.x, b.train.x) and torch.equal(again.targets["dslr"].x, b.targets["dslr"].x)


def test_office31_errors_are_one_line(tmp_path):
    with pytest.raises(DatasetError) as e:
        _office(None, tmp_path)
    assert "dataset.root not set" in str(e.value) and "\n" not in str(e.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no amazon/dslr/webcam images under"):
        _office(empty, tmp_path)
    with pytest.raises(DatasetError, match="did you mean 'webcam'"):
        _office(empty, tmp_path, source="amazon", targets=["webcamm"])
    with pytest.raises(DatasetError, match="stats: imagenet needs channels: 3"):
        _office(empty, tmp_path, channels=1, stats="imagenet")


def test_digits_domains_are_two_real_domains(tmp_path):
    b = load_dataset("digits-domains", cache_dir=tmp_path)
    p, h = b.train, b.targets["handwritten"]
    assert b.source == "printed" and len(b.train) + len(b.test) == 22 * 10 * 8 and len(h) == 1797
    assert p.x.shape[1:] == h.x.shape[1:] == (1, 16, 16) and p.x.dtype == h.x.dtype == torch.uint8
    assert torch.equal(torch.bincount(b.test.y), torch.full((10,), 35))  # stratified: 20 % of 176 per class
    # the same acquisition pipeline (8×8 block counts): similar brightness, yet different images
    assert abs(p.x.float().mean() - h.x.float().mean()) < 0.05 * 255
    hp = {bytes(x.numpy()) for x in torch.cat([b.train.x, b.test.x])}
    assert not hp & {bytes(x.numpy()) for x in h.x}
    again = load_dataset("digits-domains", cache_dir=tmp_path)
    assert torch.equal(again.train.x, b.train.x)  # seeded and cached
    rev = load_dataset("digits-domains", cache_dir=tmp_path, source="handwritten", split={"target_holdout": 0.5})
    held, seen = rev.targets["printed"], rev.unlabeled["printed"]
    assert len(held) + len(seen) == 1760 and abs(len(held) - 880) <= 10
    assert not {bytes(x.numpy()) for x in held.x} & {bytes(x.numpy()) for x in seen.x}  # holdout never adapted on


def test_source_and_targets_never_meet(tmp_path):
    """The source's train / test split and every target are disjoint images; targets keep their labels only
    for evaluation."""
    b = load_dataset("digits-domains", cache_dir=tmp_path)
    tr, te = ({bytes(x.numpy()) for x in s.x} for s in (b.train, b.test))
    assert not tr & te
    for t, s in b.targets.items():
        assert not tr & {bytes(x.numpy()) for x in s.x}
        assert (b.unlabeled[t].y == -1).all() and torch.equal(b.unlabeled[t].x, s.x)


def test_imagefolder_domains(tmp_path):
    from PIL import Image

    for d, shade in (("photos", 200), ("sketches", 40)):
        for c in ("cat", "dog"):
            (tmp_path / d / c).mkdir(parents=True)
            for i in range(5):
                Image.fromarray(np.full((12, 12, 3), shade + i, np.uint8)).save(tmp_path / d / c / f"{i}.png")
    opts = {"domains": {"photos": "photos", "sketches": "sketches"}, "size": 8}
    b = load_dataset("imagefolder", root=tmp_path, cache_dir=tmp_path / "c", source="sketches", **opts)
    assert b.source == "sketches" and set(b.targets) == {"photos"} and len(b.targets["photos"]) == 10
    assert b.meta.class_names == ("cat", "dog") and int(b.train.x.float().mean()) < 50
    plain = load_dataset("imagefolder", root=tmp_path / "photos", cache_dir=tmp_path / "c", size=8)
    assert plain.source is None and not plain.targets


def test_build_bundle_rejects_a_tiny_source():
    from compressbench.data.base import DataMeta, ImageSet
    from compressbench.data.domains import DomainImages

    one = ImageSet(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), torch.zeros(1, dtype=torch.long))
    imgs = DomainImages(DataMeta("x", 1, 1, (4, 4), (), ()), {"a": one, "b": one})
    with pytest.raises(DatasetError, match="too few"):
        build_bundle(imgs, "a", ["b"])


# --------------------------------------------------------------------------- config
def _cfg(**dataset):
    return {"name": "d", "dataset": {"name": "digits-domains", **dataset}, "model": {"name": "tinycnn"}}


@pytest.mark.parametrize(
    "raw, expect",
    [
        (_cfg(source="printd"), "dataset.source: unknown source domain 'printd' (did you mean 'printed'?)"),
        (_cfg(source="printed", targets=["printed"]), "dataset.targets: the source domain 'printed' is also a target"),
        (_cfg(targets=["handwriten"]), "dataset.targets: unknown target domain 'handwriten'"),
        (_cfg(source=[]), "dataset.source: the list of source domains is empty"),
        (
            {**_cfg(), "dataset": {"name": "digits", "source": "a"}},
            "dataset.source: dataset 'digits' has no named domains",
        ),
        (
            {**_cfg(), "dataset": {"name": "digits"}, "variants": [{"method": "adapt.coral"}]},
            "variants[0]: domain adaptation (coral) needs a dataset with named domains",
        ),
        (
            {**_cfg(), "dataset": {"name": "digits"}, "train": {"adapt": {"method": "coral", "weight": 1}}},
            "train.adapt: domain adaptation (coral) needs",
        ),
        (
            {**_cfg(), "dataset": {"name": "digits"}, "evaluations": [{"evaluator": "domain_shift"}]},
            "evaluations[0]: domain_shift needs a dataset with named domains",
        ),
        (
            {
                **_cfg(source=["printed", "handwritten"]),
                "variants": [{"method": "adapt.coral", "params": {"targets": ["handwritten"]}}],
            },
            "variants[0]: adaptation target(s) ['handwritten'] are not targets of experiment 'd.handwritten'",
        ),
        ({**_cfg(), "train": {"adapt": {"method": "mmd"}}}, "train.adapt.method"),
        (
            {**_cfg(), "variants": [{"method": "adapt.coral", "params": {"init": "scratch"}}]},
            "init: scratch trains from scratch: give its lr",
        ),
        (
            {**_cfg(), "dataset": {"name": "digits-domains", "domain_split": {"test_fraction": 1.5}}},
            "dataset.domain_split.test_fraction",
        ),
    ],
)
def test_domain_config_errors_are_one_line(raw, expect):
    with pytest.raises(ConfigError) as e:
        validate(raw)
    assert expect in str(e.value) and "\n" not in str(e.value)


def test_a_list_of_sources_expands_into_siblings():
    from compressbench.plan import plan

    exp = validate(
        {
            **_cfg(source=["printed", "handwritten"]),
            "variants": [{"method": "adapt.coral"}],
            "evaluations": [{"evaluator": "domain_shift"}],
        }
    )
    parts = exp.parts
    assert [(p.name, p.dataset.source, p.dataset.targets) for p in parts] == [
        ("d.printed", "printed", None),
        ("d.handwritten", "handwritten", None),
    ]
    jobs = plan(exp)
    assert {j.labels.experiment for j in jobs} == {"d.printed", "d.handwritten"}
    assert sum(j.kind == "train" for j in jobs) == 2 and len({j.key for j in jobs}) == len(jobs)
    one = validate({**_cfg(source="printed", targets=["handwritten"])})
    assert [p.name for p in one.parts] == ["d"]
