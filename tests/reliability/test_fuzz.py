"""A bounded property-based fuzz of the public entry points (`hypothesis`): the pipelines' `__call__` and the
`hfldm` commands. Any input either works or fails with ONE ValueError (the API) / exit code 2 and one error
line (the CLI), never another exception. Derandomized, without an example database, few examples per entry
point on tiny jittered models: reproducible in CI and a few seconds long. The Space's endpoints are fuzzed
through gradio_client in the Space's own tests.
"""

from __future__ import annotations

import math
import os

import numpy as np
import PIL.Image
import pytest
import torch
from _inpaint_fixtures import box_mask, images, inpaint_pipeline
from _ldm_fixtures import TEXT_DIM, class_pipeline, text_pipeline
from _superres_fixtures import low_res_images, sr_pipeline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# per entry point; each example is one call on a tiny model (a few ms to 0.1 s). HFLDM_FUZZ_EXAMPLES=500
# runs a deeper search locally.
DEEPER = int(os.environ.get("HFLDM_FUZZ_EXAMPLES", 0))
EXAMPLES = {"pipeline": DEEPER or 60, "cli": DEEPER or 20}
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def one_of(*values) -> st.SearchStrategy:
    """One of `values`; callables are called for a fresh value (tensors, generators, images)."""
    return st.sampled_from(values).map(lambda v: v() if callable(v) and not isinstance(v, Callback) else v)


class Callback:
    """A callback_on_step_end that returns `result(tensors)`."""

    def __init__(self, result):
        self.result = result

    def __call__(self, pipe, i, t, tensors):
        return self.result(tensors)


NUMBERS = (0, 1, 2, -1, 1.5, math.nan, math.inf, "2", None, [2], True, np.int64(2))
COMMON = {
    "num_inference_steps": one_of(1, 2, 0, -1, 2.5, "2", None, [2], True, 1001, np.int64(2)),
    "timesteps": one_of(None, [50, 10], [10, 50], [], [1000], ["a"], 3, lambda: np.array([60, 20])),
    "eta": one_of(*NUMBERS),
    "generator": one_of(
        None, generator, lambda: [generator()], lambda: [generator(), generator(1)], 0, "0", []
    ),
    "output_type": one_of("np", "pil", "pt", "latent", "jpg", None, 3, ["np"]),
    "return_dict": one_of(True, False, None, "yes", 0),
    "callback_on_step_end": one_of(
        None,
        Callback(lambda tensors: tensors),
        Callback(lambda tensors: None),
        Callback(lambda tensors: {"latents": 3}),
        Callback(lambda tensors: {"latents": tensors["latents"][:1, :1]}),
        5,
        "print",
    ),
    "callback_on_step_end_tensor_inputs": one_of(
        ["latents"], ["prompt_embeds"], ["noise"], "latents", [], [1]
    ),
}
TEXT = {
    "prompt": one_of(None, "cat face", ["cat face", "dog face"], [], [1], 3, ("red apple",), [["a"]], ""),
    "negative_prompt": one_of(None, "dog face", ["dog face"], ["a", "b", "c"], [], 0),
    "class_labels": one_of(None, 0, "cat face", [0, 1], [], "unicorn", 99, 1.5, lambda: torch.tensor([0])),
    "guidance_scale": one_of(*NUMBERS),
    "num_images_per_prompt": one_of(*NUMBERS),
    "latents": one_of(
        None,
        lambda: torch.randn(1, 4, 8, 8),
        lambda: torch.randn(2, 4, 8, 8),
        lambda: torch.randn(1, 4, 4, 4),
        lambda: np.zeros((1, 4, 8, 8)),
        lambda: torch.zeros(0),
        lambda: [torch.randn(1, 4, 8, 8)],
    ),
    "prompt_embeds": one_of(
        None,
        lambda: torch.randn(1, 5, TEXT_DIM),
        lambda: torch.randn(2, 5, TEXT_DIM),
        lambda: torch.randn(1, 5, 8),
        lambda: torch.randn(5, TEXT_DIM),
        lambda: np.zeros((1, 5, TEXT_DIM)),
    ),
    "negative_prompt_embeds": one_of(None, lambda: torch.randn(1, 3, TEXT_DIM), lambda: torch.randn(1, 5, 8)),
    "prompt_attention_mask": one_of(None, lambda: torch.ones(1, 5), lambda: torch.ones(1, 3), "mask"),
    "cross_attention_kwargs": one_of(None, {}, {"scale": 0.5}, {"weight": 1}, {1: 2}, [], "x"),
}
IMAGES = one_of(
    None,
    lambda: images(1)[0],
    lambda: images(2),
    lambda: torch.rand(1, 3, 16, 16),
    lambda: np.zeros((16, 16, 3)),
    lambda: torch.rand(3, 15, 16),
    lambda: PIL.Image.new("RGBA", (16, 16)),
    "image.png",
    [],
    lambda: [images(1)[0], np.zeros((16, 16, 3))],
)
GENERATE = (
    COMMON
    | TEXT
    | {
        "height": one_of(None, 16, 32, 0, -16, 15, "16", 16.0, [16], True),
        "width": one_of(None, 16, 8, 24),
        "image": IMAGES,
        "strength": one_of(None, 0.0, 0.5, 1.0, 1.5, -0.1, math.nan, "0.5"),
    }
)
INPAINT = (
    COMMON
    | TEXT
    | {
        "image": IMAGES,
        "mask_image": one_of(
            None, box_mask, lambda: [box_mask(), box_mask()], lambda: torch.ones(1, 1, 16, 16), 1, []
        ),
        "paste_back": one_of(True, False, None, "no"),
    }
)
SUPERRES = COMMON | {
    "image": one_of(
        lambda: low_res_images(1),
        lambda: low_res_images(2),
        lambda: low_res_images(1)[0].resize((7, 8)),
        lambda: torch.rand(3, 8, 8),
        lambda: np.zeros((8, 8, 5)),
        None,
        [],
        "low.png",
        3,
    ),
}


def arguments_of(pool: dict, at_most: int = 3) -> st.SearchStrategy:
    """Up to `at_most` of the arguments in `pool`, each with a value from its strategy (with more, nearly
    every example fails at its first bad value and the rest is never reached)."""
    names = st.lists(st.sampled_from(sorted(pool)), max_size=at_most, unique=True)
    return names.flatmap(lambda keys: st.fixed_dictionaries({k: pool[k] for k in keys}))


def works_or_raises_one_value_error(pipe, required: dict, arguments: dict) -> None:
    try:
        out = pipe(**({"num_inference_steps": 2, "output_type": "np"} | required | arguments))
    except ValueError as e:
        message = str(e)
        assert message and "\n" not in message, message
        return
    images = out.images if arguments.get("return_dict", True) else out[0]
    assert len(images) >= 1


@pytest.fixture(scope="module")
def pipes() -> dict:
    text = text_pipeline()
    return {
        "text": text,
        "class": class_pipeline(),
        "inpaint": inpaint_pipeline(text=text),
        "sr": sr_pipeline(),
    }


@settings(FUZZ, max_examples=EXAMPLES["pipeline"])
@given(kind=st.sampled_from(["text", "class"]), arguments=arguments_of(GENERATE))
def test_fuzz_latent_diffusion_pipeline(pipes, kind, arguments):
    works_or_raises_one_value_error(pipes[kind], {}, arguments)


@settings(FUZZ, max_examples=EXAMPLES["pipeline"])
@given(arguments=arguments_of(INPAINT))
def test_fuzz_inpaint_pipeline(pipes, arguments):
    required = {"prompt": "cat face", "image": images(1)[0], "mask_image": box_mask()}
    works_or_raises_one_value_error(pipes["inpaint"], required, arguments)


@settings(FUZZ, max_examples=EXAMPLES["pipeline"])
@given(arguments=arguments_of(SUPERRES))
def test_fuzz_superres_pipeline(pipes, arguments):
    works_or_raises_one_value_error(pipes["sr"], {"image": low_res_images(1)}, arguments)


# the CLI: a value for each flag (valid, out of range, not a number, not a file); argparse's own errors
# (a flag's type) print its usage and one error line, hfldm's one line
FLAG_VALUES = ["2", "1", "0", "-1", "16", "nan", "inf", "abc", "", "1e9", "missing.png"]
CLI = {
    "generate": (
        [
            "--prompt",
            "--negative-prompt",
            "--class-label",
            "--steps",
            "--guidance-scale",
            "--seed",
            "--num-images",
            "--eta",
            "--height",
            "--width",
            "--image",
            "--strength",
            "--batch-size",
            "--max-images",
            "--scheduler",
            "--dtype",
        ],
        ["--steps", "1"],
    ),
    "upscale": (["--image", "--steps", "--seed", "--eta", "--scheduler"], ["--steps", "1"]),
    "inpaint": (
        [
            "--image",
            "--mask",
            "--prompt",
            "--negative-prompt",
            "--num-images",
            "--steps",
            "--guidance-scale",
            "--seed",
            "--scheduler",
        ],
        ["--steps", "1"],
    ),
}


@pytest.fixture(scope="module")
def cli_inputs(tmp_path_factory, pipes) -> dict:
    root = tmp_path_factory.mktemp("cli")
    for kind in ("text", "inpaint", "sr"):
        pipes[kind].save_pretrained(root / kind)
    images(1)[0].save(root / "image.png")
    box_mask().save(root / "mask.png")
    low_res_images(1)[0].save(root / "low.png")
    return {
        "root": root,
        "generate": ["--model", str(root / "text")],
        "upscale": ["--model", str(root / "sr"), "--image", str(root / "low.png")],
        "inpaint": [
            "--model",
            str(root / "inpaint"),
            "--image",
            str(root / "image.png"),
            "--mask",
            str(root / "mask.png"),
        ],
    }


def flag_values(flags: list[str], root) -> st.SearchStrategy:
    """Up to 3 (flag, value) pairs; "image.png" / "mask.png" / "low.png" name files that exist."""
    values = st.sampled_from([*FLAG_VALUES, "image.png", "mask.png", "low.png", "ddim", "euler", "float32"])
    pairs = st.lists(st.tuples(st.sampled_from(flags), values), max_size=3)
    return pairs.map(
        lambda ps: [
            x
            for flag, v in ps
            for x in (flag, str(root / v) if v.endswith(".png") and v != "missing.png" else v)
        ]
    )


@pytest.mark.parametrize("command", sorted(CLI))
def test_fuzz_cli(command, cli_inputs, tmp_path_factory, capsys):
    from hfldm.cli import main

    flags, base = CLI[command]
    out = tmp_path_factory.mktemp(command) / "out.png"

    @settings(FUZZ, max_examples=EXAMPLES["cli"])
    @given(argv=flag_values(flags, cli_inputs["root"]))
    def run(argv):
        try:
            rc = main([command, *cli_inputs[command], *base, "--out", str(out), "--device", "cpu", *argv])
        except SystemExit as e:  # argparse: usage, then one "error:" line
            rc = e.code
        err = capsys.readouterr().err.strip().splitlines()
        assert rc in (0, 2), (argv, rc, err)
        if rc == 2:
            assert len(err) == 1 or err[0].startswith("usage:"), (argv, err)
            assert err[-1].startswith(f"hfldm {command}: error: "), (argv, err)
            assert not any(line.startswith("Traceback") for line in err), (argv, err)

    run()
