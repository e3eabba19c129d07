"""What a newcomer meets first (issue 37): the model's vocabulary and the warning for far prompts, native
size by default with a warning for others, captioned grids, quiet output, the eval small-sample caveat."""

from __future__ import annotations

import warnings

import numpy as np
import PIL.Image
import pytest

from hfldm.cli import main as hfldm_main
from hfldm.resources import default_model
from hfldm.text.vocabulary import FAR_BELOW, known_examples, nearness, read_vocabulary

FAST = ["--steps", "1", "--dtype", "float32", "--seed", "0"]


@pytest.fixture(scope="module")
def bundled() -> str:
    folder = default_model()
    if not read_vocabulary(folder):
        pytest.skip("no bundled model with a vocabulary.txt")
    return folder


@pytest.fixture(scope="module")
def bundled_pipe(bundled):
    from hfldm.commands.shared import load_pipeline

    return load_pipeline(bundled, "saved", "cpu")


def test_the_bundled_model_records_the_train_split_names(bundled):
    from hfldm.data.emoji import is_test  # the split rule, by code points
    from hfldm.data.noto import parse_emoji_test

    names = read_vocabulary(bundled)
    assert len(names) == 3281 and len(set(names)) == 3281  # the train split, README's figure
    try:
        entries = parse_emoji_test()
    except FileNotFoundError:
        pytest.skip("no emoji-test.txt here")
    held_out = {e.text for e in entries if is_test(e.codepoints)}
    assert not held_out & set(names) and "thinking face" in held_out
    assert known_examples(names, 3) == ["smiling cat with heart-eyes", "grinning face", "red apple"]


def test_nearness_by_tau_theta(bundled_pipe, bundled):
    names = read_vocabulary(bundled)
    prompts = ["Grinning  Face", "smiling cat face with heart-eyes", "quantum physics lecture"]
    found = nearness(bundled_pipe.tokenizer, bundled_pipe.text_encoder, prompts, names)
    known, near_miss, far = found
    assert known.known and not known.far and known.similarity == 1.0  # case and spaces do not matter
    assert near_miss.far and near_miss.nearest[0] == "smiling cat with heart-eyes"  # the real CLDR name
    assert 0.85 < near_miss.similarity < FAR_BELOW
    assert far.far and far.similarity < 0.6 and len(far.nearest) == 3


def _without_progress_bars(err: str) -> str:
    """stderr less the sampling bars: tqdm shows them after PROGRESS_DELAY seconds, so on a busy machine."""
    return "".join(
        line for line in err.splitlines(keepends=True) if "it]" not in line and "it/s]" not in line
    )


def test_generate_is_silent_for_a_known_name_and_warns_in_one_line_for_a_far_one(bundled, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert (
        hfldm_main(["generate", "--model", bundled, "--prompt", "grinning face", *FAST, "--out", str(out)])
        == 0
    )
    assert _without_progress_bars(capsys.readouterr().err).strip() == ""  # no warnings, no loading bars
    assert PIL.Image.open(out).size == (32, 32)  # the native size by default
    argv = ["generate", "--model", bundled, "--prompt", "smiling cat face with heart-eyes", *FAST]
    assert hfldm_main([*argv, "--out", str(out)]) == 0
    err = _without_progress_bars(capsys.readouterr().err)
    assert err.count("\n") == 1 and err.startswith(
        "hfldm generate: warning: 'smiling cat face with heart-eyes'"
    )
    assert "the nearest are 'smiling cat with heart-eyes'" in err


def test_other_sizes_are_drawn_but_warned_about(bundled_pipe, capsys):
    from hfldm.commands.advice import warn_other_size

    assert bundled_pipe.default_image_size() == (32, 32)
    assert not warn_other_size(bundled_pipe, None, None) and not warn_other_size(bundled_pipe, 32, None)
    assert capsys.readouterr().err == ""
    assert warn_other_size(bundled_pipe, 64, 64)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "native size, 32x32 px" in err and "--upscale" in err


def test_pipeline_defaults_to_its_native_size(bundled_pipe):
    import torch

    image = bundled_pipe("red apple", num_inference_steps=1, generator=torch.manual_seed(0)).images[0]
    assert image.size == (32, 32)


def test_several_prompts_make_a_captioned_grid(bundled, tmp_path, capsys):
    out = tmp_path / "grid.png"
    prompts = [arg for name in ("red apple", "rocket", "pizza") for arg in ("--prompt", name)]
    assert hfldm_main(["generate", "--model", bundled, *prompts, *FAST, "--out", str(out)]) == 0
    grid = np.asarray(PIL.Image.open(out).convert("L"))
    # three 64 px cells in a row with captions underneath: taller than the images, dark text on white below
    assert grid.shape[1] == 3 * (2 * 64 - 16) and grid.shape[0] > 64 + 20
    assert (grid[70:, :] < 128).any() and (grid[70:, :] == 255).mean() > 0.8
    assert (
        hfldm_main(["generate", "--model", bundled, *prompts, *FAST, "--no-captions", "--out", str(out)]) == 0
    )
    assert PIL.Image.open(out).size == (96, 32)  # the bare row of three 32 px images


def test_cli_filters_library_warnings_but_not_ours():
    from hfldm.cli import quiet_library_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_warnings()
        warnings.warn_explicit("old API", FutureWarning, "x.py", 1, module="transformers.utils")
        warnings.warn_explicit("hub notice", UserWarning, "x.py", 1, module="huggingface_hub.file_download")
        warnings.warn_explicit("ours", UserWarning, "x.py", 1, module="hfldm.training")
    assert [str(w.message) for w in caught] == ["ours"]


def test_eval_reports_below_200_samples_carry_a_caveat():
    from hfldm.eval.report import small_sample_caveat

    assert small_sample_caveat(374) is None and small_sample_caveat(200) is None
    assert small_sample_caveat(32).startswith("Caveat: 32 samples (< 200): FID, KID and retrieval are noisy")


def test_pipelines_warn_once_per_call_off_their_native_size(caplog):
    """The text and inpainting pipelines share one warning (hfldm.pipelines.native_size): one line per call
    at another size, naming both sizes; none at the native size."""
    from _inpaint_fixtures import box_mask, images, inpaint_pipeline
    from _ldm_fixtures import text_pipeline

    text, inpaint = text_pipeline(), inpaint_pipeline()
    native = text.default_image_size()[0]
    other = 2 * native
    calls = {
        "text": lambda size: text("a", height=size, width=size, num_inference_steps=1),
        "image-to-image": lambda size: text("a", image=images(1, size=size), num_inference_steps=2),
        "inpaint": lambda size: inpaint("a", images(1, size=size), box_mask(size), num_inference_steps=1),
    }
    for name, call in calls.items():
        for size, expected in ((native, 0), (other, 1)):
            caplog.clear()
            with caplog.at_level("WARNING", logger="hfldm.pipelines.native_size"):
                call(size)
            lines = [r.getMessage() for r in caplog.records if r.name == "hfldm.pipelines.native_size"]
            assert len(lines) == expected, (name, size, lines)
    assert lines[0].count("\n") == 0
    assert f"native size, {native}x{native} px" in lines[0] and f"at {other}x{other}" in lines[0]


def test_the_cli_says_the_size_warning_once(bundled, tmp_path, capsys, caplog):
    """Two pipeline calls (--batch-size 1) at 64 px: the CLI's one line with its flags, the pipelines' own
    warning silenced meanwhile."""
    out = tmp_path / "big.png"
    argv = ["generate", "--model", bundled, "--prompt", "red apple", "--num-images", "2", "--batch-size", "1"]
    with caplog.at_level("WARNING", logger="hfldm.pipelines.native_size"):
        assert hfldm_main([*argv, "--height", "64", "--width", "64", *FAST, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("trained at its native size, 32x32 px") == 1 and "--upscale" in err
    assert not [r for r in caplog.records if r.name == "hfldm.pipelines.native_size"]
    assert PIL.Image.open(out).size[1] == 64
