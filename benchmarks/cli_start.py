"""CPU time of the CLI's quick commands, before vs after (issue 27's instant CLI), on the same machine.

Claim: ``compressbench --help`` and ``list`` (which reads the built-ins' torch-free declarations,
``compressbench.catalog``) do not import torch and cost ≤ 0.3 s of CPU; this script measures them and ``validate``
(which builds the parent model, so imports torch) for one or more source trees.

Conditions: a fresh ``python -m compressbench ARGS`` per measurement, CPU time (user + sys) of the child from
``resource.getrusage(RUSAGE_CHILDREN)``, best of ``--repeat`` (CPU time, not wall: the machine may be loaded).

    .venv/bin/python benchmarks/cli_start.py --src /tmp/before/src --src src [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys

COMMANDS = [
    ["--help"],
    ["plan", "--help"],
    ["list"],
    ["list", "methods", "--params"],
    ["validate", "configs/quickstart.yaml"],
]


def cpu_of(args: list[str], src: str) -> float:
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-m", "compressbench", *args],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": src},
        check=False,
    )
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", action="append", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print("| command | " + " | ".join(args.src) + " |\n|---|" + "---|" * len(args.src))
    for cmd in COMMANDS:
        best = {s: min(cpu_of(cmd, s) for _ in range(args.repeat)) for s in args.src}
        print(f"| compressbench {' '.join(cmd)} | " + " | ".join(f"{best[s]:.2f} s" for s in args.src) + " |")


if __name__ == "__main__":
    main()
