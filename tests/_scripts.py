"""Importing a script of benchmarks/ or training/ as a module, as when it runs (its folder on sys.path)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path: str, monkeypatch):
    """The module of ROOT/relative_path, its folder first on sys.path (scripts import their siblings)."""
    path = ROOT / relative_path
    monkeypatch.syspath_prepend(str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module
