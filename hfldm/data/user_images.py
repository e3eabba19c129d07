"""The one door for a user's image: the CLI, the pipelines' file inputs and the Space open images here.

The pixel count is read from the header and checked before any pixel is decoded, so a small file that
expands to gigabytes (a "decompression bomb") is refused in one line; the pixels are then converted as the
data loader converts them (`to_rgb`: 16-bit and float rescaled, transparency composited on white).
"""

from __future__ import annotations

import io
import os
import warnings

from PIL import Image

from hfldm.data.images import DECODE_ERRORS, to_rgb

# 16 megapixels (4096 x 4096): far above what the 32 / 64 px models use, far below what fills memory
MAX_PIXELS = int(os.environ.get("HFLDM_MAX_IMAGE_PIXELS", 4096 * 4096))


class ImageTooLarge(ValueError):
    """An image over the pixel limit (a ValueError, so the CLI's one-line handler shows it)."""


def check_pixels(size: tuple[int, int], argument: str, max_pixels: int = MAX_PIXELS) -> None:
    """ValueError naming `argument` when an image of `size` (width, height) has more than `max_pixels`."""
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{argument}: the image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (set HFLDM_MAX_IMAGE_PIXELS to raise it); resize it first"
        )


def open_user_image(
    source: str | os.PathLike | bytes | Image.Image,
    argument: str,
    mode: str = "RGB",
    max_pixels: int = MAX_PIXELS,
) -> Image.Image:
    """Returns `source` (a path, encoded bytes or a PIL image) decoded into a PIL image of `mode` ("RGB", or
    "L" for a mask), its pixel count checked before decoding; ValueError naming `argument` otherwise."""
    if isinstance(source, Image.Image):
        check_pixels(source.size, argument, max_pixels)
        return _convert(source, mode)
    opened = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(opened) as image:  # reads the header only
                check_pixels(image.size, argument, max_pixels)
                image.load()
                return _convert(image, mode)
    except ImageTooLarge:
        raise
    except Image.DecompressionBombError as e:  # PIL's own guard fires in open(), before our header check
        raise ImageTooLarge(f"{argument}: {source}: {str(e).split(', could')[0]}, over the limit") from None
    except FileNotFoundError:
        raise ValueError(f"{argument}: no file {source}") from None
    except IsADirectoryError:
        raise ValueError(f"{argument}: {source} is a folder, not an image") from None
    except (Image.UnidentifiedImageError, Image.DecompressionBombWarning, *DECODE_ERRORS) as e:
        what = source if not isinstance(source, bytes) else f"{len(source)} bytes"
        raise ValueError(f"{argument}: {what} is not an image hfldm can read ({type(e).__name__})") from None


def _convert(image: Image.Image, mode: str) -> Image.Image:
    """`image` in 8-bit RGB (`to_rgb`), then in `mode`."""
    rgb = to_rgb(image)
    return rgb if mode == "RGB" else rgb.convert(mode)
