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
from fractions import Fraction
from typing import Any, Iterator, get_args

import torch
from torch import nn

from ...catalog.evaluators import (  # noqa: F401 (torch-free: compressbench.catalog)
    AdversarialParams,
    Mode,
    _default_attacks,
    attack_extras,
    probe_attack,
)
from ...costs import INPUT_GRADIENT, CostContext, EvalCost, attack_cost, batches
from ...interfaces import EvalContext, Measurement
from ...outcomes import OutcomeRecorder, eval_set_name
from ...progress import progress_bar
from ...registry import attacks as attacks_registry
from ...registry import evaluators
from ...specs import MetricSpec, ReportOption
from .library import Attack, AttackConfig, Norm, build_attack, perturbation_norm
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

DEFAULT_THRESHOLDS = {
    "l2": [0.0, 0.25, 0.5, 1.0, 2.0],
    "linf": [0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255],
    "l0": [0.0, 0.005, 0.01, 0.02, 0.05, 0.1],
}  # l0: fraction of input features changed


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


def resolve_modes(
    model: nn.Module, ctx: EvalContext, params: AdversarialParams, probe: torch.Tensor
) -> tuple[list[str], list[str]]:
    """Modes to run and human-readable reasons for the ones skipped."""
    quantized = ctx.variant.is_quantized or is_quantized_model(model)
    differentiable = not quantized and gradient_works(model, probe)
    return choose_modes(params.modes, quantized, differentiable, ctx.variant.is_parent)


def choose_modes(
    wanted_modes: list[str], quantized: bool, differentiable: bool, is_baseline: bool
) -> tuple[list[str], list[str]]:
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
    if (
        not spec.iterative
        or spec.minimum_norm
        or steps is None
        or a.stronger_steps == 0
        or not any(e > 0 for e in a.eps or ())
    ):
        return None
    return a.stronger_steps or 4 * int(steps)


def _middle_eps(a: Attack) -> float:
    nz = sorted(e for e in a.config.eps if e > 0)
    return nz[(len(nz) - 1) // 2]


class _ModeRun:
    """One mode of the adversarial evaluator: every attack crafted on ``source`` and checked on ``model``,
    batch by batch (:meth:`craft`), then the rows and self-checks (:meth:`measurements`).

    Besides the configured attacks: a stronger re-run (more steps) of each fixed-budget iterative attack at
    its middle non-zero ε (is a stronger attack not weaker?), and the gradient-masking probe."""

    def __init__(
        self,
        mode: str,
        model: nn.Module,
        source: nn.Module,
        atks: list[Attack],
        params: AdversarialParams,
        ctx: EvalContext,
        rec: OutcomeRecorder | None = None,
    ):
        self.mode, self.model, self.source, self.atks, self.params, self.ctx = mode, model, source, atks, params, ctx
        self.rec, self.iset = rec, None  # per-image outcomes of the accuracies (compressbench.outcomes)
        self.tdev = model_device(model, "cpu")
        self.tally = _Tally()
        self.strong: dict[int, tuple[Attack, float]] = {
            i: (a.with_params(steps=n), _middle_eps(a))
            for i, a in enumerate(atks)
            if (n := strong_steps(a.config)) is not None
        }
        probe = probe_attack(params) if mode != "transfer" else None
        self.probe = build_attack(probe, ctx.meta.num_classes) if probe is not None else None
        self.sim_agree: list[torch.Tensor] = []
        self.out: list[Measurement] = []

    # ------------------------------------------------------------ crafting
    def target_pred(self, xa: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return forward_float(self.model, xa.to(self.tdev)).argmax(1).cpu()

    def target_correct(self, xa: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.target_pred(xa) == y.cpu()

    def craft(self, images: Any) -> None:
        """Run every attack on every batch of ``images``, tallying per-image outcomes."""
        self.craft_many([self], images)

    @staticmethod
    def craft_many(runs: list[_ModeRun], images: Any) -> None:
        """:meth:`craft` for several runs with one source (a transfer attack's parent): each adversarial batch
        is crafted once and checked on every run's model — the same batches, seeds and examples each run
        crafts alone."""
        r0 = runs[0]
        if any(r.source is not r0.source or r.probe is not None for r in runs[1:]):
            raise ValueError("craft_many: the runs must share one source and have no masking probe")
        for r in runs:
            if r.rec is not None:
                r.iset = r.rec.image_set(eval_set_name(), images.index)
        n_runs = (
            sum(1 if a.minimum_norm else len(a.config.eps) for a in r0.atks) + len(r0.strong) + (r0.probe is not None)
        )
        bar = progress_bar(
            total=n_runs * len(images),
            desc=f"adversarial[{r0.mode}]" + (f" ×{len(runs)} models" if len(runs) > 1 else ""),
            unit="img",
            disable=not r0.ctx.progress,
        )
        dev = model_device(r0.source, r0.ctx.device)
        with _frozen(r0.source) as src:
            for bi, (x, y, _) in enumerate(images.batches(r0.params.batch_size, device=dev)):
                clean = [r.target_correct(x, y) for r in runs]
                for r, ok in zip(runs, clean, strict=True):
                    r.tally.add("clean", ok)
                    if r.mode == "whitebox-ste":
                        r._ste_agreement(src, x)
                for i, a in enumerate(r0.atks):
                    r0._attack_batch(i, a, r0._seed(bi, i), src, x, y, runs, clean)
                    bar.update(len(x) * (1 if a.minimum_norm else len(a.config.eps)))
                for i, (sa, e) in r0.strong.items():
                    with _seeded(r0._seed(bi, i)):
                        xa = sa.run(src, x, y, e)
                    for r in runs:
                        r.tally.add((i, "strong"), r.target_correct(xa, y))
                    bar.update(len(x))
                if r0.probe is not None:
                    with _seeded(r0.params.seed + bi):
                        xa = r0.probe.run(src, x, y, r0.params.masking_probe_eps)
                    r0.tally.add("probe", r0.target_correct(xa, y))
                    bar.update(len(x))
        bar.close()

    def _seed(self, bi: int, i: int) -> int:
        return self.params.seed * 1_000_003 + bi * 101 + i

    def _ste_agreement(self, src: nn.Module, x: torch.Tensor) -> None:
        with torch.no_grad():
            sim_pred = src(x).argmax(1).cpu()
            real_pred = forward_float(self.model, x.to(self.tdev)).argmax(1).cpu()
        self.sim_agree.append(sim_pred == real_pred)

    def _attack_batch(
        self,
        i: int,
        a: Attack,
        seed: int,
        src: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        runs: list[_ModeRun],
        clean: list[torch.Tensor],
    ) -> None:
        """Attack ``i`` on one batch, crafted once, checked on every run's model: correctness at every ε, or
        (minimum-norm) the norm that fooled it."""
        if not a.minimum_norm:
            for e in a.config.eps:
                with _seeded(seed):
                    xa = a.run(src, x, y, e)
                for r in runs:
                    r.tally.add((i, e), r.target_correct(xa, y))
            return
        with _seeded(seed):
            xa = a.run(src, x, y)
        norms = perturbation_norm(xa - x, a.norm).cpu()
        goal = a.targets(y)
        for r, clean_ok in zip(runs, clean, strict=True):
            pred = r.target_pred(xa)
            ok = pred == y.cpu()
            if goal is not None:  # a targeted attack: did it reach its target class?
                r.tally.add((i, "hit"), pred == goal.cpu())
            # 0 where already misclassified, the norm where the attack fooled the target, inf otherwise
            eff = torch.where(
                ~clean_ok, torch.zeros_like(norms), torch.where(ok, torch.full_like(norms, math.inf), norms)
            )
            r.tally.add((i, "norm"), eff)

    # ------------------------------------------------------------ rows
    def measurements(self) -> list[Measurement]:
        """Every attack's rows, the stronger-attack and gradient-masking checks, the STE fidelity."""
        self.clean = self.tally.get("clean")
        self.n_correct = int(self.clean.sum())
        robust: dict[tuple[int, float], float] = {}
        for i, a in enumerate(self.atks):
            if a.minimum_norm:
                self._minimum_norm_rows(i, a)
            else:
                robust.update(self._fixed_budget_rows(i, a))
        if self.mode != "transfer":  # a transfer attack may legitimately be weaker than a one-step white-box one
            self._masking_rows(robust)
        if self.sim_agree:
            self._m("check_ste_fidelity", float(torch.cat(self.sim_agree).float().mean()), {})
        return self.out

    def _m(self, metric: str, value: float, cond: dict[str, Any], bits: torch.Tensor | None = None) -> None:
        self.out.append(Measurement(metric, float(value), {**cond, "mode": self.mode}, tag=self.mode))
        if bits is not None and self.rec is not None:  # an accuracy: which images it counted as correct
            self.rec.mean(metric, float(value), {**cond, "mode": self.mode}, self.iset, bits)

    def _success(self, ok: torch.Tensor) -> float:
        return float((self.clean & ~ok).sum()) / self.n_correct if self.n_correct else 0.0

    def _minimum_norm_rows(self, i: int, a: Attack) -> None:
        cond = a.describe()
        eff = self.tally.get((i, "norm"))
        ok_norms = eff[self.clean]
        self._m("median_norm", float(ok_norms.median()) if self.n_correct else math.nan, cond)
        self._m("success_rate", float(torch.isfinite(ok_norms).float().mean()) if self.n_correct else 0.0, cond)
        if (i, "hit") in self.tally.data:
            hit = self.tally.get((i, "hit"))[self.clean]
            self._m("targeted_success_rate", float(hit.float().mean()) if self.n_correct else 0.0, cond)
        for t in a.config.thresholds if a.config.thresholds is not None else DEFAULT_THRESHOLDS[a.norm]:
            self._m("robust_top1_at_norm", float((eff > t).float().mean()), {**cond, "eps": _r(t)}, eff > t)

    def _fixed_budget_rows(self, i: int, a: Attack) -> dict[tuple[int, float], float]:
        """Robust accuracy and success rate per ε, the monotone-in-ε check, the stronger re-run."""
        cond = a.describe()
        robust: dict[tuple[int, float], float] = {}
        for e in a.config.eps:
            ok = self.tally.get((i, e))
            robust[(i, e)] = float(ok.float().mean())
            self._m("robust_top1", robust[(i, e)], {**cond, "eps": _r(e)}, ok)
            self._m("success_rate", self._success(ok), {**cond, "eps": _r(e)})
        accs = sorted((e, robust[(i, e)]) for e in a.config.eps)
        mono = all(b[1] <= a_[1] + self.params.monotone_tol for a_, b in zip(accs, accs[1:], strict=False))
        if not mono:
            log.warning("adversarial[%s]: robust accuracy of %s rises with ε: %s", self.mode, a.name, accs)
        self._m("check_monotone_eps", 1.0 if mono else 0.0, cond)
        if i in self.strong:
            self._stronger_rows(i, a, robust)
        return robust

    def _stronger_rows(self, i: int, a: Attack, robust: dict[tuple[int, float], float]) -> None:
        sa, e = self.strong[i]
        ok_strong = self.tally.get((i, "strong"))
        acc_s = float(ok_strong.float().mean())
        self._m("robust_top1", acc_s, {**sa.describe(), "eps": _r(e)}, ok_strong)
        self._m("success_rate", self._success(ok_strong), {**sa.describe(), "eps": _r(e)})
        ok_s = acc_s <= robust[(i, e)] + self.params.stronger_tol
        if not ok_s:
            log.warning(
                "adversarial[%s]: PGD with %d steps (%.3f) is weaker than with %s steps (%.3f) at ε=%g",
                self.mode,
                sa.steps,
                acc_s,
                a.steps,
                robust[(i, e)],
                e,
            )
        self._m(
            "check_stronger_not_weaker",
            1.0 if ok_s else 0.0,
            {**a.describe(), "eps": _r(e), "steps_strong": int(sa.steps)},
        )

    def _masking_rows(self, robust: dict[tuple[int, float], float]) -> None:
        """Gradient masking suspected: a one-step attack beating an iterative one of the same norm and ε by
        more than ``masking_tol``, or the probe at a large ε leaving accuracy above it."""
        tol = self.params.masking_tol
        single = [(i, a) for i, a in enumerate(self.atks) if a.spec.single_step]
        iterative = [(i, a) for i, a in enumerate(self.atks) if a.spec.iterative and not a.minimum_norm]
        reasons = [
            f"{f.name} ({robust[(i, e)]:.3f}) beats {p.name} ({robust[(j, e)]:.3f}) at {p.norm} ε={e:g}"
            for i, f in single
            for j, p in iterative
            if p.norm == f.norm
            for e in set(f.config.eps) & set(p.config.eps)
            if e > 0 and robust[(i, e)] + tol < robust[(j, e)]
        ]
        checks = ["fgsm_vs_iterative"] if single and iterative else []
        if self.probe is not None:
            eps = self.params.masking_probe_eps
            acc_p = float(self.tally.get("probe").float().mean())
            self._m(
                "robust_top1", acc_p, {**self.probe.describe(), "eps": _r(eps), "probe": True}, self.tally.get("probe")
            )
            checks.append("large_eps")
            if acc_p > tol:
                reasons.append(f"{self.probe.name}-{self.probe.norm} at ε={eps:g} leaves {acc_p:.3f} accuracy")
        if checks:
            for r in reasons:
                log.warning("adversarial[%s]: possible gradient masking: %s", self.mode, r)
            self._m("gradient_masking_suspect", 1.0 if reasons else 0.0, {"check": "+".join(checks)})


def _run_mode(
    mode: str,
    model: nn.Module,
    source: nn.Module,
    images: Any,
    atks: list[Attack],
    params: AdversarialParams,
    ctx: EvalContext,
    rec: OutcomeRecorder | None = None,
) -> list[Measurement]:
    run = _ModeRun(mode, model, source, atks, params, ctx, rec)
    run.craft(images)
    return run.measurements()


def parse_eps(text: str) -> float:
    """``--main-eps``: a number or a fraction such as ``8/255``."""
    try:
        v = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        v = math.nan
    if not v >= 0:
        raise ValueError(f"must be a number or a fraction like 8/255, got '{text}'")
    return v


REPORT_OPTIONS = (
    ReportOption("main_eps", "8/255", "summary robust accuracy at the largest stored ε ≤ this", parse=parse_eps),
    ReportOption("norm", "linf", "attack norm of the summary's robust accuracy", choices=get_args(Norm)),
)


def check_inputs(params: AdversarialParams, meta: Any) -> str | None:
    """An attack that cannot handle inputs of this size (its spec's ``max_features``), before any work."""
    feats = int(meta.channels) * int(meta.size[0]) * int(meta.size[1])
    for i, a in enumerate(params.attacks):
        limit = attacks_registry.spec(a.name).max_features
        if limit is not None and feats > limit:
            return (
                f"attacks[{i}]: '{a.name}' handles inputs of at most {limit:,} features (channels × height × "
                f"width); {meta.name} at {meta.channels}×{meta.size[0]}×{meta.size[1]} has {feats:,}"
            )
    return None


def adversarial_cost(p: AdversarialParams, ctx: CostContext) -> EvalCost:
    """``compressbench plan``: per mode (:func:`choose_modes`; a float variant counted differentiable), every
    attack's declared cost per image at each non-zero ε (once for a minimum-norm attack), the stronger-attack
    re-runs and the masking probe, each followed by a forward pass of the variant; crafted on the parent for
    ``transfer``, on the variant (or its float simulation) otherwise."""
    n = ctx.images(-1 if p.subset is None else p.subset)
    nb = batches(n, p.batch_size)  # every pass and attack step runs batch by batch
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
    probe_atk = probe_attack(p)
    probe_grad = attack_cost(attacks_registry.spec(probe_atk.name), probe_atk.params, ctx.meta) if probe_atk else 0.0
    total = EvalCost()
    for mode in modes:
        probe = probe_grad if mode != "transfer" else 0.0
        g = (grad + probe) * n
        fwd_passes = fwd + (probe > 0) + 2 * (mode == "whitebox-ste")
        total += EvalCost(
            forward=fwd_passes * n,
            gradient=0.0 if mode == "transfer" else g,
            parent_gradient=g if mode == "transfer" else 0.0,
            calls=fwd_passes * nb,
            gradient_calls=(grad + probe) / INPUT_GRADIENT * nb,
        )
    return total


@evaluators.register(
    "adversarial",
    check_data=check_inputs,
    cost=adversarial_cost,
    group="compressbench.evaluate.attacks.evaluator:adversarial_group",
    metrics=(
        MetricSpec(
            "robust_top1",
            label="Robust acc. %",
            fmt="pct",
            higher_is_better=True,
            summary=True,
            order=30,
            table=None,
            lead=True,
            derive="compressbench.evaluate.attacks.report:robust_summary",
            description="worst case over white-box attacks at the report's main ε "
            "(transfer where no white-box attack applies)",
        ),
        MetricSpec(
            "success_rate",
            label="Success rate",
            fmt="pct",
            higher_is_better=False,
            table=None,
            description="share of correctly classified images the attack "
            "makes misclassified — as any wrong class, targeted attacks (JSMA) included",
        ),
        MetricSpec(
            "targeted_success_rate",
            label="Targeted success rate",
            fmt="pct",
            higher_is_better=False,
            table=None,
            description="targeted attacks (JSMA: the next class): share of correctly "
            "classified images classified as the target after the attack",
        ),
        MetricSpec(
            "median_norm",
            label="Median norm",
            fmt="g",
            higher_is_better=True,
            table=None,
            description="minimum-norm attacks: median perturbation norm",
        ),
        MetricSpec("robust_top1_at_norm", label="Robust acc. % at norm", fmt="pct", higher_is_better=True, table=None),
        MetricSpec(
            "gradient_masking_suspect",
            label="Gradient masking suspected",
            fmt="int",
            higher_is_better=False,
            table=None,
        ),
        MetricSpec("check_monotone_eps", label="monotone in ε", fmt="int", check=True, table=None),
        MetricSpec("check_stronger_not_weaker", label="stronger attack not weaker", fmt="int", check=True, table=None),
        MetricSpec("check_ste_fidelity", label="STE fidelity", fmt="f3", check=True, table=None),
    ),
    report_options=REPORT_OPTIONS,
    report="compressbench.evaluate.attacks.report:tables",
    figures="compressbench.evaluate.attacks.report:figures",
)
def adversarial(model: nn.Module, ctx: EvalContext, params: AdversarialParams) -> list[Measurement]:
    """One model: :func:`adversarial_group` with one member."""
    out = adversarial_group([(model, ctx)], params)[0]
    if isinstance(out, BaseException):
        raise out
    return out


class _Plan:
    """One member of :func:`adversarial_group`: its model, the modes that apply, its rows so far."""

    def __init__(self, model: nn.Module, ctx: EvalContext, params: AdversarialParams):
        self.model, self.ctx = model.eval(), ctx
        self.images = ctx.eval_set(params.subset if params.subset is not None else -1)
        self.atks = [build_attack(s, ctx.meta.num_classes) for s in params.attacks]
        self.probe, _, _ = next(self.images.batches(2, device=model_device(model, ctx.device)))
        self.modes, self.skipped = resolve_modes(model, ctx, params, self.probe)
        for s in self.skipped:
            log.info("adversarial: skipping %s", s)
        self.rec = OutcomeRecorder()
        self.transfer: _ModeRun | None = None  # crafted with the group, on the parent

    def source(self, mode: str) -> nn.Module | None:
        """The model ``mode`` crafts on (None: the mode does not apply, with a warning)."""
        try:
            source = _source_for(mode, self.model, self.ctx)
        except NotSimulatable as e:
            log.warning("adversarial: no whitebox-ste mode for variant %s: %s", self.ctx.variant.name, e)
            return None
        return _checked_source(mode, source, self.probe)

    def run(self, params: AdversarialParams) -> list[Measurement]:
        """Every mode in order (the transfer one crafted already); the rows, ``outcomes.npz`` written."""
        out: list[Measurement] = []
        for mode in self.modes:
            if mode == "transfer" and self.transfer is not None:
                out += self.transfer.measurements()
                continue
            source = self.source(mode) if mode != "transfer" else None
            if source is not None:
                out += _run_mode(mode, self.model, source, self.images, self.atks, params, self.ctx, self.rec)
        if not out:
            raise RuntimeError(
                f"adversarial: no attack mode applies to variant '{self.ctx.variant.name}' "
                f"({'; '.join(self.skipped) or 'see warnings'})"
            )
        self.rec.save(self.ctx.workdir)
        return out


def _checked_source(mode: str, source: nn.Module, probe: torch.Tensor) -> nn.Module | None:
    if mode != "whitebox-ste" and is_quantized_model(source) and not gradient_works(source, probe):
        log.warning("adversarial: %s source model is not differentiable; skipping", mode)
        return None
    return _Float32(source) if low_precision_dtype(source) is not None else source


def adversarial_group(
    members: list[tuple[nn.Module, EvalContext]], params: AdversarialParams
) -> list[list[Measurement] | BaseException]:
    """The evaluator on several models of one seed at once (``EvaluatorSpec.group``): the ``transfer`` mode's
    adversarial examples come from the parent and are the same for every model, so they are crafted once and
    checked on every model that is attacked by transfer; the other modes attack each model itself. A model's
    rows are exactly those it gets alone."""
    plans: list[_Plan | BaseException] = []
    for model, ctx in members:
        try:
            plans.append(_Plan(model, ctx, params))
        except Exception as e:  # noqa: BLE001 — this member's error
            plans.append(e)
    by_transfer = [p for p in plans if isinstance(p, _Plan) and "transfer" in p.modes]
    if by_transfer:
        p0 = by_transfer[0]
        try:
            source = _checked_source("transfer", p0.ctx.load_parent().eval(), p0.probe)
            if source is not None:
                runs = [_ModeRun("transfer", p.model, source, p.atks, params, p.ctx, p.rec) for p in by_transfer]
                _ModeRun.craft_many(runs, p0.images)
                for p, r in zip(by_transfer, runs, strict=True):
                    p.transfer = r
        except Exception as e:  # noqa: BLE001 — the shared crafting failed: every member attacked by transfer
            plans = [e if p in by_transfer else p for p in plans]
    out: list[list[Measurement] | BaseException] = []
    for p in plans:
        if isinstance(p, BaseException):
            out.append(p)
            continue
        try:
            out.append(p.run(params))
        except Exception as e:  # noqa: BLE001
            out.append(e)
    return out
