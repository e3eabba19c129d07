"""The sketch task (LDM §4.3.2, hfldm.training.sketch) and LatentDiffusionSketchPipeline: edge maps and
doodles are deterministic and look like drawings, the condition is the doodle folded onto the latent grid,
a widened text U-Net draws exactly what the text model draws (step 0 of fine-tuning), the sketch steers a
perturbed one, a user's sketch of any size keeps its strokes, and bad input fails naming it."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from _ldm_fixtures import IMAGE_SIZE, perturb, sample, text_pipeline

from hfldm import LatentDiffusionSketchPipeline
from hfldm.pipelines.pipeline_latent_diffusion_sketch import sketch_condition
from hfldm.training.sketch import SketchTask, doodle, edge_f1, edge_map
from hfldm.training.task_registry import task_class
from hfldm.unets.concat import with_condition_channels


def square(size: int = 16, side: int = 8) -> torch.Tensor:
    """(1, 3, size, size) in [-1, 1]: a black square of `side` px on white."""
    x = torch.ones(1, 3, size, size)
    lo = (size - side) // 2
    x[..., lo : lo + side, lo : lo + side] = -1
    return x


def sketch_pipeline(text=None, zero_init: bool = False) -> LatentDiffusionSketchPipeline:
    """The tiny text model (f = 2) with its U-Net widened by f² = 4 sketch channels: zero (exactly the text
    model) or perturbed (the sketch changes the output)."""
    text = text or text_pipeline()
    unet = with_condition_channels(text.unet, 4).eval()
    if not zero_init:
        perturb(unet.conv_in, seed=5)
        unet.conv_in.weight.data[:, 4:] += 0.3
    pipe = LatentDiffusionSketchPipeline(text.vae, unet, text.scheduler, text.text_encoder, text.tokenizer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_edge_map_outlines_a_square_with_one_pixel_lines():
    edges = edge_map(square())[0, 0]
    # forward differences mark the last pixel before each change: rows / columns 3 and 11 of an 8 px square
    assert edges[3, 4:12].all() and edges[11, 4:12].all() and edges[4:12, 3].all() and edges[4:12, 11].all()
    assert int(edges.sum()) == 4 * 8 - 1  # two rows and two columns of 8 px, sharing the corner (11, 11)
    assert edge_map(torch.zeros(1, 3, 8, 8)).sum() == 0  # a flat image has no edges


def test_doodles_are_deterministic_per_generator_and_stay_near_the_edges():
    edges = edge_map(square(32, 16))[0]
    near = lambda m: torch.nn.functional.max_pool2d(m[None], 3, 1, 1)[0]  # noqa: E731 (within 1 px)
    doodles = [doodle(edges, torch.Generator().manual_seed(seed)) for seed in range(8)]
    assert torch.equal(doodle(edges, torch.Generator().manual_seed(3)), doodles[3])
    assert len({d.numpy().tobytes() for d in doodles}) >= 6  # each generator its own doodle
    precision = [float((d * near(edges)).sum() / d.sum()) for d in doodles]
    recall = [float((near(d) * edges).sum() / edges.sum()) for d in doodles]
    assert min(precision) > 0.8  # strokes stay within ~1 px of the edges they were drawn from
    assert min(recall) < 1.0 and np.mean(recall) > 0.8  # some strokes go missing, most stay


def test_task_condition_is_the_doodle_folded_onto_the_latent_grid_per_sample():
    task = SketchTask(downsample_factor=4, seed=0, process_index=0)
    x = torch.cat([square(32, 16), square(32, 8)])
    y = task.condition({"pixel_values": x}, micro_step=3, flip=None)
    strokes = task.strokes({"pixel_values": x}, micro_step=3, flip=None)
    assert y.shape == (2, 16, 8, 8) and task.condition_channels == 16
    assert torch.equal(torch.nn.functional.pixel_shuffle(y, 4), strokes)  # space-to-depth, lossless
    second = SketchTask(downsample_factor=4, seed=0, process_index=1)  # global index 1 = the first's second
    torch.testing.assert_close(second.strokes({"pixel_values": x[1:]}, 3, None), strokes[1:], rtol=0, atol=0)
    assert not torch.equal(task.strokes({"pixel_values": x}, 4, None), strokes)  # another step, other doodles
    assert task_class("sketch") is SketchTask


def test_edge_f1_is_one_for_the_same_image_and_low_for_a_blank_one():
    x = square(32, 16)
    assert edge_f1(x, edge_map(x)) == 1.0
    assert edge_f1(torch.ones_like(x), edge_map(x)) == 0.0
    shifted = torch.roll(x, 1, dims=-1)  # one pixel off: within the 1 px tolerance
    assert edge_f1(shifted, edge_map(x)) == 1.0 and edge_f1(shifted, edge_map(x), tolerance=0) < 0.5


def test_a_user_sketch_of_any_size_keeps_its_strokes_on_the_output_grid():
    pipe = sketch_pipeline()
    strokes = lambda image: torch.nn.functional.pixel_shuffle(pipe.prepare_sketch(image, 16, 16), 2)  # noqa: E731
    canvas = np.full((256, 256, 3), 255, np.uint8)
    canvas[100:103, 20:236] = 0  # a 3 px line on a large canvas
    line = strokes(PIL.Image.fromarray(canvas))
    assert (
        line.shape == (1, 1, 16, 16) and line[0, 0, 6, 1:15].all() and line.sum() == 14
    )  # px 20..235: blocks 1..14
    rgba = np.zeros((16, 16, 4), np.uint8)  # a transparent canvas (gradio's sketchpad) is white
    rgba[4, :, 3] = 255  # one opaque black row
    row = strokes(PIL.Image.fromarray(rgba, "RGBA"))
    assert row[0, 0, 4].all() and row.sum() == 16
    small = np.full((8, 8), 255, np.uint8)
    small[2] = 0  # a smaller sketch is enlarged by nearest neighbours: its row becomes rows 4 and 5
    assert strokes(small[..., None])[0, 0, 4:6].all() and strokes(small[..., None]).sum() == 32
    assert sketch_condition(row, 2).shape == (1, 4, 8, 8)


def test_widened_text_unet_draws_what_the_text_model_draws_and_the_sketch_steers_a_trained_one():
    text = text_pipeline()
    perturb(text.unet, seed=1)  # a zero-initialised U-Net outputs 0: compare real outputs
    blank = PIL.Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), "white")
    lines = PIL.Image.fromarray(
        np.where(np.arange(16)[:, None] % 4 == 0, 0, 255).repeat(16, 1).astype(np.uint8)
    )
    widened = sketch_pipeline(text, zero_init=True)
    reference = sample(text, prompt="cat face", guidance_scale=3.0)
    np.testing.assert_allclose(
        sample(widened, prompt="cat face", image=lines, guidance_scale=3.0), reference, atol=1e-6
    )
    steered = sketch_pipeline(text)
    with_lines, without = (sample(steered, prompt="cat face", image=im) for im in (lines, blank))
    assert np.abs(with_lines - without).max() > 1e-2
    np.testing.assert_array_equal(sample(steered, prompt="cat face", image=lines), with_lines)  # same seed


def test_one_sketch_for_many_prompts_or_one_per_prompt():
    pipe = sketch_pipeline()
    lines = PIL.Image.new("RGB", (32, 32), "white")
    out = sample(pipe, prompt=["cat face", "red apple"], image=lines, num_images_per_prompt=2)
    assert out.shape == (4, IMAGE_SIZE, IMAGE_SIZE, 3)
    with pytest.raises(ValueError, match="image has 3 images"):
        sample(pipe, prompt=["cat face", "red apple"], image=[lines] * 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "image: required"),
        ({"image": "doodle.png"}, "image"),
        ({"image": PIL.Image.new("RGB", (8, 8)), "height": 15}, "height"),
        ({"image": PIL.Image.new("RGB", (8, 8)), "num_inference_steps": 0}, "num_inference_steps"),
    ],
)
def test_bad_input_fails_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sketch_pipeline()(prompt="cat face", **kwargs)


def test_a_unet_without_sketch_channels_is_refused_naming_unet():
    text = text_pipeline()
    with pytest.raises(ValueError, match="unet: a sketch U-Net needs in_channels = out_channels \\+ 4"):
        LatentDiffusionSketchPipeline(text.vae, text.unet, text.scheduler, text.text_encoder, text.tokenizer)


def test_saves_and_loads_with_its_class(tmp_path):
    from hfldm.pipelines.loading import load_pipeline

    pipe = sketch_pipeline()
    pipe.save_pretrained(tmp_path / "sketch")
    loaded = load_pipeline(str(tmp_path / "sketch"), pipeline_class=LatentDiffusionSketchPipeline)
    assert type(loaded) is LatentDiffusionSketchPipeline
    lines = PIL.Image.new("RGB", (16, 16), "white")
    np.testing.assert_allclose(
        sample(loaded, prompt="cat face", image=lines),
        sample(pipe, prompt="cat face", image=lines),
        atol=1e-6,
    )


def test_cli_writes_the_pipeline_images_and_fails_in_one_line(tmp_path, capsys):
    from hfldm.cli import main as hfldm_main

    pipe = sketch_pipeline()
    pipe.save_pretrained(tmp_path / "model")
    doodle_png = tmp_path / "doodle.png"
    lines = np.full((64, 64), 255, np.uint8)
    lines[::8] = 0
    PIL.Image.fromarray(lines).save(doodle_png)
    common = ["sketch", "--model", str(tmp_path / "model"), "--steps", "3", "--dtype", "float32"]
    argv = [*common, "--image", str(doodle_png), "--prompt", "cat face", "--seed", "5", "--out"]
    capsys.readouterr()  # the saving's progress bars
    assert hfldm_main([*argv, str(tmp_path / "out.png")]) == 0
    expected = sample(pipe, seed=5, steps=3, prompt="cat face", image=PIL.Image.open(doodle_png))
    written = np.asarray(PIL.Image.open(tmp_path / "out.png"), np.float32) / 255
    assert np.abs(written - expected[0]).max() <= 1 / 255 + 1e-6
    capsys.readouterr()
    assert hfldm_main([*common, "--image", str(tmp_path / "none.png"), "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--image not found" in err and len(err.splitlines()) == 1 and not (tmp_path / "o.png").exists()
