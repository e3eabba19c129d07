"""#36, loading: model_index.json never makes hfldm import a module outside hfldm / diffusers / transformers
without trust_remote_code (item 6), an unimportable entry and a damaged model_index.json are one line naming
the file (items 16, 18). Each test failed on 7e03a4a."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from _superres_fixtures import save_diffusers_ldm_sr
from PIL import Image

from hfldm import LatentDiffusionSuperResolutionPipeline
from hfldm.cli import main

PAYLOAD = "import pathlib; pathlib.Path({marker!r}).write_text('ran')\nclass KLAutoencoder: pass\n"


@pytest.fixture(scope="module")
def diffusers_sr(tmp_path_factory):
    return save_diffusers_ldm_sr(tmp_path_factory.mktemp("ldm-sr") / "model")


def planted(diffusers_sr, tmp_path, library: str):
    """A copy of the diffusers SR folder whose `vqvae` entry names `library`, a payload file beside it."""
    folder = tmp_path / "evil"
    shutil.copytree(diffusers_sr, folder)
    (folder / "vqvae" / "payload.py").write_text(PAYLOAD.format(marker=str(tmp_path / "pwned")))
    index = json.loads((folder / "model_index.json").read_text())
    index["vqvae"] = [library, "KLAutoencoder"]
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def test_item6_a_planted_payload_module_never_runs(diffusers_sr, tmp_path, monkeypatch):
    """`"vqvae": ["evil.vqvae.payload", ...]` (a file of the folder, importable from the working directory):
    refused in one line naming the entry and trust_remote_code; the payload's marker is never written
    (before: payload.py ran)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # as under `python -m`, where the working directory is on it
    folder = planted(diffusers_sr, tmp_path, "evil.vqvae.payload")
    with pytest.raises(
        ValueError,
        match=r"^model_index.json's 'vqvae': \['evil.vqvae.payload', 'KLAuto.*"
        r"outside hfldm, diffusers, transformers; .*trust_remote_code=True",
    ):
        LatentDiffusionSuperResolutionPipeline.from_pretrained(str(folder))
    assert not (tmp_path / "pwned").exists()
    assert "evil.vqvae.payload" not in sys.modules


def test_item6_the_cli_never_imports_a_module_named_by_a_folder(diffusers_sr, tmp_path):
    """`"vqvae": ["this", ...]` under `hfldm upscale`: exit 2, one line; `this` (which prints the Zen of
    Python when imported) is never imported (before: it was)."""
    folder = planted(diffusers_sr, tmp_path, "this")
    Image.new("RGB", (32, 32)).save(tmp_path / "in.png")
    command = [
        sys.executable,
        "-m",
        "hfldm.cli",
        "upscale",
        "--model",
        str(folder),
        "--image",
        str(tmp_path / "in.png"),
        "--steps",
        "1",
        "--out",
        str(tmp_path / "out.png"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Beautiful is better than ugly" not in result.stdout
    assert result.stderr.strip().splitlines()[-1].startswith("hfldm upscale: error: ")
    assert "model_index.json's 'vqvae': ['this', 'KLAutoencoder'] names a library outside" in result.stderr


def test_item16_an_unimportable_allowed_entry_is_one_line(diffusers_sr, tmp_path):
    """An allowed library without the module or class: ValueError naming the entry (before:
    ModuleNotFoundError traceback)."""
    folder = planted(diffusers_sr, tmp_path, "diffusers.no_such_module")
    with pytest.raises(
        ValueError, match=r"^model_index.json's 'vqvae': .* cannot be loaded \(No module named"
    ):
        LatentDiffusionSuperResolutionPipeline.from_pretrained(str(folder))


def test_item18_a_damaged_model_index_names_the_file_and_the_flag(diffusers_sr, tmp_path, capsys):
    """model_index.json that is not JSON: '--model: .../model_index.json is not valid JSON (...)' (before:
    'Expecting value: line 2 column 1')."""
    folder = planted(diffusers_sr, tmp_path, "diffusers")
    (folder / "model_index.json").write_text("{\n")
    Image.new("RGB", (32, 32)).save(tmp_path / "in.png")
    rc = main(
        [
            "upscale",
            "--model",
            str(folder),
            "--image",
            str(tmp_path / "in.png"),
            "--out",
            str(tmp_path / "out.png"),
        ]
    )
    assert rc == 2
    assert capsys.readouterr().err.startswith(
        f"hfldm upscale: error: --model: {folder / 'model_index.json'} is not valid JSON ("
    )
