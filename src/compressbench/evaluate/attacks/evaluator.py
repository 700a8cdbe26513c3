"""The ``adversarial`` evaluator: robust accuracy of a variant under a list of attacks.

Modes (condition key ``mode`` and the row's tag):

* ``whitebox``      — attack crafted on the variant itself (differentiable float variants);
* ``transfer``      — crafted on the float parent (``ctx.load_parent()``), evaluated on the variant;
* ``whitebox-ste``  — crafted on a float simulation of a quantized variant (fake-quant + STE,
  see :mod:`.quantsim`), evaluated on the real quantized variant.

``auto`` picks ``whitebox`` for differentiable variants, and ``transfer`` + ``whitebox-ste`` (when
the quantization can be simulated) for quantized or non-differentiable ones; ``auto-transfer`` is
the cheap variant (``whitebox`` or ``transfer`` only). fp16/bf16 casts count as quantized.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from contextlib import contextmanager
from typing import Any, Iterator, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from ...costs import INPUT_GRADIENT, CostContext, EvalCost, attack_cost
from ...interfaces import EvalContext, Measurement, Params
from ...outcomes import OutcomeRecorder, eval_set_name
from ...progress import progress_bar
from ...registry import attacks as attacks_registry
from ...registry import evaluators
from ...specs import MetricSpec
from .library import Attack, AttackConfig, build_attack, perturbation_norm
from .quantsim import (
    NotSimulatable,
    forward_float,
    gradient_works,
    is_quantized_model,
    low_precision_dtype,
    model_device,
    ste_simulation,
)

log = logging.getLogger(__name__)

Mode = Literal["auto", "auto-transfer", "whitebox", "transfer", "whitebox-ste"]

DEFAULT_THRESHOLDS = {"l2": [0.0, 0.25, 0.5, 1.0, 2.0], "linf": [0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255],
                      "l0": [0.0, 0.005, 0.01, 0.02, 0.05, 0.1]}  # l0: fraction of input features changed


# the gradient-masking probe: a strong fixed-budget iterative attack at a large ε (robust accuracy must be ~0)
MASKING_PROBE = {"name": "pgd", "steps": 20}


def _default_attacks() -> list[AttackConfig]:
    grid = [0.0, 1 / 255, 2 / 255, 4 / 255]
    return [AttackConfig(name="fgsm", eps=grid), AttackConfig(name="pgd", eps=grid, steps=10)]


class AdversarialParams(Params):
    attacks: list[AttackConfig] = Field(default_factory=_default_attacks)
    subset: int | None = Field(200, ge=1)  # fixed seeded subset of the test set; None: experiment default
    batch_size: int = Field(100, ge=1)
    seed: int = 0  # random starts / AutoAttack
    modes: list[Mode] = Field(default_factory=lambda: ["auto"])
    monotone_tol: float = Field(0.0, ge=0)  # allowed rise of robust_top1 with ε before check_monotone_eps = 0
    stronger_tol: float = Field(0.01, ge=0)  # allowed rise of robust_top1 with more PGD steps
    masking_probe_eps: float | None = Field(None, gt=0)  # extra PGD-L∞ at this large ε; robust_top1 must be ~0
    masking_tol: float = Field(0.02, ge=0)

    @model_validator(mode="after")
    def _check(self) -> AdversarialParams:
        if not self.attacks:
            raise ValueError("adversarial: 'attacks' is empty")
        return self


def _r(v: float) -> float:
    """Condition values: short, stable labels (stored values stay unrounded)."""
    return float(f"{v:.6g}")


@contextmanager
def _frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no parameter gradients during the attack (restored afterwards)."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    model.eval()
    try:
        yield model
    finally:
        for p, f in flags:
            p.requires_grad_(f)
        model.train(was_training)


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class _Float32(nn.Module):
    """Wraps a low-precision (fp16/bf16) model so that attacks see float32 in and out."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return forward_float(self.model, x)


def resolve_modes(model: nn.Module, ctx: EvalContext, params: AdversarialParams,
                  probe: torch.Tensor) -> tuple[list[str], list[str]]:
    """Modes to run and human-readable reasons for the ones skipped."""
    quantized = ctx.variant.is_quantized or is_quantized_model(model)
    differentiable = not quantized and gradient_works(model, probe)
    return choose_modes(params.modes, quantized, differentiable, ctx.variant.method == "baseline")


def choose_modes(wanted_modes: list[str], quantized: bool, differentiable: bool,
                 is_baseline: bool) -> tuple[list[str], list[str]]:
    """:func:`resolve_modes` once the variant's nature is known (also what ``compressbench plan`` counts)."""
    wanted: list[str] = []
    for m in wanted_modes:
        if m == "auto":
            wanted += ["whitebox"] if differentiable else ["transfer", "whitebox-ste"]
        elif m == "auto-transfer":
            wanted += ["whitebox"] if differentiable else ["transfer"]
        else:
            wanted.append(m)
    modes, skipped = [], []
    for m in dict.fromkeys(wanted):
        if m == "whitebox" and not differentiable:
            skipped.append("whitebox: the variant is quantized / not differentiable (use transfer or whitebox-ste)")
        elif m == "transfer" and is_baseline:
            skipped.append("transfer: the baseline is its own parent")
        elif m == "whitebox-ste" and not quantized:
            skipped.append("whitebox-ste: the variant is not quantized")
        else:
            modes.append(m)
    return modes, skipped


def _source_for(mode: str, model: nn.Module, ctx: EvalContext) -> nn.Module:
    if mode == "whitebox":
        return model
    if mode == "transfer":
        return ctx.load_parent().eval()
    return ste_simulation(model)  # may raise NotSimulatable


class _Tally:
    """Per-image outcomes accumulated over batches."""

    def __init__(self) -> None:
        self.data: dict[Any, list[torch.Tensor]] = defaultdict(list)

    def add(self, key: Any, t: torch.Tensor) -> None:
        self.data[key].append(t.detach().cpu())

    def get(self, key: Any) -> torch.Tensor:
        return torch.cat(self.data[key])


def strong_steps(a: AttackConfig) -> int | None:
    """Steps of the stronger-attack re-run of a fixed-budget iterative attack (None: no re-run)."""
    spec, steps = attacks_registry.spec(a.name), getattr(a.params, "steps", None)
    if not spec.iterative or spec.minimum_norm or steps is None or a.stronger_steps == 0 or not any(
            e > 0 for e in a.eps or ()):
        return None
    return a.stronger_steps or 4 * int(steps)


def _run_mode(mode: str, model: nn.Module, source: nn.Module, images, atks: list[Attack],
              params: AdversarialParams, ctx: EvalContext, rec: OutcomeRecorder | None = None) -> list[Measurement]:
    dev = model_device(source, ctx.device)
    tdev = model_device(model, "cpu")
    tally = _Tally()
    strong: dict[int, tuple[Attack, float]] = {}
    for i, a in enumerate(atks):  # fixed-budget iterative attacks: is a stronger one (more steps) not weaker?
        n_strong = strong_steps(a.config)
        if n_strong is not None:
            nz = sorted(e for e in a.config.eps if e > 0)
            strong[i] = (a.with_params(steps=n_strong), nz[(len(nz) - 1) // 2])  # the middle non-zero ε
    probe_atk = None
    if params.masking_probe_eps and mode != "transfer":
        probe_atk = build_attack(AttackConfig(**MASKING_PROBE, eps=[params.masking_probe_eps]), ctx.meta.num_classes)

    def target_correct(xa: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return forward_float(model, xa.to(tdev)).argmax(1).cpu() == y.cpu()

    n_jobs = sum(1 if a.minimum_norm else len(a.config.eps) for a in atks) + len(strong) + (probe_atk is not None)
    bar = progress_bar(total=n_jobs * len(images), desc=f"adversarial[{mode}]", unit="img",
                       disable=not ctx.progress)
    sim_agree = []
    with _frozen(source) as src:
        for bi, (x, y, _) in enumerate(images.batches(params.batch_size, device=dev)):
            clean_ok = target_correct(x, y)
            tally.add("clean", clean_ok)
            if mode == "whitebox-ste":
                with torch.no_grad():
                    sim_pred = src(x).argmax(1).cpu()
                    real_pred = forward_float(model, x.to(tdev)).argmax(1).cpu()
                sim_agree.append(sim_pred == real_pred)
            for i, a in enumerate(atks):
                seed = params.seed * 1_000_003 + bi * 101 + i
                if a.minimum_norm:
                    with _seeded(seed):
                        xa = a.run(src, x, y)
                    ok = target_correct(xa, y)
                    norms = perturbation_norm(xa - x, a.norm).cpu()
                    # 0 where already misclassified, the norm where the attack fooled the target, inf otherwise
                    eff = torch.where(~clean_ok, torch.zeros_like(norms),
                                      torch.where(ok, torch.full_like(norms, math.inf), norms))
                    tally.add((i, "norm"), eff)
                    bar.update(len(x))
                    continue
                for e in a.config.eps:
                    with _seeded(seed):
                        xa = a.run(src, x, y, e)
                    tally.add((i, e), target_correct(xa, y))
                    bar.update(len(x))
            for i, (sa, e) in strong.items():
                with _seeded(params.seed * 1_000_003 + bi * 101 + i):
                    tally.add((i, "strong"), target_correct(sa.run(src, x, y, e), y))
                bar.update(len(x))
            if probe_atk is not None:
                with _seeded(params.seed + bi):
                    tally.add("probe", target_correct(probe_atk.run(src, x, y, params.masking_probe_eps), y))
                bar.update(len(x))
    bar.close()

    out: list[Measurement] = []
    clean = tally.get("clean")
    n_correct = int(clean.sum())

    iset = rec.image_set(eval_set_name(), images.index) if rec is not None else None

    def m(metric: str, value: float, cond: dict[str, Any], bits: torch.Tensor | None = None) -> None:
        out.append(Measurement(metric, float(value), {**cond, "mode": mode}, tag=mode))
        if bits is not None and rec is not None:  # per-image outcomes of an accuracy (compressbench.outcomes)
            rec.mean(metric, float(value), {**cond, "mode": mode}, iset, bits)

    def success(ok: torch.Tensor) -> float:
        return float((clean & ~ok).sum()) / n_correct if n_correct else 0.0

    robust: dict[tuple[int, float], float] = {}
    for i, a in enumerate(atks):
        cond = a.describe()
        if a.minimum_norm:
            eff = tally.get((i, "norm"))
            ok_norms = eff[clean]
            m("median_norm", float(ok_norms.median()) if n_correct else math.nan, cond)
            m("success_rate", float(torch.isfinite(ok_norms).float().mean()) if n_correct else 0.0, cond)
            for t in a.config.thresholds if a.config.thresholds is not None else DEFAULT_THRESHOLDS[a.norm]:
                m("robust_top1_at_norm", float((eff > t).float().mean()), {**cond, "eps": _r(t)}, eff > t)
            continue
        accs = []
        for e in a.config.eps:
            ok = tally.get((i, e))
            robust[(i, e)] = acc = float(ok.float().mean())
            accs.append((e, acc))
            m("robust_top1", acc, {**cond, "eps": _r(e)}, ok)
            m("success_rate", success(ok), {**cond, "eps": _r(e)})
        accs.sort()
        mono = all(b[1] <= a_[1] + params.monotone_tol for a_, b in zip(accs, accs[1:], strict=False))
        if not mono:
            log.warning("adversarial[%s]: robust accuracy of %s rises with ε: %s", mode, a.name, accs)
        m("check_monotone_eps", 1.0 if mono else 0.0, cond)
        if i in strong:
            sa, e = strong[i]
            acc_s = float(tally.get((i, "strong")).float().mean())
            m("robust_top1", acc_s, {**sa.describe(), "eps": _r(e)}, tally.get((i, "strong")))
            m("success_rate", success(tally.get((i, "strong"))), {**sa.describe(), "eps": _r(e)})
            ok_s = acc_s <= robust[(i, e)] + params.stronger_tol
            if not ok_s:
                log.warning("adversarial[%s]: PGD with %d steps (%.3f) is weaker than with %s steps (%.3f) at ε=%g",
                            mode, sa.steps, acc_s, a.steps, robust[(i, e)], e)
            m("check_stronger_not_weaker", 1.0 if ok_s else 0.0,
              {**cond, "eps": _r(e), "steps_strong": int(sa.steps)})

    if mode != "transfer":  # a transfer attack may legitimately be weaker than a one-step white-box one
        reasons = []
        fg = [(i, a) for i, a in enumerate(atks) if a.spec.single_step]
        it = [(i, a) for i, a in enumerate(atks) if a.spec.iterative and not a.minimum_norm]
        for i, f in fg:
            for j, p in it:
                if p.norm != f.norm:
                    continue
                for e in set(f.config.eps) & set(p.config.eps):
                    if e > 0 and robust[(i, e)] + params.masking_tol < robust[(j, e)]:
                        reasons.append(f"{f.name} ({robust[(i, e)]:.3f}) beats {p.name} ({robust[(j, e)]:.3f}) "
                                       f"at {p.norm} ε={e:g}")
        checks = ["fgsm_vs_iterative"] if fg and it else []
        if probe_atk is not None:
            acc_p = float(tally.get("probe").float().mean())
            m("robust_top1", acc_p, {**probe_atk.describe(), "eps": _r(params.masking_probe_eps), "probe": True},
              tally.get("probe"))
            checks.append("large_eps")
            if acc_p > params.masking_tol:
                reasons.append(f"PGD-L∞ at ε={params.masking_probe_eps:g} leaves {acc_p:.3f} accuracy")
        if checks:
            for r in reasons:
                log.warning("adversarial[%s]: possible gradient masking: %s", mode, r)
            m("gradient_masking_suspect", 1.0 if reasons else 0.0, {"check": "+".join(checks)})
    if sim_agree:
        m("check_ste_fidelity", float(torch.cat(sim_agree).float().mean()), {})
    return out


def check_inputs(params: AdversarialParams, meta: Any) -> str | None:
    """An attack that cannot handle inputs of this size (its spec's ``max_features``), before any work."""
    feats = int(meta.channels) * int(meta.size[0]) * int(meta.size[1])
    for i, a in enumerate(params.attacks):
        limit = attacks_registry.spec(a.name).max_features
        if limit is not None and feats > limit:
            return (f"attacks[{i}]: '{a.name}' handles inputs of at most {limit:,} features (channels × height × "
                    f"width); {meta.name} at {meta.channels}×{meta.size[0]}×{meta.size[1]} has {feats:,}")
    return None


def adversarial_cost(p: AdversarialParams, ctx: CostContext) -> EvalCost:
    """``compressbench plan``: per mode (:func:`choose_modes`; a float variant counted differentiable), every
    attack's declared cost per image at each non-zero ε (once for a minimum-norm attack), the stronger-attack
    re-runs and the masking probe, each followed by a forward pass of the variant; crafted on the parent for
    ``transfer``, on the variant (or its float simulation) otherwise."""
    n = ctx.images(-1 if p.subset is None else p.subset)
    modes, _ = choose_modes(p.modes, ctx.quantizes, not ctx.quantizes, ctx.baseline)
    grad, fwd = 0.0, 1.0  # the clean check
    for a in p.attacks:
        spec = attacks_registry.spec(a.name)
        per = attack_cost(spec, a.params, ctx.meta)
        runs = 1 if spec.minimum_norm else sum(1 for e in a.eps or () if e > 0)
        grad, fwd = grad + per * runs, fwd + (1 if spec.minimum_norm else len(a.eps or ()))
        strong = strong_steps(a)
        if strong is not None:
            grad, fwd = grad + attack_cost(spec, a.params.model_copy(update={"steps": strong}), ctx.meta), fwd + 1
    total = EvalCost()
    for mode in modes:
        probe = INPUT_GRADIENT * MASKING_PROBE["steps"] if p.masking_probe_eps and mode != "transfer" else 0.0
        g = (grad + probe) * n
        total += EvalCost(forward=(fwd + (probe > 0) + 2 * (mode == "whitebox-ste")) * n,
                          gradient=0.0 if mode == "transfer" else g, parent_gradient=g if mode == "transfer" else 0.0)
    return total


@evaluators.register("adversarial", params=AdversarialParams, version=1, check_data=check_inputs,
                     cost=adversarial_cost,
                     description="robust accuracy under FGSM / PGD / DeepFool / C&W / DDN / AutoAttack "
                                 "(white-box, transfer from the float parent, or white-box through fake-quant STE)",
                     metrics=(
                         MetricSpec("robust_top1", label="Robust acc. %", fmt="pct", higher_is_better=True,
                                    summary=True, order=30, table=None,
                                    derive="compressbench.evaluate.attacks.report:robust_summary",
                                    description="worst case over white-box attacks at the report's main ε "
                                                "(transfer where no white-box attack applies)"),
                         MetricSpec("success_rate", label="Success rate", fmt="pct", higher_is_better=False,
                                    table=None),
                         MetricSpec("median_norm", label="Median norm", fmt="g", higher_is_better=True, table=None,
                                    description="minimum-norm attacks: median perturbation norm"),
                         MetricSpec("robust_top1_at_norm", label="Robust acc. % at norm", fmt="pct",
                                    higher_is_better=True, table=None),
                         MetricSpec("gradient_masking_suspect", label="Gradient masking suspected", fmt="int",
                                    higher_is_better=False, table=None),
                         MetricSpec("check_monotone_eps", label="monotone in ε", fmt="int", check=True, table=None),
                         MetricSpec("check_stronger_not_weaker", label="stronger attack not weaker", fmt="int",
                                    check=True, table=None),
                         MetricSpec("check_ste_fidelity", label="STE fidelity", fmt="f3", check=True, table=None),
                     ),
                     report="compressbench.evaluate.attacks.report:tables",
                     figures="compressbench.evaluate.attacks.report:figures")
def adversarial(model: nn.Module, ctx: EvalContext, params: AdversarialParams) -> list[Measurement]:
    images = ctx.eval_set(params.subset if params.subset is not None else -1)
    atks = [build_attack(s, ctx.meta.num_classes) for s in params.attacks]
    model.eval()
    probe, _, _ = next(images.batches(2, device=model_device(model, ctx.device)))
    modes, skipped = resolve_modes(model, ctx, params, probe)
    for s in skipped:
        log.info("adversarial: skipping %s", s)
    out: list[Measurement] = []
    rec = OutcomeRecorder()
    for mode in modes:
        try:
            source = _source_for(mode, model, ctx)
        except NotSimulatable as e:
            log.warning("adversarial: no whitebox-ste mode for variant %s: %s", ctx.variant.name, e)
            continue
        if mode != "whitebox-ste" and is_quantized_model(source) and not gradient_works(source, probe):
            log.warning("adversarial: %s source model is not differentiable; skipping", mode)
            continue
        if low_precision_dtype(source) is not None:
            source = _Float32(source)
        out += _run_mode(mode, model, source, images, atks, params, ctx, rec)
    if not out:
        raise RuntimeError(f"adversarial: no attack mode applies to variant '{ctx.variant.name}' "
                           f"({'; '.join(skipped) or 'see warnings'})")
    rec.save(ctx.workdir)
    return out
