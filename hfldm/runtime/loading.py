"""`load_pipeline(folder)`: an exported folder as the hfldm pipeline it came from, its components run by
OpenVINO or ONNX Runtime.

The pipeline is hfldm's own class (text-to-image, super-resolution or inpainting, as model_index.json names
it), built around `hfldm.runtime.components`: the same `__call__`, checks, scheduler, guidance, callbacks and
post-processing as the torch pipeline, so it is used exactly like one (`pipe(prompt, ...).images`).
"""

from __future__ import annotations

import json
from pathlib import Path

import diffusers
from transformers import AutoTokenizer

from hfldm import schedulers
from hfldm.runtime.components import RuntimeAutoencoder, RuntimeTextEncoder, RuntimeUNet
from hfldm.runtime.folders import is_export, pipeline_class, read_export
from hfldm.runtime.formats import PRECISIONS, get_format

COMPONENTS = ("vae", "unet", "scheduler", "text_encoder", "tokenizer")


def load_pipeline(
    folder: str | Path, precision: str | None = None, threads: int | None = None, argument="--model"
):
    """The pipeline exported to `folder`, on the CPU. `precision`: "float32" or "bfloat16" (None: the one
    export.json records; the autoencoder always runs in fp32, as `hfldm.precision.half_precision` keeps it);
    `threads`: the runtime's threads (None: its default). ValueError naming `argument` for a folder that is
    not an export."""
    folder = Path(folder)
    if not is_export(folder):
        raise ValueError(f"{argument}: {folder} is not an exported folder (no export.json; see hfldm export)")
    facts, cls = read_export(folder), pipeline_class(folder, argument)
    if precision not in (None, *PRECISIONS):
        raise ValueError(f"--dtype: an exported folder runs in {' or '.join(PRECISIONS)}, got {precision}")
    fmt, precision = (
        get_format(facts["format"], f"{argument} (export.json format)"),
        precision or facts["precision"],
    )

    def session(path: str, at: str = precision):
        file = folder / (path + fmt.suffix)
        return fmt.load(file, at, threads) if file.is_file() else None

    def config(component: str) -> dict:
        return json.loads((folder / component / "config.json").read_text())

    parts = dict(
        unet=RuntimeUNet(session("unet/model"), config("unet")),
        vae=RuntimeAutoencoder(
            session("vae/encoder", "float32"),
            session("vae/decoder", "float32"),
            config("vae"),
            facts["latent_channels"],
            facts["downsample_factor"],
        ),
        scheduler=load_scheduler(folder / "scheduler"),
    )
    if (folder / "text_encoder" / "config.json").is_file():
        parts["text_encoder"] = RuntimeTextEncoder(session("text_encoder/model"), config("text_encoder"))
        parts["tokenizer"] = AutoTokenizer.from_pretrained(folder / "tokenizer")
    index = json.loads((folder / "model_index.json").read_text())
    settings = {k: v for k, v in index.items() if not k.startswith("_") and k not in COMPONENTS}
    return cls(**parts, **settings)


def load_scheduler(folder: Path):
    """The scheduler saved in `folder`: hfldm's own class of that name, else diffusers'."""
    name = json.loads((folder / "scheduler_config.json").read_text())["_class_name"]
    scheduler_class = getattr(schedulers, name, None) or getattr(diffusers, name)
    return scheduler_class.from_pretrained(folder)
