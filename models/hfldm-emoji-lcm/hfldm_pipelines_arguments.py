"""What each argument of hfldm's pipelines' `__call__` may be, checked before any work: one ValueError naming
the argument (its type, container and range); `hfldm.pipelines.inputs` then checks the arguments against
each other and against the batch.

`ARGUMENTS` maps every argument name of every hfldm pipeline's `__call__` to its check; a pipeline calls
`check_arguments(dict_of_its_arguments)`, and a test asserts that each `__call__` parameter has an entry.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable

import numpy as np
import PIL.Image
import torch

OUTPUT_TYPES = ("pil", "np", "pt", "latent")
IMAGE_TYPES = (PIL.Image.Image, np.ndarray, torch.Tensor)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(minimum: int) -> Callable:
    """An int (numpy ints too, not bools) >= minimum."""

    def check(name: str, value) -> None:
        if not _is_int(value) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")

    return check


def number(minimum: float, maximum: float = math.inf) -> Callable:
    """A finite real number (int or float, not a bool) in [minimum, maximum]."""

    def check(name: str, value) -> None:
        if not _is_number(value) or not math.isfinite(value):  # nan passes every comparison below
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not minimum <= value <= maximum:
            bounds = f"in [{minimum}, {maximum}]" if math.isfinite(maximum) else f">= {minimum}"
            raise ValueError(f"{name} must be {bounds}, got {value!r}")

    return check


def boolean(name: str, value) -> None:
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def choice(options: tuple[str, ...]) -> Callable:
    def check(name: str, value) -> None:
        if not isinstance(value, str) or value not in options:
            raise ValueError(f"{name} must be one of {options}, got {value!r}")

    return check


def _nonempty_list_of(kinds: tuple[type, ...], what: str) -> Callable:
    """One `kinds` value, or a non-empty list / tuple of them."""

    def check(name: str, value) -> None:
        items = list(value) if isinstance(value, list | tuple) else [value]
        if not items or not all(isinstance(item, kinds) for item in items):
            raise ValueError(f"{name} must be {what} or a non-empty list of them, got {_describe(value)}")

    return check


def class_labels(name: str, value) -> None:
    """Class indices or names: an int, a str, a non-empty list of them, or a 1-D integer tensor."""
    if isinstance(value, torch.Tensor):
        if value.ndim > 1 or value.numel() == 0 or value.is_floating_point() or value.dtype == torch.bool:
            raise ValueError(f"{name} must be a non-empty 1-D integer tensor, got {_describe(value)}")
        return
    items = list(value) if isinstance(value, list | tuple) else [value]
    if not items or not all(_is_int(i) or isinstance(i, str) for i in items):
        raise ValueError(
            f"{name} must be a class index or name, or a non-empty list of them, got {_describe(value)}"
        )


def tensor(ndim: int) -> Callable:
    """A floating-point torch.Tensor with `ndim` dimensions (for masks: any real dtype)."""

    def check(name: str, value) -> None:
        if not isinstance(value, torch.Tensor) or value.ndim != ndim or value.is_complex():
            raise ValueError(f"{name} must be a {ndim}-D torch.Tensor, got {_describe(value)}")
        if value.numel() == 0:
            raise ValueError(f"{name} is empty, shape {tuple(value.shape)}")

    return check


def int_list(name: str, value) -> None:
    """A non-empty list (or 1-D tensor / array) of integers; their range is the scheduler's to check."""
    values = value.tolist() if isinstance(value, torch.Tensor | np.ndarray) else value
    if not isinstance(values, list | tuple) or not values or not all(_is_int(v) for v in values):
        raise ValueError(f"{name} must be a non-empty list of integers, got {_describe(value)}")


def callback(name: str, value) -> None:
    if not callable(value):
        raise ValueError(
            f"{name} must be callable as fn(pipe, step, timestep, tensors) -> dict, got {value!r}"
        )


def mapping(name: str, value) -> None:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{name} must be a dict with str keys, got {_describe(value)}")


def _describe(value) -> str:
    """A short description of a value for an error message: its type, and its shape or length."""
    if isinstance(value, torch.Tensor | np.ndarray):
        return f"{type(value).__name__} of shape {tuple(value.shape)} ({value.dtype})"
    if isinstance(value, list | tuple):
        kinds = sorted({type(v).__name__ for v in value})
        return f"a {type(value).__name__} of {len(value)} ({', '.join(kinds) or 'empty'})"
    text = repr(value)
    return text if len(text) <= 60 else f"{type(value).__name__} {text[:57]}..."


texts = _nonempty_list_of((str,), "a string")
images = _nonempty_list_of(IMAGE_TYPES, "a PIL image, numpy array or torch tensor")
generators = _nonempty_list_of((torch.Generator,), "a torch.Generator")
names = _nonempty_list_of((str,), "a tensor name")

# None is accepted for every argument below whose default is None; `required` lists those it is not for.
ARGUMENTS: dict[str, Callable] = {
    "prompt": texts,
    "negative_prompt": texts,
    "prompt_embeds": tensor(3),  # (B, L, D), τ_θ(y)
    "negative_prompt_embeds": tensor(3),
    "prompt_attention_mask": tensor(2),  # (B, L), 1 = attend
    "negative_prompt_attention_mask": tensor(2),
    "class_labels": class_labels,
    "image": images,
    "mask_image": images,
    "height": integer(1),
    "width": integer(1),
    "num_inference_steps": integer(1),
    "timesteps": int_list,
    "guidance_scale": number(0.0),
    "num_images_per_prompt": integer(1),
    "eta": number(0.0),
    "strength": number(0.0, 1.0),
    "generator": generators,
    "latents": tensor(4),  # (B, C, h, w), z_T
    "paste_back": boolean,
    "output_type": choice(OUTPUT_TYPES),
    "return_dict": boolean,
    "cross_attention_kwargs": mapping,
    "callback_on_step_end": callback,
    "callback_on_step_end_tensor_inputs": names,
}
REQUIRED = ("guidance_scale", "num_images_per_prompt", "eta", "output_type", "return_dict", "paste_back")


def check_arguments(arguments: dict) -> None:
    """Raise a ValueError naming the first argument whose type, container or range no hfldm pipeline takes.

    `arguments`: {name: value} of a `__call__`; None passes for optional arguments (see `REQUIRED`).
    """
    for name, value in arguments.items():
        if value is None and name not in REQUIRED:
            continue
        if value is None:
            raise ValueError(f"{name} must not be None")
        ARGUMENTS[name](name, value)


def check_model_path(pretrained_model_name_or_path) -> None:
    """ValueError naming `pretrained_model_name_or_path` unless it is a folder path or a Hub id (a str or
    os.PathLike): what our pipelines' `from_pretrained` takes."""
    if not isinstance(pretrained_model_name_or_path, str | os.PathLike) or not str(
        pretrained_model_name_or_path
    ):
        raise ValueError(
            "pretrained_model_name_or_path must be a folder or a Hub id (a non-empty str or path), got "
            f"{_describe(pretrained_model_name_or_path)}"
        )
