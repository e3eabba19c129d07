"""Loading a folder whose model_index.json names a component differently from the pipeline's argument
(diffusers' LDMSuperResolutionPipeline calls its autoencoder `vqvae`, hfldm's pipelines `vae`).

diffusers loads a component from the sub-folder named like the argument, so a renamed one is loaded here,
from its own sub-folder with the class its entry records, and handed to from_pretrained as a keyword.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

# from_pretrained keywords that say where a hub folder is downloaded from
DOWNLOAD_KWARGS = ("cache_dir", "revision", "token", "local_files_only", "proxies", "force_download")


def renamed_components(pretrained_model_name_or_path, renames: dict[str, str], kwargs: dict) -> dict:
    """{argument name: loaded component} for each `renames` entry {folder name: argument name} that the
    folder's model_index.json records under the folder name only, unless `kwargs` already passes it.

    The component is loaded in `kwargs`' dtype (`dtype` or `torch_dtype`), if any.
    """
    from diffusers import DiffusionPipeline

    path = str(pretrained_model_name_or_path)
    if os.path.isdir(path):
        folder = Path(path)
    else:
        download = {k: kwargs[k] for k in DOWNLOAD_KWARGS if k in kwargs}
        folder = Path(DiffusionPipeline.download(path, **download))
    index = json.loads((folder / "model_index.json").read_text())
    dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))
    loaded = {}
    for theirs, ours in renames.items():
        if ours in kwargs or ours in index or theirs not in index:
            continue
        library, class_name = index[theirs]
        model_class = getattr(importlib.import_module(library), class_name)
        dtype_kwargs = {"dtype": dtype} if dtype is not None else {}
        loaded[ours] = model_class.from_pretrained(folder, subfolder=theirs, **dtype_kwargs)
    return loaded
