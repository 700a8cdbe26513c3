"""Find a variant's model from a results store: its rows, the job that made it, the run's cache and data.

The store's ``compress`` rows of (experiment, variant, seed) carry the key of the job that saved the
model (a compress job, or the baseline's train job); the run that wrote them recorded its config, whose
``cache_dir`` holds ``jobs/<key>/model.pt``. The job folder is verified against its ``result.json``
checksums (:func:`compressbench.execute.cache.inspect_cached`) before anything is loaded, and the model is
read with ``checkpoint.load_model`` (weights only). The evaluation images are the run's: its config is
validated again and the dataset loaded from the cache (never downloaded). A config that names code
(``"pkg.mod:obj"``) is only validated with ``trust`` — validating imports it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..registry import is_object_path
from ..store import ResultStore


class ExportError(UserError):
    """A variant that cannot be found or exported (one line; the CLI exits 2)."""


@dataclass
class Located:
    """A variant's model and where it came from."""

    store: ResultStore
    experiment: str
    variant: str
    seed: int | None
    method: str
    job_key: str
    model_path: Path
    cache: Path
    run: dict[str, Any]
    labels: dict[str, Any] = field(default_factory=dict)  # budget kind / target / achieved of its rows

    def rows(self) -> list[dict[str, Any]]:
        """Every row of this variant (all seeds and evaluators) in the store."""
        return self.store.rows(self.experiment, variant=self.variant)

    def experiment_config(self, trust: bool = False) -> Any:
        """The run's config, validated again (a :class:`~compressbench.config.ResolvedExperiment`)."""
        from ..validate import validate

        cfg = self.run.get("config_json") or {}
        check_code_trust(cfg, trust, self.store.path, "validating it again", ExportError)
        try:
            return validate(cfg)
        except UserError as e:
            raise ExportError(f"the config of run {self.run.get('run_id')} no longer validates here: {e}") from None

    def dataset(self, trust: bool = False) -> tuple[Any, int | None]:
        """``(DatasetBundle, eval_subset)`` of the run, loaded from the cache (no download)."""
        from ..runner import get_dataset

        exp = self.experiment_config(trust)
        parts = {p.name: p.dataset for p in exp.parts}
        if self.experiment not in parts:
            raise ExportError(
                f"experiment '{self.experiment}' is not one of its run's experiments ({', '.join(parts)})"
            )
        ds = parts[self.experiment]
        return get_dataset(ds.model_copy(update={"download": False}), self.cache), exp.dataset.eval_subset


def check_code_trust(
    cfg: dict[str, Any], trust: bool, store: Any, doing: str, error: type[UserError] = ExportError
) -> None:
    """Refuse (``error``) to re-read a stored run config that names code (``package.module:object``) unless the
    caller trusts the store: ``doing`` it would import that code."""
    named = sorted(_object_paths(cfg))
    if named and not trust:
        raise error(
            f"the run's config names code ({', '.join(named[:3])}); {doing} imports that code: pass "
            f"--trust-code (trust=True) if you trust the store {store}"
        )


def _object_paths(obj: Any) -> set[str]:
    if isinstance(obj, str):
        return {obj} if is_object_path(obj) else set()
    if isinstance(obj, dict):
        return set().union(*(_object_paths(v) for v in obj.values())) if obj else set()
    if isinstance(obj, (list, tuple)):
        return set().union(*(_object_paths(v) for v in obj)) if obj else set()
    return set()


def _pick(what: str, value: Any, known: list[Any], flag: str) -> Any:
    if value is not None:
        if value not in known:
            names = [str(k) for k in known]
            near = [k for k in names if str(value) in k][:1] or difflib.get_close_matches(str(value), names, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise ExportError(
                f"{flag}: no {what} '{value}' in the store{hint} (known: {', '.join(str(k) for k in known) or 'none'})"
            )
        return value
    if len(known) == 1:
        return known[0]
    raise ExportError(
        f"the store has {len(known)} {what}s ({', '.join(str(k) for k in known)}): choose one with {flag}"
    )


def locate(
    store_path: str | Path,
    variant: str,
    *,
    seed: int | None = None,
    experiment: str | None = None,
    cache: str | Path | None = None,
) -> Located:
    """The model of ``variant`` (seed ``seed``; needed when the store has several) of ``experiment`` (needed
    when the store has several) in the cache of the run that made it (or ``cache``). One-line
    :class:`ExportError` for anything missing."""
    from ..execute.cache import inspect_cached

    p = Path(store_path)
    if not p.is_file():
        raise ExportError(f"{p}: no results store there")
    store = ResultStore(p)
    exp = _pick("experiment", experiment, store.experiments(), "--experiment")
    made = [r for r in store.rows(exp, evaluator="compress") if r["error"] is None]
    variant = _pick("variant", variant, list(dict.fromkeys(r["variant"] for r in made)), "--variant")
    mine = [r for r in made if r["variant"] == variant]
    seed = _pick("seed", seed, sorted({r["seed"] for r in mine}, key=lambda s: (s is None, s)), "--seed")
    row = [r for r in mine if r["seed"] == seed][-1]  # the latest job that made it (a re-run with new code)
    runs = {r["run_id"]: r for r in store.runs()}
    run = runs.get(row["run_id"]) or {}
    cache_dir = Path(cache) if cache is not None else Path((run.get("config_json") or {}).get("cache_dir") or "")
    if cache is None and not run:
        raise ExportError(
            f"the store has no record of the run that made '{variant}' (run {row['run_id']}): give its "
            f"cache folder with --cache"
        )
    res, why = inspect_cached(cache_dir, row["job_key"])
    if res is None:
        state = f"is damaged ({why})" if why else "is not there"
        raise ExportError(
            f"the model of '{variant}' (job {row['job_key']}) {state} in the cache {cache_dir}: give the "
            f"cache folder the run used with --cache, or rerun `compressbench run` to rebuild it"
        )
    return Located(
        store,
        exp,
        variant,
        seed,
        row["method"],
        row["job_key"],
        res.dir / "model.pt",
        cache_dir,
        run,
        {k: row[k] for k in ("budget_kind", "budget_target", "budget_achieved")},
    )
