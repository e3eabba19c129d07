"""Inputs of LatentDiffusionPipeline: the argument checks and class labels (the null class ∅ of guidance is
the last class embedding, `hfldm.unets.null_class`).
"""

from __future__ import annotations

import math

import torch

OUTPUT_TYPES = ("pil", "np", "pt", "latent")


def as_list(x) -> list:
    """A str / int / tensor / sequence as a list of its entries."""
    if isinstance(x, torch.Tensor):
        x = x.tolist()
    return list(x) if isinstance(x, (list, tuple)) else [x]


def class_label_ids(class_labels, label2id: dict[str, int], num_class_embeds: int) -> list[int]:
    """Class names (keys of `label2id`) or indices -> indices in [0, num_class_embeds - 1].

    Raises ValueError naming `class_labels` for an unknown name or an index out of range.
    """
    ids = []
    for label in as_list(class_labels):
        if isinstance(label, str):
            if label not in label2id:
                known = ", ".join(sorted(label2id)[:10]) or "none: the pipeline has no id2label"
                raise ValueError(f"class_labels: unknown class name {label!r} (known: {known})")
            label = label2id[label]
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < num_class_embeds:
            raise ValueError(f"class_labels: {label!r} is not a class index in [0, {num_class_embeds - 1}]")
        ids.append(label)
    return ids


def broadcast_batch(z: torch.Tensor, batch_size: int, num_images_per_prompt: int) -> torch.Tensor:
    """Repeat a batch of 1 or `batch_size` image latents to batch_size × num_images_per_prompt."""
    if z.shape[0] == 1:
        return z.repeat(batch_size * num_images_per_prompt, 1, 1, 1)
    if z.shape[0] != batch_size:
        raise ValueError(f"image has {z.shape[0]} images, but prompt / class_labels ask for {batch_size}")
    return z.repeat_interleave(num_images_per_prompt, dim=0)


def check_inputs(pipe, *, prompt, negative_prompt, class_labels, height, width, num_inference_steps,
                 guidance_scale, num_images_per_prompt, latents, image, strength, output_type,
                 callback_on_step_end_tensor_inputs, eta=0.0) -> None:  # fmt: skip
    """Raise a ValueError naming the first argument of `pipe(...)` that the pipeline cannot use."""
    for name, value in (("guidance_scale", guidance_scale), ("eta", eta), ("strength", strength)):
        if value is not None and not math.isfinite(value):  # nan passes every comparison below
            raise ValueError(f"{name} must be a finite number, got {value}")
    if num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be at least 1, got {num_inference_steps}")
    if guidance_scale < 0:
        raise ValueError(f"guidance_scale must be >= 0 (1 means no guidance), got {guidance_scale}")
    if num_images_per_prompt < 1:
        raise ValueError(f"num_images_per_prompt must be at least 1, got {num_images_per_prompt}")
    multiple = pipe.size_multiple  # f × the U-Net's 2^(levels - 1)
    for name, value in (("height", height), ("width", width)):
        if value is not None and (value < multiple or value % multiple != 0):
            f = pipe.vae_scale_factor
            raise ValueError(
                f"{name} must be a positive multiple of {multiple} (the autoencoder's f = {f} times the "
                f"U-Net's downsampling), got {value}"
            )
    for name, text in (("prompt", prompt), ("negative_prompt", negative_prompt)):
        if text is not None and not pipe.is_text_conditional:
            raise ValueError(
                f"{name} was given, but this pipeline has no text encoder (not text-conditional)"
            )
        if text is not None and not all(isinstance(t, str) for t in as_list(text)):
            raise ValueError(f"{name} must be a string or a list of strings")
    n_prompts = len(as_list(prompt)) if prompt is not None else 1
    if isinstance(negative_prompt, (list, tuple)) and len(negative_prompt) != n_prompts:
        raise ValueError(f"negative_prompt has {len(negative_prompt)} entries, prompt has {n_prompts}")
    if class_labels is not None and pipe.num_class_embeds is None:
        raise ValueError("class_labels were given, but the U-Net is not class-conditional (num_class_embeds)")
    if prompt is not None and class_labels is not None and n_prompts != len(as_list(class_labels)):
        raise ValueError("prompt and class_labels must have the same number of entries")
    if strength is not None and not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    if strength is not None and image is None:
        raise ValueError("strength was given without an image (image-to-image needs both)")
    if latents is not None and image is not None:
        raise ValueError("latents and image cannot both be given (image-to-image starts from the image)")
    check_outputs(pipe, output_type, callback_on_step_end_tensor_inputs)


def check_outputs(pipe, output_type: str, callback_on_step_end_tensor_inputs: list[str]) -> None:
    """The output checks every hfldm pipeline shares: `output_type` and the callback's tensor names."""
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
    unknown = [k for k in callback_on_step_end_tensor_inputs if k not in pipe._callback_tensor_inputs]
    if unknown:
        raise ValueError(
            f"callback_on_step_end_tensor_inputs: {unknown} not in {pipe._callback_tensor_inputs}"
        )
