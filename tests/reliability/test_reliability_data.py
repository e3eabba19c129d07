"""#36 item 4, datasets written atomically: `hfldm data` never leaves a half-written dataset that loads as a
smaller one, never overwrites without --overwrite, and a replaced dataset keeps no stale file. Each test
failed on 7e03a4a."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hfldm.data.export as export
from hfldm.cli import main as cli
from hfldm.data.emoji import EMOJI_FONT

needs_emoji = pytest.mark.skipif(not Path(EMOJI_FONT).is_file(), reason="Noto Color Emoji font not installed")


def emoji(out: Path, limit: int, *extra: str) -> int:
    return cli(["data", "emoji", "--out", str(out), "--resolution", "16", "--limit", str(limit), *extra])


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@needs_emoji
def test_a_second_run_refuses_then_replaces_whole_with_overwrite(tmp_path, capsys):
    """--limit 30 then --limit 12: refused without --overwrite (before: overwritten silently); with it the
    imagefolder holds exactly the PNGs its metadata lists (before: the 30 old PNGs stayed beside 12 rows)."""
    assert emoji(tmp_path, 30) == 0
    capsys.readouterr()
    assert emoji(tmp_path, 12) == 2
    assert capsys.readouterr().err.strip() == (
        f"hfldm data: error: --out: {tmp_path / '16'}, {tmp_path / '16-imagefolder'} already exist(s); pass "
        "--overwrite to replace them"
    )
    assert emoji(tmp_path, 12, "--overwrite") == 0
    folder = tmp_path / "16-imagefolder"
    listed = {
        f"{split}/{json.loads(line)['file_name']}"
        for split in ("train", "test")
        if (folder / split / "metadata.jsonl").is_file()
        for line in (folder / split / "metadata.jsonl").read_text().splitlines()
    }
    pngs = {f for f in files(folder) if f.endswith(".png")}
    assert pngs == listed and len(listed) <= 12
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


@needs_emoji
def test_an_interrupted_write_leaves_no_dataset_to_load(tmp_path, monkeypatch):
    """Interrupted after 5 PNGs of the imagefolder: no 16-imagefolder folder exists (before: one with 5 of
    the rows, which the loader read without a warning), and no temporary folder stays."""
    real = export.write_imagefolder

    def interrupted(dataset, folder, image_column="image"):
        real({k: v.select(range(min(5, len(v)))) for k, v in dataset.items()}, folder, image_column)
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "write_imagefolder", interrupted)
    with pytest.raises(KeyboardInterrupt):
        emoji(tmp_path, 30)
    assert not (tmp_path / "16-imagefolder").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["16"]  # the save_to_disk copy completed first
