"""The one image loader of training, evaluation and latent caching.

`load_image_dataset(args)` returns a `datasets.Dataset` (or, with `streaming`, an `IterableDataset`) whose
rows are {"pixel_values": (3, R, R) float tensor in [-1, 1], "text": str, "labels": int}, plus a
`DataReport` of what was skipped. Unreadable images are dropped and named, never raised:
map-style data are checked once up front (one warning lists them all); streaming data are checked as
they stream (one warning per bad file, when it is met).

Order rule: the loader never reorders rows. Map-style and streaming data yield the source order, so the
same first batch comes out of both for the same seed (random crop / flip draw from torch's global RNG,
per row, in order). Shuffling is `make_dataloader`'s job: a seeded sampler (map-style) or a seeded
shuffle buffer (streaming), so shuffled orders differ between the two modes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
from PIL import Image

from hfldm.data.arguments import DataArguments
from hfldm.data.images import decode_rgb, image_name, resize_and_crop, to_tensor
from hfldm.data.style_captions import style_captions
from hfldm.data.webdataset_shards import load_webdataset

logger = logging.getLogger(__name__)

AnyDataset = datasets.Dataset | datasets.IterableDataset
STREAM_SHARDS = 64  # shards of a saved dataset read as a stream: up to 64 processes read disjoint parts


@dataclass
class DataReport:
    """What the loader dropped or patched. Streaming counts grow while the data stream (num_workers=0)."""

    num_rows: int | None = None  # rows kept (map-style only)
    label_names: list[str] | None = None  # class names of `label_column`
    skipped: dict[str, str] = field(default_factory=dict)  # image name -> why it was unreadable
    empty_captions: set[str] = field(default_factory=set)  # images trained with the "" prompt

    def summary(self) -> str:
        names = ", ".join(sorted(self.skipped)) or "none"
        empty = len(self.empty_captions)
        return f"skipped {len(self.skipped)} unreadable images ({names}); {empty} empty captions"


def _load_source(args: DataArguments) -> AnyDataset:
    """Returns the raw split named by `args`, map-style or streaming."""
    sources = [args.dataset_name, args.train_data_dir, args.train_shards]
    if sum(source is not None for source in sources) != 1:
        raise ValueError(
            "give exactly one of dataset_name (hub / load_dataset), train_data_dir (local folder) and "
            "train_shards (WebDataset tars)"
        )
    if args.train_shards is not None:
        return load_webdataset(args.train_shards, args.streaming, args.cache_dir)
    if args.dataset_name is not None:
        return datasets.load_dataset(
            args.dataset_name,
            args.dataset_config_name,
            split=args.split,
            streaming=args.streaming,
            cache_dir=args.cache_dir,
        )
    folder = Path(args.train_data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"train_data_dir: {folder} is not a directory")
    if (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():
        saved = datasets.load_from_disk(str(folder))
        if isinstance(saved, datasets.DatasetDict):
            if args.split not in saved:
                raise ValueError(f"split: {args.split!r} not in {folder}, which has {list(saved)}")
            saved = saved[args.split]
        # several shards, so that N processes each read their own (accelerate's node split needs >= N)
        return (
            saved.to_iterable_dataset(num_shards=max(1, min(len(saved), STREAM_SHARDS)))
            if args.streaming
            else saved
        )
    return datasets.load_dataset(
        "imagefolder",
        data_dir=str(folder),
        split=args.split,
        streaming=args.streaming,
        cache_dir=args.cache_dir,
    )


def _check_columns(dataset: AnyDataset, args: DataArguments) -> list[str]:
    """Raises a ValueError naming the argument when a requested column is missing; returns the columns."""
    columns = dataset.column_names
    if columns is None:  # a stream without declared features: read the columns off the first row
        columns = list((_first_row(dataset) or {}).keys())
    for argument in ("image_column", "caption_column", "label_column", "style_caption_column"):
        name = getattr(args, argument)
        if name is not None and name not in columns:
            raise ValueError(f"{argument}: column {name!r} not in the dataset; available columns: {columns}")
    return columns


def _encode_labels(dataset: AnyDataset, args: DataArguments) -> tuple[AnyDataset, list[str] | None]:
    """Returns the dataset with integer labels and the class names (None when there is no label column)."""
    if args.label_column is None:
        return dataset, None
    feature = (dataset.features or {}).get(args.label_column)
    if isinstance(feature, datasets.ClassLabel):
        return dataset, feature.names
    if isinstance(feature, datasets.Value) and feature.dtype.startswith(("int", "uint")):
        return dataset, None
    if isinstance(dataset, datasets.Dataset):  # strings: map them to ClassLabel ids (sorted names)
        dataset = dataset.class_encode_column(args.label_column)
        return dataset, dataset.features[args.label_column].names
    raise ValueError(
        f"label_column: {args.label_column!r} must be a ClassLabel or integer column when streaming"
    )


class ImageTransform:
    """Batched transform: stored images -> pixel_values, captions -> text, labels; drops unreadable rows."""

    def __init__(self, args: DataArguments, report: DataReport | None = None):
        self.args, self.report = args, report  # report: record drops as they happen (streaming)

    def caption(self, value, name: str) -> str:
        if isinstance(value, (list, tuple)):  # several captions per image: draw one
            value = value[int(torch.randint(0, len(value), ()))] if value else None
        if value is not None and not isinstance(value, str):
            raise ValueError(f"caption_column: expected strings, got {type(value).__name__} for {name}")
        if not value and self.report is not None:
            self.report.empty_captions.add(name)
        return value or ""  # an empty caption is the unconditional prompt

    def pixels(self, image: Image.Image) -> torch.Tensor:
        image = resize_and_crop(image, self.args.resolution, self.args.center_crop)
        if self.args.random_flip and torch.rand(()) < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_tensor(image)

    def __call__(self, batch: dict[str, list], indices: list[int] | None = None) -> dict[str, list]:
        args, out = self.args, {"pixel_values": []}
        if args.caption_column:
            out["text"] = []
        if args.label_column:
            out["labels"] = []
        for i, value in enumerate(batch[args.image_column]):
            name = image_name(value, indices[i] if indices else None)
            image, reason = decode_rgb(value)
            if image is None:
                if self.report is not None and name not in self.report.skipped:
                    self.report.skipped[name] = reason
                    logger.warning("skipping unreadable image %s (%s)", name, reason)
                continue
            out["pixel_values"].append(self.pixels(image))
            if args.caption_column:
                caption = batch[args.caption_column][i]
                if args.style_caption_column:  # ["<style> style: <caption>", "<caption>"]: one drawn
                    caption = style_captions(caption, batch[args.style_caption_column][i])
                out["text"].append(self.caption(caption, name))
            if args.label_column:
                out["labels"].append(int(batch[args.label_column][i]))
        return out


def _check_images(dataset: datasets.Dataset, args: DataArguments, report: DataReport) -> datasets.Dataset:
    """Decodes every image once; returns the readable rows and records the rest in `report`."""

    def check(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        images = batch[args.image_column]
        captions = batch[args.caption_column] if args.caption_column else [True] * len(images)
        return {
            "reason": [decode_rgb(value)[1] or "" for value in images],
            "name": [image_name(value, index) for value, index in zip(images, indices)],
            "empty": [not caption for caption in captions],
        }

    status = dataset.map(
        check,
        batched=True,
        with_indices=True,
        remove_columns=dataset.column_names,
        keep_in_memory=True,
        num_proc=args.num_proc,
        desc="checking images",
    )
    reasons, names, empty = status["reason"], status["name"], status["empty"]
    report.skipped.update({n: r for n, r in zip(names, reasons) if r})
    report.empty_captions.update(n for n, e, r in zip(names, empty, reasons) if e and not r)
    if report.skipped:
        logger.warning(
            "skipped %d unreadable images: %s", len(report.skipped), ", ".join(sorted(report.skipped))
        )
        dataset = dataset.select(np.flatnonzero([not r for r in reasons]))
    if report.empty_captions:
        logger.warning(
            '%d images have an empty caption; they train with the "" prompt', len(report.empty_captions)
        )
    return dataset


def _first_row(stream: datasets.IterableDataset) -> dict | None:
    """The first row of a stream, images left undecoded (a broken first file must not raise here)."""
    return next(iter(stream.decode(False)), None)


def _is_empty(dataset: AnyDataset) -> bool:
    if isinstance(dataset, datasets.Dataset):
        return len(dataset) == 0
    return _first_row(dataset) is None


def load_image_dataset(args: DataArguments) -> tuple[AnyDataset, DataReport]:
    """Returns the dataset (rows: pixel_values (3, R, R) in [-1, 1], text, labels) and its DataReport."""
    if args.resolution <= 0:
        raise ValueError(f"resolution must be positive, got {args.resolution}")
    if args.max_samples is not None and args.max_samples <= 0:
        raise ValueError(f"max_samples must be positive, got {args.max_samples}")
    dataset = _load_source(args)
    if _is_empty(dataset):
        source = args.dataset_name or args.train_data_dir or args.train_shards
        raise ValueError(f"the dataset ({source}, split {args.split}) is empty")
    columns = _check_columns(dataset, args)
    dataset, label_names = _encode_labels(dataset, args)
    dataset = dataset.cast_column(args.image_column, datasets.Image(decode=False))
    report = DataReport(label_names=label_names)
    if args.streaming:
        if args.max_samples is not None:
            dataset = dataset.take(args.max_samples)
        transform = ImageTransform(args, report)
        # one row per call: a stream's saved position then lies between rows, and a resume decodes no row
        # twice (a map batch of 1,000 resumed by re-reading the batch; hfldm.training.stream)
        stream = dataset.map(transform, batched=True, batch_size=1, with_indices=True, remove_columns=columns)
        return stream, report
    if args.max_samples is not None:
        dataset = dataset.select(range(min(args.max_samples, len(dataset))))
    dataset = _check_images(dataset, args, report)
    if len(dataset) == 0:
        raise ValueError(f"no readable image in the dataset: {report.summary()}")
    report.num_rows = len(dataset)
    return dataset.with_transform(ImageTransform(args)), report


def collate_fn(examples: list[dict]) -> dict:
    """Returns {"pixel_values": (B, 3, R, R) float32, "text": list[str], "labels": (B,) int64}."""
    batch = {"pixel_values": torch.stack([e["pixel_values"] for e in examples]).contiguous().float()}
    if "text" in examples[0]:
        batch["text"] = [e["text"] for e in examples]
    if "labels" in examples[0]:
        batch["labels"] = torch.tensor([e["labels"] for e in examples], dtype=torch.long)
    return batch


def make_dataloader(
    dataset: AnyDataset,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    num_workers: int = 0,
    shuffle_buffer_size: int = 1000,
) -> torch.utils.data.DataLoader:
    """Returns a DataLoader of `collate_fn` batches, shuffled with `seed` when `shuffle`.

    Map-style data: a seeded RandomSampler, a new permutation each epoch. Streaming data:
    `IterableDataset.shuffle(seed, shuffle_buffer_size)`.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    # the loader's own generator: starting an epoch then leaves torch's global RNG (crops, flips) alone
    generator = torch.Generator().manual_seed(seed)
    if isinstance(dataset, datasets.IterableDataset):
        if shuffle:
            dataset = dataset.shuffle(seed=seed, buffer_size=shuffle_buffer_size)
        shuffle = False  # a stream is shuffled by its buffer, not by a sampler
    return torch.utils.data.DataLoader(
        dataset,
        batch_size,
        shuffle=shuffle,
        generator=generator,
        collate_fn=collate_fn,
        num_workers=num_workers,
    )
