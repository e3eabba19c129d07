"""training/export_model.py: a trained pipeline becomes the shipped fp16 folder with card and examples."""

from __future__ import annotations

import sys
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import pytest
import torch
from _ldm_fixtures import sample, text_pipeline
from safetensors import safe_open

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "training"))
import export_model  # noqa: E402

TRAIN = ["waving hand", "waving hand: light skin tone", "red apple", "cat face"]
TEST = ["waving hand: dark skin tone", "green apple", "dog face", "thumbs up: dark skin tone"]


def emoji_like(folder: Path) -> Path:
    """save_to_disk train/test captions; only "waving hand: dark skin tone" is a skin-tone variant."""
    image = PIL.Image.new("RGB", (16, 16), "white")
    splits = {
        name: datasets.Dataset.from_dict({"image": [image] * len(texts), "text": texts})
        for name, texts in (("train", TRAIN), ("test", TEST))
    }
    datasets.DatasetDict(splits).save_to_disk(str(folder))
    return folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    pipe = text_pipeline()
    pipe.save_pretrained(tmp / "trained")
    notes, report_a, report_b = tmp / "notes.md", tmp / "a.md", tmp / "b.md"
    notes.write_text("## Training\nnotes-marker\n")
    report_a.write_text("report-guided\n")
    report_b.write_text("report-unguided\n")
    argv = [
        "--pipeline",
        str(tmp / "trained"),
        "--data",
        str(emoji_like(tmp / "data")),
        "--out",
        str(tmp / "out"),
        "--training-notes",
        str(notes),
        "--report",
        str(report_a),
        "--report",
        str(report_b),
    ]
    assert export_model.main(argv) == 0
    return pipe, tmp / "out"


def test_weights_are_fp16_and_examples_are_unseen_non_variants(exported):
    _, out = exported
    with safe_open(out / "unet" / "diffusion_pytorch_model.safetensors", "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    examples = (out / "example_captions.txt").read_text().splitlines()
    assert examples == ["green apple", "dog face", "thumbs up: dark skin tone"]  # no train-tone variant


def test_vocabulary_is_the_train_split_names(exported):
    from datasets import load_from_disk

    from hfldm.text.vocabulary import read_vocabulary

    _, out = exported
    train = load_from_disk(str(out.parent / "data"))["train"]["text"]
    assert read_vocabulary(out) == sorted(set(train)) and "green apple" not in read_vocabulary(out)


def test_card_holds_notes_and_every_report_in_order(exported):
    _, out = exported
    card = (out / "README.md").read_text()
    assert card.startswith("---\n")  # Hugging Face front matter
    assert card.index("notes-marker") < card.index("report-guided") < card.index("report-unguided")


def test_exported_folder_generates_like_the_float32_pipeline(exported):
    from diffusers import DiffusionPipeline

    pipe, out = exported
    loaded = DiffusionPipeline.from_pretrained(out, trust_remote_code=True)
    loaded.set_progress_bar_config(disable=True)
    assert {m.dtype for m in (loaded.unet, loaded.vae, loaded.text_encoder)} == {torch.float32}
    a = sample(pipe, prompt="red apple", guidance_scale=2.0)
    b = sample(loaded, prompt="red apple", guidance_scale=2.0)
    assert np.abs(a - b).max() < 0.02  # fp16 rounding of the weights only


def test_missing_pipeline_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        export_model.main(["--pipeline", str(tmp_path / "nope"), "--data", str(tmp_path), "--out", "x"])
    assert "--pipeline" in capsys.readouterr().err


def test_code_only_rewrites_the_shipped_code_and_nothing_else(exported, tmp_path, capsys):
    import shutil

    _, out = exported
    folder = shutil.copytree(out, tmp_path / "copy")
    (folder / "hfldm_unets_unet.py").unlink()  # a file an older hfldm did not ship
    (folder / "hfldm_old_module.py").write_text("# an older hfldm's copy, no longer needed\n")
    weights = {p: p.read_bytes() for p in folder.rglob("*") if p.suffix in (".safetensors", ".json", ".md")}
    assert export_model.main(["--code-only", "--out", str(folder)]) == 0
    assert (folder / "hfldm_unets_unet.py").is_file() and not (folder / "hfldm_old_module.py").exists()
    assert all(p.read_bytes() == data for p, data in weights.items())  # weights, configs, card unchanged
    with pytest.raises(SystemExit):
        export_model.main(["--code-only", "--out", str(tmp_path / "nope")])
    assert "--out" in capsys.readouterr().err


def test_a_super_resolution_pipeline_exports_without_captions(tmp_path):
    from _superres_fixtures import low_res_images, sr_pipeline, upscale

    from hfldm import LatentDiffusionSuperResolutionPipeline

    pipe = sr_pipeline()
    pipe.save_pretrained(tmp_path / "trained")
    report = tmp_path / "eval.md"
    report.write_text("| bicubic | sr-marker |\n")
    assert (
        export_model.main(
            ["--pipeline", str(tmp_path / "trained"), "--out", str(tmp_path / "out"), "--report", str(report)]
        )
        == 0
    )
    assert (
        export_model.main(
            [
                "--pipeline",
                str(tmp_path / "trained"),
                "--out",
                str(tmp_path / "with-data"),
                "--data",
                str(emoji_like(tmp_path / "data")),
            ]
        )
        == 0
    )
    examples = sorted((tmp_path / "with-data" / "examples").glob("*.png"))  # held-out, not variants, s× down
    assert [p.name for p in examples] == [
        "00-green-apple.png",
        "01-dog-face.png",
        "02-thumbs-up--dark-skin-tone.png",
    ]
    assert PIL.Image.open(examples[0]).size == (8, 8)
    out = tmp_path / "out"
    with safe_open(str(out / "unet" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    card = (out / "README.md").read_text()
    assert "Super-resolution latent diffusion" in card and "become 2h×2w" in card and "sr-marker" in card
    assert not (out / "example_captions.txt").exists()
    loaded = LatentDiffusionSuperResolutionPipeline.from_pretrained(out)
    loaded.set_progress_bar_config(disable=True)
    images = low_res_images(1)
    assert np.abs(upscale(pipe, images) - upscale(loaded, images)).max() < 0.02  # fp16 weights only
