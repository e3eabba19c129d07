"""Train LDM's first stage: a KL- or VQ-regularised autoencoder with a patch-based adversarial loss.

    accelerate launch training/train_autoencoder.py --config training/configs/autoencoder_emoji.yaml

Loss (Rombach et al. 2022, Sec. 3.1; Esser et al. 2021, eq. 7), per pixel value:
    L = |x - D(E(x))|_1  [+ perceptual]  +  kl_weight * KL(q(z|x) || N(0, I))   (or codebook + commitment)
        + disc_weight * lambda * L_GAN   once --disc_start steps are done,
with lambda = |grad_{G_L} L_rec| / (|grad_{G_L} L_GAN| + 1e-4) at the decoder's last layer G_L, and the
PatchGAN discriminator trained with the hinge loss. LDM's perceptual term (LPIPS) needs pretrained VGG
features, which do not ship offline: --perceptual_weight stays 0 unless the `lpips` package and its weights
are installed. Every --validation_steps the held-out PSNR / SSIM are logged and a grid of
input | reconstruction pairs is written to output_dir/validation/. The final autoencoder is saved to
output_dir (KLAutoencoder.from_pretrained / VQAutoencoder.from_pretrained), its discriminator to
output_dir/discriminator.
"""

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from accelerate import PartialState
from accelerate.utils import set_seed

from hfldm.atomic import atomic_entries
from hfldm.autoencoders.kl import KLAutoencoder
from hfldm.autoencoders.latent_space import latent_space
from hfldm.autoencoders.loading import load_autoencoder
from hfldm.autoencoders.vq import VQAutoencoder
from hfldm.data.arguments import DataArguments
from hfldm.data.augment import AUGMENT_STREAM
from hfldm.data.loader import collate_fn
from hfldm.training.args import (
    TrainingArguments,
    arg,
    check_positive,
    check_training_arguments,
    parse_args,
    run,
)
from hfldm.training.autoencoding import RegularizedAutoencoder, decoder_only, frozen
from hfldm.training.checkpoints import resume
from hfldm.training.data import held_out_images, load_images
from hfldm.training.hub import hub_repo, push_folder
from hfldm.training.loop import train_loop
from hfldm.training.losses import autoencoder_generator_loss, hinge_d_loss
from hfldm.training.models import new_autoencoder, new_discriminator, perceptual_network
from hfldm.training.nonfinite import stop_on_nonfinite
from hfldm.training.output_dir import claim_run
from hfldm.training.randomness import global_indices, per_sample_normal, sample_generators
from hfldm.training.runtime import (
    make_accelerator,
    make_dataloader,
    make_lr_scheduler,
    make_optimizer,
    optimizer_step,
    tracker_config,
)
from hfldm.training.validation import evaluate_reconstructions, save_and_log


@dataclass
class AutoencoderArguments:
    """The autoencoder, its regulariser and the adversarial loss."""

    regularizer: Literal["kl", "vq"] = arg("kl", "Latent regulariser: KL to N(0, I) or a vector quantiser.")
    downsample_factor: Literal[1, 2, 4, 8] = arg(
        4, "f: the latents are f times smaller than the image per side."
    )
    base_channels: int = arg(64, "Width of the first level; later levels double it, up to 4x.")
    latent_channels: int = arg(4, "Channels c of the latent z (VQ: of the codebook vectors).")
    layers_per_block: int = arg(2, "ResBlocks per encoder level (the decoder has one more).")
    num_vq_embeddings: int = arg(256, "VQ only: codebook size K.")
    kl_weight: float = arg(1e-6, "KL only: weight of KL(q(z|x) || N(0, I)) (LDM: 1e-6).")
    codebook_weight: float = arg(1.0, "VQ only: weight of the codebook + commitment loss.")
    disc_start: int = arg(5000, "Optimiser step from which the adversarial loss (and D's training) is on.")
    disc_weight: float = arg(0.5, "Weight of the adaptively weighted adversarial loss (LDM: 0.5).")
    disc_layers: int = arg(3, "Stride-2 layers of the PatchGAN (3: 70x70 patches; small images need fewer).")
    disc_channels: int = arg(64, "Width of the PatchGAN's first layer.")
    disc_learning_rate: float | None = arg(
        None, "Learning rate of the discriminator (default: --learning_rate)."
    )
    perceptual_weight: float = arg(
        0.0,
        "Weight of an LPIPS perceptual term; needs `pip install lpips` and its VGG weights (not offline).",
    )
    init_from: str | None = arg(
        None,
        "Start from this trained hfldm KL/VQ autoencoder (folder, pipeline folder or Hub id, "
        "`id:subfolder`): its architecture and weights; the architecture flags above are then not used. "
        "Its scaling_factor is reset to 1.0 so that train_ldm.py estimates 1/σ̂ of the fine-tuned latents "
        "anew (kept with --train_decoder_only).",
    )
    train_decoder_only: bool = arg(
        False,
        "Train D only (post_quant_conv and the decoder), E and the regulariser frozen: the latent space, its "
        "scaling_factor and every LDM trained in it stay valid (the SD VAE's decoder fine-tune).",
    )
    validation_split: str | None = arg(None, "Held-out split for PSNR/SSIM (default: last images of train).")
    num_validation_images: int = arg(64, "Held-out images scored at each validation.")

    def validate(self) -> None:
        check_positive(self, "base_channels", "latent_channels", "layers_per_block", "num_vq_embeddings")
        check_positive(self, "disc_layers", "disc_channels", "num_validation_images", "disc_learning_rate")
        check_positive(
            self, "kl_weight", "codebook_weight", "disc_weight", "perceptual_weight", allow_zero=True
        )
        check_positive(self, "disc_start", allow_zero=True)


def initial_autoencoder(args: AutoencoderArguments, resolution: int):
    """A fresh autoencoder from the architecture flags, or the trained one of --init_from to fine-tune."""
    if args.init_from is None:
        return new_autoencoder(
            args.regularizer,
            args.downsample_factor,
            resolution,
            args.base_channels,
            args.latent_channels,
            args.layers_per_block,
            args.num_vq_embeddings,
        )
    autoencoder = load_autoencoder(args.init_from, "--init_from")
    if not isinstance(autoencoder, (KLAutoencoder, VQAutoencoder)):
        raise ValueError(
            f"--init_from: {args.init_from} holds a {type(autoencoder).__name__}; this script trains hfldm's "
            "KLAutoencoder / VQAutoencoder (diffusers' autoencoders plug into train_ldm.py --autoencoder)"
        )
    regularizer = "kl" if isinstance(autoencoder, KLAutoencoder) else "vq"
    if regularizer != args.regularizer:
        raise ValueError(
            f"--init_from: {args.init_from} is a {regularizer.upper()} autoencoder but --regularizer is "
            f"{args.regularizer}"
        )
    if resolution % latent_space(autoencoder).downsample_factor:
        raise ValueError(
            f"--resolution: {resolution} is not a multiple of f = "
            f"{latent_space(autoencoder).downsample_factor} of --init_from {args.init_from}"
        )
    autoencoder.register_to_config(sample_size=resolution)
    if not args.train_decoder_only:  # E changes: train_ldm.py estimates the scale of its latents anew
        autoencoder.register_to_config(scaling_factor=1.0)
    return autoencoder.requires_grad_(True).train()


def optimizers(model, discriminator, args, train) -> tuple:
    """(optimiser, LR schedule) of the generator (E, D, codebook: the trainable part), then the PatchGAN."""
    optimizer_g = make_optimizer([p for p in model.parameters() if p.requires_grad], train)
    optimizer_d = make_optimizer(discriminator.parameters(), train, lr=args.disc_learning_rate)
    processes = PartialState().num_processes  # the accelerator's
    scheduler_g = make_lr_scheduler(optimizer_g, train, processes)
    scheduler_d = make_lr_scheduler(optimizer_d, train, processes)
    return optimizer_g, optimizer_d, scheduler_g, scheduler_d


def check_downsampling(args, resolution: int) -> None:
    """ValueError naming --downsample_factor when a new autoencoder's f does not divide --resolution."""
    if args.init_from is None and resolution % args.downsample_factor:
        raise ValueError(
            f"--downsample_factor: {args.downsample_factor} does not divide --resolution {resolution}"
        )


def save_final(accelerator, autoencoder, discriminator, train, repo_id: str | None, metrics: dict) -> None:
    """The autoencoder (and its discriminator, to continue training from) in output_dir, atomically; pushed
    to the Hub if asked."""
    with atomic_entries(train.output_dir, last="config.json") as staging:
        autoencoder.save_pretrained(staging)
        discriminator.save_pretrained(staging / "discriminator")
    held_out_scores = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
    accelerator.print(f"saved the autoencoder to {train.output_dir}; held-out {held_out_scores}")
    if repo_id is not None:
        push_folder(repo_id, train.output_dir, train.hub_token, "Upload from hfldm's train_autoencoder.py")


def build_models(args, resolution: int, gradient_checkpointing: bool):
    """The autoencoder (E, regulariser, D) wrapped with its regulariser's loss, the PatchGAN discriminator
    and the perceptual network (None when --perceptual_weight is 0)."""
    check_downsampling(args, resolution)
    autoencoder = initial_autoencoder(args, resolution)
    if args.train_decoder_only:
        decoder_only(autoencoder)
    if gradient_checkpointing:
        autoencoder.enable_gradient_checkpointing()
    discriminator = new_discriminator(resolution, args.disc_channels, args.disc_layers)
    return RegularizedAutoencoder(autoencoder), discriminator, perceptual_network(args.perceptual_weight)


def main() -> None:
    args, data, train = parse_args(
        AutoencoderArguments, DataArguments, TrainingArguments, description=__doc__
    )
    check_training_arguments(train)
    repo_id = hub_repo(train.push_to_hub, train.hub_model_id, train.output_dir, train.hub_token)
    accelerator = make_accelerator(train, train.seed)
    claim_run(accelerator, train, tracker_config(args, data, train))  # a second run is refused
    set_seed(train.seed)

    # 1. data: images only (the first stage needs no captions or labels)
    data = dataclasses.replace(data, caption_column=None, label_column=None)
    train_set, _ = load_images(data)
    train_set, held_out = held_out_images(data, train_set, args.validation_split, args.num_validation_images)
    train_loader = make_dataloader(
        train_set, train.train_batch_size, train.seed, collate_fn, train.dataloader_num_workers
    )
    held_out_loader = make_dataloader(held_out, train.train_batch_size, train.seed, collate_fn, shuffle=False)

    # 2. models: the autoencoder (E, regulariser, D) and the PatchGAN discriminator
    model, discriminator, perceptual = build_models(args, data.resolution, train.gradient_checkpointing)
    autoencoder = model.autoencoder
    reg_weight = args.kl_weight if args.regularizer == "kl" else args.codebook_weight
    space = latent_space(autoencoder)
    augment = data.augmentation()  # scale / shift / crop of every batch, each sample by its own draws
    side = augment.output_size(data.resolution) // space.downsample_factor
    latent_shape = (space.latent_channels, side, side)

    # 3. optimisers: one for the generator (E, D, codebook), one for the discriminator
    optimizer_g, optimizer_d, scheduler_g, scheduler_d = optimizers(model, discriminator, args, train)

    # 4. accelerate
    model, discriminator, optimizer_g, optimizer_d, scheduler_g, scheduler_d, train_loader = (
        accelerator.prepare(
            model, discriminator, optimizer_g, optimizer_d, scheduler_g, scheduler_d, train_loader
        )
    )
    stop_on_nonfinite(accelerator, train.skip_nonfinite_steps, optimizer_g, optimizer_d)
    if accelerator.is_main_process:
        accelerator.init_trackers("train_autoencoder", config=tracker_config(args, data, train))
    first_step = resume(accelerator, train.output_dir, train.resume_from_checkpoint)
    unwrapped = accelerator.unwrap_model(model)
    patch_gan = accelerator.unwrap_model(discriminator)
    generator_loss = partial(
        autoencoder_generator_loss,
        reg_weight=reg_weight,
        last_layer=unwrapped.last_layer,
        disc_weight=args.disc_weight,
        perceptual=perceptual,
        perceptual_weight=args.perceptual_weight,
    )

    def training_step(batch: dict, micro_step: int) -> dict[str, float]:
        """One pass: E, D (and the codebook) on their loss, then the PatchGAN once --disc_start is reached."""
        x = batch["pixel_values"]
        adversarial = micro_step // train.gradient_accumulation_steps >= args.disc_start
        indices = global_indices(len(x), accelerator.process_index)
        if not augment.is_identity:
            x = augment(x, sample_generators(train.seed, micro_step, indices, AUGMENT_STREAM)).to(x.device)
        generators = sample_generators(train.seed, micro_step, indices)
        eta = per_sample_normal(generators, latent_shape).to(x.device)  # z = μ + σ·η, η per sample
        with accelerator.accumulate(model, discriminator), accelerator.autocast():
            # 1. E, D (and the codebook) on L_rec + w·L_reg + λ·w_disc·L_GAN, the PatchGAN's weights frozen
            x_hat, reg_loss = model(x, eta)
            with frozen(patch_gan):
                loss, logs = generator_loss(
                    x, x_hat, reg_loss, logits_fake=patch_gan(x_hat) if adversarial else None
                )
                accelerator.backward(loss)
            optimizer_step(accelerator, optimizer_g, scheduler_g, model.parameters(), train.max_grad_norm)
            # 2. the PatchGAN on the hinge loss; real and fake in one forward (DDP: one forward per backward)
            if adversarial:
                d_loss = hinge_d_loss(*discriminator(torch.cat([x, x_hat.detach()])).chunk(2))
                accelerator.backward(d_loss)
                optimizer_step(
                    accelerator, optimizer_d, scheduler_d, discriminator.parameters(), train.max_grad_norm
                )
                logs["d_loss"] = d_loss.item()
        return {"loss": loss.item(), **logs}

    def validate(step: int) -> dict[str, float]:
        metrics, grid = evaluate_reconstructions(
            unwrapped.autoencoder, held_out_loader, args.num_validation_images
        )
        accelerator.log({f"val/{k}": v for k, v in metrics.items()}, step)
        save_and_log(accelerator, grid, train.output_dir, "reconstructions", step)
        return metrics

    # 5. the loop: optimiser steps, logs, validation, checkpoints
    step = train_loop(accelerator, train_loader, train, first_step, training_step, scheduler_g, validate)

    # 6. the final autoencoder (and its discriminator, to continue training from)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        metrics = validate(step)
        save_final(accelerator, unwrapped.autoencoder, patch_gan, train, repo_id, metrics)
    accelerator.end_training()


if __name__ == "__main__":
    run(main)
