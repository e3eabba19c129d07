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

from hfldm.autoencoders.latent_space import LatentSpace, latent_space
from hfldm.data.grid import image_grid
from hfldm.data.masks import held_out_masks, random_mask
from hfldm.training.latents import mirrored
from hfldm.training.randomness import global_indices, sample_generators
from hfldm.training.tasks import Task, TaskContext, ValidationSettings
from hfldm.training.validation import to_pil
from hfldm.unets.concat import condition_channels, with_condition_channels
from hfldm.unets.inpaint_condition import (
    inpaint_condition,
    inpaint_condition_channels,
    mask_to_latent_grid,
    masked_image,
)

INPAINT_STREAM = 3  # after randomness' TRAINING_STREAM and SCALE_STREAM, and superres' SUPERRES_STREAM


@dataclass
class InpaintTask(Task):
    """Draws a mask per sample and concatenates [E(x ⊙ (1 − m))·scale, m↓] to z_t."""

    ae: LatentSpace  # the frozen E that encodes the masked image
    full_mask_prob: float
    seed: int
    process_index: int

    @classmethod
    def check_arguments(cls, args, data) -> None:
        if args.cached_latents:
            raise ValueError("--cached_latents: --task inpaint encodes the masked images; train from images")

    @classmethod
    def from_arguments(cls, args, context: TaskContext) -> InpaintTask:
        return cls(
            ae=latent_space(context.vae),
            full_mask_prob=args.full_mask_prob,
            seed=context.seed,
            process_index=context.process_index,
        )

    @property
    def condition_channels(self) -> int:
        return inpaint_condition_channels(self.ae.latent_channels)

    def masks(self, batch_size: int, height: int, width: int, micro_step: int) -> torch.Tensor:
        """(B, 1, H, W) in {0, 1}: this process's samples' masks at forward pass `micro_step`."""
        indices = global_indices(batch_size, self.process_index)
        generators = sample_generators(self.seed, micro_step, indices, INPAINT_STREAM)
        return torch.stack([random_mask(g, height, width, self.full_mask_prob) for g in generators])

    @torch.no_grad()
    def masked_condition(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[E(x ⊙ (1 − m))·scale, m↓] (B, c + 1, H/f, W/f) of images x in [-1, 1] and pixel masks m."""
        masked_latents = self.ae.scale_latents(self.ae.latents(masked_image(x, mask)))  # the posterior mean
        return inpaint_condition(masked_latents, mask_to_latent_grid(mask, self.ae.downsample_factor))

    def condition(self, batch: dict, micro_step: int, flip) -> torch.Tensor:
        """[E(x ⊙ (1 − m))·scale, m↓] (B, c + 1, h, w), x mirrored where `flip` as z_0's image is."""
        x = mirrored(batch["pixel_values"], flip)
        mask = self.masks(len(x), x.shape[-2], x.shape[-1], micro_step).to(x.device, x.dtype)
        return self.masked_condition(x, mask)

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

    def pipeline(self, parts):
        from hfldm.pipelines.pipeline_latent_diffusion_inpaint import LatentDiffusionInpaintPipeline

        return parts.assemble(LatentDiffusionInpaintPipeline)

    def validation(self, pipeline, batch: dict, settings: ValidationSettings) -> tuple:
        """masked | inpainted | real of the first training images with their captions and held-out masks;
        {"psnr_masked": PSNR inside the masks}."""
        n = len(settings.seeds)
        x = batch["pixel_values"][:n].float().cpu()
        prompts = list(batch["text"][:n]) if pipeline.is_text_conditional and "text" in batch else None
        masks = held_out_masks(len(x), x.shape[-2], x.shape[-1], seed=settings.seeds[0])
        return inpaint_grid(pipeline, x, masks, prompts, settings)


def masked_psnr(x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR (dB, images in [-1, 1]) over the pixels where `mask` (B, 1, H, W) is 1."""
    m = mask.expand_as(x).bool()
    mse = ((x_hat.float() - x.float())[m] ** 2).mean()
    return float(10 * torch.log10(4 / mse)) if mse > 0 else float("inf")  # peak-to-peak 2 in [-1, 1]


@torch.no_grad()
def inpaint(pipeline, x: torch.Tensor, masks: torch.Tensor, prompts, settings) -> torch.Tensor:
    """The pipeline's inpainting of images x (B, 3, H, W) in [-1, 1] under `masks`, in [-1, 1], image i
    drawn with a generator seeded by settings.seeds[i]."""
    generators = [torch.Generator().manual_seed(s) for s in settings.seeds[: len(x)]]
    out = pipeline(
        prompt=prompts,
        image=(x + 1) / 2,
        mask_image=masks,
        num_inference_steps=settings.num_inference_steps,
        guidance_scale=settings.guidance_scale if prompts else 1.0,
        generator=generators,
        output_type="pt",
    )
    return out.images.float().cpu() * 2 - 1


def inpaint_grid(pipeline, x: torch.Tensor, masks: torch.Tensor, prompts, settings) -> tuple:
    """(grid with one row per image: masked | inpainted | real, {"psnr_masked"}); main process only."""
    filled = inpaint(pipeline, x, masks, prompts, settings)
    shown = masked_image(x, masks) + masks  # the repainted region white, as a user draws it
    cells = [im for row in zip(to_pil(shown), to_pil(filled), to_pil(x)) for im in row]
    captions = [c for p in (prompts or [""] * len(x)) for c in ("masked", p or "inpainted", "real")]
    grid = image_grid(cells, captions, columns=3, cell=max(64, x.shape[-1]))
    return grid, {"psnr_masked": masked_psnr(filled, x, masks)}
