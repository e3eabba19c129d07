"""Data: emoji builder, digits, the one image loader (bad files, streaming) and the latent cache."""

from __future__ import annotations

import hashlib
import io
import json
import logging

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from hfldm.cli import main as cli
from hfldm.data.arguments import DataArguments
from hfldm.data.digits import load_digits_dataset
from hfldm.data.emoji import EMOJI_FONT, EMOJI_TEST, build_emoji
from hfldm.data.export import save_both
from hfldm.data.latent_cache import (
    cache_latents,
    load_latent_cache,
    load_uncond_embedding,
    load_vae,
    sample_latents,
)
from hfldm.data.loader import collate_fn, load_image_dataset, make_dataloader

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
    assert len(data["train"]) + len(data["test"]) == fully_qualified - len(emoji.skipped) >= 3600
    assert 0.08 < len(data["test"]) / fully_qualified < 0.12
    for split, rows in data.items():
        assert all(text.strip() for text in rows["text"])
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


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    rows = load_digits_dataset(resolution=12, limit=64)
    out = tmp_path_factory.mktemp("digits")
    save_both(datasets.DatasetDict(train=rows), out, "12")
    return out


@pytest.mark.parametrize("layout", ["12", "12-imagefolder"])
def test_streaming_and_map_style_give_the_same_first_batch(digits_dir, layout):
    batches = []
    for streaming in (False, True):
        args = DataArguments(
            train_data_dir=str(digits_dir / layout), resolution=10, center_crop=False, random_flip=True,
            label_column="label" if layout == "12" else None, streaming=streaming,
        )  # fmt: skip
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


# ---------------------------------------------------------------- latent cache


def _tiny_vae(kind: str):
    if kind == "KLAutoencoder":
        from hfldm.autoencoders.kl import KLAutoencoder

        return KLAutoencoder(
            block_out_channels=(8, 16), layers_per_block=1, latent_channels=3, norm_num_groups=4
        )
    from diffusers import AutoencoderKL

    blocks = dict(down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    return AutoencoderKL(block_out_channels=(8, 16), latent_channels=3, norm_num_groups=4, **blocks)


@pytest.mark.parametrize("kind", ["AutoencoderKL", "KLAutoencoder"])
def test_latent_cache_round_trip(digits_dir, tmp_path, kind):
    from hfldm.text import encode_text, load_minilm

    torch.manual_seed(0)
    _tiny_vae(kind).save_pretrained(tmp_path / "vae")
    vae = load_vae(tmp_path / "vae")
    assert type(vae).__name__ == kind
    text_model = load_minilm() if kind == "AutoencoderKL" else None  # the text part once is enough
    args = DataArguments(
        train_data_dir=str(digits_dir / "12"), resolution=12, label_column="label", max_samples=20
    )
    cache = cache_latents(args, vae, tmp_path / "cache", text_model=text_model, batch_size=8)
    assert cache is not None and len(load_latent_cache(tmp_path / "cache")) == 20

    dataset, _ = load_image_dataset(args)
    batch = collate_fn([dataset[i] for i in range(20)])
    with torch.no_grad():
        posterior = vae.encode(batch["pixel_values"]).latent_dist
    cached = load_latent_cache(tmp_path / "cache")[:20]
    assert cached["latent_mean"].shape == (20, 3, 6, 6)
    torch.testing.assert_close(cached["latent_mean"], posterior.mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cached["latent_std"], posterior.std, rtol=1e-5, atol=1e-6)
    assert torch.equal(cached["labels"], batch["labels"]) and cached["text"] == batch["text"]
    z = sample_latents(cached, torch.Generator().manual_seed(1))
    eps = torch.randn(z.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(z, posterior.mean + posterior.std * eps, rtol=1e-5, atol=1e-5)  # q(z|x) draw
    if text_model is not None:
        with torch.no_grad():
            hidden, mask = encode_text(*text_model, batch["text"])
            uncond_hidden, uncond_mask = encode_text(*text_model, [""])
        torch.testing.assert_close(cached["encoder_hidden_states"], hidden, rtol=1e-4, atol=1e-5)
        assert torch.equal(cached["attention_mask"], mask)
        uncond = load_uncond_embedding(tmp_path / "cache")
        torch.testing.assert_close(uncond["encoder_hidden_states"], uncond_hidden[0], rtol=1e-4, atol=1e-5)
        assert torch.equal(uncond["attention_mask"], uncond_mask[0])
    with pytest.raises(ValueError, match="out: .* not empty"):
        cache_latents(args, vae, tmp_path / "cache")
