"""Diversity of a text model's samples against the real variety of a name (#30).

`mean_pairwise_distance(images)`: the mean over all pairs i < j of the mean absolute per-pixel difference
|x_i − x_j|, images in [0, 1] (so 1.3/255 ≈ 0.005 means six near-copies). For a model: its seeds of one
prompt; for the data: the drawings of one name by the different styles.
"""

from __future__ import annotations

import torch


def mean_pairwise_distance(images: torch.Tensor) -> float:
    """images (K, C, H, W) in [0, 1], K >= 2 -> mean_{i<j} mean |x_i − x_j| (a float in [0, 1])."""
    if len(images) < 2:
        raise ValueError(f"images: need at least 2 to compare, got {len(images)}")
    flat = images.flatten(1).float()  # (K, C·H·W)
    i, j = torch.triu_indices(len(flat), len(flat), offset=1)
    return float((flat[i] - flat[j]).abs().mean())
