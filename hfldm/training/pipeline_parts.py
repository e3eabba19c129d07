"""The saved pipeline of train_ldm.py / train_lora.py, assembled from the (unwrapped) training components.

A task picks the pipeline class (`hfldm.training.tasks.Task.pipeline`); this module hands it the parts: the
frozen autoencoder, the trained U-Net, a DDIM scheduler of the training forward process (its β schedule, T
and prediction type), and, for the conditioned ones, τ_θ with its tokenizer, the class names as id2label and
the training's text-mask convention. Validation and saving use the same pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from accelerate import Accelerator


@dataclass
class PipelineParts:
    """The training components a task's pipeline is assembled from."""

    accelerator: Accelerator
    vae: object
    unet: torch.nn.Module
    scheduler: object  # the training forward process; pipelines sample with DDIM of its config
    text_encoder: torch.nn.Module | None = None
    tokenizer: object = None
    label_names: list[str] | None = None
    text_attention_mask: bool = True

    def denoising(self) -> dict:
        """{vae, unet, scheduler}: the unwrapped U-Net and a DDIM scheduler of the training schedule."""
        from hfldm.schedulers.ddim import DDIMScheduler

        unet = self.accelerator.unwrap_model(self.unet)
        return {"vae": self.vae, "unet": unet, "scheduler": DDIMScheduler.from_config(self.scheduler.config)}

    def conditioning(self) -> dict:
        """{text_encoder, tokenizer, id2label, text_attention_mask}: what a text / class model reads."""
        text_encoder = self.text_encoder and self.accelerator.unwrap_model(self.text_encoder)
        return {
            "text_encoder": text_encoder,
            "tokenizer": self.tokenizer,
            "id2label": dict(enumerate(self.label_names)) if self.label_names else None,
            "text_attention_mask": self.text_attention_mask,
        }

    def assemble(self, pipeline_class, conditioned: bool = True, **config):
        """`pipeline_class` of these parts (with τ_θ and the class names unless not `conditioned`) and its
        own `config` arguments; progress bar off."""
        parts = {**self.denoising(), **(self.conditioning() if conditioned else {})}
        pipeline = pipeline_class(**parts, **config)
        pipeline.set_progress_bar_config(disable=True)
        return pipeline
