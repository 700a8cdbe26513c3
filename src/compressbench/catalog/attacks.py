"""The built-in adversarial attacks, declared torch-free: their params schemas, the adversarial evaluator's
``attacks:`` entry (:class:`AttackConfig`) and what ``compressbench list`` shows. The attack classes register in
:mod:`compressbench.evaluate.attacks` (imported on first use)."""

from __future__ import annotations

import difflib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..registry import attacks
from .base import Params

Norm = Literal["linf", "l2", "l0"]


class AttackConfig(BaseModel):
    """One attack configuration: the fields every attack understands, plus the attack's own
    parameters (any other key), validated by the attack's registered ``params`` schema.

    ``eps`` (fixed-budget attacks only): ε grid in pixel space ([0, 1] images; 0 → clean);
    ``thresholds`` (minimum-norm attacks only): report ``robust_top1_at_norm`` at these norms;
    ``stronger_steps`` (iterative attacks only): sanity check — re-run at one ε with this many steps
    (0: off; None: 4 × steps)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    eps: list[float] | None = None
    norm: Norm | None = None
    thresholds: list[float] | None = None
    stronger_steps: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _check(self) -> AttackConfig:
        r = attacks.resolve(self.name)  # unknown -> "unknown attack ...; did you mean"
        norms = attacks.field(r, "norms")  # declared: validating imports no attack code (torch)
        n = self.name
        if self.norm is not None and self.norm not in norms:
            raise ValueError(f"attack '{n}' supports norms {list(norms)}, not '{self.norm}'")
        if attacks.field(r, "minimum_norm"):
            if self.eps is not None:
                raise ValueError(
                    f"attack '{n}' is minimum-norm (it finds the smallest perturbation): it takes no "
                    f"eps; use 'thresholds' to report robust accuracy at given norms"
                )
            if self.thresholds is not None and any(not t >= 0 for t in self.thresholds):
                raise ValueError(f"attack '{n}': thresholds must be >= 0, got {self.thresholds}")
        else:
            if not self.eps:
                raise ValueError(f"attack '{n}' needs an eps grid (e.g. eps: [0, 0.00392, 0.00784])")
            if any(not e >= 0 for e in self.eps):
                raise ValueError(f"attack '{n}': eps must be >= 0, got {self.eps}")
            if self.thresholds is not None:
                raise ValueError(f"attack '{n}' has a fixed budget (eps): 'thresholds' is for minimum-norm attacks")
        if self.stronger_steps is not None and not attacks.field(r, "iterative"):
            raise ValueError(f"attack '{n}' is not iterative: 'stronger_steps' does not apply")
        self.params  # validate the attack's own parameters now  # noqa: B018
        return self

    @property
    def params(self) -> Params:
        """The attack's own parameters (validated by its schema)."""
        schema = attacks.field(self.name, "params")
        extra = dict(self.model_extra or {})
        if schema is None:
            if extra:
                raise ValueError(f"attack '{self.name}' takes no parameters besides eps/norm; got {sorted(extra)}")
            return Params()
        try:
            return schema.model_validate(extra)
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                minimum_norm, iterative = (attacks.field(self.name, k) for k in ("minimum_norm", "iterative"))
                allowed = ["name", "thresholds" if minimum_norm else "eps", "norm"]
                allowed += (["stronger_steps"] if iterative else []) + list(schema.model_fields)
                close = difflib.get_close_matches(field, allowed, n=1, cutoff=0.5)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ValueError(
                    f"unknown parameter '{field}' for attack '{self.name}'{hint}; allowed: {', '.join(allowed)}"
                ) from None
            raise ValueError(f"attack '{self.name}' parameter '{field}': {err['msg']}") from None

    @property
    def resolved_norm(self) -> str:
        return self.norm or attacks.field(self.name, "norms")[0]


class PGDParams(Params):
    steps: int = Field(10, ge=1, le=100_000)
    step_size: float | None = Field(None, gt=0)  # absolute step size; default rel_step_size·ε
    rel_step_size: float | None = Field(None, gt=0)  # step as a fraction of ε; default 2.5 / steps
    random_start: bool = True


class DeepFoolParams(Params):
    steps: int = Field(50, ge=1, le=100_000)
    candidates: int | None = Field(None, ge=2)  # None: min(10, classes)
    overshoot: float = Field(0.02, ge=0)


class CWParams(Params):
    steps: int = Field(100, ge=1, le=100_000)  # per binary-search step; the paper uses up to 10 000 (slow on CPU)
    binary_search_steps: int = Field(5, ge=1, le=100)
    stepsize: float = Field(0.01, gt=0)
    initial_const: float = Field(0.01, gt=0)
    confidence: float = Field(0.0, ge=0)
    abort_early: bool = True


class DDNParams(Params):
    steps: int = Field(100, ge=1, le=100_000)
    init_epsilon: float = Field(1.0, gt=0)
    gamma: float = Field(0.05, gt=0, lt=1)


# --------------------------------------------------------------------------- torchattacks
class AutoAttackParams(Params):
    version: Literal["standard", "plus", "rand"] = "standard"
    seed: int = Field(0, ge=0, lt=2**32)


class JSMAParams(Params):
    theta: float = Field(1.0, gt=0, le=1)  # perturbation per changed feature (pixels pushed towards 1 or 0)
    gamma: float = Field(0.1, gt=0, le=1)  # largest fraction of features that may change


# --------------------------------------------------------------------------- declarations: registry.attacks
attacks.declare(
    "autoattack",
    description="AutoAttack standard suite (APGD-CE, APGD-T, FAB-T, Square), torchattacks; slow",
    params=AutoAttackParams,
    norms=("linf", "l2"),
    minimum_norm=False,
    iterative=True,
    backend="torchattacks",
    masking_probe=None,
)
attacks.declare(
    "cw",
    description="Carlini & Wagner L2 with binary search over c (binary_search_steps)",
    params=CWParams,
    norms=("l2",),
    minimum_norm=True,
    iterative=True,
    backend="foolbox",
    masking_probe=None,
)
attacks.declare(
    "ddn",
    description="Decoupled Direction and Norm (Rony et al. 2019), minimum-norm L2",
    params=DDNParams,
    norms=("l2",),
    minimum_norm=True,
    iterative=True,
    backend="foolbox",
    masking_probe=None,
)
attacks.declare(
    "deepfool",
    description="DeepFool (Moosavi-Dezfooli et al. 2016), minimum-norm, 10 candidate classes",
    params=DeepFoolParams,
    norms=("l2", "linf"),
    minimum_norm=True,
    iterative=True,
    backend="foolbox",
    masking_probe=None,
)
attacks.declare(
    "fgsm",
    description="FGSM (Goodfellow et al. 2015); norm l2 = fast gradient method",
    norms=("linf", "l2"),
    minimum_norm=False,
    iterative=False,
    backend="foolbox",
    masking_probe=None,
)
attacks.declare(
    "jsma",
    description="Jacobian saliency map attack (Papernot et al. 2016), L0, torchattacks; small images",
    version=2,
    params=JSMAParams,
    norms=("l0",),
    minimum_norm=True,
    iterative=False,
    backend="torchattacks",
    masking_probe=None,
)
attacks.declare(
    "pgd",
    description="PGD (Madry et al. 2018), L∞ or L2, random start; step 2.5·ε/steps by default",
    params=PGDParams,
    norms=("linf", "l2"),
    minimum_norm=False,
    iterative=True,
    backend="foolbox",
    masking_probe={"steps": 20},
)
