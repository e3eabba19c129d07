"""CompVis' LDMs in diffusers' layout (LDMTextToImagePipeline, as CompVis/ldm-text2im-large-256) run in hfldm:
same images as diffusers' own pipeline, loaded directly or after `hfldm convert --from diffusers-ldm`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, UNet2DConditionModel, VQModel
from diffusers.pipelines.latent_diffusion.pipeline_latent_diffusion import (
    LDMBertConfig,
    LDMBertModel,
    LDMTextToImagePipeline,
)
from transformers import BertTokenizer

from hfldm import LatentDiffusionPipeline
from hfldm.cli import main

PROMPTS = ["a painting of a squirrel", "a red apple"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "painting", "of", "squirrel", "red", "apple"]
TOLERANCE = 1e-4  # max abs difference on [0, 1] images
STEPS = 4


def tiny_ldm_text_to_image(tmp: Path) -> LDMTextToImagePipeline:
    """A random LDMTextToImagePipeline with CompVis' layout: f = 8 VQModel (4×4×4 latents of 32×32 images),
    a 1-layer LDMBert, a cross-attention U-Net and the DDIM schedule of CompVis/ldm-text2im-large-256."""
    (tmp / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    # positional: transformers 5 ignores vocab_file=. model_max_length 6 would cut PROMPTS[0] (7 tokens);
    # LDMTextToImagePipeline pads and cuts at 77 whatever it says, so the conversion must record 77
    tokenizer = BertTokenizer(str(tmp / "vocab.txt"), model_max_length=6)
    assert len(tokenizer) == len(VOCAB)
    torch.manual_seed(0)
    vqvae = VQModel(
        block_out_channels=(8, 8, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        num_vq_embeddings=16,
        sample_size=32,
    )
    bert = LDMBertModel(
        LDMBertConfig(
            vocab_size=len(VOCAB),
            max_position_embeddings=77,
            encoder_layers=1,
            encoder_ffn_dim=32,
            encoder_attention_heads=2,
            head_dim=8,
            d_model=16,
            dropout=0.0,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=4,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
    )
    return LDMTextToImagePipeline(vqvae=vqvae, bert=bert, tokenizer=tokenizer, unet=unet, scheduler=scheduler)


@pytest.fixture(scope="module")
def ldm_folder(tmp_path_factory) -> Path:
    """The tiny LDMTextToImagePipeline saved as a folder, as a Hub download of CompVis' would be."""
    tmp = tmp_path_factory.mktemp("compvis")
    tiny_ldm_text_to_image(tmp).save_pretrained(tmp / "ldm")
    return tmp / "ldm"


def sample(pipe, guidance_scale: float = 1.0, eta: float = 0.0, generator=None) -> np.ndarray:
    """(2, 32, 32, 3) images in [0, 1] for PROMPTS; the default generator is torch's global one at seed 0."""
    pipe.set_progress_bar_config(disable=True)
    generator = generator if generator is not None else torch.manual_seed(0)
    return pipe(
        PROMPTS,
        num_inference_steps=STEPS,
        guidance_scale=guidance_scale,
        eta=eta,
        generator=generator,
        output_type="np",
    ).images


def test_loads_as_latent_diffusion_pipeline_with_the_text_convention_recorded(ldm_folder):
    pipe = LatentDiffusionPipeline.from_pretrained(ldm_folder)
    assert isinstance(pipe, LatentDiffusionPipeline)
    assert isinstance(pipe.vae, VQModel) and isinstance(pipe.text_encoder, LDMBertModel)
    assert isinstance(pipe.unet, UNet2DConditionModel) and isinstance(pipe.scheduler, DDIMScheduler)
    assert pipe.config.text_attention_mask is False
    assert pipe.tokenizer.model_max_length == 77
    assert pipe.default_image_size() == (32, 32)


@pytest.mark.parametrize("guidance_scale", [1.0, 4.0])
@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_same_images_as_ldm_text_to_image_pipeline(ldm_folder, guidance_scale, eta):
    """Same scheduler, steps, guidance, η and generator -> the same images. With η > 0, diffusers' pipeline
    draws DDIM's noise from torch's global generator (it does not pass `generator` to `step`), so the two
    agree for `torch.manual_seed(0)`; with η = 0 for any generator."""
    make_generator = (
        (lambda: torch.Generator().manual_seed(0)) if eta == 0 else (lambda: torch.manual_seed(0))
    )
    expected = sample(
        LDMTextToImagePipeline.from_pretrained(ldm_folder), guidance_scale, eta, make_generator()
    )
    got = sample(LatentDiffusionPipeline.from_pretrained(ldm_folder), guidance_scale, eta, make_generator())
    difference = np.abs(got - expected).max()
    print(f"guidance {guidance_scale}, eta {eta}: max abs difference {difference:.2e}")
    assert difference <= TOLERANCE
    # the test can fail: the prompt changes the image, far beyond the tolerance
    assert np.abs(expected[0] - expected[1]).max() > 100 * TOLERANCE


def test_the_recorded_text_convention_is_what_makes_the_images_match(ldm_folder):
    """hfldm's own convention draws other images: a mask on the padding, or the tokenizer's own
    model_max_length (6, which cuts PROMPTS[0])."""
    expected = sample(LDMTextToImagePipeline.from_pretrained(ldm_folder))
    pipe = LatentDiffusionPipeline.from_pretrained(ldm_folder)
    masked = LatentDiffusionPipeline(**pipe.components, text_attention_mask=True)
    assert np.abs(sample(masked) - expected).max() > 100 * TOLERANCE
    pipe.tokenizer.model_max_length = 6
    assert np.abs(sample(pipe) - expected).max() > 100 * TOLERANCE


REMOTE_LOAD = """
import sys, numpy as np, torch
from diffusers import DiffusionPipeline
pipe = DiffusionPipeline.from_pretrained(sys.argv[1], trust_remote_code=True)
pipe.set_progress_bar_config(disable=True)
images = pipe({prompts!r}, num_inference_steps={steps}, guidance_scale=4.0, eta=0.7,
              generator=torch.manual_seed(0), output_type="np").images
np.save(sys.argv[2], images)
print(type(pipe).__name__, type(pipe.text_encoder).__name__)
"""


def test_convert_round_trip(ldm_folder, tmp_path, capsys):
    out = tmp_path / "hfldm-ldm"
    assert main(["convert", "--from", "diffusers-ldm", str(ldm_folder), "--out", str(out)]) == 0
    assert "LatentDiffusionPipeline" in capsys.readouterr().out
    index = json.loads((out / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_latent_diffusion", "LatentDiffusionPipeline"]
    assert index["text_attention_mask"] is False and index["text_encoder"] == [
        "latent_diffusion",
        "LDMBertModel",
    ]
    assert json.loads((out / "tokenizer" / "tokenizer_config.json").read_text())["model_max_length"] == 77
    card = (out / "README.md").read_text()
    assert "trained with hfldm" not in card and str(ldm_folder) in card

    expected = sample(LDMTextToImagePipeline.from_pretrained(ldm_folder), guidance_scale=4.0, eta=0.7)
    np.testing.assert_allclose(
        sample(LatentDiffusionPipeline.from_pretrained(out), 4.0, 0.7), expected, atol=TOLERANCE
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    script = REMOTE_LOAD.format(prompts=PROMPTS, steps=STEPS)
    result = subprocess.run(
        [sys.executable, "-c", script, str(out), str(tmp_path / "images.npy")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "LatentDiffusionPipeline LDMBertModel" in result.stdout
    difference = np.abs(np.load(tmp_path / "images.npy") - expected).max()
    print(f"converted, fresh process, trust_remote_code: max abs difference {difference:.2e}")
    assert difference <= TOLERANCE


def run_convert(capsys, folder, out) -> tuple[int, str]:
    """(exit code, stderr) of `hfldm convert --from diffusers-ldm FOLDER --out OUT`."""
    capsys.readouterr()  # what the test printed before (progress bars) is not the command's
    code = main(["convert", "--from", "diffusers-ldm", str(folder), "--out", str(out)])
    return code, capsys.readouterr().err


def test_convert_names_a_missing_folder(tmp_path, capsys):
    code, err = run_convert(capsys, tmp_path / "nothing-here", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("hfldm convert: error: FOLDER: no such folder") and "nothing-here" in err
    (tmp_path / "empty").mkdir()
    code, err = run_convert(capsys, tmp_path / "empty", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and "FOLDER:" in err and "no model_index.json" in err


def test_convert_refuses_a_folder_of_another_pipeline_class(ldm_folder, tmp_path, capsys):
    hfldm_folder = tmp_path / "already-hfldm"
    LatentDiffusionPipeline.from_pretrained(ldm_folder).save_pretrained(hfldm_folder)
    code, err = run_convert(capsys, hfldm_folder, tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "FOLDER:" in err and "holds a LatentDiffusionPipeline, not a LDMTextToImagePipeline" in err
    assert not (tmp_path / "out").exists()


def test_convert_refuses_to_overwrite(ldm_folder, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    code, err = run_convert(capsys, ldm_folder, tmp_path / "out")
    assert code == 2 and err.startswith("hfldm convert: error: --out:") and err.count("\n") == 1


def test_convert_of_an_unreachable_hub_id_is_one_line(tmp_path):
    """The real entry point, offline: exit 2, one line on stderr naming FOLDER, before any weights."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    command = ["convert", "--from", "diffusers-ldm", "nobody/no-such-ldm", "--out", str(tmp_path / "out")]
    result = subprocess.run(
        [sys.executable, "-m", "hfldm.cli", *command], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("hfldm convert: error: FOLDER: could not fetch model_index.json")
