"""Train LDM's second stage: a conditional U-Net ε_θ in the latent space of a trained autoencoder.

    accelerate launch training/train_ldm.py --config training/configs/ldm_emoji.yaml

The objective is LDM eq. 2/3, DDPM's simplified loss (Ho et al. 2020, eq. 14) on z_0 = E(x)·scale:
    L = E_{z_0, ε ~ N(0, I), t} || ε − ε_θ(z_t, t, τ_θ(y)) ||²,   z_t = √ᾱ_t z_0 + √(1 − ᾱ_t) ε,
or the v-target (--prediction_type v_prediction), optionally min-SNR-γ weighted (--snr_gamma). The condition
y is text (τ_θ = frozen MiniLM, a transformer trained jointly, or any pretrained transformers encoder such as
CLIP's, --text_encoder), a class (--label_column) or
nothing; --cond_drop_prob of the samples train without it, for classifier-free guidance. The latent scale
1/σ̂ is estimated from the data when the autoencoder's config still has scaling_factor 1.0 (LDM App. G).
--task superres trains ε_θ([z_t, y], t) instead (LDM §4.4): y is the image degraded and downsampled by
--sr_factor, brought to the latent grid by space-to-depth (hfldm.training.superres); the saved pipeline is
then a LatentDiffusionSuperResolutionPipeline. --task inpaint trains ε_θ([z_t, E(x ⊙ (1 − m)), m↓], t,
τ_θ(y)) (LDM §4.5; hfldm.training.inpaint) with a mask m drawn per sample; --init_from a text model widens
its U-Net by zero-initialised input channels (the SD-2 recipe); it saves a LatentDiffusionInpaintPipeline.
Every random draw of a step comes from a generator seeded by (seed, step, sample index), so runs resume
exactly and N processes × B images train like 1 process × N·B. The EMA U-Net draws validation grids from
fixed prompts / classes and seeds (hfldm.training.tasks), and the final pipeline (EMA weights) is saved to
output_dir: DiffusionPipeline.from_pretrained(output_dir, trust_remote_code=True).
"""

import torch
from accelerate.utils import set_seed
from ldm_arguments import LDMArguments  # beside this script: its --unet_config default is configs/

from hfldm.atomic import atomic_entries
from hfldm.autoencoders.latent_space import latent_space
from hfldm.autoencoders.loading import load_autoencoder
from hfldm.data.arguments import DataArguments
from hfldm.schedulers.ddpm import DDPMScheduler
from hfldm.text.pretrained import hidden_size
from hfldm.training.args import TrainingArguments, check_training_arguments, parse_args, run
from hfldm.training.card import SAMPLES_FILE, training_card, training_command
from hfldm.training.checkpoints import resume
from hfldm.training.conditioner import Conditioner
from hfldm.training.data import captions, conditioning_kind, ldm_data, num_classes
from hfldm.training.degradation_mix import DegradationMix
from hfldm.training.ema import ema_weights, make_ema
from hfldm.training.hub import hub_repo, push_folder
from hfldm.training.inpaint import InpaintTask
from hfldm.training.latents import latent_scale
from hfldm.training.ldm_trainer import LDMTrainer
from hfldm.training.loop import train_loop
from hfldm.training.models import check_resolution, run_tokenizer, text_encoder_for, unet_from_yaml
from hfldm.training.nonfinite import stop_on_nonfinite
from hfldm.training.output_dir import claim_run
from hfldm.training.pretrained_pipeline import load_pretrained_parts
from hfldm.training.runtime import (
    make_accelerator,
    make_dataloader,
    make_lr_scheduler,
    make_optimizer,
    tracker_config,
)
from hfldm.training.superres import SuperResolutionTask, check_superres
from hfldm.training.tasks import GenerationTask, PipelineParts, ValidationSettings
from hfldm.training.validation import save_and_log, validation_conditions


def new_parts(args, accelerator, train, texts, num_class_embeds, vae, latent_size, condition_channels):
    """(tokenizer, τ_θ, a fresh U-Net, the DDPM forward process) from the flags."""
    tokenizer = None
    if args.text_encoder == "scratch":  # saved to output_dir first, reloaded on resume
        resuming = train.resume_from_checkpoint is not None
        tokenizer = run_tokenizer(accelerator, texts, args.text_vocab_size, train.output_dir, resuming)
    tokenizer, text_encoder = text_encoder_for(
        args.text_encoder, tokenizer, args.text_hidden_size, args.text_layers, args.max_text_length
    )
    cross_attention_dim = hidden_size(text_encoder) if text_encoder else None
    unet = unet_from_yaml(
        args.unet_config, vae, latent_size, cross_attention_dim, num_class_embeds, condition_channels
    )
    noise_scheduler = DDPMScheduler(
        num_train_timesteps=args.num_train_timesteps, beta_schedule=args.beta_schedule,
        beta_start=args.beta_start, beta_end=args.beta_end, prediction_type=args.prediction_type,
        clip_sample=False,  # scaled latents are not in [-1, 1]: clipping x̂_0 there ruins samples
    )  # fmt: skip
    return tokenizer, text_encoder, unet, noise_scheduler


def make_task(args, vae, resolution: int, seed: int, process_index: int) -> GenerationTask:
    """The --task: what the U-Net sees beside z_t, the saved pipeline, the validation grid."""
    if args.task == "superres":
        f = latent_space(vae).downsample_factor
        check_superres(args.sr_factor, resolution, downsample_factor=f)
        return SuperResolutionTask(
            sr_factor=args.sr_factor,
            downsample_factor=f,
            noise_std=args.sr_noise_std,
            blur_sigma=args.sr_blur_sigma,
            seed=seed,
            process_index=process_index,
            mix=DegradationMix(enabled=args.sr_degradation_mix),
        )
    if args.task == "inpaint":
        return InpaintTask(latent_space(vae), args.full_mask_prob, seed, process_index)
    return GenerationTask()


def check_pretrained_classes(num_class_embeds: int | None, pretrained_embeds: int | None) -> None:
    """ValueError naming --label_column when the data's classes (+ the null class) differ from the U-Net's."""
    if num_class_embeds != pretrained_embeds:
        raise ValueError(
            f"--label_column: the data has {(num_class_embeds or 1) - 1} classes, the pretrained U-Net "
            f"{(pretrained_embeds or 1) - 1} (+ the null class)"
        )


def main() -> None:
    args, data, train = parse_args(LDMArguments, DataArguments, TrainingArguments, description=__doc__)
    check_training_arguments(train)
    repo_id = hub_repo(train.push_to_hub, train.hub_model_id, train.output_dir, train.hub_token)
    if args.task == "superres":  # what it can check before loading anything
        check_superres(
            args.sr_factor, data.resolution, args.text_encoder, data.label_column, args.cached_latents
        )
    pretrained = args.pretrained_model_name_or_path and load_pretrained_parts(
        args.pretrained_model_name_or_path
    )
    encoder_name = "pretrained" if pretrained and pretrained.text_encoder is not None else args.text_encoder
    kind = conditioning_kind(encoder_name, data.caption_column, data.label_column)
    if pretrained and kind != pretrained.kind:
        raise ValueError(
            f"--pretrained_model_name_or_path: a {pretrained.kind}-conditioned pipeline, but the data flags "
            f"(--caption_column / --label_column) ask for {kind}"
        )
    accelerator = make_accelerator(train, train.seed)
    claim_run(accelerator, train, tracker_config(args, data, train))  # a second run is refused
    set_seed(train.seed)

    # 1. data: images (or cached posteriors) with their captions or labels, and the frozen autoencoder
    vae = pretrained.vae if pretrained else load_autoencoder(args.autoencoder, revision=args.revision,
                                                             variant=args.variant)  # fmt: skip
    vae = vae.to(accelerator.device)
    augment = data.augmentation()  # scale / shift / crop of the training batches (hfldm.data.augment)
    if args.cached_latents and not augment.is_identity:
        raise ValueError("--crop_size / --augment_*: augmentation transforms images, not cached latents")
    latent_size = check_resolution(vae, data.resolution)
    latent_shape = (latent_space(vae).latent_channels, latent_size, latent_size)
    patch = check_resolution(vae, augment.output_size(data.resolution))  # what a training step sees
    train_shape = (latent_shape[0], patch, patch)
    task = make_task(args, vae, data.resolution, train.seed, accelerator.process_index)
    source = ldm_data(data, kind, args.cached_latents, vae, args.text_encoder)
    train_loader = make_dataloader(
        source.dataset,
        train.train_batch_size,
        train.seed,
        source.collate,
        train.dataloader_num_workers,
        shuffle_buffer_size=data.shuffle_buffer_size,
    )

    # 2. models: τ_θ, the U-Net, the noise schedule, the latent scale (the autoencoder stays frozen)
    texts = captions(source.dataset, source.text_column) if kind == "text" else []
    train_text_encoder = args.text_encoder == "scratch" or args.train_text_encoder
    classes = num_classes(source.dataset, source.label_names, source.label_column) if kind == "class" else 0
    num_class_embeds = classes + 1 if kind == "class" else None  # + the null class ∅ of guidance
    if pretrained:
        tokenizer, text_encoder = pretrained.tokenizer, pretrained.text_encoder
        unet = task.adapt_pretrained(pretrained.unet)  # inpaint: + zero-initialised condition channels
        noise_scheduler, text_attention_mask = pretrained.noise_scheduler, pretrained.text_attention_mask
        check_pretrained_classes(num_class_embeds, unet.config.num_class_embeds)
        if args.train_text_encoder and text_encoder is None:
            raise ValueError("--train_text_encoder: the pretrained pipeline has no text encoder")
        label_names = pretrained.label_names or source.label_names
    else:
        tokenizer, text_encoder, unet, noise_scheduler = new_parts(
            args, accelerator, train, texts, num_class_embeds, vae, latent_size, task.condition_channels
        )
        text_attention_mask, label_names = True, source.label_names
    if train_text_encoder:
        text_encoder.requires_grad_(True).train()
    halvings = 2 ** (len(unet.config.block_out_channels) - 1)  # hfldm's and diffusers' U-Nets alike
    if patch % halvings:
        raise ValueError(f"--crop_size: its {patch} px latent does not halve {halvings}x evenly")
    task.unet_config = unet.config
    if train.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    scale_batches = lambda: make_dataloader(  # noqa: E731
        source.dataset, train.train_batch_size, train.seed, source.collate, shuffle=False
    )
    if pretrained:  # its U-Net was trained at its autoencoder's scale: kept, never re-estimated
        scale = args.scaling_factor or latent_space(vae).scaling_factor
    else:
        scale = latent_scale(
            vae, args.scaling_factor, scale_batches, args.scale_estimation_images, latent_shape, train.seed
        )
    accelerator.print(f"latent scale 1/std = {scale:.5f}")
    vae.register_to_config(scaling_factor=scale)  # saved with the pipeline's vae/

    # 3. the optimiser over the U-Net (and τ_θ when it is trained with it); accelerate; EMA; resume
    if text_encoder is not None:
        text_encoder.to(accelerator.device)
    trained = [unet, text_encoder] if train_text_encoder else [unet]
    optimizer = make_optimizer((p for m in trained for p in m.parameters()), train)
    lr_scheduler = make_lr_scheduler(optimizer, train, accelerator.num_processes)
    *trained, optimizer, lr_scheduler, train_loader = accelerator.prepare(
        *trained, optimizer, lr_scheduler, train_loader
    )
    unet, text_encoder = trained[0], trained[-1] if train_text_encoder else text_encoder
    stop_on_nonfinite(accelerator, train.skip_nonfinite_steps, optimizer)
    ema = make_ema(accelerator, unet, args.ema_decay, args.ema_power) if args.use_ema else None
    if accelerator.is_main_process:
        accelerator.init_trackers("train_ldm", config=tracker_config(args, data, train))
    first_step = resume(accelerator, train.output_dir, train.resume_from_checkpoint)

    condition = Conditioner(
        kind,
        tokenizer,
        text_encoder,
        num_class_embeds,
        train_text_encoder,
        source.uncond,
        text_attention_mask,
        padding="max_length" if args.torch_compile else "longest",  # one shape for the compiled graph
    )
    # compile-clean (tests/test_compile.py): one graph, no breaks; only the forward is compiled, so the
    # prepared module that accelerate checkpoints, EMA and validation stay the plain one
    forward = torch.compile(unet, fullgraph=True) if args.torch_compile else unet
    trainer = LDMTrainer(
        accelerator, latent_space(vae), forward, noise_scheduler, condition, optimizer, lr_scheduler, trained,
        train_shape, train.seed, args.cond_drop_prob, args.noise_offset, args.snr_gamma, data.random_flip,
        train.max_grad_norm, task, augment,
    )  # fmt: skip
    prompts, labels = validation_conditions(
        kind, args.validation_prompts, args.validation_class_labels, texts, classes
    )

    parts = PipelineParts(accelerator, vae, unet, noise_scheduler, text_encoder, tokenizer, label_names,
                          text_attention_mask)  # fmt: skip
    settings = ValidationSettings(args.validation_seeds, prompts, labels, args.num_inference_steps,
                                  args.guidance_scale)  # fmt: skip

    def samples() -> tuple:
        """(grid, metrics) of the EMA weights, from the task (hfldm.training.tasks)."""
        with ema_weights(ema, accelerator.unwrap_model(unet)):
            return task.validation(task.pipeline(parts), next(iter(scale_batches())), settings)

    def validate(step: int) -> None:
        grid, metrics = samples()
        if metrics:
            accelerator.log(metrics, step=step)
        save_and_log(accelerator, grid, train.output_dir, "samples", step)

    # 4. the loop, then the whole pipeline with the EMA weights, loadable by DiffusionPipeline.from_pretrained
    ema_step = (lambda step: ema.step(accelerator.unwrap_model(unet).parameters())) if ema else None
    train_loop(accelerator, train_loader, train, first_step, trainer.training_step, lr_scheduler, validate,
               after_step=ema_step)  # fmt: skip
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        grid, metrics = samples()  # for the card
        if ema is not None:
            ema.copy_to(accelerator.unwrap_model(unet).parameters())
        final = task.pipeline(parts)
        card = training_card(
            final,
            repo_id or train.output_dir,
            grid,
            metrics,
            training_command(),
            base_model=args.pretrained_model_name_or_path,
            datasets=[data.dataset_name] if data.dataset_name else None,
        )
        with atomic_entries(train.output_dir) as staging:  # a kill here leaves the earlier model whole
            final.save_pretrained(staging, model_card=card)
            grid.save(staging / SAMPLES_FILE)
        accelerator.print(f"saved the pipeline to {train.output_dir}")
        if repo_id is not None:
            push_folder(repo_id, train.output_dir, train.hub_token, "Upload from hfldm's train_ldm.py")
    accelerator.end_training()


if __name__ == "__main__":
    run(main)
