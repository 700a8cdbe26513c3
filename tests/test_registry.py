import pytest

from compressbench.registry import Registry, UnknownNameError, import_object


def test_register_get_and_meta():
    reg: Registry = Registry("thing")

    @reg.register("alpha", description="first", version=3)
    def alpha():
        return 1

    reg.register("beta", "math:sqrt")  # lazy
    assert reg.names() == ["alpha", "beta"]
    assert reg.get("alpha")() == 1
    assert reg.get("beta")(9) == 3.0
    assert reg.spec("alpha").version == 3 and reg.spec("alpha").description == "first"
    assert reg.spec("beta").version == 1
    assert "alpha" in reg and len(reg) == 2


def test_unknown_name_did_you_mean():
    reg: Registry = Registry("method")
    reg.register("prune.unstructured", object())
    with pytest.raises(UnknownNameError) as e:
        reg.get("prune.unstructurd")
    msg = str(e.value)
    assert "did you mean 'prune.unstructured'" in msg and "\n" not in msg


def test_unregister():
    reg: Registry = Registry("thing")
    reg.register("a", 1)
    reg.unregister("a")
    assert "a" not in reg
    with pytest.raises(UnknownNameError):
        reg.unregister("a")


def test_duplicate_registration_rejected():
    reg: Registry = Registry("thing")
    reg.register("a", 1)
    with pytest.raises(ValueError):
        reg.register("a", 2)


def test_import_object():
    assert import_object("os.path:join")("a", "b") == "a/b"
    with pytest.raises(ValueError):
        import_object("os.path.join")


def test_builtin_registries_populated():
    from compressbench.registry import datasets, models

    assert {"fashion-mnist", "cifar10", "cifar100", "imagefolder", "digits"} <= set(datasets.names())
    assert {"cnn5", "resnet8", "resnet20", "resnet56", "cifar_resnet18", "tv_resnet50"} <= set(models.names())
