"""Text / class / unconditional generation (LDM §4.1–4.3): the U-Net sees z_t alone, the condition enters by
cross-attention or a class embedding (`hfldm.training.conditioning`); a LatentDiffusionPipeline is saved and
validation draws one sample per fixed seed and prompt / class."""

from __future__ import annotations

import torch
from PIL import Image

from hfldm.data.grid import image_grid
from hfldm.training.tasks import Task, ValidationSettings


class GenerationTask(Task):
    """z_t alone; any pretrained text / class / unconditional U-Net fine-tunes as it is."""

    def pipeline(self, parts, pipeline_class=None):
        from hfldm.pipelines.pipeline_latent_diffusion import LatentDiffusionPipeline

        return parts.assemble(pipeline_class or LatentDiffusionPipeline)

    def validation(self, pipeline, batch: dict, settings: ValidationSettings) -> tuple:
        """One sample per validation seed and prompt / class; no metrics."""
        grid = sample_grid(
            pipeline,
            seeds=settings.seeds,
            prompts=settings.prompts,
            class_labels=settings.class_labels,
            num_inference_steps=settings.num_inference_steps,
            guidance_scale=settings.guidance_scale,
        )
        return grid, {}


@torch.no_grad()
def sample_grid(
    pipeline,
    seeds: list[int],
    prompts: list[str] | None = None,
    class_labels: list[int] | None = None,
    num_inference_steps: int = 50,
    guidance_scale: float = 3.0,
) -> Image.Image:
    """A grid with one row per prompt / class (one row for an unconditional model), one column per seed."""
    conditions = prompts or class_labels or [None]
    images, captions = [], []
    for condition in conditions:
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        kwargs = {"prompt": [condition] * len(seeds)} if prompts else {"num_images_per_prompt": len(seeds)}
        if class_labels:
            kwargs = {"class_labels": [condition] * len(seeds)}
        out = pipeline(
            **kwargs,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale if condition is not None else 1.0,
            generator=generators,
            output_type="pil",
        )
        images += out.images
        label = "" if condition is None else _name(pipeline, condition)
        captions += [f"{label} (seed {seed})".strip() for seed in seeds]
    return image_grid(images, captions, columns=len(seeds), cell=max(64, images[0].width))


def _name(pipeline, condition) -> str:
    """A caption for a prompt, or a class index with its name from the pipeline's id2label."""
    if isinstance(condition, str):
        return condition
    names = getattr(pipeline.config, "id2label", None) or {}
    return f"{condition}: {names[condition]}" if condition in names else str(condition)
