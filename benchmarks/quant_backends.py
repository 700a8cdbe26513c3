"""Static int8 on CPU: torch.ao eager (what ``quantize.static`` uses) vs torchao PT2E
(X86InductorQuantizer), on cnn5 and a CIFAR ResNet-20, Fashion-MNIST inputs.

Measures per path: wall time to quantize (prepare + calibrate + convert), agreement of top-1
predictions with the fp32 model (and accuracy when a trained cnn5 is cached by
``methods_quickstart.py``), latency at batch 1 and 64 (1 thread, median of
``torch.utils.benchmark``), and whether the result survives our checkpoint round trip.

    .venv/bin/python benchmarks/quant_backends.py

Writes ``benchmarks/results/quant_backends.json``.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import time
import traceback
from pathlib import Path

import torch

os.environ.setdefault("COMPRESSBENCH_PROGRESS", "0")

from compressbench.checkpoint import load_model  # noqa: E402
from compressbench.compress.quantize import convert_int8, default_backend, prepare_int8  # noqa: E402
from compressbench.data import load_dataset  # noqa: E402
from compressbench.models import create_model  # noqa: E402

OUT = Path(__file__).parent / "results" / "quant_backends.json"


def latency_ms(fn, x, threads: int = 1) -> float:
    from torch.utils.benchmark import Timer

    with torch.inference_mode():
        for _ in range(3):
            fn(x)
        m = Timer("fn(x)", globals={"fn": fn, "x": x}, num_threads=threads).blocked_autorange(min_run_time=1.0)
    return m.median * 1e3


def batches(bundle, n: int, bs: int = 128):
    g = torch.Generator().manual_seed(0)
    for i, (x, _, _) in enumerate(bundle.train.batches(bs, shuffle=True, generator=g)):
        if i >= n:
            break
        yield x


def eager_int8(model, bundle):
    m = prepare_int8(copy.deepcopy(model), default_backend())
    with torch.inference_mode():
        for x in batches(bundle, 16):
            m(x)
    return convert_int8(m)


def pt2e_int8(model, bundle):
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    x0 = torch.rand(8, *bundle.train.x.shape[1:])
    dyn = {"x": {0: torch.export.Dim.AUTO}}
    exported = torch.export.export(copy.deepcopy(model).eval(), (x0,), dynamic_shapes=dyn).module()
    q = X86InductorQuantizer()
    q.set_global(get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(exported, q)
    with torch.inference_mode():
        for x in batches(bundle, 16):
            prepared(x)
    return convert_pt2e(prepared)


def main() -> None:
    torch.set_num_threads(2)
    bundle = load_dataset("fashion-mnist")
    ev = bundle.eval_subset(1000)
    xs = ev.x.float() / 255
    cache = Path(tempfile.gettempdir()) / "cb_cnn5_fmnist_2ep.pt"
    models = {}
    if cache.exists():
        models["cnn5 (trained 2 ep)"] = load_model(cache)[0]
    else:
        models["cnn5 (random init)"] = create_model("cnn5", bundle.meta)
    models["resnet20 (random init)"] = create_model("resnet20", bundle.meta)
    rows = []
    for mname, fp32 in models.items():
        fp32.eval()
        with torch.inference_mode():
            ref = fp32(xs).argmax(1)
        entry = {
            "model": mname,
            "fp32": {
                "acc": float((ref == ev.y).float().mean()),
                "b1_ms": latency_ms(fp32, xs[:1]),
                "b64_ms": latency_ms(fp32, xs[:64]),
            },
        }
        for path, fn in (("eager torch.ao", eager_int8), ("pt2e torchao", pt2e_int8)):
            r: dict = {}
            try:
                t0 = time.perf_counter()
                q = fn(fp32, bundle)
                r["quantize_s"] = time.perf_counter() - t0
                with torch.inference_mode():
                    pred = q(xs).argmax(1)
                r["agreement"] = float((pred == ref).float().mean())
                r["acc"] = float((pred == ev.y).float().mean())
                r["b1_ms"], r["b64_ms"] = latency_ms(q, xs[:1]), latency_ms(q, xs[:64])
                if path.startswith("pt2e"):
                    t0 = time.perf_counter()
                    qc = torch.compile(q)
                    with torch.inference_mode():
                        qc(xs[:1])
                        qc(xs[:64])
                    r["compile_s"] = time.perf_counter() - t0
                    r["compiled_b1_ms"], r["compiled_b64_ms"] = latency_ms(qc, xs[:1]), latency_ms(qc, xs[:64])
                    with torch.inference_mode():
                        r["compiled_agreement"] = float((qc(xs).argmax(1) == ref).float().mean())
            except Exception as e:  # record the failure, keep going
                r["error"] = f"{type(e).__name__}: {e}"[:300]
                traceback.print_exc()
            entry[path] = r
            print(mname, path, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
        print(mname, "fp32", entry["fp32"], flush=True)
        rows.append(entry)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"threads_latency": 1, "rows": rows}, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
