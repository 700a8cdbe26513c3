"""The registries added for issue 21: pruning importance criteria (channel groups and single weights) and
domain adaptation losses — a new one is one registration, used from a config, an unknown name is one line
with a "did you mean" — and the capability flags that replaced name and unit tests (``compresses``,
``measures_time``, ``AttackSpec.masking_probe``)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from compressbench.adapt import Adaptation, AdaptParams, coral_loss
from compressbench.compress import compress
from compressbench.compress.budget import composition
from compressbench.compress.structured import StructuredParams
from compressbench.compress.unstructured import UnstructuredParams
from compressbench.config import ConfigError
from compressbench.data.domains import unlabeled
from compressbench.evaluate.attacks import AttackConfig
from compressbench.evaluate.attacks.evaluator import AdversarialParams, probe_attack
from compressbench.interfaces import Budget
from compressbench.models import create_model
from compressbench.registry import adapt_losses, attacks, channel_criteria, evaluators, methods, weight_criteria
from compressbench.specs import MetricSpec
from compressbench.train import TrainRecipe, train
from compressbench.validate import validate
from test_compress_common import make_context

BASE = {
    "name": "t",
    "dataset": {"name": "digits"},
    "model": {"name": "tinycnn"},
    "train": {"epochs": 1},
    "evaluations": [{"evaluator": "clean"}],
}


def _error(tmp_path, **changes) -> str:
    with pytest.raises(ConfigError) as e:
        validate({**BASE, "cache_dir": str(tmp_path / "c"), "store": str(tmp_path / "s.sqlite"), **changes})
    assert "\n" not in str(e.value)
    return str(e.value)


def test_unknown_criteria_and_losses_fail_with_the_field_and_a_suggestion(tmp_path):
    msg = _error(tmp_path, variants=[{"method": "prune.structured", "params": {"criterion": "l3"}}])
    assert msg.startswith("variants[0].params.criterion: unknown channel criterion 'l3'; did you mean")
    assert "bn_scale, l1, l2, random, taylor" in msg
    msg = _error(tmp_path, variants=[{"method": "prune.unstructured", "params": {"criterion": "bn_scale"}}])
    assert "unknown weight criterion 'bn_scale'" in msg and "(known: l1, random)" in msg
    msg = _error(tmp_path, variants=[{"method": "distill", "params": {"adapt": {"method": "corl"}}}])
    assert msg.startswith("variants[0].params.adapt.method: unknown adaptation loss 'corl'; did you mean 'coral'")
    assert "train.adapt.method: unknown adaptation loss 'mmd'" in _error(
        tmp_path, train={"epochs": 1, "adapt": {"method": "mmd"}}
    )


def test_params_dump_as_before():
    """Criterion and loss names stay strings as written: the params (and the cache keys) dump as before."""
    assert StructuredParams().model_dump(mode="json")["criterion"] == "l1"
    assert UnstructuredParams(criterion="random").model_dump(mode="json")["criterion"] == "random"
    assert AdaptParams().model_dump(mode="json") == {
        "method": "coral",
        "weight": 1.0,
        "targets": None,
        "features": "penultimate",
    }


@pytest.fixture
def registered():
    """Registers components for one test and removes them afterwards (registries are global)."""
    done: list[tuple] = []

    def register(reg, name, *args, **kw):
        out = reg.register(name, *args, **kw)
        done.append((reg, name))
        return out

    yield register
    for reg, name in done:
        reg.unregister(name)


def test_a_new_channel_criterion_is_one_registration(registered, tiny_model, digits_bundle, tmp_path):
    import torch_pruning as tp

    calls = []

    def l1_counted():
        calls.append(1)
        return tp.importance.GroupMagnitudeImportance(p=1)

    registered(channel_criteria, "test.l1", l1_counted, description="L1, counted")
    ctx = make_context(digits_bundle, tmp_path)
    params = {"finetune": {"epochs": 0}}
    ours = compress(
        "prune.structured",
        tiny_model,
        ctx,
        Budget("knob", 0.4),
        StructuredParams.model_validate({**params, "criterion": "test.l1"}),
    )
    ref = compress("prune.structured", tiny_model, ctx, Budget("knob", 0.4), StructuredParams.model_validate(params))
    assert calls  # the registered criterion scored the groups ...
    assert ours.record["layers"] == ref.record["layers"]  # ... as Torch-Pruning's own L1 does
    assert all(
        torch.equal(a, b)
        for a, b in zip(ours.model.state_dict().values(), ref.model.state_dict().values(), strict=True)
    )
    assert channel_criteria.spec("taylor").gradients and not channel_criteria.spec("test.l1").gradients


def test_a_new_weight_criterion_is_one_registration(registered, tiny_model, digits_bundle, tmp_path):
    from torch.nn.utils import prune

    class LargestFirst(prune.L1Unstructured):
        """Prunes the largest weights (a deliberately odd criterion: the result must differ from L1's)."""

        def compute_mask(self, t, default_mask):
            return super().compute_mask(1 / (t.abs() + 1e-12), default_mask)

    registered(weight_criteria, "test.largest", LargestFirst, description="largest |w| first")
    ctx = make_context(digits_bundle, tmp_path)
    params = {"finetune": {"epochs": 0}, "sparsity": 0.5}
    odd = compress(
        "prune.unstructured",
        tiny_model,
        ctx,
        None,
        UnstructuredParams.model_validate({**params, "criterion": "test.largest"}),
    )
    l1 = compress("prune.unstructured", tiny_model, ctx, None, UnstructuredParams.model_validate(params))
    w0, w_odd, w_l1 = (m.net[0].weight for m in (tiny_model, odd.model, l1.model))
    kept_odd, kept_l1 = w0[w_odd != 0].abs(), w0[w_l1 != 0].abs()
    assert odd.achieved["params"] == pytest.approx(l1.achieved["params"])  # the same sparsity ...
    assert kept_odd.max() < kept_l1.max()  # ... but the small weights kept instead of the large ones


def test_a_second_adaptation_loss_is_one_registration(registered, digits_bundle):
    seen = []

    def mean_gap(source, target):
        seen.append((source.shape, target.shape))
        return (source.mean(0) - target.mean(0)).pow(2).sum()

    registered(adapt_losses, "test.mean_gap", mean_gap, description="squared gap of the feature means")
    p = AdaptParams.model_validate({"method": "test.mean_gap", "weight": 2.0})
    assert p.label() == "test.mean_gap(λ=2)"
    target = digits_bundle.test
    torch.manual_seed(0)
    m = create_model("tinycnn", digits_bundle.meta)
    stats = train(
        m,
        digits_bundle.train,
        TrainRecipe(epochs=0.2, batch_size=64, lr=0.1, augment="none"),
        seed=0,
        show_progress=False,
        adapt=Adaptation(p.method, p.weight, unlabeled(target)),
    )
    assert seen and seen[0] == (torch.Size([64, 16]), torch.Size([64, 16])) and stats["train_adapt_loss"] > 0
    a = torch.randn(8, 4)
    assert Adaptation("coral", 1.0, target).loss(a, a + 1) == coral_loss(a, a + 1)


def test_capability_flags():
    # a method that only adapts is filed under the stages around it: its spec says so, not its family
    assert not methods.spec("adapt.coral").compresses and methods.spec("prune.structured").compresses
    assert composition("adapt.coral", methods.spec("adapt.coral").params())["compression"] == ""
    # timing evaluators: the flag, not the units of their metrics
    from compressbench.execute.ray_options import measures_time

    assert evaluators.spec("efficiency").measures_time and measures_time("efficiency")
    assert not measures_time("clean")
    evaluators.register("test.ms", lambda m, c, p: [], metrics=(MetricSpec("t", unit="ms"),))
    try:
        assert not measures_time("test.ms")  # a unit is no longer a guess at what an evaluator does
    finally:
        evaluators.unregister("test.ms")


def test_masking_probe_comes_from_the_attack_spec(registered):
    p = AdversarialParams(attacks=[AttackConfig(name="fgsm", eps=[0.1])], masking_probe_eps=0.5)
    probe = probe_attack(p)
    assert (probe.name, probe.resolved_norm, probe.eps, probe.params.steps) == ("pgd", "linf", [0.5], 20)
    assert probe_attack(AdversarialParams(attacks=p.attacks)) is None
    pgd = attacks.entry("pgd")
    registered(attacks, "test.pgd2", pgd.load(), spec=dataclasses.replace(pgd.spec, masking_probe={"steps": 3}))
    with pytest.raises(ValueError, match=r"several attacks can be the probe \(pgd, test.pgd2\)"):
        AdversarialParams(attacks=p.attacks, masking_probe_eps=0.5)
    listed = AdversarialParams(attacks=[AttackConfig(name="test.pgd2", eps=[0.1])], masking_probe_eps=0.5)
    assert probe_attack(listed).name == "test.pgd2" and probe_attack(listed).params.steps == 3
