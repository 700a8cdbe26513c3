"""Reading an experiment file safely: a bounded YAML loader, ``--set`` overrides and scales, and the values
no schema accepts — the text side of the experiment config (:mod:`.schema` holds the schema).

A config file is untrusted text: it is read by a YAML loader that builds plain data only (no
``!!python`` tags), refuses duplicate keys, and bounds the work a file can cause — its size, its
nesting depth, its number of aliases and of values after expanding them (an "alias bomb" fails in
milliseconds instead of growing to gigabytes). See the ``MAX_*`` constants. Every mistake is a
:class:`ConfigError`: one line naming the field path, the bad value and what is allowed.
"""

from __future__ import annotations

import math
import stat
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from ..errors import ConfigError, did_you_mean

# Limits on what a config may cost to read, far above any real experiment file (the shipped ones
# are 2-4 KB with at most 240 values and 9 levels) and low enough that the pure-Python YAML parser
# (~15,000 values/s on a busy 2-core machine) rejects the worst file allowed in well under a second.
MAX_CONFIG_BYTES = 64 * 1024
MAX_OVERRIDE_CHARS = 4096  # one --set value
MAX_DEPTH = 64  # nesting levels (YAML and the Python API)
MAX_NODES = 5_000  # values in a document, counted after expanding aliases
MAX_ALIASES = 1_000  # alias uses (*name) in a document
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _fmt_loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _join(prefix: str, loc: str) -> str:
    if not prefix or not loc:
        return prefix or loc
    return prefix + loc if loc.startswith("[") else f"{prefix}.{loc}"


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


# ------------------------------------------------------------------ values no schema accepts
def check_data(obj: Any, where: str = "") -> None:
    """Reject, with the path, what no field of any schema accepts: non-finite floats (``.inf``,
    ``.nan`` overflow a training loop or store NaN rows), integers beyond 64 bits, nesting deeper
    than ``MAX_DEPTH`` and more than ``MAX_NODES`` values (also bounds self-referencing data)."""
    stack: list[tuple[Any, str, int]] = [(obj, where, 0)]
    count = 0
    while stack:
        v, path, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ConfigError(f"{where or 'config'}: more than {MAX_NODES:,} values; a config is not a data file")
        if isinstance(v, bool) or v is None or isinstance(v, str):
            continue
        if isinstance(v, float):
            if not math.isfinite(v):
                raise ConfigError(f"{path or 'config'}: {v} is not a finite number (.inf and .nan are not allowed)")
        elif isinstance(v, int):
            if not -(2**63) <= v < 2**63:
                raise ConfigError(f"{path or 'config'}: {v} is out of range (integers must fit in 64 bits)")
        elif isinstance(v, (dict, list, tuple)):
            if depth >= MAX_DEPTH:
                raise ConfigError(f"{path or 'config'}: nested deeper than {MAX_DEPTH} levels")
            if count + len(v) > MAX_NODES:
                raise ConfigError(f"{where or 'config'}: more than {MAX_NODES:,} values; a config is not a data file")
            items = list(v.items() if isinstance(v, dict) else enumerate(v))
            for k, child in reversed(items):  # reversed: the first bad value in file order is reported
                sub = _join(path, f"[{k}]") if not isinstance(v, dict) else _join(path, str(k))
                stack.append((child, sub, depth + 1))


# ------------------------------------------------------------------ reading YAML safely
def read_config_text(path: str | Path) -> str:
    """The text of a config file: at most ``MAX_CONFIG_BYTES``, UTF-8 (a BOM is allowed), no NUL bytes."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the config file ({e.strerror or type(e).__name__})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{p}: is a directory, not a config file")
    too_big = f"{p}: a config file may be at most {MAX_CONFIG_BYTES:,} bytes"
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{too_big}; this one has {st.st_size:,}")
    try:
        with open(p, "rb") as f:  # bounded read: also safe on pipes and devices
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the config file ({e.strerror or type(e).__name__})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(too_big)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{p}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); a config is a YAML text file"
        ) from None
    if "\x00" in text:
        raise ConfigError(f"{p}: a binary file (NUL byte at offset {data.index(0)}), not a YAML config")
    return text


class _LimitError(yaml.MarkedYAMLError):
    """A document beyond the loader's limits (not a syntax error)."""


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader (plain data only) that also refuses duplicate keys, recursive aliases, tags
    it does not know, and documents beyond ``MAX_DEPTH`` / ``MAX_ALIASES`` / ``MAX_NODES``. The node
    count is checked as nodes are composed, and each node's size *after* alias expansion is known
    when it completes, so an alias bomb fails at its first oversized level, before any construction."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._composed = 0
        self._weight: dict[int, int] = {}  # id(node) -> values under it, aliases expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _LimitError(None, None, f"more than {MAX_ALIASES:,} aliases", event.start_mark)
            node = super().compose_node(parent, index)
            if id(node) not in self._weight:
                raise _LimitError(
                    None, None, f"alias '*{event.anchor}' refers to a value that contains it", event.start_mark
                )
            return node
        self._composed += 1
        self._depth += 1
        try:
            if self._composed > MAX_NODES:
                raise _LimitError(None, None, f"more than {MAX_NODES:,} values", self.peek_event().start_mark)
            if self._depth > MAX_DEPTH:
                raise _LimitError(None, None, f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        w = 1
        if isinstance(node, SequenceNode):
            w += sum(self._weight.get(id(c), 1) for c in node.value)
        elif isinstance(node, MappingNode):
            w += sum(self._weight.get(id(k), 1) + self._weight.get(id(v), 1) for k, v in node.value)
        if w > MAX_NODES:
            raise _LimitError(None, None, f"more than {MAX_NODES:,} values once aliases are expanded", node.start_mark)
        self._weight[id(node)] = w
        return node

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 (PyYAML's name)
        # the scanner looks ahead over every open '[' / '{' for a possible key: bound the nesting
        # here, before that lookahead becomes quadratic (5,000 levels took seconds to reject)
        if self.flow_level >= MAX_DEPTH:
            raise _LimitError(None, None, f"nested deeper than {MAX_DEPTH} levels", self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        first: dict[tuple[str, str], Any] = {}
        for key, _ in node.value:
            if isinstance(key, ScalarNode) and key.tag != _MERGE_TAG:
                ident = (key.tag, key.value)
                if ident in first:
                    raise _LimitError(
                        None,
                        None,
                        f"duplicate key '{key.value}' (first at line "
                        f"{first[ident].line + 1}); each key may appear once",
                        key.start_mark,
                    )
                first[ident] = key.start_mark
        return node

    def construct_undefined(self, node: Any) -> Any:
        tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
        raise _LimitError(
            None,
            None,
            f"the tag '{tag}' is not allowed: a config is plain data (mappings, lists, strings, numbers, booleans)",
            node.start_mark,
        )


ConfigLoader.add_constructor(None, ConfigLoader.construct_undefined)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text with :class:`ConfigLoader`; every failure is one :class:`ConfigError` line."""
    loader = None
    try:
        loader = ConfigLoader(text)  # the reader checks the characters here already
        return loader.get_single_data()
    except _LimitError as e:
        mark = e.problem_mark
        raise ConfigError(f"{source}: line {mark.line + 1}, column {mark.column + 1}: {e.problem}") from None
    except yaml.reader.ReaderError as e:
        raise ConfigError(
            f"{source}: not YAML text: character #x{e.character:04x} at offset {e.position} is not allowed"
        ) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{source}: not valid YAML{where}: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{source}: not valid YAML: {first}") from None
    except RecursionError:  # a safety net: the depth limit fails first
        raise ConfigError(f"{source}: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


# ------------------------------------------------------------------ --set overrides
def parse_override(item: str) -> tuple[str, Any]:
    """``"train.epochs=1"`` -> ``("train.epochs", 1)``: the value is YAML (``[0, 1]``, ``null``, ``0.5``)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects KEY=VALUE (e.g. train.epochs=1), got {_short(item)}")
    if any(not part.strip() for part in key.split(".")):
        raise ConfigError(
            f"--set {key}: empty part in the key; use dots between field names "
            f"(train.epochs) and numbers for list items (variants.0.method)"
        )
    if len(text) > MAX_OVERRIDE_CHARS:
        raise ConfigError(f"--set {key}: the value has {len(text):,} characters; at most {MAX_OVERRIDE_CHARS:,}")
    return key, parse_yaml(text, f"--set {key}")


def _kind(v: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(v), type(v).__name__)


def apply_override(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``dotted`` (``train.epochs``, ``variants.0.params.finetune.epochs``) in ``raw``: missing or
    null mappings on the way are created, list items are addressed by index (0-based, within range)."""
    parts = [p.strip() for p in dotted.split(".")]
    cur: Any = raw
    path: list[Any] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        here = _fmt_loc(path) or "the config"
        if isinstance(cur, dict):
            if last:
                cur[part] = value
                return
            if cur.get(part) is None:
                cur[part] = {}
            nxt = cur[part]
            path.append(part)
        elif isinstance(cur, list):
            if not part.isdigit():
                raise ConfigError(
                    f"--set {dotted}: {here} is a list; address its items by index (0..{len(cur) - 1}), not '{part}'"
                )
            idx = int(part)
            if idx >= len(cur):
                raise ConfigError(f"--set {dotted}: {here} has {len(cur)} item(s); index {idx} is out of range")
            if last:
                cur[idx] = value
                return
            nxt = cur[idx]
            path.append(idx)
        else:
            raise ConfigError(
                f"--set {dotted}: {here} is {_kind(cur)} ({_short(cur)}), not a mapping; cannot set '{part}' inside it"
            )
        cur = nxt


# ------------------------------------------------------------------ scales
SCALES = "scales"


def read_raw(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The config mapping of a file, and its ``scales`` (name -> {dotted key: value}), taken out of it."""
    raw = parse_yaml(read_config_text(path), str(path))
    if raw is None:
        raise ConfigError(f"{path}: the config file is empty")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a mapping of fields, got {_kind(raw)}")
    present = SCALES in raw
    scales = raw.pop(SCALES, {})
    if present and not (isinstance(scales, dict) and scales):  # `scales: []`, `scales:`: said, not ignored
        raise ConfigError(
            f"{SCALES}: give a non-empty mapping of scale names to mappings of overrides "
            f"({{smoke: {{train.epochs: 0.1, ...}}}}), or leave the key out; got {scales!r}"
        )
    if not isinstance(scales, dict) or not all(
        isinstance(k, str) and isinstance(v, dict) and all(isinstance(kk, str) for kk in v) for k, v in scales.items()
    ):
        raise ConfigError(
            f"{SCALES}: give a mapping of scale names to mappings of overrides ({{smoke: {{train.epochs: 0.1, ...}}}})"
        )
    return raw, scales


def scale_names(path: str | Path) -> list[str]:
    """The override profiles (``scales:``) a config file declares."""
    return list(read_raw(Path(path))[1])


def read_config(
    path: str | Path, overrides: Mapping[str, Any] | None = None, scale: str | None = None
) -> dict[str, Any]:
    """The raw config of a YAML file with the named ``scale`` (an override profile the file declares under
    ``scales:``, e.g. ``smoke``) and then ``overrides`` (``{"train.epochs": 1, "variants.0.method": ...}``)
    applied. Raises ConfigError (one line)."""
    p = Path(path)
    raw, scales = read_raw(p)
    if scale is not None:
        if scale not in scales:
            raise ConfigError(
                f"{p}: no scale '{scale}'{did_you_mean(scale, scales)}; the file declares: "
                f"{', '.join(scales) or 'none'}"
            )
        for k, v in scales[scale].items():
            apply_override(raw, k, v)
    for k, v in (overrides or {}).items():
        apply_override(raw, k, v)
    return raw
