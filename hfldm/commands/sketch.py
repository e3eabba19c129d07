"""`hfldm sketch --image doodle.png --prompt "cat face" --out out.png`: the sketch LDM (LDM §4.3.2, spatial
conditioning hybrid with the prompt) on a drawing: dark strokes on white, of any size.

--num-images draws several images of the one sketch, image i from a generator seeded by --seed + i.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from hfldm.commands import add_bounds, check_bounds, check_out, check_text
from hfldm.commands.shared import (
    SCHEDULERS,
    add_dtype_flag,
    check_device,
    grid_of,
    load_pipeline,
    open_image,
    resolve_model,
)

MODEL_NAME = "hfldm-emoji-sketch"  # the bundled model, models/<name>


def default_sketch_model() -> str:
    """HFLDM_SKETCH_MODEL, else the bundled sketch pipeline folder (emoji, 32 px)."""
    from hfldm.resources import bundled

    return os.environ.get("HFLDM_SKETCH_MODEL") or str(bundled(MODEL_NAME))


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sketch", help="draw an image from a sketch and a prompt with a sketch LDM"
    )
    parser.add_argument(
        "--model",
        default=None,
        help="sketch pipeline folder or Hub id (default: $HFLDM_SKETCH_MODEL or the bundled one)",
    )
    parser.add_argument("--image", required=True, help="the sketch: dark strokes on white, any size")
    parser.add_argument("--prompt", default=None, help="what the image shows (text models)")
    parser.add_argument("--negative-prompt", default=None, help="replaces the empty prompt of guidance")
    parser.add_argument("--num-images", type=int, default=1, help="images to draw (a grid when > 1)")
    parser.add_argument("--steps", type=int, default=25, help="number of sampling steps")
    parser.add_argument("--guidance-scale", type=float, default=3.0, help="classifier-free guidance w")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the first image")
    parser.add_argument("--scheduler", choices=["saved", *SCHEDULERS], default="saved", help="sampler")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    add_dtype_flag(parser)
    add_bounds(parser)
    parser.add_argument("--out", required=True, help="output PNG file")
    parser.set_defaults(func=run)


def check_args(args: argparse.Namespace) -> None:
    from hfldm.commands import check_finite

    check_finite(args, "guidance_scale")
    check_text(args, "prompt", "negative_prompt")
    check_bounds(args, args.num_images, "--num-images")
    for name in ("steps", "num_images"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not Path(args.image).is_file():
        raise FileNotFoundError(f"--image not found: {args.image}")
    check_out(args.out)


def run(args: argparse.Namespace) -> int:
    import math

    import torch

    from hfldm.atomic import save_image
    from hfldm.pipelines.pipeline_latent_diffusion_sketch import LatentDiffusionSketchPipeline

    check_args(args)
    try:
        model = resolve_model(args.model, default_sketch_model, "HFLDM_SKETCH_MODEL")
    except FileNotFoundError as e:
        raise FileNotFoundError(f"--model: {e}") from None
    check_device(args.device)
    sketch = open_image(args.image, max_pixels=args.max_pixels)
    pipe = load_pipeline(
        model, args.scheduler, args.device, "--model", LatentDiffusionSketchPipeline, args.dtype
    )
    if args.prompt is not None and not pipe.is_text_conditional:
        raise ValueError("--prompt: this sketch model has no text encoder")
    generators = [torch.Generator("cpu").manual_seed(args.seed + i) for i in range(args.num_images)]
    images = pipe(
        prompt=args.prompt,
        image=sketch,
        negative_prompt=args.negative_prompt,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        num_images_per_prompt=args.num_images,
        generator=generators,
    ).images
    grid = images[0] if len(images) == 1 else grid_of(images, math.ceil(math.sqrt(len(images))))
    out = Path(args.out)
    save_image(grid, out)  # atomic: a full disk never leaves a truncated --out behind
    size = f"{images[0].width}x{images[0].height}"
    print(f"wrote {out} ({len(images)} image{'s' if len(images) > 1 else ''} of {size})")
    return 0
