"""A tiny class-conditional teacher on 16 px digits for the distillation tests (random weights, nothing
zero-initialised, so that its ODE is not the zero map), and the flags of a tiny distillation run."""

from __future__ import annotations

from pathlib import Path

import torch
from _training_helpers import RESOLUTION, flags, tiny_autoencoder, tiny_unet

from hfldm import DDIMScheduler, LatentDiffusionPipeline


def save_teacher(folder: Path) -> Path:
    """A class-conditional LatentDiffusionPipeline (10 digits + ∅) with a DDIM scheduler, T = 1000."""
    vae = tiny_autoencoder()
    vae.register_to_config(scaling_factor=0.7)
    unet = tiny_unet((16, 32), sample_size=8, num_class_embeds=11)
    with torch.no_grad():
        for parameter in unet.parameters():
            if not parameter.any():
                parameter.normal_(std=0.05)
    scheduler = DDIMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False
    )
    id2label = {i: str(i) for i in range(10)}
    LatentDiffusionPipeline(vae, unet.train(False), scheduler, id2label=id2label).save_pretrained(folder)
    return folder


def distill_args(teacher: Path, digits: Path, out: Path, *extra: str, **values) -> list[str]:
    settings = dict(
        teacher=teacher,
        train_data_dir=digits,
        resolution=RESOLUTION,
        label_column="label",
        output_dir=out,
        report_to="none",
        validation_steps=0,
        train_batch_size=16,
        learning_rate=1e-3,
        max_train_steps=8,
        checkpointing_steps=4,
        time_cond_proj_dim=16,
        num_inference_steps=2,
    )
    return [*flags(**(settings | values)), *extra]
