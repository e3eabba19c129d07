"""What an exported folder is, and which torch folders can be exported: the facts `hfldm export`, the runtime
loader and the torch-only commands share.

An exported folder keeps the torch folder's model_index.json, scheduler/, tokenizer/ and each component's
config.json beside the graphs, and adds `export.json` (format, precision, static shapes, latent facts): its
presence is what makes a folder an export.
"""

from __future__ import annotations

import json
from pathlib import Path

from hfldm.pipelines.pipeline_latent_diffusion import LatentDiffusionPipeline
from hfldm.pipelines.pipeline_latent_diffusion_inpaint import LatentDiffusionInpaintPipeline
from hfldm.pipelines.pipeline_latent_diffusion_superres import LatentDiffusionSuperResolutionPipeline

EXPORT_FILE = "export.json"
# the pipelines an export can carry, by the class name model_index.json records
PIPELINE_CLASSES = {
    cls.__name__: cls
    for cls in (
        LatentDiffusionPipeline,
        LatentDiffusionInpaintPipeline,
        LatentDiffusionSuperResolutionPipeline,
    )
}


def is_export(folder: str | Path) -> bool:
    """Whether `folder` is a folder written by `hfldm export`."""
    return (Path(folder) / EXPORT_FILE).is_file()


def read_export(folder: str | Path) -> dict:
    """The export.json of an exported folder."""
    return json.loads((Path(folder) / EXPORT_FILE).read_text())


def pipeline_class(folder: str | Path, argument: str = "MODEL") -> type:
    """The hfldm pipeline class a local folder's model_index.json names; ValueError naming `argument` for a
    folder that is not a saved hfldm pipeline."""
    index = Path(folder) / "model_index.json"
    if not index.is_file():
        raise ValueError(f"{argument}: {folder} is not a saved pipeline folder (no model_index.json in it)")
    name = json.loads(index.read_text()).get("_class_name")
    name = name[-1] if isinstance(name, list) else name
    if name not in PIPELINE_CLASSES:
        raise ValueError(
            f"{argument}: {folder} holds a {name}, not an hfldm pipeline ({', '.join(PIPELINE_CLASSES)})"
        )
    return PIPELINE_CLASSES[name]


def refuse_export(folder: str | Path, argument: str = "--model") -> None:
    """ValueError naming `argument` when `folder` is an exported folder: for the commands that need torch."""
    if is_export(folder):
        fmt = read_export(folder).get("format", "?")
        raise ValueError(
            f"{argument}: {folder} is an exported {fmt} folder (hfldm export); this command needs the torch "
            "pipeline folder it was exported from"
        )
