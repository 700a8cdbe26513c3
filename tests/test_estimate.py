"""`compressbench plan`: the estimate's arithmetic against hand-computed numbers, cached counts after a real
run, nothing written, one-line errors, and the CPU-rate measurement."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import yaml

from compressbench.cli import main
from compressbench.compress.quantize import STATIC_OVERHEAD_CALLS
from compressbench.config import DatasetConfig
from compressbench.errors import UserError
from compressbench.estimate import JOB_BOOKKEEPING_S, SEARCH_TRIALS, data_sizes, estimate
from compressbench.validate import validate

# tinycnn on digits (1×16×16, 10 classes): conv 1→8 at 16×16 (18,432 MACs), max-pool, conv 8→16 at 8×8
# (73,728 MACs), linear 16→10 (160 MACs): 92,320 MACs = 184,640 FLOPs per image
F = 2 * (16 * 16 * 8 * 1 * 9 + 8 * 8 * 16 * 8 * 9 + 16 * 10)
TRAIN, TEST = 1797 - 449, 449  # digits: 1,797 images, a quarter for test


def _config(tmp_path: Path, **over) -> dict:
    cfg = {
        "name": "est",
        "dataset": {"name": "digits", "eval_subset": 100},
        "model": {"name": "tinycnn"},
        "train": {"epochs": 2, "batch_size": 64, "lr": 0.1},
        "cache_dir": str(tmp_path / "cache"),
        "store": str(tmp_path / "est.sqlite"),
    }
    cfg.update(over)
    return cfg


def _by(est, kind: str, **labels):
    out = [c for c in est.costs if c.job.kind == kind and all(getattr(c.job.labels, k) == v for k, v in labels.items())]
    assert len(out) == 1, (kind, labels, [c.job.labels for c in est.costs])
    return out[0]


def test_estimate_matches_hand_computed_flops(tmp_path):
    cfg = _config(
        tmp_path,
        variants=[
            {"method": "prune.unstructured", "params": {"finetune": {"epochs": 1}}, "budget": {"params": 0.5}},
            {"method": "distill", "params": {"epochs": 1}, "budget": {"params": 0.25}},
            {"method": "quantize.static", "params": {"calibration_batches": 2, "batch_size": 64}},
            {
                "name": "s+q",
                "method": "pipeline",
                "budget": {"params": 0.5},
                "params": {
                    "stages": [
                        {"method": "prune.structured", "params": {"finetune": {"epochs": 0.5}}},
                        {"method": "quantize.static"},
                    ]
                },
            },
        ],
        evaluations=[
            {"evaluator": "clean"},
            {
                "evaluator": "corruptions",
                "params": {"corruptions": ["gaussian_noise"], "severities": [1, 3], "subset": 50},
            },
            {
                "evaluator": "adversarial",
                "params": {
                    "subset": 20,
                    "modes": ["auto"],
                    "attacks": [
                        {"name": "fgsm", "eps": [0, 0.01]},
                        {"name": "pgd", "eps": [0.01], "steps": 3, "stronger_steps": 0},
                    ],
                },
            },
            {"evaluator": "agreement", "params": {"subset": 30}},
        ],
    )
    est = estimate(validate(cfg), cpu_gflops=1.0)
    assert est.parent_flops == F
    n = est.sizes["est"]
    assert (n.train, n.val, n.test) == (TRAIN, 0, TEST)
    approx = pytest.approx
    # the baseline: 2 epochs × 3 forward FLOPs per image (forward + backward), in ⌈1348 / 64⌉ = 22 steps each
    assert _by(est, "train").gradient == approx(2 * TRAIN * 3 * F)
    assert _by(est, "train").train_calls == 2 * 22
    # unstructured pruning stays dense: the fine-tune at the parent's FLOPs
    c = _by(est, "compress", variant="prune.unstructured@params=0.5")
    assert (c.forward, c.gradient) == (0, approx(1 * TRAIN * 3 * F))
    # distillation: the student (a quarter of the parent) trains, the teacher runs forward
    c = _by(est, "compress", variant="distill@params=0.25")
    assert (c.forward, c.gradient) == (approx(TRAIN * F), approx(TRAIN * 3 * 0.25 * F))
    assert _by(est, "compress", variant="quantize.static").forward == approx(2 * 64 * F)
    assert _by(est, "compress", variant="quantize.static").forward_calls == 2  # its calibration batches
    # pipeline: the pruning stage shrinks to half and fine-tunes there; int8 calibration (16 × 128 images by
    # default) draws at most one pass over the training images, through the pruned model
    c = _by(est, "compress", variant="s+q")
    assert (c.forward, c.gradient) == (approx(TRAIN * 0.5 * F), approx(0.5 * TRAIN * 3 * 0.5 * F))
    # its pruning stage searches the ratio that meets the budget: trial compressions, each a model copy
    assert c.search_trials == SEARCH_TRIALS and _by(est, "compress", variant="quantize.static").search_trials == 0
    assert c.seconds == approx(est.fixed.per_job["compress"] + JOB_BOOKKEEPING_S)  # no call overheads: --cpu-gflops
    assert c.overhead_calls == STATIC_OVERHEAD_CALLS  # its int8 stage's declared per-layer work
    # evaluations: clean on eval_subset, one pass per corruption cell plus a clean one
    assert _by(est, "evaluate", evaluator="clean", variant="baseline").forward == approx(100 * F)
    assert _by(est, "evaluate", evaluator="clean", variant="s+q").forward == approx(100 * 0.5 * F)
    assert _by(est, "evaluate", evaluator="corruptions", variant="baseline").forward == approx(3 * 50 * F)
    assert _by(est, "evaluate", evaluator="corruptions", variant="baseline").forward_calls == 3
    # adversarial, per image: forwards = the clean check + one per ε (3); gradients = FGSM's one (2 forward FLOPs)
    # at its non-zero ε + PGD's 3 steps; a float variant is attacked white-box, int8 by transfer (crafted on the
    # parent) and white-box through its float simulation (2 more forwards per image)
    c = _by(est, "evaluate", evaluator="adversarial", variant="baseline")
    assert (c.forward, c.input_gradient) == (approx(4 * 20 * F), approx((2 + 2 * 3) * 20 * F))
    # model calls: 20 images fit one batch (the evaluator's 100): 4 forward calls, 1 + 3 input-gradient calls
    assert (c.forward_calls, c.gradient_calls, c.train_calls) == (4, 4, 0)
    c = _by(est, "evaluate", evaluator="adversarial", variant="quantize.static")
    assert (c.forward, c.input_gradient) == (approx((4 + 6) * 20 * F), approx(2 * (2 + 2 * 3) * 20 * F))
    assert (c.forward_calls, c.gradient_calls) == (4 + 6, 2 * 4)
    assert _by(est, "evaluate", evaluator="agreement", variant="baseline").forward == approx(30 * F)
    assert _by(est, "evaluate", evaluator="agreement", variant="distill@params=0.25").forward == approx(
        30 * F + 30 * 0.25 * F
    )
    # hours: FLOPs at the given rate (1 GFLOP per CPU-second) and on the reference GPU, plus the fixed costs
    # measured here (model builds and checkpoint round trips per job, the run's start-up once)
    fx = est.fixed
    assert fx.startup > 0 and fx.build > 0 and fx.per_job["compress"] > fx.per_job["train"] > 0
    c = _by(est, "train")
    assert c.seconds == approx(fx.per_job["train"] + JOB_BOOKKEEPING_S)
    assert est.cpu_hours(c) == approx((c.flops / 1e9 + c.seconds) / 3600)
    assert est.gpu_hours(c) == approx((c.flops / (156e12 * 0.35) + c.seconds) / 3600)
    total = est.rows()[-1]
    assert total[:3] == ("total", len(est.costs), 0)
    assert total[5] == approx(sum(est.cpu_hours(c) for c in est.costs) + fx.startup / 3600)
    assert total[3] == approx(sum(c.flops for c in est.costs) / 1e12)


def test_validation_split_and_domain_sizes():
    n = data_sizes(DatasetConfig(name="cifar10", train_subset=20_000, val_fraction=0.1), "unused")
    assert (n.train, n.val, n.test) == (18_000, 2_000, 10_000)
    n = data_sizes(DatasetConfig(name="office31", source="amazon"), "unused")
    assert (n.train, n.test, n.targets) == (2817 - 563, 563, {"dslr": 498, "webcam": 795})
    n = data_sizes(
        DatasetConfig(
            name="office31",
            source="dslr",
            targets=["amazon"],
            domain_split={"test_fraction": 0.5, "target_holdout": 0.1},
        ),
        "unused",
    )
    assert (n.train, n.test, n.targets) == (249, 249, {"amazon": 282})


def test_sizes_and_probes_take_exactly_their_datasets_options():
    """No ``**_``: a size or probe function names every option of its dataset (an option it took and
    ignored silently would be a bug waiting) and no option the schema lacks."""
    import inspect

    from compressbench.registry import datasets

    for name in datasets.names():
        spec = datasets.spec(name)
        options = set(spec.params.model_fields) if spec.params is not None else set()
        for fn in (spec.sizes, spec.probe):
            if fn is None:
                continue
            ps = list(inspect.signature(fn).parameters.values())[1:]  # after root
            assert not any(p.kind is p.VAR_KEYWORD for p in ps), (name, fn)
            assert {p.name for p in ps} == options, (name, fn, options)


def test_a_dataset_without_sizes_is_loaded_or_one_line(tmp_path):
    from compressbench.data import DataMeta, DatasetBundle, DatasetError, ImageSet
    from compressbench.registry import datasets

    def loader(root, cache, download):
        if root is None:
            raise DatasetError("test.nosizes: no copy here")
        x = torch.zeros(30, 1, 4, 4, dtype=torch.uint8)
        y = torch.zeros(30, dtype=torch.long)
        meta = DataMeta("test.nosizes", 2, 1, (4, 4), (0.5,), (0.25,))
        return DatasetBundle(meta, ImageSet(x, y), ImageSet(x[:7], y[:7]))

    datasets.register("test.nosizes", loader)
    try:
        n = data_sizes(DatasetConfig(name="test.nosizes", root=str(tmp_path)), str(tmp_path))
        assert (n.train, n.test, n.how) == (30, 7, "loaded")
        with pytest.raises(UserError) as e:
            data_sizes(DatasetConfig(name="test.nosizes"), str(tmp_path))
        assert "declares no sizes and has no local copy" in str(e.value) and "\n" not in str(e.value)
    finally:
        datasets.unregister("test.nosizes")


def _tree(p: Path) -> dict[str, tuple[int, int]]:
    return {str(f.relative_to(p)): (f.stat().st_size, f.stat().st_mtime_ns) for f in p.rglob("*")}


def test_cached_counts_after_a_run_and_plan_writes_nothing(tmp_path, capsys):
    from compressbench.runner import run

    cfg = _config(
        tmp_path,
        train={"epochs": 0.3, "batch_size": 128},
        variants=[{"method": "prune.unstructured", "params": {"finetune": {"epochs": 0.1}}, "budget": {"params": 0.5}}],
        evaluations=[{"evaluator": "clean"}],
    )
    p = tmp_path / "est.yaml"
    p.write_text(yaml.safe_dump(cfg))
    before = _tree(tmp_path)
    assert main(["plan", str(p), "--cpu-gflops", "5"]) == 0
    out = capsys.readouterr().out
    assert "4 jobs, 0 cached" in out and _tree(tmp_path) == before  # no cache dir, no store
    total = next(ln for ln in out.splitlines() if ln.strip().startswith("total")).split()
    assert float(total[-2]) > 0 and float(total[-1]) > 0 and " s " not in out  # GPU-h / CPU-h: hours, numbers
    # several configs: one table each
    p2 = tmp_path / "est2.yaml"
    p2.write_text(yaml.safe_dump({**cfg, "name": "est2"}))
    assert main(["plan", str(p), str(p2), "--cpu-gflops", "5"]) == 0
    out = capsys.readouterr().out
    assert "experiment 'est'" in out and "experiment 'est2'" in out and out.count("4 jobs, 0 cached") == 2
    assert not (tmp_path / "cache").exists()
    run(validate(cfg), progress=False)
    before = _tree(tmp_path)
    assert main(["plan", str(p), "--cpu-gflops", "5", "--json", str(tmp_path / "plan.json")]) == 0
    out = capsys.readouterr().out
    assert "4 jobs, 4 cached" in out
    assert _tree(tmp_path).keys() - before.keys() == {"plan.json"}  # only the file asked for
    assert {k: v for k, v in _tree(tmp_path).items() if k != "plan.json"} == before
    data = json.loads((tmp_path / "plan.json").read_text())
    assert data["rows"][-1] == {"label": "total", "jobs": 4, "cached": 4, "tflop": 0, "gpu_hours": 0, "cpu_hours": 0}
    assert all(j["cached"] for j in data["jobs"]) and data["parent_flops_per_image"] == F
    # one changed method: its compression and evaluation run again, the baseline's two jobs stay cached
    assert main(["plan", str(p), "--cpu-gflops", "5", "--set", "variants.0.params.finetune.epochs=0.2"]) == 0
    out = capsys.readouterr().out
    assert "4 jobs, 2 cached" in out
    row = next(ln for ln in out.splitlines() if ln.strip().startswith("compress"))
    assert row.split()[1:3] == ["1", "0"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--gpu", "b200"], "--gpu: unknown reference GPU 'b200' (known: a100"),
        (["--gpu-util", "1.5"], "--gpu-util: give a fraction in (0, 1]"),
        (["--cpu-gflops", "0"], "--cpu-gflops: give a positive rate"),
        (["--set", "train.epochs=-1"], "train.epochs:"),
        (["--scale", "huge"], "no scale 'huge'"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, args, message):
    p = tmp_path / "est.yaml"
    p.write_text(yaml.safe_dump(_config(tmp_path)))
    assert main(["plan", str(p), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_cpu_rate_is_measured_in_seconds_and_leaves_the_model_alone():
    from compressbench.data.base import DataMeta
    from compressbench.measure.throughput import sustained_rates
    from compressbench.models import create_model

    model = create_model("tinycnn", DataMeta("digits", 10, 1, (16, 16), (0.5,), (0.25,)))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(7)
    threads = torch.get_num_threads()
    r = sustained_rates(model, (1, 16, 16), F, batch_size=64, step_s=0.2, steps=2)
    after = torch.rand(1).item()
    torch.manual_seed(7)
    assert after == torch.rand(1).item()  # the global random state is as it was
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert r.train_cpu > 0 and r.infer_cpu > 0 and 2 <= r.train_batch <= 64 and r.seconds < 30
    assert r.train_marginal > 0 and r.infer_marginal > 0 and r.grad_marginal > 0 and 1 <= r.grad_batch <= 64
    assert min(r.train_call, r.infer_call, r.grad_call) >= 0
    assert r.cores == (os.cpu_count() or 1) and 0 < r.cpu_seconds
    assert torch.get_num_threads() == threads  # the one-thread timings leave the caller's threads as they were


def test_fastest_call_counts_its_calls():
    """min_call: one warm-up, at least min_calls, at most max_calls (a zero CPU budget stops at min_calls)."""
    from compressbench.measure.throughput import min_call

    calls = []
    assert min_call(lambda: calls.append(1), 0.0, 30, min_calls=3) >= 0 and len(calls) == 1 + 3
    calls.clear()
    min_call(lambda: calls.append(1), 1e9, 7, min_calls=3)  # an unreachable budget: the call cap stops it
    assert len(calls) == 1 + 7
    calls.clear()
    min_call(lambda: calls.append(1), 0.0, 5, min_calls=2, warm_up=False)
    assert len(calls) == 2


def test_per_call_overhead_arithmetic():
    """time per call = a + FLOPs / marginal rate: the two-point split, and a job priced from its calls."""
    from compressbench.costs import batches
    from compressbench.estimate import JobCost, cpu_seconds
    from compressbench.measure.throughput import Rates, large_batch, split_call

    # t(1) = 0.012 s, t(64) = 64 × 0.001 s: a + m = 0.012, a + 64 m = 0.064 -> m = 0.052 / 63, a = 0.012 - m
    a, m = split_call(0.012, 1, 0.001, 64)
    assert m == pytest.approx(0.052 / 63) and a == pytest.approx(0.012 - 0.052 / 63)
    # noise that would make a or m negative: all of the large batch's time is per image
    assert split_call(0.2, 1, 0.001, 64) == (0.0, 0.001)
    assert split_call(0.0001, 2, 0.01, 64) == (0.0, 0.01)
    # the large batch: the largest power of two <= the cap whose call, at the small call's cost per image, fits
    # step_s; none (the small batch itself) when twice the small batch would take over 2 step_s
    assert large_batch(0.001, 1, 512, 0.25) == 128  # 128 ms fits 250 ms, 256 ms does not
    assert large_batch(0.004, 2, 128, 0.25) == 64  # 2 ms per image: 64 -> 128 ms
    assert large_batch(0.001, 1, 32, 0.25) == 32  # the run's batch caps it
    assert large_batch(0.2, 1, 128, 0.25) == 2  # 0.4 s at batch 2 is within 2 step_s: the second point is kept
    assert large_batch(0.3, 1, 128, 0.25) == 1  # 0.6 s is not: no second point
    assert large_batch(0.001, 2, 2, 0.25) == 2  # the cap leaves no room above the small batch
    assert (batches(0, 64), batches(64, 64), batches(65, 64), batches(1000, None)) == (0, 1, 2, 2)
    measured = dict(
        train_cpu=1e9, infer_cpu=2e9, train_wall=1e9, infer_wall=2e9, threads=2, train_batch=64, infer_batch=512
    )
    r = Rates(
        **measured,
        seconds=1.0,
        train_call=0.01,
        infer_call=0.002,
        grad_call=0.005,
        train_marginal=2e9,
        infer_marginal=4e9,
        grad_marginal=3e9,
        grad_batch=64,
    )
    c = JobCost(
        job=None,
        group="x",
        forward=8e9,
        gradient=4e9,
        input_gradient=6e9,
        forward_calls=100,
        train_calls=10,
        gradient_calls=50,
        seconds=1.5,
    )
    assert cpu_seconds(c, r) == pytest.approx(
        100 * 0.002 + 8e9 / 4e9 + 10 * 0.01 + 4e9 / 2e9 + 50 * 0.005 + 6e9 / 3e9 + 1.5
    )
    # rates measured without the split (no marginal rate): FLOPs at the measured rate, calls free
    old = Rates(**measured, seconds=1.0)
    assert cpu_seconds(c, old) == pytest.approx(8e9 / 2e9 + 4e9 / 1e9 + 6e9 / 1e9 + 1.5)
