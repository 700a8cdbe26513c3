"""Exports (compressbench.deploy): a tiny study on digits with the runtimes evaluator, then
``compressbench export`` of its variants — every variant in every installed format, with real runtimes,
real files and a real store. Formats whose library is not installed are skipped with the reason."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from compressbench.cli import main
from compressbench.deploy.formats import formats, missing_reason
from compressbench.runner import run
from compressbench.store import ResultStore
from compressbench.validate import validate

FORMATS = formats.names()
AVAILABLE = [f for f in FORMATS if missing_reason(f) is None]
VARIANTS = [
    "baseline",
    "prune.unstructured@params=0.5",
    "prune.structured@params=0.5",
    "quantize.static",
    "distill@params=0.5",
]


def _skip_missing(fmt: str) -> None:
    why = missing_reason(fmt)
    if why:
        pytest.skip(f"format {fmt}: {why}")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """cnn5 at width 1.5 (≈ 300 k weights: the file is weights, not graph) on digits; every format in the study."""
    d = tmp_path_factory.mktemp("deploy")
    exp = validate(
        {
            "name": "ship",
            "seeds": [0],
            "dataset": {"name": "digits", "eval_subset": 200},
            "model": {"name": "cnn5", "width": 1.5},
            "train": {"epochs": 3, "batch_size": 64, "lr": 0.1, "augment": "none"},
            "variants": [
                {"method": "prune.unstructured", "params": {"finetune": {"epochs": 0.2}}, "budget": {"params": 0.5}},
                {"method": "prune.structured", "params": {"finetune": {"epochs": 0.3}}, "budget": {"params": 0.5}},
                {"method": "quantize.static", "params": {"calibration_batches": 4}},
                {"method": "distill", "params": {"epochs": 1}, "budget": {"params": 0.5}},
            ],
            "evaluations": [
                {"evaluator": "clean"},
                {
                    "evaluator": "runtimes",
                    "params": {
                        "formats": AVAILABLE,
                        "repeats": 3,
                        "warmup": 1,
                        "throughput_batch": 0,
                        "fresh_process": False,
                    },
                },
            ],
            "cache_dir": str(d / "cache"),
            "store": str(d / "ship.sqlite"),
        }
    )
    s = run(exp, progress=False)
    assert s.failed == 0, s.failures
    return exp, d


def _values(store: ResultStore, evaluator: str, metric: str) -> dict[tuple[str, str], float]:
    return {
        (r["variant"], r["condition_json"]["format"]): r["value"]
        for r in store.rows("ship", evaluator=evaluator, metric=metric)
    }


def _int8_needs_executorch(fmt: str) -> bool:
    """int8 in ``pt2`` needs ExecuTorch's quantizer: without the extra that variant has one unverified row."""
    return fmt == "pt2" and importlib.util.find_spec("executorch") is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_variant_agrees_in_every_runtime(study, fmt):
    _skip_missing(fmt)
    exp, _ = study
    store = ResultStore(exp.store_path)
    agree, verified = _values(store, "runtimes", "agreement"), _values(store, "runtimes", "verified")
    int8_needs = _int8_needs_executorch(fmt)
    for v in VARIANTS:
        if int8_needs and v == "quantize.static":  # int8 pt2 needs ExecuTorch's quantizer: one row, the extra named
            row = [
                r
                for r in store.rows("ship", evaluator="runtimes", metric="verified")
                if r["variant"] == v and r["condition_json"]["format"] == fmt
            ][0]
            assert row["value"] == 0.0 and "compressbench[executorch]" in row["condition_json"]["reason"], row
            continue
        assert verified[v, fmt] == 1.0, (v, fmt)
        assert agree[v, fmt] >= 0.99, (v, fmt, agree[v, fmt])
        if fmt == "onnx" and v != "quantize.static":  # fp32 ONNX: exactly the variant's labels
            assert agree[v, fmt] == 1.0
    dl = _values(store, "runtimes", "max_abs_dlogit")
    assert dl["baseline", fmt] < 1e-3  # fp32 artifacts: the same logits up to float rounding
    lat = _values(store, "runtimes", "latency_b1_ms")
    assert all(lat[v, fmt] > 0 for v in VARIANTS if not (int8_needs and v == "quantize.static"))


def test_sizes_structured_and_int8_onnx(study):
    """Structured pruning shrinks the ONNX file by the pruned fraction; int8 ONNX is a quarter of fp32."""
    _skip_missing("onnx")
    exp, _ = study
    store = ResultStore(exp.store_path)
    size = _values(store, "runtimes", "file_bytes")
    params = {r["variant"]: r["value"] for r in store.rows("ship", evaluator="compress", metric="params")}
    kept = params["prune.structured@params=0.5"] / params["baseline"]
    ratio = size["prune.structured@params=0.5", "onnx"] / size["baseline", "onnx"]
    assert abs(ratio - kept) <= 0.05, (ratio, kept)
    assert size["quantize.static", "onnx"] <= 0.3 * size["baseline", "onnx"]
    # unstructured sparsity is not exploited: the dense file
    assert size["prune.unstructured@params=0.5", "onnx"] == pytest.approx(size["baseline", "onnx"], rel=0.01)
    dtypes = {
        r["variant"]: r["condition_json"]["dtype"]
        for r in store.rows("ship", evaluator="runtimes", metric="file_bytes")
        if r["condition_json"]["format"] == "onnx"
    }
    assert dtypes["quantize.static"] == "int8" and dtypes["baseline"] == "fp32"


def test_report_has_a_latency_column_per_runtime(study):
    from compressbench.report import load_experiment, summary_table

    exp, _ = study
    frame = summary_table(load_experiment(ResultStore(exp.store_path), "ship")).to_frame().set_index("variant")
    for fmt in AVAILABLE:
        assert f"latency_b1_ms@{fmt}" in frame.columns, (fmt, list(frame.columns))
    timed = [f for f in AVAILABLE if not _int8_needs_executorch(f)]  # a core install: safetensors times int8
    assert frame.loc["quantize.static", f"latency_b1_ms@{timed[0]}"] > 0


def test_unknown_or_missing_format_is_refused_at_validate(study):
    exp, _ = study
    raw = exp.config.model_dump(mode="json")
    raw["evaluations"] = [{"evaluator": "runtimes", "params": {"formats": ["onxx"]}}]
    with pytest.raises(Exception, match="did you mean 'onnx'"):
        validate(raw)


def _export(store, variant, fmt, out, *extra) -> int:
    return main(
        [
            "export",
            str(store),
            "--variant",
            variant,
            "--format",
            fmt,
            "--out",
            str(out),
            "--repeats",
            "3",
            "--warmup",
            "1",
            "--batch",
            "8",
            "--throughput-repeats",
            "2",
            *extra,
        ]
    )


@pytest.mark.parametrize("fmt", ["onnx", "executorch", "safetensors"])  # the three fresh-process timing paths
def test_cli_export_stores_rows_once_and_writes_a_card(study, fmt, tmp_path, capsys):
    _skip_missing(fmt)
    exp, _ = study
    out = tmp_path / fmt
    assert _export(exp.store_path, "prune.structured", fmt, out) == 2  # not a variant: one line, exit 2
    assert "did you mean 'prune.structured@params=0.5'" in capsys.readouterr().err
    assert _export(exp.store_path, "quantize.static", fmt, out) == 0
    store = ResultStore(exp.store_path)
    rows = store.rows("ship", evaluator="export", variant="quantize.static")
    mine = [r for r in rows if r["condition_json"].get("format") == fmt]
    by = {r["metric"]: r for r in mine}
    assert by["verified"]["value"] == 1.0 and by["agreement"]["value"] >= 0.99
    assert by["latency_b1_ms"]["condition_json"]["process"] == "fresh"
    assert by["throughput_img_s"]["condition_json"]["batch"] == 8
    assert by["file_bytes"]["value"] == sum(f.stat().st_size for f in out.iterdir() if f.name.startswith("model."))
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "model-index:" in card and "**Verified**" in card
    assert "## Caveats" in card and "1 seed: no confidence intervals" in card
    before = _row_keys(store)
    assert _export(exp.store_path, "quantize.static", fmt, tmp_path / "again") == 0  # the same export again
    after = _row_keys(store)
    assert len(after) == len(set(after))  # nothing stored twice (a new run row only) ...
    # ... and nothing new but a load row: the machine's other load is recorded only when the batch-1 samples
    # spanned a window /proc/stat can resolve (>= 50 ms), which a tiny model's fast export may not
    assert set(before) <= set(after) and {k[1] for k in set(after) - set(before)} <= {"latency_b1_load"}


def _row_keys(store: ResultStore) -> list[tuple]:
    return [
        (r["variant"], r["evaluator"], r["metric"], json.dumps(r["condition_json"], sort_keys=True))
        for r in store.rows("ship")
    ]


def test_card_caveats_come_from_the_rows(study, tmp_path):
    _skip_missing("onnx")
    exp, _ = study
    out = tmp_path / "u"
    assert _export(exp.store_path, "prune.unstructured@params=0.5", "onnx", out, "--no-timing") == 0
    card = (out / "README.md").read_text()
    assert "of the weights are zero but stored dense: ONNX Runtime does not exploit unstructured sparsity" in card
    assert "theoretical" in card  # params_nonzero rows are tagged theoretical
    assert "transfer" not in card.split("## Caveats")[1]  # no adversarial rows: no transfer caveat


def test_non_equivalent_export_is_an_error_row(study, tmp_path):
    """A tolerance no fp32 runtime meets (1e-12 on the logits): exit 1, an error row, a card that says so."""
    _skip_missing("onnx")
    exp, _ = study
    out = tmp_path / "strict"
    assert _export(exp.store_path, "baseline", "onnx", out, "--no-timing", "--fp32-atol", "1e-12") == 1
    rows = ResultStore(exp.store_path).rows("ship", evaluator="export", variant="baseline")
    err = [r for r in rows if r["metric"] == "error"]
    assert err and "fp32 logits differ" in err[-1]["error"] and err[-1]["value"] is None
    failed = [r for r in rows if r["metric"] == "verified" and r["value"] == 0.0]
    assert failed and "fp32 logits differ" in failed[-1]["condition_json"]["reason"]
    assert "**NOT VERIFIED**" in (out / "README.md").read_text()


def test_safetensors_reloads_without_pickle(study, tmp_path, monkeypatch):
    _skip_missing("safetensors")
    import pickle

    import compressbench as cb

    exp, _ = study
    for v in ("prune.structured@params=0.5", "quantize.static"):
        out = tmp_path / v
        assert _export(exp.store_path, v, "safetensors", out, "--no-timing") == 0
        with monkeypatch.context() as m:

            def refuse(*a, **k):
                raise AssertionError("pickle used")

            m.setattr(torch, "load", refuse)
            m.setattr(pickle, "load", refuse)
            m.setattr(pickle, "loads", refuse)
            model, ck = cb.load_model(out / "model.safetensors")
        assert ck["spec"]["model"] == "cnn5"
        x = torch.rand(4, 1, 16, 16)
        assert model(x).shape == (4, 10)


def test_standalone_snippet_runs_without_compressbench(study, tmp_path):
    """The documented loader (load_model.py, docs/export.md) rebuilds float variants with torch + safetensors only."""
    _skip_missing("safetensors")
    import compressbench as cb

    exp, _ = study
    docs = (Path(__file__).parents[1] / "docs" / "export.md").read_text()
    src = (Path(cb.__file__).parent / "deploy" / "standalone.py").read_text()
    code = src.split('"""', 2)[2].strip()
    assert code in docs, "docs/export.md must quote deploy/standalone.py verbatim"
    x = np.random.default_rng(0).random((5, 1, 16, 16), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    for v in ("baseline", "prune.structured@params=0.5", "distill@params=0.5"):
        out = tmp_path / v
        assert _export(exp.store_path, v, "safetensors", out, "--no-timing") == 0
        assert (out / "load_model.py").is_file() and json.loads((out / "model.json").read_text())["graph"]
        model, _ = cb.load_model(out / "model.safetensors")
        want = model(torch.from_numpy(x)).detach().numpy()
        x_in, y_out = str(tmp_path / "x.npy"), str(tmp_path / "y.npy")
        script = (
            "import sys, numpy as np, torch; sys.modules['compressbench'] = None\n"
            f"sys.path.insert(0, {str(out)!r})\nfrom load_model import load\n"
            f"m = load({str(out / 'model')!r})\n"
            f"np.save({y_out!r}, m(torch.from_numpy(np.load({x_in!r}))).detach().numpy())"
        )
        env = {k: val for k, val in os.environ.items() if k != "PYTHONPATH"}
        r = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, atol=1e-5)
