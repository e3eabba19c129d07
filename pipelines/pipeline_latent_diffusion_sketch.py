"""LatentDiffusionSketchPipeline: sketch-to-image, the spatial conditioning of Rombach et al. 2022 (§4.3.2,
semantic synthesis by a map concatenated to z_t), hybrid with the prompt through cross-attention as the
inpainting model is (`hfldm.training.sketch` trains it).

A sketch is dark strokes on white: PIL (any mode; transparency is white), an array or a tensor in [0, 1], or a
list of them. Its ink s = 1 − gray is reduced to the output's size keeping every stroke (a max over each
block, so a thin line on a large canvas survives), binarised at 0.5, and folded onto the latent grid by
space-to-depth (`sketch_condition`: f² channels of the H/f × W/f grid, as SR folds its low-res image): at
every step the U-Net sees [z_t, s↓] beside τ_θ(prompt), with classifier-free guidance over the prompt only.

`save_pretrained` ships this file, with every hfldm module it needs, in each saved folder
(`hfldm.pipelines.self_contained`): hfldm imports here are `from hfldm.x import name`, the form it rewrites.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from diffusers import ImagePipelineOutput
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import PipelineImageInput, VaeImageProcessor

from hfldm.pipelines.arguments import check_arguments
from hfldm.pipelines.call_device import one_execution_device
from hfldm.pipelines.images import rgb_batch
from hfldm.pipelines.inputs import broadcast_batch, check_inputs
from hfldm.pipelines.pipeline_latent_diffusion import LatentDiffusionPipeline
from hfldm.pipelines.sampling import check_finite_output, scheduler_step_kwargs, set_timesteps
from hfldm.pipelines.saving import pipeline_model_card
from hfldm.unets.concat import condition_channels

USAGE = """
## Sketch to image

The U-Net takes {in_channels} input channels: {c} of z_t and {s} of the sketch (its ink folded onto the
latent grid by a {f}×{f} space-to-depth). A sketch is dark strokes on white, of any size.

```python
from diffusers import DiffusionPipeline
from PIL import Image

pipe = DiffusionPipeline.from_pretrained("{repo}", trust_remote_code=True)
image = pipe(prompt="{prompt}", image=Image.open("doodle.png")).images[0]
```
"""


def ink(sketch: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Strokes s (B, 1, height, width) in {0, 1} of sketches (B, 3, H, W) in [-1, 1], dark on light: 1 − gray,
    brought to height × width by the max over each block (larger sketches) or nearest neighbours (smaller)."""
    s = 1 - (sketch.float().mean(dim=1, keepdim=True) + 1) / 2
    if s.shape[-2] >= height and s.shape[-1] >= width:
        s = F.adaptive_max_pool2d(s, (height, width))
    else:
        s = F.interpolate(s, size=(height, width), mode="nearest")
    return (s > 0.5).to(sketch.dtype)


def sketch_condition(strokes: torch.Tensor, downsample_factor: int) -> torch.Tensor:
    """Strokes (B, 1, H, W) in [0, 1] (1 = ink) -> (B, f², H/f, W/f) on the latent grid by space-to-depth."""
    return F.pixel_unshuffle(strokes, downsample_factor)


class LatentDiffusionSketchPipeline(LatentDiffusionPipeline):
    r"""Draw images from a sketch and a prompt (or a class, or the sketch alone).

    Args:
        vae: the autoencoder (E, D); D decodes z_0.
        unet: ε_θ([z_t, s↓], t, τ_θ(y)): in_channels = c + f², out_channels = c for the autoencoder's c latent
            channels and downsampling factor f.
        scheduler, text_encoder, tokenizer, id2label, text_attention_mask: as in LatentDiffusionPipeline.
    """

    def __init__(
        self, vae, unet, scheduler, text_encoder=None, tokenizer=None, id2label=None, text_attention_mask=True
    ):
        super().__init__(vae, unet, scheduler, text_encoder, tokenizer, id2label, text_attention_mask)
        f, cfg = self.vae_scale_factor, unet.config
        if condition_channels(cfg) != f * f:
            raise ValueError(
                f"unet: a sketch U-Net needs in_channels = out_channels + {f * f} (the sketch folded {f}×{f} "
                f"onto the latent grid); this one has in_channels {cfg.in_channels}, out_channels "
                f"{cfg.out_channels}"
            )
        self.sketch_processor = VaeImageProcessor(vae_scale_factor=f, do_resize=False)

    def default_model_card(self, repo: str, **metadata) -> str:
        card = pipeline_model_card(self, repo, **metadata)
        card = card.replace("pipeline_tag: text-to-image", "pipeline_tag: image-to-image")
        f, c = self.vae_scale_factor, self.unet.config.out_channels
        prompt = "cat face" if self.is_text_conditional else ""
        return card + USAGE.format(
            in_channels=self.unet.config.in_channels, c=c, s=f * f, f=f, repo=repo, prompt=prompt
        )

    def check_inputs(self, **arguments) -> int:
        """ValueError naming the first bad argument of `__call__`: `image` (the sketch: required, images),
        then the rest as LatentDiffusionPipeline checks them, at the output's size."""
        image = arguments.get("image")
        if image is None:
            raise ValueError("image: required (the sketch: dark strokes on white)")
        check_arguments({"image": image})
        height, width = self.output_size(arguments.get("height"), arguments.get("width"))
        return check_inputs(self, arguments | {"image": None, "height": height, "width": width})

    def output_size(self, height: int | None, width: int | None) -> tuple[int, int]:
        """(height, width): the given ones, else the model's native size."""
        native = self.default_image_size()
        return height or native[0], width or native[1]

    def prepare_sketch(self, image, height: int, width: int) -> torch.Tensor:
        """s↓ (N, f², height/f, width/f) of the sketch batch `image`, on the execution device."""
        sketch = self.sketch_processor.preprocess(rgb_batch(image))
        strokes = ink(sketch, height, width).to(self._execution_device)
        return sketch_condition(strokes, self.vae_scale_factor)

    @one_execution_device
    @torch.inference_mode()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        image: PipelineImageInput | None = None,
        negative_prompt: str | list[str] | None = None,
        class_labels: int | str | list[int | str] | None = None,
        height: int | None = None,
        width: int | None = None,
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
        output_type: str = "pil",
        return_dict: bool = True,
        cross_attention_kwargs: dict | None = None,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["latents"],  # noqa: B006 (diffusers' signature)
    ) -> ImagePipelineOutput | tuple:
        r"""Draw what `prompt` says along the strokes of `image`.

        Args:
            prompt: text(s) describing the image (text-conditional models).
            image: the sketch(es): dark strokes on white, PIL / array / tensor in [0, 1] of any size, or a
                list; one sketch for every prompt, or one per prompt.
            height, width: of the output (default: the model's native size); the sketch is brought to it.
            negative_prompt, class_labels, num_inference_steps, timesteps, guidance_scale (over the prompt;
            the sketch is in both halves), num_images_per_prompt, eta, generator, latents, prompt_embeds (and
            negative, masks), output_type, cross_attention_kwargs, callback_on_step_end: as in
            LatentDiffusionPipeline.

        Returns:
            `ImagePipelineOutput` with `.images`: prompts (or sketches) × num_images_per_prompt images.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        self.check_inputs(**{k: v for k, v in locals().items() if k != "self"})
        self._guidance_scale, self._cross_attention_kwargs = guidance_scale, cross_attention_kwargs
        device, dtype = self._execution_device, torch.float32  # z_t and the scheduler's maths in fp32
        height, width = self.output_size(height, width)

        # 1. the sketches' strokes on the latent grid s↓; the conditions y (τ_θ(prompt), classes)
        condition = self.prepare_sketch(image, height, width).to(dtype)
        batch_size, _, unet_kwargs = self.encode_conditions(
            prompt,
            negative_prompt,
            class_labels,
            num_images_per_prompt,
            guidance_scale,
            len(condition),
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            prompt_attention_mask=prompt_attention_mask,
            negative_prompt_attention_mask=negative_prompt_attention_mask,
        )
        condition = broadcast_batch(condition, batch_size, num_images_per_prompt)

        # 2. timesteps and z_T; 3. the reverse process, ε_θ([z_t, s↓], t, τ_θ(y))
        timesteps = set_timesteps(self.scheduler, num_inference_steps, timesteps, device)
        latents = self.prepare_latents(len(condition), height, width, dtype, generator, latents)
        latents = self.denoise(
            latents,
            timesteps,
            unet_kwargs,
            scheduler_step_kwargs(self.scheduler, generator, eta),
            callback_on_step_end,
            callback_on_step_end_tensor_inputs,
            condition=condition,
        )

        # 4. x̂ = D(z_0)
        if output_type == "latent":
            images = check_finite_output(latents)
        else:
            decoded = self.latent_space.decode_latents(self.latent_space.unscale_latents(latents)).float()
            images = self.image_processor.postprocess(check_finite_output(decoded), output_type=output_type)
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=images) if return_dict else (images,)
