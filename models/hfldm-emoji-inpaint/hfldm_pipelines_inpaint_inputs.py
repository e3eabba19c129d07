"""Inputs of LatentDiffusionInpaintPipeline: the mask as a (B, 1, H, W) tensor in [0, 1], and the checks.

A mask is white (1) where the image is to be repainted and black (0) where it is kept, as in diffusers'
inpainting pipelines. It may be a PIL image of any mode (converted to grayscale, "L"), an array (H, W),
(H, W, C) or (B, H, W, C) or a tensor (H, W), (C, H, W) or (B, C, H, W), with C = 1, or 3 / 4 (RGB / RGBA,
whose RGB mean is taken), in [0, 1] (uint8 arrays as 0..255), or a list of one kind. diffusers'
VaeImageProcessor then resizes it to the image's size (nearest) and binarises it at 0.5.
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch

from .hfldm_pipelines_arguments import check_arguments
from .hfldm_pipelines_images import rgb_batch
from .hfldm_pipelines_superres_inputs import batch_shape


def _single_channel(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) with C in 1, 3, 4 -> (B, 1, H, W); ValueError naming `mask_image` otherwise."""
    if x.ndim != 4 or x.shape[1] not in (1, 3, 4):
        raise ValueError(
            f"mask_image: expected a single-channel mask (or RGB / RGBA, converted to grayscale), got a "
            f"batch of shape {tuple(x.shape)} (B, C, H, W)"
        )
    return x if x.shape[1] == 1 else x[:, :3].mean(1, keepdim=True)


def _one_mask(mask) -> torch.Tensor:
    """One entry of `mask_image` -> (B, 1, H, W) float."""
    if isinstance(mask, PIL.Image.Image):
        return torch.from_numpy(np.asarray(mask.convert("L"), dtype=np.float32) / 255)[None, None]
    if isinstance(mask, np.ndarray):
        array = mask.astype(np.float32) / 255 if mask.dtype == np.uint8 else mask.astype(np.float32)
        array = array[..., None] if array.ndim == 2 else array  # (H, W) -> (H, W, 1)
        array = array[None] if array.ndim == 3 else array  # (H, W, C) -> (1, H, W, C)
        if array.ndim != 4:
            raise ValueError(
                f"mask_image: expected an array (H, W), (H, W, C) or (B, H, W, C), got {mask.shape}"
            )
        return _single_channel(torch.from_numpy(array).permute(0, 3, 1, 2))
    if isinstance(mask, torch.Tensor):
        t = mask.float()
        t = t[None] if t.ndim == 2 else t  # (H, W) -> (1, H, W)
        return _single_channel(t[None] if t.ndim == 3 else t)
    raise ValueError(
        f"mask_image: expected a PIL image, numpy array or torch tensor, got {type(mask).__name__}"
    )


def mask_batch(mask_image) -> torch.Tensor:
    """`mask_image` (see the module doc) -> (B, 1, H, W) float in [0, 1], not yet binarised or resized."""
    masks = list(mask_image) if isinstance(mask_image, (list, tuple)) else [mask_image]
    if not masks:
        raise ValueError("mask_image: the batch is empty")
    masks = [_one_mask(m) for m in masks]
    sizes = {tuple(m.shape[-2:]) for m in masks}
    if len(sizes) > 1:
        raise ValueError(f"mask_image: all masks of a batch must have one size, got {sorted(sizes)} (H, W)")
    return torch.cat(masks).clamp(0, 1)


def check_inpaint_inputs(pipe, arguments: dict) -> tuple[int, int, int]:
    """ValueError naming the first of `image` / `mask_image` the pipeline cannot use; returns (B, H, W) of the
    image batch, whose sides must be multiples of `pipe.size_multiple` (the image is not resized: the kept
    pixels are pasted back as they are). The other arguments are LatentDiffusionPipeline's."""
    image, mask_image = arguments.get("image"), arguments.get("mask_image")
    if image is None:
        raise ValueError("image: required (the image to inpaint)")
    if mask_image is None:
        raise ValueError("mask_image: required (white = repaint, black = keep)")
    check_arguments({"image": image, "mask_image": mask_image})
    n_images, height, width = batch_shape(rgb_batch(image))
    multiple = pipe.size_multiple
    if height % multiple or width % multiple:
        raise ValueError(
            f"image: {height}x{width} pixels (H x W) is not a size this model takes: both sides must be "
            f"multiples of {multiple} (the autoencoder's f = {pipe.vae_scale_factor} times the U-Net's "
            f"downsampling), e.g. {max(multiple, height - height % multiple)}x"
            f"{max(multiple, width - width % multiple)}"
        )
    n_masks = len(mask_batch(mask_image))
    if n_masks not in (1, n_images):
        raise ValueError(f"mask_image: {n_masks} masks for {n_images} images (give 1 or {n_images})")
    return n_images, height, width
