"""Published weights (torchvision enums, timm tags): the offline line, the cached-file path, and transfer
learning — head replacement, first-conv adaptation, normalisation from the weights, a frozen backbone
(issue 13, items 2 and 3)."""

from __future__ import annotations

import pytest
import torch
import yaml

from compressbench.baseline import build_baseline, head_parameters
from compressbench.cli import main as cli_main
from compressbench.data.base import DataMeta
from compressbench.errors import CheckpointError
from compressbench.models import create_model
from compressbench.models import published as pub
from compressbench.registry import models
from compressbench.train import TrainRecipe, train

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
TV = {"name": "tv_resnet18", "width": 1.0, "kwargs": {}, "weights": "torchvision:IMAGENET1K_V1"}


def _meta(classes: int, channels: int, size: int = 32) -> DataMeta:
    return DataMeta("toy", classes, channels, (size, size), (0.5,) * channels, (0.25,) * channels)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def imagenet_file(torch_home):
    """A stand-in for resnet18-f37072fd.pth in torch hub's cache: a random torchvision ResNet-18 state dict
    (1000 classes), so the cached-file path runs without a network."""
    torch.manual_seed(0)
    net = create_model("tv_resnet18", _meta(1000, 3)).net
    torch_home.mkdir(parents=True)
    path = torch_home / "resnet18-f37072fd.pth"
    torch.save(net.state_dict(), path)
    return path, net.state_dict()


def test_torchvision_offline_run_is_one_line(tmp_path, torch_home, monkeypatch, capsys):
    monkeypatch.setattr(pub, "_reachable", lambda host, timeout=5.0: False)  # as on this machine: no network
    raw = {
        "name": "pre",
        "dataset": {"name": "synthetic", "options": {"num_classes": 1000, "n_train": 4, "n_test": 4}},
        "model": {"name": "tv_resnet18", "weights": "torchvision:IMAGENET1K_V1"},
        "train": None,
        "cache_dir": str(tmp_path / "cache"),
        "store": str(tmp_path / "r.sqlite"),
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    assert cli_main(["validate", str(tmp_path / "c.yaml")]) == 0  # the tag resolves; the file comes at run
    capsys.readouterr()
    assert cli_main(["run", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    line = err[0]
    want = f"{torch_home}/resnet18-f37072fd.pth"
    assert line.startswith("error: weights torchvision:ResNet18_Weights.IMAGENET1K_V1 are not cached in " + want)
    assert "download.pytorch.org is unreachable (offline?)" in line
    assert "download https://download.pytorch.org/models/resnet18-f37072fd.pth to " + want in line
    assert "or pass a local file as model.weights" in line
    assert not (tmp_path / "r.sqlite").exists() and not (tmp_path / "cache").exists()  # before any work


def test_offline_switch_and_timm_tag_line(monkeypatch):
    monkeypatch.setenv("COMPRESSBENCH_OFFLINE", "1")
    w = models.spec("timm:resnet18").published("timm:a1_in1k")
    monkeypatch.setattr(pub.Published, "locate", lambda self: None)
    with pytest.raises(CheckpointError) as e:
        w.fetch()
    msg = str(e.value)
    assert msg.startswith("weights timm:resnet18.a1_in1k are not cached in ")
    assert "models--timm--resnet18.a1_in1k" in msg
    assert "COMPRESSBENCH_OFFLINE is set" in msg and "https://huggingface.co/timm/resnet18.a1_in1k" in msg
    assert w.identity() == {"published": "timm:resnet18.a1_in1k", "source": "timm/resnet18.a1_in1k"}
    assert models.spec("timm:resnet18").published("timm").label == "timm:resnet18.a1_in1k"  # the default tag


def test_cached_weights_load_with_their_normalisation(imagenet_file):
    path, sd = imagenet_file
    base = build_baseline(TV, _meta(1000, 3), transfer=False)
    assert str(path) in base.where and base.normalize.startswith("torchvision:ResNet18_Weights.IMAGENET1K_V1")
    assert torch.equal(base.model.net.fc.weight, sd["fc.weight"])
    assert torch.allclose(base.model.normalize.mean.flatten(), torch.tensor(IMAGENET[0]))
    assert torch.allclose(base.model.normalize.std.flatten(), torch.tensor(IMAGENET[1]))


def test_transfer_replaces_the_head_and_adapts_the_first_conv(imagenet_file):
    _, sd = imagenet_file
    with pytest.raises(CheckpointError, match="another number of classes"):
        build_baseline(TV, _meta(31, 3), transfer=False)  # train: null cannot change the classes
    torch.manual_seed(1)
    base = build_baseline(TV, _meta(31, 1), transfer=True)  # Office-31-like classes, grey images
    net = base.model.net
    assert net.fc.weight.shape == (31, 512) and not torch.equal(net.fc.weight[:31], sd["fc.weight"][:31])
    assert torch.allclose(net.conv1.weight, sd["conv1.weight"].sum(1, keepdim=True))  # summed over RGB
    assert torch.equal(net.layer4[1].conv2.weight, sd["layer4.1.conv2.weight"])  # the backbone is the file's
    assert base.notes == [
        "classifier net.fc replaced: 1000 → 31 classes (re-initialised)",
        "first conv net.conv1 adapted from 3 to 1 input channel(s) (summed over its input channels)",
    ]
    assert base.model.normalize.mean.item() == pytest.approx(sum(IMAGENET[0]) / 3)


def test_frozen_backbone_trains_only_the_head(rgb_bundle):
    torch.manual_seed(0)
    model = create_model("tinycnn", rgb_bundle.meta)
    head = head_parameters(model, "tinycnn")
    assert head == {"net.9.weight", "net.9.bias"}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recipe = TrainRecipe(epochs=1, batch_size=64, lr=0.1, augment="none", freeze_epochs=1)
    train(model, rgb_bundle.train, recipe, show_progress=False, trainable=head)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == head  # BatchNorm statistics frozen too
    assert all(p.requires_grad for p in model.parameters())
    recipe = TrainRecipe(epochs=2, batch_size=64, lr=0.1, augment="none", freeze_epochs=1)
    train(model, rgb_bundle.train, recipe, show_progress=False, trainable=head)
    assert not torch.equal(model.state_dict()["net.0.weight"], before["net.0.weight"])  # then everything trains
