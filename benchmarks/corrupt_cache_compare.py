"""Corrupting a batch vs loading the same corrupted batch from a cache (issue 27: the two ways to corrupt once).

Conditions: 20 random uint8 images at 224 px, severity 3, seven corruptions of different kinds, 2 threads;
``corrupt()`` timed against ``np.load`` of its saved output (page cache warm). Prints one line per corruption.

    .venv/bin/python benchmarks/corrupt_cache_compare.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from compressbench.evaluate.corruptions.core import corrupt

NAMES = ["gaussian_noise", "defocus_blur", "glass_blur", "snow", "jpeg_compression", "pixelate", "elastic_transform"]


def main() -> None:
    torch.set_num_threads(2)
    x = torch.randint(0, 256, (20, 3, 224, 224), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    idx = torch.arange(len(x))
    gen = load = 0.0
    with tempfile.TemporaryDirectory() as d:
        for n in NAMES:
            t0 = time.perf_counter()
            xc = corrupt(x, idx, n, 3, seed=0)
            tg = time.perf_counter() - t0
            f = Path(d) / f"{n}.npy"
            np.save(f, xc.numpy())
            t0 = time.perf_counter()
            torch.from_numpy(np.load(f))
            tl = time.perf_counter() - t0
            gen, load = gen + tg, load + tl
            print(
                f"{n}: generate {tg * 1000:.0f} ms, load from cache {tl * 1000:.1f} ms "
                f"({f.stat().st_size / 1e6:.1f} MB)"
            )
    print(f"total generate {gen:.2f} s, load {load:.3f} s for {len(x)} images x {len(NAMES)} corruptions")


if __name__ == "__main__":
    main()
