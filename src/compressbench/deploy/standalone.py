"""Load a compressbench safetensors export with torch and safetensors only (no compressbench, no pickle).

Copied next to every ``safetensors`` export as ``load_model.py`` and quoted in docs/export.md; it imports
nothing from compressbench (tests run it with compressbench not importable). The JSON's ``graph`` is a
torch.fx graph: modules are built from ``torch.nn`` classes and their arguments, and only the functions
and tensor methods listed in ``OPS`` / ``METHODS`` can be called — a JSON file cannot make it run
anything else. Usage: ``model = load("out/model")`` (reads ``model.json`` + ``model.safetensors``).
"""

import json
import operator

import torch
from safetensors.torch import load_file

OPS = {
    "operator.add": operator.add,
    "operator.iadd": operator.iadd,
    "operator.sub": operator.sub,
    "operator.mul": operator.mul,
    "operator.truediv": operator.truediv,
    "torch.flatten": torch.flatten,
    "torch.cat": torch.cat,
    "torch.add": torch.add,
    "torch.nn.functional.relu": torch.nn.functional.relu,
}
METHODS = {"view", "reshape", "flatten", "size", "mean", "relu", "add", "mul", "contiguous"}


class Graph(torch.nn.Module):
    def forward(self, x):
        env = {}
        val = lambda a: env[a["node"]] if isinstance(a, dict) else [val(i) for i in a] if isinstance(a, list) else a
        for name, op, target, args, kwargs in self.nodes:
            args, kwargs = val(args), {k: val(v) for k, v in kwargs.items()}
            if op == "placeholder":
                env[name] = x
            elif op == "get_attr":
                owner, _, leaf = target.rpartition(".")
                env[name] = getattr(self.get_submodule(owner), leaf)
            elif op == "call_module":
                env[name] = self.get_submodule(target)(*args, **kwargs)
            elif op == "call_function":
                env[name] = OPS[target](*args, **kwargs)
            elif op == "call_method" and target in METHODS:
                env[name] = getattr(args[0], target)(*args[1:], **kwargs)
            elif op == "output":
                return args[0]
            else:
                raise ValueError(f"node {name}: {op} {target} is not allowed")


def load(stem: str) -> torch.nn.Module:
    spec, state = json.load(open(stem + ".json")), load_file(stem + ".safetensors")
    model = Graph()
    model.nodes = spec["graph"]["nodes"]
    for name, cls_name, kwargs in spec["graph"]["modules"]:  # parents before children
        cls = getattr(torch.nn, cls_name) if cls_name else torch.nn.Module
        assert isinstance(cls, type) and issubclass(cls, torch.nn.Module), cls_name
        parent, _, leaf = name.rpartition(".")
        model.get_submodule(parent).add_module(leaf, cls(**kwargs))
    for key, tensor in state.items():  # tensors of plain containers (e.g. the input normalisation)
        owner, _, leaf = key.rpartition(".")
        if not hasattr(model.get_submodule(owner), leaf):
            model.get_submodule(owner).register_buffer(leaf, tensor)
    model.load_state_dict(state, strict=True)
    return model.eval()
