"""One way to load a saved hfldm pipeline (text-to-image, super-resolution, inpainting) for the CLI, the Space
and fine-tuning: a folder with model_index.json or a Hub id, with one-line errors naming the user's argument.
A local folder saved by a subclass of the class asked for (an inpainting folder where a
LatentDiffusionPipeline is asked for) loads as that subclass."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from diffusers import DiffusionPipeline

from hfldm.pipelines.pipeline_latent_diffusion import LatentDiffusionPipeline
from hfldm.pipelines.pipeline_latent_diffusion_inpaint import LatentDiffusionInpaintPipeline  # noqa: F401
from hfldm.precision import half_precision

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # user/repo


def load_pipeline(
    source: str,
    argument: str = "--model",
    dtype: torch.dtype = torch.float32,
    pipeline_class: type[DiffusionPipeline] = LatentDiffusionPipeline,
) -> DiffusionPipeline:
    """The `pipeline_class` saved at `source` (a local folder or a Hub id), its U-Net and text encoder in
    `dtype`, its autoencoder in fp32 (`hfldm.precision.half_precision`; weights are read in fp32 first, so
    fp16-saved weights don't lose bits on their way to bf16).

    FileNotFoundError naming `argument` for a folder that holds no pipeline, or a Hub id that cannot be
    reached or found; ValueError naming it for an exported folder (`hfldm.runtime`), which has no torch
    weights.
    """
    path = Path(source)
    if path.exists() and not (path / "model_index.json").is_file():
        raise FileNotFoundError(f"{argument}: {source} is not a saved pipeline (no model_index.json in it)")
    if not path.exists() and not HUB_ID.match(str(source)):
        raise FileNotFoundError(f"{argument}: no such folder {source} (nor a Hub id user/repo)")
    if (path / "export.json").is_file():  # `hfldm export`'s folders: graphs, no torch weights
        from hfldm.runtime.folders import refuse_export

        refuse_export(path, argument)
    try:
        pipeline_class = saved_subclass(path, pipeline_class)
    except ValueError as e:  # a damaged model_index.json
        raise ValueError(f"{argument}: {path / 'model_index.json'} is not valid JSON ({e})") from None
    if missing := missing_components(path):
        raise FileNotFoundError(
            f"{argument}: {source} lacks {', '.join(f'{name}/' for name in missing)}, which its "
            "model_index.json lists (an incomplete copy?)"
        )
    try:
        pipe = pipeline_class.from_pretrained(source, dtype=torch.float32)
    except (OSError, ValueError) as e:  # a Hub id that cannot be reached or found
        raise FileNotFoundError(f"{argument}: could not load {source}: {str(e).splitlines()[0]}") from None
    return pipe if dtype == torch.float32 else half_precision(pipe, dtype)


def saved_subclass(folder: Path, pipeline_class: type[DiffusionPipeline]) -> type[DiffusionPipeline]:
    """The subclass of `pipeline_class` (itself included) whose name the local `folder`'s model_index.json
    records, else `pipeline_class`."""
    index = folder / "model_index.json"
    if not index.is_file():
        return pipeline_class
    name = json.loads(index.read_text()).get("_class_name")
    name = name[-1] if isinstance(name, list) else name
    classes, seen = [pipeline_class], []
    while classes:
        cls = classes.pop()
        seen.append(cls)
        classes += cls.__subclasses__()
    return next((cls for cls in seen if cls.__name__ == name), pipeline_class)


def missing_components(folder: Path) -> list[str]:
    """The components a local `folder`'s model_index.json lists (as [library, class]) whose sub-folder is
    missing; tokenizers and schedulers included."""
    index = folder / "model_index.json"
    if not index.is_file():
        return []
    entries = json.loads(index.read_text())
    listed = [k for k, v in entries.items() if k[0] != "_" and isinstance(v, list) and None not in v]
    return [name for name in listed if not (folder / name).is_dir()]
