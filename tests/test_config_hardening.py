"""Hostile or careless input to the config layer (issue 11): each case is one line and exit 2 before any
work, or works as the user meant. The broad sweep over generated configs is ``test_fuzz_config.py``."""

from __future__ import annotations

import inspect
import os
import time
from pathlib import Path

import pytest
import yaml

from compressbench import config as cfg
from compressbench.cli import main
from compressbench.config import ConfigError, apply_override, parse_override, parse_yaml
from compressbench.validate import load_config, validate

GOOD = {"name": "ok", "dataset": {"name": "digits"}, "model": {"name": "tinycnn"}, "train": {"epochs": 1}}


@pytest.fixture
def forget_adopted_models():
    """Validating a ``pkg.mod:factory`` model registers it (registry.resolve adopts it): forget those
    afterwards so that other tests see only the built-in zoo."""
    from compressbench.registry import models

    before = set(models.names())
    yield
    for name in set(models.names()) - before:
        models.unregister(name)


def _err(raw) -> str:
    with pytest.raises(ConfigError) as e:
        validate(raw)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def _file_err(tmp_path: Path, text: str | bytes) -> str:
    p = tmp_path / "c.yaml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    t0 = time.process_time()  # CPU time: a blow-up trips it, a busy machine does not
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert time.process_time() - t0 < 1.0
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def _good_yaml(extra: str = "") -> str:
    return yaml.safe_dump(GOOD) + extra


# ------------------------------------------------------------------ YAML
def _bomb(levels: int = 12) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "name: ok\ndataset: {name: digits}\nmodel:\n  name: tinycnn\n  kwargs:\n    " + "\n    ".join(lines) + "\n"


def test_alias_bomb_fails_fast_with_bounded_memory(tmp_path):
    import tracemalloc

    tracemalloc.start()
    msg = _file_err(tmp_path, _bomb())  # 9**12 values if expanded
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "more than 5,000 values once aliases are expanded" in msg and "line " in msg
    assert peak < 20e6


def test_merge_key_bomb_and_many_aliases(tmp_path):
    chain = "a: &a {x: 1}\n" + "".join(
        f"b{i}: &b{i} {{<<: *{'a' if i == 0 else f'b{i - 1}'}, "
        f"y: [*{'a' if i == 0 else f'b{i - 1}'}, *{'a' if i == 0 else f'b{i - 1}'}]}}\n"
        for i in range(30)
    )
    assert "once aliases are expanded" in _file_err(tmp_path, chain)
    many = "a: &a 1\nb: [" + ", ".join(["*a"] * 1500) + "]\n"
    assert "more than 1,000 aliases" in _file_err(tmp_path, many)


def test_recursive_alias(tmp_path):
    assert "refers to a value that contains it" in _file_err(tmp_path, "name: &n [*n]\n")


@pytest.mark.parametrize(
    "text",
    [
        "name: " + "[" * 5000 + "]" * 5000 + "\n",
        "name: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
        "".join("  " * i + f"k{i}:\n" for i in range(200)),
    ],
)
def test_deep_nesting(tmp_path, text):
    assert f"nested deeper than {cfg.MAX_DEPTH} levels" in _file_err(tmp_path, text)


def test_duplicate_key_names_key_and_lines(tmp_path):
    msg = _file_err(tmp_path, "name: a\ndataset: {name: digits}\nname: b\n")
    assert "line 3" in msg and "duplicate key 'name' (first at line 1)" in msg
    msg = _file_err(tmp_path, "name: a\ntrain: {epochs: 1, epochs: 2}\n")
    assert "duplicate key 'epochs'" in msg


def test_merge_keys_and_aliases_still_work(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(
        "name: ok\ndataset: {name: digits}\nmodel: {name: tinycnn}\nvariants:\n"
        "  - method: prune.unstructured\n    params: &p {criterion: l1, finetune: {epochs: 0.1}}\n"
        "  - method: prune.unstructured\n    name: second\n    params: {<<: *p, criterion: random}\n"
        "  - method: prune.unstructured\n    name: third\n    params: *p\n"
    )
    exp = load_config(p)
    assert exp.config.variants[1].params == {"criterion": "random", "finetune": {"epochs": 0.1}}
    assert exp.config.variants[2].params == exp.config.variants[0].params


@pytest.mark.parametrize(
    "tag", ["!!python/object/apply:os.system ['touch pwned']", "!!python/name:os.system", "!custom value"]
)
def test_tags_rejected_and_nothing_runs(tmp_path, monkeypatch, tag):
    monkeypatch.chdir(tmp_path)
    msg = _file_err(tmp_path, f"name: {tag}\n")
    assert "is not allowed: a config is plain data" in msg
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "data, expect",
    [
        (b"\xff\xfe\x00n\x00a\x00m\x00e", "not UTF-8 text"),
        (b"name: caf\xe9\n", "not UTF-8 text (byte 0xe9 at offset 9)"),
        (b"name: ok\x00\x01\x02", "a binary file (NUL byte at offset 8)"),
        (b"name: \x07bell\n", "not YAML text: character #x0007"),
        (b"", "the config file is empty"),
        (b"# only a comment\n\n", "the config file is empty"),
        (b"- a\n- b\n", "must be a mapping of fields, got a list"),
        (b"just a string\n", "must be a mapping of fields, got a string"),
        (b"name: a\n---\nname: b\n", "not valid YAML"),
        (b"name: [unclosed\n", "not valid YAML at line 2"),
        (b"name: ok\n\tdataset: x\n", "not valid YAML"),
    ],
)
def test_bad_files_are_one_line(tmp_path, data, expect):
    assert expect in _file_err(tmp_path, data)


def test_utf8_bom_is_fine(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_bytes(b"\xef\xbb\xbf" + _good_yaml().encode())
    assert load_config(p).name == "ok"


def test_size_cap_fails_before_parsing(tmp_path):
    big = _good_yaml("# " + "x" * 6_000_000 + "\n")  # the 6 MB config that took 25 s
    msg = _file_err(tmp_path, big)
    assert f"at most {cfg.MAX_CONFIG_BYTES:,} bytes" in msg and "6,000" in msg


def test_node_cap(tmp_path):
    msg = _file_err(tmp_path, _good_yaml("x: [" + ", ".join(["1"] * 6000) + "]\n"))
    assert "more than 5,000 values" in msg


def test_config_path_problems(tmp_path):
    with pytest.raises(ConfigError, match="is a directory, not a config file"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    f = tmp_path / "f.yaml"
    f.write_text("x: 1\n")
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(f / "inside.yaml")  # a path through a file: NotADirectoryError


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads unreadable files")
def test_unreadable_config(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(_good_yaml())
    p.chmod(0)
    try:
        with pytest.raises(ConfigError, match="cannot read the config file"):
            load_config(p)
    finally:
        p.chmod(0o600)


def test_huge_python_structures_are_bounded():
    """The Python API has no YAML limits: the same caps apply to the dict (depth, values, cycles)."""
    deep: dict = {}
    cur = deep
    for _ in range(5000):
        cur["a"] = {}
        cur = cur["a"]
    assert "nested deeper than 64 levels" in _err({**GOOD, "model": {"name": "tinycnn", "kwargs": deep}})
    cyc: list = []
    cyc.append(cyc)
    assert _err({**GOOD, "variants": [{"method": "prune.unstructured", "params": {"x": cyc}}]})
    shared = ["x"] * 10
    for _ in range(8):
        shared = [shared] * 10  # 10**9 values by reference
    assert "more than 5,000 values" in _err({**GOOD, "model": {"name": "tinycnn", "kwargs": {"k": shared}}})


# ------------------------------------------------------------------ numbers
@pytest.mark.parametrize(
    "patch, where",
    [
        ({"train": {"epochs": float("inf")}}, "train.epochs"),
        ({"train": {"epochs": 1, "lr": float("nan")}}, "train.lr"),
        ({"train": {"epochs": 1, "lr": "inf"}}, "train.lr"),
        ({"variants": [{"method": "prune.unstructured", "budget": {"params": float("nan")}}]}, "variants[0].budget"),
        ({"variants": [{"method": "prune.unstructured", "budget": {"knob": float("inf")}}]}, "variants[0].budget.knob"),
        (
            {"variants": [{"method": "prune.unstructured", "params": {"finetune": {"epochs": float("inf")}}}]},
            "variants[0].params.finetune.epochs",
        ),
        (
            {"variants": [{"method": "prune.unstructured", "params": {"finetune": {"lr": "nan"}}}]},
            "variants[0].params.finetune.lr",
        ),
        (
            {
                "evaluations": [
                    {"evaluator": "adversarial", "params": {"attacks": [{"name": "fgsm", "eps": [float("inf")]}]}}
                ]
            },
            "evaluations[0].params.attacks[0].eps[0]",
        ),
        ({"dataset": {"name": "digits", "options": {"test_fraction": float("nan")}}}, "dataset.options.test_fraction"),
        ({"model": {"name": "cnn5", "kwargs": {"channels": [8, float("inf")]}}}, "model.kwargs.channels[1]"),
    ],
)
def test_non_finite_numbers_name_the_path(patch, where):
    msg = _err({**GOOD, **patch})
    assert msg.startswith(where) and ("finite" in msg or "inf" in msg or "nan" in msg), msg


def test_non_finite_from_yaml(tmp_path):
    msg = _file_err(
        tmp_path,
        "name: ok\ndataset: {name: digits}\nmodel: {name: tinycnn}\n"
        "evaluations: [{evaluator: clean, params: {subset: .inf}}]\n",
    )
    assert msg.startswith("evaluations[0].params.subset")


@pytest.mark.parametrize("seeds, ok", [([0, 2**32 - 1], True), ([2**32], False), ([2**70], False), ([-1], False)])
def test_seed_range(seeds, ok):
    if ok:
        assert validate({**GOOD, "seeds": seeds}).seeds == seeds
    else:
        assert _err({**GOOD, "seeds": seeds}).startswith("seeds[")


def test_epochs_bounded():
    assert validate({**GOOD, "train": {"epochs": 10_000}}).train.epochs == 10_000
    assert "less than or equal to 10000" in _err({**GOOD, "train": {"epochs": 1e12}})
    assert "less than or equal to 10000" in _err({**GOOD, "train": {"epochs": "1e12"}})  # YAML 1.1: a string


def test_huge_integers_anywhere():
    msg = _err({**GOOD, "model": {"name": "cnn5", "kwargs": {"channels": [2**70]}}})
    assert msg.startswith("model.kwargs.channels[0]") and "64 bits" in msg


# ------------------------------------------------------------------ names, kwargs, executors
def test_model_kwargs_checked_against_factory():
    msg = _err({**GOOD, "model": {"name": "cnn5", "kwargs": {"pretrained": True}}})
    assert msg == "model.kwargs.pretrained: model 'cnn5' takes no argument 'pretrained'; accepted: channels"
    assert "did you mean 'channels'" in _err({**GOOD, "model": {"name": "cnn5", "kwargs": {"chanels": [8]}}})
    assert "given by model.width" in _err({**GOOD, "model": {"name": "cnn5", "kwargs": {"width": 2}}})
    assert "accepted: none" in _err({**GOOD, "model": {"name": "tinycnn", "kwargs": {"depth": 2}}})
    assert validate({**GOOD, "model": {"name": "cnn5", "kwargs": {"channels": [8, 8, 16, 16, 32]}}})


def test_user_factory_kwargs(tmp_path, monkeypatch, forget_adopted_models):
    # validate builds the parent (issue 13: weights and methods are checked against it), so these build
    (tmp_path / "cb_user_models.py").write_text(
        "from torch import nn\n"
        "def _net(meta):\n    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), "
        "nn.Linear(meta.channels, meta.num_classes))\n"
        "def strict(meta, width=1.0, depth=2):\n    return _net(meta)\n"
        "def loose(meta, width=1.0, **kw):\n    return _net(meta)\n"
        "def needs(meta, width=1.0, *, depth):\n    return _net(meta)\n"
        "def broken(meta, width=1.0):\n    raise RuntimeError('boom')\n"
        "def not_a_factory(command):\n    raise RuntimeError('not called')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert validate({**GOOD, "model": {"name": "cb_user_models:strict", "kwargs": {"depth": 3}}})
    assert validate({**GOOD, "model": {"name": "cb_user_models:loose", "kwargs": {"anything": 3}}})
    assert "accepted: depth" in _err({**GOOD, "model": {"name": "cb_user_models:strict", "kwargs": {"pretrained": 1}}})
    assert _err({**GOOD, "model": {"name": "cb_user_models:needs"}}).startswith("model.kwargs.depth: ")
    assert "is not a model factory" in _err({**GOOD, "model": {"name": "cb_user_models:not_a_factory"}})
    assert "cannot import model" in _err({**GOOD, "model": {"name": "cb_user_models_no_such_module:f"}})
    assert _err({**GOOD, "model": {"name": "cb_user_models:broken"}}) == (
        "model: cannot build 'cb_user_models:broken' for digits (1 channel(s), 10 classes, 16×16): RuntimeError: boom"
    )


def test_executor_names(monkeypatch):
    assert _err({**GOOD, "executor": "slurm"}) == "executor: unknown executor 'slurm'; known: local, ray"
    assert _err({**GOOD, "executor": "rya"}) == (
        "executor: unknown executor 'rya' (did you mean 'ray'?); known: local, ray"
    )
    from compressbench import execute
    from compressbench.registry import executors

    executors.register("slurm", execute.LocalExecutor)  # registering one is one line
    try:
        assert validate({**GOOD, "executor": "slurm"}).executor.name == "slurm"
    finally:
        executors.unregister("slurm")


def test_nested_unknown_key_lists_the_nested_schema():
    msg = _err({**GOOD, "variants": [{"method": "prune.unstructured", "params": {"finetune": {"epoch": 1}}}]})
    assert msg == (
        "variants[0].params.finetune.epoch: unknown parameter (did you mean 'epochs'?); "
        "allowed: epochs, lr, optimizer, schedule"
    )
    msg = _err(
        {
            **GOOD,
            "evaluations": [
                {"evaluator": "adversarial", "params": {"attacks": [{"name": "pgd", "eps": [0.1], "stepz": 3}]}}
            ],
        }
    )
    assert msg.startswith(
        "evaluations[0].params.attacks[0]: unknown parameter 'stepz' for attack 'pgd' (did you mean 'steps'?)"
    )
    assert "allowed: name, eps, norm, stronger_steps, steps" in msg
    msg = _err({**GOOD, "train": {"epocs": 1}})
    assert msg.startswith("train.epocs: unknown field (did you mean 'epochs'?); allowed: epochs, batch_size")


def test_union_member_tags_are_not_shown():
    msg = _err({**GOOD, "evaluations": [{"evaluator": "calibration", "params": {"corruptions": 5}}]})
    assert msg.startswith("evaluations[0].params.corruptions: ") and "list[str]" not in msg.split(":")[0]


# ------------------------------------------------------------------ evaluator params
@pytest.mark.parametrize(
    "ev, params, expect",
    [
        ("clean", {"subset": -3}, "evaluations[0].params.subset: Input should be greater than or equal to 1"),
        ("clean", {"subset": 0}, "evaluations[0].params.subset"),
        ("clean", {"batch_size": 0}, "evaluations[0].params.batch_size: Input should be greater than or equal to 1"),
        ("calibration", {"corruptions": ["fogg"]}, "unknown corruption 'fogg'; did you mean 'fog'?"),
        ("calibration", {"corruptions": "cifar10-cc"}, "unknown corruption 'cifar10-cc'"),
        ("calibration", {"severities": [9]}, "params.severities[0]: Input should be less than or equal to 5"),
        ("calibration", {"severities": [0]}, "severities[0]"),
        ("calibration", {"corruption_seed": -1}, "corruption_seed"),
        ("calibration", {"batch_size": 0}, "batch_size"),
        ("agreement", {"subset": -1}, "subset"),
        ("agreement", {"thumbnails": -1}, "thumbnails"),
        ("corruptions", {"subset": 0}, "subset"),
        ("corruptions", {"batch_size": -5}, "batch_size"),
        ("corruptions", {"suites": []}, "give at least one suite"),
        ("corruptions", {"seed": 2**40}, "seed"),
    ],
)
def test_evaluator_params_constrained(ev, params, expect):
    msg = _err({**GOOD, "evaluations": [{"evaluator": ev, "params": params}]})
    assert expect in msg, msg


def test_calibration_suite_names_and_clean_only_still_valid():
    for corr in ("cifar10-c", "all", ["noise", "fog"], []):
        assert validate({**GOOD, "evaluations": [{"evaluator": "calibration", "params": {"corruptions": corr}}]})


# ------------------------------------------------------------------ --set overrides
def _with_overrides(tmp_path, *items):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({**GOOD, "variants": [{"method": "prune.unstructured"}]}))
    return load_config(p, dict(parse_override(i) for i in items))


def test_set_list_index_and_nested(tmp_path):
    exp = _with_overrides(
        tmp_path,
        "variants.0.method=prune.structured",
        "variants.0.budget={params: 0.5}",
        "train.epochs=2",
        "seeds=[0, 1]",
        "store=null",
        "dataset.options.size=8",
    )
    assert exp.config.variants[0].method == "prune.structured" and exp.config.variants[0].budget == {"params": 0.5}
    assert exp.train.epochs == 2 and exp.seeds == [0, 1] and exp.dataset.options == {"size": 8}


@pytest.mark.parametrize(
    "item, expect",
    [
        ("name.x=1", "--set name.x: name is a string ('ok'), not a mapping; cannot set 'x' inside it"),
        ("variants.3.method=x", "--set variants.3.method: variants has 1 item(s); index 3 is out of range"),
        ("variants.first.method=x", "variants is a list; address its items by index (0..0), not 'first'"),
        ("train.epochs=[1", "--set train.epochs: not valid YAML at line 1"),
        ("train.epochs=!!python/name:os.system", "is not allowed: a config is plain data"),
        ("train..epochs=1", "empty part in the key"),
        ("train.epochs", "--set expects KEY=VALUE"),
        ("=1", "--set expects KEY=VALUE"),
        ("train.epochs=.inf", "train.epochs: Input should be a finite number"),
        ("train.epochs=" + "[" * 100 + "]" * 100, "nested deeper than 64 levels"),
        ("name=" + "x" * 5000, "at most 4,096"),
    ],
)
def test_set_errors_one_line(tmp_path, item, expect):
    with pytest.raises(ConfigError) as e:
        _with_overrides(tmp_path, item)
    assert expect in str(e.value) and "\n" not in str(e.value)


def test_apply_override_creates_missing_and_null_mappings():
    raw = {"a": None}
    apply_override(raw, "a.b.c", 1)
    apply_override(raw, "d.e", 2)
    assert raw == {"a": {"b": {"c": 1}}, "d": {"e": 2}}
    assert parse_yaml("[1, {a: b}]", "x") == [1, {"a": "b"}]


# ------------------------------------------------------------------ CLI
def _cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_set_on_validate_and_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "c.yaml"
    p.write_text(_good_yaml())
    rc, out, _ = _cli(capsys, "validate", str(p), "--set", "seeds=[0, 1]")
    assert rc == 0 and "2 seed(s)" in out
    rc, _, err = _cli(capsys, "run", str(p), "--set", "name.x=1")
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: --set name.x:")
    assert list(tmp_path.iterdir()) == [p]


def test_cli_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: the following arguments are required: config")


def test_strict_flag_is_gone(capsys):
    with pytest.raises(SystemExit):
        main(["run", "x.yaml", "--strict"])
    assert "unrecognized arguments: --strict" in capsys.readouterr().err


def test_run_exits_1_when_a_job_failed(tmp_path, capsys, monkeypatch, forget_adopted_models):
    """A model that builds (validate builds the parent) but raises in forward: every job fails, run prints the
    summary, exit 1. (A factory that raises at build is a validate error now: test_user_factory_kwargs.)"""
    (tmp_path / "cb_failing_model.py").write_text(
        "from torch import nn\n"
        "import torch\n"
        "class Boom(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.w = nn.Parameter(torch.zeros(1))\n"
        "    def forward(self, x):\n        raise RuntimeError('boom at train time')\n"
        "def build(meta, width=1.0):\n    return Boom()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMPRESSBENCH_CACHE", str(tmp_path / "home-cache"))
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({**GOOD, "model": {"name": "cb_failing_model:build"}}))
    rc, out, _ = _cli(capsys, "run", str(p), "--quiet", "--no-progress")
    assert rc == 1
    assert "2 jobs — 0 ran, 0 cached, 2 failed" in out and "FAILED train baseline seed=0: RuntimeError: boom" in out


# ------------------------------------------------------------------ datasets
@pytest.mark.parametrize(
    "ds, expect",
    [
        (
            {"name": "digits", "options": {"sise": 8}},
            "dataset.options.sise: unknown option (did you mean 'size'?); allowed: size, test_fraction",
        ),
        (
            {"name": "digits", "options": {"size": 0}},
            "dataset.options.size: Input should be greater than or equal to 1",
        ),
        ({"name": "digits", "options": {"test_fraction": 1.5}}, "dataset.options.test_fraction"),
        (
            {"name": "fashion-mnist", "options": {"size": 32}},
            "dataset.options: dataset 'fashion-mnist' takes no options",
        ),
        ({"name": "cifar10", "options": {"download_url": "x"}}, "dataset.options: dataset 'cifar10' takes no options"),
        ({"name": "synthetic", "options": {"n_classes": 3}}, "did you mean 'num_classes'?"),
        ({"name": "synthetic", "options": {"seed": -1}}, "dataset.options.seed"),
        ({"name": "imagefolder", "options": {"channels": 2}}, "dataset.options.channels"),
        ({"name": "cifar10-c", "options": {"corruption": "fgo"}}, "unknown corruption 'fgo'; did you mean 'fog'?"),
        ({"name": "cifar10-c", "options": {"severity": 6}}, "dataset.options.severity"),
        ({"name": "digits", "root": "/no/such/folder"}, "dataset.root: folder '/no/such/folder' does not exist"),
    ],
)
def test_dataset_options_and_root_at_validate(ds, expect):
    assert expect in _err({**GOOD, "dataset": ds})


def test_dataset_root_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    msg = _err({**GOOD, "dataset": {"name": "fashion-mnist", "root": str(f)}})
    assert msg == f"dataset.root: '{f}' is not a folder"


def test_every_loader_takes_exactly_its_options():
    """No ``**_`` left: a loader's keyword arguments are its schema's fields (so nothing is swallowed)."""
    from compressbench.registry import datasets

    for name in datasets.names():
        fn = datasets.get(name)
        params = list(inspect.signature(fn).parameters.values())
        assert not any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in params), name
        schema = datasets.spec(name).params
        # a dataset with domains also takes `requested` (which domains to read; data.domains passes it)
        names = [p.name for p in params[3:] if p.name != "requested"]
        assert names == (list(schema.model_fields) if schema else []), name


def test_load_dataset_checks_options_too(tmp_path):
    from compressbench.data import load_dataset

    with pytest.raises(ConfigError, match="did you mean 'size'"):
        load_dataset("digits", cache_dir=tmp_path, sise=8)
    assert load_dataset("digits", cache_dir=tmp_path, size=8, test_fraction=0.5).test.x.shape[1:] == (1, 8, 8)


def _write_idx(path: Path, arr) -> None:
    import gzip
    import struct

    import numpy as np

    header = bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.asarray(arr, dtype=np.uint8).tobytes())


def _fake_fashion(folder: Path, n_train: int = 50, n_train_labels: int = 50) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    _write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, 28, 28)))
    _write_idx(folder / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, (n_train_labels,)))
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)))
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, (20,)))


def test_labels_shorter_than_images(tmp_path):
    from compressbench.data import DatasetError, load_dataset

    _fake_fashion(tmp_path / "fm", n_train=50, n_train_labels=45)
    with pytest.raises(DatasetError) as e:
        load_dataset("fashion-mnist", root=tmp_path / "fm", cache_dir=tmp_path / "c", download=False)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz has 50 images but" in msg and "train-labels-idx1-ubyte.gz has 45 labels" in msg
    assert "\n" not in msg


def test_empty_root_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    """A root with no data fails naming the root, even when the system copy exists."""
    import compressbench.data as d
    from compressbench.data import DatasetError, load_dataset

    _fake_fashion(tmp_path / "system")
    monkeypatch.setattr(d, "DEBIAN_FASHION_MNIST", tmp_path / "system")
    assert len(load_dataset("fashion-mnist", cache_dir=tmp_path / "c", download=False).train) == 50
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError) as e:
        load_dataset("fashion-mnist", root=tmp_path / "empty", cache_dir=tmp_path / "c", download=False)
    assert f"dataset.root {tmp_path / 'empty'}" in str(e.value) and "dataset.download: false" in str(e.value)
    with pytest.raises(DatasetError, match="is not an existing folder"):
        load_dataset("fashion-mnist", root=tmp_path / "missing", cache_dir=tmp_path / "c")
    with pytest.raises(DatasetError, match="dataset.root"):
        load_dataset("cifar10", root=tmp_path / "empty", cache_dir=tmp_path / "c", download=False)


def test_download_false_reaches_the_loader_and_keeps_keys(tmp_path):
    from compressbench.data import DatasetBundle
    from compressbench.data.base import DataMeta, ImageSet
    from compressbench.plan import plan
    from compressbench.registry import datasets
    from compressbench.runner import get_dataset

    seen: list[bool] = []

    def probe(root, cache, download) -> DatasetBundle:
        import torch

        seen.append(download)
        s = ImageSet(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.long))
        return DatasetBundle(DataMeta("probe", 2, 1, (8, 8), (0.5,), (0.25,)), s, s)

    datasets.register("cb-test-probe", probe)
    try:
        raw = {**GOOD, "dataset": {"name": "cb-test-probe"}}
        on = plan(validate(raw))
        off = plan(validate({**raw, "dataset": {"name": "cb-test-probe", "download": False}}))
        assert [j.key for j in on] == [j.key for j in off]  # not part of the cache key
        assert all(j.spec.dataset.download is False for j in off)
        get_dataset(off[0].spec.dataset, tmp_path)
        get_dataset(on[0].spec.dataset, tmp_path)
        # validate loads a dataset without a metadata probe (to build the parent), with the config's flag
        assert seen == [True, False, False, True]
    finally:
        datasets.unregister("cb-test-probe")


def test_list_params_shows_ranges_not_annotated_noise(capsys):
    assert main(["list", "evaluators", "--params"]) == 0
    out = capsys.readouterr().out
    assert "subset: int >= 1 | None (default None)" in out and "FieldInfo" not in out
    assert "severities: list[int >= 1, <= 5] (default [3])" in out and "PydanticUndefined" not in out
    assert main(["list", "datasets", "--params"]) == 0
    assert "test_fraction: float, > 0, < 1 (default 0.25)" in capsys.readouterr().out
