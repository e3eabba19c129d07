"""`make demo`: load the bundled model the way a diffusers user would and draw a captioned grid.

    python -m hfldm.demo [--model models/hfldm-emoji] [--prompt "red apple"] [--out outputs/demo.png]

The grid's first row holds emoji names the model was trained on (hfldm.text.vocabulary.KNOWN_EXAMPLES found
in the folder's vocabulary.txt) and the user's prompt, its second row held-out names (never seen in
training; `example_captions.txt` in the model folder), captioned "(held out)": all from one fixed seed.
Where the bundled super-resolution model is there (`--sr-model`, models/hfldm-emoji-sr), every 32 px image
is then upscaled to 64 px by it: the cascade text -> 32 px -> 64 px (LDM §4.4); `--no-upscale` keeps 32 px.

Without the bundled model folder (a checkout without models/), the default is replaced by a tiny
class-conditional LDM trained on scikit-learn's digits in about a minute and a half (both stages, with the
project's own training scripts), so the demo still shows the whole path: data, autoencoder, LDM, pipeline.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_PROMPT = "smiling cat with heart-eyes"  # a CLDR emoji name from the train split
FALLBACK_CAPTIONS = ["red apple", "grinning face", "rocket", "sun", "dog face", "pine tree", "heart", "car"]
DEFAULT_MODEL = "models/hfldm-emoji"
DEFAULT_SR_MODEL = "models/hfldm-emoji-sr"
DEFAULT_FEW_STEP_MODEL = "models/hfldm-emoji-lcm"  # the text model's consistency-distilled student
TRAINING = Path(__file__).resolve().parents[1] / "training"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hfldm.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="saved pipeline folder")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="your own prompt, drawn last")
    parser.add_argument("--num-known", type=int, default=7, help="trained names to draw (first row)")
    parser.add_argument("--num-captions", type=int, default=8, help="held-out captions to draw (second row)")
    parser.add_argument("--steps", type=int, default=25, help="DDIM sampling steps")
    parser.add_argument("--guidance-scale", type=float, default=None, help="CFG weight (default: model's)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--few-step-model",
        default=DEFAULT_FEW_STEP_MODEL,
        help="the default model's few-step student, used when present (LCMScheduler, --few-steps steps)",
    )
    parser.add_argument("--few-steps", type=int, default=4, help="LCM steps of the few-step model")
    parser.add_argument("--no-few-step", action="store_true", help="sample the teacher with DDIM instead")
    parser.add_argument("--sr-model", default=DEFAULT_SR_MODEL, help="super-resolution pipeline folder")
    parser.add_argument("--sr-steps", type=int, default=25, help="DDIM steps of the upscaling")
    parser.add_argument("--no-upscale", action="store_true", help="keep the text model's resolution")
    parser.add_argument(
        "--dtype",
        default="auto",
        help="U-Net / text encoder precision: auto (bfloat16 where the CPU computes it natively, else "
        "float32), float32 or bfloat16",
    )
    parser.add_argument("--out", default="outputs/demo.png", help="output PNG")
    parser.add_argument("--work-dir", default="outputs/demo-digits", help="where the fallback trains")
    args = parser.parse_args(argv)
    if not (Path(args.model) / "model_index.json").is_file() and args.model != DEFAULT_MODEL:
        parser.error(f"--model: no saved pipeline at {args.model} (model_index.json missing)")
    if not (Path(args.sr_model) / "model_index.json").is_file() and args.sr_model != DEFAULT_SR_MODEL:
        parser.error(f"--sr-model: no saved pipeline at {args.sr_model} (model_index.json missing)")
    if args.steps < 1 or args.sr_steps < 1 or args.num_captions < 0 or args.num_known < 0:
        parser.error("--steps and --sr-steps must be >= 1, --num-known and --num-captions >= 0")
    return args


def example_captions(model: Path, count: int) -> list[str]:
    """The first `count` held-out captions shipped with the model (or a fixed list)."""
    path = model / "example_captions.txt"
    lines = path.read_text().splitlines() if path.is_file() else FALLBACK_CAPTIONS
    return [line.strip() for line in lines if line.strip()][:count]


def train_digits_model(work: Path) -> Path:
    """Both LDM stages on 16 px digits with the project's training scripts; returns the pipeline folder."""
    pipeline = work / "ldm"
    if (pipeline / "model_index.json").is_file():
        return pipeline
    data, autoencoder, configs = work / "data", work / "autoencoder", TRAINING / "configs"
    quick = ["--validation_steps", "0", "--checkpointing_steps", "100000", "--report_to", "none"]
    steps = [
        ["-m", "hfldm.cli", "data", "digits", "--out", str(data), "--resolution", "16"],
        [
            str(TRAINING / "train_autoencoder.py"),
            "--config",
            str(configs / "autoencoder_digits.yaml"),
            "--train_data_dir",
            str(data / "16"),
            "--max_train_steps",
            "300",
            "--disc_start",
            "100000",
            "--output_dir",
            str(autoencoder),
            *quick,
        ],
        [
            str(TRAINING / "train_ldm.py"),
            "--config",
            str(configs / "ldm_digits.yaml"),
            "--unet_config",
            str(configs / "unet_tiny.yaml"),
            "--autoencoder",
            str(autoencoder),
            "--train_data_dir",
            str(data / "16"),
            "--max_train_steps",
            "600",
            "--output_dir",
            str(pipeline),
            *quick,
        ],
    ]
    for command in steps:
        subprocess.run([sys.executable, *command], check=True)
    return pipeline


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    model, digits = Path(args.model), not (Path(args.model) / "model_index.json").is_file()
    few_step = args.model == DEFAULT_MODEL and not args.no_few_step and not digits
    few_step = few_step and (Path(args.few_step_model) / "model_index.json").is_file()
    if few_step:  # its own LCMScheduler; one U-Net row per image (w embedded)
        args.steps = args.few_steps
        print(f"using the few-step model {args.few_step_model} ({args.steps} LCM steps; --no-few-step: DDIM)")
    if digits:
        print(
            f"no bundled model at {model} yet: training a tiny digits LDM (about 1.5 min on 2 cores) instead"
        )
        model = train_digits_model(Path(args.work_dir))
    sampled_model = Path(args.few_step_model) if few_step else model  # the prompts come from `model`'s folder
    import torch
    from diffusers import DiffusionPipeline

    from hfldm.commands.shared import quiet_loading
    from hfldm.data.grid import image_grid
    from hfldm.precision import half_precision, resolve_dtype
    from hfldm.schedulers.ddim import DDIMScheduler
    from hfldm.text.vocabulary import known_examples, read_vocabulary

    dtype = resolve_dtype(args.dtype)
    with quiet_loading():  # no loading bars: the denoising bar is the demo's
        pipe = DiffusionPipeline.from_pretrained(str(sampled_model), trust_remote_code=True)
    if dtype != torch.float32:
        half_precision(pipe, dtype)
    if not few_step:
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(desc="denoising")
    if digits:
        labels = [d for d in range(10) for _ in range(3)]
        condition, captions = {"class_labels": labels}, [f"digit {d}" for d in labels]
    else:
        known = [n for n in known_examples(read_vocabulary(model), args.num_known + 1) if n != args.prompt]
        held_out = example_captions(model, args.num_captions)
        prompts = [*known[: args.num_known], args.prompt, *held_out]
        captions = [
            *known[: args.num_known],
            f"{args.prompt} (yours)",
            *(f"{c} (held out)" for c in held_out),
        ]
        condition = {"prompt": prompts}
    kwargs = {} if args.guidance_scale is None else {"guidance_scale": args.guidance_scale}
    images = pipe(
        **condition,
        num_inference_steps=args.steps,
        generator=torch.Generator("cpu").manual_seed(args.seed),
        **kwargs,
    ).images
    sampled = time.perf_counter()
    upscaled = not digits and not args.no_upscale and (Path(args.sr_model) / "model_index.json").is_file()
    if upscaled:  # the cascade: each 32 px image upscaled by the SR LDM, image i with seed + i
        with quiet_loading():
            sr = DiffusionPipeline.from_pretrained(args.sr_model, trust_remote_code=True)
        if dtype != torch.float32:
            half_precision(sr, dtype)
        sr.set_progress_bar_config(desc="upscaling")
        generators = [torch.Generator("cpu").manual_seed(args.seed + i) for i in range(len(images))]
        images = sr(images, num_inference_steps=args.sr_steps, generator=generators).images
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(images, captions, columns=10 if digits else 8).save(out)
    seconds = time.perf_counter() - start
    side, sampler = images[0].width, "LCM" if few_step else "DDIM"
    print(
        f"wrote {out.resolve()}: {len(images)} images of {side} px ({args.steps} {sampler} steps, "
        f"{str(dtype).removeprefix('torch.')}), {seconds:.1f} s"
    )
    if upscaled:
        upscaling = time.perf_counter() - sampled
        print(f"  of which upscaling to {side} px ({args.sr_steps} DDIM steps): {upscaling:.1f} s")
    if not digits:
        print(
            f"first row: names the model was trained on, then your prompt {args.prompt!r}; second row: "
            "held-out names, never seen in training"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
