"""``compressbench export STORE --variant NAME --format FMT --out DIR``: the CLI of :func:`.api.export`.

Exit codes: 0 the export is verified; 1 it was written but is not equivalent, or its runtime failed (the
store has the error row, the model card says why); 2 bad input (one line, nothing exported).
"""

from __future__ import annotations

import argparse

from pydantic import ValidationError

from .locate import ExportError

EXIT_NOT_VERIFIED = 1


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    from .formats import formats

    p.add_argument("store", help="the results store of the study (results/NAME.sqlite)")
    p.add_argument(
        "--variant",
        required=True,
        help="the variant to ship (as in the store: e.g. structured+int8, prune.structured@params=0.25, baseline)",
    )
    p.add_argument("--format", required=True, metavar="FMT", help=f"export format: {', '.join(formats.names())}")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the files and the model card (README.md)")
    p.add_argument("--seed", type=int, help="which seed's model (needed when the study has several)")
    p.add_argument("--experiment", help="which experiment of the store (needed when it has several)")
    p.add_argument("--cache", metavar="DIR", help="the run's artifact cache, if it is not where the run's config says")
    p.add_argument(
        "--subset", type=int, metavar="N", help="verify on N evaluation images (default: the run's eval_subset)"
    )
    p.add_argument("--threads", type=int, default=1, help="runtime threads for verification and timing (default 1)")
    p.add_argument("--repeats", type=int, default=50, help="batch-1 latency samples (default 50)")
    p.add_argument("--warmup", type=int, default=10, help="warm-up calls (default 10)")
    p.add_argument("--batch", type=int, metavar="N", help="throughput batch (default 64; 0: no throughput run)")
    p.add_argument("--throughput-repeats", type=int, default=10)
    p.add_argument(
        "--calib-batches",
        type=int,
        default=8,
        help="batches of 64 images for a runtime's own int8 quantizer (ExecuTorch)",
    )
    p.add_argument(
        "--min-agreement",
        type=float,
        default=0.99,
        help="top-1 agreement with the variant an export must reach to be verified (default 0.99)",
    )
    p.add_argument(
        "--fp32-atol",
        type=float,
        default=1e-3,
        help="fp32 artifacts: largest |Δlogit| allowed, times max(1, max |logit|) (default 1e-3)",
    )
    p.add_argument("--no-timing", action="store_true", help="verify only, no latency / throughput")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="time in this process instead of a fresh one (labelled process=in-process)",
    )
    p.add_argument(
        "--trust-code",
        action="store_true",
        help="the checkpoint or the run's config names a package.module:factory that may be imported",
    )


def _settings(args: argparse.Namespace):
    from .verify import VerifySettings

    flags = {
        "threads": "--threads",
        "repeats": "--repeats",
        "warmup": "--warmup",
        "throughput_batch": "--batch",
        "throughput_repeats": "--throughput-repeats",
        "calib_batches": "--calib-batches",
        "min_agreement": "--min-agreement",
        "fp32_atol": "--fp32-atol",
    }
    try:
        return VerifySettings(
            threads=args.threads,
            repeats=args.repeats,
            warmup=args.warmup,
            throughput_batch=args.batch,
            throughput_repeats=args.throughput_repeats,
            calib_batches=args.calib_batches,
            min_agreement=args.min_agreement,
            fp32_atol=args.fp32_atol,
            timing=not args.no_timing,
            fresh_process=not args.in_process,
        )
    except ValidationError as e:
        err = e.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        raise ExportError(f"{flags.get(field, field)}: {err['msg']}; got {err.get('input')!r}") from None


def export_command(args: argparse.Namespace) -> int:
    from .api import command_line, export

    if args.subset is not None and args.subset < 1:
        raise ExportError(f"--subset: give a number of images ≥ 1; got {args.subset}")
    res = export(
        args.store,
        args.variant,
        format=args.format,
        out=args.out,
        seed=args.seed,
        experiment=args.experiment,
        cache=args.cache,
        settings=_settings(args),
        subset=-1 if args.subset is None else args.subset,
        trust=args.trust_code,
        command=command_line(),
    )
    loc = res.located
    print(
        f"{loc.experiment} / {loc.variant} (seed {loc.seed}) -> {res.format}: "
        f"{'verified' if res.verified else 'NOT VERIFIED: ' + (res.error or '')}"
    )
    for f in res.files:
        print(f"  {f}  ({f.stat().st_size:,} bytes)")
    for m in res.rows:
        if m.metric in ("top1", "agreement", "max_abs_dlogit", "latency_b1_ms", "throughput_img_s"):
            extra = (
                f"  [{m.condition.get('runtime')}, batch {m.condition['batch']}, {m.tag}]"
                if "batch" in m.condition
                else ""
            )
            print(f"  {m.metric:<17} {m.value:.6g}{' ' + m.unit if m.unit else ''}{extra}")
    print(f"model card: {res.card}")
    print(f"rows stored in {args.store}: {res.stored}" + (" (this export was stored before)" if not res.stored else ""))
    return 0 if res.verified else EXIT_NOT_VERIFIED
