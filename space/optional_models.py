"""Where the Space's optional tabs find their models: an env variable (a folder or a Hub id; `none` hides
the tab), else a bundled folder under one of the roots (the repo, or the Space's own folder), else nothing."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def optional_model_source(
    roots: list[Path], variable: str, default_dir: str, env: Mapping[str, str] = os.environ
) -> str | None:
    """env[variable] (None for `none`), else `default_dir` under the first root that has it, else None."""
    if env.get(variable):
        return None if env[variable] == "none" else env[variable]
    for root in roots:
        if (root / default_dir / "model_index.json").is_file():
            return str(root / default_dir)
    return None


def example_images(source: str, folder: str = "examples") -> list[str]:
    """The PNGs in the model folder's `folder`, sorted (none for a Hub id or a folder without them)."""
    path = Path(source) / folder
    return sorted(str(p) for p in path.glob("*.png")) if path.is_dir() else []
