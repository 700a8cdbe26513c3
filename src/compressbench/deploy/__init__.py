"""Take a variant home: export it to the runtime it will ship on, verify it there, write its model card.

=============== ==========================================================================================
``formats``     the export-format registry: ``FormatSpec`` (runtime, ``open``, version, availability, usage),
                ``ExportInput``, ``Written``
``builtin``     the formats: ``onnx``, ``openvino``, ``pt2``, ``executorch``, ``safetensors``
``prepare``     masks folded, int8 kind, the float twin of an int8 model, PT2E programs (XNNPACK quantizer)
``graph``       a float model as a JSON graph (torch.fx) for the standalone loader
``standalone``  the loader that needs only torch + safetensors (copied next to every safetensors export)
``tensors``     a state dict as safetensors tensors + a JSON layout, and back (``read_export``)
``verify``      the artifact in its runtime: top-1, agreement, max |Δlogit|, bytes, timings (``VerifySettings``)
``timing``      the fresh-process side of timing an artifact (``measure/worker.py``'s ``artifact`` mode)
``engine``      export one variant to one format and verify it (shared by the CLI and the evaluator)
``metrics``     the declared metrics of export rows (``<metric>@<format>`` summary keys)
``locate``      find a variant's model through the store: job key, the run's cache, its data
``card``        the model card (Markdown + YAML front matter, caveats derived from the rows)
``api``         ``compressbench.export``: locate, export, verify, store the rows once, write the card
``cli``         ``compressbench export``
=============== ==========================================================================================

The ``runtimes`` evaluator (``compressbench.evaluate.runtimes``) runs ``engine`` for every variant of a
study. docs/export.md has the details.
"""
