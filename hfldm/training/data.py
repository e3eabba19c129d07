"""The training data of the scripts: images through hfldm's one loader, or a latent cache, plus a held-out
set for validation and the checks that need the data (columns, classes, emptiness).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import datasets

from hfldm.autoencoders.latent_space import latent_space
from hfldm.data.arguments import DataArguments
from hfldm.data.latent_cache import INFO_FILE, load_latent_cache, load_uncond_embedding
from hfldm.data.loader import collate_fn, load_image_dataset
from hfldm.data.sharded_cache import is_sharded_cache, load_sharded_cache


def load_images(data: DataArguments) -> tuple[datasets.Dataset | datasets.IterableDataset, list[str] | None]:
    """The image dataset of `data` (rows: pixel_values, text, labels) and its class names (or None).

    The loader's errors come back as one-line ValueErrors naming the argument: `--field: ...` when they
    name a DataArguments field, else the data source (--train_data_dir or --dataset_name).
    """
    try:
        dataset, report = load_image_dataset(data)
    except (ValueError, FileNotFoundError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        field = next((f.name for f in dataclasses.fields(DataArguments) if message.startswith(f.name)), None)
        source = "--train_data_dir" if data.train_data_dir is not None else "--dataset_name"
        raise ValueError(f"--{message}" if field else f"{source}: {message}") from None
    return dataset, report.label_names


def held_out_images(
    data: DataArguments, train_set, validation_split: str | None, num_images: int
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(training set, held-out set of at most `num_images` images): the split `validation_split` of the same
    source, or else the last `num_images` rows of the training set, which are then removed from it."""
    if validation_split is not None:
        try:
            held_out, _ = load_images(
                dataclasses.replace(data, split=validation_split, max_samples=num_images)
            )
        except ValueError as e:
            raise ValueError(f"--validation_split: {str(e).removeprefix('--split: ')}") from None
        return train_set, held_out
    if isinstance(train_set, datasets.IterableDataset):
        raise ValueError("--validation_split: a streaming dataset needs a named held-out split")
    if len(train_set) <= num_images:
        raise ValueError(
            f"--num_validation_images: {num_images} would hold out all {len(train_set)} training images; "
            "lower it or give --validation_split"
        )
    n = len(train_set)
    return train_set.select(range(n - num_images)), train_set.select(range(n - num_images, n))


STREAM_PEEK = 256  # rows of a stream whose captions stand for the data's (validation prompts)


def captions(dataset, caption_column: str | None) -> list[str]:
    """Every non-empty caption of a map-style dataset (all of a row's list), read without decoding its
    images; of a stream (--streaming), those of its first STREAM_PEEK rows, which is what the validation
    prompts need (a scratch tokenizer, which needs them all, refuses a stream: `check_scratch_tokenizer`).
    Null and empty ones are skipped, as the loader makes them the unconditional prompt. ValueError naming
    --caption_column when a caption is not text or none is left (a tokenizer needs some)."""
    column = caption_column or "text"
    if dataset.column_names is not None and column not in dataset.column_names:
        raise ValueError(
            f"--caption_column: the data has no column {column!r} (it has {dataset.column_names})"
        )
    if isinstance(dataset, datasets.IterableDataset):
        values = [row[column] for row in dataset.select_columns([column]).take(STREAM_PEEK)]
    else:
        values = dataset.with_format(None)[column]
    texts = []
    for value in values:
        for text in value if isinstance(value, (list, tuple)) else [value]:
            if text is not None and not isinstance(text, str):
                raise ValueError(f"--caption_column: expected text, got {type(text).__name__} ({text!r})")
            texts += [text] if text else []
    if not texts:
        raise ValueError(
            f"--caption_column: every caption in {column!r} is empty or null; a text model needs some"
        )
    return texts


def check_scratch_tokenizer(dataset) -> None:
    """ValueError naming --text_encoder when a scratch tokenizer would be trained on a stream's captions."""
    if isinstance(dataset, datasets.IterableDataset):
        raise ValueError(
            "--text_encoder: scratch trains its tokenizer on all captions, which a stream (--streaming) "
            "does not hold; use a pretrained one (minilm, a transformers folder) or fine-tune a pipeline"
        )


def load_cache(path: str, streaming: bool = False) -> tuple[datasets.Dataset, dict, dict | None]:
    """(latent cache Dataset in torch format, its cache_info.json, the "" prompt embedding or None); with
    `streaming` a sharded cache (`hfldm cache-latents --num_shards`) is streamed from its Parquet shards."""
    if not (Path(path) / INFO_FILE).is_file():
        raise ValueError(
            f"--cached_latents: {path} is not a latent cache (no {INFO_FILE}); see `hfldm cache-latents`"
        )
    if is_sharded_cache(path):
        info = json.loads((Path(path) / INFO_FILE).read_text())
        return load_sharded_cache(path, streaming), info, load_uncond_embedding(path)
    if streaming:
        raise ValueError(f"--streaming: {path} is one saved dataset; stream a cache made with --num_shards")
    cache = load_latent_cache(path)
    if len(cache) == 0:
        raise ValueError(f"--cached_latents: {path} holds no rows")
    return cache, json.loads((Path(path) / INFO_FILE).read_text()), load_uncond_embedding(path)


def num_classes(dataset, label_names: list[str] | None, label_column: str = "labels") -> int:
    """Number of classes: len(label_names), else 1 + the largest label (map-style data); ValueError if any
    label is negative (e.g. a latent cache made without --label_column)."""
    if label_names:
        return len(label_names)
    if isinstance(dataset, datasets.IterableDataset):
        raise ValueError("--label_column: a streaming dataset needs a ClassLabel column to count its classes")
    labels = dataset.with_format(None)[label_column]
    if min(labels) < 0:
        raise ValueError(f"--label_column: the data hold no class labels (found {min(labels)})")
    return max(labels) + 1


def check_cache(info: dict, vae, resolution: int, kind, text_encoder: str, random_flip: bool) -> None:
    """ValueError naming the argument when a latent cache does not fit the autoencoder, resolution or
    conditioning of this run."""
    expected = list(latent_space(vae).latent_shape(resolution))
    if list(info["latent_shape"]) != expected:
        raise ValueError(
            f"--cached_latents: latents of shape {tuple(info['latent_shape'])}, but --autoencoder and "
            f"--resolution {resolution} give {tuple(expected)}"
        )
    if info.get("vae_class") != type(vae).__name__:
        raise ValueError(
            f"--cached_latents: made by a {info.get('vae_class')}, --autoencoder is a {type(vae).__name__}"
        )
    if random_flip:
        raise ValueError(
            "--random_flip: cached latents were encoded once, unflipped; train from images to flip"
        )
    kind.check_cache(info.get("data", {}))
    if text_encoder == "minilm" and info.get("text_encoder") not in (None, "BertModel"):
        raise ValueError(f"--text_encoder: the cache holds {info['text_encoder']} embeddings, not MiniLM's")


def data_for(data: DataArguments, kind) -> DataArguments:
    """`data` for the loader: only the column the conditioning reads (captions for text, labels for class),
    so that a dataset is not rejected for lacking a column this run does not use; and no random flip, which
    the training step draws itself per sample (`StepNoise.flip`), so that resumed and multi-process runs
    flip the same images."""
    caption_column, label_column = kind.loader_columns(data.caption_column, data.label_column)
    return dataclasses.replace(
        data, caption_column=caption_column, label_column=label_column, random_flip=False
    )


@dataclasses.dataclass
class LDMData:
    """What train_ldm.py trains on: images with captions / labels, or a latent cache."""

    dataset: datasets.Dataset | datasets.IterableDataset
    label_names: list[str] | None  # class names of a ClassLabel column
    uncond: dict | None  # τ_θ("") of a latent cache with text embeddings
    text_column: str
    label_column: str
    collate: Callable | None  # cache rows are tensors: torch's default collate


def ldm_data(data: DataArguments, kind, cached_latents: str | None, vae, text_encoder: str) -> LDMData:
    """The images of `data` (only the column `kind` reads), or the latent cache `cached_latents` after
    checking that it fits the autoencoder, resolution and conditioning of the run."""
    if cached_latents:
        dataset, info, uncond = load_cache(cached_latents, data.streaming)
        check_cache(info, vae, data.resolution, kind, text_encoder, data.random_flip)
        return LDMData(
            dataset, info.get("label_names"), uncond, "text", "labels", None
        )  # the cache's columns
    data = data_for(data, kind)
    dataset, label_names = load_images(data)
    return LDMData(dataset, label_names, None, data.caption_column, data.label_column, collate_fn)
