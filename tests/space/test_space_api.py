"""The Space as an API (space/app.py through gradio_client and raw HTTP): every endpoint callable with only
its required inputs, its parameters named as the UI labels them, one job at a time across the tabs, and any
input answered by a result or one clear message, never Gradio's generic error (`error: null`)."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
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
from request_limits import Limits  # noqa: E402

VOCABULARY = ["cat face", "red apple", "grinning face"]  # the tiny model's "trained names"
GENERATE = "prompt negative_prompt steps guidance_scale seed randomize_seed scheduler num_images size upscale"
PARAMETERS = {
    "/generate": GENERATE.split(),
    "/upscale": ["image", "steps", "seed"],
    "/inpaint": ["image", "prompt", "steps", "guidance_scale", "seed", "mask"],
}
REQUIRED = {"/generate": [], "/upscale": ["image"], "/inpaint": ["image"]}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("space-api")
    model = save_tiny_pipeline(root / "model")
    (model / "vocabulary.txt").write_text("\n".join(VOCABULARY) + "\n")
    return {
        "model": model,
        "sr": save_tiny_sr_pipeline(root / "sr"),
        "inpaint": save_tiny_inpaint_pipeline(root / "ip"),
    }


@pytest.fixture(scope="module")
def space(folders, tmp_path_factory):
    space = SpaceProcess(
        folders["model"],
        tmp_path_factory.mktemp("server"),
        HFLDM_SR_MODEL=str(folders["sr"]),
        HFLDM_INPAINT_MODEL=str(folders["inpaint"]),
        HFLDM_MAX_STEPS="20",
    )
    space.url()
    yield space
    space.stop()


@pytest.fixture(scope="module")
def client(space, tmp_path_factory):
    download = tmp_path_factory.mktemp("download")
    return gradio_client.Client(
        space.url(), analytics_enabled=False, download_files=str(download), verbose=False
    )


@pytest.fixture(scope="module")
def uploads(folders, tmp_path_factory) -> dict[str, object]:
    """gradio_client payloads: a 16 px image, an editor value with a painted square, a text file."""
    from gradio_client import handle_file

    root = tmp_path_factory.mktemp("uploads")
    background = PIL.Image.open(next((folders["inpaint"] / "examples").glob("*.png"))).convert("RGB")
    value = editor_value(background)
    value["background"].save(root / "background.png")
    value["layers"][0].save(root / "layer.png")
    (root / "notes.txt").write_text("not an image")
    return {
        "image": handle_file(str(next((folders["sr"] / "examples").glob("*.png")))),
        "editor": {
            "background": handle_file(str(root / "background.png")),
            "layers": [handle_file(str(root / "layer.png"))],
            "composite": None,
        },
        "text_file": handle_file(str(root / "notes.txt")),
        "text_editor": {"background": handle_file(str(root / "notes.txt")), "layers": [], "composite": None},
    }


def test_parameters_are_named_as_labelled_and_only_the_uploads_are_required(client):
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    for name, parameters in PARAMETERS.items():
        found = endpoints[name]["parameters"]
        assert [p["parameter_name"] for p in found] == parameters
        assert [p["parameter_name"] for p in found if not p["parameter_has_default"]] == REQUIRED[name]


def test_each_endpoint_answers_with_only_its_required_inputs(client, uploads):
    gallery, seed = client.predict(prompt="cat face", api_name="/generate")  # prompt only
    assert len(gallery) == 4 and gallery[0]["caption"] == "cat face #1" and 0 <= seed < 2**32
    assert PIL.Image.open(gallery[0]["image"]).size == (IMAGE_SIZE, IMAGE_SIZE)  # the native size
    upscaled = client.predict(image=uploads["image"], api_name="/upscale")
    assert PIL.Image.open(upscaled).size == (2 * 8, 2 * 8)
    inpainted = client.predict(image=uploads["editor"], api_name="/inpaint")
    assert PIL.Image.open(inpainted).size == (IMAGE_SIZE, IMAGE_SIZE)
    gallery, _ = client.predict(prompt="cat face", num_images=1, upscale=True, steps=2, api_name="/generate")
    assert PIL.Image.open(gallery[0]["image"]).size == (2 * IMAGE_SIZE, 2 * IMAGE_SIZE)  # the cascade


def test_an_inpaint_example_runs_as_picked(client, folders):
    """What picking an example fills in (inpaint_tab.inpaint_example_rows: the image in the editor, nothing
    painted, the centre mask in the Mask input, the caption) is a request the endpoint serves."""
    import inpaint_tab
    from gradio_client import handle_file

    ((image, mask, caption),) = inpaint_tab.inpaint_example_rows(str(folders["inpaint"]))
    editor = {"background": handle_file(image), "layers": [], "composite": None}
    out = client.predict(image=editor, mask=handle_file(mask), prompt=caption, steps=2, api_name="/inpaint")
    result, source = (np.asarray(PIL.Image.open(p).convert("RGB")) for p in (out, image))
    centre = np.zeros(result.shape[:2], bool)
    centre[4:12, 4:12] = True  # the white 16 × 16 of the 32 px mask, on the 16 px model
    assert result.shape[:2] == (IMAGE_SIZE, IMAGE_SIZE)
    assert (result[~centre] == source[~centre]).all() and (result[centre] != source[centre]).any()


def test_all_tabs_share_one_queue_slot(folders):
    """One concurrency id with limit 1 over every event: two tabs never sample at once on the CPU."""
    pipe = app.serving_pipeline(str(folders["model"]))
    sr = app.serving_sr_pipeline(str(folders["sr"]))
    inpaint = app.serving_inpaint_pipeline(str(folders["inpaint"]))
    demo = app.build_demo(pipe, Limits(), CAPTIONS[:2], sr, [], inpaint, [], vocabulary=VOCABULARY)
    events = [d for d in demo.config["dependencies"] if d["api_name"] in {"generate", "upscale", "inpaint"}]
    assert sorted(d["api_name"] for d in events) == ["generate", "inpaint", "upscale"]
    ids = {fn.concurrency_id for fn in demo.fns.values() if fn.api_name in {"generate", "upscale", "inpaint"}}
    limits = {
        fn.concurrency_limit for fn in demo.fns.values() if fn.api_name in {"generate", "upscale", "inpaint"}
    }
    assert ids == {"hfldm"} and limits == {1}


def test_prompt_menu_offers_the_trained_names_and_examples_say_which_are_held_out(folders):
    pipe = app.serving_pipeline(str(folders["model"]))
    demo = app.build_demo(
        pipe, Limits(), ["thinking face", "robot"], vocabulary=["grinning face", "cat face"]
    )
    props = [c["props"] for c in demo.config["components"]]
    prompt = next(p for p in props if p.get("label") == "Prompt")
    shown = ["grinning face", "cat face", "thinking face (held out)", "robot (held out)"]
    assert [c[0] for c in prompt["choices"]] == shown and prompt["allow_custom_value"]
    assert [c[1] for c in prompt["choices"]] == ["grinning face", "cat face", "thinking face", "robot"]
    assert prompt["value"] == "grinning face"  # a known name (hfldm.text.vocabulary.KNOWN_EXAMPLES) first
    labels = [p.get("label") for p in props if "names" in (p.get("label") or "").lower()]
    assert "Names the model was trained on" in labels
    assert "Held-out names (never seen in training: often generic shapes)" in labels
    size = next(p for p in props if p.get("label") == "Image size (pixels)")
    assert [c[1] for c in size["choices"]] == [IMAGE_SIZE]  # only the size the model draws


def raw_call(url: str, endpoint: str, data: list) -> tuple[str, str]:
    """(event, data) of the last SSE event of a raw /gradio_api/call request with `data` as the JSON body
    (json.dumps writes lone surrogates as \\ud800 escapes and NaN as NaN, as a non-Python client may)."""
    body = json.dumps({"data": data}).encode()
    request = urllib.request.Request(
        f"{url}gradio_api/call{endpoint}", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        event_id = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call{endpoint}/{event_id}", timeout=60) as response:
        lines = response.read().decode().splitlines()
    events = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    payloads = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
    return events[-1], payloads[-1]


DEFAULTS = {
    "/generate": ["cat face", "", 2, 3.0, 0, False, "DDIM", 1, IMAGE_SIZE, False],
    "/upscale": [None, 2, 0],
    "/inpaint": [None, "", 2, 3.0, 0, None],
}


def values(endpoint: str, **changes) -> list:
    """A full list of the endpoint's values (DEFAULTS), the named parameters changed."""
    data = list(DEFAULTS[endpoint])
    for name, value in changes.items():
        data[PARAMETERS[endpoint].index(name)] = value
    return data


@pytest.mark.parametrize(
    "endpoint, data, message",
    [
        (
            "/generate",
            ["cat"],
            "This endpoint takes 10 values (Prompt, Negative prompt, Steps, Guidance scale,",
        ),
        (
            "/generate",
            values("/generate", prompt="cat \ud800 face"),
            "Prompt contains characters that are not",
        ),
        ("/generate", values("/generate", steps=float("nan")), "Steps must be a whole number; got nan"),
        ("/generate", values("/generate", steps="ten"), "Steps must be a whole number; got 'ten'"),
        ("/generate", values("/generate", guidance_scale=None), "Guidance scale must be a number; got None"),
        ("/generate", values("/generate", seed="x"), "Seed must be a whole number; got 'x'"),
        (
            "/generate",
            values("/generate", prompt="x" * 301),
            "Prompt is 301 characters long; the limit is 300.",
        ),
        (
            "/generate",
            values("/generate", negative_prompt="y" * 301),
            "Negative prompt is 301 characters long",
        ),
        ("/generate", values("/generate", prompt=["cat"]), "Prompt must be text, got ['cat']."),
        ("/generate", values("/generate", upscale="yes"), "Upscale must be true or false, got 'yes'."),
        ("/upscale", values("/upscale"), "Upload an image to upscale (or pick an example)."),
        ("/upscale", values("/upscale", steps="many"), "Upscaling steps must be a whole number; got 'many'"),
        ("/inpaint", values("/inpaint"), "Upload an image to inpaint"),
        ("/upscale", values("/upscale", image=False), "Low-resolution image must be a file (an image)"),
    ],
)
def test_bad_values_get_one_clear_message(space, endpoint, data, message):
    event, payload = raw_call(space.url(), endpoint, data)
    assert event == "error" and message in payload, payload


def test_a_non_image_upload_gets_one_clear_message(client, uploads):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="^Low-resolution image must be an image; the upload is not one"):
        client.predict(image=uploads["text_file"], api_name="/upscale")
    with pytest.raises(AppError, match="must be an image; the upload is not one"):
        client.predict(image=uploads["text_editor"], api_name="/inpaint")


# a bounded fuzz: any JSON value in any parameter, answered by a result or one clear message
hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies
ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    # no subnormals: a library loaded earlier may have set flush-to-zero (hypothesis refuses them then)
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False),
    st.text(max_size=20),  # any code point, lone surrogates included
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["path", "url", "meta"]), st.text(max_size=10), max_size=2),
)


@pytest.mark.parametrize("endpoint", list(PARAMETERS))
def test_fuzzed_values_get_a_result_or_one_clear_message(space, endpoint):
    url = space.url()

    @hypothesis.settings(max_examples=25, deadline=None, derandomize=True, database=None)
    @hypothesis.given(
        changes=st.dictionaries(st.sampled_from(PARAMETERS[endpoint]), ANY_VALUE, min_size=1, max_size=3)
    )
    def check(changes):
        event, payload = raw_call(url, endpoint, values(endpoint, **changes))
        if event == "error":
            message = json.loads(payload).get("error")
            assert isinstance(message, str) and message and "\n" not in message, payload
            assert "Traceback" not in message
        else:
            assert event == "complete", (event, payload)

    check()


def test_a_huge_upload_is_refused_from_its_header(client, tmp_path):
    """20 megapixels in a small PNG: refused before decoding (hfldm.data.user_images, 16 M by default)."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    huge = tmp_path / "huge.png"
    PIL.Image.new("L", (5000, 4000)).save(huge)
    assert huge.stat().st_size < 1_000_000
    with pytest.raises(AppError, match="Low-resolution image: the image is 5000x4000 = 20,000,000 pixels"):
        client.predict(image=handle_file(str(huge)), api_name="/upscale")
    editor = {"background": handle_file(str(huge)), "layers": [], "composite": None}
    with pytest.raises(AppError, match="the image is 5000x4000 = 20,000,000 pixels, over the limit"):
        client.predict(image=editor, api_name="/inpaint")
