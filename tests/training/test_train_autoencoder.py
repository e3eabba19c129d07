"""train_autoencoder.py end to end on tiny digits: KL with the PatchGAN, and VQ."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _training_helpers import RESOLUTION, flags, run_script

from hfldm import KLAutoencoder, VQAutoencoder


def tensorboard_scalars(logdir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next(logdir.rglob("events.out.tfevents.*")).parent)).Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.mark.slow
def test_autoencoder_script_kl_with_patch_gan(digits, tmp_path):
    out = tmp_path / "kl"
    run_script(
        "train_autoencoder.py",
        *flags(
            train_data_dir=digits,
            resolution=RESOLUTION,
            validation_split="test",
            num_validation_images=16,
            regularizer="kl",
            downsample_factor=2,
            base_channels=16,
            latent_channels=2,
            layers_per_block=1,
            disc_layers=2,
            disc_channels=16,
            disc_start=20,
            max_train_steps=30,
            train_batch_size=8,
            learning_rate=2e-3,
            logging_steps=1,
            validation_steps=15,
            checkpointing_steps=100,
            output_dir=out,
        ),
    )
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
    run_script(
        "train_autoencoder.py",
        *flags(
            train_data_dir=digits,
            resolution=RESOLUTION,
            num_validation_images=8,
            regularizer="vq",
            downsample_factor=4,
            base_channels=8,
            latent_channels=3,
            num_vq_embeddings=32,
            layers_per_block=1,
            disc_layers=2,
            disc_channels=8,
            disc_start=3,
            max_train_steps=5,
            train_batch_size=8,
            logging_steps=1,
            validation_steps=5,
            checkpointing_steps=100,
            output_dir=out,
        ),
    )
    scalars = tensorboard_scalars(out / "logs")
    assert len(scalars["train/reg_loss"]) == 5 and all(v > 0 for v in scalars["train/reg_loss"])
    used_codes = 32 * scalars["val/codebook_usage"][-1]
    assert scalars["val/codebook_perplexity"][-1] <= used_codes + 1e-4  # exp(entropy) <= the support
    vae = VQAutoencoder.from_pretrained(out)
    assert vae.downsample_factor == 4 and vae.config.num_vq_embeddings == 32


def test_init_from_fine_tunes_a_trained_autoencoder(digits, tmp_path):
    """--init_from: the trained autoencoder's architecture and weights, not the flags'; 1/σ̂ reset to 1."""
    from _ldm_fixtures import tiny_vae

    start = tiny_vae("kl")  # f = 2, widths (8, 8), scaling_factor 0.5
    start.save_pretrained(tmp_path / "start")
    out = tmp_path / "tuned"
    common = dict(
        train_data_dir=digits,
        resolution=RESOLUTION,
        num_validation_images=8,
        regularizer="kl",
        max_train_steps=2,
        train_batch_size=4,
        learning_rate=1e-6,
        lr_warmup_steps=0,
        logging_steps=1,
        validation_steps=100,
        checkpointing_steps=100,
        disc_layers=2,
    )
    run_script(
        "train_autoencoder.py",
        *flags(
            **common,
            init_from=tmp_path / "start",
            base_channels=64,
            downsample_factor=4,
            output_dir=out,
        ),
    )
    tuned = KLAutoencoder.from_pretrained(out)
    assert tuned.config.block_out_channels == [8, 8] and tuned.downsample_factor == 2  # not the flags'
    assert tuned.config.scaling_factor == 1.0 and tuned.config.sample_size == RESOLUTION
    moved = max((a - b).abs().max().item() for a, b in zip(tuned.parameters(), start.parameters()))
    assert 0 < moved < 1e-4  # two steps at lr 1e-6 from the given weights

    result = run_script(
        "train_autoencoder.py",
        *flags(
            **{**common, "regularizer": "vq"},
            init_from=tmp_path / "start",
            output_dir=tmp_path / "bad",
        ),
        rc=2,
    )
    assert "--init_from" in result.stderr and "KL autoencoder but --regularizer is vq" in result.stderr


def test_decoder_only_fine_tune_keeps_the_latent_space(digits, tmp_path):
    """--train_decoder_only (with the scale / shift augmentation): E and its scaling_factor exactly as given,
    so LDMs trained in its latent space stay valid; only post_quant_conv and the decoder move."""
    from _ldm_fixtures import tiny_vae

    start = tiny_vae("kl")  # scaling_factor 0.5
    start.save_pretrained(tmp_path / "start")
    out = tmp_path / "decoder"
    run_script(
        "train_autoencoder.py",
        *flags(
            train_data_dir=digits,
            resolution=RESOLUTION,
            num_validation_images=8,
            max_train_steps=2,
            train_batch_size=4,
            learning_rate=1e-3,
            lr_warmup_steps=0,
            logging_steps=1,
            validation_steps=100,
            checkpointing_steps=100,
            disc_layers=2,
            init_from=tmp_path / "start",
            train_decoder_only=True,
            augment_scale_min=0.7,
            augment_scale_max=1.15,
            augment_shift=2,
            output_dir=out,
        ),
    )
    tuned = KLAutoencoder.from_pretrained(out)
    assert tuned.config.scaling_factor == 0.5  # the latent space's scale kept, not reset to 1
    before, after = dict(start.named_parameters()), dict(tuned.named_parameters())
    moved = {name: (after[name] - before[name]).abs().max().item() for name in before}
    decoder = [n for n in moved if n.startswith(("decoder.", "post_quant_conv."))]
    assert all(v == 0 for n, v in moved.items() if n not in decoder)  # E and quant_conv exactly as given
    assert max(moved[n] for n in decoder) > 0
