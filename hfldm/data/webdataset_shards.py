"""WebDataset input: tar shards of samples, each an image (`.jpg` / `.png` / `.webp`) and a caption (`.txt`)
sharing a key, the layout of large image–text corpora. `--train_shards 'shards/data-{000000..000009}.tar'`
is expanded like the shell's braces (a numeric range keeps its zero padding; `{a,b}` lists), each piece
globbed, and the tars read by datasets' own `webdataset` builder: one shard per tar, so that processes
read their own tars when streaming, and a stream position that `IterableDataset.state_dict` records.
"""

from __future__ import annotations

import glob
import re

import datasets

# the first of these extensions a sample has is its image; `.txt` its caption, `.cls` its class label
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
_BRACES = re.compile(r"\{([^{}]*)\}")


def expand_braces(pattern: str) -> list[str]:
    """'a{1..3}b{x,y}' -> ['a1bx', 'a1by', 'a2bx', ...]; '{008..010}' -> ['008', '009', '010']."""
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    body, head, tail = match.group(1), pattern[: match.start()], pattern[match.end() :]
    numbers = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if numbers:
        first, last = numbers.groups()
        width = len(first) if first.startswith("0") else 0
        step = 1 if int(last) >= int(first) else -1
        choices = [str(n).zfill(width) for n in range(int(first), int(last) + step, step)]
    else:
        choices = body.split(",")
    return [expanded for choice in choices for expanded in expand_braces(head + choice + tail)]


def shard_files(pattern: str) -> list[str]:
    """The existing files `pattern` names (braces, then globs), in order; ValueError when there are none."""
    files = [f for piece in expand_braces(pattern) for f in sorted(glob.glob(piece))]
    if not files:
        raise ValueError(f"train_shards: {pattern!r} matches no file")
    return list(dict.fromkeys(files))  # a file named twice is read once


def load_webdataset(pattern: str, streaming: bool, cache_dir: str | None = None):
    """The samples of the tars `pattern` names, with columns image, text (and label from `.cls`)."""
    files = shard_files(pattern)
    dataset = datasets.load_dataset(
        "webdataset", data_files={"train": files}, split="train", streaming=streaming, cache_dir=cache_dir
    )
    columns = dataset.column_names or []
    image = next((c for c in IMAGE_EXTENSIONS if c in columns), None)
    if image is None:
        raise ValueError(
            f"train_shards: the samples hold no image ({', '.join(IMAGE_EXTENSIONS)}): {columns}"
        )
    names = {image: "image", "txt": "text", "cls": "label"}
    return dataset.rename_columns({old: new for old, new in names.items() if old in columns})
