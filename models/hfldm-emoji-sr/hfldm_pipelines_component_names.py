"""Loading a folder whose model_index.json names a component differently from the pipeline's argument
(diffusers' LDMSuperResolutionPipeline calls its autoencoder `vqvae`, hfldm's pipelines `vae`).

diffusers loads a component from the sub-folder named like the argument, so a renamed one is loaded here,
from its own sub-folder with the class its entry records, and handed to from_pretrained as a keyword.

The entry's library is imported only from an allow-list (hfldm, diffusers, transformers), as diffusers
does: a model folder never makes hfldm import another module, let alone one of its own files, unless
`trust_remote_code=True` says that its code may run.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

# from_pretrained keywords that say where a hub folder is downloaded from
DOWNLOAD_KWARGS = ("cache_dir", "revision", "token", "local_files_only", "proxies", "force_download")
# the packages a model_index.json entry may name without trust_remote_code
ALLOWED_LIBRARIES = ("hfldm", "diffusers", "transformers")


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
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except ValueError as e:
        raise ValueError(f"{folder / 'model_index.json'} is not valid JSON ({e})") from None
    dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))
    loaded = {}
    for theirs, ours in renames.items():
        if ours in kwargs or ours in index or theirs not in index:
            continue
        library, class_name = index[theirs]
        model_class = component_class(library, class_name, theirs, kwargs.get("trust_remote_code", False))
        dtype_kwargs = {"dtype": dtype} if dtype is not None else {}
        loaded[ours] = model_class.from_pretrained(folder, subfolder=theirs, **dtype_kwargs)
    return loaded


def component_class(library: str, class_name: str, name: str, trust_remote_code: bool = False) -> type:
    """The class of model_index.json's entry `name`: [library, class_name]; ValueError naming the entry when
    the library is not allowed (see ALLOWED_LIBRARIES) or cannot be imported, or lacks the class."""
    entry = f"model_index.json's {name!r}: [{library!r}, {class_name!r}]"
    if library.split(".")[0] not in ALLOWED_LIBRARIES and not trust_remote_code:
        raise ValueError(
            f"{entry} names a library outside {', '.join(ALLOWED_LIBRARIES)}; its code would run: pass "
            "trust_remote_code=True only if you trust this folder"
        )
    try:
        return getattr(importlib.import_module(library), class_name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{entry} cannot be loaded ({e})") from None
