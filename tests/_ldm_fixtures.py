"""Tiny random hfldm pipelines for the pipeline tests: 16×16 images, f = 2, 8×8×4 latents."""

from __future__ import annotations

import torch
from _jitter import jitter

from hfldm import ConditionalUNet, DDPMScheduler, KLAutoencoder, LatentDiffusionPipeline, VQAutoencoder
from hfldm.text import make_text_encoder, train_caption_tokenizer

CAPTIONS = ["grinning face", "red apple", "cat face", "thinking face", "blue heart", "dog face"]
ID2LABEL = {0: "cat face", 1: "dog face", 2: "red apple"}  # + the null class 3 = num_class_embeds - 1
IMAGE_SIZE = 16  # pixels; the autoencoders have f = 2
TEXT_DIM = 16


def perturb(module: torch.nn.Module, seed: int, scale: float = 0.1) -> torch.nn.Module:
    """Fill the zero-initialised parameters with seeded N(0, scale²) values (`_jitter.jitter`)."""
    return jitter(module, seed=seed, scale=scale)


def tiny_vae(kind: str = "kl") -> KLAutoencoder | VQAutoencoder:
    torch.manual_seed(0)
    common = dict(block_out_channels=(8, 8), layers_per_block=1, latent_channels=4, norm_num_groups=4)
    if kind == "kl":
        return KLAutoencoder(**common, sample_size=IMAGE_SIZE, scaling_factor=0.5).eval()
    return VQAutoencoder(**common, sample_size=IMAGE_SIZE, num_vq_embeddings=16).eval()


def tiny_unet(cross_attention_dim: int | None = None, num_class_embeds: int | None = None) -> ConditionalUNet:
    torch.manual_seed(1)
    unet = ConditionalUNet(
        sample_size=IMAGE_SIZE // 2,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        attention_levels=(False, True),
        num_attention_heads=2,
        cross_attention_dim=cross_attention_dim,
        num_class_embeds=num_class_embeds,
        norm_num_groups=4,
    )
    return perturb(unet, seed=1).eval()


def tiny_text():
    """(tokenizer trained on CAPTIONS, a 1-layer random text encoder of width TEXT_DIM)."""
    tokenizer = train_caption_tokenizer(CAPTIONS * 3, vocab_size=80, model_max_length=8)
    torch.manual_seed(2)
    return tokenizer, make_text_encoder(tokenizer, hidden_size=TEXT_DIM, layers=1, heads=2).eval()


def _pipeline(**components) -> LatentDiffusionPipeline:
    scheduler = DDPMScheduler(num_train_timesteps=100)
    pipe = LatentDiffusionPipeline(scheduler=scheduler, **components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def text_pipeline(vae_kind: str = "kl") -> LatentDiffusionPipeline:
    tokenizer, text_encoder = tiny_text()
    unet = tiny_unet(cross_attention_dim=TEXT_DIM)
    return _pipeline(vae=tiny_vae(vae_kind), unet=unet, text_encoder=text_encoder, tokenizer=tokenizer)


def class_pipeline() -> LatentDiffusionPipeline:
    unet = tiny_unet(num_class_embeds=len(ID2LABEL) + 1)
    return _pipeline(vae=tiny_vae(), unet=unet, id2label=ID2LABEL)


def unconditional_pipeline() -> LatentDiffusionPipeline:
    return _pipeline(vae=tiny_vae(), unet=tiny_unet())


def sample(pipe: LatentDiffusionPipeline, seed: int = 0, steps: int = 4, **kwargs):
    """pipe(...).images as a numpy array (N, H, W, 3) in [0, 1], from a seeded CPU generator."""
    kwargs.setdefault("output_type", "np")
    return pipe(num_inference_steps=steps, generator=torch.Generator().manual_seed(seed), **kwargs).images
