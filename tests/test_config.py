"""Bad configs fail fast with one line naming the field, the value and what is allowed."""

import subprocess
import sys
import time

import pytest
import yaml

from compressbench.cli import main
from compressbench.config import ConfigError
from compressbench.validate import load_config, validate

GOOD = {
    "name": "ok",
    "dataset": {"name": "digits"},
    "model": {"name": "tinycnn"},
    "train": {"epochs": 1},
}


def _err(raw) -> str:
    with pytest.raises(ConfigError) as e:
        validate(raw)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_good_config():
    exp = validate(GOOD)
    assert exp.seeds == [0] and exp.train.epochs == 1 and exp.store_path.name == "ok.sqlite"


def test_unknown_dataset_did_you_mean():
    msg = _err({**GOOD, "dataset": {"name": "fashion-mnst"}})
    assert msg.startswith("dataset.name:") and "did you mean 'fashion-mnist'" in msg


def test_negative_epochs():
    msg = _err({**GOOD, "train": {"epochs": -1}})
    assert msg.startswith("train.epochs:") and "greater than or equal to 0" in msg and "-1" in msg


def test_missing_field():
    raw = dict(GOOD)
    del raw["model"]
    assert _err(raw) == "model: required field is missing"


def test_wrong_type():
    msg = _err({**GOOD, "seeds": "zero"})
    assert msg.startswith("seeds:") and "'zero'" in msg


def test_unknown_field_did_you_mean():
    msg = _err({**GOOD, "train": {"epocs": 2}})
    assert msg.startswith("train.epocs: unknown field") and "did you mean 'epochs'" in msg


def test_unknown_model_and_evaluator():
    assert "did you mean 'cnn5'" in _err({**GOOD, "model": {"name": "cnn4"}})
    # a library's bare name: the registered names ending in it and the library's name family, not 'resnet8'
    msg = _err({**GOOD, "model": {"name": "resnet18"}})
    hint = msg.split("did you mean ")[1].split("?")[0]
    assert hint.startswith("'tv_resnet18'") and {"'cifar_resnet18'", "'timm:resnet18'"} <= set(hint.split(" or "))
    msg = _err({**GOOD, "evaluations": [{"evaluator": "claen"}]})
    assert msg.startswith("evaluations[0].evaluator:") and "did you mean 'clean'" in msg


def test_evaluator_params_checked():
    msg = _err({**GOOD, "evaluations": [{"evaluator": "clean", "params": {"subsett": 3}}]})
    assert msg.startswith("evaluations[0].params.subsett: unknown parameter") and "subset" in msg


def test_bad_budget_kind():
    msg = _err({**GOOD, "variants": [{"method": "x", "budget": {"parms": 0.5}}]})
    assert msg.startswith("variants[0].budget") and "did you mean 'params'" in msg


def test_yaml_syntax_error(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "not valid YAML" in str(e.value)


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "compressbench", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(
    "bad, expect",
    [
        ({"dataset": {"name": "nope"}}, "dataset.name"),
        ({"train": {"epochs": -3}}, "train.epochs"),
        ({"model": None}, "model"),
        ({"seeds": [0, "a"]}, "seeds[1]"),
    ],
)
def test_cli_validate_exit_2_one_line(tmp_path, bad, expect, monkeypatch, capsys):
    raw = {**GOOD, **bad}
    if raw.get("model") is None:
        raw.pop("model")
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(raw))
    if expect == "dataset.name":  # the real entry point, in a fresh interpreter, once
        r = _cli("validate", str(p))  # (its time: benchmarks/cli_start.py, not a timed test)
        rc, stderr = r.returncode, r.stderr
    else:  # the same main(), in this process
        rc, stderr = main(["validate", str(p)]), capsys.readouterr().err
    assert rc == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {expect}") and "Traceback" not in stderr
    # `run` refuses the same file before any work
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(p)]) == 2 and not (tmp_path / ".compressbench").exists()


def test_cli_validate_ok(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(GOOD))
    r = _cli("validate", str(p))
    assert r.returncode == 0 and "OK" in r.stdout


def test_validate_is_fast_in_process():
    validate(GOOD)  # warm imports
    t0 = time.process_time()  # CPU time: a busy machine does not trip it, a slow path does
    for _ in range(10):
        validate(GOOD)
    assert (time.process_time() - t0) / 10 < 1.0


def test_unreachable_budget_fails_at_validation():
    msg = _err({**GOOD, "variants": [{"method": "quantize.dynamic", "budget": {"params": 0.25}}]})
    assert msg.startswith("variants[0].budget: params=0.25 is unreachable for 'quantize.dynamic'")


def test_budget_sweep_expands_to_named_variants():
    exp = validate({**GOOD, "variants": [{"method": "prune.unstructured", "budgets": {"params": [0.5, 0.25]}}]})
    names = [v.name for v in exp.variants]
    assert names == ["prune.unstructured@params=0.5", "prune.unstructured@params=0.25"]
