"""--style_caption_column (#30's text model): each image is captioned "<style> style: <name>" or "<name>",
p = 1/2 each, by the loader every model trains through; a column that is not there is one clear error."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from hfldm.data.arguments import DataArguments
from hfldm.data.loader import load_image_dataset
from hfldm.data.style_captions import style_captions


def test_a_caption_gets_its_styled_twin():
    assert style_captions("cat face", "noto") == ["noto style: cat face", "cat face"]
    assert style_captions(["a", "b"], "fluent-flat") == [
        "fluent-flat style: a",
        "fluent-flat style: b",
        "a",
        "b",
    ]
    assert style_captions("cat face", None) == "cat face"  # no style: as it is
    assert style_captions("", "noto") == ""  # the unconditional prompt stays empty


@pytest.fixture
def styled_data(tmp_path):
    """Two names drawn by two styles, saved as `hfldm data emoji` does (save_to_disk, a style column)."""
    images = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (0, 80, 160, 240)]
    rows = {
        "image": images,
        "text": ["cat face", "cat face", "rocket", "rocket"],
        "style": ["noto", "openmoji", "noto", "openmoji"],
    }
    folder = tmp_path / "styles"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(str(folder))
    return str(folder)


def test_the_loader_draws_the_styled_caption_half_the_time(styled_data):
    args = DataArguments(train_data_dir=styled_data, resolution=8, style_caption_column="style")
    dataset, _ = load_image_dataset(args)
    torch.manual_seed(0)
    texts = [dataset[i % 4]["text"] for i in range(400)]
    for i, text in enumerate(texts):
        name, style = ["cat face", "cat face", "rocket", "rocket"][i % 4], ["noto", "openmoji"][i % 2]
        assert text in (f"{style} style: {name}", name)  # the row's own style, never another's
    styled = np.mean([": " in t for t in texts])
    assert 0.42 < styled < 0.58  # p = 1/2 (400 draws: ± 0.05 is 2 standard deviations)
    plain, _ = load_image_dataset(DataArguments(train_data_dir=styled_data, resolution=8))
    assert {plain[i]["text"] for i in range(4)} == {"cat face", "rocket"}  # off by default


def test_a_missing_style_column_is_named(styled_data):
    args = DataArguments(train_data_dir=styled_data, resolution=8, style_caption_column="artist")
    with pytest.raises(ValueError, match="^style_caption_column: column 'artist' not in the dataset"):
        load_image_dataset(args)
