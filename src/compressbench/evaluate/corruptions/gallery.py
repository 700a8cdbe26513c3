"""A gallery PNG: one image under every corruption (rows) × severity (columns), labelled."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch


def make_gallery(
    images: torch.Tensor,
    names: Sequence[str],
    severities: Sequence[int],
    path: str | Path,
    indices: torch.Tensor | Sequence[int] | None = None,
    seed: int = 0,
    params: str = "auto",
) -> Path:
    """Write ``path`` (PNG). ``images``: float [0, 1] C×H×W or 1×C×H×W (the first image is used);
    the first column is the clean image."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .core import corrupt

    x = images if images.dim() == 4 else images[None]
    x = (x[:1].float() / 255) if x.dtype == torch.uint8 else x[:1].float()
    idx = [0] if indices is None else [int(torch.as_tensor(indices).reshape(-1)[0])]
    cols = 1 + len(severities)
    fig, axes = plt.subplots(len(names), cols, figsize=(1.1 * cols + 1.6, 1.1 * len(names) + 0.4), squeeze=False)
    gray = x.shape[1] == 1

    def show(ax, t: torch.Tensor) -> None:
        img = t[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy()
        ax.imshow(img[..., 0] if gray else img, cmap="gray" if gray else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])

    for r, name in enumerate(names):
        show(axes[r][0], x)
        axes[r][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        for j, s in enumerate(severities):
            show(axes[r][j + 1], corrupt(x, idx, name, s, seed=seed, params=params))
            if r == 0:
                axes[r][j + 1].set_title(f"severity {s}", fontsize=8)
    axes[0][0].set_title("clean", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
