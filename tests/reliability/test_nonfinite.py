"""nan and inf: refused as arguments (pipeline, CLI, training), stopping training before they reach the
weights, warned about in loaded weights, and refused by `hfldm eval` before FID's matrix square root."""

from __future__ import annotations

import warnings
from pathlib import Path

import datasets
import pytest
import torch
from _ldm_fixtures import _pipeline, class_pipeline, tiny_unet, tiny_vae
from _training_helpers import flags, ldm_args, run_script, tiny_autoencoder
from accelerate import Accelerator

from hfldm import ConditionalUNet, KLAutoencoder
from hfldm.cli import main
from hfldm.eval.fid import compute_fid_kid
from hfldm.training.args import TrainingArguments, parse_args
from hfldm.training.nonfinite import NonFiniteError, stop_on_nonfinite

FEATURE_MODEL = Path(__file__).resolve().parents[2] / "models" / "hfldm-textimage"
NAN, INF = float("nan"), float("inf")


def poison(model: torch.nn.Module) -> torch.nn.Module:
    """Set every weight of `model` to nan (a diverged run)."""
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(NAN)
    return model


def test_the_gradient_guard_skips_its_budget_then_stops_without_an_update(capsys):
    """A finite step updates; of the non-finite ones the first is skipped (weights unchanged, a warning),
    the next raises NonFiniteError naming its step and the budget, with the weights still those of step 1."""
    accelerator = Accelerator(cpu=True)
    torch.manual_seed(0)
    linear = torch.nn.Linear(3, 1)
    model, optimizer = accelerator.prepare(linear, torch.optim.SGD(linear.parameters(), lr=0.1))
    stop_on_nonfinite(accelerator, 1, optimizer)
    x = torch.ones(2, 3)

    def step(scale: float) -> None:
        with accelerator.accumulate(model):
            accelerator.backward(model(x).sum() * scale)
            optimizer.step()
            optimizer.zero_grad()

    before = linear.weight.detach().clone()
    step(1.0)
    after_step_1 = linear.weight.detach().clone()
    assert not torch.equal(before, after_step_1)
    step(NAN)
    assert torch.equal(linear.weight, after_step_1)
    assert (
        "skipped step 2: the loss or gradient is not finite (nan/inf in 2 of 2 grads)"
        in capsys.readouterr().err
    )
    with pytest.raises(
        NonFiniteError, match=r"^training stopped at step 3: .*--skip_nonfinite_steps 1 used up"
    ):
        step(INF)
    assert torch.equal(linear.weight, after_step_1)


@pytest.mark.slow
def test_train_ldm_stops_at_a_nan_loss_and_keeps_the_last_good_checkpoint(digits, tmp_path):
    """Resumed from a good checkpoint with an autoencoder whose latents are nan: step 3 is skipped
    (--skip_nonfinite_steps 1), step 4 ends the run with exit code 3 and one line; checkpoint-2 and the
    saved pipeline are the good run's, byte for byte, and no checkpoint-4 is written."""
    good, bad = tmp_path / "good-vae", tmp_path / "nan-vae"
    tiny_autoencoder().save_pretrained(good)
    diverged = tiny_autoencoder()
    poison(diverged.encoder)  # every latent is nan
    diverged.save_pretrained(bad)
    out = tmp_path / "run"
    extra = flags(max_samples=32, train_batch_size=8, checkpointing_steps=2, scaling_factor=0.5)
    run_script("train_ldm.py", *ldm_args(digits, good, out, *extra, "--max_train_steps", "2"))
    kept = {p: p.read_bytes() for p in [*out.glob("checkpoint-2/*"), *out.glob("unet/*")]}
    args = ldm_args(digits, bad, out, *extra, *flags(max_train_steps=6, skip_nonfinite_steps=1))
    stopped = run_script("train_ldm.py", *args, "--resume_from_checkpoint", "latest", rc=3)
    assert "warning: skipped step 3: the loss or gradient is not finite" in stopped.stderr
    errors = [line for line in stopped.stderr.splitlines() if "error:" in line]  # (the bar shares lines)
    assert len(errors) == 1 and errors[0].startswith(
        "train_ldm.py: error: training stopped at step 4: the loss"
    )
    assert errors[0].endswith(
        "--skip_nonfinite_steps 1 used up. No update was made from it and nothing "
        "saved: checkpoint-2 is the last good state"
    )
    assert "Traceback" not in stopped.stderr
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    assert all(p.read_bytes() == data for p, data in kept.items())


@pytest.mark.slow
def test_train_autoencoder_stops_when_training_diverges(digits, tmp_path):
    """A learning rate of 1e30 overflows the weights after one step: the run stops at step 2 with exit
    code 3 before saving anything (it used to train on at loss=nan and save a nan model)."""
    out = tmp_path / "vae"
    stopped = run_script(
        "train_autoencoder.py",
        *flags(
            train_data_dir=digits,
            resolution=16,
            regularizer="kl",
            downsample_factor=2,
            base_channels=8,
            latent_channels=2,
            layers_per_block=1,
            disc_layers=2,
            disc_channels=8,
            max_train_steps=6,
            train_batch_size=8,
            report_to="none",
            validation_steps=0,
            checkpointing_steps=2,
            output_dir=out,
            learning_rate=1e30,
            num_validation_images=8,
        ),
        rc=3,
    )
    errors = [line for line in stopped.stderr.splitlines() if "error:" in line]
    assert errors == [errors[0]] and errors[0].startswith(
        "train_autoencoder.py: error: training stopped at step 2"
    )
    assert not out.exists() or not list(out.glob("**/*.safetensors"))


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_float_arguments_must_be_finite_everywhere(value, tmp_path, capsys):
    """Training flags, YAML values, CLI flags and pipeline arguments: a ValueError or one line naming the
    user's flag (nan passed every `< 0` check before: black images and nan training with exit code 0)."""
    with pytest.raises(ValueError, match=rf"^--learning_rate: must be a finite number, got {value}"):
        parse_args(TrainingArguments, argv=[f"--learning_rate={value}"])
    config = tmp_path / "config.yaml"
    config.write_text(f"max_grad_norm: {'.nan' if value == 'nan' else value.replace('inf', '.inf')}\n")
    with pytest.raises(ValueError, match=r"^--max_grad_norm: must be a finite number"):
        parse_args(TrainingArguments, argv=["--config", str(config)])

    out = str(tmp_path / "x.png")
    for flag in ("--guidance-scale", "--eta", "--strength"):
        assert main(["generate", f"{flag}={value}", "--out", out]) == 2
        assert (
            capsys.readouterr().err == f"hfldm generate: error: {flag} must be a finite number, got {value}\n"
        )
    assert main(["eval", f"--guidance-scale={value}", "--dataset", str(tmp_path)]) == 2
    assert (
        f"hfldm eval: error: --guidance-scale must be a finite number, got {value}" in capsys.readouterr().err
    )

    pipe, number = class_pipeline(), float(value)
    for name, kwargs in (
        ("guidance_scale", {}),
        ("eta", {}),
        ("strength", {"image": torch.zeros(1, 3, 16, 16)}),
    ):
        with pytest.raises(ValueError, match=rf"^{name} must be a finite number, got {value}"):
            pipe(class_labels=[0], num_inference_steps=2, **{name: number}, **kwargs)


def test_loading_nan_weights_warns_with_the_folder_and_count(tmp_path):
    """A nan model still loads (to be inspected), with a RuntimeWarning naming the class, folder and count."""
    poison(tiny_unet()).save_pretrained(tmp_path / "unet")
    with pytest.warns(
        RuntimeWarning, match=r"ConditionalUNet from .*unet: (\d+) of \1 weight tensors hold nan"
    ):
        ConditionalUNet.from_pretrained(tmp_path / "unet")
    tiny_vae().save_pretrained(tmp_path / "vae")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        KLAutoencoder.from_pretrained(tmp_path / "vae")  # finite weights: silent


@pytest.mark.skipif(not FEATURE_MODEL.is_dir(), reason="models/hfldm-textimage is not present")
def test_eval_refuses_nan_samples_naming_the_model_and_count(tmp_path, capsys):
    """A diverged class model: `hfldm eval` exits 2 with one line saying how many samples of which model
    are not finite, and writes no report (it crashed in MKL's DGEBAL with exit code 139 before)."""
    from hfldm.data.digits import load_digits_dataset

    model = tmp_path / "diverged"
    unet = poison(tiny_unet(num_class_embeds=11))
    _pipeline(vae=tiny_vae(), unet=unet, id2label={i: str(i) for i in range(10)}).save_pretrained(model)
    digits = load_digits_dataset(16, limit=40)
    datasets.DatasetDict(train=digits.select(range(30)), test=digits.select(range(30, 40))).save_to_disk(
        tmp_path / "digits"
    )
    argv = ["eval", "--model", str(model), "--dataset", str(tmp_path / "digits"), "--steps", "2"]
    argv += ["--num-samples", "4", "--feature-model", str(FEATURE_MODEL), "--out", str(tmp_path / "report")]
    with pytest.warns(RuntimeWarning, match="hold nan/inf"):
        assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"hfldm eval: error: --model: 4 of 4 samples of {model} hold nan/inf values (a diverged model?); "
        "no report written"
    )
    assert not (tmp_path / "report" / "report.json").exists()
    with pytest.raises(ValueError, match=r"^fake_images: 1 of 3 images hold nan/inf values"):
        compute_fid_kid(
            torch.rand(3, 3, 8, 8), torch.rand(3, 3, 8, 8).index_fill(0, torch.tensor([1]), NAN), 8
        )


@pytest.mark.slow
def test_train_lora_stops_when_training_diverges(digits, tmp_path):
    """The same for LoRA: a learning rate of 1e30 stops the run at step 2, exit code 3, no adapter saved."""
    from tests.training.test_train_lora import save_pipeline

    out = tmp_path / "lora"
    stopped = run_script(
        "train_lora.py",
        "--label_column",
        "label",
        *flags(
            pretrained_model=save_pipeline(tmp_path / "pipeline", "class"),
            train_data_dir=digits,
            resolution=16,
            max_samples=32,
            rank=4,
            max_train_steps=4,
            train_batch_size=8,
            learning_rate=1e30,
            validation_steps=0,
            report_to="none",
            output_dir=out,
        ),
        rc=3,
    )
    errors = [line for line in stopped.stderr.splitlines() if "error:" in line]
    assert errors == [errors[0]] and errors[0].startswith("train_lora.py: error: training stopped at step 2")
    assert not (out / "pytorch_lora_weights.safetensors").exists()
