"""Every shipped experiment file validates (schema, names, params, budgets) without starting work."""

from pathlib import Path

import pytest

from compressbench.config import load_config
from compressbench.domain_config import experiment_parts
from compressbench.plan import plan

CONFIGS = sorted((Path(__file__).parents[1] / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_validates(path):
    exp = load_config(path)
    jobs = plan(exp)
    # one baseline per seed and experiment (a list of source domains runs one sibling experiment per source)
    assert sum(j.kind == "train" for j in jobs) == len(exp.seeds) * len(experiment_parts(exp))
    assert len({j.key for j in jobs}) == len(jobs)  # no two jobs share a key


def test_quickstart_covers_every_family():
    exp = load_config(Path(__file__).parents[1] / "configs" / "quickstart.yaml")
    methods = {v.method for v in exp.variants_resolved()}
    assert {"prune.unstructured", "prune.structured", "distill", "lowrank", "quantize.static",
            "quantize.dynamic", "pipeline"} <= methods
    evaluators = {e.evaluator for e in exp.evaluations}
    assert {"clean", "corruptions", "adversarial", "calibration", "agreement", "efficiency"} <= evaluators
