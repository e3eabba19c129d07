"""train_ldm.py --pretrained_model_name_or_path: fine-tune a whole pipeline, hfldm's or CompVis' layout in
diffusers (LDMTextToImagePipeline), keeping its autoencoder scale, noise schedule and text-mask convention."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch
from _ldm_fixtures import text_pipeline
from _training_helpers import RESOLUTION, flags, run_script
from safetensors.torch import load_file

from hfldm import DDIMScheduler, LatentDiffusionPipeline
from tests.pipelines.test_compvis import tiny_ldm_text_to_image

PROMPT = "digit 3"


def source_folders(tmp) -> dict:
    text_pipeline().save_pretrained(tmp / "hfldm")
    tiny_ldm_text_to_image(tmp).save_pretrained(tmp / "compvis")  # vqvae / bert / UNet2DConditionModel
    return {"hfldm": tmp / "hfldm", "compvis": tmp / "compvis"}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return source_folders(tmp_path_factory.mktemp("sources"))


def sample(folder, steps: int = 3) -> np.ndarray:
    pipe = LatentDiffusionPipeline.from_pretrained(folder)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)  # train_ldm saves DDIM; compare alike
    pipe.set_progress_bar_config(disable=True)
    out = pipe(PROMPT, num_inference_steps=steps, generator=torch.manual_seed(0), output_type="np")
    return out.images


def unet_weights(folder) -> dict:
    return load_file(str(next((folder / "unet").glob("*.safetensors"))))


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["hfldm", "compvis"])
def test_fine_tunes_the_whole_pipeline(sources, digits, tmp_path, layout):
    source, out = sources[layout], tmp_path / "tuned"
    resolution = 32 if layout == "compvis" else RESOLUTION  # CompVis' tiny VQModel has f = 8
    run_script(
        "train_ldm.py",
        *flags(
            pretrained_model_name_or_path=source,
            train_data_dir=digits,
            resolution=resolution,
            max_train_steps=2,
            train_batch_size=4,
            learning_rate=1e-7,
            lr_warmup_steps=0,
            use_ema=False,
            validation_steps=0,
            report_to="none",
            output_dir=out,
        ),
    )
    before, after = (
        json.loads((source / "model_index.json").read_text()),
        json.loads((out / "model_index.json").read_text()),
    )
    assert after["text_attention_mask"] is (layout == "hfldm")  # CompVis attends to the padding
    vae = "vqvae" if layout == "compvis" else "vae"
    scale_before = json.loads((source / vae / "config.json").read_text()).get("scaling_factor", 1.0)
    assert json.loads((out / "vae" / "config.json").read_text())["scaling_factor"] == scale_before  # kept
    schedule = {
        k: json.loads((out / "scheduler" / "scheduler_config.json").read_text())[k]
        for k in ("beta_schedule", "beta_start", "beta_end", "num_train_timesteps", "prediction_type")
    }
    source_schedule = json.loads((source / "scheduler" / "scheduler_config.json").read_text())
    assert schedule == {k: source_schedule[k] for k in schedule}  # the pipeline's forward process
    assert before["_class_name"] != after["_class_name"] or layout == "hfldm"
    a, b = unet_weights(source), unet_weights(out)
    if layout == "hfldm":  # the same U-Net class: weights by name, moved a little by two small steps
        moved = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
        assert 0 < moved < 1e-4
    np.testing.assert_allclose(sample(out), sample(source), atol=2e-3)  # fine-tuned, not replaced
    card = (out / "README.md").read_text()
    assert f"base_model: {source}" in card and "![validation samples](samples.png)" in card
    assert "accelerate launch train_ldm.py --pretrained_model_name_or_path" in card
    assert f'DiffusionPipeline.from_pretrained("{out}"' in card  # the usage names where the folder is
    assert PIL.Image.open(out / "samples.png").size[0] > 0


def test_flags_that_the_pipeline_replaces_are_refused(sources, digits, tmp_path, autoencoder):
    for flag, value in [("autoencoder", autoencoder), ("text_encoder", "minilm")]:
        result = run_script(
            "train_ldm.py",
            *flags(
                pretrained_model_name_or_path=sources["hfldm"],
                train_data_dir=digits,
                resolution=RESOLUTION,
                output_dir=tmp_path / "x",
                **{flag: value},
            ),
            rc=2,
        )
        assert f"--{flag}: the part comes from --pretrained_model_name_or_path" in result.stderr
    result = run_script(
        "train_ldm.py",
        *flags(
            pretrained_model_name_or_path=sources["hfldm"],
            train_data_dir=digits,
            resolution=RESOLUTION,
            output_dir=tmp_path / "x",
            task="superres",
        ),
        rc=2,
    )
    assert "--task: superres trains a new U-Net" in result.stderr


def test_a_stream_gives_its_first_rows_captions_and_refuses_a_scratch_tokenizer(digits):
    import datasets

    from hfldm.training.data import STREAM_PEEK, captions, check_scratch_tokenizer

    rows = datasets.load_from_disk(str(digits))["train"]
    many = datasets.concatenate_datasets([rows] * 3)  # 288 rows: more than the peek
    assert captions(many.to_iterable_dataset(), "text") == captions(many, "text")[:STREAM_PEEK]
    with pytest.raises(ValueError, match="^--caption_column: the data has no column 'caption'"):
        captions(many.to_iterable_dataset(), "caption")
    with pytest.raises(ValueError, match="^--text_encoder: scratch trains its tokenizer on all captions"):
        check_scratch_tokenizer(many.to_iterable_dataset())
    check_scratch_tokenizer(many)  # a map-style dataset: fine


@pytest.mark.slow
def test_a_text_pipeline_fine_tunes_from_a_stream(sources, digits, tmp_path):
    """--streaming with a text model (τ_θ from the pipeline): it trains, validates on the stream's captions
    and saves; a scratch τ_θ on the same stream is refused in one line before any step."""
    out = tmp_path / "streamed"
    common = dict(train_data_dir=digits, resolution=RESOLUTION, max_train_steps=2, train_batch_size=4)
    common |= dict(learning_rate=1e-7, lr_warmup_steps=0, use_ema=False, validation_steps=0, report_to="none")
    run_script(
        "train_ldm.py",
        *flags(pretrained_model_name_or_path=sources["hfldm"], output_dir=out, streaming=True, **common),
    )
    assert (out / "model_index.json").is_file() and PIL.Image.open(out / "samples.png").size[0] > 0
    scratch = tmp_path / "scratch"
    flags_scratch = flags(text_encoder="scratch", output_dir=scratch, streaming=True, **common)
    result = run_script("train_ldm.py", *flags_scratch, "--autoencoder", str(sources["hfldm"] / "vae"), rc=2)
    assert "--text_encoder: scratch trains its tokenizer on all captions" in result.stderr
    assert not (scratch / "model_index.json").exists()
