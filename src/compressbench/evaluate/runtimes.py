"""The ``runtimes`` evaluator: every variant exported to its deployment runtimes, verified and timed there.

For each format of ``formats`` (the export-format registry, :mod:`compressbench.deploy`): write the
variant in that format (in the job's scratch folder: nothing is kept — ``compressbench export`` writes
files to ship), run the artifact in its runtime on the evaluation subset against the variant's own
logits, and time it with the efficiency protocol (fresh process, fixed threads, warm-up, median ± IQR).
Rows per format: ``top1``, ``agreement``, ``max_abs_dlogit``, ``file_bytes``, ``latency_b1_ms``,
``latency_b1_iqr_ms``, ``throughput_img_s`` and the ``verified`` check, condition ``format=...``; the
summary table gets a ``<runtime> latency b1 ms`` column per format (``latency_b1_ms@<format>``).
A format that is not installed is refused at ``validate``, naming the pip extra.
"""

from __future__ import annotations

from torch import nn

from ..catalog.evaluators import RuntimesParams  # noqa: F401 (torch-free: compressbench.catalog)
from ..checkpoint import read_checkpoint, worker_trust
from ..costs import CostContext, EvalCost
from ..deploy.engine import evidence, export_one
from ..deploy.metrics import declarations
from ..interfaces import EvalContext, Measurement
from ..measure.fresh import ScratchDir
from ..measure.profiling import resolve
from ..registry import evaluators

# fixed CPU seconds per format and variant (export + conversion + a fresh timing process), measured on the
# project's 2-core machine with the quickstart's 140 k-parameter CNN: ExecuTorch's lowering dominates
EXPORT_S = {"onnx": 1.5, "openvino": 5.0, "pt2": 5.0, "executorch": 20.0, "safetensors": 3.0}


def runtimes_cost(p: RuntimesParams, ctx: CostContext) -> EvalCost:
    """``compressbench plan``: per format a verification pass over the images, the protocol's timed calls at
    batch 1 and at the throughput batch, and its fixed export seconds."""
    _, _, tb = resolve(p.profile())
    timed = (p.warmup + p.repeats + (max(1, p.warmup // 5) + p.throughput_repeats) * tb) if p.timing else 0
    n = len(p.formats)
    return EvalCost(
        forward=n * (ctx.images(p.subset if p.subset is not None else -1) + timed),
        seconds=sum(EXPORT_S.get(f, 5.0) for f in p.formats),
    )


@evaluators.register("runtimes", cost=runtimes_cost, metrics=declarations())
def runtimes(model: nn.Module, ctx: EvalContext, params: RuntimesParams) -> list[Measurement]:
    images = ctx.eval_set(params.subset if params.subset is not None else -1)
    ev = evidence(model, images, ctx.data, params.calib_batches, ctx.seed)
    ck_path = ctx.extra.get("checkpoint")
    ck = read_checkpoint(ck_path) if ck_path else None
    shape = (1, ctx.meta.channels, *ctx.meta.size)
    ms: list[Measurement] = []
    with ScratchDir(ctx.workdir) as scratch:
        for name in params.formats:
            _, rows = export_one(
                name, model, ck, scratch.path / name, shape, ev, params, target=worker_trust(), scratch=scratch
            )
            ms += rows
    return ms
