"""Adversarial robustness: attacks (``registry.attacks``) and the ``adversarial`` evaluator.

* :mod:`.library`  — FGSM, PGD-L∞/L2, DeepFool, C&W-L2, DDN (foolbox) and AutoAttack
  (torchattacks) behind one :class:`~.library.Attack` interface, each with its own typed
  parameters; why these backends: see there.
* :mod:`.quantsim` — detection of quantized variants and their fake-quant / STE float simulation.
* :mod:`.evaluator` — the ``adversarial`` evaluator (modes whitebox / transfer / whitebox-ste).
"""

from . import evaluator, library  # noqa: F401  (importing registers the evaluator and the attacks)
from .evaluator import AdversarialParams, adversarial
from .library import Attack, AttackConfig, build_attack, perturbation_norm
from .quantsim import NotSimulatable, is_quantized_model, ste_simulation

__all__ = [
    "AdversarialParams",
    "adversarial",
    "Attack",
    "AttackConfig",
    "build_attack",
    "perturbation_norm",
    "NotSimulatable",
    "is_quantized_model",
    "ste_simulation",
]
