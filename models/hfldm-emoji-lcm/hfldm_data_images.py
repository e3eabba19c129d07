"""Decode one stored image safely and turn it into a training tensor.

Decoding goes through `datasets.Image().decode_example` (local paths, bytes, hub files, EXIF rotation);
what it cannot read comes back as an error string instead of an exception, so one bad file never stops
training. Every mode Pillow reads is brought to 8-bit RGB: transparency is composited on white, 16-bit
and float images are rescaled, CMYK / YCbCr / LAB go through Pillow's converters.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import torch
from PIL import Image

# what a broken or unreadable file raises inside Pillow
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


@functools.cache
def _decoder():
    """datasets' image decoder, imported on first use: the super-resolution pipeline uses `to_rgb`, also
    from a saved folder's copy of this file where datasets may be missing (hfldm.pipelines.self_contained)."""
    import datasets

    return datasets.Image()


def decode_rgb(value: dict | str | Image.Image) -> tuple[Image.Image | None, str | None]:
    """Returns (8-bit RGB image, None) for a readable image, or (None, reason) for a broken one.

    `value` is what a column cast to `datasets.Image(decode=False)` holds: {"path", "bytes"} or a path.
    The pixels are fully loaded and converted here, so a truncated file fails here and not later.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about EXIF / palette details handled by to_rgb
            image = _decoder().decode_example(value)
            image.load()
            return to_rgb(image), None
    except DECODE_ERRORS as e:
        return None, f"{type(e).__name__}: {e}"


def image_name(value: dict | str | Image.Image, index: int | None = None) -> str:
    """Returns a human-readable name of a stored image: its path, else its row index."""
    path = value.get("path") if isinstance(value, dict) else value if isinstance(value, str) else None
    return str(path) if path else f"row {index}"


def _to_uint8(image: Image.Image) -> np.ndarray:
    """Maps a 16-bit, 32-bit integer or float single-channel image to 0..255, shape (H, W)."""
    array = np.asarray(image).astype(np.float64)
    if image.mode.startswith("I;16") or (image.mode == "I" and array.max(initial=0) > 255):
        array = array / 257.0  # 65535 -> 255
    elif image.mode == "F" and array.max(initial=0) <= 1.0:
        array = array * 255.0  # float images in [0, 1]
    return np.clip(np.round(array), 0, 255).astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """Returns an 8-bit RGB copy of any Pillow image; transparent pixels are composited on white."""
    if image.mode in ("I", "F") or image.mode.startswith("I;"):
        image = Image.fromarray(_to_uint8(image))  # (H, W) uint8 -> mode "L"
    has_alpha = image.mode in ("RGBA", "LA", "RGBa", "La", "PA") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def resize_and_crop(image: Image.Image, resolution: int, center_crop: bool = True) -> Image.Image:
    """Resizes the shorter side to `resolution` and crops a (resolution, resolution) square.

    The crop is central, or drawn from torch's global RNG when `center_crop` is False.
    """
    width, height = image.size
    scale = resolution / min(width, height)
    size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    if size != image.size:
        filter_ = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC
        image = image.resize(size, filter_)
    dx, dy = size[0] - resolution, size[1] - resolution
    if center_crop:
        left, top = dx // 2, dy // 2
    else:
        left, top = (int(torch.randint(0, d + 1, ())) for d in (dx, dy))
    return image.crop((left, top, left + resolution, top + resolution))


def to_tensor(image: Image.Image) -> torch.Tensor:
    """Returns a float32 tensor of shape (3, H, W) in [-1, 1] from an RGB image."""
    array = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())  # (H, W, 3)
    return array.permute(2, 0, 1).float() / 127.5 - 1.0
