"""The inpainting task of train_ldm.py (LDM §4.5, text-guided as Stable Diffusion 2's inpainting model).

For an image x (the batch's pixel_values, in [-1, 1]) a mask m is drawn from the sample's own generator of
the stream INPAINT_STREAM, seeded by (seed, micro step, global index): rectangles or free-form strokes
covering 10–60 % of the image, or, with probability --full_mask_prob, all of it (`hfldm.data.masks`). The
U-Net sees [z_t, E(x ⊙ (1 − m))·scale, m↓] (`hfldm.unets.inpaint_condition`) and, through cross-attention,
τ_θ(y) of the caption as before, dropped with --cond_drop_prob for guidance. The loss is the usual one over
the whole latent: the kept region is easy, not free. Resumed and multi-process runs draw the same masks.

`adapt_pretrained` is the SD-2 recipe (--init_from a text model): the trained U-Net gets 2c + 1 input
channels, the new ones' conv_in weights zero, so training starts from the text model's own predictions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hfldm.autoencoders.latent_space import LatentSpace
from hfldm.data.masks import held_out_masks, random_mask
from hfldm.training.latents import mirrored
from hfldm.training.randomness import global_indices, sample_generators
from hfldm.training.tasks import GenerationTask, PipelineParts, ValidationSettings
from hfldm.unets.concat import concat_condition, condition_channels, with_condition_channels
from hfldm.unets.inpaint_condition import (
    inpaint_condition,
    inpaint_condition_channels,
    mask_to_latent_grid,
    masked_image,
)

INPAINT_STREAM = 3  # after randomness' TRAINING_STREAM and SCALE_STREAM, and superres' SUPERRES_STREAM


@dataclass
class InpaintTask(GenerationTask):
    """Draws a mask per sample and concatenates [E(x ⊙ (1 − m))·scale, m↓] to z_t."""

    ae: LatentSpace  # the frozen E that encodes the masked image
    full_mask_prob: float
    seed: int
    process_index: int
    unet_config: object = None  # set once the U-Net exists

    @property
    def condition_channels(self) -> int:
        return inpaint_condition_channels(self.ae.latent_channels)

    def masks(self, batch_size: int, height: int, width: int, micro_step: int) -> torch.Tensor:
        """(B, 1, H, W) in {0, 1}: this process's samples' masks at forward pass `micro_step`."""
        indices = global_indices(batch_size, self.process_index)
        generators = sample_generators(self.seed, micro_step, indices, INPAINT_STREAM)
        return torch.stack([random_mask(g, height, width, self.full_mask_prob) for g in generators])

    @torch.no_grad()
    def condition(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[E(x ⊙ (1 − m))·scale, m↓] (B, c + 1, H/f, W/f) of images x in [-1, 1] and pixel masks m."""
        masked_latents = self.ae.scale_latents(self.ae.latents(masked_image(x, mask)))  # the posterior mean
        return inpaint_condition(masked_latents, mask_to_latent_grid(mask, self.ae.downsample_factor))

    def unet_input(self, z_t: torch.Tensor, batch: dict, micro_step: int, flip) -> torch.Tensor:
        """[z_t, E(x ⊙ (1 − m))·scale, m↓] (B, 2c + 1, h, w), x mirrored where `flip` as z_0's image is."""
        x = mirrored(batch["pixel_values"], flip)
        mask = self.masks(len(x), x.shape[-2], x.shape[-1], micro_step).to(x.device, x.dtype)
        return concat_condition(z_t, self.condition(x, mask).to(z_t.device), self.unet_config)

    def adapt_pretrained(self, unet):
        """A text / class / unconditional U-Net widened by zero-initialised condition channels; an inpainting
        U-Net of this autoencoder as it is; ValueError naming the flag for any other."""
        have = condition_channels(unet.config)
        if have == 0:
            return with_condition_channels(unet, self.condition_channels)
        if have != self.condition_channels:
            raise ValueError(
                f"--init_from: its U-Net takes {have} condition channels; inpainting with this autoencoder "
                f"needs 0 (a text model, widened) or {self.condition_channels}"
            )
        return unet

    def pipeline(self, parts: PipelineParts):
        from hfldm.pipelines.pipeline_latent_diffusion_inpaint import LatentDiffusionInpaintPipeline

        return super().pipeline(parts, pipeline_class=LatentDiffusionInpaintPipeline)

    def validation(self, pipeline, batch: dict, settings: ValidationSettings) -> tuple:
        """masked | inpainted | real of the first training images with their captions and held-out masks;
        {"psnr_masked": PSNR inside the masks}."""
        from hfldm.training.inpaint_validation import inpaint_grid

        n = len(settings.seeds)
        x = batch["pixel_values"][:n].float().cpu()
        prompts = list(batch["text"][:n]) if pipeline.is_text_conditional and "text" in batch else None
        masks = held_out_masks(len(x), x.shape[-2], x.shape[-1], seed=settings.seeds[0])
        return inpaint_grid(pipeline, x, masks, prompts, settings)
