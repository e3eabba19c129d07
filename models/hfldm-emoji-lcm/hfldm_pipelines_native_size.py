"""The one warning about sizes: a model draws whole images only at the size it was trained at (its native
size, `default_image_size()`: the U-Net's sample_size times f); being convolutional it runs at other sizes
too, but there it draws texture, not the training images' layout. Every pipeline that samples at a chosen
size calls `warn_other_size` once per call; `hfldm generate` words the same message for its flags."""

from __future__ import annotations

from diffusers.utils import logging

logger = logging.get_logger(__name__)


def other_size_message(native: tuple[int, int], height: int, width: int) -> str | None:
    """The warning for sampling at (height, width) pixels by a model whose native size is `native`
    (height, width); None at the native size."""
    native_height, native_width = native
    if (height, width) == (native_height, native_width):
        return None
    return (
        f"this model was trained at its native size, {native_width}x{native_height} px, and draws texture, "
        f"not whole images, at {width}x{height}"
    )


def warn_other_size(pipe, height: int, width: int) -> bool:
    """One `logger.warning` line when (height, width) is not `pipe.default_image_size()`; True when it
    warned."""
    message = other_size_message(pipe.default_image_size(), height, width)
    if message is not None:
        logger.warning(f"{message} (height / width: leave them out for the native size)")
    return message is not None
