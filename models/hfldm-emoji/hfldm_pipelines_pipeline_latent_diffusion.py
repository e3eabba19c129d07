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
from .hfldm_pipelines_compvis import CompVisLoadingMixin
from .hfldm_pipelines_images import rgb_batch
from .hfldm_pipelines_inputs import as_list, broadcast_batch, check_inputs, class_label_ids
from .hfldm_pipelines_lora_loading import LoraLoadingMixin
from .hfldm_pipelines_null_text import NullTextCache, cat_tokens
from .hfldm_pipelines_sampling import LatentSpaceMixin, check_finite_output, predict_noise, scheduler_step_kwargs, sdedit_start
from .hfldm_pipelines_saving import RemoteCodeMixin
from .hfldm_schedulers_ddim import DDIMScheduler
from .hfldm_schedulers_ddpm import DDPMScheduler
from .hfldm_text_encoder import encode_text
from .hfldm_unets_concat import concat_condition
from .hfldm_unets_null_class import null_class_label
from .hfldm_unets_unet import ConditionalUNet


class LatentDiffusionPipeline(
    CompVisLoadingMixin, RemoteCodeMixin, LoraLoadingMixin, LatentSpaceMixin, DiffusionPipeline
):
    r"""Text-, class- or unconditional latent diffusion, with classifier-free guidance and image-to-image.

    Args:
        vae: the autoencoder (E, D) whose latent space the U-Net models (KL or VQ; the identity for f = 1).
        unet: the denoiser ε_θ(z_t, t, y).
        scheduler: any diffusers scheduler (DDPM, DDIM, DPM-Solver, Euler, PNDM, hfldm's own).
        text_encoder: τ_θ, a `transformers` model with `last_hidden_state` (None: no text conditioning).
        tokenizer: the tokenizer of `text_encoder`.
        id2label: {class index: name} (int or str keys) for class-conditional models (in model_index.json).
        text_attention_mask: whether τ_θ and the U-Net ignore the text's padding (False: they attend to it,
            as CompVis' LDMs do; `hfldm.pipelines.compvis`). In model_index.json.
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"
    _optional_components = ["text_encoder", "tokenizer"]
    _callback_tensor_inputs = ["latents", "encoder_hidden_states"]

    def __init__(
        self,
        vae: KLAutoencoder | VQAutoencoder | IdentityAutoencoder | AutoencoderKL | VQModel,
        unet: ConditionalUNet | UNet2DConditionModel,
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
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
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

    def check_inputs(self, **kwargs) -> None:
        """ValueError naming the first bad argument (see `hfldm.pipelines.inputs.check_inputs`)."""
        check_inputs(self, **kwargs)

    def class_label_ids(self, class_labels) -> list[int]:
        """Class names (from id2label) or indices -> indices; the last index is the null class."""
        return class_label_ids(class_labels, self.label2id, self.num_class_embeds)

    def encode_prompt(
        self, prompt: list[str], negative_prompt: list[str] | None, num_images_per_prompt: int, do_cfg: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """τ_θ(y) for each prompt, repeated `num_images_per_prompt` times; under CFG the unconditional half
        (τ_θ("") or τ_θ(negative_prompt)) comes first.

        Returns `(encoder_hidden_states, encoder_attention_mask)` of shapes (B', L, D) and (B', L) (None
        without `text_attention_mask`), B' = len(prompt) · num_images_per_prompt, doubled under CFG.
        """
        masked = self.config.text_attention_mask
        padding = "longest" if masked else "max_length"  # masked padding is work without effect

        def encode(texts: list[str]):
            return encode_text(
                self.tokenizer, self.text_encoder, texts, self._execution_device, masked, padding
            )

        parts = [encode(list(prompt))]
        if do_cfg and negative_prompt is None:  # τ_θ(""), the same for every call
            hidden, mask = self._null_text(
                self.tokenizer, self.text_encoder, self._execution_device, masked, padding
            )
            n = len(prompt)
            parts.insert(0, (hidden.expand(n, -1, -1), mask.expand(n, -1) if mask is not None else None))
        elif do_cfg:
            parts.insert(0, encode(negative_prompt))
        hidden, mask = cat_tokens(parts)
        hidden = hidden.to(self.unet.dtype).repeat_interleave(num_images_per_prompt, dim=0)
        return hidden, mask.repeat_interleave(num_images_per_prompt, dim=0) if mask is not None else None

    def encode_class_labels(
        self, label_ids: list[int], num_images_per_prompt: int, do_cfg: bool
    ) -> torch.Tensor:
        """Class indices (B',) for the U-Net; under CFG the null class comes first."""
        labels = torch.tensor(label_ids, device=self._execution_device)
        if do_cfg:
            labels = torch.cat([torch.full_like(labels, null_class_label(self.num_class_embeds)), labels])
        return labels.repeat_interleave(num_images_per_prompt, dim=0)

    def prepare_latents(
        self, batch_size: int, height: int, width: int, dtype, generator, latents
    ) -> torch.Tensor:
        """z_T ~ N(0, σ_init² I) of shape (batch_size, unet.config.out_channels, height / f, width / f)."""
        f = self.vae_scale_factor
        shape = (batch_size, self.unet.config.out_channels, height // f, width // f)
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

    def encode_conditions(
        self, prompt, negative_prompt, class_labels, num_images_per_prompt: int, guidance_scale: float,
        default_batch_size: int = 1,
    ) -> tuple[int, bool, dict]:  # fmt: skip
        """The U-Net's conditioning kwargs for a call: `(batch_size, do_cfg, unet_kwargs)`.

        batch_size is the number of prompts / class labels (else `default_batch_size`); do_cfg says whether
        guidance has an unconditional half to mix with; unet_kwargs are τ_θ(y) with its mask and the class
        labels, (2 ×) batch_size × num_images_per_prompt rows, the unconditional half first under CFG.
        """
        label_ids = self.class_label_ids(class_labels) if class_labels is not None else None
        prompts = as_list(prompt) if prompt is not None else None
        batch_size = len(prompts or label_ids or []) or default_batch_size
        if self.is_text_conditional and prompts is None:
            prompts = [""] * batch_size
        conditional = any(prompts or []) or label_ids is not None or negative_prompt is not None
        do_cfg = conditional and guidance_scale != 1.0
        if label_ids is None and self.num_class_embeds is not None:
            label_ids = [null_class_label(self.num_class_embeds)] * batch_size
        kwargs = dict(encoder_hidden_states=None, encoder_attention_mask=None, class_labels=None)
        if prompts is not None:
            negative = [negative_prompt] * batch_size if isinstance(negative_prompt, str) else negative_prompt
            kwargs["encoder_hidden_states"], kwargs["encoder_attention_mask"] = self.encode_prompt(
                prompts, negative, num_images_per_prompt, do_cfg
            )
        if label_ids is not None:
            kwargs["class_labels"] = self.encode_class_labels(label_ids, num_images_per_prompt, do_cfg)
        return batch_size, do_cfg, kwargs

    def denoise(
        self, latents: torch.Tensor, timesteps: torch.Tensor, unet_kwargs: dict, do_cfg: bool,
        guidance_scale: float, extra_step_kwargs: dict, callback_on_step_end=None,
        callback_on_step_end_tensor_inputs: tuple[str, ...] = ("latents",),
        condition: torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """The reverse process z_t -> z_{t-1} over `timesteps`, with classifier-free guidance; returns z_0.

        `condition`: a spatial condition concatenated to z_t at every step (inpainting's [E(x ⊙ (1 − m)), m↓],
        LDM §3.3 `hfldm.unets.concat`), the same for both halves of guidance.
        """
        if condition is not None and do_cfg:
            condition = torch.cat([condition] * 2)
        self._num_timesteps = len(timesteps)
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                latent_input = torch.cat([latents] * 2) if do_cfg else latents
                latent_input = self.scheduler.scale_model_input(latent_input, t)
                if condition is not None:  # only z_t is scaled for σ-parameterised schedulers
                    latent_input = concat_condition(latent_input, condition, self.unet.config)
                noise_pred = predict_noise(self.unet, latent_input, t, **unet_kwargs)
                if do_cfg:
                    # classifier-free guidance: ε̃ = ε(z_t, ∅) + w (ε(z_t, y) - ε(z_t, ∅))
                    eps_uncond, eps_cond = noise_pred.chunk(2)
                    noise_pred = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
                latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs).prev_sample

                if callback_on_step_end is not None:
                    tensors = {
                        "latents": latents,
                        "encoder_hidden_states": unet_kwargs["encoder_hidden_states"],
                    }
                    outputs = callback_on_step_end(
                        self, i, t, {k: tensors[k] for k in callback_on_step_end_tensor_inputs}
                    )
                    latents = outputs.pop("latents", latents)
                    unet_kwargs["encoder_hidden_states"] = outputs.pop(
                        "encoder_hidden_states", unet_kwargs["encoder_hidden_states"]
                    )
                progress_bar.update()
        return latents

    @torch.inference_mode()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        class_labels: int | str | list[int | str] | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 3.0,
        num_images_per_prompt: int = 1,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        image: PipelineImageInput | None = None,
        strength: float | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
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
            guidance_scale: w in ε̃ = ε(∅) + w (ε(y) - ε(∅)); 1 disables guidance, 0 is unconditional.
            num_images_per_prompt: images per prompt / class label.
            eta: DDIM's η (ignored by schedulers without it).
            generator: torch generator(s) for reproducible sampling.
            latents: z_T of shape (B, C, height/f, width/f) instead of fresh noise.
            image, strength: image-to-image; strength ∈ [0, 1] is how much noise is added (default 0.8).
            output_type: "pil", "np", "pt" (images in [0, 1]) or "latent" (z_0, not decoded).
            callback_on_step_end: `fn(pipe, i, t, tensors) -> dict` called after every step; returned
                tensors (e.g. "latents") replace the pipeline's.

        Returns:
            `ImagePipelineOutput` with `.images`: batch × num_images_per_prompt images.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        self.check_inputs(
            prompt=prompt, negative_prompt=negative_prompt, class_labels=class_labels, height=height,
            width=width, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
            num_images_per_prompt=num_images_per_prompt, latents=latents, image=image, strength=strength,
            output_type=output_type, callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            eta=eta,
        )  # fmt: skip
        strength = 0.8 if image is not None and strength is None else strength
        if image is None:
            default_height, default_width = self.default_image_size()
            height, width = height or default_height, width or default_width

        # 1. the conditions y (τ_θ(y), class labels; unconditional half first under guidance), the batch
        z0 = self.encode_image(image, height, width) if image is not None else None
        batch_size, do_cfg, unet_kwargs = self.encode_conditions(
            prompt, negative_prompt, class_labels, num_images_per_prompt, guidance_scale,
            default_batch_size=len(z0) if z0 is not None else 1,
        )  # fmt: skip

        # 2. timesteps and z_T (image-to-image: z_0 = E(x) noised to the first kept timestep)
        self.scheduler.set_timesteps(num_inference_steps, device=self._execution_device)
        timesteps = self.scheduler.timesteps
        if z0 is not None:
            z0 = broadcast_batch(z0, batch_size, num_images_per_prompt).float()
            latents, timesteps = sdedit_start(self.scheduler, z0, strength, num_inference_steps, generator)
        else:
            n = batch_size * num_images_per_prompt
            latents = self.prepare_latents(n, height, width, torch.float32, generator, latents)

        # 3. denoising loop z_t -> z_{t-1}
        latents = self.denoise(
            latents, timesteps, unet_kwargs, do_cfg, guidance_scale,
            scheduler_step_kwargs(self.scheduler, generator, eta), callback_on_step_end,
            callback_on_step_end_tensor_inputs,
        )  # fmt: skip

        # 4. x = D(z_0)
        images = self.decode_latents(latents, output_type)
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=images) if return_dict else (images,)
