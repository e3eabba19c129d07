"""What one request to the Space may ask for, read from env and checked on the server (sliders are not enough:
the API accepts any value)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Limits:
    """Per-request limits; `from_env` overrides each field with env HFLDM_<FIELD>, e.g. HFLDM_MAX_STEPS=50."""

    max_steps: int = 100  # denoising steps
    max_images: int = 8  # images per request
    max_size: int = 256  # image side, pixels
    max_guidance: float = 20.0  # classifier-free guidance scale w
    max_prompt_chars: int = 300
    queue_size: int = 16  # requests waiting; more are refused with "Queue is full"
    # work of one request = steps × images × pixels per image; 3 M is about a minute of this 2-core CPU with
    # the bundled model (4 images × 25 steps at 32 px = 0.1 M took ≈ 2 s)
    max_work: int = 3_000_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Limits:
        """The defaults, each replaced by env HFLDM_<FIELD> where that is set; ValueError names a bad one."""
        values = {}
        for name, default in vars(cls()).items():
            key = f"HFLDM_{name.upper()}"
            if key in env:
                try:
                    values[name] = type(default)(env[key])
                except ValueError:
                    raise ValueError(f"{key} must be a number, got {env[key]!r}") from None
                if values[name] <= 0:
                    raise ValueError(f"{key} must be positive, got {env[key]!r}")
        return cls(**values)


def whole_number(value: float | None, name: str) -> int:
    """`value` as an int; ValueError naming `name` when it is missing, not a finite number (a string, NaN)
    or has a fractional part."""
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    if not math.isfinite(number) or number != int(number):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise ValueError(f"{name} must be a whole number, got {shown}")
    return int(number)


def check_between(name: str, value: float, low: float, high: float) -> None:
    """ValueError "<name> must be between <low> and <high>, got <value>." outside [low, high]."""
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}.")


def check_request(
    limits: Limits,
    steps: int,
    num_images: int,
    size: int,
    size_step: int,
    guidance_scale: float,
    seed: int,
) -> None:
    """Raise a ValueError, in words for the user, naming the first field outside `limits`.

    `size` is an image side in pixels and must be a multiple of `size_step` (what the model can divide).
    """
    check_between("Steps", steps, 1, limits.max_steps)
    check_between("Number of images", num_images, 1, limits.max_images)
    if not size_step <= size <= limits.max_size or size % size_step:
        raise ValueError(
            f"Image size must be a multiple of {size_step} up to {limits.max_size} pixels, got {size}."
        )
    check_between("Guidance scale", guidance_scale, 0, limits.max_guidance)
    check_between("Seed", seed, 0, MAX_SEED)
    work = steps * num_images * size * size
    if work > limits.max_work:
        raise ValueError(
            f"This request is {steps} steps × {num_images} images × {size}² pixels = {work / 1e6:.1f} M "
            f"pixel-steps; this Space serves up to {limits.max_work / 1e6:.1f} M per request (about a minute "
            "on its CPU). Use fewer steps, images or pixels."
        )
