"""How the low-resolution image y of super-resolution is brought to the latent grid (LDM §4.4).

Two layouts, recorded as the SR pipeline's `condition_layout` config value:

- "resize": y enters as it is, so the latent grid has y's own size and the model upscales by f
  (CompVis' and diffusers' LDM-SR: f = 4 with 4× SR, where the resize of CompVis' data code is the identity).
- "space_to_depth": y (h × w) is rearranged losslessly into 3·r² channels of (h/r) × (w/r), r = f / s for
  s× SR with an f-times downsampling autoencoder (pixel unshuffle, Shi et al. 2016). With f = 4 and 2× SR a
  32 px y becomes 12 × 16 × 16: every pixel is kept, where a resize to 16 × 16 would drop three in four.
  r = 1 is the same as "resize".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CONDITION_LAYOUTS = ("resize", "space_to_depth")
IMAGE_CHANNELS = 3  # y is an RGB image


def space_to_depth_factor(condition_channels: int, layout: str) -> int:
    """r, the side of the pixel blocks folded into channels: 1 for "resize", ⌊√(channels / 3)⌋ (at least 1)
    for "space_to_depth" (the caller checks channels = 3·r²); ValueError naming `condition_layout` for an
    unknown layout."""
    if layout not in CONDITION_LAYOUTS:
        raise ValueError(f"condition_layout: expected one of {CONDITION_LAYOUTS}, got {layout!r}")
    return 1 if layout == "resize" else max(1, math.isqrt(max(condition_channels, 0) // IMAGE_CHANNELS))


def to_latent_grid(y: torch.Tensor, r: int) -> torch.Tensor:
    """y (B, 3, h, w) -> (B, 3·r², h/r, w/r) by space-to-depth (the identity for r = 1)."""
    return y if r == 1 else F.pixel_unshuffle(y, r)
