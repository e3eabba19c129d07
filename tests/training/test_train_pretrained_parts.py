"""Parts of the ecosystem in train_ldm.py: diffusers' AutoencoderKL and VQModel, transformers' CLIPTextModel,
each saved as a tiny random folder (conftest's `parts`; no Hub access here), trained on for a few steps, then
the saved pipeline generates in a fresh process. Bad parts: tests/training/test_training_args.py."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from _training_helpers import ENV, RESOLUTION, flags, ldm_args, run_script


def generate_in_fresh_process(folder) -> np.ndarray:
    code = (
        "import sys, numpy as np, torch; from diffusers import DiffusionPipeline; "
        "pipe = DiffusionPipeline.from_pretrained(sys.argv[1], trust_remote_code=True); "
        "kw = {'prompt': ['digit 3']} if pipe.text_encoder is not None else {'class_labels': [3]}; "
        "out = pipe(**kw, num_inference_steps=3, generator=torch.manual_seed(0), output_type='np'); "
        "np.save(sys.argv[2], out.images)"
    )
    out = folder / "sample.npy"
    subprocess.run([sys.executable, "-c", code, str(folder), str(out)], check=True, env=ENV, timeout=300)
    return np.load(out)


@pytest.mark.slow
@pytest.mark.parametrize(
    "autoencoder, text",
    [("sd-like-vae", "clip"), ("vqmodel", None)],
    ids=["AutoencoderKL+CLIPTextModel", "VQModel+class"],
)
def test_training_starts_from_pretrained_parts(parts, digits, tmp_path, autoencoder, text):
    out = tmp_path / "ldm"
    conditioning = ["--text_encoder", str(parts / text)] if text else ["--label_column", "label"]
    extra = flags(max_train_steps=4, train_batch_size=8, max_samples=32)
    result = run_script("train_ldm.py", *ldm_args(digits, parts / autoencoder, out), *conditioning, *extra)
    assert "saved the pipeline" in result.stdout + result.stderr
    index = json.loads((out / "model_index.json").read_text())
    assert index["vae"][1] == ("AutoencoderKL" if autoencoder == "sd-like-vae" else "VQModel")
    if text:
        assert index["text_encoder"][1] == "CLIPTextModel" and index["tokenizer"][1] == "CLIPTokenizer"
        unet = json.loads((out / "unet" / "config.json").read_text())
        assert unet["cross_attention_dim"] == 32 and unet["in_channels"] == 2
    images = generate_in_fresh_process(out)
    assert images.shape == (1, RESOLUTION, RESOLUTION, 3) and np.isfinite(images).all() and images.std() > 0
