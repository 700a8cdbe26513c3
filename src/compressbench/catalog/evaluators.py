"""The built-in evaluators, declared torch-free: their params schemas and what ``compressbench list`` shows.
The evaluators register in :mod:`compressbench.evaluate` (imported on first use)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from ..extras import extra_of, install_hint, missing, needs_message
from ..fields import BatchSize, Seed, Severity, Subset
from ..registry import attacks, evaluators
from ..registry import corruptions as corruption_registry
from .attacks import AttackConfig
from .base import Params
from .corruptions import resolve_names, suite_names, suites

log = logging.getLogger(__name__)


class CleanParams(Params):
    subset: Subset = None  # None: the experiment's default evaluation subset; else >= 1 images
    batch_size: BatchSize = 512
    per_class: bool = True


class DomainShiftParams(Params):
    subset: int | None = Field(None, gt=0)  # per domain: a fixed seeded subset (None: dataset.eval_subset, or all)
    batch_size: int = Field(512, ge=1, le=65_536)
    targets: list[str] | None = None  # target domains to measure (None: every target of the experiment)
    corruptions: list[str] = []  # also top-1 on corrupted target images (corruption or suite names)
    severities: list[int] = [3]
    corruption_seed: int = Field(0, ge=0)

    @field_validator("severities")
    @classmethod
    def _sev(cls, v: list[int]) -> list[int]:
        if not v or any(not 1 <= s <= 5 for s in v):
            raise ValueError(f"severities must be a non-empty list of integers in 1..5, got {v}")
        return v

    @field_validator("corruptions")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        resolve_names(v)  # unknown names fail with the known ones and a "did you mean"
        return v


# the corruptions the sensitivity and calibration evaluators use by default
DEFAULT_CORRUPTIONS = ("gaussian_noise", "defocus_blur", "contrast", "jpeg_compression")


class SensitivityParams(Params):
    """Parameters of the ``sensitivity`` evaluator."""

    ops: list[Literal["quantize", "prune"]] = Field(default_factory=lambda: ["quantize"], min_length=1)
    prune_ratio: float = Field(0.5, gt=0, lt=1)  # share of a layer's weights zeroed (L1) by the prune op
    layers: list[str] | None = None  # module paths (net.features.0 ...); None: every conv / linear layer
    subset: Subset = None  # images; None: the experiment's evaluation subset
    corruptions: list[str] = Field(default_factory=lambda: list(DEFAULT_CORRUPTIONS), max_length=100)
    severities: list[Severity] = Field(default_factory=lambda: [3], min_length=1)
    seed: Seed = 0  # the corruptions' seed (not the training seed): the same images for every model
    calibration_batches: int = Field(4, ge=1, le=10_000)
    batch_size: BatchSize = 256

    @field_validator("ops")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) < len(v):
            raise ValueError(f"an op is listed twice: {v}")
        return v

    @field_validator("corruptions")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        return [corruption_registry.resolve(n) for n in v]  # unknown: the known names and a "did you mean"


# ------------------------------------------------------------------ calibration
class CalibrationParams(Params):
    subset: Subset = None  # None: the experiment's evaluation subset
    batch_size: BatchSize = 512
    n_bins: int = Field(15, ge=1, le=1000)
    # corruption or suite names (``compressbench.evaluate.corruptions``), "all", or [] for clean only
    corruptions: list[str] | str = Field(default_factory=lambda: list(DEFAULT_CORRUPTIONS))
    severities: list[Severity] = Field(default_factory=lambda: [3])
    corruption_seed: Seed = 0

    @field_validator("corruptions")
    @classmethod
    def _known(cls, v: list[str] | str) -> list[str] | str:
        """Unknown names fail at validate time (with "did you mean"), not as run-time warnings."""
        for it in [v] if isinstance(v, str) else v:
            if it not in suites():
                resolve_names([it])  # raises UnknownNameError (a ValueError): known names, did you mean
        return v

    @field_validator("severities")
    @classmethod
    def _some(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("give at least one severity (1..5)")
        return v


# ------------------------------------------------------------------ agreement with the parent
class AgreementParams(Params):
    subset: Subset = None
    batch_size: BatchSize = 512
    thumbnails: int = Field(16, ge=0, le=256)  # most-disagreed images saved as disagreed.png (0: none)


Mode = Literal["auto", "auto-transfer", "whitebox", "transfer", "whitebox-ste"]


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
        probe_attack(self)  # an attack that can probe gradient masking, when masking_probe_eps asks for one
        return self


def probe_attack(params: AdversarialParams) -> AttackConfig | None:
    """The gradient-masking probe (None without ``masking_probe_eps``): the attack whose spec declares
    ``masking_probe`` (its parameters for the probe) and supports L∞, run at ``masking_probe_eps``. With
    several such attacks registered, the first of them that the evaluation lists in ``attacks``."""
    if not params.masking_probe_eps:
        return None
    # declared capabilities: no attack code imported
    able = [
        n
        for n in attacks.names()
        if attacks.field(n, "masking_probe") is not None and "linf" in attacks.field(n, "norms")
    ]
    if len(able) > 1:
        listed = [n for n in dict.fromkeys(attacks.resolve(a.name) for a in params.attacks) if n in able]
        able = listed[:1] or able
    if len(able) != 1:
        raise ValueError(
            "masking_probe_eps: "
            + (
                "no registered attack declares masking_probe (an L∞ attack that can probe gradient masking)"
                if not able
                else f"several attacks can be the probe ({', '.join(able)}); list the one to use in 'attacks'"
            )
        )
    probe = attacks.field(able[0], "masking_probe")
    return AttackConfig(name=able[0], norm="linf", eps=[params.masking_probe_eps], **dict(probe or {}))


def attack_extras(params: AdversarialParams) -> list[str]:
    """The pip extras the attacks' backends come from (``attacks``: foolbox, torchattacks)."""
    found = (extra_of(attacks.field(a.name, "backend") or "") for a in params.attacks)
    return list(dict.fromkeys(e for e in found if e))


@dataclass(frozen=True)
class Cell:
    """One corrupted condition: a corruption at a severity, or with its parameters given (severity 0)."""

    name: str
    severity: int
    constant: Any  # None: the severity's constant
    condition: dict[str, Any]


class CorruptionSetting(Params):
    """A corruption with its parameters given directly (its registered schema) instead of severities:
    ``{name: gauss_noise, params: {var_limit: [0, 2]}}`` — one condition, labelled by the parameters."""

    name: str
    params: dict[str, Any] = {}

    @model_validator(mode="after")
    def _check(self) -> CorruptionSetting:
        spec = corruption_registry.spec(corruption_registry.resolve(self.name))
        if spec.params is None:
            raise ValueError(
                f"corruption '{self.name}' takes no parameters directly; list it by name and choose 'severities'"
            )
        self.typed  # validate now  # noqa: B018
        return self

    @property
    def typed(self) -> Params:
        spec = corruption_registry.spec(self.name)
        try:
            return spec.params.model_validate(self.params)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            if err["type"] == "extra_forbidden":
                raise ValueError(
                    f"corruption '{self.name}': unknown parameter '{loc}'; allowed: "
                    f"{', '.join(spec.params.model_fields)}"
                ) from None
            raise ValueError(f"corruption '{self.name}' parameter '{loc}': {err['msg']}") from None

    @property
    def label(self) -> str:
        """The condition value naming the setting: ``var_limit=[0.0, 2.0]`` (every parameter, defaults included)."""
        return ",".join(f"{k}={json.dumps(v)}" for k, v in self.typed.model_dump(mode="json").items())

    def constant(self) -> Any:
        return corruption_registry.spec(self.name).from_params(self.typed)


class CorruptionsParams(Params):
    suites: list[str] = ["cifar10-c"]  # cifar10-c | extra | noise | all
    # explicit names (at `severities`) and/or settings with parameters: replace `suites` (suite label "custom")
    corruptions: list[str | CorruptionSetting] | None = None
    severities: list[int] = [1, 2, 3, 4, 5]
    subset: Subset = None  # None: the experiment's evaluation subset
    batch_size: BatchSize = 256
    seed: Seed = 0  # corruption seed (NOT the training seed): same inputs for every model
    param_set: Literal["auto", "cifar", "imagenet"] = "auto"
    quantize: bool = True  # truncate to uint8 steps, as the published CIFAR-10-C files
    gallery: bool | None = None  # write gallery.png; None = only for the baseline variant
    files: str | None = None  # folder of official CIFAR-10-C/100-C .npy files: use them instead

    @field_validator("severities")
    @classmethod
    def _sev(cls, v: list[int]) -> list[int]:
        bad = [s for s in v if not 1 <= s <= 5]
        if bad or not v:
            raise ValueError(f"severities must be a non-empty list of integers in 1..5, got {v}")
        return v

    @field_validator("suites")
    @classmethod
    def _suites(cls, v: list[str]) -> list[str]:
        known = suites()
        bad = [s for s in v if s not in known]
        if not v:
            raise ValueError(f"give at least one suite (known: {', '.join(known)})")
        if bad:
            raise ValueError(f"unknown corruption suite(s) {bad} (known: {', '.join(known)})")
        return v

    @field_validator("corruptions")
    @classmethod
    def _names(cls, v: list[str | CorruptionSetting] | None) -> list[str | CorruptionSetting] | None:
        if v is not None:
            for n in v:
                if isinstance(n, str):
                    corruption_registry.resolve(n)  # raises with the known names and a "did you mean"
        return v

    def plan(self) -> list[tuple[str, list[str]]]:
        """(suite label, corruption names evaluated at ``severities``) pairs."""
        if self.corruptions:
            names = [n for n in self.corruptions if isinstance(n, str)]
            return [("custom", resolve_names(names))] if names else []
        return [(s, list(suite_names(s))) for s in self.suites]

    def settings(self) -> list[CorruptionSetting]:
        """The corruptions given with their parameters (evaluated once each, suite ``custom``)."""
        return [n for n in self.corruptions or [] if isinstance(n, CorruptionSetting)]

    def cells(self) -> list[tuple[str, list[Cell]]]:
        """(suite label, cells): every (corruption, severity) to evaluate, and every direct setting."""
        out = [
            (
                suite,
                [
                    Cell(corruption_registry.entry(n).name, sev, None, {"corruption": n, "severity": sev})
                    for n in names
                    for sev in self.severities
                ],
            )
            for suite, names in self.plan()
        ]
        direct = [
            Cell(
                corruption_registry.entry(st.name).name,
                0,
                st.constant(),
                {"corruption": corruption_registry.entry(st.name).name, "params": st.label},
            )
            for st in self.settings()
        ]
        if direct:
            if out and out[0][0] == "custom":
                out[0][1].extend(direct)
            else:
                out.append(("custom", direct))
        return out


class ProfileSettings(Params):
    """The measurement protocol's knobs (the efficiency evaluator's params, ``compressbench profile``'s flags)."""

    throughput_batch: int | None = Field(None, ge=0)  # None: 64 on CPU, 256 on GPU; 0: no throughput run
    threads: int = Field(1, ge=0)  # intra-op threads for torch and ONNX Runtime (0 = all logical cores)
    warmup: int = Field(10, ge=0)
    repeats: int = Field(50, ge=1)  # batch-1 samples (median + IQR)
    throughput_repeats: int = Field(10, ge=1)
    timing: bool = True  # False: parameters, bytes and FLOPs only
    # ONNX export + ONNX Runtime latency; None: when the 'onnx' extra is installed (decided once, at validate,
    # so the resolved value is part of the cache key); True without the extra is refused at validate
    onnx: bool | None = Field(None, validate_default=True)
    onnx_int8: Literal["auto", "always", "never"] = "auto"  # auto: only for quantized variants
    calib_batches: int = Field(4, ge=1)  # for ORT static int8 calibration
    fresh_process: bool = True  # time each variant in its own process (needs a checkpoint / factory)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    zstd_level: int = Field(10, ge=1, le=22)
    timeout_s: float = Field(900.0, gt=0, allow_inf_nan=False)

    @field_validator("onnx")
    @classmethod
    def _onnx(cls, v: bool | None) -> bool:
        absent = missing("onnx")
        if v is None:
            if absent:
                log.info(
                    "efficiency: no ONNX Runtime timing (the 'onnx' extra is not installed: %s)", install_hint("onnx")
                )
            return not absent
        if v and absent:
            raise ValueError(needs_message("ONNX Runtime timing", "onnx") + " (or onnx: false)")
        return v


class VerifySettings(Params):
    """How exports are verified and timed (the ``runtimes`` evaluator's and ``compressbench export``'s
    settings; the timing fields are the efficiency protocol's, same defaults)."""

    threads: int = Field(1, ge=0)  # intra-op threads of every runtime (0 = all logical cores)
    warmup: int = Field(10, ge=0)
    repeats: int = Field(50, ge=1)  # batch-1 samples (median + IQR)
    throughput_batch: int | None = Field(None, ge=0)  # None: 64; 0: no throughput run
    throughput_repeats: int = Field(10, ge=1)
    timing: bool = True  # False: verification only (no latency rows)
    fresh_process: bool = True  # time in a new process per artifact (False: in this one, labelled)
    timeout_s: float = Field(900.0, gt=0, allow_inf_nan=False)
    calib_batches: int = Field(8, ge=1)  # batches of 64 images for a runtime's own int8 quantizer
    min_agreement: float = Field(0.99, ge=0, le=1)  # top-1 agreement an export must reach
    fp32_atol: float = Field(1e-3, gt=0)  # fp32 artifacts: max |Δlogit| ≤ fp32_atol × max(1, max |logit|)

    def profile(self) -> ProfileSettings:
        """The efficiency protocol's settings these timings follow."""
        return ProfileSettings(
            threads=self.threads,
            warmup=self.warmup,
            repeats=self.repeats,
            throughput_batch=self.throughput_batch,
            throughput_repeats=self.throughput_repeats,
            fresh_process=self.fresh_process,
            timeout_s=self.timeout_s,
            device="cpu",
        )

    @property
    def max_batch(self) -> int:
        """The largest batch an artifact must take: the throughput batch (64 when 0 or unset)."""
        return self.throughput_batch or 64


class EfficiencyParams(ProfileSettings):
    """Parameters of the ``efficiency`` evaluator: the measurement protocol's settings."""


class RuntimesParams(VerifySettings):
    """Parameters of the ``runtimes`` evaluator: the formats, the images, and the efficiency protocol."""

    formats: list[str] = Field(default_factory=lambda: ["onnx"])
    subset: Subset = None  # verification images; None: the experiment's evaluation subset

    @field_validator("formats")
    @classmethod
    def _formats(cls, v: list[str]) -> list[str]:
        from ..deploy.formats import formats, missing_reason

        if not v:
            raise ValueError(f"give at least one format (known: {', '.join(formats.names())})")
        if len(set(v)) < len(v):
            raise ValueError(f"a format is listed twice: {v}")
        for name in v:
            formats.spec(name)  # unknown: one line with the known names and a "did you mean"
            why = missing_reason(name)
            if why:
                raise ValueError(f"format '{name}' cannot be used here: {why}")
        return v


# --------------------------------------------------------------------------- declarations: registry.evaluators
evaluators.declare(
    "adversarial",
    description=(
        "robust accuracy under FGSM / PGD / DeepFool / C&W / DDN / AutoAttack (white-box, transfer "
        "from the float parent, or white-box through fake-quant STE)"
    ),
    params=AdversarialParams,
    extras=attack_extras,
)
evaluators.declare(
    "agreement",
    description="disagreement with the parent's top-1 predictions; most-disagreed images",
    params=AgreementParams,
    extras=None,
)
evaluators.declare(
    "calibration",
    description="15-bin ECE, NLL and Brier score, clean and under selected corruptions",
    params=CalibrationParams,
    extras=None,
)
evaluators.declare(
    "clean",
    description="top-1/top-5 accuracy, per-class accuracy and NLL on the evaluation subset",
    params=CleanParams,
    extras=None,
)
evaluators.declare(
    "corruptions",
    description=(
        "top-1 under CIFAR-10-C / extra / noise-study corruptions × severities (deterministic, "
        "corrupted on the fly); mean_top1, mce_unnormalised"
    ),
    params=CorruptionsParams,
    extras=None,
)
evaluators.declare(
    "domain_shift",
    description=(
        "top-1 in-domain (source test split) and on every target domain, the gap; optionally on corrupted target images"
    ),
    params=DomainShiftParams,
    extras=None,
)
evaluators.declare(
    "efficiency",
    description=(
        "params, bytes (dense / sparse-encoded / zstd), FLOPs & MACs (dense, effective, int8), "
        "latency b1 + throughput + peak memory in a fresh process, ONNX Runtime fp32/int8 latency; "
        "each figure tagged realised or theoretical"
    ),
    params=EfficiencyParams,
    extras=None,
)
evaluators.declare(
    "runtimes",
    description=(
        "export to deployment runtimes (ONNX Runtime, ExecuTorch-XNNPACK, OpenVINO, torch.export, "
        "safetensors), verify against the variant, latency b1 + throughput there (efficiency "
        "protocol)"
    ),
    params=RuntimesParams,
    extras=None,
)
evaluators.declare(
    "sensitivity",
    description=(
        "per conv / linear layer: the drop in clean and corrupted top-1 when that layer alone is "
        "quantized to int8 or L1-pruned (feeds the goal's int8 fallback)"
    ),
    params=SensitivityParams,
    extras=None,
)
