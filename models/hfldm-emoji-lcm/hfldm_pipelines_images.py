"""Image inputs of hfldm's pipelines as an RGB batch: what diffusers' VaeImageProcessor takes.

PIL images of any mode go through `hfldm.data.images.to_rgb`, the conversion the training data gets
(transparency composited on white); arrays (H, W, C) / (B, H, W, C) and tensors (C, H, W) / (B, C, H, W) in
[0, 1] with 1 (grayscale) or 4 (RGBA) channels are converted the same way. uint8 arrays are read as 0..255.
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch

from .hfldm_data_images import to_rgb

CHANNELS = {1: "grayscale", 3: "RGB", 4: "RGBA"}


def _rgb_channels(x):
    """A (B, C, H, W) array / tensor in [0, 1] with C = 1, 3 or 4 -> (B, 3, H, W) (RGB)."""
    channels = x.shape[1]
    if channels not in CHANNELS:
        raise ValueError(f"image: expected 1 (grayscale), 3 (RGB) or 4 (RGBA) channels, got {channels}")
    if channels == 1:
        return x[:, [0, 0, 0]]
    if channels == 4:
        return x[:, :3] * x[:, 3:] + (1 - x[:, 3:])  # composited on white, as to_rgb does for PIL images
    return x


def _stack(items: list, concatenate):
    """(B_i, ...) arrays / tensors -> one batch; ValueError naming `image` when their shapes differ."""
    shapes = {tuple(x.shape[1:]) for x in items}
    if len(shapes) > 1:
        raise ValueError(f"image: all images of a batch must have one size, got shapes {sorted(shapes)}")
    return concatenate(items)


def rgb_batch(image) -> list[PIL.Image.Image] | np.ndarray | torch.Tensor:
    """A PIL image, array or tensor (or a list of one kind) -> a list of RGB PIL images, a (B, H, W, 3) float
    array or a (B, 3, H, W) tensor: what diffusers' VaeImageProcessor takes. ValueError naming `image`
    for an empty batch or an unknown type."""
    images = list(image) if isinstance(image, (list, tuple)) else [image]
    empty_array = isinstance(image, (np.ndarray, torch.Tensor)) and image.ndim == 4 and len(image) == 0
    if len(images) == 0 or empty_array:
        raise ValueError("image: the batch is empty (give at least one low-resolution image)")
    kinds = {type(i) for i in images}
    if all(isinstance(i, PIL.Image.Image) for i in images):
        return [i if i.mode == "RGB" else to_rgb(i) for i in images]
    if kinds == {np.ndarray}:
        arrays = [i.astype(np.float32) / 255 if i.dtype == np.uint8 else i for i in images]
        arrays = [a[..., None] if a.ndim == 2 else a for a in arrays]  # (H, W) -> (H, W, 1)
        batch = _stack([a if a.ndim == 4 else a[None] for a in arrays], np.concatenate)
        return np.moveaxis(_rgb_channels(np.moveaxis(batch, 3, 1)), 1, 3)  # (B, H, W, C) <-> (B, C, H, W)
    if kinds == {torch.Tensor}:
        tensors = [t[None] if t.ndim == 2 else t for t in images]  # (H, W) -> (1, H, W)
        return _rgb_channels(_stack([t if t.ndim == 4 else t[None] for t in tensors], torch.cat))
    names = sorted(k.__name__ for k in kinds)
    raise ValueError(f"image: expected PIL images, numpy arrays or torch tensors (one kind), got {names}")
