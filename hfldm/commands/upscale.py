"""`hfldm upscale --image small.png --out big.png`: the super-resolution LDM (LDM §4.4) on images.

`hfldm generate --upscale` runs the same after text-to-image: the cascade text -> 32 px -> 64 px. Each image
is upscaled with its own generator seeded by --seed + its index, so a grid's image does not depend on its
neighbours.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hfldm.commands import add_bounds, check_bounds, check_out, check_size
from hfldm.commands.shared import (
    SCHEDULERS,
    add_dtype_flag,
    check_device,
    grid_of,
    load_sr_pipeline,
    open_image,
    resolve_sr_model,
    upscale,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser("upscale", help="upscale images with a super-resolution LDM")
    parser.add_argument(
        "--model",
        default="default",
        help="super-resolution pipeline folder or Hub id (default: $HFLDM_SR_MODEL or the bundled one)",
    )
    parser.add_argument("--image", action="append", required=True, help="input image (repeat for several)")
    parser.add_argument("--steps", type=int, default=50, help="number of sampling steps")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the first image")
    parser.add_argument("--scheduler", choices=["saved", *SCHEDULERS], default="saved", help="sampler")
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM eta")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    add_dtype_flag(parser)
    add_bounds(parser)
    parser.add_argument("--out", required=True, help="output PNG file (a grid for several images)")
    parser.set_defaults(func=run)


def check_args(args: argparse.Namespace) -> None:
    from hfldm.commands import check_finite

    check_finite(args, "eta")
    check_bounds(args, len(args.image), "--image")
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    for path in args.image:
        if not Path(path).is_file():
            raise FileNotFoundError(f"--image not found: {path}")
    check_out(args.out)


def run(args: argparse.Namespace) -> int:
    import math

    from hfldm.atomic import save_image

    check_args(args)
    model = resolve_sr_model(args.model, "--model")
    check_device(args.device)
    images = [open_image(path, max_pixels=args.max_pixels) for path in args.image]
    pipe = load_sr_pipeline(model, args.scheduler, args.device, dtype=args.dtype)
    multiple = pipe.size_multiple
    for path, image in zip(args.image, images):
        if image.width % multiple or image.height % multiple:
            raise ValueError(
                f"--image: {path} is {image.width}x{image.height}; this model needs sides that are multiples "
                f"of {multiple}"
            )
        check_size(args, image.width * pipe.upscale_factor, image.height * pipe.upscale_factor, "--image")
    upscaled = upscale(pipe, images, args.steps, args.seed, args.eta)
    grid = upscaled[0] if len(upscaled) == 1 else grid_of(upscaled, math.ceil(math.sqrt(len(upscaled))))
    out = Path(args.out)
    save_image(grid, out)  # atomic: a full disk never leaves a truncated --out behind
    size = f"{upscaled[0].width}x{upscaled[0].height}"
    print(f"wrote {out} ({len(upscaled)} image{'s' if len(upscaled) > 1 else ''} of {size})")
    return 0
