"""The measurement core: what a model costs, counted and measured the same way everywhere.

No registration and no CLI here: the compressors (budgets), the runner (a compress job's size rows)
and the ``efficiency`` evaluator import these modules; ``compressbench profile`` renders them.

=============== ==========================================================================
``precision``   ``quantization_kind``: int8 kernels / int8 q-dq graph / fp16 / bf16 / float32
``counting``    parameters as deployed: total, nonzero, per-layer density, masks attached?
``sizes``       the three sizes (checkpoint file, dense weights, theoretical sparse) and the
                bitmask sparse format; realised compressed sizes
``flops``       FLOPs / MACs (FlopCounterMode), shape-hook MACs for int8, effective FLOPs
``hardware``    the CPU model (the one ``/proc/cpuinfo`` parser) and the hardware record
``protocol``    torch-free half of the timing protocol: median/IQR, latency+throughput, peak RSS
``timing``      the protocol in torch (``torch.utils.benchmark.Timer``)
``onnxrt``      ONNX export, onnxruntime static int8, ONNX Runtime timing (no torch at import)
``targets``     rebuilding a profiled model (checkpoint or factory), float source of an int8 one
``fresh``       running a measurement in a fresh process; the scratch folder and its janitor
``worker``      the fresh process itself (run as a file, never imported by the package)
``profiling``   ``ProfileSettings`` and ``profile``: the whole profile of one model
=============== ==========================================================================

The package's modules import each other only downwards in this table (``tests/test_import_graph.py``
checks the whole package for cycles); this file imports nothing, so ``import compressbench.measure.x``
costs only ``x``.
"""
