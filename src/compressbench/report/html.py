"""One self-contained HTML page: tables (sortable by a few lines of inline JS; a summary's non-leading
columns behind a "show all columns" checkbox, plain CSS), figures as base64 PNG (or inline SVG),
evaluator images (corruption gallery, disagreement thumbnails), the experiment's config and provenance.
No external resource, readable from ``file://``."""

from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

from ..specs import EvaluatorSpec
from .data import BASELINE, ExperimentData
from .plots import Figure
from .tables import Column, Table

Specs = dict[str, EvaluatorSpec | None]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1900px;padding:1em 2em;
color:#222;line-height:1.4}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #4a6fa5;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:13px;margin:.6em 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#eef2f8;cursor:pointer;user-select:none;position:sticky;top:0;white-space:normal;min-width:3.5em;
max-width:9em;vertical-align:bottom}th sup{color:#4a6fa5;margin-left:1px}th[title]{cursor:help}
td .ci{display:block;font-size:11px;color:#666}td.good{background:#e7f5e9!important}
td.bad{background:#fbe9e7!important}
input.allcols{margin-left:0}label.allcols{font-size:13px;color:#4a6fa5;cursor:pointer}
input.allcols:not(:checked)~.scroll .more{display:none}
th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}
td.t,th.t{text-align:left}td.t{white-space:normal}
tr:nth-child(even) td{background:#fafafa}tr.baseline td{font-weight:600}
.scroll{overflow-x:auto;max-width:100%}.note{color:#555;font-size:13px;margin:.2em 0}
.warn{background:#fff4e0;border-left:4px solid #e0a000;padding:.4em .8em}
figure{display:inline-block;vertical-align:top;margin:.5em 1em .5em 0;max-width:100%}
figure img{max-width:100%;height:auto;border:1px solid #ddd}figcaption{font-size:13px;color:#444;max-width:640px}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:12px}nav a{margin-right:1em}
h2 .store{font-weight:normal;color:#555;font-size:70%}
"""

_JS = """
function sortTable(th){
  const table=th.closest('table'), idx=[...th.parentNode.children].indexOf(th);
  const body=table.tBodies[0], rows=[...body.rows];
  const asc=!th.classList.contains('sorted-asc');
  table.querySelectorAll('th').forEach(h=>h.classList.remove('sorted-asc','sorted-desc'));
  th.classList.add(asc?'sorted-asc':'sorted-desc');
  const key=r=>{const c=r.cells[idx]; const v=c.dataset.v;
    if(v!==undefined&&v!==''){const f=parseFloat(v); if(!isNaN(f)) return f;}
    return c.textContent.trim();};
  rows.sort((a,b)=>{const x=key(a),y=key(b);
    if(x===''&&y!=='')return 1; if(y===''&&x!=='')return -1;
    const r=(typeof x==='number'&&typeof y==='number')?x-y:String(x).localeCompare(String(y));
    return asc?r:-r;});
  rows.forEach(r=>body.appendChild(r));
}
document.addEventListener('DOMContentLoaded',()=>{
  document.querySelectorAll('table.sortable th').forEach(th=>th.addEventListener('click',()=>sortTable(th)));
  document.body.dataset.ready='1';
});
"""

IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in s).strip("-").lower()


def _breakable(x: str) -> str:
    """Text with optional line breaks (``<wbr>``) after ``@ = /`` and a ``.`` before a letter: a long variant
    name wraps there when the table would not fit the window, and stays on one line when it does."""
    return re.sub(r"([@=/](?=.)|\.(?=[A-Za-z]))", r"\1<wbr>", _e(x))


def _cell_html(t: Table, v: str, c: Column, text: str) -> str:
    """A numeric cell: the mean (sort key in ``data-v``), its ± half-width on a line of its own, and for a
    change-vs-parent column a colour saying whether the change is better or worse."""
    m = t.mean.at[v, c.key]
    dv = "" if m is None or (isinstance(m, float) and math.isnan(m)) else repr(float(m))
    value, _, ci = text.partition(" ± ")
    body = _e(value) + (f'<span class="ci">± {_e(ci)}</span>' if ci else "")
    cls = ""
    if c.good and dv:
        half = t.ci.at[v, c.key]
        half = 0.0 if half is None or math.isnan(half) else float(half)
        change = float(m) - c.neutral
        if abs(change) > max(half, 1e-12 * max(1.0, abs(c.neutral))):  # the interval excludes "no change"
            cls = " good" if change * c.good > 0 else " bad"
    return f'<td class="n{cls}" data-v="{dv}">{body}</td>'


def table_html(t: Table, exp_slug: str) -> str:
    """A sortable table. With ``t.lead`` set, the columns after the first ``lead`` numeric ones are hidden
    until "show all columns" is ticked — a checkbox and CSS, no script — and the page reads without them."""
    text_cols = list(t.text.columns)
    hide = t.lead is not None and t.lead < len(t.columns)
    more = [hide and i >= t.lead for i in range(len(t.columns))]  # type: ignore[operator]
    head = "".join(f'<th class="t">{_e(c)}</th>' for c in text_cols)
    for c, x in zip(t.columns, more, strict=True):
        cls = ' class="more"' if x else ""
        tip = f' title="{_e(c.note)}"' if c.note else ""
        head += f"<th{cls}{tip}>{_e(c.label)}{'<sup>?</sup>' if c.note else ''}</th>"
    rows = []
    for v, srow in zip(t.text.index, t.string_rows(), strict=False):
        cells = [f'<td class="t">{_breakable(x)}</td>' for x in srow[: len(text_cols)]]
        for c, s, x in zip(t.columns, srow[len(text_cols) :], more, strict=False):
            cell = _cell_html(t, v, c, s)
            cells.append(cell.replace('<td class="n', '<td class="more n', 1) if x else cell)
        base = "method" in t.text and t.text.at[v, "method"] == BASELINE  # hooks' tables may have no method
        cls = ' class="baseline"' if base else ""
        rows.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in t.notes)
    toggle = ""
    if hide:
        box = f"{exp_slug}-{t.name}-all"
        toggle = (
            f'<input type="checkbox" class="allcols" id="{box}"><label class="allcols" for="{box}">'
            f"Show all {len(t.columns)} columns ({len(t.columns) - t.lead} more)</label>"
        )  # type: ignore[operator]
    return (
        f'<h3 id="{exp_slug}-{t.name}">{_e(t.title)}</h3>{toggle}<div class="scroll">'
        f'<table class="sortable" data-name="{_e(t.name)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>{notes}"
    )


def _img_tag(path: Path, alt: str) -> str:
    mime = IMAGE_TYPES.get(path.suffix.lower())
    if mime is None or not path.is_file():
        return f'<p class="note">({_e(path.name)} not found)</p>'
    if mime == "image/svg+xml":
        svg = path.read_text(encoding="utf-8")
        start = svg.find("<svg")
        return svg[start:] if start >= 0 else ""
    b64 = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{_e(alt)}" src="data:{mime};base64,{b64}">'


def figure_html(f: Figure) -> str:
    path = f.files.get("png") or f.files.get("svg")
    if path is None:
        return ""
    return (
        f'<figure data-name="{_e(f.name)}">{_img_tag(path, f.title)}'
        f"<figcaption><b>{_e(f.title)}</b>{(' ' + _e(f.caption)) if f.caption else ''}</figcaption></figure>"
    )


def artifacts_html(data: ExperimentData, specs: Specs) -> str:
    """Images evaluators wrote (one per variant × evaluator × file name: the first seed's), captioned as
    their evaluator declares (``EvaluatorSpec.captions``)."""
    seen: set[tuple] = set()
    imgs = []
    for a in sorted(data.artifacts, key=lambda a: (a.get("seed") is None, a.get("seed") or 0, a.get("id") or 0)):
        key = (a.get("variant"), a.get("evaluator"), a.get("name"))
        if Path(str(a.get("name", ""))).suffix.lower() in IMAGE_TYPES and key not in seen:
            seen.add(key)
            imgs.append(a)
    if not imgs:
        return ""
    order = {v: i for i, v in enumerate(data.variant_order)}
    imgs.sort(key=lambda a: (str(a.get("evaluator")), order.get(a.get("variant"), 1 << 30)))
    out = []
    for a in imgs:
        title = f"{a.get('evaluator')}: {a.get('name')} — {a.get('variant')} (seed {a.get('seed')})"
        spec = specs.get(str(a.get("evaluator")))
        caption = spec.captions.get(str(a.get("name"))) if spec is not None else None
        if caption:
            title += f": {caption}"
        out.append(
            f'<figure class="artifact" data-name="{_e(a.get("name"))}">{_img_tag(Path(a["path"]), title)}'
            f"<figcaption>{_e(title)}</figcaption></figure>"
        )
    return "<h3>Images written by evaluators</h3>" + "".join(out)


def provenance_html(data: ExperimentData) -> str:
    if not data.runs:
        return '<p class="note">No run recorded in the store (no provenance).</p>'
    head = (
        "<tr><th class='t'>run</th><th class='t'>started</th><th class='t'>git</th><th class='t'>device</th>"
        "<th class='t'>host</th><th class='t'>versions</th></tr>"
    )
    rows = []
    for r in data.runs:
        host = ", ".join(f"{k}={v}" for k, v in (r.get("host_json") or {}).items())
        vers = ", ".join(f"{k} {v}" for k, v in (r.get("versions_json") or {}).items())
        cells = (r.get("run_id"), r.get("started_at"), r.get("git_hash") or "", r.get("device") or "", host, vers)
        rows.append("<tr>" + "".join(f'<td class="t">{_e(x)}</td>' for x in cells) + "</tr>")
    cfg = data.runs[-1].get("config_json") or {}
    cfg_txt = yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None) if cfg else "(no config recorded)"
    return (
        f'<div class="scroll"><table class="prov">{head}{"".join(rows)}</table></div>{superseded_html(data)}'
        f"<details open><summary>Resolved config of the latest run</summary><pre>{_e(cfg_txt)}</pre></details>"
    )


def superseded_html(data: ExperimentData) -> str:
    """The measurements a re-timing replaced (``compressbench remeasure``): which job, by which, when, why."""
    if not data.superseded:
        return ""
    cols = ("when", "variant", "seed", "evaluator", "superseded job", "kept job", "run", "why")
    head = "<tr>" + "".join(f"<th class='t'>{h}</th>" for h in cols) + "</tr>"
    rows = "".join(
        "<tr>"
        + "".join(
            f'<td class="t">{_e(x)}</td>'
            for x in (
                str(s["at"])[:19],
                s["variant"],
                s["seed"],
                s["evaluator"],
                s["job_key"][:12],
                s["by_job_key"][:12],
                s["run_id"],
                s["why"],
            )
        )
        + "</tr>"
        for s in data.superseded
    )
    return (
        f'<h3>Re-timed measurements</h3><p class="note">Replaced by <code>compressbench remeasure</code>: every '
        f"table and the decision use the kept job's rows; the superseded rows stay in the store.</p>"
        f'<div class="scroll"><table class="prov superseded">{head}{rows}</table></div>'
    )


def errors_html(data: ExperimentData) -> str:
    """Failed jobs: root causes listed; jobs skipped because an upstream job failed are counted."""
    if data.errors.empty:
        return ""
    err = data.errors.drop_duplicates(["variant", "seed", "evaluator", "error"])
    upstream = err["error"].astype(str).str.startswith("upstream job failed")
    rows = "".join(
        f'<tr><td class="t">{_e(r.variant)}</td><td>{_e(r.seed)}</td><td class="t">{_e(r.evaluator)}</td>'
        f'<td class="t">{_e(r.error)}</td></tr>'
        for r in err[~upstream].itertuples()
    )
    skipped = int(upstream.sum())
    note = f'<p class="note">{skipped} more job(s) did not run because an upstream job failed.</p>' if skipped else ""
    return (
        '<h3>Failed jobs</h3><div class="warn"><table class="errors"><tr><th class="t">variant</th><th>seed</th>'
        f'<th class="t">evaluator</th><th class="t">error</th></tr>{rows}</table>{note}</div>'
    )


def checks_html(data: ExperimentData, specs: Specs) -> str:
    """Evaluators' self-checks (metrics declared ``check=True``, 1 = passed): a count, and every failure."""
    checks = {
        (ev, m.name): m.title for ev, spec in specs.items() if spec is not None for m in spec.metrics if m.show.check
    }
    df = data.df[[(e, m) in checks for e, m in zip(data.df["evaluator"], data.df["metric"], strict=True)]]
    if df.empty:
        return ""
    failed = df[df["value"] < 1]
    what = ", ".join(dict.fromkeys(checks[e, m] for e, m in zip(df["evaluator"], df["metric"], strict=True)))
    head = f'<p class="note">Evaluator self-checks: {len(df) - len(failed)} of {len(df)} passed ({_e(what)}).</p>'
    if failed.empty:
        return head
    rows = "".join(
        f'<tr><td class="t">{_e(r.variant)}</td><td>{_e(r.seed)}</td><td class="t">{_e(r.evaluator)}'
        f'</td><td class="t">{_e(r.metric)}</td><td class="t">{_e(r.condition)}</td></tr>'
        for r in failed.itertuples()
    )
    return (
        head + '<div class="warn"><b>Failed checks</b> — numbers of these evaluations may be unreliable'
        '<table class="checks"><tr><th class="t">variant</th><th>seed</th><th class="t">evaluator</th>'
        f'<th class="t">check</th><th class="t">condition</th></tr>{rows}</table></div>'
    )


def experiment_html(
    data: ExperimentData, tables: list[Table], figures: list[Figure], files_dir: str, specs: Specs
) -> str:
    s = _slug(f"{data.source}-{data.name}" if data.source else data.name)
    nav = " ".join(f'<a href="#{s}-{t.name}">{_e(t.name)}</a>' for t in tables)
    store = f' <span class="store">({_e(data.source)})</span>' if data.source else ""
    parts = [
        f'<section class="experiment" id="{s}"><h2>Experiment: {_e(data.name)}{store}</h2>',
        f'<p class="note">{len(data.variant_order)} variants · seeds {_e(data.seeds)} · '
        f"files in <code>{_e(files_dir)}</code></p>",
        f"<nav>{nav} <a href='#{s}-figures'>figures</a> <a href='#{s}-provenance'>provenance</a></nav>",
    ]
    if len(data.seeds) <= 1:
        parts.append('<p class="warn">1 seed: no confidence interval.</p>')
    parts += [table_html(t, s) for t in tables]
    parts.append(errors_html(data))
    parts.append(checks_html(data, specs))
    parts.append(f'<h3 id="{s}-figures">Figures</h3>')
    parts += [figure_html(f) for f in figures] or ['<p class="note">No figure: not enough data.</p>']
    parts.append(artifacts_html(data, specs))
    parts.append(f'<h3 id="{s}-provenance">Config and provenance</h3>{provenance_html(data)}</section>')
    return "\n".join(p for p in parts if p)


def comparison_html(table: Table, figures: list[Figure], files_dir: str) -> str:
    """The section comparing experiments across stores (:mod:`.compare`)."""
    return (
        f'<section class="experiment" id="comparison"><h2>Comparison across stores</h2>'
        f'<p class="note">One row per store · experiment · variant; files in <code>{_e(files_dir)}</code>. '
        f"Each experiment follows in its own section.</p>{table_html(table, 'comparison')}"
        + "".join(figure_html(f) for f in figures)
        + "</section>"
    )


def page(sections: list[str], title: str, store_path: str | list[str]) -> str:
    stores = [store_path] if isinstance(store_path, str) else store_path
    where = ("the results store " if len(stores) == 1 else "the results stores ") + ", ".join(
        f"<code>{_e(p)}</code>" for p in stores
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style><script>{_JS}</script></head><body>"
        f"<h1>{_e(title)}</h1><p class='note'>Drawn from {where}. "
        "Accuracies in %; sizes in kB and MB (decimal: 1 kB = 1,000 bytes, 1 MB = 1,000,000 bytes); "
        "hover a header marked ? for what it means; click a header to sort.</p>"
        + "\n".join(sections)
        + "\n<script>window.__report_ok="
        + json.dumps(True)
        + ";</script></body></html>\n"
    )
