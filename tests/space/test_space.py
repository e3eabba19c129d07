"""The Gradio Space (space/app.py): server-side limits, reproducible seeds, progress per denoising step, the
class-conditional variant, and the running app called through gradio_client."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from _ldm_fixtures import ID2LABEL
from _space_fixtures import (
    APP,
    CAPTIONS,
    IMAGE_SIZE,
    SpaceProcess,
    editor_value,
    save_tiny_inpaint_pipeline,
    save_tiny_pipeline,
    save_tiny_sr_pipeline,
)

gradio_client = pytest.importorskip("gradio_client")
sys.path.insert(0, str(APP.parent))
app = pytest.importorskip("app")
import inpaint_tab  # noqa: E402
import optional_models  # noqa: E402
import upscale_tab  # noqa: E402
from request_limits import Limits  # noqa: E402

CLASSES = list(ID2LABEL.values())


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("space") / "model")


@pytest.fixture(scope="module")
def sr_dir(tmp_path_factory) -> Path:
    return save_tiny_sr_pipeline(tmp_path_factory.mktemp("space") / "sr_model")


@pytest.fixture(scope="module")
def inpaint_dir(tmp_path_factory) -> Path:
    return save_tiny_inpaint_pipeline(tmp_path_factory.mktemp("space") / "inpaint_model")


@pytest.fixture(scope="module", autouse=True)
def space(model_dir, sr_dir, inpaint_dir, tmp_path_factory):
    """The app in a subprocess, started before the in-process tests so that its slow imports overlap them."""
    space = SpaceProcess(
        model_dir,
        tmp_path_factory.mktemp("server"),
        HFLDM_MAX_IMAGES="3",
        HFLDM_QUEUE_SIZE="1",
        HFLDM_SR_MODEL=str(sr_dir),
        HFLDM_INPAINT_MODEL=str(inpaint_dir),
    )
    yield space
    space.stop()


@pytest.fixture(scope="module")
def pipe(model_dir):
    return app.serving_pipeline(str(model_dir))


@pytest.fixture(scope="module")
def class_pipe(tmp_path_factory):
    folder = save_tiny_pipeline(tmp_path_factory.mktemp("space") / "class_model", class_conditional=True)
    return app.serving_pipeline(str(folder))


def pixels(images: list[PIL.Image.Image]) -> np.ndarray:
    return np.stack([np.asarray(image) for image in images])


# 1. in-process: generate() and its checks -------------------------------------------------------------------


def test_limits_come_from_env():
    limits = Limits.from_env({"HFLDM_MAX_STEPS": "7", "HFLDM_MAX_IMAGES": "2", "PATH": "/bin"})
    assert (limits.max_steps, limits.max_images, limits.max_size) == (7, 2, Limits().max_size)
    with pytest.raises(ValueError, match="HFLDM_MAX_SIZE must be a number"):
        Limits.from_env({"HFLDM_MAX_SIZE": "big"})
    with pytest.raises(ValueError, match="HFLDM_QUEUE_SIZE must be positive"):
        Limits.from_env({"HFLDM_QUEUE_SIZE": "0"})


@pytest.mark.parametrize(
    "request_, message",
    [
        (dict(steps=10_000), "Steps must be between 1 and 100, got 10000"),
        (dict(steps=2.5), "Steps must be a whole number"),
        (dict(num_images=9), "Number of images must be between 1 and 8, got 9"),
        (dict(size=18), "Image size must be a multiple of 4 up to 256 pixels, got 18"),
        (dict(size=512), "Image size must be a multiple of 4 up to 256 pixels, got 512"),
        (dict(size=24), "Image size 24 px: this model draws 16 px"),
        (dict(prompt="cat \ud800"), "Prompt contains characters that are not valid Unicode text"),
        (dict(steps="ten"), "Steps must be a whole number, got 'ten'"),
        (dict(seed=float("nan")), "Seed must be a whole number, got nan"),
        (dict(guidance_scale=None), "Guidance scale must be a finite number, got None."),
        (dict(negative_prompt="x" * 301), "Negative prompt is 301 characters long; the limit is 300"),
        (dict(guidance_scale=50.0), "Guidance scale must be between 0 and 20.0"),
        (dict(seed=-1), "Seed must be between 0 and"),
        (dict(scheduler="PNDM"), "Unknown scheduler 'PNDM'; choose one of DDPM, DDIM, DPM-Solver, Euler"),
        (dict(prompt="x" * 301), "Prompt is 301 characters long; the limit is 300"),
        (  # within every single limit, but about 40 minutes of this CPU: the work bound says so
            dict(steps=100, num_images=8, size=256),
            "This request is 100 steps × 8 images × 256² pixels = 52.4 M pixel-steps; this Space serves "
            "up to 3.0 M per request",
        ),
    ],
)
def test_generate_refuses_requests_beyond_the_limits_before_sampling(pipe, request_, message):
    calls = []
    with pytest.raises(ValueError, match=message):
        app.generate(pipe, Limits(), **{"prompt": "cat face", "steps": 2, **request_}, progress=calls.append)
    assert calls == []  # refused before the first denoising step


@pytest.mark.parametrize("scheduler", list(app.SCHEDULERS))
def test_generate_is_reproducible_and_reports_each_step(pipe, scheduler):
    calls = []
    kw = dict(prompt="cat face", steps=3, scheduler=scheduler, num_images=2)
    first = app.generate(pipe, Limits(), seed=5, progress=lambda p, desc: calls.append(p), **kw)
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert type(pipe.scheduler) is app.SCHEDULERS[scheduler]
    assert [im.size for im in first] == [(IMAGE_SIZE, IMAGE_SIZE)] * 2 and first[0].mode == "RGB"
    np.testing.assert_array_equal(pixels(app.generate(pipe, Limits(), seed=5, **kw)), pixels(first))
    other = pixels(app.generate(pipe, Limits(), seed=6, **kw)).astype(float)
    assert np.abs(other - pixels(first)).mean() > 1.0  # another seed, other images
    assert pixels(first).std() > 1.0  # not blank


def test_switching_schedulers_keeps_the_model_schedule(pipe):
    first = pixels(app.generate(pipe, Limits(), prompt="cat face", steps=4, scheduler="DDPM", seed=1))
    config = dict(pipe.scheduler.config)
    for scheduler in ("DPM-Solver", "Euler", "DDIM"):
        app.generate(pipe, Limits(), prompt="cat face", steps=2, scheduler=scheduler)
    again = pixels(app.generate(pipe, Limits(), prompt="cat face", steps=4, scheduler="DDPM", seed=1))
    np.testing.assert_array_equal(again, first)
    assert dict(pipe.scheduler.config) == config


def test_generate_native_size_and_empty_prompt(pipe, sr_pipe):
    images = app.generate(pipe, Limits(), prompt="  ", steps=2, num_images=3)  # "" = unconditional
    assert [im.size for im in images] == [(IMAGE_SIZE, IMAGE_SIZE)] * 3  # the model's native size
    assert app.working_sizes(pipe) == [IMAGE_SIZE]
    upscaled = app.generate(pipe, Limits(), prompt="cat face", steps=2, num_images=2, seed=3, sr_pipe=sr_pipe)
    small = app.generate(pipe, Limits(), prompt="cat face", steps=2, num_images=2, seed=3)
    expected = [upscale_tab.upscale(sr_pipe, Limits(), im, 2, 3 + i) for i, im in enumerate(small)]
    np.testing.assert_array_equal(pixels(upscaled), pixels(expected))  # the cascade, image i from seed + i
    assert upscaled[0].size == (2 * IMAGE_SIZE, 2 * IMAGE_SIZE)


def test_class_conditional_model_uses_a_class_menu(class_pipe):
    assert not class_pipe.is_text_conditional and list(class_pipe.label2id) == CLASSES
    images = app.generate(class_pipe, Limits(), class_name="dog face", steps=2, num_images=2, seed=1)
    assert [im.size for im in images] == [(IMAGE_SIZE, IMAGE_SIZE)] * 2
    with pytest.raises(ValueError, match="Unknown class 'dog'"):
        app.generate(class_pipe, Limits(), class_name="dog", steps=2)
    assert app.example_captions(class_pipe, "unused") == CLASSES
    components = app.build_demo(class_pipe, Limits(), CLASSES).config["components"]
    menu = next(c for c in components if c["props"].get("label") == "Class")
    prompt = next(c for c in components if c["props"].get("label") == "Prompt")
    assert menu["props"]["visible"] is True and prompt["props"]["visible"] is False
    assert [choice[0] for choice in menu["props"]["choices"]] == CLASSES


@pytest.mark.parametrize("model", ["pipe", "class_pipe"])
def test_warm_up_samples_the_first_example_once(model, request, capsys):
    pipe = request.getfixturevalue(model)
    calls = []
    hook = pipe.unet.register_forward_hook(lambda _m, args, _out: calls.append(args[0].shape[0]))
    try:
        app.warm_up(pipe, Limits(), app.example_captions(pipe, "unused")).join(60)
        app.warm_up(pipe, Limits(), []).join(60)  # no examples: a text model warms up unconditionally
    finally:
        hook.remove()
    # 2 steps × 4 images of the first example, guided (CFG doubles the U-Net batch); with no examples a text
    # model samples unconditionally (no guidance), a class model skips with one line instead of raising
    if model == "pipe":
        assert calls == [8, 8, 4, 4]
    else:
        assert calls == [8, 8] and "warm-up skipped" in capsys.readouterr().out


def test_examples_and_queue_settings(pipe, model_dir):
    assert app.example_captions(pipe, str(model_dir)) == CAPTIONS[:3]  # the folder's example_captions.txt
    assert app.example_captions(pipe, str(model_dir / "nowhere")) == app.HELD_OUT_CAPTIONS
    demo = app.build_demo(pipe, Limits(max_images=3, queue_size=5))
    assert demo._queue.max_size == 5 and demo._queue.default_concurrency_limit == 1
    sliders = {c["props"]["label"]: c["props"] for c in demo.config["components"] if c["type"] == "slider"}
    assert sliders["Images"]["maximum"] == 3 and sliders["Steps"]["maximum"] == 100


def test_missing_default_model_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(app, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(app, "SPACE_DIR", tmp_path / "space")
    with pytest.raises(SystemExit, match="set HFLDM_MODEL to a pipeline folder or a Hugging Face Hub id"):
        app.model_source({})
    assert app.model_source({"HFLDM_MODEL": "someone/model"}) == "someone/model"
    (tmp_path / app.DEFAULT_MODEL).mkdir(parents=True)
    (tmp_path / app.DEFAULT_MODEL / "model_index.json").write_text("{}")
    assert app.model_source({}) == str(tmp_path / app.DEFAULT_MODEL)


# 2. the running app, through its API ------------------------------------------------------------------------


def predict(client, prompt="cat face", steps=3, seed=7, n=2, size=IMAGE_SIZE, scheduler="DDIM"):
    """(gallery, seed) from the app's /generate endpoint, its parameters named as the UI labels them."""
    return client.predict(
        prompt=prompt,
        negative_prompt="",
        steps=steps,
        guidance_scale=3.0,
        seed=seed,
        randomize_seed=False,
        scheduler=scheduler,
        num_images=n,
        size=size,
        api_name="/generate",
    )


def wait_for(job, *codes, timeout: float = 30.0) -> None:
    """Poll `job` until its status is one of `codes` (gradio_client Status values)."""
    deadline = time.monotonic() + timeout
    while job.status().code not in codes:
        assert time.monotonic() < deadline and not job.done(), f"job never reached {codes}: {job.status()}"
        time.sleep(0.05)


def test_running_app_through_gradio_client(space, tmp_path):
    from gradio_client.exceptions import AppError
    from gradio_client.utils import QueueError, Status

    client = gradio_client.Client(space.url(), analytics_enabled=False, download_files=str(tmp_path / "dl"))
    gallery, seed = predict(client)
    assert seed == 7 and len(gallery) == 2 and gallery[1]["caption"] == "cat face #2"
    files = [Path(item["image"]) for item in gallery]
    assert [f.suffix for f in files] == [".png", ".png"]
    assert [PIL.Image.open(f).size for f in files] == [(IMAGE_SIZE, IMAGE_SIZE)] * 2

    again, _ = predict(client)  # the same seed: byte-identical PNG files
    assert [Path(item["image"]).read_bytes() for item in again] == [f.read_bytes() for f in files]
    other, _ = predict(client, seed=8)
    assert Path(other[0]["image"]).read_bytes() != files[0].read_bytes()

    refusals = [
        (
            dict(steps=10_000),
            "Steps: Value 10000 is greater than maximum value 100.",
        ),  # the slider's own check
        (dict(n=4), "Images: Value 4 is greater than maximum value 3."),  # HFLDM_MAX_IMAGES=3
        (
            dict(size=24),
            "Image size (pixels): Value: 24 (type: <class 'int'>) is not in the list of choices: [16]",
        ),  # the menu offers the native size only
        (dict(prompt="x" * 301), "Prompt is 301 characters long; the limit is 300."),
    ]
    for request_, message in refusals:
        with pytest.raises(AppError) as error:
            predict(client, **request_)
        assert str(error.value) == message

    # one request runs, HFLDM_QUEUE_SIZE=1 waits, the next is turned away
    slow = client.submit(prompt="cat face", steps=100, num_images=2, upscale=True, api_name="/generate")
    wait_for(slow, Status.PROGRESS)  # gr.Progress, fed by the pipeline's callback_on_step_end
    (unit,) = slow.status().progress_data
    assert (unit.desc, unit.length, unit.unit) == ("Denoising", 100, "steps") and 1 <= unit.index <= 100
    waiting = client.submit(prompt="cat face", steps=1, num_images=1, api_name="/generate")
    wait_for(waiting, Status.IN_QUEUE)
    with pytest.raises(QueueError, match="Queue is full"):
        predict(client, steps=1, n=1)
    assert [len(job.result(timeout=60)[0]) for job in (slow, waiting)] == [2, 1]


# 3. the Upscale tab (upscale_tab.py) ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sr_pipe(sr_dir):
    return upscale_tab.serving_sr_pipeline(str(sr_dir))


def test_upscale_is_the_pipeline_and_refuses_what_the_limits_forbid(sr_pipe, sr_dir):
    import torch

    image = PIL.Image.open(optional_models.example_images(str(sr_dir))[0]).convert("RGB")
    out = upscale_tab.upscale(sr_pipe, Limits(), image, steps=3, seed=5)
    expected = sr_pipe(image, num_inference_steps=3, generator=torch.Generator().manual_seed(5)).images[0]
    assert out.size == (16, 16) and np.array_equal(np.asarray(out), np.asarray(expected))
    refusals = [
        (None, {}, "Upload an image to upscale"),
        (PIL.Image.new("RGB", (9, 8)), {}, "multiples of 2"),
        (image, {"steps": 0}, "Steps must be between 1 and 100, got 0."),
        (PIL.Image.new("RGB", (130, 130)), {}, "upscaled 2× it would pass this Space's 256 pixels"),
        (image, {"limits": Limits(max_work=500)}, "= 0.0 M pixel-steps; this Space serves up to 0.0 M"),
    ]
    for request_image, kwargs, message in refusals:
        limits = kwargs.pop("limits", Limits())
        with pytest.raises(ValueError, match=re.escape(message)):
            upscale_tab.upscale(sr_pipe, limits, request_image, **{"steps": 3, **kwargs})


def test_sr_model_comes_from_env_else_the_bundled_folder(tmp_path):
    assert upscale_tab.sr_model_source([tmp_path], {"HFLDM_SR_MODEL": "user/sr"}) == "user/sr"
    assert upscale_tab.sr_model_source([tmp_path], {"HFLDM_SR_MODEL": "none"}) is None
    assert upscale_tab.sr_model_source([tmp_path], {}) is None  # no tab
    (tmp_path / upscale_tab.DEFAULT_SR_MODEL).mkdir(parents=True)
    (tmp_path / upscale_tab.DEFAULT_SR_MODEL / "model_index.json").write_text("{}")
    assert upscale_tab.sr_model_source([tmp_path], {}) == str(tmp_path / upscale_tab.DEFAULT_SR_MODEL)


def test_upscale_endpoint_through_gradio_client(space, sr_pipe, sr_dir, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client = gradio_client.Client(space.url(), analytics_enabled=False, download_files=str(tmp_path / "dl"))
    example = optional_models.example_images(str(sr_dir))[0]
    out = client.predict(handle_file(example), 3, 5, api_name="/upscale")
    expected = upscale_tab.upscale(sr_pipe, Limits(), PIL.Image.open(example).convert("RGB"), 3, 5)
    assert Path(out).suffix == ".png"
    assert np.array_equal(np.asarray(PIL.Image.open(out).convert("RGB")), np.asarray(expected))
    odd = tmp_path / "odd.png"
    PIL.Image.new("RGB", (9, 9)).save(odd)
    with pytest.raises(AppError, match="this model takes sides that are multiples of 2"):
        client.predict(handle_file(str(odd)), 3, 5, api_name="/upscale")


# 4. the Inpaint tab (inpaint_tab.py) ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def inpaint_pipe(inpaint_dir):
    return inpaint_tab.serving_inpaint_pipeline(str(inpaint_dir))


def example_background(inpaint_dir) -> PIL.Image.Image:
    return PIL.Image.open(optional_models.example_images(str(inpaint_dir))[0]).convert("RGB")


def test_inpaint_repaints_what_is_painted_and_keeps_the_rest(inpaint_pipe, inpaint_dir):
    """The 64 px canvas (the 16 px example enlarged 4×) with a painted square: the result is 16 px, the
    square's 8×8 pixels repainted, every other pixel the example's."""
    import torch

    background = example_background(inpaint_dir)
    out = inpaint_tab.inpaint(inpaint_pipe, Limits(), editor_value(background), "cat face", 3, 3.0, 5)
    assert out.size == (IMAGE_SIZE, IMAGE_SIZE)
    mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), bool)
    mask[4:12, 4:12] = True  # canvas pixels 16..48 of 64
    result, source = np.asarray(out), np.asarray(background)
    assert (result[~mask] == source[~mask]).all() and (result[mask] != source[mask]).any()
    generator = torch.Generator().manual_seed(5)
    expected = inpaint_pipe(
        "cat face",
        image=background,
        mask_image=PIL.Image.fromarray(mask),
        num_inference_steps=3,
        generator=generator,
    ).images[0]
    assert np.array_equal(result, np.asarray(expected))
    refusals = [
        (None, {}, "Upload an image to inpaint"),
        ({"background": background, "layers": [], "composite": None}, {}, "Paint over the part"),
        (editor_value(background), {"steps": 0}, "Steps must be between 1 and 100, got 0."),
        (editor_value(background), {"prompt": "x" * 301}, "Prompt is 301 characters long"),
    ]
    for value, kwargs, message in refusals:
        with pytest.raises(ValueError, match=re.escape(message)):
            inpaint_tab.inpaint(inpaint_pipe, Limits(), value, **{"steps": 3, **kwargs})


def test_inpaint_examples_come_with_a_mask_and_their_captions(inpaint_pipe, inpaint_dir, tmp_path):
    """Each example row is [image, the centre mask, its caption] (example_captions.txt, in order; "" without
    one): picking one fills the editor, the mask input and the prompt, so Inpaint runs at once. The mask's
    white is repainted (the centre 8 × 8 of 16 px), as a painted square would be; an unreadable mask is
    named."""
    rows = inpaint_tab.inpaint_example_rows(str(inpaint_dir))
    assert rows == [[optional_models.example_images(str(inpaint_dir))[0], str(inpaint_tab.EXAMPLE_MASK), ""]]
    folder = tmp_path / "model"
    (folder / "examples").mkdir(parents=True)
    for name in ("00-thinking-face.png", "01-robot.png"):
        PIL.Image.new("RGB", (32, 32)).save(folder / "examples" / name)
    (folder / "example_captions.txt").write_text("thinking face\nrobot\nhot face\n")
    assert [row[2] for row in inpaint_tab.inpaint_example_rows(str(folder))] == ["thinking face", "robot"]

    background = example_background(inpaint_dir)
    value = {"background": background, "layers": [], "composite": None}  # nothing painted
    out = inpaint_tab.inpaint(inpaint_pipe, Limits(), value, "cat face", 3, 3.0, 5, mask=rows[0][1])
    centre = np.zeros((IMAGE_SIZE, IMAGE_SIZE), bool)
    centre[4:12, 4:12] = True
    result, source = np.asarray(out), np.asarray(background)
    assert (result[~centre] == source[~centre]).all() and (result[centre] != source[centre]).any()
    painted = inpaint_tab.inpaint(
        inpaint_pipe, Limits(), editor_value(background, box=(16, 16, 47, 47)), "cat face", 3, 3.0, 5
    )
    assert np.array_equal(result, np.asarray(painted))
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="^Mask: "):
        inpaint_tab.inpaint(inpaint_pipe, Limits(), value, mask=str(tmp_path / "notes.txt"))


def test_inpaint_model_comes_from_env_else_the_bundled_folder(tmp_path):
    source = inpaint_tab.inpaint_model_source
    assert source([tmp_path], {"HFLDM_INPAINT_MODEL": "user/inpaint"}) == "user/inpaint"
    assert source([tmp_path], {"HFLDM_INPAINT_MODEL": "none"}) is None
    assert source([tmp_path], {}) is None  # no tab
    (tmp_path / inpaint_tab.DEFAULT_INPAINT_MODEL).mkdir(parents=True)
    (tmp_path / inpaint_tab.DEFAULT_INPAINT_MODEL / "model_index.json").write_text("{}")
    assert source([tmp_path], {}) == str(tmp_path / inpaint_tab.DEFAULT_INPAINT_MODEL)


def test_inpaint_endpoint_through_gradio_client(space, inpaint_pipe, inpaint_dir, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client = gradio_client.Client(space.url(), analytics_enabled=False, download_files=str(tmp_path / "dl"))
    value = editor_value(example_background(inpaint_dir))
    files = {}
    for name in ("background", "layer"):
        files[name] = tmp_path / f"{name}.png"
        (value["background"] if name == "background" else value["layers"][0]).save(files[name])
    request = {
        "background": handle_file(str(files["background"])),
        "layers": [handle_file(str(files["layer"]))],
        "composite": None,
    }
    out = client.predict(request, "cat face", 3, 3.0, 5, api_name="/inpaint")
    expected = inpaint_tab.inpaint(inpaint_pipe, Limits(), value, "cat face", 3, 3.0, 5)
    assert Path(out).suffix == ".png"
    assert np.array_equal(np.asarray(PIL.Image.open(out).convert("RGB")), np.asarray(expected))
    with pytest.raises(AppError, match="Paint over the part of the image to repaint"):
        client.predict({**request, "layers": []}, "cat face", 3, 3.0, 5, api_name="/inpaint")


def test_every_tab_loads_its_model_in_the_dtype_of_hfldm_dtype(model_dir):
    import torch
    from serving import serving_pipeline_of

    from hfldm.precision import default_dtype

    pipe = serving_pipeline_of(str(model_dir), "HFLDM_MODEL", env={"HFLDM_DTYPE": "bfloat16"})
    assert (pipe.unet.dtype, pipe.vae.dtype) == (torch.bfloat16, torch.float32)
    assert app.serving_pipeline(str(model_dir), env={}).unet.dtype == default_dtype()
    with pytest.raises(ValueError, match="HFLDM_DTYPE: expected auto"):
        serving_pipeline_of(str(model_dir), "HFLDM_MODEL", env={"HFLDM_DTYPE": "fp8"})
