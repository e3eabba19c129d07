"""#36, the CLI: --out written atomically (item 3) and checked before any work (11), images opened through
the one door (9) with shared --max-images / --max-pixels bounds (10). Each test failed on 7e03a4a."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
from _inpaint_fixtures import box_mask, inpaint_pipeline
from _ldm_fixtures import IMAGE_SIZE, text_pipeline
from _superres_fixtures import LOW_RES, low_res_images, sr_pipeline

from hfldm.cli import main as hfldm_main
from hfldm.commands.shared import open_image


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    text_pipeline().save_pretrained(root / "text")
    sr_pipeline().save_pretrained(root / "sr")
    inpaint_pipeline().save_pretrained(root / "inpaint")
    low_res_images(1)[0].save(root / "low.png")
    PIL.Image.fromarray(np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 90, np.uint8)).save(root / "image.png")
    box_mask().save(root / "mask.png")
    return root


def command(models, name: str, out) -> list[str]:
    """A quick `hfldm <name>` of the tiny model, writing `out`."""
    base = {
        "generate": ["--model", str(models / "text"), "--prompt", "cat face", "--steps", "2"],
        "upscale": ["--model", str(models / "sr"), "--image", str(models / "low.png"), "--steps", "2"],
        "inpaint": [
            "--model",
            str(models / "inpaint"),
            "--image",
            str(models / "image.png"),
            "--mask",
            str(models / "mask.png"),
            "--steps",
            "2",
        ],
    }[name]
    return [name, *base, "--dtype", "float32", "--out", str(out)]


def one_line_error(capsys, name: str) -> str:
    """The error line (the last on stderr, after the sampler's progress bar, if any), without its prefix."""
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"hfldm {name}: error: "), err
    return err.removeprefix(f"hfldm {name}: error: ")


@pytest.mark.parametrize("name", ["generate", "upscale", "inpaint"])
def test_item3_a_full_disk_keeps_the_existing_out_file(models, tmp_path, capsys, monkeypatch, name):
    """The disk fills while the PNG is written: exit 2, one line, and the earlier keep.png is intact, byte
    for byte (before: a truncated keep.png and an OSError 28 traceback)."""
    keep = tmp_path / "keep.png"
    PIL.Image.new("RGB", (4, 4), "red").save(keep)
    before = keep.read_bytes()

    def full_disk(image, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(before[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(PIL.Image.Image, "save", full_disk)
    assert hfldm_main(command(models, name, keep)) == 2
    assert one_line_error(capsys, name) == (
        f"--out: could not write {keep} (No space left on device); the existing file is kept"
    )
    assert keep.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]  # no temporary file left


@pytest.mark.parametrize("name", ["generate", "upscale", "inpaint"])
def test_item3_out_is_replaced_whole(models, tmp_path, name):
    out = tmp_path / "out.png"
    PIL.Image.new("RGB", (4, 4), "red").save(out)
    assert hfldm_main(command(models, name, out)) == 0
    assert PIL.Image.open(out).size != (4, 4) and sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_item11_bad_out_paths_fail_before_sampling(models, tmp_path, capsys, monkeypatch):
    """An existing folder named x.png, a path under a file, a read-only file system: one line naming --out
    before the model is loaded (before: a traceback after sampling)."""
    import hfldm.commands.generate as generate

    monkeypatch.setattr(
        generate, "load_pipeline", lambda *a, **k: pytest.fail("loaded before checking --out")
    )
    (tmp_path / "x.png").mkdir()
    (tmp_path / "file").write_text("x")
    cases = {
        tmp_path / "x.png": f"--out: {tmp_path / 'x.png'} is a folder, not a file",
        tmp_path / "file" / "y.png": f"--out: {tmp_path / 'file'} is a file, not a folder",
        "/proc/hfldm.png": "--out: cannot write to /proc (",
    }
    for out, message in cases.items():
        assert hfldm_main(command(models, "generate", out)) == 2
        assert one_line_error(capsys, "generate").startswith(message)


def test_item9_cli_images_convert_16_bit_float_and_alpha_like_the_loader(tmp_path):
    """16-bit mid-grey stays mid-grey (before: clipped to white), a float TIFF of 0.5 is grey (before:
    black), transparent pixels are white (before: black)."""
    PIL.Image.fromarray(np.full((4, 4), 32768, np.uint16)).save(tmp_path / "16.png")
    PIL.Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(tmp_path / "f.tiff")
    PIL.Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(tmp_path / "alpha.png")
    assert abs(int(np.asarray(open_image(tmp_path / "16.png"))[0, 0, 0]) - 128) <= 1
    assert abs(int(np.asarray(open_image(tmp_path / "f.tiff"))[0, 0, 0]) - 128) <= 1
    assert np.asarray(open_image(tmp_path / "alpha.png")).min() == 255


def test_item10_sizes_and_counts_are_bounded_before_work(models, tmp_path, capsys):
    """Over --max-pixels (default 1024 x 1024) in or out, over --max-images, a decompression bomb: one line
    each, before decoding or sampling (before: SIGSEGV, gigabytes, a DecompressionBombError traceback)."""
    big = tmp_path / "big.png"
    PIL.Image.new("1", (1100, 1000)).save(big)
    bomb = tmp_path / "bomb.png"
    PIL.Image.new("1", (20000, 20000)).save(bomb)
    out = tmp_path / "o.png"
    cases = [
        ("upscale", ["--image", str(big)], "--image: the image is 1100x1000 = 1,100,000 pixels, over the"),
        ("upscale", ["--image", str(bomb)], f"--image: {bomb}: Image size (400000000 pixels) exceeds"),
        ("inpaint", ["--image", str(big)], "--image: the image is 1100x1000"),
        ("inpaint", ["--num-images", "300"], "--num-images: 300 images is more than --max-images 256"),
        (
            "upscale",
            ["--image", str(models / "low.png")] * 3 + ["--max-images", "2"],
            "--image: 4 images is more than --max-images 2",
        ),
        (
            "generate",
            ["--height", "2048", "--width", "2048"],
            "--height/--width: the output would be 2048x2048 = 4,194,304 pixels, over --max-pixels 1,048,576",
        ),
        ("upscale", ["--max-pixels", str((2 * LOW_RES) ** 2 - 1)], "--image: the output would be 16x16"),
    ]
    for name, extra, message in cases:
        assert hfldm_main([*command(models, name, out), *extra]) == 2, (name, extra)
        assert one_line_error(capsys, name).startswith(message)
    assert not out.exists()


def test_item13_invalid_utf8_in_a_prompt_is_one_line_in_the_cli_and_the_api(models, tmp_path, capsys):
    """A prompt with an invalid UTF-8 byte (a lone surrogate once decoded): the CLI names --prompt /
    --negative-prompt, the API `prompt` (before: a tokenizer TypeError traceback in both)."""
    out = tmp_path / "x.png"
    for flag in ("--prompt", "--negative-prompt"):
        assert hfldm_main([*command(models, "generate", out), flag, "\udcff cat"]) == 2
        assert one_line_error(capsys, "generate") == f"{flag}: '\\udcff cat' is not valid UTF-8 text (byte 0)"
    command_line = [sys.executable, "-m", "hfldm.cli", *command(models, "generate", out)]
    result = subprocess.run(
        [os.fsencode(a) for a in command_line] + [b"--prompt", b"\xff cat"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith(
        "hfldm generate: error: --prompt: '\\udcff cat' is not valid UTF-8 text"
    )
    with pytest.raises(ValueError, match=r"^prompt: '\\udcff cat' is not valid Unicode text \(character 0"):
        text_pipeline()("\udcff cat", num_inference_steps=1)
    assert not out.exists()
