"""A test fixture: a store filled with SYNTHETIC rows (made-up numbers) in the metric naming contract.

Used by the report's tests and to render the sample screenshot in the docs. Values follow simple
formulas so tests can check the tables: e.g. clean top-1 of a variant at seed index ``i`` is
``CLEAN[variant] + SEED_OFFSETS[i]``. The experiment is called ``synthetic-demo`` and its run's
config says ``synthetic: true``; nothing here is a measurement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from compressbench.store import ResultStore

EXPERIMENT = "synthetic-demo"
SEED_OFFSETS = (-0.01, 0.0, 0.01)
# variant -> (method, budget_kind, budget_target, achieved fraction)
VARIANTS = {
    "baseline": ("baseline", None, None, 1.0),
    "prune.unstructured@params=0.5": ("prune.unstructured", "params", 0.5, 0.502),
    "prune.unstructured@params=0.25": ("prune.unstructured", "params", 0.25, 0.251),
    "prune.structured@params=0.5": ("prune.structured", "params", 0.5, 0.49),
    "quantize.dynamic@knob=8": ("quantize.dynamic", "knob", 8.0, None),
    "distill@params=0.25": ("distill", "params", 0.25, 0.26),
}
CLEAN = {
    "baseline": 0.90,
    "prune.unstructured@params=0.5": 0.89,
    "prune.unstructured@params=0.25": 0.85,
    "prune.structured@params=0.5": 0.87,
    "quantize.dynamic@knob=8": 0.895,
    "distill@params=0.25": 0.86,
}
CORRUPTIONS = ("gaussian_noise", "defocus_blur", "contrast")
SEVERITIES = (1, 3, 5)
EPS = (0.0, 2 / 255, 4 / 255, 8 / 255, 16 / 255)
ALL_EVALUATORS = ("compress", "clean", "efficiency", "corruptions", "adversarial", "calibration", "agreement")
PARENT_PARAMS = 140_000


def corruption_top1(variant: str, corruption: str, severity: int, seed_offset: float) -> float:
    """Synthetic accuracy: clean minus a corruption- and severity-dependent drop."""
    k = {"gaussian_noise": 0.06, "defocus_blur": 0.04, "contrast": 0.02}[corruption]
    frag = 1.0 if variant == "baseline" else 1.0 + (0.9 - CLEAN[variant]) * 10
    return CLEAN[variant] + seed_offset - k * severity * frag


def robust_top1(variant: str, eps: float, seed_offset: float) -> float:
    return max(0.0, CLEAN[variant] + seed_offset - eps * 255 * 0.1)


def _png(path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(2, 4, figsize=(4, 2.2), dpi=60)
    rng = np.random.default_rng(0)
    for ax in axes.flat:
        ax.imshow(rng.random((8, 8)), cmap="gray")
        ax.axis("off")
    fig.suptitle(f"{title} (synthetic)", fontsize=8)
    fig.savefig(path)
    plt.close(fig)
    return path


class _Rows:
    """The rows of one variant × seed: ``add`` fills in the variant's columns; the fields are what the
    per-evaluator writers below compute their made-up values from."""

    def __init__(self, rows: list[dict], v: str, seed: int, i: int) -> None:
        self.rows, self.v, self.seed, self.i = rows, v, seed, i
        self.method, bkind, btarget, ach = VARIANTS[v]
        self.off = SEED_OFFSETS[i % len(SEED_OFFSETS)]
        self.frac = ach if ach is not None else 1.0
        self.base = {
            "experiment": EXPERIMENT,
            "variant": v,
            "method": self.method,
            "budget_kind": bkind,
            "budget_target": btarget,
            "budget_achieved": ach,
            "seed": seed,
            "run_id": "run-synthetic",
        }

    def add(self, evaluator: str, metric: str, value: float, condition: dict | None = None, tag: str = "") -> None:
        self.rows.append(
            {
                **self.base,
                "evaluator": evaluator,
                "metric": metric,
                "value": value,
                "condition": condition or {},
                "tag": tag,
                "job_key": f"{self.v}/{self.seed}/{evaluator}",
            }
        )


def _compress_rows(r: _Rows) -> None:
    r.add("compress", "achieved_params", r.frac)
    r.add("compress", "achieved_bytes", 0.25 if r.method.startswith("quantize") else r.frac)
    r.add("compress", "achieved_flops", r.frac)


def _clean_rows(r: _Rows) -> None:
    clean = CLEAN[r.v]
    r.add("clean", "top1", clean + r.off)
    r.add("clean", "top5", min(1.0, clean + 0.08 + r.off))
    r.add("clean", "nll", 0.3 + (0.9 - clean) + r.off)
    r.add("clean", "n_images", 2000)
    for c in ("shirt", "bag"):
        r.add("clean", "class_top1", clean - 0.05, {"class": c})


def _efficiency_rows(r: _Rows) -> None:
    """Sizes that shrink with real tensors (structured, distill) or encoding (unstructured: simulated latency),
    int8 at a quarter of the bytes and half the latency, ONNX Runtime faster still."""
    method, frac = r.method, r.frac
    shrinks = method in ("prune.structured", "distill")
    quantized = method.startswith("quantize")
    nz = PARENT_PARAMS * frac
    dense = PARENT_PARAMS * 4.0 * (frac if shrinks else 1.0)
    comp = dense * (0.25 if quantized else frac if method == "prune.unstructured" else 1.0) * 0.95
    tag = "simulated" if method == "prune.unstructured" else "realised"
    r.add("efficiency", "params", PARENT_PARAMS * (frac if shrinks else 1.0), tag="realised")
    r.add("efficiency", "params_nonzero", nz, tag="theoretical")
    r.add("efficiency", "bytes_dense", dense, tag="realised")
    r.add(
        "efficiency",
        "bytes_compressed",
        comp,
        {"encoding": "sparse+zstd" if method == "prune.unstructured" else "zstd"},
        tag="realised",
    )
    r.add("efficiency", "flops", 2.4e7 * frac, tag="realised")
    r.add("efficiency", "flops_effective", 2.4e7 * frac, tag="theoretical")
    lat = 1.0 * (frac if shrinks else 0.5 if quantized else 1.0) + 0.01 * r.i
    rt = "torch-int8" if quantized else "torch"
    r.add("efficiency", "latency_b1_ms", lat, {"batch": 1, "threads": 1, "runtime": rt}, tag)
    r.add("efficiency", "latency_b1_iqr_ms", 0.05, {"batch": 1, "threads": 1, "runtime": rt}, tag)
    r.add("efficiency", "throughput_img_s", 3000 / lat, {"batch": 64, "threads": 1, "runtime": rt}, tag)
    ort = {"batch": 1, "threads": 1, "runtime": "onnxruntime"}
    r.add("efficiency", "onnx_latency_b1_ms", lat * 0.6, {**ort, "dtype": "fp32"}, "realised")
    if quantized:
        r.add("efficiency", "onnx_latency_b1_ms", lat * 0.3, {**ort, "dtype": "int8"}, "realised")


def _corruption_rows(r: _Rows) -> None:
    accs = []
    for c in CORRUPTIONS:
        for s in SEVERITIES:
            a = corruption_top1(r.v, c, s, r.off)
            accs.append(a)
            r.add("corruptions", "top1", a, {"corruption": c, "severity": s, "suite": "cifar10-c"})
    mean = sum(accs) / len(accs)
    r.add("corruptions", "mean_top1", mean, {"suite": "cifar10-c"})
    for s in SEVERITIES:  # the evaluator's partial means must not leak into the overall mean
        r.add("corruptions", "mean_top1", 0.0, {"suite": "cifar10-c", "severity": s})
    for c in CORRUPTIONS:
        r.add("corruptions", "mean_top1", 0.0, {"suite": "cifar10-c", "corruption": c})
    r.add("corruptions", "mce_unnormalised", 1 - mean, {"suite": "cifar10-c"})


def _adversarial_rows(r: _Rows) -> None:
    v, off = r.v, r.off
    for e in EPS:
        r.add(
            "adversarial",
            "robust_top1",
            robust_top1(v, e, off),
            {"attack": "pgd", "norm": "linf", "eps": e, "steps": 10, "mode": "whitebox"},
            "whitebox",
        )
    r.add(
        "adversarial",
        "robust_top1",
        robust_top1(v, 8 / 255, off) + 0.05,
        {"attack": "fgsm", "norm": "linf", "eps": 8 / 255, "steps": 1, "mode": "whitebox"},
        "whitebox",
    )
    r.add(
        "adversarial",
        "robust_top1",
        robust_top1(v, 8 / 255, off) + 0.2,
        {"attack": "pgd", "norm": "linf", "eps": 8 / 255, "steps": 10, "mode": "transfer"},
        "transfer",
    )
    # the evaluator's stronger-attack check: more PGD steps, slightly lower accuracy
    r.add(
        "adversarial",
        "robust_top1",
        robust_top1(v, 8 / 255, off) - 0.01,
        {"attack": "pgd", "norm": "linf", "eps": 8 / 255, "steps": 20, "mode": "whitebox"},
        "whitebox",
    )
    r.add("adversarial", "check_monotone_eps", 1.0, {"attack": "pgd", "norm": "linf", "steps": 10})
    r.add(
        "adversarial",
        "check_stronger_not_weaker",
        0.0 if r.method == "distill" else 1.0,
        {"attack": "pgd", "norm": "linf", "steps": 10, "steps_strong": 20},
    )
    r.add(
        "adversarial",
        "robust_top1",
        0.5 + off,
        {"attack": "pgd", "norm": "l2", "eps": 0.5, "steps": 10, "mode": "whitebox"},
        "whitebox",
    )


def _calibration_rows(r: _Rows) -> None:
    gap = 0.9 - CLEAN[r.v]
    r.add("calibration", "ece", 0.02 + gap + r.off / 10)
    r.add("calibration", "nll", 0.3 + gap)
    r.add("calibration", "brier", 0.15 + gap)
    for c in CORRUPTIONS:
        r.add("calibration", "ece", 0.08 + gap, {"corruption": c, "severity": 3})
        r.add("calibration", "nll", 0.6, {"corruption": c, "severity": 3})
        r.add("calibration", "brier", 0.3, {"corruption": c, "severity": 3})


def _agreement_rows(r: _Rows) -> None:
    d = 0.0 if r.v == "baseline" else (0.9 - CLEAN[r.v]) * 2 + 0.01
    r.add("agreement", "disagreement", d)
    r.add("agreement", "agreement_top1", 1 - d)


# each evaluator's writer, in the order the rows of one variant × seed are written
_WRITERS = {
    "compress": _compress_rows,
    "clean": _clean_rows,
    "efficiency": _efficiency_rows,
    "corruptions": _corruption_rows,
    "adversarial": _adversarial_rows,
    "calibration": _calibration_rows,
    "agreement": _agreement_rows,
}


def make_store(
    path: str | Path,
    seeds: Iterable[int] = (0, 1, 2),
    evaluators: Iterable[str] = ALL_EVALUATORS,
    artifacts_dir: str | Path | None = None,
    variants: Iterable[str] | None = None,
) -> ResultStore:
    """Write a synthetic experiment into a new store at ``path`` and return it."""
    seeds = list(seeds)
    evaluators = set(evaluators)
    store = ResultStore(path)
    store.add_run(
        "run-synthetic",
        EXPERIMENT,
        "2025-01-01T00:00:00",
        {
            "name": EXPERIMENT,
            "synthetic": True,
            "seeds": seeds,
            "model": {"name": "cnn5"},
            "dataset": {"name": "fashion-mnist"},
        },
        "0000000synthetic",
        {"torch": "synthetic"},
        "cpu",
        {"cpu": "synthetic", "threads": 2},
    )
    rows: list[dict] = []
    for v in variants or VARIANTS:
        for i, seed in enumerate(seeds):
            r = _Rows(rows, v, seed, i)
            for evaluator, write in _WRITERS.items():
                if evaluator in evaluators:
                    write(r)
    store.add_rows(rows)
    if artifacts_dir is not None and hasattr(store, "add_artifact"):
        _add_galleries(store, Path(artifacts_dir), seeds[0], evaluators)
    return store


def _add_galleries(store: ResultStore, adir: Path, seed: int, evaluators: set[str]) -> None:
    """Made-up image artifacts: the corruption gallery of the parent, the disagreed images of one variant."""
    adir.mkdir(parents=True, exist_ok=True)
    if "corruptions" in evaluators:
        p = _png(adir / "gallery.png", "corruption gallery")
        _add_artifact(store, "baseline", "baseline", seed, "corruptions", p)
    if "agreement" in evaluators:
        for v in ("prune.unstructured@params=0.25",):
            p = _png(adir / "disagreed.png", f"disagreed {v}")
            _add_artifact(store, v, VARIANTS[v][0], seed, "agreement", p)


def _add_artifact(store: ResultStore, variant: str, method: str, seed: int, evaluator: str, path: Path) -> None:
    store.add_artifact(
        job_key=f"{variant}/{seed}/{evaluator}",
        experiment=EXPERIMENT,
        variant=variant,
        method=method,
        seed=seed,
        evaluator=evaluator,
        name=path.name,
        path=str(path),
        created_at="2025-01-01T00:00:00",
    )
