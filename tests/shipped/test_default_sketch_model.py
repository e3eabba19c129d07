"""The bundled sketch model (emoji at 32 px, hfldm.training.sketch) loads as diffusers users load it, within
the 25 MB budget with the text model's autoencoder and τ_θ byte for byte, follows a held-out emoji's edge map
better than the text model does without it, and ships the code of this source."""

from pathlib import Path

import numpy as np
import pytest
import torch

MODEL = Path(__file__).resolve().parents[2] / "models" / "hfldm-emoji-sketch"
pytestmark = pytest.mark.skipif(not (MODEL / "model_index.json").is_file(), reason="no bundled sketch model")


@pytest.fixture(scope="module")
def pipe():
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(MODEL), trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_loads_as_the_shipped_fp16_pipeline(pipe):
    assert type(pipe).__name__ == "LatentDiffusionSketchPipeline"
    assert pipe.unet.config.in_channels == 4 + 16 and pipe.default_image_size() == (32, 32)
    assert sum(p.stat().st_size for p in MODEL.rglob("*") if p.is_file()) <= 25 * 2**20  # the budget
    text_model = MODEL.parent / "hfldm-emoji"
    for shared in ("vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        assert (MODEL / shared).read_bytes() == (text_model / shared).read_bytes()


def test_follows_the_sketch_more_than_the_text_model(pipe):
    """Four emoji drawn from a square-face sketch: their edges agree with it (F1 within 1 px) more than the
    text model's images of the same captions do."""
    from diffusers import DiffusionPipeline

    from hfldm.training.sketch import edge_f1

    sketch = np.ones((32, 32, 3), np.float32)
    sketch[6, 6:26] = sketch[25, 6:26] = sketch[6:26, 6] = sketch[6:26, 25] = 0  # a square outline
    sketch[12:15, 11:14] = sketch[12:15, 18:21] = 0  # eyes
    captions = ["grinning face", "cat face", "red heart", "sun"]
    generators = lambda: [torch.Generator().manual_seed(i) for i in range(4)]  # noqa: E731
    drawn = pipe(
        prompt=captions, image=sketch, num_inference_steps=20, generator=generators(), output_type="pt"
    ).images
    text = DiffusionPipeline.from_pretrained(str(MODEL.parent / "hfldm-emoji"), trust_remote_code=True)
    text.set_progress_bar_config(disable=True)
    plain = text(captions, num_inference_steps=20, generator=generators(), output_type="pt").images
    edges = torch.from_numpy(1 - sketch[..., 0]).expand(4, 1, 32, 32)
    f1_sketch, f1_text = edge_f1(drawn * 2 - 1, edges), edge_f1(plain * 2 - 1, edges)
    print(f"edge F1: sketch model {f1_sketch:.3f}, text model {f1_text:.3f}")
    assert f1_sketch > f1_text


def test_the_folder_ships_the_code_save_pretrained_writes_from_this_source(tmp_path):
    from _shipped_code import assert_ships_current_code

    from hfldm import LatentDiffusionSketchPipeline

    assert_ships_current_code(LatentDiffusionSketchPipeline, MODEL, tmp_path)
