"""Data: the emoji builder and its split, the digits."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from hfldm.cli import main as cli
from hfldm.data.arguments import DataArguments
from hfldm.data.digits import load_digits_dataset
from hfldm.data.emoji import EMOJI_FONT, EMOJI_TEST, build_emoji
from hfldm.data.loader import load_image_dataset, make_dataloader

needs_emoji = pytest.mark.skipif(
    not (EMOJI_FONT.is_file() and EMOJI_TEST.is_file()),
    reason="Debian fonts-noto-color-emoji / unicode-data not installed (apt-get install them)",
)


def in_test_split(codepoints: str) -> bool:  # the rule as the issue states it
    return int(hashlib.sha1(codepoints.encode()).hexdigest(), 16) % 10 == 0


@pytest.fixture(scope="module")
def emoji():
    return build_emoji(resolutions=(32,))


# ---------------------------------------------------------------- emoji builder


@needs_emoji
def test_emoji_builder_rows_captions_split_and_pixels(emoji):
    data = emoji.datasets[32]
    fully_qualified = sum("; fully-qualified" in line for line in EMOJI_TEST.read_text().splitlines())
    assert len(data["train"]) + len(data["test"]) == fully_qualified - len(emoji.skipped["noto"]) >= 3600
    assert 0.08 < len(data["test"]) / fully_qualified < 0.12
    for split, rows in data.items():
        assert all(text.strip() for text in rows["text"]) and set(rows["style"]) == {"noto"}
        assert all(in_test_split(cps) == (split == "test") for cps in rows["codepoints"])
        pixels = np.stack([np.asarray(image) for image in rows["image"]]).astype(np.float64)  # (N, 32, 32, 3)
        assert pixels.shape[1:] == (32, 32, 3)
        assert pixels.std(axis=(1, 2, 3)).min() > 5.0  # no blank image
        assert pixels.mean() < 250.0 and pixels.mean(axis=(1, 2, 3)).max() < 255.0
    train = data["train"]
    groups = train.features["group"]
    row = dict(zip(train["text"], zip(train["codepoints"], train["group"])))
    captions = set(train["text"]) | set(data["test"]["text"])
    assert {"man technologist: dark skin tone", "flag: France", "grinning face"} <= captions
    if "flag: France" in row:
        assert groups.int2str(row["flag: France"][1]) == "Flags"


@needs_emoji
def test_emoji_split_is_stable_between_runs(emoji):
    again = build_emoji(resolutions=(32,), limit=400).datasets[32]
    full_test = set(emoji.datasets[32]["test"]["codepoints"])
    first = set(again["train"]["codepoints"]) | set(again["test"]["codepoints"])
    assert set(again["test"]["codepoints"]) == full_test & first
    image = again["train"][0]["image"]
    same = emoji.datasets[32]["train"].filter(
        lambda cps: cps == again["train"][0]["codepoints"], input_columns="codepoints"
    )
    assert np.array_equal(np.asarray(image), np.asarray(same[0]["image"]))  # rendering is deterministic


@needs_emoji
def test_emoji_cli_writes_both_layouts_that_load_identically(tmp_path, capsys):
    grid = tmp_path / "grid.png"
    assert (
        cli(
            [
                "data",
                "emoji",
                "--out",
                str(tmp_path),
                "--resolution",
                "16",
                "--limit",
                "30",
                "--grid",
                str(grid),
            ]
        )
        == 0
    )
    assert "emoji 16px" in capsys.readouterr().out
    assert Image.open(grid).size[0] == 8 * (2 * 64 - 16)
    batches = []
    for folder in (tmp_path / "16", tmp_path / "16-imagefolder"):
        dataset, report = load_image_dataset(DataArguments(train_data_dir=str(folder), resolution=16))
        assert report.num_rows == len(dataset) and not report.skipped
        batches.append(next(iter(make_dataloader(dataset, 8, shuffle=False))))
    assert torch.equal(batches[0]["pixel_values"], batches[1]["pixel_values"])
    assert batches[0]["text"] == batches[1]["text"]


# ---------------------------------------------------------------- digits


def test_digits_are_sklearn_digits_as_ink_on_white():
    from sklearn.datasets import load_digits

    data, raw = load_digits_dataset(resolution=8, limit=50), load_digits()
    for i in (0, 7, 49):
        expected = np.round(255.0 - raw.images[i] * 255.0 / 16.0)
        assert np.array_equal(np.asarray(data[i]["image"])[..., 0], expected)
        assert data[i]["label"] == raw.target[i] and data[i]["text"] == f"digit {raw.target[i]}"
    assert data.features["label"].names == [str(d) for d in range(10)]
    assert load_digits_dataset(resolution=16, limit=3)[0]["image"].size == (16, 16)


# ---------------------------------------------------------------- bad images


@needs_emoji
@pytest.mark.parametrize("flag", ["--emoji_test", "--font"])
def test_emoji_cli_refuses_a_source_of_another_kind(tmp_path, capsys, flag):
    """Another text file as emoji-test.txt (it yields no rows) or as the font: one line naming the flag,
    exit 2, no dataset written."""
    other = tmp_path / "notes.txt"
    other.write_text("just some text\n")
    assert cli(["data", "emoji", "--out", str(tmp_path / "out"), "--limit", "5", flag, str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hfldm data: error: {flag}: {other}") and "\n" not in err
    assert not (tmp_path / "out").exists()
