"""How close the quickstart runs to this machine's floor: the training step's FLOP rate against the same
layers' and a large GEMM's peak, where a training step and a clean evaluation spend their CPU time, and what
the whole run's FLOPs would cost at the measured peak.

Claim (issue 27, "≤ 4 min without training or measuring less"): the quickstart is compute-bound, so its floor
is its FLOPs divided by the machine's sustained FLOP rate; this script measures both and how much of a
training step and of a clean evaluation is spent outside the model's forward / backward / optimizer step.

Conditions: the quickstart config (``configs/quickstart.yaml``: cnn5 on Fashion-MNIST, batch 128, SGD
one-cycle), ``--threads`` torch threads (default 1: its CPU time is the same on a loaded machine; with 2
threads on a loaded machine idle OpenMP workers spin and inflate CPU time — use a quiet machine for 2).

* **peak**: a 2048² fp32 GEMM (``torch.mm``); the cnn5 convolutions alone, forward + backward at batch 128 and
  512; the whole cnn5 model's training step (forward, cross-entropy, backward, SGD step) on one fixed batch of 128
  (no data, no augmentation, no bookkeeping), in the memory format the training loop's batches have
  (channels-last strides, see ``channels_last_rand``); the evaluation forward pass at batch 64–512, float and
  dynamic int8, with whether its logits equal batch 512's bit for bit.
* **train**: ``compressbench.train.train`` itself, the quickstart's recipe, on the first ``--steps`` × 128
  training images (one epoch = ``--steps`` steps), timed, then again under cProfile (CPU-time clock) to split
  ``train()``'s time into its direct callees: the forward + loss, backward, optimizer step, batches,
  augmentation, the running loss / accuracy (``.item()``), the progress bar and the log.
* **clean**: the ``clean`` evaluator on ``--eval-images`` test images (the quickstart's 10,000), split the
  same way (the model's forward vs batching, outcomes, per-class accuracy).
* **whole run**: every quickstart job's FLOPs from the planner's cost model (``estimate.job_costs``) divided
  by the best rate measured (the GEMM's or the convolutions' alone at batch 128) and by the training loop's
  achieved rate, per job kind.

Everything runs inside ``execute.allocator.keep_freed_memory`` as ``compressbench run``'s jobs do;
``--allocator default`` measures with glibc's default malloc settings instead (the code before it).

FLOPs: ``compressbench.measure.flops.count_flops`` (convolutions and linear layers; a training step counts
``costs.TRAIN_STEP`` = 3 × forward). Rates are GFLOP per CPU second (user + sys of the process) and per wall
second; the CPU figure is what carries over between a loaded and a quiet machine.

    nice -n 19 .venv/bin/python benchmarks/quickstart_floor.py [--threads 1] [--steps 100] [--allocator default]
    .venv/bin/python benchmarks/quickstart_floor.py --report benchmarks/results/quickstart_floor.json

Prints a Markdown table and writes ``benchmarks/results/quickstart_floor.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import platform
import pstats
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("COMPRESSBENCH_PROGRESS", "0")

import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def sys_s() -> float:
    return os.times().system


class Timer:
    """CPU (user + sys of the whole process: every torch thread) and wall seconds of a block."""

    def __enter__(self) -> "Timer":
        self.c0, self.s0, self.w0 = cpu_s(), sys_s(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu, self.sys, self.wall = cpu_s() - self.c0, sys_s() - self.s0, time.perf_counter() - self.w0


def best_of(fn, rounds: int) -> Timer:
    """The round of ``fn()`` with the least CPU time (a loaded machine only ever adds to it)."""
    out = None
    for _ in range(rounds):
        with Timer() as t:
            fn()
        if out is None or t.cpu < out.cpu:
            out = t
    return out


def rate(flops: float, t: Timer) -> dict[str, float]:
    return {
        "gflop": flops / 1e9,
        "cpu_s": t.cpu,
        "sys_s": getattr(t, "sys", float("nan")),
        "wall_s": t.wall,
        "gflop_per_cpu_s": flops / max(t.cpu, 1e-9) / 1e9,
        "gflop_per_wall_s": flops / max(t.wall, 1e-9) / 1e9,
    }


# --------------------------------------------------------------------------- peak
# the memory format of the training loop's batches: ``train.augment_batch``'s crop returns a one-channel batch with
# channels-last strides (784, 1, 28, 1), so the whole network trains channels-last (25 % less CPU per step than
# the same batch in NCHW here); the references below use it too
def channels_last_rand(*shape: int) -> torch.Tensor:
    """A uniform random batch of ``shape`` (N, C, H, W) with channels-last strides, one channel included
    (``.contiguous(memory_format=torch.channels_last)`` leaves a one-channel NCHW tensor as it is)."""
    n, c, h, w = shape
    return torch.rand(n, h, w, c).permute(0, 3, 1, 2)


def gemm_peak(n: int = 2048, repeats: int = 4, rounds: int = 3) -> dict[str, float]:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)

    def run() -> None:
        for _ in range(repeats):
            torch.mm(a, b)

    return {"n": n, "repeats": repeats, "rounds": rounds, **rate(2.0 * n**3 * repeats, best_of(run, rounds))}


def conv_inputs(model, shape: tuple[int, ...]) -> list[tuple[object, tuple[int, ...]]]:
    """Every Conv2d of ``model`` with the input shape it sees at ``shape``."""
    import torch
    from torch import nn

    seen: list[tuple[object, tuple[int, ...]]] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: seen.append((m, tuple(i[0].shape))))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    with torch.no_grad():
        model.eval()(torch.rand(*shape))
    for h in hooks:
        h.remove()
    return seen


def conv_peak(model, meta, batch: int, repeats: int = 2, rounds: int = 3) -> dict[str, object]:
    """The model's convolutions alone, forward + backward (input and weight gradients) at ``batch``."""
    import copy

    from compressbench.costs import TRAIN_STEP
    from compressbench.measure.flops import count_flops

    layers, total_flops, total = [], 0.0, Timer()
    total.cpu = total.sys = total.wall = 0.0
    for conv, shape in conv_inputs(model, (1, meta.channels, *meta.size)):
        c = copy.deepcopy(conv).train()
        x = channels_last_rand(batch, *shape[1:]).requires_grad_(True)
        flops = TRAIN_STEP * count_flops(c, (batch, *shape[1:])) * repeats

        def step(c=c, x=x) -> None:
            c.zero_grad(set_to_none=True)
            x.grad = None
            c(x).sum().backward()

        def run(step=step) -> None:
            for _ in range(repeats):
                step()

        step()
        t = best_of(run, rounds)
        total_flops += flops
        total.cpu += t.cpu
        total.sys += t.sys
        total.wall += t.wall
        layers.append({"in": list(shape[1:]), "out_channels": c.out_channels, **rate(flops, t)})
    return {"batch": batch, "repeats": repeats, "rounds": rounds, "layers": layers, **rate(total_flops, total)}


def model_step_peak(model, meta, recipe, steps: int = 10, rounds: int = 3) -> dict[str, object]:
    """The whole model's training step on one fixed batch: forward, cross-entropy, backward, SGD step."""
    import copy

    import torch
    import torch.nn.functional as F

    from compressbench.costs import TRAIN_STEP
    from compressbench.measure.flops import count_flops
    from compressbench.train import _optimizer

    net = copy.deepcopy(model).train()
    # lr 0: the same work per step, but the weights stay put (a net fitting one batch drives its gradients
    # towards denormal floats, whose arithmetic is slow, and would measure that instead)
    recipe.lr = 0.0
    opt = _optimizer(net, recipe)
    b = recipe.batch_size
    x = channels_last_rand(b, meta.channels, *meta.size)
    y = torch.randint(0, meta.num_classes, (b,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()

    def run() -> None:
        for _ in range(steps):
            step()

    for _ in range(3):
        step()
    t = best_of(run, rounds)
    fp = count_flops(model, (1, meta.channels, *meta.size))
    # which operators take the step's time (torch.profiler, self CPU time; shares only: its clock is wall time)
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    with tprofile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    ops: dict[str, float] = {}
    for e in prof.key_averages():
        ops[e.key] = ops.get(e.key, 0.0) + e.self_cpu_time_total
    tot = sum(ops.values()) or 1.0
    shares = {k: v / tot for k, v in sorted(ops.items(), key=lambda kv: -kv[1]) if v / tot >= 0.005}
    return {"batch": b, "steps": steps, "rounds": rounds, **rate(TRAIN_STEP * fp * b * steps, t), "op_shares": shares}


def eval_batch_sizes(model, bundle, meta, n: int = 2048, sizes=(64, 128, 256, 512), rounds: int = 3):
    """``train.predict`` at several batch sizes: CPU time and whether the logits equal batch 512's bit for bit,
    for the float model and for a dynamic-int8 copy (its activation scale is taken per batch)."""
    import copy

    import torch

    from compressbench.measure.flops import count_flops
    from compressbench.train import predict

    images = bundle.test.subset(torch.arange(min(n, len(bundle.test))))
    net = copy.deepcopy(model).eval()
    with torch.no_grad():  # BatchNorm statistics of a trained net, not the identity of a fresh one
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    dyn = torch.ao.quantization.quantize_dynamic(copy.deepcopy(net), {torch.nn.Linear}, dtype=torch.qint8)
    fp = count_flops(net, (1, meta.channels, *meta.size)) * len(images)
    out = {}
    for name, m in (("float", net), ("dynamic_int8", dyn)):
        ref = predict(m, images, 512)
        rows = {}
        for bs in sizes:
            t = best_of(lambda m=m, bs=bs: predict(m, images, bs), rounds)
            rows[bs] = {**rate(fp, t), "equal_to_b512": bool(torch.equal(predict(m, images, bs), ref))}
        out[name] = rows
    return {"images": len(images), **out}


# --------------------------------------------------------------------------- profiles
def _label(func: tuple[str, int, str]) -> str:
    file, _, name = func
    if file == "~":
        return name.replace("<method '", "").replace("<built-in method ", "").split("'")[0].split(" ")[0]
    return f"{Path(file).name}:{name}"


def direct_callees(stats: pstats.Stats, caller_name: str, caller_file: str) -> tuple[float, dict[str, float]]:
    """(cumulative seconds of ``caller``, {callee label: cumulative seconds spent in it when called directly by
    ``caller``}), with ``caller``'s own time as ``(own)``."""
    table = stats.stats  # type: ignore[attr-defined]
    key = next(k for k in table if k[2] == caller_name and k[0].endswith(caller_file))
    total, own = table[key][3], table[key][2]
    out: dict[str, float] = {"(own)": own}
    for func, (_, _, _, _, callers) in table.items():
        if key in callers:
            lab = _label(func)
            out[lab] = out.get(lab, 0.0) + callers[key][3]
    return total, out


def profile(fn, *args, **kw) -> tuple[object, pstats.Stats, Timer]:
    prof = cProfile.Profile(time.process_time)
    with Timer() as t:
        prof.enable()
        try:
            res = fn(*args, **kw)
        finally:
            prof.disable()
    return res, pstats.Stats(prof), t


TRAIN_GROUPS = {
    "model: forward + loss": ("train.py:_forward_loss",),
    "model: backward": ("_tensor.py:backward", "grad_scaler.py:scale"),
    "model: optimizer step + zero_grad": (
        "grad_scaler.py:step",
        "grad_scaler.py:update",
        "optimizer.py:zero_grad",
        "_compile.py:inner",  # zero_grad's wrapper
    ),
    "data: batches (index, to float)": ("base.py:batches",),
    "data: augmentation (crop)": ("train.py:augment_batch", "transforms.py:photometric"),
    "schedule (lr, freeze)": ("train.py:_set_lr", "train.py:_thaw_when_due"),
    "running loss / accuracy (.item, argmax)": ("item", "argmax", "float", "mean", "__eq__", "train.py:_ema"),
    "progress bar and log": ("std.py:update", "std.py:set_postfix", "perf_counter", "__init__.py:info"),
    "autocast context (off on CPU)": (
        "autocast_mode.py:__init__",
        "autocast_mode.py:__enter__",
        "autocast_mode.py:__exit__",
    ),
    "once per call: seeding, optimizer, model.to / train / eval, bar": (
        "train.py:seed_everything",
        "train.py:_optimizer",
        "module.py:to",
        "module.py:train",
        "module.py:eval",
        "__init__.py:progress_bar",
        "__init__.py:log_interval",
        "std.py:close",
    ),
}
CLEAN_GROUPS = {
    "model: forward": ("module.py:_wrapped_call_impl",),
    "data: batches (index, to float)": ("base.py:batches",),
    "logits to CPU, concatenation": ("float", "cpu", "cat", "append"),
    "progress bar": ("std.py:update", "std.py:close", "__init__.py:progress_bar"),
}


def group(parts: dict[str, float], groups: dict[str, tuple[str, ...]]) -> dict[str, float]:
    out = {g: 0.0 for g in groups}
    out["other"] = 0.0
    for lab, s in parts.items():
        g = next((g for g, labs in groups.items() if lab in labs), "other")
        out[g] += s
    return out


def profile_train(data, recipe, meta, steps: int) -> dict[str, object]:
    import torch

    from compressbench.costs import TRAIN_STEP
    from compressbench.measure.flops import count_flops
    from compressbench.models import create_model
    from compressbench.train import seed_everything, train

    images = data.train.subset(torch.arange(min(len(data.train), steps * recipe.batch_size)))
    recipe.epochs = 1

    def fresh():
        seed_everything(0)
        return create_model("cnn5", meta)

    fp = count_flops(fresh(), (1, meta.channels, *meta.size))
    flops = TRAIN_STEP * fp * len(images)
    run = dict(seed=0, augment_default=meta.augment, show_progress=False)
    m = fresh()
    with Timer() as plain:
        train(m, images, recipe, **run)
    m = fresh()
    _, stats, prof_t = profile(train, m, images, recipe, **run)
    total, parts = direct_callees(stats, "train", "compressbench/train.py")
    inner = {
        "forward_loss": direct_callees(stats, "_forward_loss", "compressbench/train.py")[1],
    }
    return {
        "images": len(images),
        "steps": steps,
        "plain": rate(flops, plain),
        "profiled_cpu_s": total,
        "profiled_wall_s": prof_t.wall,
        "groups_cpu_s": group(parts, TRAIN_GROUPS),
        "callees_cpu_s": dict(sorted(parts.items(), key=lambda kv: -kv[1])[:25]),
        "forward_loss_callees_cpu_s": inner["forward_loss"],
    }


def profile_clean(bundle, meta, n: int) -> dict[str, object]:
    from compressbench.evaluate.clean import CleanParams, clean
    from compressbench.interfaces import EvalContext, VariantInfo
    from compressbench.measure.flops import count_flops
    from compressbench.models import create_model
    from compressbench.train import seed_everything

    seed_everything(0)
    model = create_model("cnn5", meta).eval()
    fp = count_flops(model, (1, meta.channels, *meta.size))
    with tempfile.TemporaryDirectory(prefix="cb-floor-") as tmp:
        ctx = EvalContext(
            bundle,
            meta,
            torch.device("cpu"),
            0,
            Path(tmp),
            VariantInfo("baseline", "baseline"),
            lambda: model,
            eval_size=1000,
            progress=False,
        )
        params = CleanParams(subset=n)
        clean(model, ctx, CleanParams(subset=min(n, 1024)))  # warm-up: first-call allocations
        with Timer() as plain:
            clean(model, ctx, params)
        _, stats, prof_t = profile(clean, model, ctx, params)
    total_clean, clean_parts = direct_callees(stats, "clean", "evaluate/clean.py")
    total_pred, pred_parts = direct_callees(stats, "predict", "compressbench/train.py")
    groups = group(pred_parts, CLEAN_GROUPS)
    groups["metrics, outcomes, per-class (outside predict)"] = total_clean - total_pred
    return {
        "images": n,
        "batch_size": params.batch_size,
        "plain": rate(fp * n, plain),
        "profiled_cpu_s": total_clean,
        "profiled_wall_s": prof_t.wall,
        "predict_cpu_s": total_pred,
        "groups_cpu_s": groups,
        "clean_callees_cpu_s": dict(sorted(clean_parts.items(), key=lambda kv: -kv[1])[:15]),
        "predict_callees_cpu_s": dict(sorted(pred_parts.items(), key=lambda kv: -kv[1])[:15]),
    }


# --------------------------------------------------------------------------- whole run
def run_flops(exp) -> dict[str, float]:
    """The quickstart's FLOPs per job kind from the planner's cost model."""
    from compressbench.data.sizes import data_sizes
    from compressbench.estimate import job_costs
    from compressbench.measure.flops import count_flops
    from compressbench.plan import plan
    from compressbench.validate import parent_model

    jobs = plan(exp)
    sizes = {part.name: data_sizes(part.dataset, exp.cache_dir) for part in exp.parts}
    meta, base = parent_model(exp)
    fp = float(count_flops(base.model, (1, meta.channels, *meta.size)))
    out: dict[str, float] = {}
    for c in job_costs(exp, jobs, fp, meta, sizes):
        out[c.job.kind] = out.get(c.job.kind, 0.0) + c.flops
    return out


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "loadavg_start": os.getloadavg()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "quickstart.yaml"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=100, help="training steps profiled (batch 128)")
    ap.add_argument("--eval-images", type=int, default=10_000)
    ap.add_argument("--skip", action="append", default=[], choices=["peak", "train", "clean", "run"])
    ap.add_argument(
        "--allocator",
        choices=["kept", "default"],
        default="kept",
        help="kept: measure inside execute.allocator.keep_freed_memory, as compressbench run does; default: "
        "glibc's default malloc settings (the code before it)",
    )
    ap.add_argument("--out", default=str(HERE / "results" / "quickstart_floor.json"))
    ap.add_argument("--report", metavar="JSON", help="print the tables of a saved result and exit")
    args = ap.parse_args()
    if args.report:
        report(json.loads(Path(args.report).read_text()))
        return

    import torch

    from compressbench.execute.allocator import keep_freed_memory
    from compressbench.runner import _recipe, get_dataset
    from compressbench.validate import load_config

    torch.set_num_threads(args.threads)
    res: dict[str, object] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "threads": args.threads,
        "torch": torch.__version__,
        "allocator": args.allocator,
    }
    keep = keep_freed_memory() if args.allocator == "kept" else contextlib.nullcontext(False)
    with tempfile.TemporaryDirectory(prefix="cb-floor-cfg-") as tmp, keep as kept:
        res["allocator_kept"] = kept
        exp = load_config(args.config, {"cache_dir": f"{tmp}/cache", "store": f"{tmp}/r.sqlite"})
        bundle = get_dataset(exp.dataset, Path(exp.cache_dir))
        meta = bundle.meta
        from compressbench.models import create_model

        model = create_model(exp.model.name, meta)

        def recipe():
            return _recipe(exp.train.key_dump())

        if "peak" not in args.skip:
            res["gemm"] = gemm_peak()
            res["convs_b128"] = conv_peak(model, meta, 128)
            res["convs_b512"] = conv_peak(model, meta, 512)
            res["model_step_b128"] = model_step_peak(model, meta, recipe())
            res["eval_batch"] = eval_batch_sizes(model, bundle, meta)
            print("peak done", flush=True)
        if "train" not in args.skip:
            res["train"] = profile_train(bundle, recipe(), meta, args.steps)
            print("train done", flush=True)
        if "clean" not in args.skip:
            res["clean"] = profile_clean(bundle, meta, args.eval_images)
            print("clean done", flush=True)
        if "run" not in args.skip:
            res["run_gflop"] = {k: v / 1e9 for k, v in run_flops(exp).items()}
    res["machine"]["loadavg_end"] = os.getloadavg()  # type: ignore[index]
    report(res)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(f"\nwrote {args.out}")


def report(res: dict[str, object]) -> None:
    m = res["machine"]
    load = " → ".join("/".join(f"{v:.1f}" for v in m[k]) for k in ("loadavg_start", "loadavg_end"))
    print(
        f"\n{m['cpu']}, {m['cores']} cores, {res['threads']} torch thread(s), allocator {res['allocator']}, "
        f"load average {load}\n"
    )
    print("| what | GFLOP | CPU s (of which sys) | wall s | GFLOP / CPU s | GFLOP / wall s |")
    print("|---|---|---|---|---|---|")
    rows = [
        ("GEMM 2048² fp32", res.get("gemm")),
        ("cnn5 convs alone, fwd+bwd, batch 128", res.get("convs_b128")),
        ("cnn5 convs alone, fwd+bwd, batch 512", res.get("convs_b512")),
        ("cnn5 training step, fixed batch 128", res.get("model_step_b128")),
        ("train() (real loop), batch 128", (res.get("train") or {}).get("plain")),
        ("clean evaluator (forward, batch 512)", (res.get("clean") or {}).get("plain")),
    ]
    for name, r in rows:
        if r:
            print(
                f"| {name} | {r['gflop']:.1f} | {r['cpu_s']:.2f} ({r['sys_s']:.2f}) | {r['wall_s']:.2f} | "
                f"{r['gflop_per_cpu_s']:.1f} | {r['gflop_per_wall_s']:.1f} |"
            )
    if "model_step_b128" in res:
        print("\noperators of the fixed-batch training step (torch.profiler, share of self time):")
        print(", ".join(f"{k} {100 * v:.1f} %" for k, v in res["model_step_b128"]["op_shares"].items()))
    if "eval_batch" in res:
        print(f"\ntrain.predict on {res['eval_batch']['images']} test images by batch size:")
        print("| model | batch | CPU s | GFLOP / CPU s | logits equal to batch 512's |\n|---|---|---|---|---|")
        for name in ("float", "dynamic_int8"):
            for bs, r in res["eval_batch"][name].items():
                print(f"| {name} | {bs} | {r['cpu_s']:.2f} | {r['gflop_per_cpu_s']:.1f} | {r['equal_to_b512']} |")
    for key, title, total_key in (
        ("train", "train() under cProfile", "profiled_cpu_s"),
        ("clean", "clean evaluator under cProfile", "profiled_cpu_s"),
    ):
        if key in res:
            r = res[key]
            tot = r[total_key]
            print(f"\n{title}: {tot:.2f} CPU s in all")
            print("| part | CPU s | share |\n|---|---|---|")
            for g, s in r["groups_cpu_s"].items():
                print(f"| {g} | {s:.3f} | {100 * s / tot:.1f} % |")
    if "run_gflop" in res and "gemm" in res:
        # the best rate measured here: MKL's GEMM, or oneDNN's kernels on the model's own convolutions
        peak = max(res[k]["gflop_per_cpu_s"] for k in ("gemm", "convs_b128") if k in res)
        achieved = (res.get("train") or {}).get("plain", {}).get("gflop_per_cpu_s")
        print(
            f"\nquickstart FLOPs (planner's cost model) at the best measured rate ({peak:.1f} GFLOP / CPU s: GEMM or "
            f"the convolutions alone) and at the training loop's rate, CPU s (÷ 2 for the least wall time on 2 cores):"
        )
        print("| jobs | GFLOP | CPU s at peak | CPU s at train() rate |\n|---|---|---|---|")
        for k, g in list(res["run_gflop"].items()) + [("all", sum(res["run_gflop"].values()))]:
            at = f"{g / achieved:.0f}" if achieved else "–"
            print(f"| {k} | {g:.0f} | {g / peak:.0f} | {at} |")


if __name__ == "__main__":
    main()
