"""The `Task` interface of train_ldm.py: what the U-Net sees beside z_t, which pipeline is saved, what
validation shows. One training step serves every task (`hfldm.training.ldm_trainer.LDMTrainer`); a task
answers:

- `check_arguments(args, data)`: its own flags, checked before anything is loaded (ValueError naming one);
- `from_arguments(args, context)`: the task, complete, once the autoencoder is loaded (`TaskContext`);
- `condition_channels`: channels of y concatenated to z_t (0: none), for the U-Net's config;
- `adapt_pretrained(unet)`: a pretrained U-Net made ready for the task (--init_from), or refused;
- `condition(batch, micro_step, flip)`: y on the latent grid, or None (LDM §3.3 concat: ε_θ([z_t, y], t));
- `pipeline(parts)`: the pipeline of the (unwrapped) training components, for validation and saving;
- `validation(pipeline, batch, settings)`: (grid, metrics) of fixed samples of the first training batch.

The text / class / unconditional conditioning through cross-attention or a class embedding is not a task's
business but the conditioning kind's (`hfldm.training.conditioning`); tasks combine with any kind. The
tasks: `GenerationTask` (`hfldm.training.generation`), `SuperResolutionTask` (LDM §4.4,
`hfldm.training.superres`), `InpaintTask` (LDM §4.5, `hfldm.training.inpaint`), `SketchTask` (LDM §4.3.2,
`hfldm.training.sketch`); `hfldm.training.task_registry` maps --task to them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hfldm.unets.concat import concat_condition


@dataclass(frozen=True)
class TaskContext:
    """What a task may need once the frozen autoencoder is loaded."""

    vae: object  # the first stage (E, D), scale not yet estimated
    resolution: int  # of the training images, px
    seed: int  # of the run: a task's per-sample draws are seeded by (seed, micro step, global index)
    process_index: int  # of this process, for the global sample indices


@dataclass
class ValidationSettings:
    seeds: list[int]
    prompts: list[str] | None  # text models: the validation grid's prompts
    class_labels: list[int] | None  # class models: its classes
    num_inference_steps: int
    guidance_scale: float


class Task:
    """The interface, with what a task without a spatial condition does."""

    condition_channels: int = 0
    fine_tunes_pretrained: bool = True  # False: --pretrained_model_name_or_path is refused

    @classmethod
    def check_arguments(cls, args, data) -> None:
        """ValueError naming a flag this task cannot use; called before anything is loaded."""

    @classmethod
    def from_arguments(cls, args, context: TaskContext) -> Task:
        return cls()

    def adapt_pretrained(self, unet):
        return unet

    def condition(self, batch: dict, micro_step: int, flip: torch.Tensor | None) -> torch.Tensor | None:
        """y (B, condition_channels, h, w) on the latent grid of this process's samples, mirrored where `flip`
        as z_0's images are; None: the U-Net sees z_t alone."""
        return None

    def unet_input(self, z_t: torch.Tensor, batch: dict, micro_step: int, flip, unet_config) -> torch.Tensor:
        """z_t, or [z_t, y] (LDM §3.3 concat) for a U-Net of `unet_config`."""
        y = self.condition(batch, micro_step, flip)
        return z_t if y is None else concat_condition(z_t, y.to(z_t.device), unet_config)

    def pipeline(self, parts):
        """The pipeline of `parts` (`hfldm.training.pipeline_parts.PipelineParts`)."""
        raise NotImplementedError

    def validation(self, pipeline, batch: dict, settings: ValidationSettings) -> tuple:
        """(grid, metrics) of fixed samples."""
        raise NotImplementedError
