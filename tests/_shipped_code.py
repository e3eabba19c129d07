"""For the bundled-model tests: a shipped folder's code is what save_pretrained writes from this source."""

from __future__ import annotations

import json
from pathlib import Path


def assert_ships_current_code(pipeline_class, folder: Path, tmp_path: Path) -> None:
    """The folder's code (what trust_remote_code runs: the entry files and the copies of hfldm's source)
    and its model_index.json entries are what save_pretrained writes today, file for file."""
    from hfldm.pipelines.self_contained import write_folder_code

    pipe = pipeline_class.from_pretrained(folder)
    index = json.loads((folder / "model_index.json").read_text())
    expected_index = dict(index)
    write_folder_code(pipe, tmp_path, pipe.pipeline_file(), expected_index)
    hint = f"refresh it: python training/export_model.py --code-only --out models/{folder.name}"
    assert index == expected_index, hint
    expected = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*.py")}
    shipped = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*.py")}
    assert sorted(shipped) == sorted(expected), hint
    for path, text in expected.items():
        assert shipped[path] == text, f"{path}: {hint}"
