"""End to end on the digits domains: target domains never reach training except as unlabeled images for
adaptation; the domain_shift evaluator's rows; the report's domain table, figures and the study section
gathering the sibling experiments of a list of sources."""

from __future__ import annotations

from typing import Literal

import pytest
import torch
from pydantic import BaseModel, ConfigDict

from compressbench.checkpoint import load_model
from compressbench.data.digits_domains import digits_domains
from compressbench.data.domains import DomainImages
from compressbench.registry import datasets
from compressbench.runner import run
from compressbench.store import ResultStore
from compressbench.validate import validate


class TamperOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tamper: Literal["none", "labels", "images"] = "none"


def _tampered(root, cache, download, *, requested, tamper="none") -> DomainImages:
    """digits-domains (3 renders per font and digit); the handwritten domain's labels permuted or its
    images replaced by noise."""
    out = digits_domains(root, cache, download, requested=requested, size=16, renders=3)
    h = out.sets.get("handwritten")
    g = torch.Generator().manual_seed(5)
    if h is not None and tamper == "labels":
        h.y = h.y[torch.randperm(len(h.y), generator=g)]
    elif h is not None and tamper == "images":
        h.x = torch.randint(0, 256, h.x.shape, dtype=torch.uint8, generator=g)
    return out


CORAL = {"method": "coral", "weight": 5.0}
VARIANTS = [
    {"method": "adapt.coral", "params": {"weight": 5.0, "epochs": 0.5}},
    {
        "name": "coral-scratch",
        "method": "adapt.coral",  # the baseline's recipe: what train.adapt does
        "params": {"weight": 5.0, "init": "scratch", "epochs": 30, "lr": 0.1, "schedule": "onecycle"},
    },
    {"method": "prune.structured", "params": {"finetune": {"epochs": 0.3}}, "budget": {"knob": 0.3}},
    {
        "name": "prune+coral",
        "method": "pipeline",
        "budget": {"knob": 0.3},
        "params": {
            "stages": [
                {"method": "prune.structured", "params": {"finetune": {"epochs": 0}}},
                {"method": "adapt.coral", "params": {"weight": 5.0, "epochs": 0.3}},
            ]
        },
    },
    {"method": "distill", "params": {"epochs": 3}, "budget": {"knob": 0.5}},
    {"name": "distill+coral", "method": "distill", "params": {"epochs": 3, "adapt": CORAL}, "budget": {"knob": 0.5}},
]
ADAPTING = {"adapt.coral", "coral-scratch", "prune+coral", "distill+coral"}


def _exp(tmp, source, tamper="none", name="d"):
    return validate(
        {
            "name": name,
            "seeds": [0],
            "dataset": {"name": "test.digit-domains", "source": source, "options": {"tamper": tamper}},
            "model": {"name": "tinycnn"},
            "train": {"epochs": 30, "batch_size": 64, "lr": 0.1, "augment": "none"},
            "variants": VARIANTS,
            "evaluations": [{"evaluator": "domain_shift"}],
            "threads": 1,
            "cache_dir": str(tmp / "cache"),
            "store": str(tmp / "r.sqlite"),
        }
    )


@pytest.fixture(scope="module", autouse=True)
def _register():
    datasets.register(
        "test.digit-domains", _tampered, params=TamperOptions, domains=("printed", "handwritten"), description="test"
    )
    yield
    datasets.unregister("test.digit-domains")  # registries are global: leave them as found


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = {}
    for key, source, tamper in (
        ("both", ["printed", "handwritten"], "none"),
        ("labels", "printed", "labels"),
        ("images", "printed", "images"),
    ):
        tmp = tmp_path_factory.mktemp(key)
        summary = run(_exp(tmp, source, tamper), progress=False)
        assert summary.failed == 0, summary.failures
        out[key] = (tmp, ResultStore(summary.store))
    return out


def _weights(store: ResultStore, experiment: str, cache) -> dict[str, dict[str, torch.Tensor]]:
    """variant -> state dict of the model its compress / train job saved."""
    df = store.dataframe(experiment)
    keys = df[df["evaluator"].isin(["compress"]) & (df["metric"] == "params")].groupby("variant")["job_key"].first()
    return {v: load_model(cache / "cache" / "jobs" / k / "model.pt")[0].state_dict() for v, k in keys.items()}


def _equal(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_targets_reach_training_only_as_unlabeled_images(runs):
    ref_tmp, ref = runs["both"]
    base = _weights(ref, "d.printed", ref_tmp)
    assert set(base) == {
        "baseline",
        "adapt.coral",
        "coral-scratch",
        "prune.structured@knob=0.3",
        "prune+coral",
        "distill@knob=0.5",
        "distill+coral",
    }
    lab_tmp, lab = runs["labels"]
    for v, sd in _weights(lab, "d", lab_tmp).items():  # permuted target labels: every model identical
        assert _equal(sd, base[v]), v
    img_tmp, img = runs["images"]
    for v, sd in _weights(img, "d", img_tmp).items():  # other target images: only the adapting models change
        assert _equal(sd, base[v]) == (v not in ADAPTING), v


def _rows(store, experiment, metric):
    df = store.dataframe(experiment)
    return df[(df["evaluator"] == "domain_shift") & (df["metric"] == metric)]


def test_domain_shift_rows(runs):
    _, store = runs["both"]
    for exp_name, src, tgt in (("d.printed", "printed", "handwritten"), ("d.handwritten", "handwritten", "printed")):
        t = _rows(store, exp_name, "target_top1")
        s = _rows(store, exp_name, "source_top1").set_index("variant")["value"]
        gap = _rows(store, exp_name, "gap").set_index("variant")["value"]
        assert len(t) == 7 and all(c == {"source": src, "target": tgt} for c in t["condition_json"])
        t = t.set_index("variant")["value"]
        assert s["baseline"] > 0.7 and 0.2 < t["baseline"] < s["baseline"] - 0.1  # a real domain gap
        assert (gap - (s - t)).abs().max() < 1e-12
        comp = {r.variant: r.condition_json for r in _rows(store, exp_name, "composition").itertuples()}
        assert comp["baseline"] == {"compression": "", "adapt": ""}
        assert comp["adapt.coral"] == {"compression": "", "adapt": "coral(λ=5)"}
        assert comp["coral-scratch"] == {"compression": "", "adapt": "coral(λ=5, from scratch)"}
        assert comp["prune+coral"] == {"compression": "prune.structured", "adapt": "coral(λ=5)"}
        assert comp["distill+coral"] == {"compression": "distill", "adapt": "coral(λ=5)"}
    # the labels of the tampered target are permuted: target accuracy falls to chance, source accuracy is kept
    _, lab = runs["labels"]
    assert _rows(lab, "d", "target_top1")["value"].max() < 0.2
    assert torch.allclose(
        torch.tensor(_rows(lab, "d", "source_top1").sort_values("variant")["value"].to_numpy()),
        torch.tensor(_rows(store, "d.printed", "source_top1").sort_values("variant")["value"].to_numpy()),
    )


def test_report_domain_table_and_study_section(runs, tmp_path):
    from compressbench.report import build_report

    ref_tmp, store = runs["both"]
    html = build_report(store.path, tmp_path / "rep", formats=("html", "csv", "md", "png")).read_text()
    for exp_name in ("d.printed", "d.handwritten", "d"):  # the two siblings and the study gathering them
        assert f"Experiment: {exp_name}<" in html
    import pandas as pd

    study = pd.read_csv(tmp_path / "rep" / "d" / "domain_shift.csv").fillna("")
    assert list(zip(study["compression"], study["budget"], study["adaptation"], strict=True)) == [
        ("baseline", "", "source-only"),
        ("baseline", "", "coral(λ=5)"),
        ("baseline", "", "coral(λ=5, from scratch)"),
        ("prune.structured", "knob=0.3", "source-only"),
        ("prune.structured", "knob=0.3", "coral(λ=5)"),
        ("distill", "knob=0.5", "source-only"),
        ("distill", "knob=0.5", "coral(λ=5)"),
    ]  # the file's order
    cols = [
        c
        for c in study.columns
        if c not in ("model", "compression", "budget", "adaptation") and not c.endswith(("_ci95", "_n"))
    ]
    assert cols == [
        "handwritten→printed",
        "printed→handwritten",
        "Δ handwritten→printed",
        "Δ printed→handwritten",
        "handwritten (in-domain)",
        "printed (in-domain)",
    ]
    # each cell is the store's number for that pair and variant; Δ is paired with the source-only row
    t = _rows(store, "d.printed", "target_top1").set_index("variant")["value"]
    s = _rows(store, "d.printed", "source_top1").set_index("variant")["value"]
    cell = study.set_index(["compression", "adaptation"])
    assert cell.at[("baseline", "source-only"), "printed→handwritten"] == pytest.approx(t["baseline"])
    assert cell.at[("baseline", "coral(λ=5)"), "printed→handwritten"] == pytest.approx(t["adapt.coral"])
    assert cell.at[("prune.structured", "coral(λ=5)"), "printed→handwritten"] == pytest.approx(t["prune+coral"])
    assert cell.at[("distill", "coral(λ=5)"), "Δ printed→handwritten"] == pytest.approx(
        t["distill+coral"] - t["distill@knob=0.5"]
    )
    assert cell.at[("distill", "source-only"), "Δ printed→handwritten"] == ""
    assert cell.at[("prune.structured", "source-only"), "printed (in-domain)"] == pytest.approx(
        s["prune.structured@knob=0.3"]
    )
    single = pd.read_csv(tmp_path / "rep" / "d-printed" / "domain_shift.csv")
    assert [c for c in single.columns if "→" in c and not c.endswith(("_ci95", "_n"))] == [
        "printed→handwritten",
        "Δ printed→handwritten",
    ]
    assert (tmp_path / "rep" / "d" / "figures" / "domain_pairs.png").is_file()  # knob budgets: no vs-budget plot
    summary = pd.read_csv(tmp_path / "rep" / "d-printed" / "summary.csv")
    assert {"source_top1", "target_top1", "gap"} <= set(summary.columns)


def test_train_adapt_trains_the_baseline_with_coral(runs, tmp_path):
    """``train.adapt``: the baseline itself minimises CORAL; its variants are labelled '(parent)'."""
    raw = _exp(tmp_path, "printed").config.model_dump(mode="json")
    raw["train"]["adapt"] = CORAL
    raw["variants"] = [VARIANTS[2]]  # prune.structured
    raw["name"] = "tadapt"
    summary = run(validate(raw), progress=False)
    assert summary.failed == 0, summary.failures
    store = ResultStore(summary.store)
    comp = {r.variant: r.condition_json for r in _rows(store, "tadapt", "composition").itertuples()}
    assert comp == {
        "baseline": {"compression": "", "adapt": "coral(λ=5)"},
        "prune.structured@knob=0.3": {"compression": "prune.structured", "adapt": "coral(λ=5) (parent)"},
    }
    df = store.dataframe("tadapt")
    assert (df[(df["evaluator"] == "train") & (df["metric"] == "train_adapt_loss")]["value"] > 0).all()
    ref_tmp, ref = runs["both"]  # not the source-only baseline, but exactly adapt.coral's init: scratch variant
    mine, theirs = _weights(store, "tadapt", tmp_path)["baseline"], _weights(ref, "d.printed", ref_tmp)
    assert not _equal(mine, theirs["baseline"]) and _equal(mine, theirs["coral-scratch"])
