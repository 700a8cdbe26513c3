"""The built-in executors, declared torch-free: the Ray executor's options schema and what ``compressbench list``
shows. The executors register in :mod:`compressbench.execute` (imported on first use)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..registry import executors

_ADDRESS = re.compile(r"auto|(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class JobResources(_Strict):
    """What one job asks Ray for. ``num_cpus`` also sets the job's torch threads (its floor, at least 1);
    unset, it is the experiment's ``threads`` (or 1). ``num_gpus``: a fraction (0.25) shares a GPU between
    jobs; above 1 it must be whole. ``memory``: bytes Ray reserves for the job (a scheduling hint)."""

    num_cpus: float | None = Field(None, gt=0, le=4096)
    num_gpus: float = Field(0.0, ge=0, le=1024)
    memory: int | None = Field(None, gt=0)

    @field_validator("num_gpus")
    @classmethod
    def _whole_above_one(cls, v: float) -> float:
        if v > 1 and v != int(v):
            raise ValueError(f"above 1, a GPU count must be whole (Ray's rule); got {v}")
        return v


class ResourceTable(_Strict):
    """Resources per job kind; ``evaluators``: per evaluator, over ``evaluate`` (fields given there win)."""

    train: JobResources = JobResources()
    compress: JobResources = JobResources()
    evaluate: JobResources = JobResources()
    evaluators: dict[str, JobResources] = {}


class RayOptions(_Strict):
    """The Ray executor's options (``executor: {name: ray, ...}``)."""

    address: str | None = None  # None: a local instance; "auto"; "ray://host:10001" (Ray Client); "host:port"
    resources: ResourceTable = ResourceTable()
    max_retries: int = Field(2, ge=0, le=100)  # re-runs of a job whose worker process or node died

    @field_validator("address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is not None and not _ADDRESS.fullmatch(v):
            raise ValueError(
                "give null (start a local Ray instance), 'auto' (the cluster `ray start` runs on this "
                "machine), 'ray://HOST:10001' (Ray Client) or 'HOST:PORT' (the head's GCS)"
            )
        return v


# --------------------------------------------------------------------------- declarations: registry.executors
executors.declare("local", description="every job in this process, one after another")
executors.declare(
    "ray",
    description="jobs as Ray tasks on a local Ray instance or a Ray cluster, in parallel",
    params=RayOptions,
)
