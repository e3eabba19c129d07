"""The training code: its losses against their closed forms, and the three accelerate scripts run end to end
on a tiny digits dataset (exact resume after SIGKILL, 2 processes = 1 process with twice the batch, the
autoencoder and LoRA scripts, one-line argument errors before training starts)."""

from __future__ import annotations

import importlib.util
import os
import runpy
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hfldm import ConditionalUNet, DDPMScheduler, KLAutoencoder, LatentDiffusionPipeline, VQAutoencoder
from hfldm.autoencoders import DiagonalGaussian
from hfldm.data.arguments import DataArguments
from hfldm.data.digits import load_digits_dataset
from hfldm.training.args import TrainingArguments, build_parser, parse_args
from hfldm.training.losses import adaptive_gan_weight, hinge_d_loss, kl_loss, ldm_loss, min_snr_weights
from hfldm.training.randomness import draw_step_noise, sample_generators

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
RESOLUTION = 16


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """96 training and 24 test digits at 16 px, saved like `hfldm data digits` does."""
    rows = load_digits_dataset(RESOLUTION, limit=120)
    folder = tmp_path_factory.mktemp("digits")
    datasets.DatasetDict(train=rows.select(range(96)), test=rows.select(range(96, 120))).save_to_disk(folder)
    return folder


def tiny_autoencoder() -> KLAutoencoder:
    torch.manual_seed(0)
    return KLAutoencoder(
        block_out_channels=(8, 16), layers_per_block=1, latent_channels=2, norm_num_groups=8, sample_size=16
    )


@pytest.fixture(scope="module")
def autoencoder(tmp_path_factory) -> Path:
    """An (untrained) f = 2 KL autoencoder folder: the LDM scripts only need its interface."""
    folder = tmp_path_factory.mktemp("autoencoder")
    tiny_autoencoder().save_pretrained(folder)
    return folder


def flags(**values) -> list[str]:
    """Command-line flags: flags(max_train_steps=3) -> ["--max_train_steps", "3"]."""
    return [item for name, value in values.items() for item in (f"--{name}", str(value))]


def run_script(script: str, *args: str, launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    command = [*(launcher or [sys.executable]), str(ROOT / "training" / script), *args]
    result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def ldm_args(digits: Path, autoencoder: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--autoencoder", str(autoencoder), "--train_data_dir", str(digits), "--resolution", str(RESOLUTION),
        "--unet_config", str(ROOT / "training/configs/unet_tiny.yaml"), "--output_dir", str(out),
        "--report_to", "none", "--validation_steps", "0", "--learning_rate", "1e-3",
        "--scale_estimation_images", "32", *extra,
    ]  # fmt: skip


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def ema_shadow(checkpoint: Path) -> dict:
    state = torch.load(checkpoint / "custom_checkpoint_0.pkl", weights_only=True)  # diffusers' EMAModel state
    return {"step": state["optimization_step"], **{str(i): p for i, p in enumerate(state["shadow_params"])}}


# ------------------------------------------------------------------------------------------------ losses
def tiny_unet(block_out_channels=(8, 16), **kwargs) -> ConditionalUNet:
    torch.manual_seed(0)
    config = dict(in_channels=2, out_channels=2, block_out_channels=block_out_channels, layers_per_block=1)
    unet = ConditionalUNet(
        **config, attention_levels=(False, True), num_attention_heads=2, norm_num_groups=4, **kwargs
    )
    torch.nn.init.normal_(unet.conv_out.weight, std=0.1)  # zero-initialised: make ε_θ depend on its input
    return unet.eval()


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_ldm_loss_is_the_simplified_objective(prediction_type):
    """L = mean ||target − ε_θ(√ᾱ_t z_0 + √(1−ᾱ_t) ε, t)||², target ε or v = √ᾱ_t ε − √(1−ᾱ_t) z_0."""
    unet, scheduler = tiny_unet(), DDPMScheduler(num_train_timesteps=100, prediction_type=prediction_type)
    g = torch.Generator().manual_seed(1)
    z0, noise = torch.randn(3, 2, 8, 8, generator=g), torch.randn(3, 2, 8, 8, generator=g)
    t = torch.tensor([3, 50, 99])
    a = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    z_t = a.sqrt() * z0 + (1 - a).sqrt() * noise
    target = noise if prediction_type == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * z0
    with torch.no_grad():
        expected = ((unet(z_t, t).sample - target) ** 2).mean()
        loss = ldm_loss(unet, scheduler, z0, {}, noise, t)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_min_snr_weights_closed_form():
    """Hang et al. 2023: w = min(SNR, γ)/SNR for ε, min(SNR, γ)/(SNR + 1) for v, SNR = ᾱ/(1 − ᾱ)."""
    t = torch.tensor([0, 10, 500, 999])
    for prediction_type, denominator in (("epsilon", 0.0), ("v_prediction", 1.0)):
        scheduler = DDPMScheduler(prediction_type=prediction_type)
        a = scheduler.alphas_cumprod[t].double()
        snr = a / (1 - a)
        expected = torch.minimum(snr, torch.tensor(5.0, dtype=torch.float64)) / (snr + denominator)
        torch.testing.assert_close(min_snr_weights(scheduler, t, 5.0).double(), expected, rtol=1e-4, atol=0)
    assert min_snr_weights(DDPMScheduler(), t, 5.0)[-1] == pytest.approx(1.0)  # low SNR: weight 1


def test_adaptive_gan_weight_is_the_ratio_of_gradient_norms():
    """Esser et al. eq. 7 on G_L = W: L_rec = Σ a⊙W, L_GAN = Σ b⊙W give λ = ‖a‖ / (‖b‖ + δ)."""
    w = torch.nn.Parameter(torch.randn(4, 3))
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    weight = adaptive_gan_weight((a * w).sum(), (b * w).sum(), w, delta=1e-4)
    assert weight.item() == pytest.approx((a.norm() / (b.norm() + 1e-4)).item(), rel=1e-6)
    assert not weight.requires_grad


def test_hinge_and_kl_losses_closed_forms():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.5 * (0.25 + 0.75))
    mean, logvar = torch.randn(2, 2, 4, 4), torch.randn(2, 2, 4, 4) * 0.3
    posterior = DiagonalGaussian(torch.cat([mean, logvar], dim=1))
    x = torch.zeros(2, 3, 8, 8)
    kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(dim=(1, 2, 3)).mean() / (3 * 8 * 8)
    assert kl_loss(posterior, x).item() == pytest.approx(kl.item(), rel=1e-5)


def test_training_noise_depends_on_the_sample_not_on_the_batch_split():
    """Samples 0..7 drawn as one batch or as two halves (two processes) get the same t, ε and dropout."""
    whole = draw_step_noise(sample_generators(7, 3, list(range(8))), (2, 4, 4), 1000, 0.5)
    halves = [
        draw_step_noise(sample_generators(7, 3, list(r)), (2, 4, 4), 1000, 0.5)
        for r in (range(4), range(4, 8))
    ]
    torch.testing.assert_close(whole.noise, torch.cat([h.noise for h in halves]), rtol=0, atol=0)
    assert whole.timesteps.tolist() == sum((h.timesteps.tolist() for h in halves), [])
    assert whole.drop.tolist() == sum((h.drop.tolist() for h in halves), [])
    other_step = draw_step_noise(sample_generators(7, 4, list(range(8))), (2, 4, 4), 1000, 0.5)
    assert not torch.equal(whole.noise, other_step.noise)
    assert (
        0.3
        < draw_step_noise(sample_generators(0, 0, list(range(400))), (1, 1, 1), 10, 0.5).drop.float().mean()
        < 0.7
    )


# ------------------------------------------------------------------------------------------------ scripts
@pytest.mark.slow
def test_resume_after_sigkill_matches_the_uninterrupted_run(digits, autoencoder, tmp_path):
    """Kill -9 after the step-4 checkpoint, resume with `latest`: U-Net, EMA and optimiser path match a run
    that never stopped (class labels, CFG dropout, flips, min-SNR, noise offset, accumulation, cosine LR)."""
    extra = flags(label_column="label", max_samples=64, train_batch_size=8, max_train_steps=16)
    extra += flags(gradient_accumulation_steps=2, cond_drop_prob=0.5, snr_gamma=5, noise_offset=0.1)
    extra += flags(lr_scheduler="cosine", lr_warmup_steps=3, checkpointing_steps=4, checkpoints_total_limit=2)
    extra += flags(random_flip=True)
    script = [sys.executable, str(ROOT / "training/train_ldm.py")]
    quiet = dict(cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, text=True)
    reference_args = ldm_args(digits, autoencoder, tmp_path / "ref", *extra)
    reference = subprocess.Popen([*script, *reference_args], stderr=subprocess.PIPE, **quiet)
    victim_args = ldm_args(digits, autoencoder, tmp_path / "run", *extra)
    victim = subprocess.Popen([*script, *victim_args], stderr=subprocess.DEVNULL, **quiet)
    deadline = time.time() + 300
    while (
        not (tmp_path / "run" / "checkpoint-4").is_dir() and victim.poll() is None and time.time() < deadline
    ):
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (tmp_path / "run" / "model_index.json").exists()
    resumed = run_script("train_ldm.py", *victim_args, "--resume_from_checkpoint", "latest")
    assert "resuming from" in resumed.stdout + resumed.stderr
    _, stderr = reference.communicate(timeout=600)
    assert reference.returncode == 0, stderr[-3000:]

    ref, run = tmp_path / "ref", tmp_path / "run"
    assert sorted(p.name for p in run.glob("checkpoint-*")) == [
        "checkpoint-12",
        "checkpoint-16",
    ]  # total limit
    for name in ("checkpoint-16/model.safetensors", "unet/diffusion_pytorch_model.safetensors"):
        assert max_difference(load_file(ref / name), load_file(run / name)) <= 1e-6, name
    ref_ema, run_ema = ema_shadow(ref / "checkpoint-16"), ema_shadow(run / "checkpoint-16")
    assert ref_ema.pop("step") == run_ema.pop("step") == 16
    assert max_difference(ref_ema, run_ema) <= 1e-6


@pytest.mark.slow
def test_cached_latents_minilm_bf16_to_a_loadable_pipeline(digits, autoencoder, tmp_path):
    """Latent cache + frozen MiniLM embeddings + bf16 autocast: validation grid from prompts, latent scale
    estimated into the saved vae config, and a folder DiffusionPipeline.from_pretrained can sample from."""
    from diffusers import DiffusionPipeline

    from hfldm.data.arguments import DataArguments
    from hfldm.data.latent_cache import cache_latents
    from hfldm.text import load_minilm

    cache = tmp_path / "cache"
    data = DataArguments(train_data_dir=str(digits), resolution=RESOLUTION, max_samples=32)
    cache_latents(data, KLAutoencoder.from_pretrained(autoencoder).eval(), cache, text_model=load_minilm())
    out = tmp_path / "ldm"
    extra = flags(cached_latents=cache, text_encoder="minilm", mixed_precision="bf16", max_train_steps=2)
    extra += flags(train_batch_size=8, validation_steps=2, num_inference_steps=2, report_to="tensorboard")
    extra += ["--validation_prompts", "digit 3", "digit 7", "--validation_seeds", "0", "1"]
    run_script("train_ldm.py", *ldm_args(digits, autoencoder, out), *extra)
    grid = out / "validation" / "samples-000002.png"
    assert grid.is_file() and (out / "logs").is_dir()

    pipe = DiffusionPipeline.from_pretrained(out, trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe).__name__ == "LatentDiffusionPipeline" and pipe.unet.config.cross_attention_dim == 384
    assert pipe.scheduler.config.clip_sample is False  # scaled latents leave [-1, 1]; clipping ruins samples
    scale = pipe.vae.config.scaling_factor
    rows = datasets.load_from_disk(cache).with_format("torch")
    means, stds = torch.stack(list(rows["latent_mean"])), torch.stack(list(rows["latent_std"]))
    sample_std = (means.var() + (stds**2).mean()).sqrt()  # std of z = μ + σ·η over images and positions
    assert scale == pytest.approx(1 / sample_std.item(), rel=0.05)
    images = pipe(prompt="digit 3", num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                  output_type="np").images  # fmt: skip
    assert images.shape == (1, RESOLUTION, RESOLUTION, 3) and np.isfinite(images).all()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_like_one_process_with_twice_the_batch(digits, autoencoder, tmp_path):
    """accelerate launch, 2 CPU processes (gloo) × 4 images = 1 process × 8 images, with a jointly trained
    text encoder and 50 % condition dropout: same U-Net, τ_θ and EMA after 3 steps, up to float rounding."""
    extra = flags(
        text_encoder="scratch",
        text_hidden_size=32,
        text_layers=1,
        text_vocab_size=60,
        max_samples=64,
        max_train_steps=3,
        cond_drop_prob=0.5,
        checkpointing_steps=3,
    )
    launcher = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()),
    ]  # fmt: skip
    two = subprocess.Popen(
        [*launcher, str(ROOT / "training/train_ldm.py"),
         *ldm_args(digits, autoencoder, tmp_path / "two", *extra, "--train_batch_size", "4")],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    run_script(
        "train_ldm.py", *ldm_args(digits, autoencoder, tmp_path / "one", *extra, "--train_batch_size", "8")
    )
    output, _ = two.communicate(timeout=600)
    assert two.returncode == 0, output[-3000:]

    one, two = tmp_path / "one" / "checkpoint-3", tmp_path / "two" / "checkpoint-3"
    unet_one, unet_two = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    assert max_difference(unet_one, unet_two) < 1e-4  # Adam steps are ±1e-3: different data would show
    assert max(float((unet_one[k] - unet_two[k]).abs().mean()) for k in unet_one) < 1e-6
    assert (
        max_difference(load_file(one / "model_1.safetensors"), load_file(two / "model_1.safetensors")) < 1e-4
    )
    ema_one, ema_two = ema_shadow(one), ema_shadow(two)
    assert ema_one.pop("step") == ema_two.pop("step") == 3
    assert max_difference(ema_one, ema_two) < 1e-4


def tensorboard_scalars(logdir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next(logdir.rglob("events.out.tfevents.*")).parent)).Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.mark.slow
def test_autoencoder_script_kl_with_patch_gan(digits, tmp_path):
    out = tmp_path / "kl"
    run_script("train_autoencoder.py", *flags(
        train_data_dir=digits, resolution=RESOLUTION, validation_split="test", num_validation_images=16,
        regularizer="kl", downsample_factor=2, base_channels=16, latent_channels=2, layers_per_block=1,
        disc_layers=2, disc_channels=16, disc_start=20, max_train_steps=30, train_batch_size=8,
        learning_rate=2e-3, logging_steps=1, validation_steps=15, checkpointing_steps=100, output_dir=out,
    ))  # fmt: skip
    scalars = tensorboard_scalars(out / "logs")
    rec = scalars["train/rec_loss"]
    assert len(rec) == 30 and np.mean(rec[-3:]) < 0.7 * np.mean(rec[:3])  # L1 falls
    assert len(scalars["train/gan_weight"]) == 10 and min(scalars["train/gan_weight"]) > 0  # after disc_start
    assert len(scalars["train/d_loss"]) == 10
    assert len(scalars["val/psnr"]) == 3 and scalars["val/psnr"][-1] > scalars["val/psnr"][0]
    assert 0 < scalars["val/ssim"][-1] <= 1
    grid = out / "validation" / "reconstructions-000030.png"
    from PIL import Image

    assert Image.open(grid).size == (4 * 2 * RESOLUTION, 4 * RESOLUTION)  # 16 input | reconstruction pairs
    vae = KLAutoencoder.from_pretrained(out)
    assert vae.downsample_factor == 2 and vae.config.latent_channels == 2
    assert (out / "discriminator" / "config.json").is_file()


@pytest.mark.slow
def test_autoencoder_script_vq(digits, tmp_path):
    out = tmp_path / "vq"
    run_script("train_autoencoder.py", *flags(
        train_data_dir=digits, resolution=RESOLUTION, num_validation_images=8, regularizer="vq",
        downsample_factor=4, base_channels=8, latent_channels=3, num_vq_embeddings=32, layers_per_block=1,
        disc_layers=2, disc_channels=8, disc_start=3, max_train_steps=5, train_batch_size=8, logging_steps=1,
        validation_steps=5, checkpointing_steps=100, output_dir=out,
    ))  # fmt: skip
    scalars = tensorboard_scalars(out / "logs")
    assert len(scalars["train/reg_loss"]) == 5 and all(v > 0 for v in scalars["train/reg_loss"])
    assert 1 <= scalars["val/codebook_perplexity"][-1] <= 32
    vae = VQAutoencoder.from_pretrained(out)
    assert vae.downsample_factor == 4 and vae.config.num_vq_embeddings == 32


def save_pipeline(folder: Path, kind: str) -> Path:
    """A LatentDiffusionPipeline (random weights, nothing zero-initialised) conditioned on the digits' class
    labels or on their captions through a small DistilBERT τ_θ."""
    from hfldm.text import make_text_encoder, train_caption_tokenizer

    vae = tiny_autoencoder()
    vae.register_to_config(scaling_factor=0.7)
    text = dict(tokenizer=None, text_encoder=None, id2label={i: str(i) for i in range(10)})
    if kind == "text":
        tokenizer = train_caption_tokenizer([f"digit {d}" for d in range(10)], vocab_size=40)
        torch.manual_seed(1)
        text = dict(tokenizer=tokenizer, text_encoder=make_text_encoder(tokenizer, 32, layers=1).eval())
    condition = dict(cross_attention_dim=32) if kind == "text" else dict(num_class_embeds=11)
    unet = tiny_unet((16, 32), sample_size=8, **condition)
    with torch.no_grad():  # as after training: no zero-initialised layer blocks the gradient to the attention
        for parameter in unet.parameters():
            if not parameter.any():
                parameter.normal_(std=0.05)
    LatentDiffusionPipeline(vae, unet, DDPMScheduler(num_train_timesteps=100), **text).save_pretrained(folder)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["class", "text"])
def test_lora_adapter_changes_outputs_and_switches_off(digits, kind, tmp_path):
    """U-Net adapters (and τ_θ's, for text) trained a few steps: on, the same seed gives another image; at
    scale 0 or switched off, the pipeline's own; the U-Net adapter is under 5 % of the U-Net's size."""
    from diffusers.utils.peft_utils import set_adapter_layers

    from hfldm.training.lora import load_text_encoder_lora

    pipeline_dir, out = save_pipeline(tmp_path / "pipeline", kind), tmp_path / "lora"
    condition = ["--train_text_encoder", "true"] if kind == "text" else ["--label_column", "label"]
    run_script("train_lora.py", *condition, *flags(
        pretrained_model=pipeline_dir, train_data_dir=digits, resolution=RESOLUTION, max_samples=32, rank=4,
        max_train_steps=4, train_batch_size=8, learning_rate=1e-2, validation_steps=0, report_to="none",
        output_dir=out,
    ))  # fmt: skip
    adapter, unet_file = (
        out / "pytorch_lora_weights.safetensors",
        pipeline_dir / "unet/diffusion_pytorch_model.safetensors",
    )
    assert adapter.stat().st_size < 0.05 * unet_file.stat().st_size
    assert all(".lora_" in k for k in load_file(adapter))

    pipe = LatentDiffusionPipeline.from_pretrained(pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    condition = dict(prompt=["digit 3", "digit 7"]) if kind == "text" else dict(class_labels=[3, 7])

    def sample() -> np.ndarray:
        g = torch.Generator().manual_seed(0)
        return pipe(**condition, num_inference_steps=3, generator=g, output_type="np").images

    base = sample()
    if kind == "text":
        load_text_encoder_lora(pipe.text_encoder, out)
        assert np.abs(sample() - base).max() > 1e-4  # τ_θ's adapter alone changes the image
        set_adapter_layers(pipe.text_encoder, False)
        np.testing.assert_allclose(sample(), base, atol=1e-6)
    pipe.unet.load_lora_adapter(str(out), prefix=None, use_safetensors=True, adapter_name="digits")
    adapted = sample()
    assert np.abs(adapted - base).max() > 1e-3
    pipe.unet.set_adapters(["digits"], weights=[0.0])
    np.testing.assert_allclose(sample(), base, atol=1e-6)
    pipe.unet.set_adapters(["digits"], weights=[1.0])
    np.testing.assert_allclose(sample(), adapted, atol=1e-6)
    pipe.unet.disable_lora()
    np.testing.assert_allclose(sample(), base, atol=1e-6)


# ------------------------------------------------------------------------------------------------ arguments
def bad_argument_cases(digits: Path, autoencoder: Path, tmp_path: Path) -> list[tuple[str, str, list[str]]]:
    bad_unet = tmp_path / "unet.yaml"
    bad_unet.write_text("block_out_channels: [8, 16]\nin_channels: 3\n")
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
        ("train_ldm.py", "--cond_drop_prob", [*ldm, "--cond_drop_prob", "1.5"]),
        ("train_ldm.py", "--config", [*ldm, "--config", str(unknown_key)]),
        ("train_ldm.py", "--mixed_precision", [*ldm, "--mixed_precision", "fp16"]),
        ("train_ldm.py", "--train_batch_size", [*ldm, "--train_batch_size", "0"]),
        (
            "train_autoencoder.py",
            "--downsample_factor",
            ["--train_data_dir", str(digits), "--downsample_factor", "3"],
        ),
        (
            "train_autoencoder.py",
            "--disc_layers",
            ["--train_data_dir", str(digits), "--resolution", "16", "--disc_layers", "3"],
        ),  # fmt: skip
        ("train_lora.py", "--pretrained_model", ["--pretrained_model", str(tmp_path / "nowhere")]),
    ]


@pytest.fixture
def in_process():
    """For scripts run inside the test process: forget accelerate's process-wide state afterwards."""
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def test_bad_arguments_fail_in_one_line_before_training(
    digits, autoencoder, tmp_path, capsys, monkeypatch, in_process
):
    """Each bad argument: exit code 2 and one stderr line naming it, before a training step (no checkpoint,
    no progress bar). Run in-process (the scripts' own `run`), plus one real subprocess below."""
    for script, name, argv in bad_argument_cases(digits, autoencoder, tmp_path):
        monkeypatch.setattr(sys, "argv", [script, *argv])
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(ROOT / "training" / script), run_name="__main__")
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2, (name, err)
        assert err and err[-1].startswith(f"{script}: error: ") and name in err[-1], (name, err)
        assert "steps:" not in "\n".join(err) and not list(tmp_path.glob("out/checkpoint-*")), name


@pytest.mark.slow
def test_bad_argument_from_the_command_line_has_no_traceback(digits, autoencoder, tmp_path):
    command = [sys.executable, str(ROOT / "training/train_ldm.py"), *ldm_args(digits, autoencoder, tmp_path),
               "--snr_gamma", "-1"]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "train_ldm.py: error: --snr_gamma: must be > 0, got -1.0"


SHARED_ARGUMENTS = ("DataArguments", "TrainingArguments")
SCRIPTS = ["train_autoencoder.py", "train_ldm.py", "train_lora.py"]


def script_arguments(script: str, monkeypatch) -> type:
    """The script's own argument dataclass (imported as a module, not run)."""
    spec = importlib.util.spec_from_file_location(script.removesuffix(".py"), ROOT / "training" / script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
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


CONFIG_SCRIPTS = {"autoencoder": "train_autoencoder.py", "ldm": "train_ldm.py", "lora": "train_lora.py"}


@pytest.mark.parametrize("config", sorted(p.name for p in (ROOT / "training/configs").glob("[!u]*.yaml")))
def test_shipped_configs_parse(config, monkeypatch):
    script = CONFIG_SCRIPTS[config.split("_")[0]]
    argv = ["--config", str(ROOT / "training/configs" / config)]
    parse_args(script_arguments(script, monkeypatch), DataArguments, TrainingArguments, argv=argv)
