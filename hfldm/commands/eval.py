"""`hfldm eval --model DIR --dataset DATA`: sample a saved pipeline on held-out conditions, report figures.

Writes report.json, report.md (the Markdown table it also prints) and samples.png (a grid with captions) to
--out. The figures and their references are described in `hfldm.eval.report` and docs/eval.md. Arguments
and paths are checked before torch is imported, so a mistake fails fast with one line (exit code 2).
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from hfldm.commands import check_finite
from hfldm.commands.eval_set import load_eval_set, parse_num_samples
from hfldm.commands.shared import (
    DEFAULT_MODEL,
    HUB_ID,
    SCHEDULERS,
    add_dtype_flag,
    load_pipeline,
    quiet_loading,
    resolve_model,
)

FEATURE_MODEL = "models/hfldm-textimage"


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="FID/KID, text-image scores and reconstructions of a model")
    add_eval_flags(parser)
    parser.add_argument("--steps", type=int, default=50, help="number of sampling steps")
    parser.add_argument("--scheduler", default="saved", help=f"saved, {', '.join(SCHEDULERS)}")
    parser.add_argument("--grid-size", type=int, default=32, help="samples drawn in samples.png")
    parser.add_argument("--out", default="outputs/eval", help="output folder")
    parser.set_defaults(func=run)


def add_eval_flags(parser: argparse.ArgumentParser) -> None:
    """The flags `hfldm eval` shares with benchmarks/sampler_sweep.py: model, data, samples, features."""
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="pipeline folder or Hub id (default: $HFLDM_MODEL or the bundled one)",
    )
    parser.add_argument("--dataset", required=True, help="save_to_disk folder, imagefolder, or Hub dataset")
    parser.add_argument("--split", default="test", help="held-out split: the conditions and real images")
    parser.add_argument("--reference-split", default="train", help="training split: the real-vs-real floor")
    parser.add_argument("--num-samples", default="all", help="first N held-out rows, in order, or 'all'")
    parser.add_argument("--num-reference", type=int, default=10000, help="at most this many reference rows")
    parser.add_argument("--guidance-scale", type=float, default=None, help="CFG weight w (default: 3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the samples")
    parser.add_argument("--batch-size", type=int, default=16, help="samples per pipeline call")
    parser.add_argument("--feature-model", default=FEATURE_MODEL, help="TextImageModel folder (FID features)")
    parser.add_argument("--caption-column", default="text", help="captions (text models)")
    parser.add_argument("--label-column", default="label", help="class labels (class models)")
    parser.add_argument("--image-column", default="image", help="images")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    add_dtype_flag(parser, default="float32")  # the model under test; the feature network stays float32


def resolve_feature_model(path: str) -> Path:
    """The TextImageModel folder (the bundled copy for the default); FileNotFoundError if absent."""
    from hfldm.resources import FEATURE_MODEL_NAME, bundled

    folder = Path(path)
    if not folder.exists() and path == FEATURE_MODEL:
        folder = bundled(FEATURE_MODEL_NAME)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"--feature-model: {path} is not a saved TextImageModel (no config.json)")
    return folder


def check_args(args: argparse.Namespace) -> None:
    """Fail on bad numbers, choices and paths before anything heavy is imported (the flags `args` has)."""
    parse_num_samples(args.num_samples)
    for name in ("steps", "batch_size", "num_reference", "grid_size"):
        if getattr(args, name, 1) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: must be at least 1, got {getattr(args, name)}")
    if getattr(args, "scheduler", "saved") not in ("saved", *SCHEDULERS):
        raise ValueError(
            f"--scheduler: unknown {args.scheduler!r} (choose from saved, {', '.join(SCHEDULERS)})"
        )
    check_finite(args, "guidance_scale")
    if args.guidance_scale is not None and args.guidance_scale < 0:
        raise ValueError(f"--guidance-scale: must be >= 0, got {args.guidance_scale}")
    if Path(args.out).is_file():
        raise ValueError(f"--out: {args.out} is a file, expected a folder")
    resolve_feature_model(args.feature_model)
    if not Path(args.dataset).exists() and not HUB_ID.match(args.dataset):
        raise FileNotFoundError(f"--dataset: no such folder {args.dataset}")


def resolve_model_flag(model: str) -> str:
    """`resolve_model`, with its error naming --model."""
    try:
        return resolve_model(model)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"--model: {e}") from None


def load_feature_model(path: str):
    """(TextImageModel, TextImageFeatures) from the folder `path`."""
    from hfldm.eval.features import TextImageFeatures
    from hfldm.eval.sentence import load_sentence_encoder
    from hfldm.eval.text_image import TextImageModel

    with quiet_loading():
        model = TextImageModel.from_pretrained(str(resolve_feature_model(path))).eval()
        load_sentence_encoder()  # the frozen MiniLM text tower, loaded once here rather than mid-report
    return model, TextImageFeatures(model)


def write_outputs(report: dict, images, captions: list[str], out: Path, grid_size: int) -> str:
    """report.json, report.md and samples.png (the first `grid_size` samples) in `out`; returns the table."""
    import PIL.Image

    from hfldm.atomic import atomic_write_text, save_image
    from hfldm.data.grid import image_grid
    from hfldm.eval.report import markdown_table

    out.mkdir(parents=True, exist_ok=True)  # each file replaced atomically: an earlier report stays whole
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n", "--out")
    table = markdown_table(report)
    atomic_write_text(out / "report.md", table, "--out")
    shown = images[:grid_size]
    pixels = (shown * 255).round().byte().permute(0, 2, 3, 1).numpy()  # (N, 3, R, R) -> (N, R, R, 3)
    pil = [PIL.Image.fromarray(p) for p in pixels]
    grid = image_grid(pil, captions[:grid_size], columns=min(8, len(pil)), cell=max(64, shown.shape[-1]))
    save_image(grid, out / "samples.png")
    return table


def command_line(args: argparse.Namespace) -> str:
    """The `hfldm eval ...` command that reproduces this report."""
    skip = {"func", "command"}
    flags = [
        f"--{k.replace('_', '-')} {shlex.quote(str(v))}"
        for k, v in vars(args).items()
        if k not in skip and v is not None
    ]
    return "hfldm eval " + " ".join(flags)


def guidance_scale(pipe, value: float | None) -> float:
    """`value`, or the pipeline's default guidance scale w when it is None."""
    import inspect

    return (
        inspect.signature(type(pipe).__call__).parameters["guidance_scale"].default
        if value is None
        else value
    )


def run(args: argparse.Namespace) -> int:
    check_args(args)
    model = resolve_model_flag(args.model)
    from hfldm.eval.report import evaluate, generate_images, reconstruction_figures
    from hfldm.nn.finite import nonfinite_rows
    from hfldm.pipelines.sampling import NonFiniteOutput

    pipe = load_pipeline(model, args.scheduler, args.device, dtype=args.dtype)
    data = load_eval_set(args, pipe)
    text_image_model, features = load_feature_model(args.feature_model)
    w = guidance_scale(pipe, args.guidance_scale)
    try:  # the pipeline refuses nan samples (hfldm.pipelines.sampling.check_finite_output)
        images, seconds = generate_images(pipe, data, args.steps, w, args.seed, args.batch_size)
        bad, total = nonfinite_rows(images), len(images)
    except NonFiniteOutput as e:
        bad, total = e.bad, e.total
    if bad:  # FID's matrix square root would crash on them (MKL, not Python)
        raise ValueError(
            f"--model: {bad} of {total} samples of {args.model} hold nan/inf values (a "
            "diverged model?); no report written"
        )
    report = {
        "model": args.model or model,
        "dataset": args.dataset,
        "split": args.split,
        "reference_split": args.reference_split,
        "conditioning": data.conditioning,
        "num_samples": len(images),
        "num_reference": len(data.train_images),
        "settings": {
            "scheduler": type(pipe.scheduler).__name__,
            "steps": args.steps,
            "guidance_scale": w if data.conditioning != "unconditional" else None,
            "seed": args.seed,
        },
        "feature_network": {"name": features.name, "path": args.feature_model},
        "samples": evaluate(images, data, text_image_model, features),
        "reconstruction": reconstruction_figures(pipe.vae, data.test_images, features, args.batch_size),
        "sampling": {
            "seconds": seconds,
            "images_per_second": len(images) / seconds,
            "device": str(pipe.device),
        },
        "command": command_line(args),
    }
    table = write_outputs(report, images, data.grid_captions, Path(args.out), args.grid_size)
    print(table, end="")
    print(f"wrote {Path(args.out) / 'report.json'}, report.md, samples.png")
    return 0
