"""The `hfldm` sub-commands (see `hfldm.cli`) and the argument checks they share."""

from __future__ import annotations

import argparse
import math


def check_finite(args: argparse.Namespace, *names: str) -> None:
    """ValueError naming the first --flag among `names` whose (float) value is nan or inf."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and not math.isfinite(value):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number, got {value}")


# --max-pixels' default: every image read or written by generate / upscale / inpaint (1024 x 1024, far above
# the 32 / 64 px models, far below what fills memory: 65536^2 asked for 8.6 GB before any check)
MAX_PIXELS = 1024 * 1024


def add_bounds(parser: argparse.ArgumentParser, max_images: int = 256) -> None:
    """--max-images and --max-pixels, the bounds generate, upscale and inpaint share."""
    parser.add_argument("--max-images", type=int, default=max_images, help="refuse requests for more images")
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=MAX_PIXELS,
        help="refuse input or output images with more pixels (width x height) than this",
    )


def check_bounds(args: argparse.Namespace, images: int, flag: str, count: str = "") -> None:
    """ValueError naming `flag` when `images` images (`count`: how they add up) exceed --max-images; and a
    bound below 1."""
    if args.max_images < 1 or args.max_pixels < 1:
        raise ValueError(
            f"--max-images and --max-pixels must be at least 1, got {args.max_images}, {args.max_pixels}"
        )
    if images > args.max_images:
        raise ValueError(
            f"{flag}: {count}{images} images is more than --max-images {args.max_images} (raise it if you "
            "mean it)"
        )


def check_size(args: argparse.Namespace, width: int, height: int, flag: str) -> None:
    """ValueError naming `flag` when an output of width x height pixels exceeds --max-pixels."""
    if width * height > args.max_pixels:
        raise ValueError(
            f"{flag}: the output would be {width}x{height} = {width * height:,} pixels, over --max-pixels "
            f"{args.max_pixels:,}"
        )


def check_out(path: str, flag: str = "--out") -> None:
    """ValueError naming `flag` unless `path` is a .png file this process can write, before any work: not a
    folder, under a folder that exists (or is created) and takes a new file."""
    from pathlib import Path

    from hfldm.atomic import check_writable

    out = Path(path)
    if out.suffix.lower() != ".png":
        raise ValueError(f"{flag} must be a .png file, got {path}")
    if out.is_dir():
        raise ValueError(f"{flag}: {path} is a folder, not a file")
    check_writable(out.parent, flag)


def check_text(args: argparse.Namespace, *names: str) -> None:
    """ValueError naming the first --flag among `names` (a string or a list of strings) that is not valid
    Unicode: an invalid UTF-8 byte on the command line arrives as a lone surrogate."""
    for name in names:
        value = getattr(args, name, None)
        for text in value if isinstance(value, list) else [value] if value is not None else []:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as e:
                raise ValueError(
                    f"--{name.replace('_', '-')}: {text!r} is not valid UTF-8 text (byte {e.start})"
                ) from None
