"""The goal's search through the real job DAG, cache and store: bisection finds a known threshold (a plug-in
method whose effect is a known function of its knob, measured by a plug-in evaluator), in ``ceil(log2(points
+ 1))`` probes, and a rerun re-walks it from the cache; a non-monotone family is reported; `run` with a goal is
the search; and the int8 accuracy-aware fallback keeps the one fragile layer of a model in float and so meets a
constraint full int8 breaks."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch

from compressbench.checkpoint import load_model
from compressbench.cli import main
from compressbench.goal import decide_store
from compressbench.goal.search import budget_grid, search
from compressbench.registry import evaluators, methods
from compressbench.store import ResultStore
from compressbench.validate import load_config

PLUGINS = Path(__file__).parent / "plugins"
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def goal_plugin(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    yield
    for reg, name in ((methods, "goalt.dial"), (evaluators, "goalt.score")):
        if name in reg:
            reg.unregister(name)
    sys.modules.pop("cb_goal_plugin", None)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "exp.yaml"
    p.write_text(textwrap.dedent(text).replace("TMP", str(tmp_path)))
    return p


DIAL = """\
    name: dial
    dataset: {name: digits, eval_subset: 100}
    model: {name: tinycnn}
    train: {epochs: 1, batch_size: 64}
    cache_dir: TMP/cache
    store: TMP/dial.sqlite
    variants:
      - method: "cb_goal_plugin:dial_method"
        name: dial
        params: PARAMS
        budgets: {knob: [0.05, 0.95]}
    evaluations:
      - evaluator: "cb_goal_plugin:score"
    goal:
      objective: {minimize: params}
      constraints: {goal_score: LIMIT}
      search: {points: 10}
    """


def test_budget_grid():
    assert budget_grid([0.9, 0.1], 10, "params") == [
        0.1,
        0.1889,
        0.2778,
        0.3667,
        0.4556,
        0.5444,
        0.6333,
        0.7222,
        0.8111,
        0.9,
    ]
    assert budget_grid([0.05, 0.95], 10, "knob")[:3] == [0.05, 0.15, 0.25]


def test_bisection_finds_a_known_threshold_through_the_dag(tmp_path, goal_plugin, capsys):
    cfg = _write(tmp_path, DIAL.replace("PARAMS", "{}").replace("LIMIT", "30"))
    exp = load_config(cfg)
    res = search(exp, progress=False)
    (fam,) = res.families
    # levels 0.05 .. 0.95 in steps of 0.1; the drop is exactly the level: ≤ 30 points up to 0.25
    assert fam.grid == pytest.approx([0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95])
    assert fam.best == pytest.approx(0.25)
    assert [v for v, _, _ in fam.probes] == pytest.approx([0.45, 0.15, 0.25, 0.35])  # 4 = ceil(log2(11)) probes
    assert [o.startswith("meets") for _, _, o in fam.probes] == [False, True, True, False]
    # jobs: train + parent evaluation + 4 × (compress + evaluate), every one run once
    assert res.jobs == 10 and res.ran == 10 and res.summary.failed == 0
    dec = res.decision
    assert dec.recommended.candidate is not None and not dec.violations
    drops = {c.variant: c.drops["goal_score"] for c in dec.assessment.candidates}
    assert drops["dial@knob=0.25"].estimate.mean == pytest.approx(0.25, abs=1e-6)
    assert drops["dial@knob=0.35"].status == "broken" and drops["dial@knob=0.25"].status == "holds"
    rows = ResultStore(tmp_path / "dial.sqlite").rows("dial")
    assert {r["variant"] for r in rows} == {
        "baseline",
        "dial@knob=0.45",
        "dial@knob=0.15",
        "dial@knob=0.25",
        "dial@knob=0.35",
    }
    assert len({r["run_id"] for r in rows}) == 1  # every round is one run of the experiment
    # resumable: the same probes again, every job from the cache (and the CLI's run is the search)
    assert main(["run", str(cfg), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "10 jobs — 0 ran, 10 cached" in out and "most compressed budget meeting the goal: knob=0.25" in out
    assert "goal for 'dial': minimize params" in out


def test_a_non_monotone_family_is_reported(tmp_path, goal_plugin):
    # a bump: levels in [0.5, 0.6] lose 90 points; the search probes 0.45 (meets), 0.75 (breaks), 0.55 (breaks,
    # yet less compressed than 0.75 and losing more)
    params = "{bump_lo: 0.5, bump_hi: 0.6, bump_drop: 0.9}"
    res = search(load_config(_write(tmp_path, DIAL.replace("PARAMS", params).replace("LIMIT", "60"))), progress=False)
    (fam,) = res.families
    assert [v for v, _, _ in fam.probes] == pytest.approx([0.45, 0.75, 0.55])
    assert fam.best == pytest.approx(0.45)
    (v,) = res.decision.violations
    assert (v.family, v.less, v.more) == ("dial", "dial@knob=0.55", "dial@knob=0.75")
    assert "point estimates" in v.detail
    (dec,) = decide_store(tmp_path / "dial.sqlite")  # the same, from the store alone
    assert [x.detail for x in dec.violations] == [v.detail]


def test_int8_fallback_keeps_the_fragile_layer_in_float(tmp_path, digits_bundle):
    from fragile import FRAGILE, fragile_tinycnn

    model = fragile_tinycnn(digits_bundle)
    weights = tmp_path / "fragile.pt"
    torch.save(model.state_dict(), weights)
    cfg = _write(
        tmp_path,
        f"""\
        name: frag
        dataset: {{name: digits, eval_subset: 300}}
        model: {{name: tinycnn, weights: {weights}}}
        train: null
        cache_dir: TMP/cache
        store: TMP/frag.sqlite
        variants:
          - method: quantize.static
            params: {{calibration_batches: 2, batch_size: 64}}
        evaluations:
          - evaluator: clean
          - evaluator: corruptions
            params: {{corruptions: [gaussian_noise, contrast], severities: [3]}}
        goal:
          objective: {{minimize: bytes}}
          constraints: {{clean_top1: 2.0, corr_top1: 5.0}}
        """,
    )
    res = search(load_config(cfg), progress=False)
    (fb,) = res.fallback
    assert fb.base == "quantize.static" and fb.ranking[0][0] == FRAGILE  # ranked first on clean and corrupted
    assert fb.ranked_on == ["clean_top1", "corr_top1"]
    assert fb.best == 1 and fb.probes[0][:2] == (1, "quantize.static+1float")
    dec = res.decision
    full = next(c for c in dec.assessment.candidates if c.variant == "quantize.static")
    mixed = next(c for c in dec.assessment.candidates if c.variant == "quantize.static+1float")
    assert full.drops["clean_top1"].status == "broken" and full.drops["clean_top1"].estimate.mean > 0.5
    assert mixed.meets and dec.recommended.candidate is mixed
    # larger than full int8 (one layer's float32 weights); on a 1.4k-parameter net int8's per-layer scales and
    # zero points outweigh what it saves, so the decision says the parent gives up nothing
    assert mixed.objectives["bytes"] > full.objectives["bytes"]
    if mixed.objectives["bytes"] >= dec.recommended.parent:
        assert any("not below the parent" in n for n in dec.notes)
    # the saved variant really is mixed precision, rebuilt from the checkpoint with weights_only loading
    rows = ResultStore(tmp_path / "frag.sqlite").rows("frag", variant="quantize.static+1float", evaluator="compress")
    ckpt = tmp_path / "cache" / "jobs" / rows[0]["job_key"] / "model.pt"
    m, ck = load_model(ckpt)
    assert ck["steps"][0]["float_layers"] == [FRAGILE]
    island = m.net.net.get_submodule(FRAGILE[4:])
    assert type(island).__name__ == "FloatIsland" and island.inner[0].weight.dtype == torch.float32
    assert ck["state_dict"]["net.net.0.weight"].dtype == torch.qint8  # the other layers are int8
    text = "\n".join(res.lines())
    assert "int8 fallback for quantize.static: quantize.static+1float keeps net.4 in float" in text
    # end to end: the report of that store leads with the decision, and shows the per-layer sensitivity
    from compressbench.report import build_report

    html = build_report(tmp_path / "frag.sqlite", tmp_path / "report", formats=("html", "md")).read_text()
    assert html.index('<section id="decision"') < html.index("per-layer sensitivity")
    assert "Recommended: quantize.static+1float" in html
    assert (tmp_path / "report" / "decision.md").is_file()
