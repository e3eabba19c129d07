"""The training scripts' arguments: one-line errors before training, --help, YAML configs."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from _scripts import load_script
from _training_helpers import ENV, ROOT, ldm_args

from hfldm.data.arguments import DataArguments
from hfldm.training.args import TrainingArguments, build_parser, parse_args


def bad_argument_cases(
    digits: Path, autoencoder: Path, tmp_path: Path, parts: Path
) -> list[tuple[str, str, list[str]]]:
    bad_unet = tmp_path / "unet.yaml"
    bad_unet.write_text("block_out_channels: [8, 16]\nin_channels: 3\n")
    wide = tmp_path / "wide.yaml"  # cross-attention of width 64; the CLIP text encoder's is 32
    wide.write_text("block_out_channels: [8, 16]\ncross_attention_dim: 64\n")
    wide = str(wide)
    unknown_key = tmp_path / "config.yaml"
    unknown_key.write_text("learning_rat: 0.1\n")
    no_images = tmp_path / "no_images"  # an imagefolder whose only "image" is not one
    no_images.mkdir()
    (no_images / "a.png").write_text("not a png")
    (no_images / "metadata.jsonl").write_text('{"file_name": "a.png", "label": 1}\n')
    ldm = ldm_args(digits, autoencoder, tmp_path / "out")
    return [
        ("train_ldm.py", "--prediction_type", [*ldm, "--prediction_type", "x0"]),
        ("train_ldm.py", "--label_column", [*ldm, "--label_column", "digit"]),
        ("train_ldm.py", "--caption_column", [*ldm, "--text_encoder", "scratch", "--caption_column", "none"]),
        ("train_ldm.py", "--train_data_dir", [*ldm, "--train_data_dir", str(no_images)]),
        ("train_ldm.py", "--unet_config", [*ldm, "--unet_config", str(bad_unet)]),
        ("train_ldm.py", "--resolution", [*ldm, "--resolution", "15"]),
        ("train_ldm.py", "--autoencoder", [*ldm, "--autoencoder", str(tmp_path / "nowhere")]),
        ("train_ldm.py", "--autoencoder", [*ldm, "--autoencoder", "nobody/no-such-vae"]),  # offline Hub id
        ("train_ldm.py", "--autoencoder", [*ldm, "--pretrained_vae_model_name_or_path", str(parts / "clip")]),
        ("train_ldm.py", "--text_encoder", [*ldm, "--text_encoder", str(parts / "sd-like-vae")]),
        ("train_ldm.py", "--text_encoder", [*ldm, "--text_encoder", "nobody/no-such-clip"]),
        ("train_ldm.py", "--train_text_encoder", [*ldm, "--train_text_encoder"]),  # no τ_θ to fine-tune
        (
            "train_ldm.py",
            "--unet_config",
            [*ldm, "--text_encoder", str(parts / "clip"), "--unet_config", str(wide)],
        ),
        ("train_ldm.py", "--cond_drop_prob", [*ldm, "--cond_drop_prob", "1.5"]),
        ("train_ldm.py", "--config", [*ldm, "--config", str(unknown_key)]),
        ("train_ldm.py", "--mixed_precision", [*ldm, "--mixed_precision", "fp16"]),
        ("train_ldm.py", "--train_batch_size", [*ldm, "--train_batch_size", "0"]),
        ("train_ldm.py", "--train_batch_size", [*ldm, "--train_batch_size", "1000"]),  # more than the data
        ("train_ldm.py", "--push_to_hub", [*ldm, "--push_to_hub", "--hub_model_id", "me/ldm"]),  # offline
        ("train_ldm.py", "--report_to", [*ldm, "--report_to", "tensorbored"]),
        ("train_ldm.py", "--sr_factor", [*ldm, "--task", "superres", "--sr_factor", "3"]),  # 16 px
        ("train_ldm.py", "--sr_factor", [*ldm, "--task", "superres", "--sr_factor", "8"]),  # f = 2
        ("train_ldm.py", "--text_encoder", [*ldm, "--task", "superres", "--text_encoder", "minilm"]),
        ("train_ldm.py", "--label_column", [*ldm, "--task", "superres", "--label_column", "label"]),
        ("train_ldm.py", "--sr_noise_std", [*ldm, "--task", "superres", "--sr_noise_std", "-1"]),
        (
            "train_autoencoder.py",
            "--downsample_factor",
            ["--train_data_dir", str(digits), "--downsample_factor", "3"],
        ),
        (
            "train_autoencoder.py",
            "--disc_layers",
            ["--train_data_dir", str(digits), "--resolution", "16", "--disc_layers", "3"],
        ),
        (
            "train_autoencoder.py",
            "--train_batch_size",
            [
                "--train_data_dir",
                str(digits),
                "--resolution",
                "16",
                "--disc_layers",
                "2",
                "--train_batch_size",
                "1000",
            ],
        ),
        ("train_lora.py", "--pretrained_model", ["--pretrained_model", str(tmp_path / "nowhere")]),
    ]


@pytest.fixture
def in_process(monkeypatch):
    """For scripts run inside the test process: their folder on sys.path (as when run: train_lora.py imports
    train_ldm), and accelerate's process-wide state forgotten afterwards."""
    monkeypatch.syspath_prepend(str(ROOT / "training"))
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def test_bad_arguments_fail_in_one_line_before_training(
    digits, autoencoder, parts, tmp_path, capsys, monkeypatch, in_process
):
    """Each bad argument: exit code 2 and one stderr line naming it, before a training step (no checkpoint,
    no progress bar). Run in-process (the scripts' own `run`), plus one real subprocess below."""
    for script, name, argv in bad_argument_cases(digits, autoencoder, tmp_path, parts):
        monkeypatch.setattr(sys, "argv", [script, *argv])
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(ROOT / "training" / script), run_name="__main__")
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2, (name, err)
        assert err and err[-1].startswith(f"{script}: error: ") and name in err[-1], (name, err)
        assert "steps:" not in "\n".join(err) and not list(tmp_path.glob("out/checkpoint-*")), name


@pytest.mark.slow
def test_bad_argument_from_the_command_line_has_no_traceback(digits, autoencoder, tmp_path):
    command = [
        sys.executable,
        str(ROOT / "training/train_ldm.py"),
        *ldm_args(digits, autoencoder, tmp_path),
        "--snr_gamma",
        "-1",
    ]
    result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "train_ldm.py: error: --snr_gamma: must be > 0, got -1.0"


SHARED_ARGUMENTS = ("DataArguments", "TrainingArguments")
SCRIPTS = ["train_autoencoder.py", "train_ldm.py", "train_lora.py", "distill.py"]


def script_arguments(script: str, monkeypatch) -> type:
    """The script's own argument dataclass (imported as a module, not run)."""
    module = load_script(f"training/{script}", monkeypatch)
    return next(v for k, v in vars(module).items() if k.endswith("Arguments") and k not in SHARED_ARGUMENTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_documents_every_argument(script, capsys, monkeypatch, in_process):
    parser = build_parser(script_arguments(script, monkeypatch), DataArguments, TrainingArguments)
    undocumented = [a.dest for a in parser._actions if not (a.help or "").strip()]
    assert not undocumented
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "training" / script), run_name="__main__")
    assert exit_info.value.code == 0
    shown = capsys.readouterr().out
    assert all(option in shown for a in parser._actions for option in a.option_strings)


def test_yaml_config_is_overridden_by_the_command_line(tmp_path, monkeypatch):
    ldm_arguments = script_arguments("train_ldm.py", monkeypatch)
    config = tmp_path / "run.yaml"
    config.write_text("autoencoder: ae\nlearning_rate: 3.0e-4\nvalidation_seeds: [5, 6]\nuse_ema: false\n")
    argv = ["--config", str(config), "--learning_rate", "0.01", "--train_data_dir", "d"]
    args, data, train = parse_args(ldm_arguments, DataArguments, TrainingArguments, argv=argv)
    assert (args.autoencoder, args.validation_seeds, args.use_ema) == ("ae", [5, 6], False)  # from the YAML
    assert train.learning_rate == 0.01 and data.train_data_dir == "d"  # the command line wins
    config.write_text("autoencoder: ae\nprediction_type: x0\n")  # YAML values are checked like CLI ones
    with pytest.raises(ValueError, match="--prediction_type: invalid choice 'x0'"):
        parse_args(ldm_arguments, DataArguments, TrainingArguments, argv=["--config", str(config)])


CONFIG_SCRIPTS = {
    "autoencoder": "train_autoencoder.py",
    "ldm": "train_ldm.py",
    "lora": "train_lora.py",
    "distill": "distill.py",
}


@pytest.mark.parametrize("config", sorted(p.name for p in (ROOT / "training/configs").glob("[!u]*.yaml")))
def test_shipped_configs_parse(config, monkeypatch):
    script = CONFIG_SCRIPTS[config.split("_")[0]]
    argv = ["--config", str(ROOT / "training/configs" / config)]
    parse_args(script_arguments(script, monkeypatch), DataArguments, TrainingArguments, argv=argv)
