"""The tasks of train_ldm.py: what the U-Net sees beside z_t, which pipeline is saved, what validation shows.

One training step serves every task (`hfldm.training.ldm_trainer.LDMTrainer`); a task only answers:

- `condition_channels`: channels concatenated to z_t (0: none), for a fresh U-Net's config;
- `adapt_pretrained(unet)`: a pretrained U-Net made ready for the task (or refused);
- `unet_input(z_t, batch, micro_step, flip)`: the U-Net's input, z_t or [z_t, y] (LDM §3.3 concat);
- `pipeline(parts)`: the pipeline of the (unwrapped) training components, for validation and saving;
- `validation(pipeline, batch, settings)`: (grid, metrics) of fixed samples of the first training batch.

`GenerationTask` (text, class or unconditional LDM) is here; `SuperResolutionTask` in
`hfldm.training.superres` (LDM §4.4), `InpaintTask` in `hfldm.training.inpaint` (LDM §4.5).
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


@dataclass
class ValidationSettings:
    seeds: list[int]
    prompts: list[str] | None  # text models: the validation grid's prompts
    class_labels: list[int] | None  # class models: its classes
    num_inference_steps: int
    guidance_scale: float


class GenerationTask:
    """Text / class / unconditional generation: the U-Net sees z_t alone."""

    condition_channels = 0

    def adapt_pretrained(self, unet):
        return unet

    def unet_input(self, z_t: torch.Tensor, batch: dict, micro_step: int, flip) -> torch.Tensor:
        return z_t

    def pipeline(self, parts: PipelineParts, pipeline_class=None):
        from hfldm.training.validation import assemble_pipeline

        return assemble_pipeline(
            parts.accelerator, parts.vae, parts.unet, parts.scheduler, parts.text_encoder, parts.tokenizer,
            parts.label_names, parts.text_attention_mask, pipeline_class=pipeline_class,
        )  # fmt: skip

    def validation(self, pipeline, batch: dict, settings: ValidationSettings) -> tuple:
        """One sample per validation seed and prompt / class; no metrics."""
        from hfldm.training.validation import sample_grid

        grid = sample_grid(pipeline, settings.seeds, settings.prompts, settings.class_labels,
                           settings.num_inference_steps, settings.guidance_scale)  # fmt: skip
        return grid, {}
