import pytest
import torch

from compressbench.data.base import DataMeta
from compressbench.models import Classifier, count_params, create_model
from compressbench.registry import UnknownNameError, models

GRAY = DataMeta("g", 10, 1, (28, 28), (0.5,), (0.25,))
RGB = DataMeta("c", 7, 3, (32, 32), (0.4, 0.5, 0.6), (0.2, 0.2, 0.2))


@pytest.mark.parametrize("name", ["tinycnn", "cnn5", "resnet8", "resnet20", "cifar_resnet18", "cifar_resnet50"])
@pytest.mark.parametrize("meta", [GRAY, RGB], ids=["gray", "rgb"])
def test_small_image_models_forward(name, meta):
    m = create_model(name, meta, width=0.25 if "resnet" in name else 1.0)
    assert isinstance(m, Classifier)
    out = m(torch.rand(2, meta.channels, *meta.size))
    assert out.shape == (2, meta.num_classes)


def test_he_cifar_resnet_param_counts():
    # He et al. 2016 report 0.27M parameters for ResNet-20 and 0.85M for ResNet-56 (with option-A
    # shortcuts); our 1×1-conv (option B) shortcuts add a few thousand.
    r20 = count_params(create_model("resnet20", RGB))
    r56 = count_params(create_model("resnet56", RGB))
    assert 0.26e6 < r20 < 0.29e6 and 0.84e6 < r56 < 0.88e6


def test_cifar_resnet18_matches_torchvision_body():
    import torchvision

    ours = count_params(create_model("cifar_resnet18", DataMeta("c", 1000, 3, (32, 32), (0,) * 3, (1,) * 3)).net)
    tv = count_params(torchvision.models.resnet18(num_classes=1000))
    # only the stem differs: 3×3×3×64 instead of 7×7×3×64
    assert tv - ours == (7 * 7 - 3 * 3) * 3 * 64


def test_width_multiplier_and_input_channels():
    a, b = create_model("cnn5", GRAY), create_model("cnn5", GRAY, width=0.5)
    assert count_params(b) < count_params(a) / 3
    assert create_model("tv_resnet18", GRAY).net.conv1.in_channels == 1


def test_normalisation_inside_model():
    m = create_model("tinycnn", RGB)
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(m.normalize(x), (x - torch.tensor(RGB.mean).view(1, 3, 1, 1)) / 0.2)


def test_user_factory(tmp_path, monkeypatch):
    (tmp_path / "mymodels.py").write_text(
        "import torch.nn as nn\n"
        "def build(meta, width=1.0):\n"
        "    n = meta.channels * meta.size[0] * meta.size[1]\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(n, meta.num_classes))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UnknownNameError, match="not registered in this process"):
        create_model("mymodels:build", GRAY)  # create_model only looks up: it never imports
    models.resolve("mymodels:build")  # what a config naming it does at validation
    try:
        m = create_model("mymodels:build", GRAY)
        assert m(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    finally:
        models.unregister("mymodels:build")  # registries are global: leave them as found


def test_every_registered_model_builds():
    for name in models.names():
        if name.endswith(("101", "152")):
            continue  # large; same code path as 50
        m = create_model(name, RGB, width=0.125)
        assert count_params(m) > 0
