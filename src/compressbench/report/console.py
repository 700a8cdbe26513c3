"""What ``compressbench run`` prints when it finishes: the study tables the experiment file declares
(``report.tables``, in the study's shape), else the standard run table (a column per metric declared
with ``console=``). Drawn from the store, like the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..store import ResultStore
from .data import load_experiment
from .layout import study_tables
from .summary import console_summary


@dataclass
class ConsoleTable:
    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def run_tables(store_path: str | Path, experiment: str) -> list[ConsoleTable]:
    """The tables to print after a run of ``experiment`` (none when it has no rows yet)."""
    try:
        data = load_experiment(ResultStore(store_path), experiment)
    except ValueError:  # no rows at all
        return []
    studies = study_tables(data)
    if studies:
        return [ConsoleTable(f"{t.title} ({experiment})", t.header(), t.string_rows(), t.notes) for t in studies]
    headers, rows, notes = console_summary(data)
    return [ConsoleTable(f"{experiment} (mean over seeds)", headers, rows, notes)]


def print_run_tables(store_path: str | Path, experiment: str) -> None:
    """Print :func:`run_tables` with rich (plain text when stdout is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    term = Console()
    for ct in run_tables(store_path, experiment):
        widths = [max([len(c), *(len(r[i]) for r in ct.rows)]) for i, c in enumerate(ct.headers)]
        needed = sum(w + 3 for w in widths) + 1
        # a log file (not a terminal) gets the table at its natural width: a wide study table squeezed into
        # 100 columns would show its labels and no numbers; a terminal folds the labels, never the numbers
        console = Console(stderr=False, width=max(100, term.width) if term.is_terminal else max(100, needed))
        t = Table(title=ct.title)
        for i, c in enumerate(ct.headers):
            text = i == 0 or c in ("group", "row", "variant", "method", "budget", "achieved")
            t.add_column(
                c,
                justify="left" if text else "right",
                no_wrap=not text,
                overflow="fold",
                min_width=12 if i == 0 else (None if text else min(widths[i], 14)),
            )
        for row in ct.rows:
            t.add_row(*row)
        console.print(t)
        for note in ct.notes:
            console.print(note, highlight=False, markup=False)
