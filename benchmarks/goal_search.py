"""The goal's search against an exhaustive grid, on the quickstart model (cnn5 on Fashion-MNIST, offline).

Goal: ``minimize latency_b1_ms`` subject to ``clean_top1`` and ``corr_top1`` drops ≤ 1 point (one-sided 95 %
bounds). Families (each a ``params`` budget range 0.1 .. 0.9): unstructured and structured pruning, low-rank.

1. **Search**: ``compressbench.goal.search`` (bisection on 10 points per family, plus static int8 and its fallback)
   in its own cache and store: jobs and wall time.
2. **Grid**: every family at the same 10 budgets, an ordinary run in its own cache and store (the parent is
   trained again: both sides pay for it), then the same goal decided on that store: jobs and wall time.
3. Per family: the search's most compressed budget meeting the goal vs the grid's — within one grid step? The
   winning family of each, and the winner under the clean-only goal (``clean_top1`` alone) on the grid's store.

    nice -n 10 .venv/bin/python benchmarks/goal_search.py            # the full comparison (CPU-heavy)
    .venv/bin/python benchmarks/goal_search.py --quick               # digits / tinycnn, 5 points: checks the script

Writes ``benchmarks/results/goal_search[_quick].json`` and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import yaml

os.environ.setdefault("COMPRESSBENCH_PROGRESS", "0")

from compressbench.config.schema import GoalConfig  # noqa: E402
from compressbench.goal import decide_store  # noqa: E402
from compressbench.goal.decision import family_of  # noqa: E402
from compressbench.goal.search import budget_grid, search  # noqa: E402
from compressbench.runner import run  # noqa: E402
from compressbench.validate import load_config  # noqa: E402

RESULTS = Path(__file__).parent / "results"
FAMILIES = [
    {"method": "prune.unstructured", "params": {"criterion": "l1", "scope": "global", "finetune": {"epochs": 0.1}}},
    {"method": "prune.structured", "params": {"criterion": "l1", "scope": "global", "finetune": {"epochs": 0.1}}},
    {"method": "lowrank", "params": {"conv": "channel_svd", "finetune": {"epochs": 0.1}}},
]
GOAL = {
    "objective": {"minimize": "latency_b1_ms"},
    "constraints": {"clean_top1": 1.0, "corr_top1": 1.0},
    "search": {"points": 10},
}


def config(quick: bool, root: Path, name: str, grid: list[float] | None) -> dict:
    """The experiment: the search's (a budgets range per family, int8, the goal) or the grid's (every budget)."""
    if quick:
        data, model, train = (
            {"name": "digits", "eval_subset": 300},
            {"name": "tinycnn"},
            {"epochs": 2, "batch_size": 64},
        )
        corr = {"corruptions": ["gaussian_noise", "contrast"], "severities": [3]}
    else:
        data, model = {"name": "fashion-mnist", "eval_subset": 1000}, {"name": "cnn5"}
        train = {"epochs": 3, "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "schedule": "onecycle"}
        corr = {
            "corruptions": ["gaussian_noise", "shot_noise", "defocus_blur", "contrast", "jpeg_compression", "fog"],
            "severities": [3],
            "subset": 1000,
        }
    variants = [{**f, "budgets": {"params": grid if grid is not None else [0.1, 0.9]}} for f in FAMILIES]
    if grid is None:
        variants.append({"method": "quantize.static", "params": {"calibration_batches": 4}})
    cfg = {
        "name": "goalbench",
        "seeds": [0],
        "dataset": data,
        "model": model,
        "train": train,
        "cache_dir": str(root / name / "cache"),
        "store": str(root / name / "store.sqlite"),
        "variants": variants,
        "evaluations": [
            {"evaluator": "clean", "params": {"subset": 2000 if not quick else None}},
            {"evaluator": "corruptions", "params": corr},
            {"evaluator": "efficiency", "params": {"repeats": 30, "throughput_repeats": 3}},
        ],
    }
    if quick:
        cfg["evaluations"][0].pop("params")
    if grid is None:
        cfg["goal"] = {**GOAL, "search": {"points": POINTS}}
    return cfg


def load(cfg: dict, root: Path):
    p = root / f"{cfg['cache_dir'].split('/')[-2]}.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return load_config(p)


def best_per_family(dec) -> dict[str, float | None]:
    """Per family: the smallest params budget among the candidates meeting the goal (None: none does)."""
    out: dict[str, float | None] = {f["method"]: None for f in FAMILIES}
    for c in dec.qualifying:
        fam = family_of(c.variant)
        if fam in out and "@params=" in c.variant:
            v = float(c.variant.split("@params=")[1])
            out[fam] = v if out[fam] is None else min(out[fam], v)
    return out


def main() -> None:
    global POINTS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="digits / tinycnn, 5 points: validates the script")
    ap.add_argument("--workdir", help="where caches and stores go (default: a temporary folder)")
    ap.add_argument(
        "--accept-noisy",
        action="store_true",
        help="timings flagged noisy may decide (a loaded machine); recorded in the JSON",
    )
    args = ap.parse_args()
    if args.accept_noisy:
        GOAL["accept_noisy"] = True
    POINTS = 5 if args.quick else 10
    root = Path(args.workdir or tempfile.mkdtemp(prefix="goalbench-"))
    root.mkdir(parents=True, exist_ok=True)
    grid = budget_grid([0.1, 0.9], POINTS, "params")
    step = grid[1] - grid[0]

    t0 = time.perf_counter()
    res = search(load(config(args.quick, root, "search", None), root), progress=False)
    t_search = time.perf_counter() - t0
    t0 = time.perf_counter()
    gsum = run(load(config(args.quick, root, "grid", grid), root), progress=False)
    t_grid = time.perf_counter() - t0
    goal = GoalConfig.model_validate(GOAL)
    (gdec,) = decide_store(root / "grid" / "store.sqlite", goal=goal)
    clean_only = GoalConfig.model_validate({**GOAL, "constraints": {"clean_top1": 1.0}})
    (gclean,) = decide_store(root / "grid" / "store.sqlite", goal=clean_only)
    (sclean,) = decide_store(root / "search" / "store.sqlite", goal=clean_only)

    grid_best = best_per_family(gdec)
    fams = {}
    for f in res.families:
        g = grid_best.get(f.label)
        within = (f.best is None and g is None) or (
            f.best is not None and g is not None and abs(f.best - g) <= step + 1e-9
        )
        fams[f.label] = {
            "search_best": f.best,
            "grid_best": g,
            "within_one_step": within,
            "probes": [(v, o) for v, _, o in f.probes],
        }
    rec = res.decision.recommended
    out = {
        "quick": args.quick,
        "points": POINTS,
        "accept_noisy": args.accept_noisy,
        "grid_budgets": grid,
        "search": {
            "jobs": res.jobs,
            "ran": res.ran,
            "cached": res.cached,
            "rounds": res.rounds,
            "wall_s": round(t_search, 1),
            "failed": res.summary.failed,
            "recommended": rec.candidate.variant if rec.candidate else None,
            "latency_ms": rec.value,
            "parent_latency_ms": rec.parent,
            "fallback": [ln for fb in res.fallback for ln in fb.lines()],
            "clean_only_recommended": sclean.recommended.candidate.variant if sclean.recommended.candidate else None,
        },
        "grid": {
            "jobs": gsum.jobs,
            "ran": gsum.ran,
            "wall_s": round(t_grid, 1),
            "failed": gsum.failed,
            "recommended": gdec.recommended.candidate.variant if gdec.recommended.candidate else None,
            "clean_only_recommended": gclean.recommended.candidate.variant if gclean.recommended.candidate else None,
        },
        "families": fams,
        "job_ratio": round(res.jobs / gsum.jobs, 3) if gsum.jobs else None,
    }
    RESULTS.mkdir(exist_ok=True)
    dest = RESULTS / f"goal_search{'_quick' if args.quick else ''}.json"
    dest.write_text(json.dumps(out, indent=2))
    print("\n".join(res.lines()))
    print(
        f"search: {res.jobs} jobs ({res.ran} ran) in {t_search:.0f}s; grid: {gsum.jobs} jobs ({gsum.ran} ran) in "
        f"{t_grid:.0f}s; search/grid jobs = {out['job_ratio']}"
    )
    for fam, d in fams.items():
        print(
            f"  {fam}: search {d['search_best']} vs grid {d['grid_best']} "
            f"({'within' if d['within_one_step'] else 'NOT within'} one step of {step:.4f})"
        )
    print(
        f"winner: search {out['search']['recommended']}, grid {out['grid']['recommended']}; clean-only: search "
        f"{out['search']['clean_only_recommended']}, grid {out['grid']['clean_only_recommended']}"
    )
    print(f"-> {dest}")


POINTS = 10

if __name__ == "__main__":
    main()
