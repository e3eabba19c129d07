"""Write a DatasetDict twice: as `save_to_disk` Arrow files and as an imagefolder with metadata.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import datasets

from hfldm.atomic import atomic_path


def write_imagefolder(dataset: datasets.DatasetDict, folder: str | Path, image_column: str = "image") -> Path:
    """Writes folder/<split>/<file>.png and folder/<split>/metadata.jsonl; returns the folder.

    The file name is the image's stored `path` when it has one, else the row index. ClassLabel columns
    are written as their names, so `load_dataset("imagefolder", data_dir=folder)` gives the same rows.
    """
    folder = Path(folder)
    for split, rows in dataset.items():
        rows = rows.cast_column(image_column, datasets.Image(decode=False))
        split_dir = folder / split
        split_dir.mkdir(parents=True, exist_ok=True)
        labels = {k: f for k, f in rows.features.items() if isinstance(f, datasets.ClassLabel)}
        with open(split_dir / "metadata.jsonl", "w", encoding="utf-8") as metadata:
            for i, row in enumerate(rows):
                image = row.pop(image_column)
                name = Path(image["path"]).name if image.get("path") else f"{i:06d}.png"
                data = image["bytes"] if image["bytes"] is not None else Path(image["path"]).read_bytes()
                (split_dir / name).write_bytes(data)
                row = {k: labels[k].int2str(v) if k in labels else v for k, v in row.items()}
                metadata.write(json.dumps({"file_name": name, **row}, ensure_ascii=False) + "\n")
    return folder


def save_both(
    dataset: datasets.DatasetDict, out: str | Path, name: str, overwrite: bool = False
) -> tuple[Path, Path]:
    """Saves out/<name>/ (save_to_disk) and out/<name>-imagefolder/; returns both paths.

    Each folder is written under a temporary name and renamed when complete (`hfldm.atomic`): a run killed
    while writing leaves no folder a loader would read as a smaller dataset, and a folder replaced with
    `overwrite` keeps no file of the old one. ValueError naming --out when one exists and not `overwrite`.
    """
    arrow_dir, folder = Path(out) / name, Path(out) / f"{name}-imagefolder"
    if not overwrite and (existing := [str(p) for p in (arrow_dir, folder) if p.exists()]):
        raise ValueError(f"--out: {', '.join(existing)} already exist(s); pass --overwrite to replace them")
    with atomic_path(arrow_dir, "--out") as staging:
        dataset.save_to_disk(str(staging))
    with atomic_path(folder, "--out") as staging:
        write_imagefolder(dataset, staging)
    return arrow_dir, folder
