"""The `hfldm` command itself: --version, `hfldm env`, both flag spellings, the default model, the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
from _training_helpers import ENV, ROOT

import hfldm
from hfldm.cli import build_parser, either_spelling
from hfldm.cli import main as hfldm_main


def test_version_is_the_one_in_the_package(capsys):
    with pytest.raises(SystemExit) as exit_info:
        hfldm_main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"hfldm {hfldm.__version__}"
    assert 'dynamic = ["version"]' in (ROOT / "pyproject.toml").read_text()  # not written twice


def test_env_prints_versions_and_cpu_features(capsys):
    assert hfldm_main(["env"]) == 0
    lines = dict(line[2:].split(": ", 1) for line in capsys.readouterr().out.splitlines())
    import diffusers
    import torch

    assert lines["torch version"] == torch.__version__ and lines["diffusers version"] == diffusers.__version__
    assert lines["torch threads"] == str(torch.get_num_threads())
    assert "CPU features (bf16)" in lines and lines["hfldm version"] == hfldm.__version__


def test_flags_take_either_spelling():
    parser = build_parser()
    dashed = parser.parse_args(["generate", "--num-images", "3", "--guidance-scale=2", "--out", "x.png"])
    argv = either_spelling(parser, ["generate", "--num_images", "3", "--guidance_scale=2", "--out", "x.png"])
    assert vars(parser.parse_args(argv)) == vars(dashed)
    cached = parser.parse_args(
        either_spelling(parser, ["cache-latents", "--vae", "v", "--out", "o", "--batch-size", "4"])
    )
    assert cached.batch_size == 4  # cache-latents spells its own flags with underscores


def test_default_model_is_the_env_var_then_the_bundled_one(monkeypatch, tmp_path):
    from hfldm.commands.shared import resolve_model
    from hfldm.resources import bundled

    monkeypatch.delenv("HFLDM_MODEL", raising=False)
    if (bundled("hfldm-emoji") / "model_index.json").is_file():
        assert resolve_model(None) == str(bundled("hfldm-emoji"))
    monkeypatch.setenv("HFLDM_MODEL", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="set HFLDM_MODEL"):
        resolve_model(None)


@pytest.mark.slow
def test_the_wheel_carries_the_bundled_models_and_configs(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        env=ENV,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("hfldm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "hfldm/bundled/hfldm-emoji/model_index.json" in names
    assert "hfldm/bundled/hfldm-emoji/unet/diffusion_pytorch_model.safetensors" in names
    assert "hfldm/bundled/hfldm-textimage/config.json" in names
    for model in ("hfldm-emoji-sr", "hfldm-emoji-inpaint"):  # `hfldm upscale` / `hfldm inpaint` offline
        assert f"hfldm/bundled/{model}/unet/diffusion_pytorch_model.safetensors" in names
    assert (
        "hfldm/configs/ldm_emoji32.yaml" in names and "hfldm/pipelines/pipeline_latent_diffusion.py" in names
    )
    assert any(n.endswith("licenses/LICENSE") for n in names)


def test_a_missing_optional_dependency_names_its_extra(monkeypatch, tmp_path, capsys):
    """Required dependencies are inference's; `hfldm data` without `datasets` says which extra to install."""
    import sys

    from hfldm.cli import main as hfldm_main

    for name in [m for m in sys.modules if m == "datasets" or m.startswith("datasets.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ModuleNotFoundError
    assert hfldm_main(["data", "digits", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == 'hfldm data: error: this command needs the datasets package; pip install "hfldm[train]"'
    assert not (tmp_path / "d").exists()


def test_required_dependencies_are_those_of_inference():
    from pathlib import Path

    import tomllib

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    required = {d.split(">")[0].split("=")[0].split("<")[0] for d in project["dependencies"]}
    assert not required & {"datasets", "accelerate", "peft", "torchmetrics", "scipy", "gradio"}
    assert {"torch", "diffusers", "transformers", "safetensors"} <= required
