"""The data arguments shared by training, evaluation and latent caching, and their argparse flags."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass


def _arg(default, help: str) -> dataclasses.Field:
    """A dataclass field with its --help text (read by HfArgumentParser and `add_data_arguments`)."""
    return dataclasses.field(default=default, metadata={"help": help})


# the text fields that may be None
_OPTIONAL_TEXT = (
    "dataset_name",
    "dataset_config_name",
    "train_data_dir",
    "caption_column",
    "label_column",
    "style_caption_column",
    "cache_dir",
)


@dataclass
class DataArguments:
    """Where the images come from and how they become `pixel_values`. Give one of the three sources."""

    dataset_name: str | None = _arg(
        None, "Dataset for datasets.load_dataset(name, config): a hub id or a script."
    )
    dataset_config_name: str | None = _arg(None, "Configuration of --dataset_name, if it has several.")
    train_data_dir: str | None = _arg(
        None,
        "Local folder: a save_to_disk dataset (`hfldm data emoji` output) or an imagefolder+metadata.jsonl.",
    )
    train_shards: str | None = _arg(
        None,
        "WebDataset tars, a brace pattern like 'shards/data-{000000..000009}.tar' (image + .txt per sample).",
    )
    split: str = _arg("train", "Split to read (train, test, ...).")
    image_column: str = _arg("image", "Column holding the images.")
    caption_column: str | None = _arg(
        "text", "Column holding the captions; none for unconditional / class data."
    )
    label_column: str | None = _arg(
        None, "Integer or ClassLabel column of class labels (emoji: group; digits: label)."
    )
    style_caption_column: str | None = _arg(
        None,
        'Column of each image\'s style (emoji: style): caption it "<style> style: <caption>" or the bare '
        "caption, p = 1/2 each (hfldm.data.style_captions); none: the caption as it is.",
    )
    resolution: int = _arg(32, "Side of the square training images, pixels.")
    center_crop: bool = _arg(
        True, "Crop the centre (true) or a random square (false) after resizing the short side."
    )
    random_flip: bool = _arg(
        False, "Flip horizontally with p = 1/2 (off: emoji and text are not mirror-symmetric)."
    )
    augment_scale_min: float = _arg(
        1.0, "Training augmentation: smallest scale s of the content in the frame (hfldm.data.augment)."
    )
    augment_scale_max: float = _arg(1.0, "Training augmentation: largest scale s (1.0 and 1.0: off).")
    augment_shift: float = _arg(0.0, "Training augmentation: largest shift per axis, pixels (0: off).")
    augment_padding: str = _arg(
        "white", "What fills the frame around a shrunk or shifted image: white, edge."
    )
    crop_size: int | None = _arg(
        None, "Training augmentation: train on random crop_size² patches (super-resolution); none: whole."
    )
    streaming: bool = _arg(False, "Read lazily as a datasets.IterableDataset instead of a map-style Dataset.")
    max_samples: int | None = _arg(None, "Keep only the first N rows (quick runs, tests).")
    shuffle_buffer_size: int = _arg(1000, "Rows held by the shuffle buffer of a streaming dataset.")
    num_proc: int | None = _arg(None, "Processes for the one-off image check of a map-style dataset.")
    cache_dir: str | None = _arg(None, "Where load_dataset caches downloads and Arrow files.")

    def augmentation(self):
        """The hfldm.data.augment.Augmentation of these flags (ValueError naming a bad one)."""
        from hfldm.data.augment import Augmentation

        return Augmentation(
            scale_min=self.augment_scale_min,
            scale_max=self.augment_scale_max,
            max_shift=self.augment_shift,
            padding=self.augment_padding,
            crop_size=self.crop_size,
        )

    def __post_init__(self):
        # "none" or "" from a command line or a YAML file means no column / no source
        for name in _OPTIONAL_TEXT:
            value = getattr(self, name)
            if isinstance(value, str) and value.strip().lower() in ("", "none"):
                setattr(self, name, None)


def _base_type(annotation) -> type:
    """str | None -> str; int | None -> int."""
    if isinstance(annotation, str):
        annotation = eval(annotation, {}, {})  # `from __future__ import annotations` keeps them as strings
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_data_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """Adds one `--field` flag per DataArguments field (booleans take an optional true/false)."""
    group = parser.add_argument_group("data")
    for field in dataclasses.fields(DataArguments):
        if field.name in skip:
            continue
        kind, help = _base_type(field.type), field.metadata.get("help")
        flag = f"--{field.name}"
        if kind is bool:
            group.add_argument(
                flag, type=_parse_bool, nargs="?", const=True, default=field.default, help=help
            )
        else:
            group.add_argument(flag, type=kind, default=field.default, help=help)


def data_arguments_from(namespace: argparse.Namespace, **overrides) -> DataArguments:
    """Returns the DataArguments held by a parsed namespace (fields it lacks keep their defaults)."""
    values = {
        f.name: getattr(namespace, f.name)
        for f in dataclasses.fields(DataArguments)
        if hasattr(namespace, f.name)
    }
    return DataArguments(**{**values, **overrides})
