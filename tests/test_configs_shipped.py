"""Every shipped experiment file validates (schema, names, params, budgets) without starting work."""

from pathlib import Path

import pytest

from compressbench.config import scale_names
from compressbench.plan import plan
from compressbench.validate import load_config

CONFIGS = sorted((Path(__file__).parents[1] / "configs").rglob("*.yaml"))
CASES = [(p, s) for p in CONFIGS for s in [None, *scale_names(p)]]


@pytest.mark.parametrize("path,scale", CASES, ids=[f"{p.name}{'@' + s if s else ''}" for p, s in CASES])
def test_shipped_config_validates(path, scale, tmp_path):
    import torch
    import yaml

    overrides = {}
    weights = (yaml.safe_load(path.read_text()).get("model") or {}).get("weights")
    if weights and not weights.startswith(("torchvision", "timm")) and not Path(weights).is_file():
        # a file a script makes (configs/examples/own_model.yaml: scripts/export_baseline.py): a stand-in
        from compressbench.data.prepare import dataset_meta
        from compressbench.models import create_model

        raw = yaml.safe_load(path.read_text())
        meta = dataset_meta(raw["dataset"]["name"], None, raw["dataset"].get("options") or {})
        torch.save(create_model(raw["model"]["name"], meta).net.state_dict(), tmp_path / "w.pt")
        overrides["model.weights"] = str(tmp_path / "w.pt")
    exp = load_config(path, overrides, scale=scale)
    jobs = plan(exp)
    # one baseline per seed and experiment (a list of source domains runs one sibling experiment per source);
    # a training or a weights-loading job
    assert sum(j.kind == "train" for j in jobs) == len(exp.seeds) * len(exp.parts)
    assert len({j.key for j in jobs}) == len(jobs)  # no two jobs share a key


def test_study_presets_have_a_smoke_scale_of_the_same_graph():
    """A preset's smoke scale keeps every family, budget kind and evaluator of the full study."""
    studies = sorted((Path(__file__).parents[1] / "configs" / "studies").glob("*.yaml"))
    assert studies
    for path in studies:
        full, smoke = load_config(path), load_config(path, scale="smoke")
        assert {v.name for v in full.config.variants} == {v.name for v in smoke.config.variants}
        assert {(v.method, v.budget.kind if v.budget else None) for v in full.variants} == {
            (v.method, v.budget.kind if v.budget else None) for v in smoke.variants
        }
        assert [e.evaluator for e in full.evaluations] == [e.evaluator for e in smoke.evaluations]
        assert full.report == smoke.report


def test_quickstart_covers_every_family():
    exp = load_config(Path(__file__).parents[1] / "configs" / "quickstart.yaml")
    methods = {v.method for v in exp.variants}
    assert {
        "prune.unstructured",
        "prune.structured",
        "distill",
        "lowrank",
        "quantize.static",
        "quantize.dynamic",
        "pipeline",
    } <= methods
    evaluators = {e.evaluator for e in exp.evaluations}
    assert {"clean", "corruptions", "adversarial", "calibration", "agreement", "efficiency"} <= evaluators


def test_digits_preset_header_and_readme_give_the_same_time():
    """The header said ~3 min, README ~5 (issue 25): both now quote the measured time of docs/domain_shift.md."""
    import re

    repo = Path(__file__).resolve().parents[1]
    header = (repo / "configs" / "digits_domain_shift.yaml").read_text()
    lo, hi = re.search(r"about (\d+)-(\d+) min wall, (\d+) s of CPU", header).groups()[:2]
    readme = (repo / "README.md").read_text()
    assert f"about {lo}–{hi} minutes on 2 cores (211 s of CPU" in readme and f"~{lo}–{hi} min)" in readme
    assert "211 s of CPU time" in (repo / "docs" / "domain_shift.md").read_text()


def test_no_doc_or_docstring_cites_files_outside_the_repository():
    """REFERENCES.md / DESIGN.md are not in the repository (issue 25): docs/architecture.md is the in-repo home."""
    repo = Path(__file__).resolve().parents[1]
    files = [
        repo / "README.md",
        repo / "BENCHMARKS.md",
        *(repo / "docs").glob("*.md"),
        *(repo / "src").rglob("*.py"),
        *(repo / "configs").rglob("*.yaml"),
    ]
    bad = [str(f.relative_to(repo)) for f in files if any(n in f.read_text() for n in ("REFERENCES.md", "DESIGN.md"))]
    assert bad == []
