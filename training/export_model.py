"""Turn a trained pipeline folder into the shipped model: fp16 safetensors, example captions, the
trained names (vocabulary.txt), model card.

    python training/export_model.py --pipeline runs/ldm-emoji32 --data data/emoji/32 \
        --out models/hfldm-emoji [--report runs/eval-emoji32/report.md ...] [--training-notes notes.md]
    python training/export_model.py --pipeline runs/ldm-superres-emoji64 --out models/hfldm-emoji-sr ...
    python training/export_model.py --code-only --out models/hfldm-emoji   # after changing hfldm's code

`--code-only` rewrites only the code an exported folder ships (hfldm.pipelines.self_contained) and the
model_index.json entries that point at it, from the current source; weights, card and examples stay.

Any of hfldm's pipelines (model_index.json's class): text-to-image (example captions), super-resolution
(example low-resolution images) or inpainting (both: captions and full-size images to paint on). The
examples are held-out (test split) emoji whose names are not skin-tone variants of a training emoji, so the
demo and the Space show what the model does on what it never saw.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from datasets import load_from_disk

from hfldm.eval.subsets import skin_tone_variant_mask
from hfldm.pipelines.pipeline_latent_diffusion import LatentDiffusionPipeline
from hfldm.pipelines.pipeline_latent_diffusion_inpaint import LatentDiffusionInpaintPipeline
from hfldm.pipelines.pipeline_latent_diffusion_sketch import LatentDiffusionSketchPipeline
from hfldm.pipelines.pipeline_latent_diffusion_superres import LatentDiffusionSuperResolutionPipeline
from hfldm.pipelines.saving import add_remote_code
from hfldm.text.vocabulary import write_vocabulary

MAX_MB = 50
# the examples each pipeline ships: (example captions?, example images downsampled by the upscaling or 1)
EXAMPLES = {
    LatentDiffusionPipeline: (True, None),
    LatentDiffusionSuperResolutionPipeline: (False, lambda pipe: pipe.upscale_factor),
    LatentDiffusionInpaintPipeline: (True, lambda pipe: 1),
    LatentDiffusionSketchPipeline: (True, None),  # its examples are captions; a user draws the sketch
}
PIPELINES = {cls.__name__: cls for cls in EXAMPLES}


def held_out_rows(data: Path, count: int):
    """The first `count` test rows whose captions are not skin-tone variants of a training emoji."""
    splits = load_from_disk(str(data))
    test = splits["test"]
    variants = skin_tone_variant_mask(test["text"], splits["train"]["text"])
    return test.select([i for i, variant in enumerate(variants) if not variant][:count])


def held_out_examples(data: Path, count: int) -> list[str]:
    """`count` held-out captions (`held_out_rows`), in dataset order."""
    return list(held_out_rows(data, count)["text"])


def load_text_encoder_in_float32(folder: Path) -> None:
    """Record float32 as the text encoder's dtype: transformers loads a model in its config's dtype, diffusers
    components in float32, so without this the fp16 weights would run τ_θ in float16 on the CPU."""
    path = folder / "text_encoder" / "config.json"
    if path.is_file():
        config = json.loads(path.read_text())
        config["dtype"] = "float32"
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def folder_megabytes(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def held_out_images(data: Path, count: int, factor: int, out: Path) -> list[Path]:
    """Write the first `count` held-out non-variant images of `data`, bicubically downsampled by `factor` (1:
    as they are), to out/<index>-<caption>.png: the examples of the Space's Upscale / Inpaint tabs."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, row in enumerate(held_out_rows(data, count)):
        image = row["image"].convert("RGB")
        small = image.resize((image.width // factor, image.height // factor), Image.Resampling.BICUBIC)
        name = "".join(c if c.isalnum() else "-" for c in row["text"])[:40]
        paths.append(out / f"{n:02d}-{name}.png")
        small.save(paths[-1])
    return paths


def pipeline_class(folder: Path):
    """The hfldm pipeline class model_index.json of `folder` names (list form [file, class], or a class)."""
    name = json.loads((folder / "model_index.json").read_text())["_class_name"]
    name = name[-1] if isinstance(name, list) else name
    if name not in PIPELINES:
        raise SystemExit(f"error: {folder} holds a {name}, not one of {sorted(PIPELINES)}")
    return PIPELINES[name]


def refresh_code(folder: Path) -> None:
    """Rewrite the code files of the exported `folder` (and model_index.json's entries) from this source."""
    pipe = pipeline_class(folder).from_pretrained(folder, dtype=torch.float16)  # reads, writes no weights
    add_remote_code(pipe, folder, pipe.pipeline_file())  # README.md exists: kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", help="trained pipeline folder (train_ldm.py output)")
    parser.add_argument("--data", help="save_to_disk emoji dataset (held-out captions; text models only)")
    parser.add_argument("--out", required=True, help="where to write the shipped model")
    parser.add_argument(
        "--report", action="append", default=[], help="`hfldm eval` report.md for the card (repeatable)"
    )
    parser.add_argument("--training-notes", default=None, help="Markdown on how it was trained")
    parser.add_argument("--num-examples", type=int, default=24, help="held-out example captions")
    parser.add_argument("--code-only", action="store_true", help="only rewrite --out's shipped code")
    args = parser.parse_args(argv)
    if args.code_only:
        if not (Path(args.out) / "model_index.json").is_file():
            parser.error(f"--out: {args.out} is not an exported model folder (no model_index.json)")
        refresh_code(Path(args.out))
        print(f"rewrote the code of {args.out}: {folder_megabytes(Path(args.out)):.1f} MB")
        return 0
    if args.pipeline is None or not (Path(args.pipeline) / "model_index.json").is_file():
        parser.error(f"--pipeline: {args.pipeline or 'required'} is not a saved pipeline folder")
    cls = pipeline_class(Path(args.pipeline))
    captions, image_factor = EXAMPLES[cls]
    if (captions or args.data is not None) and (args.data is None or not Path(args.data).exists()):
        parser.error(f"--data: {args.data or 'required'}{' does not exist' if args.data else ''}")

    pipe = cls.from_pretrained(args.pipeline)
    pipe.to(torch.float16)
    out = Path(args.out)
    card = pipe.default_model_card(repo=str(out))
    for extra in (args.training_notes, *args.report):
        if extra:
            card += "\n" + Path(extra).read_text()
    pipe.save_pretrained(out, model_card=card)
    load_text_encoder_in_float32(out)
    examples = held_out_examples(Path(args.data), args.num_examples) if captions else []
    if examples:
        (out / "example_captions.txt").write_text("\n".join(examples) + "\n")
        write_vocabulary(out, list(load_from_disk(str(args.data))["train"]["text"]))  # what it was trained on
    if image_factor is not None and args.data is not None:  # held-out images for the Space's tabs
        examples += held_out_images(Path(args.data), 8, image_factor(pipe), out / "examples")
    size = folder_megabytes(out)
    print(f"wrote {out}: {size:.1f} MB (fp16), {len(examples)} held-out examples")
    if size > MAX_MB:
        print(f"error: {out} is {size:.1f} MB, over the {MAX_MB} MB budget", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
