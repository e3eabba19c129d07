"""`hfldm convert --from diffusers-ldm FOLDER --out OUT`: write a diffusers LDMTextToImagePipeline (CompVis'
LDMs, e.g. `CompVis/ldm-text2im-large-256`) as an hfldm model folder.

The result is `LatentDiffusionPipeline.save_pretrained` (what `hfldm.pipelines.compvis` loads on the fly):
it draws the same images and loads with `DiffusionPipeline.from_pretrained(OUT, trust_remote_code=True)`.
Paths and the folder's pipeline class are checked before any weights are read.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

FORMATS = {"diffusers-ldm": "LDMTextToImagePipeline"}  # --from -> the pipeline class it converts
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # user/repo


def register(subparsers) -> None:
    parser = subparsers.add_parser("convert", help="convert another library's LDM folder to an hfldm folder")
    parser.add_argument(
        "--from",
        dest="source_format",
        required=True,
        choices=list(FORMATS),
        help="diffusers-ldm: a diffusers LDMTextToImagePipeline (CompVis' text-to-image LDMs)",
    )
    parser.add_argument("folder", metavar="FOLDER", help="the folder (or Hub id user/repo) to convert")
    parser.add_argument("--out", required=True, help="the hfldm folder to write (new or empty)")
    parser.set_defaults(func=run)


def check_paths(folder: str, out: str) -> None:
    """FileNotFoundError / ValueError naming FOLDER or --out for a source that is not there or an output
    that would overwrite something."""
    source = Path(folder)
    if source.exists() and not (source / "model_index.json").is_file():
        raise FileNotFoundError(f"FOLDER: {folder} is not a saved diffusers pipeline (no model_index.json)")
    if not source.exists() and not HUB_ID.match(folder):
        raise FileNotFoundError(f"FOLDER: no such folder {folder} (nor a Hub id user/repo)")
    target = Path(out)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValueError(f"--out: {out} exists and is not an empty folder")


def run(args: argparse.Namespace) -> int:
    check_paths(args.folder, args.out)
    from hfldm.atomic import atomic_path
    from hfldm.pipelines.compvis import pipeline_class_name
    from hfldm.pipelines.pipeline_latent_diffusion import LatentDiffusionPipeline
    from hfldm.pipelines.saving import pipeline_model_card

    expected, found = FORMATS[args.source_format], pipeline_class_name(args.folder)
    if found is None:
        message = f"could not fetch model_index.json of {args.folder} (offline? no such repo?)"
        raise FileNotFoundError(f"FOLDER: {message}")
    if found != expected:
        raise ValueError(
            f"FOLDER: {args.folder} holds a {found}, not a {expected} (--from {args.source_format})"
        )
    pipe = LatentDiffusionPipeline.from_pretrained(args.folder)
    origin = f"converted by `hfldm convert --from {args.source_format}` from `{args.folder}` ({expected})"
    card = pipeline_model_card(pipe, str(args.out), base_model=str(args.folder))
    with atomic_path(args.out, "--out") as staging:  # written whole, then renamed into place
        pipe.save_pretrained(staging, model_card=card.replace("trained with hfldm", origin))
    print(f"{args.folder} ({found}) -> {args.out} (LatentDiffusionPipeline)")
    return 0
