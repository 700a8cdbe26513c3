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
from compressbench.config import DatasetConfig
from compressbench.errors import UserError
from compressbench.estimate import data_sizes, estimate
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
    # the baseline: 2 epochs × 3 forward FLOPs per image (forward + backward)
    assert _by(est, "train").gradient == approx(2 * TRAIN * 3 * F)
    # unstructured pruning stays dense: the fine-tune at the parent's FLOPs
    c = _by(est, "compress", variant="prune.unstructured@params=0.5")
    assert (c.forward, c.gradient) == (0, approx(1 * TRAIN * 3 * F))
    # distillation: the student (a quarter of the parent) trains, the teacher runs forward
    c = _by(est, "compress", variant="distill@params=0.25")
    assert (c.forward, c.gradient) == (approx(TRAIN * F), approx(TRAIN * 3 * 0.25 * F))
    assert _by(est, "compress", variant="quantize.static").forward == approx(2 * 64 * F)
    # pipeline: the pruning stage shrinks to half and fine-tunes there; int8 calibration (16 × 128 images by
    # default) draws at most one pass over the training images, through the pruned model
    c = _by(est, "compress", variant="s+q")
    assert (c.forward, c.gradient) == (approx(TRAIN * 0.5 * F), approx(0.5 * TRAIN * 3 * 0.5 * F))
    # evaluations: clean on eval_subset, one pass per corruption cell plus a clean one
    assert _by(est, "evaluate", evaluator="clean", variant="baseline").forward == approx(100 * F)
    assert _by(est, "evaluate", evaluator="clean", variant="s+q").forward == approx(100 * 0.5 * F)
    assert _by(est, "evaluate", evaluator="corruptions", variant="baseline").forward == approx(3 * 50 * F)
    # adversarial, per image: forwards = the clean check + one per ε (3); gradients = FGSM's one (2 forward FLOPs)
    # at its non-zero ε + PGD's 3 steps; a float variant is attacked white-box, int8 by transfer (crafted on the
    # parent) and white-box through its float simulation (2 more forwards per image)
    c = _by(est, "evaluate", evaluator="adversarial", variant="baseline")
    assert (c.forward, c.gradient) == (approx(4 * 20 * F), approx((2 + 2 * 3) * 20 * F))
    c = _by(est, "evaluate", evaluator="adversarial", variant="quantize.static")
    assert (c.forward, c.gradient) == (approx((4 + 6) * 20 * F), approx(2 * (2 + 2 * 3) * 20 * F))
    assert _by(est, "evaluate", evaluator="agreement", variant="baseline").forward == approx(30 * F)
    assert _by(est, "evaluate", evaluator="agreement", variant="distill@params=0.25").forward == approx(
        30 * F + 30 * 0.25 * F
    )
    # hours: FLOPs at the given rate (1 GFLOP per CPU-second) and on the reference GPU, plus the fixed costs
    # measured here (model builds and checkpoint round trips per job, the run's start-up once)
    fx = est.fixed
    assert fx.startup > 0 and fx.build > 0 and fx.per_job["compress"] > fx.per_job["train"] > 0
    c = _by(est, "train")
    assert c.seconds == approx(fx.per_job["train"])
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
    r = sustained_rates(model, (1, 16, 16), F, batch_size=64, step_s=0.2, steps=2)
    after = torch.rand(1).item()
    torch.manual_seed(7)
    assert after == torch.rand(1).item()  # the global random state is as it was
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert r.train_cpu > 0 and r.infer_cpu > 0 and 2 <= r.train_batch <= 64 and r.seconds < 30
    assert r.cores == (os.cpu_count() or 1)
