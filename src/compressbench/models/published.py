"""Published weights: torchvision's weights enums and timm's pretrained tags.

``model.weights: torchvision:IMAGENET1K_V1`` (any member of the architecture's torchvision weights
enum, or ``torchvision`` alone for ``DEFAULT``) and ``model.weights: timm:<tag>`` (any of the
architecture's pretrained tags, ``timm:resnet18.a1_in1k`` or ``timm:a1_in1k``; ``timm`` alone: its
default tag). A model declares which it has with ``ModelSpec.published`` (:func:`torchvision_weights`,
:func:`timm_weights`).

Files go where the libraries keep them — torch hub's ``<hub dir>/checkpoints/`` for torchvision (and
timm weights published by URL), the Hugging Face cache for timm weights on the Hub — so weights you
already have are found without a network. A missing file is downloaded by ``compressbench run`` before
any job starts (torchvision's URLs carry a hash prefix, checked on download). Offline, or with
``COMPRESSBENCH_OFFLINE=1``, it is one line saying which file to put where, or to pass a local file.
The files are then read like any local file (:func:`~compressbench.models.weights.read_weights`: no
code is unpickled).
"""

from __future__ import annotations

import difflib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..errors import CheckpointError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    """One set of published weights: ``label`` (e.g. ``torchvision:ResNet18_Weights.IMAGENET1K_V1``),
    where it comes from (``url``, or a Hugging Face ``hf_hub_id`` + ``filenames``), where it is cached,
    and the preprocessing and classes it was trained with (docs/architecture.md, convention 4)."""

    label: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    input_size: tuple[int, int] | None = None
    url: str | None = None
    hf_hub_id: str | None = None
    filenames: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")

    @property
    def cache_path(self) -> Path:
        """Where the file is (or will be) on disk."""
        if self.hf_hub_id:
            from huggingface_hub import constants

            return Path(constants.HF_HUB_CACHE) / ("models--" + self.hf_hub_id.replace("/", "--"))
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(self.url or "").path)

    def identity(self) -> dict[str, Any]:
        """What names these weights in a job key (torchvision's URL carries the file's hash prefix)."""
        return {"published": self.label, "source": self.hf_hub_id or self.url}

    def locate(self) -> Path | None:
        """The cached file, without touching the network (None: not cached)."""
        if self.hf_hub_id:
            from huggingface_hub import try_to_load_from_cache

            for fn in self.filenames:
                p = try_to_load_from_cache(self.hf_hub_id, fn)
                if isinstance(p, str) and Path(p).is_file():
                    return Path(p)
            return None
        p = self.cache_path
        return p if p.is_file() else None

    def where_to_put(self) -> str:
        if self.hf_hub_id:
            return (
                f"download {self.filenames[0]} from https://huggingface.co/{self.hf_hub_id} (on a machine with "
                f"internet: `huggingface-cli download {self.hf_hub_id} {self.filenames[0]}`, then copy "
                f"{self.cache_path} here)"
            )
        return f"download {self.url} to {self.cache_path}"

    def fetch(self) -> Path:
        """The cached file, downloaded first if missing. Offline: one :class:`CheckpointError` line."""
        found = self.locate()
        if found is not None:
            return found
        why = "COMPRESSBENCH_OFFLINE is set" if offline() else None
        host = "huggingface.co" if self.hf_hub_id else urlparse(self.url or "").hostname or ""
        if why is None and not _reachable(host):
            why = f"{host} is unreachable (offline?)"
        if why is None:
            try:
                return self._download()
            except Exception as e:
                why = f"the download failed ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"
        raise CheckpointError(
            f"weights {self.label} are not cached in {self.cache_path} and {why}: "
            f"{self.where_to_put()}, or pass a local file as model.weights: path/to/weights"
        )

    def _download(self) -> Path:
        if self.hf_hub_id:
            from huggingface_hub import hf_hub_download

            last: Exception | None = None
            for fn in self.filenames:
                try:
                    return Path(hf_hub_download(self.hf_hub_id, fn))
                except Exception as e:  # e.g. an older repo without model.safetensors
                    last = e
            raise last  # type: ignore[misc]
        import torch

        dst = self.cache_path
        dst.parent.mkdir(parents=True, exist_ok=True)
        name = dst.name.split(".")[0]
        prefix = name.rsplit("-", 1)[-1] if "-" in name else None
        log.info("downloading %s to %s", self.url, dst)
        torch.hub.download_url_to_file(self.url, str(dst), hash_prefix=prefix, progress=False)
        return dst


def offline() -> bool:
    """``COMPRESSBENCH_OFFLINE=1`` (or Hugging Face's ``HF_HUB_OFFLINE=1``): never try to download."""
    return any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
        for v in ("COMPRESSBENCH_OFFLINE", "HF_HUB_OFFLINE")
    )


def _reachable(host: str, timeout: float = 5.0) -> bool:
    """A quick TCP connect, so that being offline is one line at once, not minutes of retries."""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _dym(tag: str, known: list[str]) -> str:
    close = difflib.get_close_matches(tag, known, n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def _split(source: str, family: str) -> str:
    fam, _, tag = source.partition(":")
    if fam != family:
        raise CheckpointError(f"model.weights: '{source}': this model has published weights under '{family}:...' only")
    return tag


def torchvision_weights(arch: str):
    """``ModelSpec.published`` for a torchvision architecture (its ``get_model_weights`` enum)."""

    def published(source: str) -> Published:
        tag = _split(source, "torchvision") or "DEFAULT"
        from torchvision.models import get_model_weights

        enum = get_model_weights(arch)
        name = tag.split(".", 1)[1] if tag.startswith(enum.__name__ + ".") else tag
        members = list(enum.__members__)
        if name not in members:
            raise CheckpointError(
                f"model.weights: '{source}' is not a torchvision weight of {arch}"
                f"{_dym(name, members)} (known: {', '.join(members)})"
            )
        w = enum[name]
        tr = w.transforms()
        crop = getattr(tr, "crop_size", None)
        size = (int(crop[0]), int(crop[0])) if crop else None
        return Published(
            f"torchvision:{enum.__name__}.{w.name}",
            tuple(tr.mean),
            tuple(tr.std),
            len(w.meta.get("categories") or []) or 1000,
            size,
            url=w.url,
        )

    return published


def timm_weights(arch: str):
    """``ModelSpec.published`` for a timm architecture (its pretrained tags)."""

    def published(source: str) -> Published:
        import timm

        tag = _split(source, "timm")
        if tag.startswith(arch + "."):
            tag = tag[len(arch) + 1 :]
        tags = [n.split(".", 1)[1] for n in timm.list_pretrained(arch + ".*") if n.split(".", 1)[0] == arch]
        if not tags:
            raise CheckpointError(f"model.weights: timm has no pretrained weights for {arch}")
        tag = tag or tags[0]
        if tag not in tags:
            raise CheckpointError(
                f"model.weights: '{source}' is not a pretrained tag of timm:{arch}{_dym(tag, tags)} "
                f"(known: {', '.join(tags[:12])}{' ...' if len(tags) > 12 else ''})"
            )
        cfg = timm.models.get_pretrained_cfg(f"{arch}.{tag}")
        size = tuple(cfg.input_size[1:]) if cfg.input_size else None
        hub = cfg.hf_hub_id or None
        fn = getattr(cfg, "hf_hub_filename", None)
        files = (fn,) if fn else ("model.safetensors", "pytorch_model.bin")
        return Published(
            f"timm:{arch}.{tag}",
            tuple(cfg.mean),
            tuple(cfg.std),
            int(cfg.num_classes or 1000),
            size,
            url=None if hub else cfg.url,
            hf_hub_id=hub,
            filenames=files,
        )

    return published
