"""The built-in export formats (registered when :data:`.formats.formats` is first used).

=============== ====================================== =====================================================
format          what is written                        runtime (``open``)
=============== ====================================== =====================================================
``onnx``        ``model.onnx``, dynamic batch axis     ONNX Runtime, CPU provider
``openvino``    ``model.xml`` + ``model.bin`` (IR)     OpenVINO CPU plugin (a static shape per batch size)
``pt2``         ``model.pt2`` (``torch.export.save``)  the ExportedProgram's module in PyTorch eager
``executorch``  ``model.pte`` lowered to XNNPACK       the ExecuTorch runtime (Python bindings)
``safetensors`` ``model.safetensors`` + ``model.json`` PyTorch eager, rebuilt by ``compressbench.load_model``
=============== ====================================== =====================================================

How int8 variants go: ONNX exports eager ``torch.ao`` int8 modules as a QDQ graph with the variant's own
scales and zero points (``torch.onnx``'s TorchScript exporter); dynamic int8 (not exportable) becomes ONNX
Runtime's ``quantize_dynamic`` of the variant's dequantized weights. OpenVINO converts that ONNX file (its
low-precision pipeline runs QDQ graphs with int8 kernels). ``pt2`` and ``executorch`` re-quantize with the
XNNPACK quantizer (:func:`.prepare.pt2e_program`); in ``pt2`` eager runs that q/dq graph with float
kernels, so its timings are tagged ``simulated``. ``safetensors`` stores the variant's own int8 tensors.
Heavy libraries are imported inside the functions, never at registration.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from ..measure.onnxrt import export_onnx, ort_session, quantize_onnx_dynamic
from ..measure.precision import low_precision_dtype
from .formats import ExportInput, Predict, Written, formats
from .prepare import float_twin, int8_kind, pt2e_program


def _absent(module: str) -> str | None:
    return None if importlib.util.find_spec(module) is not None else f"the '{module}' package is not installed"


def _dtype_of(model: torch.nn.Module) -> str:
    kind = int8_kind(model)
    if kind:
        return "int8-dynamic" if kind == "dynamic" else "int8"
    low = low_precision_dtype(model)
    return "fp32" if low is None else str(low).replace("torch.", "")


# --------------------------------------------------------------------------- ONNX
def write_onnx(inp: ExportInput, out: Path) -> Written:
    path = out / "model.onnx"
    notes = []
    if int8_kind(inp.model) == "dynamic":  # quantized::linear_dynamic has no ONNX export: ORT's own dynamic int8
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_onnx(float_twin(inp.model), Path(tmp) / "fp32.onnx", inp.input_shape)
            quantize_onnx_dynamic(fp32, path)
        notes.append(
            "dynamic int8 by ONNX Runtime's quantize_dynamic (MatMul/Gemm) of the variant's dequantized "
            "weights: the runtime's own weight scales"
        )
    else:
        export_onnx(inp.model, path, inp.input_shape)
        if int8_kind(inp.model):
            notes.append("QDQ graph with the variant's own int8 weights, scales and zero points (torch.onnx)")
    return Written(path, [path], _dtype_of(inp.model), notes=notes, max_batch=inp.max_batch)


def open_onnx(path: Path, threads: int) -> Predict:
    sess = ort_session(path, threads)
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


formats.register(
    "onnx",
    write_onnx,
    label="ONNX Runtime",
    suffix=".onnx",
    open=open_onnx,
    runtime_version=lambda: f"onnxruntime-{metadata.version('onnxruntime')}",
    missing=lambda: _absent("onnxruntime"),
    extra="onnx",
    version=1,
    worker="onnx",
    usage="import numpy as np, onnxruntime as ort\n"
    'sess = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])\n'
    "x = np.random.rand({shape}).astype(np.float32)  # images in [0, 1], N×C×H×W\n"
    'logits = sess.run(None, {{"input": x}})[0]',
    description="ONNX (opset 17, dynamic batch): fp32, or QDQ int8 with the variant's own scales",
)


# --------------------------------------------------------------------------- OpenVINO
def write_openvino(inp: ExportInput, out: Path) -> Written:
    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:
        src = write_onnx(inp, Path(tmp))
        model = ov.convert_model(str(src.path))
    xml = out / "model.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)  # the default would halve fp32 weights
    return Written(
        xml,
        [xml, xml.with_suffix(".bin")],
        src.dtype,
        notes=src.notes + ["converted from the ONNX export by openvino.convert_model"],
        max_batch=inp.max_batch,
    )


def open_openvino(path: Path, threads: int) -> Predict:
    import openvino as ov

    core = ov.Core()
    config = {
        "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32",
    }
    requests = {}

    def predict(x: np.ndarray) -> np.ndarray:
        req = requests.get(x.shape)
        if req is None:  # compiled for this static shape, as a deployment would
            model = core.read_model(str(path))
            model.reshape(list(x.shape))
            req = requests[x.shape] = core.compile_model(model, "CPU", config).create_infer_request()
        return np.array(req.infer([x])[0])

    return predict


formats.register(
    "openvino",
    write_openvino,
    label="OpenVINO",
    suffix=".xml",
    open=open_openvino,
    runtime_version=lambda: f"openvino-{metadata.version('openvino')}",
    missing=lambda: _absent("openvino"),
    extra="openvino",
    version=1,
    usage="import numpy as np, openvino as ov\n"
    'compiled = ov.Core().compile_model("model.xml", "CPU")\n'
    "logits = compiled(np.random.rand({shape}).astype(np.float32))[0]  # images in [0, 1]",
    description="OpenVINO IR (openvino.convert_model of the ONNX export; int8 from its QDQ graph)",
)


# --------------------------------------------------------------------------- torch.export / ExecuTorch
def write_pt2(inp: ExportInput, out: Path) -> Written:
    ep, dtype, notes = pt2e_program(inp.model, inp.input_shape, inp.max_batch, inp.calib)
    path = out / "model.pt2"
    torch.export.save(ep, str(path))
    tag = "realised"
    if dtype.startswith("int8"):
        tag = "simulated"
        notes = notes + [
            "PyTorch eager runs this q/dq graph with float kernels: its timings are simulated int8 "
            "(ExecuTorch or torch.compile run it with int8 kernels)"
        ]
    return Written(path, [path], dtype, tag=tag, notes=notes, max_batch=inp.max_batch)


def _quant_ops() -> None:
    """Register the quantize/dequantize ops a PT2E graph calls (torchao's, when installed)."""
    if importlib.util.find_spec("torchao") is not None:
        import torchao.quantization.pt2e  # noqa: F401


def open_pt2(path: Path, threads: int) -> Predict:
    torch.set_num_threads(threads)
    _quant_ops()
    module = torch.export.load(str(path)).module()

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    return predict


formats.register(
    "pt2",
    write_pt2,
    label="torch.export (eager)",
    suffix=".pt2",
    open=open_pt2,
    runtime_version=lambda: f"torch.export-{torch.__version__}",
    version=1,
    usage="import torch\n"
    "# int8 graphs: import torchao.quantization.pt2e first (registers the q/dq ops)\n"
    'module = torch.export.load("model.pt2").module()\n'
    "logits = module(torch.rand({shape}))  # images in [0, 1], batch up to 64",
    description="torch.export ExportedProgram (torch.export.save), the entry to ExecuTorch and "
    "AOTInductor; int8 variants as an XNNPACK-quantized q/dq graph",
)


def write_executorch(inp: ExportInput, out: Path) -> Written:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    ep, dtype, notes = pt2e_program(inp.model, inp.input_shape, inp.max_batch, inp.calib)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
    left = sorted(
        {
            str(n.target).split(".")[-2] if "." in str(n.target) else str(n.target)
            for n in edge.exported_program().graph.nodes
            if n.op == "call_function"
            and "executorch_call_delegate" not in str(n.target)
            and "getitem" not in str(n.target)
        }
    )
    if left:
        notes = notes + [f"not delegated to XNNPACK (portable kernels): {', '.join(left)}"]
    path = out / "model.pte"
    path.write_bytes(edge.to_executorch().buffer)
    return Written(path, [path], dtype, notes=notes, max_batch=inp.max_batch, info={"portable_ops": left})


def open_executorch(path: Path, threads: int) -> Predict:
    from executorch.runtime import Runtime

    try:
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

        _unsafe_reset_threadpool(threads)
    except ImportError:  # pragma: no cover — older bindings: the pool's default size
        pass
    method = Runtime.get().load_program(str(path)).load_method("forward")
    return lambda x: method.execute([torch.from_numpy(x)])[0].numpy()


formats.register(
    "executorch",
    write_executorch,
    label="ExecuTorch (XNNPACK)",
    suffix=".pte",
    open=open_executorch,
    runtime_version=lambda: f"executorch-{metadata.version('executorch')}-xnnpack",
    missing=lambda: _absent("executorch"),
    extra="executorch",
    version=1,
    usage="import torch\n"
    "from executorch.runtime import Runtime\n"
    'method = Runtime.get().load_program("model.pte").load_method("forward")\n'
    "logits = method.execute([torch.rand({shape})])[0]  # images in [0, 1], batch up to 64",
    description="ExecuTorch .pte lowered to XNNPACK; int8 variants through the XNNPACK quantizer",
)


# --------------------------------------------------------------------------- safetensors + JSON
def write_safetensors(inp: ExportInput, out: Path) -> Written:
    from safetensors.torch import save_file

    from . import standalone
    from .graph import NotRepresentable, graph_spec
    from .tensors import encode

    ck = inp.checkpoint
    if ck is None:
        raise ValueError("safetensors export needs the variant's checkpoint (spec, steps, state dict)")
    tensors, layout = encode(ck["state_dict"])
    path = out / "model.safetensors"
    save_file(tensors, str(path), metadata={"format": "compressbench-safetensors"})
    meta = ck["spec"]["meta"]
    spec = {
        "format": "compressbench-safetensors",
        "version": 1,
        "input": {
            "shape": list(inp.input_shape),
            "range": [0.0, 1.0],
            "layout": "NCHW",
            "normalisation": "inside the model (mean/std buffers)",
            "mean": list(meta["mean"]),
            "std": list(meta["std"]),
            "classes": list(meta.get("class_names") or []),
        },
        "compressbench": {"spec": ck["spec"], "steps": ck["steps"]},
        "state": layout,
        "graph": None,
    }
    notes: list[str] = []
    jpath = path.with_suffix(".json")
    try:
        spec["graph"] = graph_spec(inp.model)
        jpath.write_text(json.dumps(spec))
        _check_standalone(standalone.load(str(out / "model")), inp)
        shutil.copyfile(standalone.__file__, out / "load_model.py")
    except (NotRepresentable, AssertionError, KeyError, RuntimeError, ValueError, TypeError) as e:
        spec["graph"], spec["graph_note"] = None, f"{type(e).__name__}: {e}"
        notes.append(f"no standalone graph (load with compressbench.load_model): {e}")
    jpath.write_text(json.dumps(spec, indent=1))
    return Written(
        path,
        [path, jpath],
        _dtype_of(inp.model),
        notes=notes,
        max_batch=inp.max_batch,
        info={"standalone": spec["graph"] is not None},
    )


def _check_standalone(model: torch.nn.Module, inp: ExportInput) -> None:
    x = torch.rand(4, *inp.input_shape[1:])
    with torch.inference_mode():
        diff = float((model(x) - inp.model(x)).abs().max())
    if not diff <= 1e-4:
        raise AssertionError(f"the standalone graph's logits differ from the variant's by {diff:.3g}")


def open_safetensors(path: Path, threads: int) -> Predict:
    from ..checkpoint import load_model

    torch.set_num_threads(threads)
    model, _ = load_model(path)

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).float().numpy()

    return predict


formats.register(
    "safetensors",
    write_safetensors,
    label="PyTorch (safetensors)",
    suffix=".safetensors",
    open=open_safetensors,
    runtime_version=lambda: f"torch-{torch.__version__}",
    missing=lambda: _absent("safetensors"),
    graph="weights",
    worker="torch",
    version=1,
    usage="import compressbench as cb, torch\n"
    'model, _ = cb.load_model("model.safetensors")  # + model.json; nothing unpickled\n'
    "logits = model(torch.rand({shape}))  # images in [0, 1]\n"
    '# without compressbench (float models): from load_model import load; model = load("model")',
    description="safetensors + a JSON architecture spec (no pickle): compressbench.load_model, "
    "or torch + safetensors alone with the standalone loader for float models",
)
