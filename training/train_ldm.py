"""Train LDM's second stage: a conditional U-Net ε_θ in the latent space of a trained autoencoder.

    accelerate launch training/train_ldm.py --config training/configs/ldm_emoji.yaml

The objective is LDM eq. 2/3, DDPM's simplified loss (Ho et al. 2020, eq. 14) on z_0 = E(x)·scale:
    L = E_{z_0, ε ~ N(0, I), t} || ε − ε_θ(z_t, t, τ_θ(y)) ||²,   z_t = √ᾱ_t z_0 + √(1 − ᾱ_t) ε,
or the v-target (--prediction_type v_prediction), optionally min-SNR-γ weighted (--snr_gamma). The condition
y is text (τ_θ = frozen MiniLM or a transformer trained jointly, --text_encoder), a class (--label_column) or
nothing; --cond_drop_prob of the samples train without it, for classifier-free guidance. The latent scale
1/σ̂ is estimated from the data when the autoencoder's config still has scaling_factor 1.0 (LDM App. G).
Every random draw of a step comes from a generator seeded by (seed, step, sample index), so runs resume
exactly and N processes × B images train like 1 process × N·B. The EMA U-Net draws validation grids from
fixed prompts / classes and seeds, and the final LatentDiffusionPipeline (EMA weights) is saved to
output_dir: DiffusionPipeline.from_pretrained(output_dir, trust_remote_code=True).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from accelerate.utils import set_seed

from hfldm.data.arguments import DataArguments
from hfldm.data.loader import collate_fn
from hfldm.schedulers.ddpm import DDPMScheduler
from hfldm.training.args import (
    TrainingArguments,
    arg,
    check_positive,
    check_training_arguments,
    parse_args,
    run,
)
from hfldm.training.checkpoints import resume, save_checkpoint
from hfldm.training.conditioning import Conditioner
from hfldm.training.data import (
    captions,
    check_cache,
    conditioning_kind,
    data_for,
    load_cache,
    load_images,
    num_classes,
)
from hfldm.training.ema import ema_weights, make_ema
from hfldm.training.latents import batch_latents, estimate_latent_scale
from hfldm.training.losses import ldm_loss
from hfldm.training.models import (
    check_resolution,
    latent_channels,
    load_autoencoder,
    run_tokenizer,
    text_encoder_for,
    unet_from_yaml,
)
from hfldm.training.nonfinite import stop_on_nonfinite
from hfldm.training.randomness import batch_size_of, step_draws
from hfldm.training.runtime import (
    is_every,
    log_loss,
    make_accelerator,
    make_dataloader,
    make_lr_scheduler,
    make_optimizer,
    optimizer_step,
    progress_bar,
    tracker_config,
    train_batches,
)
from hfldm.training.validation import (
    assemble_pipeline,
    sample_grid,
    save_and_log,
    validation_conditions,
)

CONFIGS = Path(__file__).parent / "configs"


@dataclass
class LDMArguments:
    """The autoencoder, the U-Net, the conditioning and the diffusion objective."""

    autoencoder: str | None = arg(
        None, "Folder of the trained autoencoder (train_autoencoder.py output_dir)."
    )
    unet_config: str = arg(
        str(CONFIGS / "unet_small.yaml"), "YAML of ConditionalUNet arguments (widths, depth)."
    )
    text_encoder: Literal["none", "minilm", "scratch"] = arg(
        "none", "τ_θ: none, frozen MiniLM (384-d), or a transformer trained jointly on the captions (LDM)."
    )
    text_vocab_size: int = arg(1000, "scratch: WordPiece vocabulary trained on the captions.")
    text_hidden_size: int = arg(256, "scratch: width of τ_θ (the U-Net's cross_attention_dim).")
    text_layers: int = arg(4, "scratch: transformer layers of τ_θ.")
    cached_latents: str | None = arg(
        None, "Train on a latent cache (`hfldm cache-latents`) instead of images."
    )
    prediction_type: Literal["epsilon", "v_prediction"] = arg("epsilon", "What the U-Net predicts: ε or v.")
    num_train_timesteps: int = arg(1000, "T, the length of the forward process.")
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = arg(
        "scaled_linear", "β_t schedule (LDM: scaled_linear, 0.00085 .. 0.012)."
    )
    beta_start: float = arg(0.00085, "β_1.")
    beta_end: float = arg(0.012, "β_T.")
    snr_gamma: float | None = arg(
        None, "Min-SNR-γ loss weighting (Hang et al. 2023; 5.0 is typical); off if unset."
    )
    noise_offset: float = arg(0.0, "Add offset·N(0, I) per channel to ε (brighter/darker images); 0 = off.")
    cond_drop_prob: float = arg(0.1, "Share of samples trained unconditionally (empty prompt / null class).")
    use_ema: bool = arg(True, "Keep an EMA of the U-Net; validation and the saved pipeline use it.")
    ema_decay: float = arg(0.9999, "Largest EMA decay.")
    ema_power: float = arg(0.75, "EMA warm-up power: decay = 1 − (1 + step)^−power (2/3 for 1M-step runs).")
    scaling_factor: float | None = arg(
        None, "Latent scale to use; default: the autoencoder's, estimated if 1.0."
    )
    scale_estimation_images: int = arg(256, "Images whose latents' std gives the latent scale.")
    validation_prompts: list[str] = arg([], "Prompts of the validation grid (default: the first captions).")
    validation_class_labels: list[int] = arg([], "Classes of the validation grid (default: the first four).")
    validation_seeds: list[int] = arg([0, 1, 2, 3], "Seeds of the validation grid, one column each.")
    num_inference_steps: int = arg(50, "DDIM steps of the validation samples.")
    guidance_scale: float = arg(3.0, "Classifier-free guidance scale w of the validation samples.")

    def validate(self) -> None:
        if self.autoencoder is None:
            raise ValueError("--autoencoder: required (the folder written by train_autoencoder.py)")
        check_positive(self, "text_vocab_size", "text_hidden_size", "text_layers", "num_train_timesteps")
        check_positive(
            self, "beta_start", "beta_end", "snr_gamma", "ema_decay", "ema_power", "scaling_factor"
        )
        check_positive(self, "scale_estimation_images", "num_inference_steps")
        check_positive(self, "noise_offset", "guidance_scale", allow_zero=True)
        if self.ema_decay > 1:
            raise ValueError(f"--ema_decay: must be in (0, 1], got {self.ema_decay}")
        if not 0 <= self.cond_drop_prob <= 1:
            raise ValueError(f"--cond_drop_prob: must be in [0, 1], got {self.cond_drop_prob}")
        if self.text_encoder == "scratch" and self.text_hidden_size % 4:
            raise ValueError(
                f"--text_hidden_size: must be divisible by the 4 attention heads, got {self.text_hidden_size}"
            )


def main() -> None:
    args, data, train = parse_args(LDMArguments, DataArguments, TrainingArguments, description=__doc__)
    check_training_arguments(train)
    kind = conditioning_kind(args.text_encoder, data.caption_column, data.label_column)
    accelerator = make_accelerator(train, train.seed)
    set_seed(train.seed)

    # 1. data: images (or cached posteriors) with their captions or labels
    vae = load_autoencoder(args.autoencoder).to(accelerator.device)
    latent_size = check_resolution(vae, data.resolution)
    latent_shape = (latent_channels(vae), latent_size, latent_size)
    uncond, label_names, text_column, label_column = None, None, "text", "labels"  # the cache's columns
    flip = data.random_flip  # drawn per sample in the training step, not by the loader
    if args.cached_latents:
        dataset, info, uncond = load_cache(args.cached_latents)
        check_cache(info, vae, data.resolution, kind, args.text_encoder, data.random_flip)
    else:
        data = data_for(data, kind)
        dataset, label_names = load_images(data)
        text_column, label_column = data.caption_column, data.label_column
    collate = None if args.cached_latents else collate_fn  # cache rows are tensors: torch's default collate
    train_loader = make_dataloader(
        dataset, train.train_batch_size, train.seed, collate, train.dataloader_num_workers
    )

    # 2. models: τ_θ, the U-Net, the noise schedule, the latent scale (the autoencoder is frozen)
    texts = captions(dataset, text_column) if kind == "text" else []
    train_text_encoder = args.text_encoder == "scratch"
    tokenizer = None
    if train_text_encoder:  # saved to output_dir first, reloaded on resume
        resuming = train.resume_from_checkpoint is not None
        tokenizer = run_tokenizer(accelerator, texts, args.text_vocab_size, train.output_dir, resuming)
    tokenizer, text_encoder = text_encoder_for(
        args.text_encoder, tokenizer, args.text_hidden_size, args.text_layers
    )
    classes = num_classes(dataset, label_names, label_column) if kind == "class" else 0
    num_class_embeds = (
        classes + 1 if kind == "class" else None
    )  # + the null class of classifier-free guidance
    cross_attention_dim = text_encoder.config.hidden_size if text_encoder else None
    unet = unet_from_yaml(args.unet_config, vae, latent_size, cross_attention_dim, num_class_embeds)
    if train.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    noise_scheduler = DDPMScheduler(
        num_train_timesteps=args.num_train_timesteps, beta_schedule=args.beta_schedule,
        beta_start=args.beta_start, beta_end=args.beta_end, prediction_type=args.prediction_type,
        clip_sample=False,  # scaled latents are not in [-1, 1]: clipping x̂_0 there ruins samples
    )  # fmt: skip
    scale = args.scaling_factor or vae.config.scaling_factor
    if scale == 1.0 and args.scaling_factor is None:  # LDM App. G: z <- z / std(z), std over the data
        scale_loader = make_dataloader(dataset, train.train_batch_size, train.seed, collate, shuffle=False)
        scale = estimate_latent_scale(
            vae, scale_loader, args.scale_estimation_images, latent_shape, train.seed
        )
        accelerator.print(f"latent scale 1/std = {scale:.5f} (from {args.scale_estimation_images} images)")
    vae.register_to_config(scaling_factor=scale)  # saved with the pipeline's vae/

    # 3. optimiser over the U-Net (and τ_θ when it is trained with it)
    if text_encoder is not None:
        text_encoder.to(accelerator.device)
    trained = [unet, text_encoder] if train_text_encoder else [unet]
    optimizer = make_optimizer((p for m in trained for p in m.parameters()), train)
    lr_scheduler = make_lr_scheduler(optimizer, train, accelerator.num_processes)

    # 4. accelerate, EMA, resume
    *trained, optimizer, lr_scheduler, train_loader = accelerator.prepare(
        *trained, optimizer, lr_scheduler, train_loader
    )
    unet, text_encoder = trained[0], trained[-1] if train_text_encoder else text_encoder
    stop_on_nonfinite(accelerator, train.skip_nonfinite_steps, optimizer)
    ema = make_ema(accelerator, unet, args.ema_decay, args.ema_power) if args.use_ema else None
    conditioner = Conditioner(kind, tokenizer, text_encoder, num_class_embeds, train_text_encoder, uncond)
    if accelerator.is_main_process:
        accelerator.init_trackers("train_ldm", config=tracker_config(args, data, train))
    first_step = resume(accelerator, train.output_dir, train.resume_from_checkpoint)
    prompts, labels = validation_conditions(
        kind, args.validation_prompts, args.validation_class_labels, texts, classes
    )

    def training_step(batch: dict, micro_step: int) -> torch.Tensor:
        draws = step_draws(accelerator, train.seed, micro_step, batch_size_of(batch), latent_shape,
                           args.num_train_timesteps, args.cond_drop_prob)  # fmt: skip
        with accelerator.accumulate(*trained):
            z0 = batch_latents(batch, vae, draws.posterior_noise, draws.flip if flip else None) * scale
            noise = (draws.noise + args.noise_offset * draws.offset).to(
                z0.device
            )  # noise offset (Guttenberg 2023)
            cond = conditioner(batch, draws.drop, z0.device)
            loss = ldm_loss(
                unet, noise_scheduler, z0, cond, noise, draws.timesteps.to(z0.device), args.snr_gamma
            )
            accelerator.backward(loss)
            optimizer_step(
                accelerator, optimizer, lr_scheduler, optimizer.param_groups[0]["params"], train.max_grad_norm
            )
        return loss.detach()

    def validate(step: int) -> None:
        with ema_weights(ema, accelerator.unwrap_model(unet)):
            pipeline = assemble_pipeline(
                accelerator, vae, unet, noise_scheduler, text_encoder, tokenizer, label_names
            )
            grid = sample_grid(
                pipeline,
                args.validation_seeds,
                prompts,
                labels,
                args.num_inference_steps,
                args.guidance_scale,
            )
        save_and_log(accelerator, grid, train.output_dir, "samples", step)

    # 5. the loop: optimiser steps, EMA, logs, validation, checkpoints
    bar = progress_bar(accelerator, first_step, train.max_train_steps)
    step, micro_step = first_step, first_step * train.gradient_accumulation_steps
    for batch in train_batches(accelerator, train_loader, first_step, train.gradient_accumulation_steps):
        if step >= train.max_train_steps:  # also when resumed at (or past) the last step
            break
        loss = training_step(batch, micro_step)
        micro_step += 1
        if not accelerator.sync_gradients:
            continue
        step += 1
        if ema is not None:
            ema.step(accelerator.unwrap_model(unet).parameters())
        bar.update(1)
        if is_every(step, train.logging_steps):
            log_loss(accelerator, bar, loss, lr_scheduler, step)
        if is_every(step, train.validation_steps) and accelerator.is_main_process:
            validate(step)
        if is_every(step, train.checkpointing_steps):
            save_checkpoint(accelerator, train.output_dir, step, train.checkpoints_total_limit)

    # 6. the whole pipeline, with the EMA weights, loadable by DiffusionPipeline.from_pretrained
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if ema is not None:
            ema.copy_to(accelerator.unwrap_model(unet).parameters())
        assemble_pipeline(
            accelerator, vae, unet, noise_scheduler, text_encoder, tokenizer, label_names
        ).save_pretrained(train.output_dir)
        accelerator.print(f"saved the pipeline to {train.output_dir}")
    accelerator.end_training()


if __name__ == "__main__":
    run(main)
