"""`make demo`: load the bundled model the way a diffusers user would and draw a captioned grid.

    python -m hfldm.demo [--model models/hfldm-emoji] [--prompt "red apple"] [--out outputs/demo.png]

The grid holds held-out captions (never seen in training; `example_captions.txt` in the model folder)
plus the user's prompt, all from one fixed seed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_PROMPT = "smiling cat face with heart-eyes"
FALLBACK_CAPTIONS = ["red apple", "grinning face", "rocket", "sun", "dog face", "pine tree", "heart", "car"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hfldm.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/hfldm-emoji", help="saved pipeline folder")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="your own prompt, drawn last")
    parser.add_argument("--num-captions", type=int, default=15, help="held-out captions to draw")
    parser.add_argument("--steps", type=int, default=25, help="DDIM sampling steps")
    parser.add_argument("--guidance-scale", type=float, default=None, help="CFG weight (default: model's)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--out", default="outputs/demo.png", help="output PNG")
    args = parser.parse_args(argv)
    if not (Path(args.model) / "model_index.json").is_file():
        parser.error(f"--model: no saved pipeline at {args.model} (model_index.json missing)")
    if args.steps < 1 or args.num_captions < 0:
        parser.error("--steps must be >= 1 and --num-captions >= 0")
    return args


def example_captions(model: Path, count: int) -> list[str]:
    """The first `count` held-out captions shipped with the model (or a fixed list)."""
    path = model / "example_captions.txt"
    lines = path.read_text().splitlines() if path.is_file() else FALLBACK_CAPTIONS
    return [line.strip() for line in lines if line.strip()][:count]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    import torch
    from diffusers import DiffusionPipeline

    from hfldm.data.grid import image_grid
    from hfldm.schedulers.ddim import DDIMScheduler

    pipe = DiffusionPipeline.from_pretrained(args.model, trust_remote_code=True)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(desc="denoising")
    captions = example_captions(Path(args.model), args.num_captions) + [args.prompt]
    kwargs = {} if args.guidance_scale is None else {"guidance_scale": args.guidance_scale}
    images = pipe(
        prompt=captions,
        num_inference_steps=args.steps,
        generator=torch.Generator("cpu").manual_seed(args.seed),
        **kwargs,
    ).images
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(images, captions, columns=8).save(out)
    seconds = time.perf_counter() - start
    print(f"wrote {out.resolve()}: {len(images)} images ({args.steps} DDIM steps) in {seconds:.1f} s")
    print(f"last image: your prompt {args.prompt!r}; the others are held-out captions never seen in training")
    return 0


if __name__ == "__main__":
    sys.exit(main())
