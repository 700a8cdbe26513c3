"""Attacks behind one interface, registered in ``registry.attacks``.

Every attack is a class registered with an :class:`~compressbench.specs.AttackSpec` (its norms,
whether it is minimum-norm / iterative / single-step, its own parameters schema, its version; a built-in's
declared fields come from its declaration in :mod:`compressbench.catalog.attacks`, the registration here adds
the code-side ones: cost hooks, ``single_step``, ``max_features``) and built from an :class:`AttackConfig`
(one entry of the ``adversarial`` evaluator's ``attacks`` list: ``{name, eps | thresholds, norm,
stronger_steps}`` plus the attack's own parameters, validated by its schema),
then run as ``attack.run(model, x, y, eps)``:

* fixed-budget attacks (FGSM, PGD, AutoAttack) return adversarials with ``‖x_adv − x‖ ≤ eps``;
* minimum-norm attacks (DeepFool, C&W-L2, DDN) ignore ``eps`` and return the smallest
  perturbation they find (``x`` itself where they fail).

Images are float N×C×H×W in [0, 1]; ε and norms are measured in that pixel space (the model's
first layer normalises), so the threat model is the same for every dataset.

Backends (chosen on evidence, checked with torch 2.14.1 / numpy 2.4 / eagerpy 0.30 on CPU):

* **foolbox 3.3.4** covers FGSM (L∞ and L2 fast gradient), PGD-L∞ / PGD-L2 with random start,
  DeepFool (L2 / L∞), C&W-L2 *with* its binary search over c, and DDN — the whole list but
  AutoAttack, in one library. All six ran on the tiny digits CNN; minimum-norm attacks reached
  100 % success with median L2 0.08–0.10 (see docs/attacks.md).
* **torchattacks 3.5.1** only for AutoAttack (standard suite: APGD-CE, APGD-T, FAB-T, Square),
  the one maintained re-implementation that imports without extra dependencies.
  torchattacks' own C&W has no binary search and it has no DDN, so it is not used for those.
* adversarial-robustness-toolbox is not used: it has no DDN and adds ``multiprocess``; everything
  it would add is covered above.

No attack is written here from scratch. foolbox's PGD default step (``rel_stepsize=0.01/0.3``) is
tuned for 40 steps at ε = 0.3; with few steps it under-attacks (it came out *weaker* than FGSM at
2/255 with 20 steps), so our default step is Madry et al.'s rule ``2.5·ε / steps``.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from ...catalog.attacks import (  # noqa: F401 (torch-free: compressbench.catalog)
    AttackConfig,
    AutoAttackParams,
    CWParams,
    DDNParams,
    DeepFoolParams,
    JSMAParams,
    Norm,
    PGDParams,
)
from ...costs import INPUT_GRADIENT
from ...registry import attacks
from ...specs import AttackSpec

log = logging.getLogger(__name__)


def perturbation_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-image norm of a perturbation in pixel space; ``l0`` is the *fraction* of input features
    (pixels × channels) changed, so that thresholds do not depend on the image size."""
    flat = delta.flatten(1).float()
    if norm == "l0":
        return (flat.abs() > 1e-6).float().mean(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


class Attack(ABC):
    """Base class of the attacks. ``config`` is the user's entry, ``spec`` the registered capabilities,
    ``p`` the attack's own validated parameters."""

    def __init__(self, config: AttackConfig, num_classes: int):
        self.config = config
        self.spec: AttackSpec = attacks.spec(config.name)
        self.name = attacks.entry(config.name).name
        self.p = config.params
        self.norm = config.resolved_norm
        self.steps: int | None = getattr(self.p, "steps", None)
        self.num_classes = num_classes

    @property
    def minimum_norm(self) -> bool:
        return self.spec.minimum_norm

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None = None) -> torch.Tensor:
        """Adversarial images for ``model`` (float, eval mode, differentiable)."""
        if not self.minimum_norm:
            if eps is None:
                raise ValueError(f"attack '{self.name}' needs eps")
            if eps == 0:
                return x.clone()
        model.eval()
        x_adv = self._run(model, x, y, eps).detach().to(x.dtype).clamp_(0, 1)
        if not self.minimum_norm:
            n = perturbation_norm(x_adv - x, self.norm).max().item()
            if n > eps * (1 + 1e-4) + 1e-5:
                raise RuntimeError(f"attack '{self.name}' exceeded its budget: ‖δ‖={n:.6g} > ε={eps:.6g}")
        return x_adv

    @abstractmethod
    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None) -> torch.Tensor:
        """The backend call: adversarial images (the base class clamps and checks the budget)."""

    def targets(self, y: torch.Tensor) -> torch.Tensor | None:
        """The classes a targeted attack pushes ``y``'s images to (None: untargeted). The evaluator then
        reports ``targeted_success_rate`` (the target reached) next to ``success_rate`` (any wrong class)."""
        return None

    def with_params(self, **changes: Any) -> Attack:
        """The same attack with some of its own parameters changed (e.g. more steps)."""
        cfg = AttackConfig(**{**self.config.model_dump(exclude_none=True), **changes})
        return type(self)(cfg, self.num_classes)

    def describe(self) -> dict[str, Any]:
        """Condition keys identifying this configuration (steps only where it means something)."""
        d: dict[str, Any] = {"attack": self.name, "norm": self.norm}
        if self.spec.single_step:
            d["steps"] = 1
        elif self.steps is not None:
            d["steps"] = int(self.steps)
        return d


# --------------------------------------------------------------------------- foolbox-backed
class _Foolbox(Attack):
    @abstractmethod
    def _make(self, eps: float | None) -> Any:
        """The configured foolbox attack object."""

    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None) -> torch.Tensor:
        import foolbox as fb

        fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=x.device)
        attack = self._make(eps)
        _, clipped, success = attack(fmodel, x, y, epsilons=None if self.minimum_norm else float(eps))
        if self.minimum_norm:  # where the attack failed, foolbox may return junk (C&W: zeros)
            clipped = torch.where(success.view(-1, *[1] * (x.dim() - 1)), clipped, x)
        return clipped


@attacks.register("fgsm", single_step=True)
class FGSM(_Foolbox):
    def _make(self, eps: float | None) -> Any:
        import foolbox as fb

        return fb.attacks.FGSM() if self.norm == "linf" else fb.attacks.L2FastGradientAttack()


@attacks.register("pgd")
class PGD(_Foolbox):
    def _make(self, eps: float | None) -> Any:
        import foolbox as fb

        p = self.p
        kw: dict[str, Any] = {"steps": p.steps, "random_start": p.random_start}
        if p.step_size is not None:
            kw["abs_stepsize"] = p.step_size
        else:
            kw["rel_stepsize"] = p.rel_step_size or 2.5 / p.steps
        return (fb.attacks.LinfPGD if self.norm == "linf" else fb.attacks.L2PGD)(**kw)


def _deepfool_cost(p: DeepFoolParams, meta: Any) -> float:
    """An upper bound: every step takes a gradient per candidate class but the first (foolbox stops early
    once every image of the batch is fooled — after a few steps on an undefended model)."""
    candidates = p.candidates or min(10, meta.num_classes)
    return INPUT_GRADIENT * p.steps * max(1, candidates - 1)


@attacks.register("deepfool", cost=_deepfool_cost)
class DeepFool(_Foolbox):
    def _make(self, eps: float | None) -> Any:
        import foolbox as fb

        kw = {
            "steps": self.p.steps,
            "candidates": self.p.candidates or min(10, self.num_classes),
            "overshoot": self.p.overshoot,
        }
        return (fb.attacks.L2DeepFoolAttack if self.norm == "l2" else fb.attacks.LinfDeepFoolAttack)(**kw)


@attacks.register(
    "cw",
    cost=lambda p, meta: INPUT_GRADIENT * p.steps * p.binary_search_steps,  # at most
)
class CarliniWagner(_Foolbox):
    def _make(self, eps: float | None) -> Any:
        import foolbox as fb

        return fb.attacks.L2CarliniWagnerAttack(**self.p.model_dump())

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "search_steps": int(self.p.binary_search_steps)}


@attacks.register("ddn")
class DDN(_Foolbox):
    def _make(self, eps: float | None) -> Any:
        import foolbox as fb

        return fb.attacks.DDNAttack(**self.p.model_dump())


# ``compressbench plan``: APGD-CE's 100 steps; the suite's later attacks (APGD-T, FAB-T, Square) run only on
# the images still robust — few on an undefended model, up to ≈ 50× more on a robust one
@attacks.register("autoattack", cost=lambda p, meta: INPUT_GRADIENT * 100)
class AutoAttack(Attack):
    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None) -> torch.Tensor:
        import torchattacks

        atk = torchattacks.AutoAttack(
            model,
            norm="Linf" if self.norm == "linf" else "L2",
            eps=float(eps),
            n_classes=self.num_classes,
            version=self.p.version,
            seed=self.p.seed,
        )
        x_adv = atk(x, y)
        # guard against float round-off of the projection
        delta = x_adv - x
        if self.norm == "linf":
            delta = delta.clamp(-eps, eps)
        else:
            n = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
            delta = delta * (eps / n).clamp(max=1.0).view(-1, *[1] * (x.dim() - 1))
        return (x + delta).clamp(0, 1)


JSMA_MAX_FEATURES = 4096  # the saliency map is features × features floats per image: 4096² × 4 B = 64 MB


def _jsma_cost(p: JSMAParams, meta: Any) -> float:
    """At most ``features × gamma / 2`` iterations (two features change per iteration), each a forward pass
    and one input gradient per class (the Jacobian), image by image."""
    features = meta.channels * meta.size[0] * meta.size[1]
    return math.ceil(features * p.gamma / 2) * (1 + meta.num_classes)


@attacks.register("jsma", max_features=JSMA_MAX_FEATURES, cost=_jsma_cost)
class JSMA(Attack):
    """torchattacks' JSMA, targeted at the next class ``(y + 1) mod classes`` (its own untargeted default
    assumes 10 classes). Its saliency map is features × features per image, so inputs are limited to
    :data:`JSMA_MAX_FEATURES` features (e.g. 64×64 gray, 36×36 RGB).

    Success, two ways (version 2 adds the second): ``success_rate`` and ``median_norm`` / ``robust_top1_at_norm``
    count an image as fooled when it is misclassified *as anything* (as for every attack, so JSMA sits on
    the same robustness axis); ``targeted_success_rate`` counts only those classified as the target."""

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        return (y + 1) % self.num_classes

    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None) -> torch.Tensor:
        import torchattacks

        feats = int(x[0].numel())
        if feats > JSMA_MAX_FEATURES:
            raise ValueError(
                f"jsma: {tuple(x.shape[1:])} inputs have {feats} features; torchattacks' JSMA needs "
                f"features² memory per image — use images of at most {JSMA_MAX_FEATURES} features"
            )
        atk = torchattacks.JSMA(model, theta=self.p.theta, gamma=self.p.gamma)
        atk.set_mode_targeted_by_function(lambda _x, labels: self.targets(labels), quiet=True)
        return atk(x, y)


def build_attack(config: AttackConfig, num_classes: int) -> Attack:
    """Instantiate the registered attack for one config."""
    return attacks.get(config.name)(config, num_classes)
