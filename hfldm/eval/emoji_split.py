"""The emoji train / test split as tensors, for evaluation and for training the text–image model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch


@dataclass
class ImageCaptionSet:
    images: torch.Tensor  # (N, 3, R, R) float32 in [0, 1]
    captions: list[str]  # N CLDR names


def to_image_caption_set(split: datasets.Dataset) -> ImageCaptionSet:
    """Decode a split with columns image (RGB, all the same size) and text into an `ImageCaptionSet`."""
    pixels = np.stack([np.asarray(image.convert("RGB")) for image in split["image"]])  # (N, R, R, 3) uint8
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0  # (N, R, R, 3) -> (N, 3, R, R)
    return ImageCaptionSet(images, list(split["text"]))


def load_emoji_split(data_dir: str | Path | None = None, resolution: int = 32) -> dict[str, ImageCaptionSet]:
    """Returns {"train", "test"} image-caption sets of the emoji dataset at `resolution` pixels.

    data_dir: a `save_to_disk` folder of the emoji DatasetDict (as `hfldm data emoji` writes); None renders
    it now with `hfldm.data.emoji.build_emoji` (about 10 s, needs the Debian emoji font).
    """
    if data_dir is None:
        from hfldm.data.emoji import build_emoji

        dataset = build_emoji(resolutions=(resolution,)).datasets[resolution]
    else:
        if not Path(data_dir).is_dir():
            raise ValueError(f"data_dir: {data_dir} is not a folder")
        dataset = datasets.load_from_disk(str(data_dir))
    if not {"train", "test"} <= set(dataset):
        raise ValueError(f"data_dir: expected the splits train and test, found {sorted(dataset)}")
    return {name: to_image_caption_set(dataset[name]) for name in ("train", "test")}
