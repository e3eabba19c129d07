"""The one image loader: bad files, conversions, argument checks, streaming vs map-style, seeded order."""

from __future__ import annotations

import io
import json
import logging

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from hfldm.data.arguments import DataArguments
from hfldm.data.loader import load_image_dataset, make_dataloader


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def crafted(tmp_path):
    """A folder of awkward images + metadata.jsonl; returns (folder, the expected RGB uint8 arrays)."""
    tmp_path = tmp_path / "crafted"
    tmp_path.mkdir()
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    rgba[..., 3] = 0
    rgba[:8, :, 3] = 255  # top half opaque, bottom half fully transparent
    gray = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    deep = rng.integers(0, 65536, (16, 16)).astype(np.uint16)
    palette = Image.fromarray(rng.integers(0, 4, (16, 16), dtype=np.uint8), mode="P")
    palette.putpalette([10, 20, 30, 200, 0, 0, 0, 200, 0, 0, 0, 200] + [0] * 756)
    palette.info["transparency"] = 0  # index 0 is transparent -> white
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(deep).save(tmp_path / "deep.png")
    palette.save(tmp_path / "palette.png", transparency=0)
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=100)
    Image.new("RGB", (16, 16), (0, 0, 255)).save(tmp_path / "nocaption.png")
    (tmp_path / "truncated.png").write_bytes(_png_bytes(Image.fromarray(rgba[..., :3]))[:300])
    (tmp_path / "empty.png").write_bytes(b"")
    white = np.full((8, 16, 3), 255, np.uint8)
    index = np.asarray(palette)
    expected = {
        "rgba.png": np.concatenate([rgba[:8, :, :3], white]),
        "gray.png": np.repeat(gray[..., None], 3, axis=2),
        "deep.png": np.repeat(np.round(deep / 257.0).astype(np.uint8)[..., None], 3, axis=2),
        "palette.png": np.where(
            index[..., None] == 0, 255, np.array(palette.getpalette()[:12]).reshape(4, 3)[index]
        ),
        "cmyk.jpg": np.broadcast_to(np.array([255, 0, 0], np.uint8), (16, 16, 3)),
        "nocaption.png": np.broadcast_to(np.array([0, 0, 255], np.uint8), (16, 16, 3)),
    }
    names = ["truncated.png", "rgba.png", "gray.png", "deep.png", "empty.png", "palette.png", "cmyk.jpg"]
    with open(tmp_path / "metadata.jsonl", "w") as f:
        for name in names:
            f.write(json.dumps({"file_name": name, "text": f"a {name}"}) + "\n")
        f.write(json.dumps({"file_name": "nocaption.png", "text": ""}) + "\n")
    return tmp_path, expected


@pytest.mark.parametrize("streaming", [False, True])
def test_loader_converts_what_it_can_and_names_what_it_skips(crafted, streaming, caplog):
    folder, expected = crafted
    args = DataArguments(train_data_dir=str(folder), resolution=16, streaming=streaming)
    with caplog.at_level(logging.WARNING, logger="hfldm.data.loader"):
        dataset, report = load_image_dataset(args)
        batch = next(iter(make_dataloader(dataset, 16, shuffle=False)))
    assert isinstance(dataset, datasets.IterableDataset) == streaming
    order = ["rgba.png", "gray.png", "deep.png", "palette.png", "cmyk.jpg", "nocaption.png"]
    assert batch["text"] == [f"a {n}" for n in order[:-1]] + [""]
    pixels = batch["pixel_values"]
    assert pixels.shape == (6, 3, 16, 16) and pixels.dtype == torch.float32
    assert pixels.min() >= -1.0 and pixels.max() <= 1.0
    for name, image in zip(order, pixels):
        want = torch.from_numpy(np.asarray(expected[name], dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1.0
        tolerance = 8 / 127.5 if name.endswith(".jpg") else 1e-6  # JPEG is lossy
        assert torch.allclose(image, want, atol=tolerance), name
    assert sorted(n.rsplit("/", 1)[-1] for n in report.skipped) == ["empty.png", "truncated.png"]
    assert [n.rsplit("/", 1)[-1] for n in report.empty_captions] == ["nocaption.png"]
    warnings = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == (
        2 if streaming else 1
    )  # map-style: one warning up front; streaming: one per file
    assert "truncated.png" in " ".join(warnings) and "empty.png" in " ".join(warnings)
    assert report.num_rows == (None if streaming else 6)


def test_loader_validation_names_the_argument(crafted, tmp_path, digits_dir):
    folder, _ = crafted
    with pytest.raises(
        ValueError, match=r"caption_column: column 'caption' .*available columns: \['image', 'text'\]"
    ):
        load_image_dataset(DataArguments(train_data_dir=str(folder), caption_column="caption"))
    with pytest.raises(ValueError, match="label_column"):
        load_image_dataset(DataArguments(train_data_dir=str(folder), label_column="group"))
    with pytest.raises(ValueError, match="resolution must be positive"):
        load_image_dataset(DataArguments(train_data_dir=str(folder), resolution=0))
    with pytest.raises(ValueError, match="exactly one of dataset_name"):
        load_image_dataset(DataArguments())
    with pytest.raises(FileNotFoundError, match="train_data_dir"):
        load_image_dataset(DataArguments(train_data_dir=str(tmp_path / "nowhere")))
    features = datasets.Features(image=datasets.Image(), text=datasets.Value("string"))
    hub = tmp_path / "hub"
    hub.mkdir()
    datasets.Dataset.from_dict({"image": [], "text": []}, features=features).to_parquet(hub / "train.parquet")
    for streaming in (False, True):  # a local folder given as dataset_name goes through load_dataset(name)
        with pytest.raises(ValueError, match="is empty|corresponds to no data"):
            load_image_dataset(DataArguments(dataset_name=str(hub), streaming=streaming))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"not a png")
    (broken / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "text": "a"}) + "\n")
    with pytest.raises(ValueError, match="no readable image.*a.png"):
        load_image_dataset(DataArguments(train_data_dir=str(broken)))
    with pytest.raises(ValueError, match=r"split: 'test' not in .* \['train'\]"):
        load_image_dataset(DataArguments(train_data_dir=str(digits_dir / "12"), split="test"))
    with pytest.raises(ValueError, match="label_column: 'label' must be a ClassLabel or integer column"):
        folder = str(digits_dir / "12-imagefolder")  # imagefolder labels are strings
        load_image_dataset(DataArguments(train_data_dir=folder, label_column="label", streaming=True))


# ---------------------------------------------------------------- streaming


@pytest.mark.parametrize("layout", ["12", "12-imagefolder"])
def test_streaming_and_map_style_give_the_same_first_batch(digits_dir, layout):
    batches = []
    for streaming in (False, True):
        args = DataArguments(
            train_data_dir=str(digits_dir / layout),
            resolution=10,
            center_crop=False,
            random_flip=True,
            label_column="label" if layout == "12" else None,
            streaming=streaming,
        )
        dataset, _ = load_image_dataset(args)
        torch.manual_seed(3)  # the seed of the random crops and flips
        batches.append(next(iter(make_dataloader(dataset, 16, shuffle=False))))
    (a, b) = batches
    assert torch.equal(a["pixel_values"], b["pixel_values"])
    assert a["text"] == b["text"] and ("labels" not in a or torch.equal(a["labels"], b["labels"]))
    assert a["pixel_values"].shape == (16, 3, 10, 10)
    torch.manual_seed(4)
    other = next(iter(make_dataloader(load_image_dataset(args)[0], 16, shuffle=False)))
    assert not torch.equal(other["pixel_values"], b["pixel_values"])  # the seed does drive the crops


def test_map_style_shuffle_is_seeded(digits_dir):
    dataset, _ = load_image_dataset(
        DataArguments(train_data_dir=str(digits_dir / "12"), label_column="label")
    )
    orders = [next(iter(make_dataloader(dataset, 64, seed=s)))["labels"] for s in (0, 0, 1)]
    assert torch.equal(orders[0], orders[1]) and not torch.equal(orders[0], orders[2])
    assert sorted(orders[0].tolist()) == sorted(dataset.with_format(None)["label"])
