"""Verdicts as text: the console table (``compressbench run`` / ``compressbench findings``), Markdown, CSV and
the HTML section at the top of the report. Every row says the difference, its interval, how it was
obtained (seeds or an image bootstrap, with the counts), the raw and Holm-adjusted p-values and the verdict."""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

from .engine import CONTRADICTED, HOLDS, INCONCLUSIVE, FindingsResult, Verdict

COLUMNS = (
    "id",
    "experiment",
    "claim",
    "test",
    "metric",
    "expected",
    "difference",
    "ci",
    "method",
    "p",
    "p_holm",
    "verdict",
    "note",
)
_COLOURS = {HOLDS: "#1b7f3b", CONTRADICTED: "#b3261e", INCONCLUSIVE: "#8a6d00"}


def _num(v: float, fmt: str, signed: bool = True) -> str:
    if v is None or math.isnan(v):
        return "–"
    if fmt == "pct":
        return f"{100 * v:{'+' if signed else ''}.2f}"
    return f"{v:{'+' if signed else ''}.4g}"


def unit(t: Verdict) -> str:
    per = "/step" if t.finding.form == "trend" else ""
    return ("pts" if t.fmt == "pct" else "") + per


def expected(t: Verdict) -> str:
    f = t.finding
    if f.form == "trend":
        return f"{f.expect} with compression"
    s = f.expect.replace("~=", "≈")
    if f.margin is not None:
        s += f" (±{_num(f.margin, t.fmt, signed=False)}{' pts' if t.fmt == 'pct' else ''})"
    return s if f.form == "compare" else s.replace("b", "parent").replace("a", "variant", 1)


def _p(v: float) -> str:
    return "–" if v is None or math.isnan(v) else (f"{v:.2g}" if v >= 0.001 else "<0.001")


def row(t: Verdict) -> dict[str, Any]:
    """One test as strings (the tables' cells)."""
    e = t.estimate
    diff = _num(e.mean, t.fmt) + (f" {unit(t)}" if unit(t) else "") if e is not None else "–"
    ci = f"[{_num(e.lo, t.fmt)}, {_num(e.hi, t.fmt)}]" if e is not None and e.defined else "–"
    note = "; ".join([t.reason] * bool(t.reason) + t.notes)
    return {
        "id": t.fid,
        "experiment": t.experiment,
        "claim": t.claim,
        "test": t.subject,
        "metric": t.finding.metric_label(),
        "expected": expected(t),
        "difference": diff,
        "ci": ci,
        "method": e.describe() if e is not None else "–",
        "p": _p(t.p),
        "p_holm": _p(t.p_holm),
        "verdict": t.verdict,
        "note": note,
    }


def frame(results: list[FindingsResult]) -> pd.DataFrame:
    """Every test as numbers (CSV): the difference, its interval, counts, p-values, verdict."""
    recs = []
    for r in results:
        for t in r.tests:
            e = t.estimate
            recs.append(
                {
                    "file": r.name,
                    "id": t.fid,
                    "experiment": t.experiment,
                    "claim": t.claim,
                    "test": t.subject,
                    "metric": t.finding.metric_label(),
                    "expect": t.finding.expect,
                    "margin": t.finding.margin,
                    "difference": e.mean if e else math.nan,
                    "ci_low": e.lo if e else math.nan,
                    "ci_high": e.hi if e else math.nan,
                    "confidence": r.confidence,
                    "method": e.method if e else "none",
                    "n_seeds": e.n_seeds if e else 0,
                    "n_images": e.n_images if e else 0,
                    "p_claim": t.p_holds,
                    "p_opposite": t.p_against,
                    "p": t.p,
                    "p_holm": t.p_holm,
                    "verdict": t.verdict,
                    "note": "; ".join([t.reason] * bool(t.reason) + t.notes),
                }
            )
    return pd.DataFrame(recs)


def _shown_columns(results: list[FindingsResult]) -> list[str]:
    exps = {t.experiment for r in results for t in r.tests}
    return [c for c in COLUMNS if c != "experiment" or len(exps) > 1]


def _by_finding(r: FindingsResult) -> dict[str, list[Verdict]]:
    by: dict[str, list[Verdict]] = {}
    for t in r.tests:
        by.setdefault(t.fid, []).append(t)
    return by


def _headline(fid: str, ts: list[Verdict]) -> str:
    """A finding's verdict over its tests (holds only if every test holds) and its claim."""
    verdicts = [t.verdict for t in ts]
    overall = HOLDS if all(v == HOLDS for v in verdicts) else CONTRADICTED if CONTRADICTED in verdicts else INCONCLUSIVE
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in (HOLDS, CONTRADICTED, INCONCLUSIVE) if verdicts.count(v))
    return f"{fid} {overall.upper()}: {ts[0].claim} ({counts})"


def summary_lines(results: list[FindingsResult]) -> list[str]:
    """One line per finding: its verdict over its tests."""
    return [_headline(fid, ts) for r in results for fid, ts in _by_finding(r).items()]


def method_note(results: list[FindingsResult]) -> str:
    conf = results[0].confidence if results else 0.95
    n = sum(len(r.tests) for r in results)
    return (
        f"Paired differences (a − b; a trend: the least-squares slope per budget step, least compressed first): "
        f"over seeds, mean and {conf:.0%} Student-t interval; with one seed, a paired bootstrap over the "
        f"evaluation images (percentile interval). p: two-sided (2 × the smaller one-sided p-value, for or "
        f"against the claim; an equivalence ≈ uses two one-sided tests against its margin). A verdict "
        f"holds / is contradicted when the Holm-adjusted p-value over the file's {n} tests is below "
        f"{1 - conf:g}; otherwise it is inconclusive. Accuracy differences are in points."
    )


def to_markdown(results: list[FindingsResult]) -> str:
    cols = _shown_columns(results)
    rows = [row(t) for r in results for t in r.tests]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for x in rows:
        cells = [str(x[c]).replace("|", "\\|") for c in cols]
        cells[cols.index("verdict")] = f"**{x['verdict']}**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", *[f"- {s}" for s in summary_lines(results)], "", method_note(results)]) + "\n"


def to_html(results: list[FindingsResult]) -> str:
    """The report's findings section (first on the page)."""
    if not any(r.tests for r in results):
        return ""
    cols = _shown_columns(results)
    e = html.escape
    head = "".join(f'<th class="t">{e(c)}</th>' for c in cols)
    body = []
    for r in results:
        for t in r.tests:
            x = row(t)
            cells = []
            for c in cols:
                style = f' style="color:{_COLOURS[t.verdict]};font-weight:600"' if c == "verdict" else ""
                cells.append(f'<td class="t"{style}>{e(str(x[c]))}</td>')
            body.append(f'<tr data-verdict="{e(t.verdict)}">' + "".join(cells) + "</tr>")
    lines = "".join(f"<li>{e(s)}</li>" for s in summary_lines(results))
    return (
        '<section class="findings" id="findings"><h2>Findings</h2>'
        f'<ul>{lines}</ul><div class="scroll"><table class="sortable findings" data-name="findings">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        f'<p class="note">{e(method_note(results))}</p></section>'
    )


def console_lines(results: list[FindingsResult]) -> list[str]:
    """Per finding: its overall verdict and claim, then one line per test (readable in a log, no wrapping)."""
    out = []
    for r in results:
        several = len({v.experiment for v in r.tests}) > 1
        for fid, ts in _by_finding(r).items():
            out.append(_headline(fid, ts))
            for t in ts:
                x = row(t)
                where = f"{t.experiment}: " if several else ""
                out.append(
                    f"    {where}{t.subject} on {x['metric']} = {x['difference']}, {r.confidence:.0%} CI "
                    f"{x['ci']}; {x['method']}; expected {x['expected']}; p {x['p']}, Holm {x['p_holm']} "
                    f"-> {t.verdict}" + (f" ({x['note']})" if x["note"] else "")
                )
    return out


def print_console(results: list[FindingsResult]) -> None:
    """The verdicts on stdout: a header, then :func:`console_lines`."""
    if not any(r.tests for r in results):
        return
    n = sum(len(r.tests) for r in results)
    print(f"findings ({n} test{'s' * (n != 1)}; verdicts at {1 - results[0].confidence:g} after Holm):")
    for line in console_lines(results):
        print(line)


__all__ = ["frame", "to_markdown", "to_html", "print_console", "console_lines", "summary_lines", "row", "method_note"]
