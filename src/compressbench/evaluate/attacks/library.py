"""Attacks behind one interface, registered in ``registry.attacks``.

Every attack is a class built from an :class:`AttackSpec` (one entry of the ``adversarial``
evaluator's ``attacks`` list) and run as ``attack.run(model, x, y, eps)``:

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
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from ...interfaces import Params
from ...registry import attacks

log = logging.getLogger(__name__)

Norm = Literal["linf", "l2"]


class AttackSpec(Params):
    """One attack configuration. Unused fields are ignored by attacks that do not need them."""

    name: str
    eps: list[float] | None = None  # fixed-budget attacks: ε grid in pixel space ([0, 1] images); 0 -> clean
    norm: Norm | None = None  # None: the attack's default norm
    steps: int | None = Field(None, ge=1)  # iterations (PGD, DeepFool, C&W per binary-search step, DDN)
    step_size: float | None = Field(None, gt=0)  # absolute step size (PGD); default rel_step_size·ε
    rel_step_size: float | None = Field(None, gt=0)  # PGD step as a fraction of ε; default 2.5 / steps
    random_start: bool = True  # PGD
    thresholds: list[float] | None = None  # minimum-norm attacks: report robust_top1_at_norm at these norms
    stronger_steps: int | None = Field(None, ge=0)  # PGD sanity check: re-run at one ε with this many steps
    options: dict[str, Any] = Field(default_factory=dict)  # extra backend keyword arguments

    @model_validator(mode="after")
    def _check(self) -> AttackSpec:
        if self.name not in attacks:
            # raises the registry's one-line "unknown attack ...; did you mean" error
            attacks.entry(self.name)
        cls = attacks.get(self.name)
        if self.norm is not None and self.norm not in cls.norms:
            raise ValueError(f"attack '{self.name}' supports norms {list(cls.norms)}, not '{self.norm}'")
        if not cls.minimum_norm:
            if not self.eps:
                raise ValueError(f"attack '{self.name}' needs an eps grid (e.g. eps: [0, 0.00392, 0.00784])")
            if any(e < 0 for e in self.eps):
                raise ValueError(f"attack '{self.name}': eps must be >= 0, got {self.eps}")
        if self.thresholds is not None and any(t < 0 for t in self.thresholds):
            raise ValueError(f"attack '{self.name}': thresholds must be >= 0, got {self.thresholds}")
        return self

    @property
    def resolved_norm(self) -> str:
        return self.norm or attacks.get(self.name).norms[0]


def perturbation_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-image norm of a perturbation in pixel space."""
    flat = delta.flatten(1).float()
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


class Attack(ABC):
    """Base class. Subclasses set ``name``, ``norms``, ``minimum_norm`` and implement ``_run``."""

    name: ClassVar[str] = ""
    norms: ClassVar[tuple[str, ...]] = ("linf",)
    minimum_norm: ClassVar[bool] = False
    backend: ClassVar[str] = ""
    default_steps: ClassVar[int | None] = None

    def __init__(self, spec: AttackSpec, num_classes: int):
        self.spec = spec
        self.norm = spec.resolved_norm
        self.steps = spec.steps if spec.steps is not None else self.default_steps
        self.num_classes = num_classes

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

    def describe(self) -> dict[str, Any]:
        """Condition keys identifying this configuration (steps only where it means something)."""
        d: dict[str, Any] = {"attack": self.name, "norm": self.norm}
        if self.steps is not None:
            d["steps"] = int(self.steps)
        return d


# --------------------------------------------------------------------------- foolbox-backed
class _Foolbox(Attack):
    backend = "foolbox"

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


@attacks.register("fgsm", version=1, backend="foolbox", minimum_norm=False, norms=("linf", "l2"),
                  description="FGSM (Goodfellow et al. 2015); norm l2 = fast gradient method")
class FGSM(_Foolbox):
    name = "fgsm"
    norms = ("linf", "l2")

    def _make(self, eps: float | None) -> Any:
        import foolbox as fb

        return fb.attacks.FGSM(**self.spec.options) if self.norm == "linf" else \
            fb.attacks.L2FastGradientAttack(**self.spec.options)

    def describe(self) -> dict[str, Any]:
        return {"attack": self.name, "norm": self.norm, "steps": 1}


@attacks.register("pgd", version=1, backend="foolbox", minimum_norm=False, norms=("linf", "l2"),
                  description="PGD (Madry et al. 2018), L∞ or L2, random start; step 2.5·ε/steps by default")
class PGD(_Foolbox):
    name = "pgd"
    norms = ("linf", "l2")
    default_steps = 10

    def _make(self, eps: float | None) -> Any:
        import foolbox as fb

        steps = int(self.steps)
        kw: dict[str, Any] = {"steps": steps, "random_start": self.spec.random_start}
        if self.spec.step_size is not None:
            kw["abs_stepsize"] = self.spec.step_size
        else:
            kw["rel_stepsize"] = self.spec.rel_step_size or 2.5 / steps
        kw.update(self.spec.options)
        cls = fb.attacks.LinfPGD if self.norm == "linf" else fb.attacks.L2PGD
        return cls(**kw)

    def with_steps(self, steps: int) -> PGD:
        """The same attack with more iterations (step size re-derived unless absolute)."""
        return PGD(self.spec.model_copy(update={"steps": steps}), self.num_classes)


@attacks.register("deepfool", version=1, backend="foolbox", minimum_norm=True, norms=("l2", "linf"),
                  description="DeepFool (Moosavi-Dezfooli et al. 2016), minimum-norm, 10 candidate classes")
class DeepFool(_Foolbox):
    name = "deepfool"
    norms = ("l2", "linf")
    minimum_norm = True
    default_steps = 50

    def _make(self, eps: float | None) -> Any:
        import foolbox as fb

        kw = {"steps": int(self.steps), "candidates": min(10, self.num_classes), **self.spec.options}
        return (fb.attacks.L2DeepFoolAttack if self.norm == "l2" else fb.attacks.LinfDeepFoolAttack)(**kw)


@attacks.register("cw", version=1, backend="foolbox", minimum_norm=True, norms=("l2",),
                  description="Carlini & Wagner L2 with binary search over c (options.binary_search_steps)")
class CarliniWagner(_Foolbox):
    name = "cw"
    norms = ("l2",)
    minimum_norm = True
    default_steps = 100  # per binary-search step; the paper uses up to 10 000 (too slow on CPU)

    def _make(self, eps: float | None) -> Any:
        import foolbox as fb

        kw = {"steps": int(self.steps), "binary_search_steps": 5, "stepsize": 0.01, "initial_const": 0.01,
              **self.spec.options}
        return fb.attacks.L2CarliniWagnerAttack(**kw)

    def describe(self) -> dict[str, Any]:
        bss = self.spec.options.get("binary_search_steps", 5)
        return {**super().describe(), "search_steps": int(bss)}


@attacks.register("ddn", version=1, backend="foolbox", minimum_norm=True, norms=("l2",),
                  description="Decoupled Direction and Norm (Rony et al. 2019), minimum-norm L2")
class DDN(_Foolbox):
    name = "ddn"
    norms = ("l2",)
    minimum_norm = True
    default_steps = 100

    def _make(self, eps: float | None) -> Any:
        import foolbox as fb

        return fb.attacks.DDNAttack(**{"steps": int(self.steps), "init_epsilon": 1.0, "gamma": 0.05,
                                       **self.spec.options})


# --------------------------------------------------------------------------- torchattacks
@attacks.register("autoattack", version=1, backend="torchattacks", minimum_norm=False, norms=("linf", "l2"),
                  description="AutoAttack standard suite (APGD-CE, APGD-T, FAB-T, Square), torchattacks; slow")
class AutoAttack(Attack):
    name = "autoattack"
    norms = ("linf", "l2")
    backend = "torchattacks"

    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None) -> torch.Tensor:
        import torchattacks

        kw = {"version": "standard", "seed": 0, **self.spec.options}
        atk = torchattacks.AutoAttack(model, norm="Linf" if self.norm == "linf" else "L2", eps=float(eps),
                                      n_classes=self.num_classes, **kw)
        x_adv = atk(x, y)
        # guard against float round-off of the projection
        delta = x_adv - x
        if self.norm == "linf":
            delta = delta.clamp(-eps, eps)
        else:
            n = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
            delta = delta * (eps / n).clamp(max=1.0).view(-1, *[1] * (x.dim() - 1))
        return (x + delta).clamp(0, 1)


def build_attack(spec: AttackSpec, num_classes: int) -> Attack:
    """Instantiate the registered attack for one spec."""
    return attacks.get(spec.name)(spec, num_classes)
