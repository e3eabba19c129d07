"""The Space's Sketch tab (space/sketch_tab.py): the drawing is the pipeline's `image` (layers over white when
an API call sends no composite), the result is the pipeline's for the same seed, an empty canvas is one clear
message; and /sketch through gradio_client on a running Space."""

from __future__ import annotations

import sys

import numpy as np
import PIL.Image
import PIL.ImageDraw
import pytest
from _ldm_fixtures import IMAGE_SIZE, perturb, text_pipeline
from _space_fixtures import APP, SpaceProcess, save_tiny_pipeline

from hfldm import LatentDiffusionSketchPipeline
from hfldm.unets.concat import with_condition_channels

gradio_client = pytest.importorskip("gradio_client")
sys.path.insert(0, str(APP.parent))
sketch_tab = pytest.importorskip("sketch_tab")
from request_limits import Limits  # noqa: E402


def tiny_sketch_pipeline() -> LatentDiffusionSketchPipeline:
    text = text_pipeline()
    unet = perturb(with_condition_channels(text.unet, 4), seed=3).eval()
    pipe = LatentDiffusionSketchPipeline(text.vae, unet, text.scheduler, text.text_encoder, text.tokenizer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def strokes_layer(size: int = 64) -> PIL.Image.Image:
    """A transparent layer with a black circle drawn on it, as the Sketchpad's brush leaves it."""
    layer = PIL.Image.new("RGBA", (size, size), (0, 0, 0, 0))
    PIL.ImageDraw.Draw(layer).ellipse((8, 8, size - 8, size - 8), outline=(0, 0, 0, 255), width=4)
    return layer


def test_the_drawing_is_the_pipelines_image_and_an_empty_canvas_is_one_message():
    import torch

    pipe = tiny_sketch_pipeline()
    value = {"background": None, "layers": [strokes_layer()], "composite": None}
    drawn = sketch_tab.drawing(value)
    assert drawn.mode == "RGB" and np.asarray(drawn)[0, 0].tolist() == [255, 255, 255]  # white canvas
    assert (np.asarray(drawn.convert("L")) < 128).sum() > 100  # the circle
    out = sketch_tab.sketch(pipe, Limits(), value, "cat face", steps=2, seed=4)
    expected = pipe(
        prompt="cat face", image=drawn, num_inference_steps=2, generator=torch.Generator().manual_seed(4)
    ).images[0]
    assert out.size == (IMAGE_SIZE, IMAGE_SIZE)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(expected))
    blank = {"background": None, "layers": [PIL.Image.new("RGBA", (64, 64))], "composite": None}
    for empty, message in ((None, "Draw a sketch first"), (blank, "The canvas is empty")):
        with pytest.raises(ValueError, match=message):
            sketch_tab.sketch(pipe, Limits(), empty, "cat face")


def test_sketch_endpoint_through_gradio_client(tmp_path_factory):
    from gradio_client import handle_file

    root = tmp_path_factory.mktemp("space-sketch")
    tiny_sketch_pipeline().save_pretrained(root / "sketch")
    strokes_layer().save(root / "layer.png")
    space = SpaceProcess(
        save_tiny_pipeline(root / "model"), root / "server", HFLDM_SKETCH_MODEL=str(root / "sketch")
    )
    try:
        client = gradio_client.Client(
            space.url(), analytics_enabled=False, download_files=str(root), verbose=False
        )
        value = {"background": None, "layers": [handle_file(str(root / "layer.png"))], "composite": None}
        out = client.predict(image=value, prompt="cat face", steps=2, api_name="/sketch")
        assert PIL.Image.open(out).size == (IMAGE_SIZE, IMAGE_SIZE)
        with pytest.raises(Exception, match="Draw a sketch first"):
            client.predict(image={"background": None, "layers": [], "composite": None}, api_name="/sketch")
    finally:
        space.stop()
