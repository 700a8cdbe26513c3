"""Per-image outcomes of an evaluation: which images each measured accuracy counted as correct, kept next
to the job's other artifacts so that a finding on one seed can be tested by a paired bootstrap over the
evaluation images (:mod:`compressbench.findings`).

An evaluator that measures accuracies records, for each such row, its *form*: the row's value is
``const + Σ weight · mean(bits)`` over one or more boolean vectors, each over one image set (the fixed
evaluation subset of a split, identified by its dataset indices). Top-1 is one vector with weight 1; a
mean over corruption cells is the cells' vectors with weight 1/K; a domain gap is the source vector minus
the target vector. Resampling the images of each set (the same draw for every variant: the sets are
identified by their indices) and re-evaluating the forms gives bootstrap replicates of every row.

The file, ``outcomes.npz`` in the job folder (read with ``allow_pickle=False``: it names no code)::

    meta       JSON: {"format": 1, "sets": [{"name", "n", "digest"}], "rows": [{"metric", "condition",
               "terms": [[set, vector, weight], ...], "const"}]}
    index_<s>  int64 dataset indices of set s (the evaluation subset, in evaluation order)
    bits_<s>   uint8: set s's boolean vectors, one per row of the matrix, packed 8 images a byte

It is an *additional* artifact: writing it changes no number and no cache key, so caches from before it
existed stay valid (their evaluations simply have no outcomes). :meth:`OutcomeRecorder.save` checks every
form against its row's value before writing; :func:`load_outcomes` checks the file against the job's
``result.json`` checksum and its own digests before anything is used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

log = logging.getLogger(__name__)

FILE = "outcomes.npz"
FORMAT = 1
_TOL = 1e-6  # a form must reproduce its row's value to this (values are means of 0/1 over ≥ 1 image)


class OutcomesError(ValueError):
    """An outcomes file that cannot be used (damaged, changed on disk, or not matching its rows)."""


def condition_key(metric: str, condition: dict[str, Any] | None) -> tuple[str, str]:
    """How a row is found in an outcomes file: its metric and its condition, canonically (sorted keys)."""
    cond = condition or {}
    return metric, ",".join(f"{k}={cond[k]}" for k in sorted(cond))


def _digest(index: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(index, dtype=np.int64).tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class Term:
    """One boolean vector of a recorder: (image set, position in that set's matrix)."""

    set: int
    k: int


class OutcomeRecorder:
    """Collects an evaluation's per-image outcomes. ``image_set(name, index)`` once per evaluated image set,
    ``vector(set, correct)`` per boolean outcome, ``row(metric, value, condition, terms)`` per measurement
    it explains (``mean`` does both for a plain accuracy); ``save(folder)`` writes ``outcomes.npz``."""

    def __init__(self) -> None:
        self._sets: list[tuple[str, np.ndarray]] = []
        self._bits: list[list[np.ndarray]] = []
        self._rows: list[dict[str, Any]] = []

    def image_set(self, name: str, index: Any) -> int:
        """Register the images an evaluation ran on (their dataset indices, in evaluation order)."""
        idx = np.asarray(index.cpu() if hasattr(index, "cpu") else index, dtype=np.int64).reshape(-1)
        for i, (n, known) in enumerate(self._sets):
            if n == name and np.array_equal(known, idx):
                return i
        self._sets.append((name, idx))
        self._bits.append([])
        return len(self._sets) - 1

    def vector(self, s: int, correct: Any) -> Term:
        """One boolean outcome per image of set ``s`` (True: counted as correct)."""
        v = np.asarray(correct.cpu() if hasattr(correct, "cpu") else correct).astype(bool).reshape(-1)
        if len(v) != len(self._sets[s][1]):
            raise ValueError(f"{len(v)} outcomes for an image set of {len(self._sets[s][1])} images")
        self._bits[s].append(v)
        return Term(s, len(self._bits[s]) - 1)

    def row(
        self,
        metric: str,
        value: float,
        condition: dict[str, Any] | None,
        terms: Iterable[tuple[Term, float]],
        const: float = 0.0,
    ) -> None:
        """Say that the row (``metric``, ``condition``) of value ``value`` is ``const + Σ w · mean(term)``."""
        self._rows.append(
            {
                "metric": metric,
                "condition": condition or {},
                "value": float(value),
                "terms": [[t.set, t.k, float(w)] for t, w in terms],
                "const": float(const),
            }
        )

    def mean(self, metric: str, value: float, condition: dict[str, Any] | None, s: int, correct: Any) -> Term:
        """A plain accuracy: the row is the mean of ``correct`` over set ``s``."""
        t = self.vector(s, correct)
        self.row(metric, value, condition, [(t, 1.0)])
        return t

    def _value(self, r: dict[str, Any]) -> float:
        return r["const"] + sum(w * float(self._bits[s][k].mean()) for s, k, w in r["terms"])

    def save(self, folder: Path) -> Path | None:
        """Write ``outcomes.npz`` (None when nothing was recorded). A form that does not reproduce its
        row's value is a bug in the evaluator: it is left out with a warning, never written. Writing never
        fails the evaluation (the file is extra evidence, not a measurement): a failure is a warning."""
        try:
            return self._save(folder)
        except Exception as e:  # noqa: BLE001
            log.warning("outcomes not written to %s: %s", folder, e)
            return None

    def _save(self, folder: Path) -> Path | None:
        rows = []
        for r in self._rows:
            got = self._value(r)
            if not math.isclose(got, r["value"], rel_tol=0, abs_tol=_TOL):
                log.warning(
                    "outcomes: %s %s is %.6g but its per-image outcomes give %.6g; not recorded",
                    r["metric"],
                    r["condition"],
                    r["value"],
                    got,
                )
                continue
            rows.append({k: v for k, v in r.items() if k != "value"})
        if not rows:
            return None
        meta = {
            "format": FORMAT,
            "sets": [{"name": n, "n": int(len(idx)), "digest": _digest(idx)} for n, idx in self._sets],
            "rows": rows,
        }
        arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(meta, sort_keys=True, default=str))}
        for s, (_, idx) in enumerate(self._sets):
            arrays[f"index_{s}"] = idx
            vecs = self._bits[s]
            mat = np.stack(vecs) if vecs else np.zeros((0, len(idx)), dtype=bool)
            arrays[f"bits_{s}"] = np.packbits(mat, axis=1)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / FILE
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)
        return path


@dataclass
class ImageSetOutcomes:
    """One image set of a file: its name, dataset indices, digest, and boolean matrix (vectors × images)."""

    name: str
    index: np.ndarray
    digest: str
    bits: np.ndarray

    @property
    def key(self) -> tuple[str, str]:
        """Identity across files: the same name and the same images."""
        return self.name, self.digest


@dataclass
class Outcomes:
    """A loaded outcomes file: image sets and, per (metric, condition), the row's form."""

    sets: list[ImageSetOutcomes]
    forms: dict[tuple[str, str], tuple[float, list[tuple[int, int, float]]]] = field(default_factory=dict)

    def value(self, key: tuple[str, str]) -> float:
        const, terms = self.forms[key]
        return const + sum(w * float(self.sets[s].bits[k].mean()) for s, k, w in terms)


def load_outcomes(path: Path) -> Outcomes:
    """Read and verify an outcomes file: the checksum its job's ``result.json`` recorded (when the file sits
    in a job folder), then its own structure and digests. Raises :class:`OutcomesError` (one line)."""
    from .execute.cache import file_sha256

    path = Path(path)
    record = path.parent / "result.json"
    if record.is_file():
        try:
            want = (json.loads(record.read_text()).get("files") or {}).get(path.name, {}).get("sha256")
        except (OSError, ValueError, AttributeError) as e:
            raise OutcomesError(f"{record}: unreadable ({type(e).__name__})") from None
        if want is not None and file_sha256(path) != want:
            raise OutcomesError(f"{path} does not match the sha256 its job recorded (changed on disk)")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != FORMAT:
                raise OutcomesError(f"{path}: outcomes format {meta.get('format')!r}, this version reads {FORMAT}")
            sets = []
            for s, info in enumerate(meta["sets"]):
                idx = np.asarray(z[f"index_{s}"], dtype=np.int64)
                n = int(info["n"])
                if len(idx) != n or _digest(idx) != info["digest"]:
                    raise OutcomesError(f"{path}: image set {s} does not match its digest")
                packed = z[f"bits_{s}"]
                bits = (
                    np.unpackbits(packed, axis=1, count=n).astype(bool)
                    if packed.size
                    else np.zeros((len(packed), n), dtype=bool)
                )
                sets.append(ImageSetOutcomes(str(info["name"]), idx, str(info["digest"]), bits))
    except OutcomesError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise OutcomesError(f"{path}: not a readable outcomes file ({type(e).__name__}: {str(e)[:100]})") from None
    out = Outcomes(sets)
    for r in meta["rows"]:
        terms = [(int(s), int(k), float(w)) for s, k, w in r["terms"]]
        if any(not (0 <= s < len(sets) and 0 <= k < len(sets[s].bits)) for s, k, _ in terms):
            raise OutcomesError(f"{path}: a row refers to an outcome vector the file does not hold")
        out.forms[condition_key(r["metric"], r["condition"])] = (float(r["const"]), terms)
    return out


def eval_set_name(domain: str | None = None, source: str | None = None) -> str:
    """The name of an evaluated image set: ``test`` for the (source's) test split, ``domain:<name>`` for a
    target domain's evaluation images (with their indices, the identity the bootstrap pairs on)."""
    return "test" if domain is None or domain == source else f"domain:{domain}"


__all__ = [
    "FILE",
    "OutcomeRecorder",
    "Outcomes",
    "OutcomesError",
    "ImageSetOutcomes",
    "Term",
    "load_outcomes",
    "condition_key",
    "eval_set_name",
]
