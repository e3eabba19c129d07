"""The held-out set an `hfldm eval` run draws (`load_eval_set`): rows of the dataset's test and reference
splits at the model's size, with the model's kind of condition, and loader errors that name eval's flags."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from hfldm.commands.shared import quiet_loading


def parse_num_samples(text: str) -> int | None:
    """'all' -> None, '8' -> 8; ValueError naming --num-samples below 2."""
    if str(text).strip().lower() == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"--num-samples: expected an integer or 'all', got {text!r}") from None
    if n < 2:
        raise ValueError(f"--num-samples: FID needs at least 2 samples, got {n}")
    return n


def load_rows(
    args: argparse.Namespace, split_flag: str, resolution: int, caption: str | None, label: str | None
):
    """Rows of the split named by `split_flag`: (images (N, 3, R, R) in [0, 1], captions or None, labels or
    None, class names of the label column or None). Loader errors name the eval flag."""
    import torch

    from hfldm.data.arguments import DataArguments
    from hfldm.data.loader import load_image_dataset

    local = Path(args.dataset).exists()
    data_args = DataArguments(
        dataset_name=None if local else args.dataset,
        train_data_dir=args.dataset if local else None,
        split=getattr(args, split_flag),
        image_column=args.image_column,
        caption_column=caption,
        label_column=label,
        resolution=resolution,
        max_samples=args.num_reference if split_flag == "reference_split" else None,
    )
    flags = {"split": f"--{split_flag.replace('_', '-')}", "caption_column": "--caption-column"}
    flags |= {
        "label_column": "--label-column",
        "image_column": "--image-column",
        "train_data_dir": "--dataset",
    }
    try:
        with quiet_loading(), quiet_datasets():
            dataset, report = load_image_dataset(data_args)
    except (ValueError, FileNotFoundError) as e:
        message = str(e).splitlines()[0]
        key = message.split(":", 1)[0]
        if key == "caption_column":
            message += " (the model is text-conditional: it needs captions)"
        raise ValueError(f"{flags[key]}:{message.split(':', 1)[1]}" if key in flags else message) from None
    except Exception as e:  # a Hub dataset that cannot be reached or found
        if local:
            raise
        raise FileNotFoundError(
            f"--dataset: could not load {args.dataset}: {str(e).splitlines()[0]}"
        ) from None
    rows = dataset[: len(dataset)]
    images = (torch.stack(rows["pixel_values"]).float() + 1) / 2  # [-1, 1] -> [0, 1]
    return images, rows.get("text"), rows.get("labels"), report.label_names


@contextlib.contextmanager
def quiet_datasets():
    """No progress bars from datasets while loading (they would interleave with the sampling bar)."""
    import datasets

    enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if enabled:
            datasets.enable_progress_bars()


def class_ids(labels: list[int], names: list[str] | None, pipe) -> list[int]:
    """Dataset labels -> the pipeline's class indices (by name when both have names)."""
    if names and pipe.label2id:
        missing = sorted({names[label] for label in labels} - set(pipe.label2id))
        if missing:
            raise ValueError(f"--label-column: classes {missing[:3]} are not among the model's id2label")
        return [pipe.label2id[names[label]] for label in labels]
    null = pipe.num_class_embeds - 1  # the last embedding is the null class
    if any(not 0 <= label < null for label in labels):
        raise ValueError(f"--label-column: labels must be class indices in [0, {null})")
    return list(labels)


def load_eval_set(args: argparse.Namespace, pipe):
    """The `hfldm.eval.report.EvalSet` of args.dataset for `pipe` (resolution, conditioning from the pipe)."""
    from hfldm.eval.report import EvalSet

    height, width = pipe.default_image_size()
    if height != width:
        raise ValueError(f"--model: evaluation needs square images, the model makes {height}x{width}")
    n = parse_num_samples(args.num_samples)
    kind = "text" if pipe.is_text_conditional else "class" if pipe.num_class_embeds else "unconditional"
    caption = args.caption_column if kind == "text" else None
    label = args.label_column if kind == "class" else None
    test, captions, labels, names = load_rows(args, "split", height, caption, label)
    if n is not None and n > len(test):
        raise ValueError(f"--num-samples: {n} exceeds the {len(test)} rows of split {args.split!r}")
    n = n or len(test)
    if n < 2:
        raise ValueError(f"--split: {args.split!r} has {n} row, FID needs at least 2")
    train, train_captions, _, _ = load_rows(args, "reference_split", height, caption, None)
    data = EvalSet(test[:n], train, kind, grid_captions=[f"sample {i}" for i in range(n)])
    if kind == "text":
        data.captions, data.candidates, data.train_captions = captions[:n], captions, train_captions
        data.grid_captions = data.captions
    elif kind == "class":
        data.class_labels = class_ids(labels[:n], names, pipe)
        id2label = pipe.config.id2label or {}
        data.grid_captions = [id2label.get(i, str(i)) for i in data.class_labels]
    return data
