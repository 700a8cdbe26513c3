"""The model card written next to every export: Markdown with YAML front matter (Hugging Face's layout).

Everything in it comes from the store and the export itself: the parent and the method (the variant's
rows and checkpoint), the provenance (the run's config, git hash and versions, this export's machine),
every metric the store holds for the variant (mean ± 95 % CI over seeds when there are several, labels
and formats from the evaluators' declarations), the runtime latencies (rows of ``runtimes`` /
``export`` / ``efficiency``), and the caveats. Caveats are derived from what the rows say — their tags
(``transfer``, ``simulated``, ``theoretical``), their conditions (a corruption whose spec declares a
caveat, an ONNX figure from a float source), nonzero vs stored parameters, failed jobs — and from the
export format's spec and notes; never from a method's name.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import yaml

from ..interfaces import Measurement
from .formats import Written, formats

# what a row's tag means for a reader of the card (the store's tag vocabulary, docs/efficiency.md, docs/attacks.md)
TAG_CAVEATS = {
    "transfer": "Rows tagged `transfer` (adversarial robustness) attack the float parent and evaluate this variant "
    "on the transferred images, because its int8 kernels have no gradient: robust accuracy by transfer, "
    "not a white-box attack on this model.",
    "whitebox-ste": "Rows tagged `whitebox-ste` attack a float simulation of the quantized variant (straight-through "
    "fake-quant) and evaluate the real variant.",
    "simulated": "Rows tagged `simulated` come from a simulation (fake-quant or q/dq graphs run with float kernels, "
    "masks): they are not this artifact's int8 speed or size.",
    "theoretical": "Rows tagged `theoretical` are counted, not measured (FLOPs, nonzero parameters): a saving only "
    "a sparse format or sparse kernels realise.",
}
# condition values that change what a number means (the store's vocabulary, docs/efficiency.md)
CONDITION_CAVEATS = {
    ("source", "float-source"): "The efficiency evaluator's ONNX Runtime int8 figure (`source=float-source`) is ONNX "
    "Runtime's own static quantization of the float architecture, not this variant's int8 "
    "numerics; the export rows are this variant's.",
}
_TIMINGS = ("latency_b1_ms", "latency_b1_iqr_ms", "throughput_img_s")


def _decl(evaluator: str, metric: str) -> Any:
    from ..job_metrics import JOB_SPECS
    from ..registry import evaluators

    spec = JOB_SPECS.get(evaluator) or (evaluators.spec(evaluator) if evaluator in evaluators else None)
    return spec.metric(metric) if spec is not None else None


def _fmt(v: float, fmt: str = "g") -> str:
    from ..report.tables import CELL_FORMATS

    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    special = {"pct": lambda x: f"{100 * x:.2f} %", "bytes": lambda x: f"{x / 1024:,.1f} KiB ({x:,.0f} B)"}
    return special.get(fmt, CELL_FORMATS[fmt].cell)(v)


def _cell(s: str) -> str:
    return str(s).replace("|", "\\|")


def _estimate(values: list[float], fmt: str) -> str:
    from ..report.stats import mean_ci

    est = mean_ci(values)
    if est.n < 2:
        return _fmt(est.mean, fmt)
    scale = 100 if fmt == "pct" else 1
    return f"{_fmt(est.mean, fmt)} ± {est.ci * scale:.3g}{' %' if fmt == 'pct' else ''} (n={est.n})"


def _cond(c: dict[str, Any], drop: tuple[str, ...] = ()) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(c.items()) if k not in drop) or "–"


def metric_tables(rows: list[dict[str, Any]]) -> tuple[list[str], int]:
    """Per evaluator, a Markdown table of every metric × condition of the variant's rows (mean ± CI over
    seeds); and the number of seeds."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    seeds = set()
    for r in rows:
        if r["error"] is not None or r["value"] is None:
            continue
        seeds.add(r["seed"])
        groups[(r["evaluator"], r["metric"], r["condition"], r["tag"] or "", r["unit"] or "")].append(r["value"])
    out: list[str] = []
    by_ev: dict[str, list] = defaultdict(list)
    for (ev, metric, cond, tag, unit), vals in groups.items():
        d = _decl(ev, metric)
        if d is not None and d.select.positive:
            vals = [v for v in vals if v > 0]  # e.g. a FLOP counter blind to int8 kernels: 0 is no measurement
        if vals:
            by_ev[ev].append((metric, cond, tag, unit, vals))
    for ev, items in by_ev.items():
        out += [f"### {ev}", "", "| metric | condition | value | tag |", "|---|---|---|---|"]
        for metric, cond, tag, unit, vals in items:
            d = _decl(ev, metric)
            label = d.title if d is not None else metric
            fmt = d.show.fmt if d is not None else ("bytes" if unit == "B" else "ms" if unit == "ms" else "g")
            unit_s = f" {unit}" if unit and fmt not in ("pct", "bytes") else ""
            out.append(
                f"| {_cell(label)} (`{metric}`) | {_cell(cond) or '–'} | {_estimate(vals, fmt)}{unit_s} | "
                f"{tag or '–'} |"
            )
        out.append("")
    return out, len(seeds)


def latency_table(rows: list[dict[str, Any]]) -> list[str]:
    """Every b1 latency / throughput the store holds for the variant, one line per runtime and protocol."""
    lines: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["error"] is not None or r["metric"].removeprefix("onnx_") not in _TIMINGS:
            continue
        c = r["condition_json"]
        runtime = c.get("runtime", "torch" if not r["metric"].startswith("onnx_") else "onnxruntime")
        key = (runtime, c.get("format", ""), c.get("dtype", ""), c.get("threads", ""), r["evaluator"], r["tag"] or "")
        lines[key][r["metric"].removeprefix("onnx_")].append(r["value"])
    if not lines:
        return ["No latency measured for this variant in the store."]
    out = [
        "| runtime | format | dtype | threads | b1 latency ms (IQR) | throughput img/s | from | tag |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (rt, fm, dt, th, ev, tag), m in sorted(lines.items(), key=lambda kv: _median(kv[1].get("latency_b1_ms"))):
        lat = _median(m.get("latency_b1_ms"))
        iqr = _median(m.get("latency_b1_iqr_ms"))
        tp = _median(m.get("throughput_img_s"))
        out.append(
            f"| {rt} | {fm or '–'} | {dt or '–'} | {th} | {_fmt(lat, 'ms')} ({_fmt(iqr, 'ms')}) | "
            f"{_fmt(tp, 'int')} | {ev} | {tag or '–'} |"
        )
    return out


def _step(s: dict[str, Any]) -> str:
    return str(s.get("kind", "?")) + (f" ({s['mode']})" if "mode" in s else "")


def _median(vals: list[float] | None) -> float:
    if not vals:
        return math.inf
    s = sorted(vals)
    return s[len(s) // 2]


def caveats(
    rows: list[dict[str, Any]], fmt_name: str, written: Written | None, n_seeds: int, host: dict[str, Any]
) -> list[str]:
    """The caveats that apply (see the module docstring)."""
    from ..registry import corruptions

    out: list[str] = []
    ok = [r for r in rows if r["error"] is None]
    for tag in sorted({r["tag"] for r in ok if r["tag"] in TAG_CAVEATS}):
        out.append(TAG_CAVEATS[tag])
    conds = {(k, str(v)) for r in ok for k, v in r["condition_json"].items()}
    out += [text for key, text in CONDITION_CAVEATS.items() if key in conds]
    for name in sorted({v for k, v in conds if k == "corruption"}):
        spec = corruptions.spec(name) if name in corruptions else None
        if spec is not None and getattr(spec, "caveat", ""):
            out.append(f"Corruption `{name}`: {spec.caveat}")
    size = {r["metric"]: r["value"] for r in ok if r["evaluator"] == "compress"}
    if size.get("params") and size.get("params_nonzero") is not None and size["params_nonzero"] < 0.99 * size["params"]:
        spec = formats.spec(fmt_name)
        zero = 1 - size["params_nonzero"] / size["params"]
        if not spec.exploits_sparsity:
            out.append(
                f"{zero:.0%} of the weights are zero but stored dense: {spec.label} does not exploit "
                f"unstructured sparsity, so this file and its latency are those of the dense model (the store's "
                f"`bytes_compressed` is what a sparse encoding saves)."
            )
    if written is not None:
        out += [f"This {fmt_name} artifact: {n}." for n in written.notes]
    if n_seeds < 2:
        out.append("1 seed: no confidence intervals (mean ± 95 % CI appear with several seeds).")
    load, cores = host.get("loadavg_1m"), host.get("logical_cores") or 1
    if load is not None and load > cores - 0.5:
        out.append(
            f"Timings were taken on a shared, loaded machine (1-minute load {load:.1f} on {cores} logical "
            f"cores): medians with IQR, comparable side by side, not absolute."
        )
    errs = sorted({(r["evaluator"], (r["error"] or "").splitlines()[0][:120]) for r in rows if r["error"] is not None})
    for ev, e in errs:
        out.append(f"A `{ev}` job of this variant failed: {e}")
    return out


def front_matter(
    loc: Any, fmt_name: str, dataset: str, rows: list[dict[str, Any]], verified: bool, spec_model: str
) -> str:
    """Hugging Face model-card metadata (``model-index`` with the clean and in-runtime top-1)."""
    metrics = []
    for r in rows:
        if r["error"] is None and r["metric"] == "top1" and r["seed"] == loc.seed:
            if r["evaluator"] == "clean" and not r["condition_json"]:
                metrics.append({"type": "accuracy", "name": "clean top-1 (PyTorch)", "value": round(r["value"], 6)})
            elif r["evaluator"] == "export" and r["condition_json"].get("format") == fmt_name:
                metrics.append(
                    {
                        "type": "accuracy",
                        "value": round(r["value"], 6),
                        "name": f"top-1 in {r['condition_json'].get('runtime')} (evaluation subset)",
                    }
                )
    spec = formats.spec(fmt_name)
    meta = {
        "library_name": spec.runtime_version().split("-")[0] if spec.runtime_version else fmt_name,
        "pipeline_tag": "image-classification",
        "tags": ["compressbench", loc.method, fmt_name, "verified" if verified else "not-verified"],
        "datasets": [dataset],
        "metrics": ["accuracy"],
        "model-index": [
            {
                "name": f"{loc.experiment}/{loc.variant}",
                "results": [
                    {
                        "task": {"type": "image-classification"},
                        "dataset": {"name": dataset, "type": dataset, "split": "test"},
                        "metrics": metrics,
                    }
                ],
            }
        ],
        "compressbench": {
            "experiment": loc.experiment,
            "variant": loc.variant,
            "method": loc.method,
            "seed": loc.seed,
            "parent": spec_model,
            "format": fmt_name,
            "job_key": loc.job_key,
        },
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def render(
    loc: Any,
    ck: dict[str, Any],
    fmt_name: str,
    written: Written | None,
    mine: list[Measurement],
    provenance: dict[str, Any],
    files: list[tuple[str, int, str]],
) -> str:
    """The whole card (see the module docstring). ``mine``: this export's rows; ``files``: (name, bytes,
    sha256) of the artifact; ``provenance``: this export's run (git, versions, host, command)."""
    rows = loc.rows()
    spec = formats.spec(fmt_name)
    mspec = ck["spec"]
    meta = mspec["meta"]
    cfg = loc.run.get("config_json") or {}
    verified = any(m.metric == "verified" and m.value == 1.0 for m in mine)
    reason = "; ".join(m.condition.get("reason", "") for m in mine if m.metric == "verified" and m.value != 1.0)
    tables, n_seeds = metric_tables(rows)
    parent = f"{mspec['model']}" + (f" (width {mspec.get('width')})" if mspec.get("width", 1.0) != 1.0 else "")
    lab = loc.labels
    budget = (
        "none (fixed size)"
        if not lab.get("budget_kind")
        else (
            f"{lab['budget_kind']} = {lab['budget_target']:g} of the parent (achieved {lab['budget_achieved']:.3g})"
            if lab.get("budget_achieved") is not None
            else f"{lab['budget_kind']} = {lab['budget_target']:g}"
        )
    )
    mrow = {m.metric: m for m in mine}
    out = [front_matter(loc, fmt_name, meta["name"], rows, verified, parent), f"# {loc.variant} — {spec.label}", ""]
    out.append(
        f"**{'Verified' if verified else 'NOT VERIFIED'}**: "
        + (
            f"the {fmt_name} artifact agrees with the in-framework variant on "
            f"{_fmt(mrow['agreement'].value, 'pct')} of the evaluation images (max |Δlogit| "
            f"{mrow['max_abs_dlogit'].value:.3g})."
            if verified
            else f"{reason or 'the export failed'}. Do not ship this file without looking at why."
        )
    )
    out += [
        "",
        "## Model details",
        "",
        f"- **Parent**: `{parent}` trained on `{meta['name']}` ({meta['num_classes']} classes, input "
        f"{meta['channels']}×{meta['size'][0]}×{meta['size'][1]}); experiment `{loc.experiment}`, seed {loc.seed}.",
        f"- **Method**: `{loc.method}`; budget: {budget}.",
        f"- **Steps** (architecture changes the checkpoint records): "
        f"{', '.join(_step(s) for s in ck['steps']) or 'none'}.",
        f"- **Input**: float32 N×{meta['channels']}×{meta['size'][0]}×{meta['size'][1]} in [0, 1]; the "
        f"normalisation (mean {list(meta['mean'])}, std {list(meta['std'])}) is inside the model.",
        f"- **Runtime**: {spec.label} (`{provenance.get('runtime')}`), numerics `{written.dtype if written else '?'}`.",
        "",
        "| file | bytes | sha256 |",
        "|---|---|---|",
    ]
    out += [f"| `{n}` | {b:,} | `{h[:16]}…` |" for n, b, h in files]
    shape = ", ".join(str(v) for v in (1, meta["channels"], *meta["size"]))
    out += [
        "",
        "## How to use",
        "",
        "```python",
        spec.usage.format(shape=shape).strip(),
        "```",
        "",
        f"## Export verification ({fmt_name})",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for m in mine:
        d = _decl("export", m.metric)
        unit = "" if not m.unit or m.unit == "B" else f" {m.unit}"
        where = f" ({_cond(m.condition, ('format', 'runtime', 'dtype'))})" if m.metric in _TIMINGS else ""
        title, fmt = (d.title, d.show.fmt) if d is not None else (m.metric, "g")
        out.append(f"| {_cell(title)} | {_fmt(m.value, fmt)}{unit}{where} |")
    out += ["", "## Runtime latencies (every runtime measured for this variant)", ""]
    out += latency_table(rows)
    out += [
        "",
        "## Evaluation results (the store's rows for this variant)",
        "",
        f"{n_seeds} seed(s){' — mean ± half-width of the 95 % Student-t interval' if n_seeds > 1 else ''}. "
        f"The exported file is seed {loc.seed}.",
        "",
    ]
    out += tables
    out += ["## Caveats", ""]
    out += [f"- {c}" for c in caveats(rows, fmt_name, written, n_seeds, provenance.get("host", {}))] or ["- none"]
    vers = provenance.get("versions", {})
    run_vers = loc.run.get("versions_json") or {}
    out += [
        "",
        "## Provenance",
        "",
        f"- **Export**: `{provenance.get('command', '')}` at {provenance.get('created')} (run "
        f"`{provenance.get('run_id')}`), git `{provenance.get('git') or 'unknown'}`, on "
        f"{provenance.get('host', {}).get('cpu', '?')} ({provenance.get('host', {}).get('logical_cores', '?')} "
        f"logical cores, {provenance.get('threads')} thread(s)).",
        f"- **Packages at export**: {', '.join(f'{k} {v}' for k, v in sorted(vers.items()))}.",
        f"- **Run that made the model**: `{loc.run.get('run_id', '?')}` started {loc.run.get('started_at', '?')}, "
        f"git `{loc.run.get('git_hash') or 'unknown'}`, device {loc.run.get('device', '?')}, "
        f"{', '.join(f'{k} {v}' for k, v in sorted(run_vers.items()))}.",
        f"- **Cache job**: `{loc.job_key}` ({loc.model_path}).",
        "",
        "<details><summary>The run's resolved config</summary>",
        "",
        "```yaml",
        yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None).strip(),
        "```",
        "",
        "</details>",
        "",
    ]
    return "\n".join(out)
