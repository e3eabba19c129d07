"""#36 items 3 and 4, the one helper behind every replaced file: `hfldm.atomic`. A failure while writing
leaves the old file or folder as it was; success replaces it whole (no stale file of the old one)."""

from __future__ import annotations

import pytest

from hfldm.atomic import atomic_entries, atomic_path, atomic_write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "card.md"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as path:
        path.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["card.md"]
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["card.md"]


def test_an_oserror_names_the_argument_and_says_the_file_is_kept(tmp_path):
    target = tmp_path / "x.png"
    target.write_bytes(b"old")
    with pytest.raises(ValueError, match=rf"^--out: could not write {target} \(No space left on device\)"):
        with atomic_path(target, "--out") as path:
            path.write_bytes(b"h")
            raise OSError(28, "No space left on device")
    assert target.read_bytes() == b"old"


def model(folder, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def test_a_model_is_replaced_in_a_run_folder_whole_and_last_by_its_index(tmp_path):
    """The final save of a training run: checkpoints stay, the old unet/ loses its stale file, and an
    interrupted save leaves the old model loadable."""
    model(tmp_path, {"checkpoint-2/model.safetensors": "c", "model_index.json": "old", "unet/old.bin": "o"})
    with pytest.raises(KeyboardInterrupt), atomic_entries(tmp_path) as staging:
        model(staging, {"unet/new.bin": "n"})
        raise KeyboardInterrupt
    assert (tmp_path / "unet/old.bin").is_file() and (tmp_path / "model_index.json").read_text() == "old"
    with atomic_entries(tmp_path) as staging:
        model(staging, {"model_index.json": "new", "unet/new.bin": "n", "vae/w.bin": "v"})
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["checkpoint-2/model.safetensors", "model_index.json", "unet/new.bin", "vae/w.bin"]
    assert (tmp_path / "model_index.json").read_text() == "new"
