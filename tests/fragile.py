"""A test fixture: a trained tinycnn made to have ONE layer that int8 breaks (``FRAGILE``), for the mixed-precision
and accuracy-aware fallback tests.

How: one channel of the first conv is dead from the start (its BN scale 0, shift −1: ReLU outputs 0 for every
image, and no gradient reaches it), the network is trained as usual, then the second conv (``net.4``) gets a
weight of ``OUTLIER`` on that dead input in every output channel. In float the outlier multiplies zeros and
changes nothing; int8's per-channel weight scale is then set by the outlier, so every real weight of ``net.4``
rounds to 0 and the quantized layer outputs its bias alone. Every other layer quantizes normally. The model is a
real trained network; nothing here is a mock.
"""

from __future__ import annotations

import torch

FRAGILE = "net.4"
OUTLIER = 1000.0


def fragile_tinycnn(bundle, epochs: int = 15, dead: int = 0) -> torch.nn.Module:
    """A tinycnn trained on ``bundle`` with ``net.4`` fragile under int8 (see the module docstring)."""
    from compressbench.models import create_model
    from compressbench.train import TrainRecipe, train

    torch.manual_seed(0)
    m = create_model("tinycnn", bundle.meta)
    with torch.no_grad():
        m.net[1].weight[dead] = 0.0
        m.net[1].bias[dead] = -1.0
    train(
        m, bundle.train, TrainRecipe(epochs=epochs, batch_size=64, lr=0.1, augment="none"), seed=0, show_progress=False
    )
    m.eval()
    with torch.no_grad():
        m.net[4].weight[:, dead] = OUTLIER
    return m
