"""One way to load a saved hfldm pipeline (text-to-image, or super-resolution) for the CLI, the Space and
fine-tuning: a folder with model_index.json or a Hub id, with one-line errors naming the user's argument."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from diffusers import DiffusionPipeline

from hfldm.pipelines.pipeline_latent_diffusion import LatentDiffusionPipeline

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # user/repo


def load_pipeline(
    source: str,
    argument: str = "--model",
    dtype: torch.dtype = torch.float32,
    pipeline_class: type[DiffusionPipeline] = LatentDiffusionPipeline,
) -> DiffusionPipeline:
    """The `pipeline_class` saved at `source` (a local folder or a Hub id), its weights in `dtype`.

    FileNotFoundError naming `argument` for a folder that holds no pipeline, or a Hub id that cannot be
    reached or found.
    """
    path = Path(source)
    if path.exists() and not (path / "model_index.json").is_file():
        raise FileNotFoundError(f"{argument}: {source} is not a saved pipeline (no model_index.json in it)")
    if not path.exists() and not HUB_ID.match(str(source)):
        raise FileNotFoundError(f"{argument}: no such folder {source} (nor a Hub id user/repo)")
    try:
        return pipeline_class.from_pretrained(source, dtype=dtype)
    except (OSError, ValueError) as e:  # a Hub id that cannot be reached or found
        raise FileNotFoundError(f"{argument}: could not load {source}: {str(e).splitlines()[0]}") from None
