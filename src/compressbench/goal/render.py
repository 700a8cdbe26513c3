"""A decision as text (console, Markdown), as an HTML section for the top of the report, and its Pareto figure.

Every number says what it is: the drop with its interval and how the interval was obtained (seeds or an image
bootstrap), the one-sided bound checked against the tolerance, the objective's value, unit and runtime, the gain
over the parent. "No variant meets the goal" is said plainly, with the candidates that came closest.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from ..report.noise import noise_note
from .assess import UNKNOWN, Candidate, Drop
from .decision import Decision, Pick


def fmt_value(v: float, unit: str) -> str:
    """An objective's value with its unit (bytes in kB / MB, ms, FLOPs in M / G)."""
    if v is None or math.isnan(v):
        return "–"
    if unit == "B":
        return f"{v / 1e6:.2f} MB" if v >= 1e6 else f"{v / 1e3:.1f} kB"
    if unit == "ms":
        return f"{v:.3g} ms"
    if unit.startswith("FLOP"):
        return f"{v / 1e9:.3g} GFLOPs" if v >= 1e9 else f"{v / 1e6:.3g} MFLOPs"
    if unit == "params":
        return f"{v:,.0f} params"
    return f"{v:.4g} {unit}".strip()


def gain_text(p: Pick) -> str:
    g = p.gain
    if math.isnan(g):
        return ""
    word = "faster" if p.unit == "ms" else "smaller"
    return f"{g:.2f}× {word}" if g >= 1 else f"{1 / g:.2f}× {'slower' if p.unit == 'ms' else 'larger'}"


def drop_text(d: Drop) -> str:
    """``drop 0.62 pts [95 % CI 0.21, 1.05]; bound 0.97 ≤ 1 pt (1 seed, 10,000 images (paired bootstrap))``."""
    if d.status == UNKNOWN:
        return f"{d.key}: unknown ({d.reason})"
    e = d.estimate
    ci = f" [{round(100 * e.confidence)} % CI {d.amount(e.lo)}, {d.amount(e.hi)}]" if e.defined else ""
    cmp = "≤" if d.status == "holds" else ">"
    over = f", over by {d.amount(d.excess)}" if d.status != "holds" else ""
    return f"{d.key}: drop {d.amount(e.mean)}{ci}; bound {d.amount(d.bound)} {cmp} {d.limit_text()}{over} ({d.basis})"


def goal_line(dec: Decision) -> str:
    g = dec.assessment.goal
    tol = g.tolerances()
    first = dec.assessment.candidates[0].drops if dec.assessment.candidates else {}
    cons = ", ".join(f"{k} drop ≤ {first[k].limit_text() if k in first else tol[k].label()}" for k in tol)
    obj = dec.assessment.objectives.get(dec.objective)
    what = f" ({obj.label}, {obj.evaluator})" if obj is not None else ""
    return (
        f"goal for '{dec.experiment}': minimize {dec.objective}{what} subject to {cons} "
        f"(one-sided {round(100 * g.confidence)} % bounds)"
    )


def _cand_head(c: Candidate, p: Pick) -> str:
    return (
        f"{c.variant} — {fmt_value(p.value, p.unit)} vs {fmt_value(p.parent, p.unit)} for the parent"
        f"{': ' + gain_text(p) if gain_text(p) else ''}"
    )


def lines(dec: Decision, max_rejected: int = 50) -> list[str]:
    """The decision as plain text lines (the console; Markdown wraps them)."""
    out = [goal_line(dec)]
    rec = dec.recommended
    if rec.candidate is not None:
        c = rec.candidate
        out.append(
            f"RECOMMENDED: {_cand_head(c, rec)}" + (" (noisy timing, accepted)" if dec.objective in c.noisy else "")
        )
        out += [f"  {drop_text(d)}" for d in c.drops.values()]
    else:
        out.append("NO VARIANT MEETS THE GOAL" + (f" ({len(dec.assessment.candidates)} candidates)"))
        for c in dec.closest:
            out.append(f"  closest: {c.variant}: " + "; ".join(drop_text(d) for d in c.broken))
    if rec.left_noisy:
        out.append(
            "  left out (noisy timing; --accept-noisy to use): "
            + ", ".join(
                f"{c.variant} {fmt_value(c.objectives[rec.objective], rec.unit)} ({c.noisy[rec.objective].describe()})"
                for c in rec.left_noisy
            )
        )
    others = [p for name, p in dec.per_objective.items() if name != dec.objective]
    if others:
        out.append("best qualifying variant per objective:")
        for p in others:
            who = p.candidate.variant if p.candidate is not None else "none qualifies"
            out.append(f"  {p.objective:<22} {who:<40} {fmt_value(p.value, p.unit):>14}  {gain_text(p)}")
    if dec.rejected:
        out.append(f"rejected ({len(dec.rejected)}):")
        for c in dec.rejected[:max_rejected]:
            out.append(f"  {c.variant}: " + "; ".join(drop_text(d) for d in c.broken))
        if len(dec.rejected) > max_rejected:
            out.append(f"  ... and {len(dec.rejected) - max_rejected} more")
    for v in dec.violations:
        out.append(f"monotonicity violated in {v.family}: {v.detail}")
    note = noise_note(dec.assessment.timings)
    if note:
        out.append(note)
    out += [f"note: {n}" for n in dec.notes]
    return out


def print_decision(decisions: list[Decision]) -> None:
    """What ``compressbench run`` / ``search`` / ``recommend`` print."""
    for dec in decisions:
        print("\n".join(lines(dec)))


def to_markdown(decisions: list[Decision]) -> str:
    out = []
    for dec in decisions:
        out.append(f"### Decision: {dec.experiment}\n")
        out += [f"    {ln}" for ln in lines(dec)]
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------- HTML
def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _drop_cells(d: Drop | None) -> str:
    if d is None:
        return '<td class="t">–</td>'
    cls = {"holds": "good", "broken": "bad"}.get(d.status, "")
    return f'<td class="t {cls}">{_e(drop_text(d).split(": ", 1)[1])}</td>'


def to_html(decisions: list[Decision], figures: dict[str, str] | None = None) -> str:
    """The report's decision section (first on the page). ``figures``: experiment -> an ``<img>`` / inline SVG."""
    parts = ['<section id="decision"><h2>Decision</h2>']
    for dec in decisions:
        rec = dec.recommended
        parts.append(f'<p class="note">{_e(goal_line(dec))}</p>')
        if rec.candidate is not None:
            c = rec.candidate
            parts.append(
                f'<div class="decision ok"><b>Recommended: {_e(c.variant)}</b> — {_e(rec.label)} '
                f"{_e(fmt_value(rec.value, rec.unit))} vs {_e(fmt_value(rec.parent, rec.unit))} for the "
                f"parent{': <b>' + _e(gain_text(rec)) + '</b>' if gain_text(rec) else ''}<ul>"
                + "".join(f"<li>{_e(drop_text(d))}</li>" for d in c.drops.values())
                + "</ul></div>"
            )
        else:
            parts.append(
                '<div class="decision none"><b>No variant meets the goal.</b> Closest:<ul>'
                + "".join(
                    f"<li>{_e(c.variant)}: {_e('; '.join(drop_text(d) for d in c.broken))}</li>" for c in dec.closest
                )
                + "</ul></div>"
            )
        if rec.left_noisy:
            parts.append(
                '<p class="warn">Left out (noisy timing; <code>--accept-noisy</code> to use): '
                + _e(", ".join(f"{c.variant} ({c.noisy[rec.objective].describe()})" for c in rec.left_noisy))
                + "</p>"
            )
        parts.append(_per_objective_html(dec))
        if figures and dec.experiment in figures:
            parts.append(figures[dec.experiment])
        parts.append(_candidates_html(dec))
        for v in dec.violations:
            parts.append(f'<p class="warn">Monotonicity violated in {_e(v.family)}: {_e(v.detail)}</p>')
        note = noise_note(dec.assessment.timings)
        if note:
            parts.append(f'<p class="warn">{_e(note)}</p>')
        parts += [f'<p class="note">{_e(n)}</p>' for n in dec.notes]
    parts.append("</section>")
    return "\n".join(parts)


def _per_objective_html(dec: Decision) -> str:
    rows = []
    for name, p in dec.per_objective.items():
        who = _e(p.candidate.variant) if p.candidate is not None else "<i>none qualifies</i>"
        star = " ★" if name == dec.objective else ""
        rows.append(
            f'<tr><td class="t">{_e(name)}{star}</td><td class="t">{_e(p.label)}</td><td class="t">{who}</td>'
            f"<td>{_e(fmt_value(p.value, p.unit))}</td><td>{_e(fmt_value(p.parent, p.unit))}</td>"
            f"<td>{_e(gain_text(p))}</td></tr>"
        )
    return (
        '<table class="decision-objectives"><thead><tr><th class="t">objective</th><th class="t">measured as</th>'
        '<th class="t">best qualifying variant</th><th>value</th><th>parent</th><th>gain</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _candidates_html(dec: Decision) -> str:
    keys = list(dec.assessment.goal.constraints)
    obj = dec.objective
    unit = dec.recommended.unit
    head = "".join(f'<th class="t">{_e(k)} drop (≤ {_e(dec.assessment.goal.constraints[k])})</th>' for k in keys)
    rows = []
    order = dec.qualifying + dec.rejected
    for c in order:
        status = "meets the goal" if c.meets else "rejected"
        if c is dec.recommended.candidate:
            status = "recommended"
        noisy = f' <span class="warn">noisy: {_e(c.noisy[obj].describe())}</span>' if obj in c.noisy else ""
        rows.append(
            f'<tr><td class="t">{_e(c.variant)}</td><td class="t">{status}</td>'
            f"<td>{_e(fmt_value(c.objectives.get(obj, math.nan), unit))}{noisy}</td>"
            + "".join(_drop_cells(c.drops.get(k)) for k in keys)
            + "</tr>"
        )
    return (
        f"<details open><summary>Every candidate ({len(order)}): {len(dec.qualifying)} meet the goal, "
        f'{len(dec.rejected)} rejected</summary><div class="scroll"><table class="sortable decision-candidates">'
        f'<thead><tr><th class="t">variant</th><th class="t">verdict</th><th>{_e(obj)}</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div></details>"
    )


# ---------------------------------------------------------------- figure
def pareto_figure(dec: Decision, out: Path, formats: set[str]) -> list[Path]:
    """One panel per constraint metric: the drop (with its interval) against the objective for every candidate,
    the feasible region (drop within the tolerance) shaded, the Pareto front drawn, the recommendation ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = dec.assessment
    keys = list(a.goal.constraints)
    obj = dec.objective
    cands = [c for c in a.candidates if obj in c.objectives]
    if not cands or not keys:
        return []
    fig, axes = plt.subplots(1, len(keys), figsize=(5.2 * len(keys), 4.2), squeeze=False)
    scale = {"pct": 100.0}
    for ax, key in zip(axes[0], keys, strict=True):
        pts = [(c, c.drops[key]) for c in cands if key in c.drops and c.drops[key].estimate is not None]
        if not pts:
            ax.set_visible(False)
            continue
        fmt = pts[0][1].fmt
        k = scale.get(fmt, 1.0)
        limit = pts[0][1].limit * k
        xs = [c.objectives[obj] for c, _ in pts]
        lo_x, hi_x = min(xs + [dec.recommended.parent]) * 0.8, max(xs + [dec.recommended.parent]) * 1.25
        if not math.isnan(limit):
            ax.axhspan(
                min(-1e-9, min(d.estimate.mean * k for _, d in pts)) - 1,
                limit,
                color="#e7f5e9",
                zorder=0,
                label=f"feasible: drop ≤ {pts[0][1].limit_text()}",
            )
            ax.axhline(limit, color="#1b7f3b", lw=1, ls="--")
        for c, d in pts:
            e = d.estimate
            colour = "#1b7f3b" if c.meets else "#b3261e"
            y = e.mean * k
            yerr = [[y - e.lo * k], [e.hi * k - y]] if e.defined else None
            ax.errorbar(c.objectives[obj], y, yerr=yerr, fmt="o", color=colour, ms=5, capsize=2, alpha=0.85)
        front = [v for v in dec.pareto.get(key, [])]
        fpts = sorted(
            [(c.objectives[obj], d.estimate.mean * k) for c, d in pts if c.variant in front]
            + ([(dec.recommended.parent, 0.0)] if "baseline" in front else [])
        )
        if fpts:
            ax.step(
                [p[0] for p in fpts], [p[1] for p in fpts], where="post", color="#4a6fa5", lw=1.2, label="Pareto front"
            )
        if dec.recommended.candidate is not None:
            rc = dec.recommended.candidate
            if key in rc.drops and rc.drops[key].estimate is not None:
                ax.plot(
                    rc.objectives[obj],
                    rc.drops[key].estimate.mean * k,
                    "o",
                    ms=14,
                    mfc="none",
                    mec="#222",
                    label=f"recommended: {rc.variant}",
                )
        if not math.isnan(dec.recommended.parent):
            ax.plot(dec.recommended.parent, 0, "k*", ms=10, label="parent")
        if lo_x > 0:
            ax.set_xscale("log")
            ax.set_xlim(lo_x, hi_x)
        ax.set_xlabel(f"{obj} ({dec.recommended.unit})" if dec.recommended.unit else obj)
        ax.set_ylabel(f"drop of {key}" + (" (points)" if fmt == "pct" else ""))
        ax.set_title(f"{key} vs {obj}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    sep = ", " if len(keys) > 1 else "\n"  # one panel: two lines (the title must fit its width)
    fig.suptitle(
        f"{a.experiment}: green meet every constraint, red do not{sep}bars: "
        f"{round(100 * a.goal.confidence)} % intervals",
        fontsize=9,
    )
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in sorted(formats & {"png", "svg"}):
        p = out / f"decision_pareto.{f}"
        fig.savefig(p, dpi=110)
        paths.append(p)
    plt.close(fig)
    return paths


__all__ = [
    "lines",
    "print_decision",
    "to_markdown",
    "to_html",
    "pareto_figure",
    "drop_text",
    "fmt_value",
    "gain_text",
    "goal_line",
]
