"""Inputs of LatentDiffusionSuperResolutionPipeline: the argument checks (one ValueError naming the
argument each); the image y becomes an RGB batch through `hfldm.pipelines.images.rgb_batch`.
"""

from __future__ import annotations

import numpy as np

from .hfldm_pipelines_arguments import check_arguments
from .hfldm_pipelines_images import rgb_batch
from .hfldm_pipelines_inputs import check_sampling


def batch_shape(images) -> tuple[int, int, int]:
    """(B, H, W) of an `rgb_batch`; ValueError naming `image` when the images' sizes differ."""
    if isinstance(images, list):
        sizes = {(i.height, i.width) for i in images}
        if len(sizes) > 1:
            raise ValueError(f"image: all images of a batch must have one size, got {sorted(sizes)} (H, W)")
        return (len(images), *sizes.pop())
    if isinstance(images, np.ndarray):
        return images.shape[0], images.shape[1], images.shape[2]
    return images.shape[0], images.shape[2], images.shape[3]


def check_inputs(pipe, arguments: dict) -> tuple[int, int, int]:
    """Raise a ValueError naming the first argument of `pipe(**arguments)` the pipeline cannot use; return
    (B, H, W) of the low-resolution batch.

    Its sides must be multiples of the U-Net's 2^(levels - 1) times r, since the latent grid has the
    low-resolution image's size / r (r = 1 unless the pipeline's condition_layout is "space_to_depth").
    """
    if arguments.get("image") is None:
        raise ValueError("image: required (the low-resolution image(s) to upscale)")
    check_arguments(arguments)
    batch, height, width = batch_shape(rgb_batch(arguments["image"]))
    multiple = pipe.size_multiple
    if height % multiple or width % multiple:
        raise ValueError(
            f"image: {height}x{width} pixels (H x W) is not a size this model takes: both sides must be "
            f"multiples of {multiple} (the latent grid's r = {pipe.space_to_depth_factor} × the U-Net's "
            f"{multiple // pipe.space_to_depth_factor} of its downsampling), e.g. "
            f"{max(multiple, height - height % multiple)}x{max(multiple, width - width % multiple)}"
        )
    check_sampling(pipe, arguments, batch)
    return batch, height, width
