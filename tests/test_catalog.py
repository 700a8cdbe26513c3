"""The torch-free declarations of the built-ins (``compressbench.catalog``) against their implementations.

``compressbench list`` reads the declarations and never imports torch; these tests load every built-in's code
in a fresh process and fail when a declaration and the spec its implementation registers disagree (a name
declared but not registered or the reverse, any declared field), and check that ``list`` prints the same text
with and without the implementations imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_CHECK = """
import json
from compressbench.registry import ALL, Declaration
out = {}
for key, reg in ALL.items():
    declared, sources = reg.declarations()
    specs = dict(reg.items())  # imports the implementation: every built-in registers its full spec
    bad = []
    bad += [f"{n}: declared, not registered" for n in declared if n not in specs]
    bad += [f"{n}: registered, not declared" for n in specs if n not in declared]
    for n, d in declared.items():
        if n not in specs:
            continue
        s = specs[n]
        real = Declaration.of(n, s)
        for f in ("description", "version", "params", "budgets", "suites"):
            if getattr(d, f) != getattr(real, f):
                bad.append(f"{n}.{f}: declared {getattr(d, f)!r}, registered {getattr(real, f)!r}")
        for f, v in d.fields.items():
            if getattr(s, f) != v:
                bad.append(f"{n}.{f}: declared {v!r}, registered {getattr(s, f)!r}")
    if sources != reg.sources():
        bad.append(f"name families: declared {sources}, registered {reg.sources()}")
    out[key] = bad
print(json.dumps(out))
"""


def test_every_declaration_equals_its_registered_spec():
    out = subprocess.run([sys.executable, "-c", _CHECK], capture_output=True, text=True, check=True, timeout=300)
    bad = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(bad) >= {"methods", "evaluators", "datasets", "models", "corruptions", "attacks", "executors"}
    assert {k: v for k, v in bad.items() if v} == {}


_LIST = """
import contextlib, io, sys
from compressbench.cli import main
if sys.argv[1] == "loaded":
    from compressbench.registry import ALL
    for reg in ALL.values():
        reg.items()  # every implementation imported: the listing comes from the registered specs
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    rc = main(["list", *sys.argv[2:]])
print(buf.getvalue(), end="")
print("TORCH", "torch" in sys.modules, rc)
"""


@pytest.mark.parametrize("args", [[], ["--params"], ["methods", "--params"]])
def test_list_imports_no_torch_and_prints_what_the_implementations_say(args):
    """``compressbench list`` (every form) answers from the declarations: no torch, the same text as with every
    implementation imported."""
    runs = {
        how: subprocess.run(
            [sys.executable, "-c", _LIST, how, *args], capture_output=True, text=True, check=True, timeout=300
        ).stdout
        for how in ("declared", "loaded")
    }
    assert runs["declared"].endswith("TORCH False 0\n")
    assert runs["loaded"].endswith("TORCH True 0\n")
    listing = runs["declared"].rsplit("TORCH", 1)[0]
    assert listing == runs["loaded"].rsplit("TORCH", 1)[0]
    assert "prune.structured" in listing and "budgets: knob, params, bytes, flops" in listing
    if "--params" in args:
        assert "finetune: FinetuneParams" in listing
