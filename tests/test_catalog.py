"""The torch-free declarations of the built-ins (``compressbench.catalog``) against their implementations.

``compressbench list`` reads the declarations and never imports torch; these tests load every built-in's code
in a fresh process and fail when a declaration and the spec its implementation registers disagree (a name
declared but not registered or the reverse, any declared field: the registration takes them from the
declaration, so a difference means an implementation overrides one), and check that ``list`` prints the same
text with and without the implementations imported. A declared field given again at registration is refused
(one source of truth); a plug-in (no declaration) gives every field at registration."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_CHECK = """
import importlib, json, sys
from compressbench.registry import ALL, Declaration
if sys.argv[1] == "code-first":  # the implementations imported before any registry is used: each register()
    for reg in ALL.values():      # must find its declaration all the same (it imports the catalog itself)
        importlib.import_module(reg._loader)
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


@pytest.mark.parametrize("order", ["catalog-first", "code-first"])
def test_every_declaration_equals_its_registered_spec(order):
    out = subprocess.run([sys.executable, "-c", _CHECK, order], capture_output=True, text=True, check=True, timeout=300)
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


def test_a_declared_field_given_again_at_registration_is_refused():
    """One source of truth: a built-in registers only what its declaration does not hold."""
    from compressbench.registry import attacks

    with pytest.raises(TypeError, match=r"attack 'pgd'.*not field\(s\) norms"):
        attacks.register("pgd", norms=("linf",))  # a declared field, here with another value
    with pytest.raises(TypeError, match=r"attack 'pgd'.*not field\(s\) description"):
        attacks.register("pgd", description=attacks.declared("pgd").description)  # even the same value
    assert attacks.spec("pgd").norms == ("linf", "l2")  # nothing was registered by the refused calls


def test_declared_fields_come_from_the_declaration_and_plug_ins_give_all():
    from compressbench.registry import Registry, UnknownNameError
    from compressbench.specs import AttackSpec

    reg: Registry = Registry("attack", spec=AttackSpec)
    reg.declare("built", description="declared", version=3, norms=("l2",), minimum_norm=True)
    reg.register("built", object(), cost=len)  # code-side only
    spec = reg.spec("built")
    assert (spec.description, spec.version, spec.norms, spec.minimum_norm, spec.cost) == (
        "declared",
        3,
        ("l2",),
        True,
        len,
    )
    with pytest.raises(TypeError, match=r"attack 'built2'.*version"):
        reg.declare("built2", description="x")
        reg.register("built2", object(), version=1)  # the declaration holds version (at its default 1)
    with pytest.raises(TypeError, match=r"attack 'built2'.*ready spec"):
        reg.register("built2", object(), spec=AttackSpec(description="x"))
    # a plug-in: no declaration, every field at the call site, as always
    reg.register("plugin", object(), description="mine", version=2, norms=("linf",), iterative=True)
    p = reg.spec("plugin")
    assert (p.description, p.version, p.norms, p.iterative) == ("mine", 2, ("linf",), True)
    with pytest.raises(UnknownNameError):
        reg.spec("built2")  # the refused registrations added nothing
