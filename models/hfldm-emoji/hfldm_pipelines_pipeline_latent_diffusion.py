"""LatentDiffusionPipeline: sample p_θ(z) in an autoencoder's latent space, then decode (Rombach et al. 2022).

One pipeline for the three kinds of LDM: text-conditional (τ_θ(y) through cross-attention, Sec. 3.3),
class-conditional (a class embedding) and unconditional. Classifier-free guidance (Ho & Salimans 2022)
mixes the conditional and the unconditional ε-prediction. With `image=` and `strength=` it does
image-to-image (SDEdit, Meng et al. 2022): encode, noise to step `strength·T`, denoise.

Class-conditional U-Nets reserve their LAST class index for the null class ∅ of classifier-free guidance
(`hfldm.unets.null_class`).

`save_pretrained` ships this file, with every hfldm module it needs, in each saved folder
(`hfldm.pipelines.self_contained`): hfldm imports here are `from hfldm.x import name`, the form it rewrites.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import AutoencoderKL, DiffusionPipeline, ImagePipelineOutput, UNet2DConditionModel, VQModel
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import PipelineImageInput, VaeImageProcessor
from diffusers.schedulers import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .hfldm_autoencoders_identity import IdentityAutoencoder
from .hfldm_autoencoders_kl import KLAutoencoder
from .hfldm_autoencoders_vq import VQAutoencoder
from .hfldm_pipelines_call_device import CallDeviceMixin, one_execution_device
from .hfldm_pipelines_compvis import CompVisLoadingMixin
from .hfldm_pipelines_conditions import ConditionEncodingMixin
from .hfldm_pipelines_few_step import cfg_scale, check_few_step, guidance_condition
from .hfldm_pipelines_guidance import GuidanceStateMixin
from .hfldm_pipelines_images import rgb_batch
from .hfldm_pipelines_inputs import broadcast_batch, check_image_to_image, check_inputs
from .hfldm_pipelines_lora_loading import LoraLoadingMixin
from .hfldm_pipelines_native_size import warn_other_size
from .hfldm_pipelines_null_text import NullTextCache
from .hfldm_pipelines_sampling import DenoisingLoopMixin, LatentSpaceMixin, check_finite_output, scheduler_step_kwargs, sdedit_start, set_timesteps
from .hfldm_pipelines_saving import RemoteCodeMixin
from .hfldm_schedulers_ddim import DDIMScheduler
from .hfldm_schedulers_ddpm import DDPMScheduler
from .hfldm_unets_unet import ConditionalUNet


class LatentDiffusionPipeline(
    CompVisLoadingMixin,
    RemoteCodeMixin,
    ConditionEncodingMixin,
    LoraLoadingMixin,
    LatentSpaceMixin,
    GuidanceStateMixin,
    CallDeviceMixin,
    DenoisingLoopMixin,
    DiffusionPipeline,
):
    r"""Text-, class- or unconditional latent diffusion, with classifier-free guidance and image-to-image.

    Args:
        vae: the autoencoder (E, D) whose latent space the U-Net models (KL or VQ; the identity for f = 1).
            None (with `unet=None`) builds a pipeline that only encodes prompts (`encode_prompt`).
        unet: the denoiser ε_θ(z_t, t, y), or None.
        scheduler: any diffusers scheduler (DDPM, DDIM, DPM-Solver, Euler, PNDM, hfldm's own).
        text_encoder: τ_θ, a `transformers` model with `last_hidden_state` (None: no text conditioning).
        tokenizer: the tokenizer of `text_encoder`.
        id2label: {class index: name} (int or str keys) for class-conditional models (in model_index.json).
        text_attention_mask: whether τ_θ and the U-Net ignore the text's padding (False: they attend to it,
            as CompVis' LDMs do; `hfldm.pipelines.compvis`). In model_index.json.
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"
    _optional_components = ["vae", "unet", "text_encoder", "tokenizer"]
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(
        self,
        vae: KLAutoencoder | VQAutoencoder | IdentityAutoencoder | AutoencoderKL | VQModel | None,
        unet: ConditionalUNet | UNet2DConditionModel | None,
        scheduler: DDPMScheduler | DDIMScheduler | SchedulerMixin,
        text_encoder: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        id2label: dict | None = None,
        text_attention_mask: bool = True,
    ):
        super().__init__()
        modules = dict(
            vae=vae, unet=unet, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer
        )
        self.register_modules(**modules)
        # JSON turns integer keys into strings: keep ints in the config and in label2id
        id2label = {int(k): str(v) for k, v in (id2label or {}).items()} or None
        self.register_to_config(id2label=id2label, text_attention_mask=text_attention_mask)
        self.label2id = {name: i for i, name in (id2label or {}).items()}
        self.image_processor = VaeImageProcessor(
            vae_scale_factor=self.vae_scale_factor if vae is not None else 1
        )
        self._null_text = NullTextCache()

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this: f times the U-Net's own downsampling 2^(levels - 1)."""
        return self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    @property
    def is_text_conditional(self) -> bool:
        return self.text_encoder is not None

    @property
    def num_class_embeds(self) -> int | None:
        return getattr(self.unet.config, "num_class_embeds", None)

    @property
    def num_timesteps(self) -> int:
        """Number of denoising steps of the last call."""
        return self._num_timesteps

    def default_image_size(self) -> tuple[int, int]:
        """(height, width) in pixels: the U-Net's sample_size times f."""
        size = self.unet.config.sample_size
        h, w = (size, size) if isinstance(size, int) else size
        return h * self.vae_scale_factor, w * self.vae_scale_factor

    def check_inputs(self, **arguments) -> int:
        """ValueError naming the first bad argument of `__call__` (each argument's type and range, then the
        arguments against each other and the batch: `hfldm.pipelines.inputs.check_inputs`); returns the
        batch size."""
        check_image_to_image(arguments)
        check_few_step(self.scheduler, self.unet)  # LCMScheduler only on a consistency-distilled U-Net
        return check_inputs(self, arguments)

    def latent_shape(
        self, batch_size: int, height: int | None, width: int | None
    ) -> tuple[int, int, int, int]:
        """(batch_size, unet.config.out_channels, height / f, width / f) of z_T (default size for None)."""
        default_height, default_width = self.default_image_size()
        f = self.vae_scale_factor
        return (
            batch_size,
            self.unet.config.out_channels,
            (height or default_height) // f,
            (width or default_width) // f,
        )

    def prepare_latents(
        self, batch_size: int, height: int, width: int, dtype, generator, latents
    ) -> torch.Tensor:
        """z_T ~ N(0, σ_init² I) of shape (batch_size, unet.config.out_channels, height / f, width / f)."""
        shape = self.latent_shape(batch_size, height, width)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=self._execution_device, dtype=dtype)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        return latents.to(self._execution_device, dtype) * self.scheduler.init_noise_sigma

    def encode_image(self, image: PipelineImageInput, height: int | None, width: int | None) -> torch.Tensor:
        """z_0 = E(x) · scaling_factor, (N, C, h, w): the posterior mean (KL) or the encoder output (VQ)."""
        x = self.image_processor.preprocess(rgb_batch(image), height=height, width=width)  # any mode -> RGB
        return self.latent_space.scale_latents(self.latent_space.latents(x))

    def decode_latents(self, latents: torch.Tensor, output_type: str):
        """x = D(z_0 / scaling_factor) post-processed to `output_type` (a VQ decoder quantizes first)."""
        if output_type == "latent":
            return check_finite_output(latents)
        image = self.latent_space.decode_latents(self.latent_space.unscale_latents(latents))
        return self.image_processor.postprocess(check_finite_output(image), output_type=output_type)

    @one_execution_device
    @torch.inference_mode()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
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
        image: PipelineImageInput | None = None,
        strength: float | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        cross_attention_kwargs: dict | None = None,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["latents"],  # noqa: B006 (diffusers' signature)
    ) -> ImagePipelineOutput | tuple:
        r"""Generate images.

        Args:
            prompt: text(s) for a text-conditional model (None: unconditional, τ_θ("")).
            negative_prompt: replaces "" as the unconditional text of classifier-free guidance.
            class_labels: class index or name (or a list) for a class-conditional model.
            height, width: image size in pixels, multiples of f (default: U-Net sample_size · f).
            num_inference_steps: scheduler steps (with `image`, only the last `strength` share runs).
            timesteps: custom descending timesteps instead of `num_inference_steps` (schedulers that take
                them: hfldm's, diffusers' DDPM).
            guidance_scale: w in ε̃ = ε(∅) + w (ε(y) - ε(∅)); 1 disables guidance, 0 is unconditional.
            num_images_per_prompt: images per prompt / class label.
            eta: DDIM's η (ignored by schedulers without it).
            generator: torch generator(s) for reproducible sampling (a list: one per image).
            latents: z_T of shape (B, C, height/f, width/f) instead of fresh noise.
            prompt_embeds, negative_prompt_embeds: precomputed τ_θ(y) (B, L, D) instead of `prompt` /
                `negative_prompt` (e.g. from `encode_prompt`, or weighted); with their (B, L) attention masks.
            image, strength: image-to-image; strength ∈ [0, 1] is how much noise is added (default 0.8).
            output_type: "pil", "np", "pt" (images in [0, 1]) or "latent" (z_0, not decoded).
            cross_attention_kwargs: keyword arguments for the U-Net's attention processors.
            callback_on_step_end: `fn(pipe, i, t, tensors) -> dict` called after every step; returned
                tensors ("latents", "prompt_embeds", "negative_prompt_embeds") replace the pipeline's; it
                may set `pipe._guidance_scale` (diffusers' callbacks, e.g. SDCFGCutoffCallback, work).

        Returns:
            `ImagePipelineOutput` with `.images`: batch × num_images_per_prompt images.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        self.check_inputs(**{k: v for k, v in locals().items() if k != "self"})
        self._guidance_scale, self._cross_attention_kwargs = guidance_scale, cross_attention_kwargs
        strength = 0.8 if image is not None and strength is None else strength
        if image is None:
            default_height, default_width = self.default_image_size()
            height, width = height or default_height, width or default_width

        # 1. the conditions y (τ_θ(y), class labels; unconditional half first under guidance), the batch
        z0 = self.encode_image(image, height, width) if image is not None else None
        batch_size, _, unet_kwargs = self.encode_conditions(
            prompt,
            negative_prompt,
            class_labels,
            num_images_per_prompt,
            cfg_scale(self.unet, guidance_scale),  # 1 (one row per image) when the U-Net embeds w itself
            default_batch_size=len(z0) if z0 is not None else 1,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            prompt_attention_mask=prompt_attention_mask,
            negative_prompt_attention_mask=negative_prompt_attention_mask,
        )
        rows = batch_size * num_images_per_prompt  # a distilled student's w, as `timestep_cond` (LCM)
        unet_kwargs |= guidance_condition(self.unet, guidance_scale, rows, self._execution_device)

        # 2. timesteps and z_T (image-to-image: z_0 = E(x) noised to the first kept timestep)
        timesteps = set_timesteps(self.scheduler, num_inference_steps, timesteps, self._execution_device)
        if z0 is not None:
            z0 = broadcast_batch(z0, batch_size, num_images_per_prompt).float()
            latents, timesteps = sdedit_start(self.scheduler, z0, strength, len(timesteps), generator)
        else:
            n = batch_size * num_images_per_prompt
            latents = self.prepare_latents(n, height, width, torch.float32, generator, latents)
        f = self.vae_scale_factor
        warn_other_size(self, latents.shape[-2] * f, latents.shape[-1] * f)

        # 3. denoising loop z_t -> z_{t-1}
        latents = self.denoise(
            latents,
            timesteps,
            unet_kwargs,
            scheduler_step_kwargs(self.scheduler, generator, eta),
            callback_on_step_end,
            callback_on_step_end_tensor_inputs,
        )

        # 4. x = D(z_0)
        images = self.decode_latents(latents, output_type)
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=images) if return_dict else (images,)
