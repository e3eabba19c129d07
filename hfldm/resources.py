"""Where the bundled models and training configs are, in a checkout and after `pip install` alike.

The wheel carries `models/` as the package `hfldm.bundled` and `training/configs/` as `hfldm.configs`
(pyproject.toml); an editable install maps the same names onto the repository's folders. The default model
of `hfldm generate` / `eval` / the demo is env `HFLDM_MODEL` if set (a folder or a Hub id), else the
bundled text-to-emoji model; that of `hfldm upscale` / `generate --upscale` is env `HFLDM_SR_MODEL`, else the
bundled super-resolution model; that of `hfldm inpaint` env `HFLDM_INPAINT_MODEL`, else the bundled one.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

DEFAULT_MODEL_NAME = "hfldm-emoji"
DEFAULT_SR_MODEL_NAME = "hfldm-emoji-sr"  # 32 px -> 64 px, the second stage of `hfldm generate --upscale`
DEFAULT_INPAINT_MODEL_NAME = "hfldm-emoji-inpaint"  # text-guided inpainting at 32 px, `hfldm inpaint`
FEATURE_MODEL_NAME = "hfldm-textimage"


def bundled(name: str) -> Path:
    """The folder of a bundled model, e.g. bundled("hfldm-emoji") (it may be absent from a slim checkout)."""
    return Path(str(files("hfldm.bundled") / name))


def default_model() -> str:
    """HFLDM_MODEL, else the bundled text-to-emoji pipeline folder."""
    return os.environ.get("HFLDM_MODEL") or str(bundled(DEFAULT_MODEL_NAME))


def default_sr_model() -> str:
    """HFLDM_SR_MODEL, else the bundled super-resolution pipeline folder (emoji, 32 px -> 64 px)."""
    return os.environ.get("HFLDM_SR_MODEL") or str(bundled(DEFAULT_SR_MODEL_NAME))


def default_inpaint_model() -> str:
    """HFLDM_INPAINT_MODEL, else the bundled inpainting pipeline folder (emoji, 32 px)."""
    return os.environ.get("HFLDM_INPAINT_MODEL") or str(bundled(DEFAULT_INPAINT_MODEL_NAME))


def config_file(name: str) -> Path:
    """A training config shipped with hfldm, e.g. config_file("ldm_emoji32.yaml")."""
    return Path(str(files("hfldm.configs") / name))
