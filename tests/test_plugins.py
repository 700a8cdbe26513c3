"""Extension points from outside the package (issue 12): a method, an evaluator with a new metric, a
corruption and an attack, each registered once in ``tests/plugins/cb_demo_plugin.py`` — a module
that is not part of compressbench — are used by a tiny experiment written in YAML, and an installed
package registers through the ``compressbench.plugins`` entry-point group. The report of that run, made by
a process that cannot import the plug-in, shows its metric from the declarations stored with the run."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from compressbench import registry
from compressbench.checkpoint import rebuilders
from compressbench.config import ConfigError
from compressbench.registry import attacks, corruptions, evaluators, methods
from compressbench.runner import run
from compressbench.store import ResultStore
from compressbench.validate import load_config

PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture
def demo_plugin(monkeypatch):
    """The plug-in's module importable (as a user's package would be); its registrations undone after."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    yield
    for reg, name in (
        (methods, "demo.magnitude"),
        (methods, "demo.factor_head"),
        (evaluators, "demo.margin"),
        (corruptions, "demo.invert"),
        (attacks, "demo.sign_noise"),
        (rebuilders, "demo.factor_head"),
    ):
        if name in reg:
            reg.unregister(name)
    sys.modules.pop("cb_demo_plugin", None)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "exp.yaml"
    p.write_text(textwrap.dedent(text).replace("TMP", str(tmp_path)))
    return p


def _one(rows: list[dict], variant: str, evaluator: str, metric: str, **cond) -> float:
    """The value of the one row with these labels and condition items."""
    vals = [
        r["value"]
        for r in rows
        if (r["variant"], r["evaluator"], r["metric"]) == (variant, evaluator, metric)
        and all(r["condition_json"].get(k) == v for k, v in cond.items())
    ]
    assert len(vals) == 1, (variant, evaluator, metric, cond, vals)
    return vals[0]


EXPERIMENT = """
    name: plugins
    seeds: [0]
    dataset: {name: digits, eval_subset: 150}
    model: {name: tinycnn}
    train: {epochs: 10, batch_size: 64, lr: 0.1, augment: none}
    variants:
      - method: "cb_demo_plugin:magnitude"
        budget: {params: 0.5}
      - name: magnitude+fp16
        method: pipeline
        params: {stages: [{method: "cb_demo_plugin:magnitude"}, {method: quantize.fp16}]}
        budget: {params: 0.5}
    evaluations:
      - evaluator: clean
      - evaluator: "cb_demo_plugin:margin"
      - evaluator: corruptions
        params: {corruptions: ["cb_demo_plugin:invert"], severities: [1, 5], subset: 100}
      - evaluator: adversarial
        variants: [baseline]
        params:
          subset: 60
          attacks: [{name: "cb_demo_plugin:SignNoise", eps: [0.0, 0.3]}]
    cache_dir: TMP/cache
    store: TMP/plugins.sqlite
"""


def test_plugin_components_from_yaml(demo_plugin, tmp_path):
    exp = load_config(_write(tmp_path, EXPERIMENT))
    summary = run(exp, progress=False)
    assert summary.failed == 0, summary.failures
    rows = [r for r in ResultStore(exp.store_path).rows("plugins") if r["error"] is None]

    def value(variant, evaluator, metric, **cond):
        return _one(rows, variant, evaluator, metric, **cond)

    plug = "demo.magnitude@params=0.5"
    # the plug-in method reached its budget in nonzero parameters, alone and inside a pipeline
    # (before issue 12 a pipeline counted nonzero values only for 'prune.unstructured': it reported 1.0)
    assert value(plug, "compress", "achieved_params") == pytest.approx(0.5, rel=0.02)
    assert value("magnitude+fp16", "compress", "achieved_params") == pytest.approx(0.5, rel=0.02)
    nz, total = value(plug, "compress", "params_nonzero"), value(plug, "compress", "params")
    assert nz / total == pytest.approx(0.5, rel=0.02)
    # the evaluator's new metric, for every variant
    for v in ("baseline", plug, "magnitude+fp16"):
        assert value(v, "demo.margin", "mean_margin") > 0
    # the corruption: mild at severity 1, harsher at 5 (blending 40 % towards the negative)
    s1 = value("baseline", "corruptions", "top1", corruption="demo.invert", severity=1)
    s5 = value("baseline", "corruptions", "top1", corruption="demo.invert", severity=5)
    assert s5 < s1 <= 1.0
    # the attack: ε = 0 is the clean accuracy on the same images; ε = 0.3 sign noise hurts
    r0 = value("baseline", "adversarial", "robust_top1", attack="demo.sign_noise", eps=0.0)
    r3 = value("baseline", "adversarial", "robust_top1", attack="demo.sign_noise", eps=0.3)
    assert r3 < r0
    # the new metric reaches the report (HTML and CSV) with no report code change, and without the plug-in's
    # code (tests/test_report_e2e.py renders a plug-in's metric in a process where it is registered)
    _report_without_the_plugin(exp.store_path, tmp_path / "report", value("baseline", "demo.margin", "mean_margin"))


def _report_without_the_plugin(store: Path, out: Path, base_margin: float) -> None:
    """``compressbench report`` in a process that cannot import the plug-in (tests/plugins is not on its path)
    renders the plug-in's metric from the declarations the run stored: its summary column and its HTML."""
    import os
    import subprocess

    import compressbench

    script = (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('cb_demo_plugin') is None, 'the plug-in is importable'\n"
        "from compressbench.cli import main\n"
        f"rc = main(['report', {str(store)!r}, '--out', {str(out)!r}, '--formats', 'html', 'csv'])\n"
        "assert 'cb_demo_plugin' not in sys.modules\n"
        "sys.exit(rc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(compressbench.__file__).parents[1])}
    res = subprocess.run(
        [sys.executable, "-c", script], cwd=out.parent, env=env, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    header = (out / "plugins" / "summary.csv").read_text().splitlines()
    cols = header[0].split(",")
    assert "mean_margin" in cols
    baseline = dict(zip(cols, next(r for r in header[1:] if r.startswith("baseline,")).split(","), strict=True))
    assert float(baseline["mean_margin"]) == pytest.approx(base_margin, rel=1e-12)
    page = (out / "report.html").read_text()
    assert "logit margin" in page and f"{base_margin:.3f}" in page


ARCHITECTURE = """
    name: plugarch
    seeds: [0]
    dataset: {name: digits, eval_subset: 100}
    model: {name: tinycnn}
    train: {epochs: 2, batch_size: 64, lr: 0.1, augment: none}
    variants:
      - {name: factored, method: "cb_demo_plugin:factor_head", params: {rank: 3}}
    evaluations:
      - evaluator: efficiency
        params: {warmup: 1, repeats: 3, throughput_repeats: 1, throughput_batch: 8, onnx: false}
    cache_dir: TMP/cache
    store: TMP/plugarch.sqlite
"""


def test_plugin_method_that_changes_the_architecture_is_timed_in_a_fresh_process(demo_plugin, tmp_path):
    """A plug-in method replaces the classifier head and registers the rebuilder that replays it. The
    efficiency evaluator times every variant in a fresh process, which rebuilds the checkpoint: it must load
    the experiment's plug-in set first (before, it knew only user *model* modules: "unknown rebuild step")."""
    exp = load_config(_write(tmp_path, ARCHITECTURE))
    assert exp.plugins.objects == ("cb_demo_plugin:factor_head",) and exp.plugins.paths == (str(PLUGINS),)
    summary = run(exp, progress=False)
    assert summary.failed == 0, summary.failures
    store = ResultStore(exp.store_path)
    rows = [r for r in store.rows("plugarch") if r["error"] is None]

    def one(variant, evaluator, metric, **cond):
        return _one(rows, variant, evaluator, metric, **cond)

    # tinycnn's head: 16 -> 10 (170 parameters) becomes 16 -> 3 -> 10 (48 + 40)
    base, fact = one("baseline", "compress", "params"), one("factored", "compress", "params")
    assert base - fact == 170 - (16 * 3 + 3 * 10 + 10)
    assert one("factored", "efficiency", "params") == fact  # the evaluator measured the rebuilt model
    for v in ("baseline", "factored"):
        assert one(v, "efficiency", "latency_b1_ms", process="fresh") > 0  # timed in the fresh process
        assert one(v, "efficiency", "throughput_img_s", process="fresh", batch=8) > 0
    # the run's provenance names the plug-in set
    assert store.runs()[-1]["plugins_json"]["objects"] == ["cb_demo_plugin:factor_head"]


def test_unknown_plugin_names_are_one_line(demo_plugin, tmp_path):
    bad = EXPERIMENT.replace('"cb_demo_plugin:margin"', '"cb_demo_plugin:margn"')
    with pytest.raises(ConfigError, match=r"evaluations\[1\]\.evaluator: cannot import evaluator") as e:
        load_config(_write(tmp_path, bad))
    assert "\n" not in str(e.value)
    bad = EXPERIMENT.replace('"cb_demo_plugin:magnitude"\n', '"cb_demo_plugin:MagnitudeParams"\n')
    with pytest.raises(ConfigError, match="is not a registered method"):
        load_config(_write(tmp_path, bad))


def test_entry_point_group_registers(tmp_path, monkeypatch):
    """An installed package's ``compressbench.plugins`` entry point is loaded once, on first use."""
    pkg = tmp_path / "cb_ep_plugin.py"
    pkg.write_text(
        textwrap.dedent("""
        from compressbench.registry import corruptions

        @corruptions.register("ep.darken", constants={"any": [0.9, 0.8, 0.7, 0.6, 0.5]}, deterministic=True,
                              description="entry-point demo")
        def darken(x, rng, c, pset):
            return x * c
    """)
    )
    dist = tmp_path / "cb_ep_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cb-ep-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[compressbench.plugins]\ndemo = cb_ep_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry, "_plugins", [])
    try:
        registry.load_plugins()
        assert "ep.darken" in corruptions
        assert registry.loaded_plugins() == ["demo = cb_ep_plugin"]  # recorded with each run (its plug-in set)
        import torch

        from compressbench.evaluate.corruptions import corrupt

        x = torch.full((1, 1, 4, 4), 0.5)
        assert torch.allclose(corrupt(x, None, "ep.darken", 5), torch.full_like(x, 0.25))
    finally:
        if "ep.darken" in corruptions:
            corruptions.unregister("ep.darken")
        sys.modules.pop("cb_ep_plugin", None)
