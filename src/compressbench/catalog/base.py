"""The base classes of every component's parameter schema, torch-free (``compressbench list`` and ``validate``
read them without importing torch); re-exported where plug-ins import them (``compressbench.interfaces``,
``compressbench.data.base``, ``compressbench.adapt``)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..config.schema import AdaptConfig
from ..registry import adapt_losses


class Params(BaseModel):
    """Base class of every method's / evaluator's parameter schema. ``KEY_OPTIONAL``: fields added after job
    keys existed, in a key only when set (:meth:`key_dump`), so that adding them re-runs nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    KEY_OPTIONAL: ClassVar[tuple[str, ...]] = ()

    def key_dump(self) -> dict[str, Any]:
        """``model_dump(mode="json")`` without the ``KEY_OPTIONAL`` fields that are at their defaults."""
        d = self.model_dump(mode="json")
        for f in self.KEY_OPTIONAL:
            if getattr(self, f) == type(self).model_fields[f].get_default(call_default_factory=True):
                d.pop(f, None)
        return d


class FinetuneParams(Params):
    """Fine-tuning after compression: the experiment's training recipe with these overrides."""

    epochs: float = Field(1.0, ge=0, le=10_000)
    lr: float | None = Field(None, gt=0)  # None -> 0.1 × the baseline recipe's lr
    optimizer: Literal["sgd", "adam", "adamw"] | None = None
    schedule: Literal["cosine", "onecycle", "step", "constant"] = "cosine"


class DatasetOptions(BaseModel):
    """Base class of a loader's ``dataset.options`` schema (registered as the dataset spec's ``params``).

    Same contract as ``interfaces.Params`` (unknown keys are errors, values frozen, no inf/nan); it
    lives here because ``interfaces`` imports this module. A loader takes exactly its schema's
    fields as keyword arguments: ``fn(root, cache, download, **options)``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class AdaptParams(AdaptConfig):
    """:class:`~compressbench.config.schema.AdaptConfig` (``{method: coral, weight: λ}``) with its loss looked
    up in ``registry.adapt_losses`` when validated: the form methods' params use (``train.adapt`` is checked
    the same way when the experiment is resolved)."""

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        adapt_losses.resolve(v)  # unknown -> "unknown adaptation loss ...; did you mean" (a ValueError)
        return v
