"""`hfldm generate --model DIR --prompt "..." --out file.png`: sample a saved LatentDiffusionPipeline.

Several images (`--num-images`, several `--prompt`s or `--class-label`s) are written as one grid PNG.
torch and diffusers are imported only after the arguments and paths have been checked, so mistakes fail fast.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from hfldm.commands import (
    add_bounds,
    check_bounds,
    check_finite,
    check_out,
    check_size,
    check_text,
)
from hfldm.commands.shared import (
    DEFAULT_MODEL,
    SCHEDULERS,
    add_dtype_flag,
    check_device,
    grid_of,
    load_pipeline,
    load_sr_pipeline,
    open_image,
    resolve_model,
    resolve_sr_model,
    upscale,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser("generate", help="generate images with a saved latent diffusion model")
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="pipeline folder or Hub id (default: $HFLDM_MODEL or the bundled one)",
    )
    parser.add_argument("--prompt", action="append", help="text prompt (repeat for several)")
    parser.add_argument("--negative-prompt", default=None, help="unconditional text for guidance")
    parser.add_argument("--class-label", action="append", help="class name or index (repeat for several)")
    parser.add_argument("--steps", type=int, default=50, help="number of sampling steps")
    parser.add_argument("--guidance-scale", type=float, default=None, help="CFG weight w (1 = none)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--num-images", type=int, default=1, help="images per prompt / class label")
    parser.add_argument("--scheduler", choices=["saved", *SCHEDULERS], default="saved", help="sampler")
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM eta")
    parser.add_argument("--height", type=int, default=None, help="image height in pixels (default: native)")
    parser.add_argument("--width", type=int, default=None, help="image width in pixels (default: native)")
    parser.add_argument("--image", default=None, help="input image for image-to-image (SDEdit)")
    parser.add_argument("--strength", type=float, default=None, help="image-to-image noise level in [0, 1]")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per pipeline call (memory bound)")
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the U-Net (fullgraph; minutes to compile)"
    )
    add_dtype_flag(parser)
    add_bounds(parser)
    parser.add_argument(
        "--upscale",
        nargs="?",
        const="default",
        default=None,
        metavar="SR_MODEL",
        help="then upscale every image with a super-resolution pipeline (LDM §4.4), a folder or Hub id "
        "(bare --upscale: $HFLDM_SR_MODEL or the bundled 32 -> 64 px emoji model)",
    )
    parser.add_argument("--upscale-steps", type=int, default=50, help="sampling steps of --upscale")
    parser.add_argument(
        "--no-captions", action="store_true", help="several prompts: a bare grid, no captions underneath"
    )
    parser.add_argument("--out", required=True, help="output PNG file")
    parser.set_defaults(func=run)


def parse_class_labels(labels: list[str] | None) -> list[int | str] | None:
    """'3' -> 3, 'cat face' -> 'cat face'."""
    return None if labels is None else [int(x) if x.strip().isdigit() else x for x in labels]


def check_args(args: argparse.Namespace) -> None:
    """Fail on bad numbers and paths before anything heavy is imported."""
    check_finite(args, "guidance_scale", "eta", "strength")
    check_text(args, "prompt", "negative_prompt", "class_label")
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    if args.upscale_steps < 1:
        raise ValueError(f"--upscale-steps must be at least 1, got {args.upscale_steps}")
    if args.num_images < 1:
        raise ValueError(f"--num-images must be at least 1, got {args.num_images}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    conditions = len(args.prompt or args.class_label or [None])
    how = f"{conditions} prompt(s) × {args.num_images} = "
    check_bounds(args, conditions * args.num_images, "--num-images", how)
    if args.height is not None or args.width is not None:
        check_size(args, args.width or 1, args.height or 1, "--height/--width")
    if args.image is not None and not Path(args.image).is_file():
        raise FileNotFoundError(f"--image not found: {args.image}")
    check_out(args.out)


def conditions_grid(images: list, conditions: list, num_images: int, captions: bool = True):
    """One image for the output file. Several prompts / class labels: one row per condition (up to 8 a row
    when each has one image), captioned underneath unless `captions` is False; one condition's images: a
    near-square grid without captions, the last row filled with black cells."""
    from hfldm.data.grid import image_grid

    if len(conditions) < 2:
        return grid_of(images, math.ceil(math.sqrt(len(images))))
    columns = num_images if num_images > 1 else min(8, len(images))
    if not captions:
        return grid_of(images, columns)
    names = [str(c) for c in conditions for _ in range(num_images)]
    return image_grid(images, names, columns=columns, cell=max(64, images[0].width))


def calls(conditions: list, num_images: int, batch_size: int):
    """(conditions, images per condition) of the pipeline calls that make `num_images` images of each
    condition in order, at most `batch_size` images a call."""
    if num_images >= batch_size:
        for condition in conditions:
            for start in range(0, num_images, batch_size):
                yield [condition], min(batch_size, num_images - start)
    else:
        per_call = batch_size // num_images
        for start in range(0, len(conditions), per_call):
            yield conditions[start : start + per_call], num_images


def check_compiler() -> None:
    """ValueError naming --compile when torch.compile's CPU backend has no C++ compiler to call."""
    import shutil

    if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        raise ValueError(
            "--compile: torch.compile needs a C++ compiler (c++, g++ or clang++) on PATH; none found"
        )


def run(args: argparse.Namespace) -> int:
    from hfldm.atomic import save_image

    check_args(args)
    model = resolve_model(args.model)
    sr_model = None if args.upscale is None else resolve_sr_model(args.upscale)
    import torch

    from hfldm.runtime.folders import refuse_export

    check_device(args.device)
    if args.compile:
        check_compiler()
        refuse_export(model, "--compile")
    image = open_image(args.image, max_pixels=args.max_pixels) if args.image else None
    conditions = args.prompt or parse_class_labels(args.class_label) or [None]
    pipe = load_pipeline(model, args.scheduler, args.device, dtype=args.dtype)
    from hfldm.commands.advice import size_warned_once, warn_far_prompts

    warn_far_prompts(pipe, model, args.prompt)
    # compile-clean: no graph breaks, no recompiles across the steps (tests/models/test_compile.py)
    if args.compile:
        pipe.unet = torch.compile(pipe.unet, fullgraph=True)
    kwargs = {} if args.guidance_scale is None else {"guidance_scale": args.guidance_scale}
    key = "prompt" if args.prompt else "class_labels" if args.class_label else None
    generator, images = torch.Generator("cpu").manual_seed(args.seed), []
    height, width = (image.height, image.width) if image is not None else (None, None)
    with size_warned_once(pipe, args.height or height, args.width or width):
        for group, n in calls(conditions, args.num_images, args.batch_size):
            condition = {key: group} if key else {}
            images += pipe(
                **condition,
                negative_prompt=args.negative_prompt,
                height=args.height,
                width=args.width,
                num_inference_steps=args.steps,
                num_images_per_prompt=n,
                eta=args.eta,
                generator=generator,
                image=image,
                strength=args.strength,
                **kwargs,
            ).images
    if sr_model is not None:  # the cascade: text -> 32 px -> SR -> 64 px (LDM §4.4)
        del pipe  # one model in memory at a time
        sr_scheduler = "saved" if args.scheduler == "lcm" else args.scheduler  # the SR model is not distilled
        sr = load_sr_pipeline(sr_model, sr_scheduler, args.device, "--upscale", args.dtype)
        images = upscale(sr, images, args.upscale_steps, args.seed, args.eta)
    grid = conditions_grid(images, conditions, args.num_images, captions=not args.no_captions)
    out = Path(args.out)
    save_image(grid, out)  # atomic: a full disk never leaves a truncated --out behind
    print(f"wrote {out} ({len(images)} image{'s' if len(images) > 1 else ''}, {grid.width}x{grid.height})")
    return 0
