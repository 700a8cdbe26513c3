"""Every shipped experiment file validates (schema, names, params, budgets) without starting work."""

from pathlib import Path

import pytest

from compressbench.config import load_config
from compressbench.plan import plan

CONFIGS = sorted((Path(__file__).parents[1] / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_validates(path, tmp_path):
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
    exp = load_config(path, overrides)
    jobs = plan(exp)
    assert sum(j.kind == "train" for j in jobs) == len(exp.seeds)  # a training or a weights-loading job
    assert len({j.key for j in jobs}) == len(jobs)  # no two jobs share a key


def test_quickstart_covers_every_family():
    exp = load_config(Path(__file__).parents[1] / "configs" / "quickstart.yaml")
    methods = {v.method for v in exp.variants_resolved()}
    assert {"prune.unstructured", "prune.structured", "distill", "lowrank", "quantize.static",
            "quantize.dynamic", "pipeline"} <= methods
    evaluators = {e.evaluator for e in exp.evaluations}
    assert {"clean", "corruptions", "adversarial", "calibration", "agreement", "efficiency"} <= evaluators
