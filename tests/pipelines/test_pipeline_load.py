"""Saved LatentDiffusionPipeline folders: fresh-process loads (remote code, custom_pipeline), bf16, CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from _ldm_fixtures import IMAGE_SIZE, class_pipeline, sample, text_pipeline
from diffusers import DiffusionPipeline
from diffusers.utils import logging as diffusers_logging

from hfldm import LatentDiffusionPipeline
from hfldm.cli import main as hfldm_main
from hfldm.pipelines.loading import load_pipeline
from hfldm.pipelines.self_contained import flat_source
from hfldm.precision import default_dtype, half_precision, has_fast_bf16, resolve_dtype

FP32 = ["--dtype", "float32"]  # as the pipeline it is compared with: --dtype auto is bf16 on bf16 CPUs
CALLS = {"text": {"prompt": "cat face"}, "class": {"class_labels": ["dog face"]}}

# Loads each (name, folder, from_pretrained kwargs, call kwargs) job in a fresh interpreter, then samples.
LOADER = """
import json, sys
import numpy as np, torch
from diffusers import DiffusionPipeline
jobs, images, classes = json.loads(sys.argv[1]), {}, {}
for name, folder, load_kwargs, call_kwargs in jobs:
    pipe = DiffusionPipeline.from_pretrained(folder, **load_kwargs)
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(0)
    images[name] = pipe(num_inference_steps=4, generator=generator, output_type="np", **call_kwargs).images
    classes[name] = [type(pipe).__name__, type(pipe).__module__, type(pipe.unet).__module__]
np.savez(sys.argv[2], **images)
print(json.dumps(classes))
"""


def _env(tmp: Path) -> dict:
    # own module cache: diffusers copies remote code to HF_MODULES_CACHE/diffusers_modules/local/
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "HF_MODULES_CACHE": str(tmp / "modules"),
    }


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{"text" | "class": (folder, images of the in-process original for seed 0)}."""
    root = tmp_path_factory.mktemp("saved")
    folders = {}
    for kind, make in (("text", text_pipeline), ("class", class_pipeline)):
        pipe = make()
        pipe.save_pretrained(root / kind)
        folders[kind] = (root / kind, sample(pipe, **CALLS[kind]))
    return folders


def test_saved_folder_layout(saved):
    folder = saved["class"][0]
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_latent_diffusion", "LatentDiffusionPipeline"]
    # hfldm's components point at the code shipped in their sub-folders (test_self_contained.py)
    assert index["unet"] == ["unet_hfldm", "ConditionalUNet"]
    assert index["vae"] == ["vae_hfldm", "KLAutoencoder"]
    assert index["scheduler"] == ["scheduler_hfldm", "DDPMScheduler"]
    assert index["id2label"] == {"0": "cat face", "1": "dog face", "2": "red apple"}
    shipped = folder / "hfldm_pipelines_pipeline_latent_diffusion.py"  # the pipeline's code, imports relative
    assert shipped.read_text() == flat_source("hfldm.pipelines.pipeline_latent_diffusion")
    assert (
        "hfldm_pipelines_pipeline_latent_diffusion import"
        in (folder / "pipeline_latent_diffusion.py").read_text()
    )
    from huggingface_hub import ModelCard

    card = ModelCard.load(folder / "README.md")  # the metadata as the Hub reads it
    assert (
        card.data.library_name == "diffusers" and card.data.pipeline_tag == "unconditional-image-generation"
    )
    assert {"diffusers", "latent-diffusion", "hfldm", "class-conditional"} <= set(card.data.tags)
    assert f'from_pretrained("{folder}", trust_remote_code=True)' in card.text  # the folder, no placeholder
    text_index = json.loads((saved["text"][0] / "model_index.json").read_text())
    assert (
        text_index["text_encoder"] == ["transformers", "DistilBertModel"]
        and text_index["tokenizer"][0] == "transformers"
    )
    assert "pipeline_tag: text-to-image" in (saved["text"][0] / "README.md").read_text()


def test_fresh_process_loads_reproduce_the_images(saved, tmp_path):
    """trust_remote_code=True (text and class) and custom_pipeline=<file> load in a new interpreter and give
    the same images for the same seed as the original pipeline; the components are the folder's code."""
    # a folder without its pipeline file: the pipeline class comes from custom_pipeline=, another folder's
    # file. The components still come from the folder's own code, so pipelines/pipeline_latent_diffusion.py
    # of an installed hfldm would mix two copies of the classes; hfldm's own from_pretrained loads those.
    bare = tmp_path / "bare"
    shutil.copytree(saved["text"][0], bare)
    (bare / "pipeline_latent_diffusion.py").unlink()
    entry = saved["class"][0] / "pipeline_latent_diffusion.py"
    remote = {"trust_remote_code": True}
    jobs = [
        ("text", str(saved["text"][0]), remote, CALLS["text"]),
        ("class", str(saved["class"][0]), remote, CALLS["class"]),
        ("custom", str(bare), {**remote, "custom_pipeline": str(entry)}, CALLS["text"]),
    ]
    result = subprocess.run(
        [sys.executable, "-c", LOADER, json.dumps(jobs), str(tmp_path / "images.npz")],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    classes = json.loads(result.stdout.strip().splitlines()[-1])
    images = np.load(tmp_path / "images.npz")
    for name, kind in (("text", "text"), ("class", "class"), ("custom", "text")):
        assert classes[name][0] == "LatentDiffusionPipeline"
        assert classes[name][1].startswith("diffusers_modules.")  # the folder's / the given file's code
        assert classes[name][2] == "diffusers_modules.local.hfldm_unets_unet"  # unet/unet_hfldm.py's
        np.testing.assert_allclose(images[name], saved[kind][1], atol=1e-6)


def test_class_loads_without_remote_code(saved):
    folder, original = saved["class"]
    pipe = LatentDiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe) is LatentDiffusionPipeline and pipe.label2id["dog face"] == 1
    np.testing.assert_allclose(sample(pipe, **CALLS["class"]), original, atol=1e-6)
    # DiffusionPipeline itself refuses to run the folder's code unless asked to
    with pytest.raises(ValueError, match="trust_remote_code"):
        DiffusionPipeline.from_pretrained(folder)


@pytest.mark.parametrize("dtype_kwarg", ["dtype", "torch_dtype"])
def test_bfloat16_load_and_generate_on_cpu(saved, dtype_kwarg):
    folder, original = saved["text"]
    pipe = LatentDiffusionPipeline.from_pretrained(folder, **{dtype_kwarg: torch.bfloat16})
    pipe.set_progress_bar_config(disable=True)
    assert {pipe.unet.dtype, pipe.vae.dtype, pipe.text_encoder.dtype} == {torch.bfloat16}
    images = sample(pipe, **CALLS["text"])
    assert images.dtype == np.float32 and np.isfinite(images).all()
    assert np.abs(images - original).max() < 0.05  # bf16 keeps ~3 significant digits


def test_half_precision_keeps_the_latents_and_the_decode_in_float32(saved, capfd):
    """hfldm.precision.half_precision: U-Net and τ_θ in bf16, the autoencoder in fp32; z_t and the scheduler's
    arithmetic stay fp32 in every pipeline (a bf16 z_t would round away the last steps' small updates)."""
    folder, original = saved["text"]
    pipe = LatentDiffusionPipeline.from_pretrained(folder)
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_warning()
    capfd.readouterr()
    try:
        pipe = half_precision(pipe, torch.bfloat16)
    finally:
        diffusers_logging.set_verbosity(verbosity)
    assert "Casting" not in capfd.readouterr().err  # none of diffusers' warnings on ModelMixin.to(dtype)
    pipe.set_progress_bar_config(disable=True)
    assert (pipe.unet.dtype, pipe.text_encoder.dtype, pipe.vae.dtype) == (torch.bfloat16,) * 2 + (
        torch.float32,
    )
    seen = []

    def record(_pipe, _i, _t, tensors):
        seen.append(tensors["latents"].dtype)
        return tensors

    images = sample(pipe, **CALLS["text"], callback_on_step_end=record)
    assert seen and set(seen) == {torch.float32}
    assert np.abs(images - original).max() < 0.05
    # the CLI's, the demo's and the Space's loader does the same
    loaded = load_pipeline(str(folder), dtype=torch.bfloat16)
    assert (loaded.unet.dtype, loaded.text_encoder.dtype, loaded.vae.dtype) == (torch.bfloat16,) * 2 + (
        torch.float32,
    )


def test_dtype_names_and_the_hardware_default():
    assert resolve_dtype("auto") == default_dtype() == (torch.bfloat16 if has_fast_bf16() else torch.float32)
    assert resolve_dtype("bfloat16") == torch.bfloat16 and resolve_dtype("float32") == torch.float32
    with pytest.raises(ValueError, match="--dtype: expected auto"):
        resolve_dtype("half")
    with pytest.raises(ValueError, match="--dtype: float16 needs a GPU"):
        resolve_dtype("float16", device="cpu")


def _png(path: Path) -> np.ndarray:
    return np.asarray(PIL.Image.open(path).convert("RGB"))


def test_cli_writes_the_pipeline_images_as_a_grid(saved, tmp_path):
    folder = saved["text"][0]
    out = tmp_path / "grid.png"
    argv = ["generate", "--model", str(folder), "--prompt", "cat face", "--steps", "4", "--num-images", "2"]
    assert hfldm_main([*argv, "--seed", "0", "--out", str(out), *FP32]) == 0
    pipe = LatentDiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    expected = [
        np.asarray(im) for im in sample(pipe, prompt="cat face", num_images_per_prompt=2, output_type="pil")
    ]
    np.testing.assert_array_equal(_png(out), np.concatenate(expected, axis=1))  # 1 row × 2 columns


def test_cli_class_labels_and_scheduler(saved, tmp_path):
    out = tmp_path / "classes.png"
    argv = ["generate", "--model", str(saved["class"][0]), "--class-label", "dog face", "--class-label", "0"]
    assert hfldm_main([*argv, "--steps", "3", "--scheduler", "dpm", "--no-captions", "--out", str(out)]) == 0
    assert _png(out).shape == (IMAGE_SIZE, 2 * IMAGE_SIZE, 3)  # one image per label: a row, not a strip


def test_cli_bad_inputs_give_one_line_errors(saved, tmp_path, capsys):
    argv = [
        "generate",
        "--model",
        str(saved["class"][0]),
        "--class-label",
        "unicorn",
        "--out",
        str(tmp_path / "x.png"),
    ]
    assert hfldm_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("hfldm generate: error: class_labels: unknown class name 'unicorn'")
        and "\n" not in err
    )
    # a missing folder, in a fresh process: exit code 2, one line on stderr, no traceback
    command = ["generate", "--model", str(tmp_path / "missing"), "--out", str(tmp_path / "x.png")]
    result = subprocess.run(
        [sys.executable, "-m", "hfldm.cli", *command],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"hfldm generate: error: model folder not found: {tmp_path / 'missing'}"
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--image", "NOT_AN_IMAGE"], "--image: "),
        (["--device", "bogus"], "--device: 'bogus' is not a torch device"),
        (["--device", "cuda"], "--device: cuda asked for, but torch sees no CUDA GPU here"),
        (
            ["--num-images", "300"],
            "--num-images: 1 prompt(s) × 300 = 300 images is more than --max-images 256",
        ),
    ],
)
def test_cli_refuses_before_sampling_in_one_line(saved, tmp_path, capsys, extra, message):
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not an image")
    extra = [str(not_an_image) if e == "NOT_AN_IMAGE" else e for e in extra]
    argv = [
        "generate",
        "--model",
        str(saved["text"][0]),
        "--prompt",
        "cat face",
        "--out",
        str(tmp_path / "x.png"),
    ]
    assert hfldm_main([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hfldm generate: error: {message}") and "\n" not in err, err
    assert not (tmp_path / "x.png").exists()


def test_cli_batches_large_requests_reproducibly(saved, tmp_path):
    """--batch-size splits the request into pipeline calls; the same seed and batch size give the same grid,
    and a batch as large as the request gives what one call gives."""
    folder = saved["text"][0]
    argv = ["generate", "--model", str(folder), "--prompt", "cat face", "--prompt", "dog", "--steps", "2"]
    argv += ["--num-images", "3", "--seed", "0", "--no-captions", *FP32]
    grids = {}
    for name, batch in (("one-call", "6"), ("batched", "2"), ("batched-again", "2")):
        assert hfldm_main([*argv, "--batch-size", batch, "--out", str(tmp_path / f"{name}.png")]) == 0
        grids[name] = _png(tmp_path / f"{name}.png")
    assert grids["one-call"].shape == grids["batched"].shape == (2 * IMAGE_SIZE, 3 * IMAGE_SIZE, 3)
    np.testing.assert_array_equal(grids["batched"], grids["batched-again"])
    pipe = LatentDiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    one_call = sample(pipe, steps=2, prompt=["cat face", "dog"], num_images_per_prompt=3, output_type="pil")
    rows = [np.concatenate([np.asarray(im) for im in one_call[i : i + 3]], axis=1) for i in (0, 3)]
    np.testing.assert_array_equal(grids["one-call"], np.concatenate(rows, axis=0))


def test_img2img_converts_grayscale_and_rgba_images(saved):
    """image= of any PIL mode is converted to RGB (transparency on white), as the training data are."""
    pipe = LatentDiffusionPipeline.from_pretrained(saved["text"][0])
    pipe.set_progress_bar_config(disable=True)
    rgb = PIL.Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (200, 30, 30))
    transparent = PIL.Image.new("RGBA", (IMAGE_SIZE, IMAGE_SIZE), (0, 0, 0, 0))
    white = PIL.Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255))
    kwargs = dict(prompt="cat face", strength=0.5, num_inference_steps=4, output_type="np")
    for image, same_as in ((rgb.convert("L"), rgb.convert("L").convert("RGB")), (transparent, white)):
        out = pipe(image=image, generator=torch.Generator().manual_seed(0), **kwargs).images
        expected = pipe(image=same_as, generator=torch.Generator().manual_seed(0), **kwargs).images
        np.testing.assert_array_equal(out, expected)


def test_the_card_names_the_hub_repo_it_is_pushed_to(saved, tmp_path, monkeypatch):
    """save_pretrained(push_to_hub=True, repo_id=...) writes a card whose usage snippet names that repo id
    (the upload itself is replaced: no Hub here)."""
    from huggingface_hub import ModelCard

    import hfldm.pipelines.saving as saving

    pushed = []
    monkeypatch.setattr(saving, "push_folder_to_hub", lambda folder, **kw: pushed.append((folder, kw)))
    pipe = LatentDiffusionPipeline.from_pretrained(saved["text"][0])
    pipe.save_pretrained(tmp_path / "out", push_to_hub=True, repo_id="someone/tiny-ldm")
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert 'from_pretrained("someone/tiny-ldm", trust_remote_code=True)' in card.text
    assert "path/to" not in card.text and card.data.pipeline_tag == "text-to-image"
    assert pushed == [(tmp_path / "out", {"repo_id": "someone/tiny-ldm"})]


def test_cli_compile_without_a_compiler_is_one_line(saved, tmp_path, capsys, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    argv = ["generate", "--model", str(saved["text"][0]), "--prompt", "cat", "--compile"]
    assert hfldm_main([*argv, "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("hfldm generate: error: --compile: torch.compile needs a C++ compiler")
        and "\n" not in err
    )
