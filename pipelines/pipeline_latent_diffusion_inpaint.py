"""LatentDiffusionInpaintPipeline: text-guided inpainting by concatenation conditioning (Rombach et al. 2022,
§3.3 and §4.5; the layout of Stable Diffusion 2's inpainting model, "hybrid" conditioning).

At every step the U-Net sees [z_t, E(x ⊙ (1 − m))·scale, m↓] (`hfldm.unets.inpaint_condition`), with
τ_θ(y) of the prompt through cross-attention and classifier-free guidance as in LatentDiffusionPipeline,
whose prompt encoding and denoising loop it shares. The mask m is white (1) where the image is repainted,
black (0) where it is kept (diffusers' convention), processed by diffusers' VaeImageProcessor (resized to
the image's size, binarised at 0.5). By default the kept pixels are pasted back from the input after
decoding, x̂ = m ⊙ D(z_0) + (1 − m) ⊙ x (as CompVis' scripts/inpaint.py does): outside the mask the output
is the input, exactly; `paste_back=False` returns the decoder's image.

`save_pretrained` ships this file, with every hfldm module it needs, in each saved folder
(`hfldm.pipelines.self_contained`): hfldm imports here are `from hfldm.x import name`, the form it rewrites.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import ImagePipelineOutput
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import PipelineImageInput, VaeImageProcessor

from hfldm.autoencoders.latent_space import latent_space
from hfldm.pipelines.call_device import one_execution_device
from hfldm.pipelines.images import rgb_batch
from hfldm.pipelines.inpaint_inputs import check_inpaint_inputs, mask_batch
from hfldm.pipelines.inputs import broadcast_batch, check_inputs
from hfldm.pipelines.native_size import warn_other_size
from hfldm.pipelines.pipeline_latent_diffusion import LatentDiffusionPipeline
from hfldm.pipelines.sampling import check_finite_output, scheduler_step_kwargs, set_timesteps
from hfldm.pipelines.saving import pipeline_model_card
from hfldm.unets.concat import condition_channels
from hfldm.unets.inpaint_condition import (
    inpaint_condition,
    inpaint_condition_channels,
    mask_to_latent_grid,
    masked_image,
)

USAGE = """
## Inpainting

The U-Net takes {in_channels} input channels: {c} of z_t, {c} of the encoded masked image and 1 of the mask
(white = repaint, black = keep).

```python
from diffusers import DiffusionPipeline
from PIL import Image

pipe = DiffusionPipeline.from_pretrained("{repo}", trust_remote_code=True)
image = pipe("{prompt}", image=Image.open("image.png"), mask_image=Image.open("mask.png")).images[0]
```
"""


class LatentDiffusionInpaintPipeline(LatentDiffusionPipeline):
    r"""Repaint the masked region of images, guided by a prompt (or a class, or nothing).

    Args:
        vae: the autoencoder (E, D); E encodes the masked image, D decodes z_0.
        unet: ε_θ([z_t, E(x ⊙ (1 − m)), m↓], t, τ_θ(y)): in_channels = 2c + 1, out_channels = c for the
            autoencoder's c latent channels.
        scheduler: any diffusers scheduler.
        text_encoder, tokenizer: τ_θ and its tokenizer (None: not text-conditional).
        id2label, text_attention_mask: as in LatentDiffusionPipeline.
    """

    def __init__(
        self,
        vae,
        unet,
        scheduler,
        text_encoder=None,
        tokenizer=None,
        id2label=None,
        text_attention_mask: bool = True,
    ):
        c = latent_space(vae).latent_channels
        cfg = unet.config
        if cfg.out_channels != c or condition_channels(cfg) != inpaint_condition_channels(c):
            raise ValueError(
                f"unet: an inpainting U-Net needs in_channels = {2 * c + 1} ({c} of z_t, {c} of the masked "
                f"image's latent, 1 of the mask) and out_channels = {c} (the autoencoder's latent channels); "
                f"this one has in_channels {cfg.in_channels}, out_channels {cfg.out_channels}"
            )
        super().__init__(vae, unet, scheduler, text_encoder, tokenizer, id2label, text_attention_mask)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor, do_resize=False)
        self.mask_processor = VaeImageProcessor(
            vae_scale_factor=self.vae_scale_factor,
            do_normalize=False,
            do_binarize=True,
            do_convert_grayscale=True,
            vae_latent_channels=0,
        )

    def default_model_card(self, repo: str, **metadata) -> str:
        c = self.unet.config.out_channels
        card = pipeline_model_card(self, repo, **metadata)
        card = card.replace("pipeline_tag: text-to-image", "pipeline_tag: image-to-image")
        prompt = "a smiling cat face" if self.is_text_conditional else ""
        return card + USAGE.format(in_channels=self.unet.config.in_channels, c=c, repo=repo, prompt=prompt)

    def check_inputs(self, **arguments) -> int:
        """ValueError naming the first bad argument of `__call__`: image and mask (`hfldm.pipelines.
        inpaint_inputs`), then the rest as LatentDiffusionPipeline checks them, at the image's size."""
        _, height, width = check_inpaint_inputs(self, arguments)
        return check_inputs(self, arguments | {"height": height, "width": width})

    def prepare_mask(self, mask_image, batch_size: int, height: int, width: int) -> torch.Tensor:
        """m (B, 1, H, W) in {0, 1} on the execution device: resized to the image, binarised, one per image
        (a single mask serves the whole batch)."""
        mask = self.mask_processor.preprocess(mask_batch(mask_image), height=height, width=width)
        if len(mask) not in (1, batch_size):
            raise ValueError(
                f"mask_image: {len(mask)} masks for {batch_size} images (give 1 or {batch_size})"
            )
        return mask.expand(batch_size, -1, -1, -1).to(self._execution_device)

    def encode_masked_image(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[E(x ⊙ (1 − m))·scale, m↓] (B, c + 1, H/f, W/f) of images x in [-1, 1] and pixel masks m."""
        latents = self.latent_space.scale_latents(self.latent_space.latents(masked_image(x, mask)))
        return inpaint_condition(latents, mask_to_latent_grid(mask, self.vae_scale_factor))

    @one_execution_device
    @torch.inference_mode()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        image: PipelineImageInput | None = None,
        mask_image: PipelineImageInput | None = None,
        negative_prompt: str | list[str] | None = None,
        class_labels: int | str | list[int | str] | None = None,
        num_inference_steps: int = 50,
        timesteps: list[int] | None = None,
        guidance_scale: float = 3.0,
        num_images_per_prompt: int = 1,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        prompt_attention_mask: torch.Tensor | None = None,
        negative_prompt_attention_mask: torch.Tensor | None = None,
        paste_back: bool = True,
        output_type: str = "pil",
        return_dict: bool = True,
        cross_attention_kwargs: dict | None = None,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["latents"],  # noqa: B006 (diffusers' signature)
    ) -> ImagePipelineOutput | tuple:
        r"""Inpaint `image` where `mask_image` is white.

        Args:
            prompt: text(s) describing the image after inpainting (text-conditional models).
            image: the image(s) to inpaint: PIL, array or tensor in [0, 1], or a list (as
                LatentDiffusionPipeline's `image`); sides multiples of `size_multiple`, never resized.
            mask_image: white (1) = repaint, black (0) = keep: PIL (any mode), array or tensor with one
                channel (RGB / RGBA converted to grayscale); resized to the image's size, binarised at
                0.5. One mask for the batch, or one per image.
            negative_prompt, class_labels, guidance_scale, num_images_per_prompt, eta, generator, latents,
            timesteps, prompt_embeds (and negative, masks), output_type, cross_attention_kwargs,
            callback_on_step_end: as in LatentDiffusionPipeline.
            num_inference_steps: scheduler steps.
            paste_back: paste the kept pixels back from `image` after decoding (default), so that the output
                equals the input outside the mask; False returns D(z_0) everywhere.

        Returns:
            `ImagePipelineOutput` with `.images`: images × num_images_per_prompt, each the image's size.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        self.check_inputs(**{k: v for k, v in locals().items() if k != "self"})
        self._guidance_scale, self._cross_attention_kwargs = guidance_scale, cross_attention_kwargs
        device, dtype = self._execution_device, torch.float32  # z_t and the scheduler's maths in fp32
        rgb = rgb_batch(image)

        # 1. x in [-1, 1] and m in {0, 1}, (N, ·, H, W); the conditions y; [E(x ⊙ (1 − m)), m↓]
        x = self.image_processor.preprocess(rgb).to(device)
        n_images, _, height, width = x.shape
        warn_other_size(self, height, width)
        mask = self.prepare_mask(mask_image, n_images, height, width)
        batch_size, _, unet_kwargs = self.encode_conditions(
            prompt,
            negative_prompt,
            class_labels,
            num_images_per_prompt,
            guidance_scale,
            n_images,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            prompt_attention_mask=prompt_attention_mask,
            negative_prompt_attention_mask=negative_prompt_attention_mask,
        )
        x, mask = (broadcast_batch(t, batch_size, num_images_per_prompt) for t in (x, mask))
        condition = self.encode_masked_image(x.to(self.vae.dtype), mask.to(self.vae.dtype)).to(dtype)

        # 2. timesteps and z_T; 3. the reverse process, ε_θ([z_t, E(x ⊙ (1 − m)), m↓], t, τ_θ(y))
        timesteps = set_timesteps(self.scheduler, num_inference_steps, timesteps, device)
        latents = self.prepare_latents(len(x), height, width, dtype, generator, latents)
        latents = self.denoise(
            latents,
            timesteps,
            unet_kwargs,
            scheduler_step_kwargs(self.scheduler, generator, eta),
            callback_on_step_end,
            callback_on_step_end_tensor_inputs,
            condition=condition,
        )

        # 4. x̂ = D(z_0), the kept pixels pasted back: x̂ = m ⊙ D(z_0) + (1 − m) ⊙ x
        if output_type == "latent":
            images = check_finite_output(latents)
        else:
            decoded = self.latent_space.decode_latents(self.latent_space.unscale_latents(latents)).float()
            check_finite_output(decoded)
            if paste_back:
                decoded = torch.where(mask.bool(), decoded, x.float())
            images = self.image_processor.postprocess(decoded, output_type=output_type)
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=images) if return_dict else (images,)
