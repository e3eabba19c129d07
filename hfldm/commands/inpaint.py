"""`hfldm inpaint --image in.png --mask mask.png --prompt "cat face" --out out.png`: the inpainting LDM
(LDM §4.5) on an image: white in the mask is repainted, black is kept (pixel for pixel).

The mask is resized to the image's size if it differs (nearest, as the pipeline does); --num-images draws
several fillings, image i from a generator seeded by --seed + i.
"""

from __future__ import annotations

import argparse
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


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "inpaint", help="repaint the masked part of an image with an inpainting LDM"
    )
    parser.add_argument(
        "--model",
        default=None,
        help="inpainting pipeline folder or Hub id (default: $HFLDM_INPAINT_MODEL or the bundled one)",
    )
    parser.add_argument("--image", required=True, help="the image to inpaint")
    parser.add_argument("--mask", required=True, help="mask image: white = repaint, black = keep")
    parser.add_argument("--prompt", default=None, help="what the image shows after inpainting (text models)")
    parser.add_argument("--negative-prompt", default=None, help="replaces the empty prompt of guidance")
    parser.add_argument("--num-images", type=int, default=1, help="fillings to draw (a grid when > 1)")
    parser.add_argument("--steps", type=int, default=25, help="number of sampling steps")
    parser.add_argument("--guidance-scale", type=float, default=3.0, help="classifier-free guidance w")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the first image")
    parser.add_argument("--scheduler", choices=["saved", *SCHEDULERS], default="saved", help="sampler")
    parser.add_argument("--no-paste-back", action="store_true", help="return D(z_0) outside the mask too")
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
    for flag, path in (("--image", args.image), ("--mask", args.mask)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{flag} not found: {path}")
    check_out(args.out)


def run(args: argparse.Namespace) -> int:
    import math

    import torch

    from hfldm import resources
    from hfldm.atomic import save_image
    from hfldm.pipelines.pipeline_latent_diffusion_inpaint import LatentDiffusionInpaintPipeline

    check_args(args)
    try:
        model = resolve_model(args.model, resources.default_inpaint_model, "HFLDM_INPAINT_MODEL")
    except FileNotFoundError as e:
        raise FileNotFoundError(f"--model: {e}") from None
    check_device(args.device)
    image = open_image(args.image, max_pixels=args.max_pixels)
    mask = open_image(args.mask, "--mask", mode="L", max_pixels=args.max_pixels)
    pipe = load_pipeline(
        model, args.scheduler, args.device, "--model", LatentDiffusionInpaintPipeline, args.dtype
    )
    if args.prompt is not None and not pipe.is_text_conditional:
        raise ValueError("--prompt: this inpainting model has no text encoder")
    multiple = pipe.size_multiple
    if image.width % multiple or image.height % multiple:
        raise ValueError(
            f"--image: {args.image} is {image.width}x{image.height}; this model needs sides that are "
            f"multiples of {multiple}"
        )
    generators = [torch.Generator("cpu").manual_seed(args.seed + i) for i in range(args.num_images)]
    images = pipe(
        args.prompt,
        image=image,
        mask_image=mask,
        negative_prompt=args.negative_prompt,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        num_images_per_prompt=args.num_images,
        generator=generators,
        paste_back=not args.no_paste_back,
    ).images
    grid = images[0] if len(images) == 1 else grid_of(images, math.ceil(math.sqrt(len(images))))
    out = Path(args.out)
    save_image(grid, out)  # atomic: a full disk never leaves a truncated --out behind
    size = f"{images[0].width}x{images[0].height}"
    print(f"wrote {out} ({len(images)} image{'s' if len(images) > 1 else ''} of {size})")
    return 0
