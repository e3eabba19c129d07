"""Inputs of LatentDiffusionPipeline (and its inpainting subclass): each argument's own type and range
(`hfldm.pipelines.arguments`), then the arguments against each other and against the batch, all before
any work; the class labels (the null class ∅ of guidance is the last class embedding,
`hfldm.unets.null_class`).
"""

from __future__ import annotations

import numpy as np
import torch

from .hfldm_pipelines_arguments import check_arguments
from .hfldm_text_encoder import text_max_length


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


def image_count(image) -> int:
    """How many images `image` holds: a list's entries, a 4-D array's / tensor's first axis, else 1."""
    if isinstance(image, list | tuple):
        return sum(image_count(i) for i in image)
    return image.shape[0] if isinstance(image, np.ndarray | torch.Tensor) and image.ndim == 4 else 1


def condition_batch(pipe, arguments: dict) -> int:
    """The number of prompts / class labels / images of a call (1 if none): ValueError naming the argument
    whose count disagrees."""
    prompt, embeds, labels = (arguments.get(k) for k in ("prompt", "prompt_embeds", "class_labels"))
    counts = {
        "prompt": len(as_list(prompt)) if prompt is not None else None,
        "prompt_embeds": embeds.shape[0] if embeds is not None else None,
        "class_labels": len(as_list(labels)) if labels is not None else None,
    }
    given = {name: n for name, n in counts.items() if n is not None}
    batch = next(iter(given.values()), None)
    for name, n in given.items():
        if n != batch:
            raise ValueError(f"{name} has {n} entries, {next(iter(given))} has {batch}: give one per image")
    images = image_count(arguments["image"]) if arguments.get("image") is not None else None
    if batch is not None and images not in (None, 1, batch):
        raise ValueError(f"image has {images} images for {batch} prompts / class labels (give 1 or {batch})")
    return batch or images or 1


def check_text(pipe, arguments: dict, batch: int) -> None:
    """prompt / negative_prompt and their precomputed embeddings and masks: text-conditional pipelines only,
    one of each pair, shapes that fit the U-Net's cross-attention and the batch."""
    text_arguments = ("prompt", "negative_prompt", "prompt_embeds", "negative_prompt_embeds")
    for name in text_arguments + ("prompt_attention_mask", "negative_prompt_attention_mask"):
        if arguments.get(name) is not None and not pipe.is_text_conditional:
            raise ValueError(
                f"{name} was given, but this pipeline has no text encoder (not text-conditional)"
            )
    for text, embeds in (("prompt", "prompt_embeds"), ("negative_prompt", "negative_prompt_embeds")):
        if arguments.get(text) is not None and arguments.get(embeds) is not None:
            raise ValueError(f"{text} and {embeds} cannot both be given (the embeddings replace the text)")
    negative = arguments.get("negative_prompt")
    if isinstance(negative, list | tuple) and len(negative) != batch:
        raise ValueError(f"negative_prompt has {len(negative)} entries for a batch of {batch}")
    width = getattr(pipe.unet.config, "cross_attention_dim", None) if pipe.unet is not None else None
    masked = pipe.config.text_attention_mask
    for prefix in ("", "negative_"):
        embeds, mask = (
            arguments.get(f"{prefix}prompt_embeds"),
            arguments.get(f"{prefix}prompt_attention_mask"),
        )
        if embeds is not None and (embeds.shape[0] != batch or (width and embeds.shape[2] != width)):
            raise ValueError(
                f"{prefix}prompt_embeds must have shape ({batch}, L, {width or 'D'}), got "
                f"{tuple(embeds.shape)}"
            )
        if mask is not None and (
            embeds is None or tuple(mask.shape) != tuple(embeds.shape[:2]) or not masked
        ):
            raise ValueError(
                f"{prefix}prompt_attention_mask must come with {prefix}prompt_embeds, shaped like their "
                "(B, L), for a pipeline with text_attention_mask"
            )
    length = text_max_length(pipe.tokenizer) if pipe.tokenizer is not None else None
    for name in ("prompt_embeds", "negative_prompt_embeds"):
        embeds = arguments.get(name)
        if not masked and embeds is not None and embeds.shape[1] != length:
            raise ValueError(
                f"{name} must have {length} tokens (unmasked text is always padded to the tokenizer's "
                f"length, text_attention_mask=False), got {embeds.shape[1]}"
            )


def check_sampling(pipe, arguments: dict, num_images: int) -> None:
    """The denoising loop's arguments: steps or custom timesteps the scheduler takes, one generator per image,
    the callback's tensor names."""
    steps, timesteps = arguments.get("num_inference_steps"), arguments.get("timesteps")
    T = pipe.scheduler.config.num_train_timesteps
    if timesteps is None and steps is None:
        raise ValueError("num_inference_steps must be given (or custom timesteps)")
    if timesteps is None and steps > T:
        raise ValueError(
            f"num_inference_steps must be at most the scheduler's {T} training steps, got {steps}"
        )
    values = as_list(torch.as_tensor(timesteps)) if timesteps is not None else []
    if values and (max(values) >= T or min(values) < 0):
        raise ValueError(f"timesteps must lie in [0, {T}), got values in [{min(values)}, {max(values)}]")
    generator = arguments.get("generator")
    if isinstance(generator, list | tuple) and len(generator) != num_images:
        raise ValueError(f"generator: a list of {len(generator)} generators for {num_images} images")
    names = arguments.get("callback_on_step_end_tensor_inputs")
    unknown = [name for name in as_list(names or []) if name not in pipe._callback_tensor_inputs]
    if unknown:
        raise ValueError(
            f"callback_on_step_end_tensor_inputs: {unknown} not in {pipe._callback_tensor_inputs}"
        )


def check_size(pipe, name: str, value: int | None) -> None:
    """height / width: a positive multiple of the pipeline's `size_multiple`."""
    multiple = pipe.size_multiple  # f × the U-Net's 2^(levels - 1)
    if value is not None and (value < multiple or value % multiple != 0):
        raise ValueError(
            f"{name} must be a positive multiple of {multiple} (the autoencoder's f = "
            f"{pipe.vae_scale_factor} times the U-Net's downsampling), got {value}"
        )


def check_image_to_image(arguments: dict) -> None:
    """`image` and `strength` of image-to-image (SDEdit): both or neither, and no `latents` beside them."""
    if arguments.get("strength") is not None and arguments.get("image") is None:
        raise ValueError("strength was given without an image (image-to-image needs both)")
    if arguments.get("latents") is not None and arguments.get("image") is not None:
        raise ValueError("latents and image cannot both be given (image-to-image starts from the image)")


def check_inputs(pipe, arguments: dict) -> int:
    """Raise a ValueError naming the first argument of `pipe(**arguments)` that the pipeline cannot use;
    return the batch size (prompts, class labels or images)."""
    check_arguments(arguments)
    for name in ("vae", "unet"):
        if getattr(pipe, name) is None:
            raise ValueError(
                f"{name} is None: this pipeline only encodes prompts (encode_prompt), it cannot sample"
            )
    get = arguments.get
    batch = condition_batch(pipe, arguments)
    check_text(pipe, arguments, batch)
    if get("class_labels") is not None:
        if pipe.num_class_embeds is None:
            raise ValueError(
                "class_labels were given, but the U-Net is not class-conditional (num_class_embeds)"
            )
        pipe.class_label_ids(get("class_labels"))
    num_images = batch * get("num_images_per_prompt")
    check_sampling(pipe, arguments, num_images)
    for name in ("height", "width"):
        check_size(pipe, name, get(name))
    latents = get("latents")
    if latents is not None:
        shape = pipe.latent_shape(num_images, get("height"), get("width"))
        if tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
    return batch
