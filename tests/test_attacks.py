"""Adversarial attacks and the ``adversarial`` evaluator on the tiny digits CNN."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.ao.quantization as tq
from torch import nn

from compressbench.evaluate.attacks import (
    AdversarialParams,
    AttackConfig,
    adversarial,
    build_attack,
    is_quantized_model,
    perturbation_norm,
    ste_simulation,
)
from compressbench.interfaces import EvalContext, VariantInfo
from compressbench.registry import attacks, evaluators
from compressbench.train import predict

N = 100  # images per evaluator test
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def make_ctx(bundle, parent, tmp_path, method="baseline", steps=None) -> EvalContext:
    from compressbench.compress import capabilities
    from compressbench.registry import methods

    caps = capabilities(method, methods.spec(method).params()) if method in methods else {}
    return EvalContext(
        data=bundle,
        meta=bundle.meta,
        device=torch.device("cpu"),
        seed=0,
        workdir=tmp_path,
        variant=VariantInfo(
            name=method, method=method, steps=steps or [], capabilities=caps, is_parent=method == "baseline"
        ),
        load_parent=lambda: parent,
        progress=False,
    )


def rows(ms, metric, **cond):
    cond = {k: r6(v) if k == "eps" else v for k, v in cond.items()}
    return [m for m in ms if m.metric == metric and all(m.condition.get(k) == v for k, v in cond.items())]


def r6(v: float) -> float:
    """ε as stored in conditions (6 significant digits)."""
    return float(f"{v:.6g}")


def one(ms, metric, **cond) -> float:
    cond = {k: r6(v) if k == "eps" else v for k, v in cond.items()}
    r = rows(ms, metric, **cond)
    assert len(r) == 1, (metric, cond, r)
    return r[0].value


def static_int8(model: nn.Module, calib: torch.Tensor) -> nn.Module:
    """Eager static int8 tinycnn (fused conv-bn-relu, QuantStub/DeQuantStub around the net)."""
    q = copy.deepcopy(model).eval()
    tq.fuse_modules(q.net, [["0", "1", "2"], ["4", "5", "6"]], inplace=True)
    q.net = nn.Sequential(tq.QuantStub(), q.net, tq.DeQuantStub())
    q.net.qconfig = tq.get_default_qconfig("x86")
    tq.prepare(q.net, inplace=True)
    with torch.no_grad():
        q(calib)
    tq.convert(q.net, inplace=True)
    return q


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Attacks are many small backward passes: on the shared 2-core box, 2 intra-op threads were 30x
    slower than 1 (thread oversubscription), so this module runs single-threaded."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def batch(digits_bundle):
    return digits_bundle.eval_subset(N, seed=0)


def test_registry_lists_every_attack():
    assert {"fgsm", "pgd", "deepfool", "cw", "ddn", "autoattack"} <= set(attacks.names())
    assert "adversarial" in evaluators
    assert attacks.spec("ddn").minimum_norm and not attacks.spec("pgd").minimum_norm


def test_spec_validation_errors():
    with pytest.raises(ValueError, match="did you mean 'pgd'"):
        AttackConfig(name="pgdd", eps=[0.1])
    with pytest.raises(ValueError, match="needs an eps grid"):
        AttackConfig(name="fgsm")
    with pytest.raises(ValueError, match="supports norms"):
        AttackConfig(name="ddn", norm="linf")
    with pytest.raises(ValueError, match="unknown parameter 'stepz' for attack 'pgd' .did you mean 'steps'"):
        AdversarialParams.model_validate({"attacks": [{"name": "pgd", "eps": [0.1], "stepz": 3}]})
    # issue 11: eps on a minimum-norm attack, unknown backend options, stronger_steps on a one-step attack
    with pytest.raises(ValueError, match="minimum-norm .* takes no eps"):
        AttackConfig(name="deepfool", eps=[0.1])
    with pytest.raises(ValueError, match="unknown parameter 'options'"):
        AttackConfig(name="cw", options={"bogus": 1})
    with pytest.raises(ValueError, match="not iterative"):
        AttackConfig(name="fgsm", eps=[0.1], stronger_steps=3)
    with pytest.raises(ValueError, match="'steps'"):
        AttackConfig(name="pgd", eps=[0.1], steps=0)
    assert AttackConfig(name="cw", binary_search_steps=3).params.binary_search_steps == 3


def test_whitebox_eps0_clean_large_eps_zero_monotone(tiny_model, digits_bundle, tmp_path, batch):
    grid = [0.0, 1 / 255, 4 / 255, 0.1, 0.3]
    # FGSM is not monotone at huge ε (a single step overshoots), so its grid stops at 0.1
    p = AdversarialParams(
        attacks=[
            AttackConfig(name="fgsm", eps=grid[:-1]),
            AttackConfig(name="pgd", eps=grid, steps=10, stronger_steps=20),
            AttackConfig(name="pgd", norm="l2", eps=[0.0, 0.5, 4.0], steps=10, stronger_steps=0),
        ],
        subset=N,
        masking_probe_eps=0.5,
    )
    ms = adversarial(tiny_model, make_ctx(digits_bundle, tiny_model, tmp_path), p)
    clean = float((predict(tiny_model, batch).argmax(1) == batch.y).float().mean())
    assert all(m.tag == "whitebox" and m.condition["mode"] == "whitebox" for m in ms)
    for atk, norm in [("fgsm", "linf"), ("pgd", "linf"), ("pgd", "l2")]:
        assert one(ms, "robust_top1", attack=atk, norm=norm, eps=0.0, steps=1 if atk == "fgsm" else 10) == clean
        assert one(ms, "check_monotone_eps", attack=atk, norm=norm) == 1.0
    assert one(ms, "robust_top1", attack="pgd", norm="linf", eps=0.3, steps=10) <= 0.02
    assert one(ms, "robust_top1", attack="pgd", norm="l2", eps=4.0, steps=10) <= 0.02
    pgd = [one(ms, "robust_top1", attack="pgd", norm="linf", eps=e, steps=10) for e in [0.0, 1 / 255, 4 / 255, 0.1]]
    assert pgd[0] > pgd[2] > pgd[3]
    # PGD is at least as strong as FGSM on an undefended model, and more steps are not weaker
    assert pgd[3] <= one(ms, "robust_top1", attack="fgsm", norm="linf", eps=0.1) + 0.02
    assert one(ms, "check_stronger_not_weaker", attack="pgd", norm="linf") == 1.0
    assert rows(ms, "robust_top1", attack="pgd", norm="linf", steps=20)  # the stronger run is recorded
    assert one(ms, "gradient_masking_suspect") == 0.0
    s = one(ms, "success_rate", attack="pgd", norm="linf", eps=0.3, steps=10)
    assert s >= 0.97


@pytest.mark.parametrize(
    "name,steps,norm", [("deepfool", 50, "l2"), ("deepfool", 50, "linf"), ("cw", 30, "l2"), ("ddn", 50, "l2")]
)
def test_minimum_norm_attacks_report_norms(tiny_model, batch, name, steps, norm):
    x, y = batch.x[:40].float() / 255, batch.y[:40]
    a = build_attack(AttackConfig(name=name, steps=steps, norm=norm), 10)
    xa = a.run(tiny_model, x, y)
    with torch.no_grad():
        ok0, ok = tiny_model(x).argmax(1) == y, tiny_model(xa).argmax(1) == y
    fooled = ok0 & ~ok
    assert fooled.float().sum() >= 0.8 * ok0.float().sum()  # the adversarials are really misclassified
    d = perturbation_norm(xa - x, norm)
    assert (d[fooled] > 0).all() and (d[~ok0] < 1e-4).all()  # already-wrong images are (almost) left alone
    assert float(d[fooled].median()) < (0.3 if norm == "linf" else 3.0)


def test_minimum_norm_rows(tiny_model, digits_bundle, tmp_path, batch):
    p = AdversarialParams(
        attacks=[
            AttackConfig(name="ddn", steps=50),
            AttackConfig(name="deepfool"),
            AttackConfig(name="cw", steps=30, thresholds=[0.0, 0.5, 100.0], binary_search_steps=3),
        ],
        subset=N,
    )
    ms = adversarial(tiny_model, make_ctx(digits_bundle, tiny_model, tmp_path), p)
    clean = float((predict(tiny_model, batch).argmax(1) == batch.y).float().mean())
    for atk in ("ddn", "deepfool", "cw"):
        med = one(ms, "median_norm", attack=atk)
        assert 0 < med < 5 and math.isfinite(med)
        assert one(ms, "success_rate", attack=atk) >= 0.9
        assert one(ms, "robust_top1_at_norm", attack=atk, eps=0.0) == clean
        r = [m.value for m in rows(ms, "robust_top1_at_norm", attack=atk)]
        assert r == sorted(r, reverse=True)
    assert one(ms, "robust_top1_at_norm", attack="cw", eps=100.0) <= 0.1
    # the three minimum-norm attacks agree on the scale of the smallest L2 perturbation
    meds = [one(ms, "median_norm", attack=a) for a in ("ddn", "deepfool", "cw")]
    assert max(meds) / min(meds) < 3


def test_quantized_transfer_and_ste(tiny_model, digits_bundle, tmp_path, batch):
    calib = digits_bundle.train.x[:200].float() / 255
    q = static_int8(tiny_model, calib)
    assert is_quantized_model(q)
    steps = [{"kind": "quantize.static_int8"}]
    grid = [0.0, 2 / 255, 0.1, 0.3]
    p = AdversarialParams(
        attacks=[AttackConfig(name="fgsm", eps=grid), AttackConfig(name="pgd", eps=grid, steps=10)], subset=N
    )
    ms = adversarial(q, make_ctx(digits_bundle, tiny_model, tmp_path, method="quantize.static_int8", steps=steps), p)
    assert {m.condition["mode"] for m in ms} == {"transfer", "whitebox-ste"}
    clean_q = float((predict(q, batch).argmax(1) == batch.y).float().mean())
    for mode in ("transfer", "whitebox-ste"):
        assert one(ms, "robust_top1", attack="pgd", eps=0.0, mode=mode) == clean_q
        assert one(ms, "check_monotone_eps", attack="pgd", mode=mode) == 1.0
        assert one(ms, "robust_top1", attack="pgd", eps=0.3, mode=mode) <= 0.1
    assert one(ms, "check_ste_fidelity") >= 0.9
    assert not rows(ms, "gradient_masking_suspect", mode="transfer")


def test_ste_simulation_matches_dynamic_and_half(tiny_model, batch):
    x = batch.x.float() / 255
    dyn = tq.quantize_dynamic(copy.deepcopy(tiny_model), {nn.Linear}, dtype=torch.qint8)
    half = copy.deepcopy(tiny_model).half()
    for q, xin in [(dyn, x), (half, x.half())]:
        sim = ste_simulation(q)
        with torch.no_grad():
            agree = (sim(x).argmax(1) == q(xin).float().argmax(1)).float().mean()
        assert agree >= 0.95
        xi = x[:4].clone().requires_grad_(True)
        sim(xi).sum().backward()
        assert xi.grad.abs().sum() > 0


def test_dynamic_int8_transfer_runs(tiny_model, digits_bundle, tmp_path):
    dyn = tq.quantize_dynamic(copy.deepcopy(tiny_model), {nn.Linear}, dtype=torch.qint8)
    p = AdversarialParams(attacks=[AttackConfig(name="fgsm", eps=[0.0, 0.1])], subset=50, modes=["transfer"])
    ms = adversarial(
        dyn,
        make_ctx(
            digits_bundle,
            tiny_model,
            tmp_path,
            method="quantize.dynamic_int8",
            steps=[{"kind": "quantize.dynamic_int8"}],
        ),
        p,
    )
    assert {m.tag for m in ms} == {"transfer"}
    assert one(ms, "robust_top1", eps=0.1) < one(ms, "robust_top1", eps=0.0)


def test_whitebox_on_quantized_is_refused(tiny_model, digits_bundle, tmp_path):
    dyn = tq.quantize_dynamic(copy.deepcopy(tiny_model), {nn.Linear}, dtype=torch.qint8)
    p = AdversarialParams(attacks=[AttackConfig(name="fgsm", eps=[0.0, 0.1])], subset=20, modes=["whitebox"])
    with pytest.raises(RuntimeError, match="no attack mode applies"):
        adversarial(
            dyn, make_ctx(digits_bundle, tiny_model, tmp_path, method="q", steps=[{"kind": "quantize.dynamic_int8"}]), p
        )


@pytest.mark.slow
def test_autoattack_not_weaker_than_pgd(tiny_model, digits_bundle, tmp_path):
    eps = [0.0, 4 / 255]
    p = AdversarialParams(
        attacks=[
            AttackConfig(name="pgd", eps=eps, steps=10, stronger_steps=0),
            AttackConfig(name="autoattack", eps=eps),
        ],
        subset=40,
    )
    ms = adversarial(tiny_model, make_ctx(digits_bundle, tiny_model, tmp_path), p)
    aa = one(ms, "robust_top1", attack="autoattack", eps=4 / 255)
    pgd = one(ms, "robust_top1", attack="pgd", eps=4 / 255)
    assert aa <= pgd + 0.025


@pytest.mark.parametrize("method", ["quantize.static", "quantize.dynamic", "quantize.fp16"])
def test_variants_from_compress_quantize(method, tiny_model, digits_bundle, tmp_path):
    """The real quantized variants of compress/quantize.py: transfer always, white-box via STE simulation."""
    from compressbench.compress import compress
    from compressbench.registry import methods
    from test_compress_common import make_context

    res = compress(
        method, copy.deepcopy(tiny_model), make_context(digits_bundle, tmp_path), None, methods.spec(method).params()
    )
    q = res.model
    ctx = make_ctx(digits_bundle, tiny_model, tmp_path, method=method, steps=res.steps)
    assert ctx.variant.is_quantized
    p = AdversarialParams(
        attacks=[AttackConfig(name="pgd", eps=[0.0, 0.05, 0.3], steps=5, stronger_steps=0)], subset=60
    )
    ms = adversarial(q, ctx, p)
    assert {m.tag for m in ms} == {"transfer", "whitebox-ste"}
    assert one(ms, "check_ste_fidelity") >= 0.9
    for mode in ("transfer", "whitebox-ste"):
        assert one(ms, "robust_top1", eps=0.3, mode=mode) <= 0.1 < one(ms, "robust_top1", eps=0.0, mode=mode)
    p2 = p.model_copy(update={"modes": ["auto-transfer"]})
    assert {m.tag for m in adversarial(q, ctx, p2)} == {"transfer"}


def test_jsma_runs_via_torchattacks(tiny_model, batch):
    """JSMA (issue 16) comes from torchattacks: an L0 minimum-norm attack, targeted at the next class."""
    assert attacks.spec("jsma").minimum_norm and attacks.spec("jsma").norms == ("l0",)
    x, y = batch.x[:12].float() / 255, batch.y[:12]
    a = build_attack(AttackConfig(name="jsma", gamma=0.1), 10)
    xa = a.run(tiny_model, x, y)
    with torch.no_grad():
        ok0, ok = tiny_model(x).argmax(1) == y, tiny_model(xa).argmax(1) == y
    d = perturbation_norm(xa - x, "l0")
    assert (d <= 0.1 + 1 / x[0].numel() + 1e-6).all()  # at most gamma of the features (pairs: one extra)
    assert (ok0 & ~ok).sum() >= 0.5 * ok0.sum()  # most correctly classified images are fooled
    with pytest.raises(ValueError, match="features"):
        a.run(tiny_model, torch.rand(2, 3, 64, 64), torch.zeros(2, dtype=torch.long))


def test_jsma_reports_targeted_success_next_to_misclassification(tiny_model, digits_bundle, tmp_path):
    """issue 20: JSMA is targeted (the next class); success_rate counts any misclassification, and
    targeted_success_rate only the images classified as the target — both stored, each as computed here."""
    from compressbench.evaluate.attacks.evaluator import AdversarialParams, adversarial

    ctx = make_ctx(digits_bundle, tiny_model, tmp_path)
    ms = adversarial(
        tiny_model,
        ctx,
        AdversarialParams(attacks=[AttackConfig(name="jsma", gamma=0.1)], subset=24, modes=["whitebox"]),
    )
    images = ctx.eval_set(24)
    x, y = images.x.float() / 255, images.y
    a = build_attack(AttackConfig(name="jsma", gamma=0.1), 10)
    torch.manual_seed(0)
    xa = a.run(tiny_model, x, y)
    with torch.no_grad():
        clean, pred = tiny_model(x).argmax(1) == y, tiny_model(xa).argmax(1)
    fooled = float((pred[clean] != y[clean]).float().mean())
    hit = float((pred[clean] == (y[clean] + 1) % 10).float().mean())
    assert one(ms, "success_rate", attack="jsma") == pytest.approx(fooled)
    assert one(ms, "targeted_success_rate", attack="jsma") == pytest.approx(hit)
    assert hit <= fooled
    assert not rows(ms, "targeted_success_rate", attack="pgd")  # untargeted attacks have none


def test_jsma_on_large_images_is_refused_at_validate(tmp_path):
    from compressbench.config import ConfigError
    from compressbench.validate import validate

    raw = {
        "name": "j",
        "dataset": {"name": "synthetic", "options": {"size": 64}},
        "model": {"name": "tinycnn"},
        "evaluations": [{"evaluator": "adversarial", "params": {"attacks": [{"name": "jsma"}]}}],
        "cache_dir": str(tmp_path / "c"),
        "store": str(tmp_path / "s.sqlite"),
    }
    with pytest.raises(
        ConfigError,
        match=r"evaluations\[0\].params: attacks\[0\]: 'jsma' handles inputs of at most "
        r"4,096 features .* 12,288",
    ):
        validate(raw)
    raw["dataset"]["options"]["size"] = 32  # 3×32×32 = 3,072 features: fine
    validate(raw)
