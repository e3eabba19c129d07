"""Tiny random inpainting pipelines: the text pipeline of `_ldm_fixtures` (16 px, f = 2, 4 latent channels)
with a U-Net of 4 + 4 + 1 input channels."""

from __future__ import annotations

import numpy as np
import PIL.Image
from _ldm_fixtures import IMAGE_SIZE, perturb, text_pipeline

from hfldm import LatentDiffusionInpaintPipeline
from hfldm.unets.concat import with_condition_channels


def inpaint_pipeline(zero_init: bool = False, text=None) -> LatentDiffusionInpaintPipeline:
    """The tiny text model (or `text`, whose parts it shares: two trained tokenizers may differ) with its
    U-Net widened by 5 channels: zero-initialised (computes exactly what the text model does) or perturbed
    (every condition channel changes the output)."""
    text = text or text_pipeline()
    unet = with_condition_channels(text.unet, 5).eval()
    if not zero_init:
        perturb(unet.conv_in, seed=5)  # the new channels' zero weights get random values
        unet.conv_in.weight.data[:, 4:] += 0.1
    pipe = LatentDiffusionInpaintPipeline(text.vae, unet, text.scheduler, text.text_encoder, text.tokenizer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def images(n: int, seed: int = 0, size: int = IMAGE_SIZE) -> list[PIL.Image.Image]:
    rng = np.random.RandomState(seed)
    return [PIL.Image.fromarray((rng.rand(size, size, 3) * 255).astype(np.uint8)) for _ in range(n)]


def box_mask(size: int = IMAGE_SIZE, top: int = 4, left: int = 4, side: int = 8) -> PIL.Image.Image:
    """White (repaint) square of `side` pixels at (top, left) on black (keep)."""
    mask = np.zeros((size, size), np.uint8)
    mask[top : top + side, left : left + side] = 255
    return PIL.Image.fromarray(mask)
