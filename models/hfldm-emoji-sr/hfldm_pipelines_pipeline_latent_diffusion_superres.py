"""LatentDiffusionSuperResolutionPipeline: super-resolution by concatenation conditioning (Rombach et al.
2022, §3.3 and §4.4).

The low-resolution image y, in [-1, 1], is concatenated to z_t at every step, ε_θ([z_t, y], t), on a latent
grid of y's own size (as CompVis' and diffusers' LDM-SR with f = 4 and 4× SR; `condition_layout` "resize")
or of y's size / r after a lossless space-to-depth of y into 3·r² channels ("space_to_depth", hfldm's 2× SR
with f = 4: `hfldm.unets.condition_layout`); the decoder D upsamples the final z_0 by f.
It also loads diffusers' `LDMSuperResolutionPipeline` folders (`vqvae`, a `UNet2DModel` with 6 input channels,
`scheduler`, the layout of `CompVis/ldm-super-resolution-4x-openimages`) and gives their images: their
autoencoder is renamed in `DIFFUSERS_COMPONENT_NAMES`, and their unscaled latents are the default of the
`scale_latents` config value, which a folder without it (theirs) reads.

`save_pretrained` ships this file, with every hfldm module it needs, in each saved folder
(`hfldm.pipelines.self_contained`): hfldm imports here are `from hfldm.x import name`, the form it rewrites.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    DiffusionPipeline,
    ImagePipelineOutput,
    UNet2DModel,
    VQModel,
)
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import PipelineImageInput, VaeImageProcessor
from diffusers.schedulers import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from .hfldm_autoencoders_kl import KLAutoencoder
from .hfldm_autoencoders_latent_space import latent_space
from .hfldm_autoencoders_vq import VQAutoencoder
from .hfldm_pipelines_arguments import check_model_path
from .hfldm_pipelines_call_device import CallDeviceMixin, one_execution_device
from .hfldm_pipelines_component_names import renamed_components
from .hfldm_pipelines_guidance import GuidanceStateMixin
from .hfldm_pipelines_images import rgb_batch
from .hfldm_pipelines_sampling import DenoisingLoopMixin, LatentSpaceMixin, check_finite_output, scheduler_step_kwargs, set_timesteps
from .hfldm_pipelines_saving import RemoteCodeMixin, card_front_matter
from .hfldm_pipelines_superres_inputs import check_inputs
from .hfldm_schedulers_ddim import DDIMScheduler
from .hfldm_schedulers_ddpm import DDPMScheduler
from .hfldm_unets_concat import condition_channels
from .hfldm_unets_condition_layout import IMAGE_CHANNELS, space_to_depth_factor, to_latent_grid
from .hfldm_unets_unet import ConditionalUNet

# diffusers' LDMSuperResolutionPipeline names its autoencoder `vqvae`; hfldm's pipelines call it `vae`
DIFFUSERS_COMPONENT_NAMES = {"vqvae": "vae"}

CARD = """{front_matter}

# Super-resolution latent diffusion

ε_θ([z_t, y], t) with the low-resolution image y concatenated to z_t (Rombach et al. 2022, §4.4): images of
h×w pixels (multiples of {multiple}) become {s}h×{s}w. Autoencoder `{vae}`, U-Net `{unet}`
({in_channels} = {out_channels} latent + {cond} image channels), scheduler `{scheduler}`.

```python
from diffusers import DiffusionPipeline
from PIL import Image

pipe = DiffusionPipeline.from_pretrained("{repo}", trust_remote_code=True)  # the code is in the folder
upscaled = pipe(Image.open("low_res.png"), num_inference_steps=100).images[0]
```
"""


class LatentDiffusionSuperResolutionPipeline(
    RemoteCodeMixin,
    LatentSpaceMixin,
    GuidanceStateMixin,
    CallDeviceMixin,
    DenoisingLoopMixin,
    DiffusionPipeline,
):
    r"""Upscale images by f with a latent diffusion model conditioned on the low-resolution image.

    Args:
        vae: the autoencoder (E, D) of the high-resolution images; its f is the upscaling factor.
        unet: ε_θ([z_t, y], t) with in_channels = out_channels (the latents') + 3·r² (y, RGB, r = 1 for
            "resize").
        scheduler: any diffusers scheduler (DDIM, DDPM, DPM-Solver, PNDM, hfldm's own).
        scale_latents: whether the U-Net's latents are the autoencoder's scaled by its `scaling_factor`
            (LDM App. G, in model_index.json); False for CompVis' / diffusers' LDM-SR models, whose
            latents are the VQ encoder's own, and for folders that do not record it (diffusers').
        condition_layout: how y reaches the latent grid: "resize" (as it is: the grid has y's size, the
            upscaling is f; diffusers' and folders that do not record it) or "space_to_depth" (y's r×r pixel
            blocks as 3·r² channels: the grid is y's size / r, the upscaling f / r).
    """

    model_cpu_offload_seq = "unet->vae"
    _callback_tensor_inputs = ["latents"]

    def __init__(
        self,
        vae: KLAutoencoder | VQAutoencoder | AutoencoderKL | VQModel | AutoencoderTiny,
        unet: ConditionalUNet | UNet2DModel,
        scheduler: DDPMScheduler | DDIMScheduler | SchedulerMixin,
        scale_latents: bool = False,
        condition_layout: str = "resize",
    ):
        super().__init__()
        cfg, channels = unet.config, latent_space(vae).latent_channels
        r = space_to_depth_factor(condition_channels(cfg), condition_layout)
        if condition_channels(cfg) != IMAGE_CHANNELS * r * r or cfg.out_channels != channels:
            raise ValueError(
                f"unet: a super-resolution U-Net needs in_channels = out_channels + {IMAGE_CHANNELS * r * r} "
                f"(the low-res image concatenated to z_t) and out_channels = the autoencoder's {channels} "
                f"latent channels; this one has in_channels {cfg.in_channels}, out_channels "
                f"{cfg.out_channels}"
            )
        self.register_modules(vae=vae, unet=unet, scheduler=scheduler)
        self.register_to_config(scale_latents=scale_latents, condition_layout=condition_layout)
        # y is never a latent (vae_latent_channels=0: no channel count passes unnormalised) and is not
        # resized: its size must be one the U-Net takes (check_inputs says which)
        self.image_processor = VaeImageProcessor(do_resize=False, vae_latent_channels=0)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """DiffusionPipeline.from_pretrained, for hfldm's folders and diffusers' LDMSuperResolutionPipeline
        folders alike (their `vqvae` is loaded as `vae`)."""
        check_model_path(pretrained_model_name_or_path)
        kwargs |= renamed_components(pretrained_model_name_or_path, DIFFUSERS_COMPONENT_NAMES, kwargs)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @property
    def space_to_depth_factor(self) -> int:
        """r: y's r×r pixel blocks are one latent cell (1 for "resize"); the upscaling is f / r."""
        return space_to_depth_factor(condition_channels(self.unet.config), self.config.condition_layout)

    @property
    def upscale_factor(self) -> int:
        """s = f / r: output sides over input sides."""
        return self.vae_scale_factor // self.space_to_depth_factor

    @property
    def size_multiple(self) -> int:
        """Low-resolution sides must be multiples of this: r × the U-Net's downsampling 2^(levels - 1)."""
        return self.space_to_depth_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    @property
    def num_timesteps(self) -> int:
        """Number of denoising steps of the last call."""
        return self._num_timesteps

    def default_model_card(self, repo: str, **metadata) -> str:
        cfg = self.unet.config
        return CARD.format(
            front_matter=card_front_matter("image-to-image", ["super-resolution"], **metadata),
            repo=repo,
            multiple=self.size_multiple,
            s=self.upscale_factor,
            vae=type(self.vae).__name__,
            unet=type(self.unet).__name__,
            in_channels=cfg.in_channels,
            out_channels=cfg.out_channels,
            cond=condition_channels(cfg),
            scheduler=type(self.scheduler).__name__,
        )

    def prepare_latents(self, batch_size: int, height: int, width: int, dtype, generator) -> torch.Tensor:
        """z_T ~ N(0, σ_init² I) of shape (batch_size, unet.config.out_channels, height, width)."""
        shape = (batch_size, self.unet.config.out_channels, height, width)
        latents = randn_tensor(shape, generator=generator, device=self._execution_device, dtype=dtype)
        return latents * self.scheduler.init_noise_sigma

    def decode_latents(self, latents: torch.Tensor, output_type: str):
        """x = D(z_0) (z_0 unscaled first if `scale_latents`), post-processed to `output_type` in [0, 1]."""
        if output_type == "latent":
            return check_finite_output(latents)
        if self.config.scale_latents:
            latents = self.latent_space.unscale_latents(latents)
        image = self.latent_space.decode_latents(latents)  # a VQ decoder quantises first
        return self.image_processor.postprocess(check_finite_output(image), output_type=output_type)

    def check_inputs(self, **arguments) -> tuple[int, int, int]:
        """ValueError naming the first bad argument of `__call__` (`hfldm.pipelines.superres_inputs`);
        returns (B, H, W) of the low-resolution batch."""
        return check_inputs(self, arguments)

    @one_execution_device
    @torch.inference_mode()
    def __call__(
        self,
        image: PipelineImageInput,
        num_inference_steps: int = 100,
        timesteps: list[int] | None = None,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["latents"],  # noqa: B006 (diffusers' signature)
    ) -> ImagePipelineOutput | tuple:
        r"""Upscale `image` by f.

        Args:
            image: the low-resolution image(s) y: PIL, array (H, W, C) / (B, H, W, C) or tensor (C, H, W) /
                (B, C, H, W) in [0, 1] (tensors in [-1, 1] are taken as they are), or a list; grayscale and
                RGBA are converted to RGB. Sides must be multiples of `size_multiple`.
            num_inference_steps: scheduler steps.
            timesteps: custom descending timesteps instead of `num_inference_steps` (schedulers that take
                them: hfldm's, diffusers' DDPM).
            eta: DDIM's η (ignored by schedulers without it).
            generator: torch generator(s) for z_T and for the noise of stochastic scheduler steps (a list:
                one per image).
            output_type: "pil", "np", "pt" (images in [0, 1]) or "latent" (z_0, not decoded).
            callback_on_step_end: `fn(pipe, i, t, tensors) -> dict` called after every step; a returned
                "latents" replaces the pipeline's.

        Returns:
            `ImagePipelineOutput` with `.images`: one image of f·H × f·W per low-resolution image.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        batch_size, height, width = self.check_inputs(**{k: v for k, v in locals().items() if k != "self"})
        device, dtype = self._execution_device, torch.float32  # z_t and the scheduler's maths in fp32

        # 1. y: the low-resolution image in [-1, 1], (B, 3, h, w) -> the latent grid (B, 3·r², h/r, w/r)
        r = self.space_to_depth_factor
        y = to_latent_grid(self.image_processor.preprocess(rgb_batch(image)).to(device, dtype), r)

        # 2. timesteps and z_T, (B, out_channels, h/r, w/r)
        timesteps = set_timesteps(self.scheduler, num_inference_steps, timesteps, device)
        latents = self.prepare_latents(batch_size, height // r, width // r, dtype, generator)
        extra_step_kwargs = scheduler_step_kwargs(self.scheduler, generator, eta)

        # 3. denoising loop z_t -> z_{t-1}, conditioned on y by concatenation: ε_θ([z_t, y], t), no guidance
        latents = self.denoise(
            latents,
            timesteps,
            unet_kwargs={},
            extra_step_kwargs=extra_step_kwargs,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            condition=y,
        )

        # 4. x = D(z_0), (B, 3, f·h/r, f·w/r)
        images = self.decode_latents(latents, output_type)
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=images) if return_dict else (images,)
