"""Where ``compressbench validate CONFIG`` spends its CPU, phase by phase, and which phase first imports torch.

Claim under test (issue 27, instant CLI): ``validate`` should import torch only for the checks that need a
model. This prints, in one fresh process, the CPU seconds (user + sys, children included) of each phase of
``compressbench.validate.load_config`` and whether torch is imported after it.

    .venv/bin/python benchmarks/validate_phases.py configs/quickstart.yaml
"""

from __future__ import annotations

import argparse
import resource
import sys


def cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    args = ap.parse_args()
    t = cpu()

    def step(name: str) -> None:
        nonlocal t
        now = cpu()
        print(f"| {name} | {now - t:.2f} s | {'yes' if 'torch' in sys.modules else 'no'} |")
        t = now

    print("| phase | CPU | torch imported after it |\n|---|---|---|")
    from compressbench.config import read_experiment, resolve_config

    step("import compressbench.config")
    raw = read_experiment(args.config)
    step("read the YAML")
    exp = resolve_config(raw)
    step("resolve_config (registry names, params schemas, budgets' kinds)")
    from compressbench import validate as v

    v.check_model(exp)
    v.check_recipe(exp)
    v.check_domains(exp)
    v.check_executor(exp)
    step("model fields, recipe, domains, executor")
    v.check_parent(exp)
    step("check_parent (the parent built; every method and budget against it, dry runs cached)")
    meta, base = v.parent_model(exp)
    v.check_split(exp, meta.num_classes)
    v.check_resize(exp, meta, base.model)
    step("split and resize")


if __name__ == "__main__":
    main()
