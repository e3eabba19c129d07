"""What train_ldm.py trains, from its flags: τ_θ with its tokenizer, the U-Net and the DDPM forward process,
either new (`new_parts`) or from a trained pipeline (--pretrained_model_name_or_path, `hfldm.training.
pretrained_pipeline`), adapted to the task; the latent scale 1/σ̂ (LDM App. G); and the trainer, pipeline
parts and validation settings of them. `LDMRun` is what the script decided before building models.
"""

from __future__ import annotations

from dataclasses import dataclass

from hfldm.autoencoders.latent_space import latent_space
from hfldm.data.augment import Augmentation
from hfldm.schedulers.ddpm import DDPMScheduler
from hfldm.text.pretrained import hidden_size
from hfldm.training.conditioner import Conditioner
from hfldm.training.conditioning import conditioning_kind
from hfldm.training.data import check_scratch_tokenizer
from hfldm.training.latents import latent_scale
from hfldm.training.ldm_trainer import LDMTrainer
from hfldm.training.models import check_resolution, run_tokenizer, text_encoder_for, unet_from_yaml
from hfldm.training.pipeline_parts import PipelineParts
from hfldm.training.runtime import make_dataloader
from hfldm.training.tasks import ValidationSettings


@dataclass
class LDMRun:
    """train_ldm.py's flags and what it loaded before the models: the conditioning kind, the frozen
    autoencoder, the data and the task."""

    args: object  # LDMArguments
    data: object  # DataArguments
    train: object  # TrainingArguments
    accelerator: object
    kind: object  # TEXT, CLASS or NONE (hfldm.training.conditioning)
    vae: object
    source: object  # hfldm.training.data.LDMData
    task: object  # hfldm.training.tasks.Task
    augment: Augmentation
    pretrained: object = None  # hfldm.training.pretrained_pipeline.PretrainedParts, or None

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(c, h, w) of z_0 at --resolution."""
        side = check_resolution(self.vae, self.data.resolution)
        return latent_space(self.vae).latent_channels, side, side

    @property
    def train_shape(self) -> tuple[int, int, int]:
        """(c, h, w) of the latents a training step sees (after --crop_size)."""
        patch = check_resolution(self.vae, self.augment.output_size(self.data.resolution))
        return self.latent_shape[0], patch, patch


@dataclass
class LDMParts:
    """τ_θ, the U-Net and the forward process a run trains with, and what the pipeline records of them."""

    tokenizer: object
    text_encoder: object  # τ_θ, or None
    unet: object
    noise_scheduler: DDPMScheduler
    text_attention_mask: bool  # the pipeline's convention (False: attend to the padding, as CompVis)
    label_names: list[str] | None
    texts: list[str]  # the data's captions (text models)
    num_classes: int  # the data's classes (class models)
    train_text_encoder: bool = False


def first_stage(args, pretrained):
    """The frozen autoencoder: the pretrained pipeline's, or --autoencoder (with --revision / --variant)."""
    from hfldm.autoencoders.loading import load_autoencoder

    if pretrained:
        return pretrained.vae
    return load_autoencoder(args.autoencoder, revision=args.revision, variant=args.variant)


def check_augmentation(augment: Augmentation, cached_latents: str | None) -> None:
    """ValueError naming the augmentation flags when they meet a latent cache (its latents are fixed)."""
    if cached_latents and not augment.is_identity:
        raise ValueError("--crop_size / --augment_*: augmentation transforms images, not cached latents")


def run_conditioning(args, data, pretrained):
    """TEXT / CLASS / NONE of the flags (or of the pretrained pipeline, which brings its own τ_θ);
    ValueError naming the data flags when they contradict the pretrained pipeline."""
    encoder = "pretrained" if pretrained and pretrained.text_encoder is not None else args.text_encoder
    kind = conditioning_kind(encoder, data.caption_column, data.label_column)
    if pretrained and kind != pretrained.kind:
        raise ValueError(
            f"--pretrained_model_name_or_path: a {pretrained.kind}-conditioned pipeline, but the data flags "
            f"(--caption_column / --label_column) ask for {kind}"
        )
    return kind


def check_pretrained_classes(num_class_embeds: int | None, pretrained_embeds: int | None) -> None:
    """ValueError naming --label_column when the data's classes (+ the null class) differ from the U-Net's."""
    if num_class_embeds != pretrained_embeds:
        raise ValueError(
            f"--label_column: the data has {(num_class_embeds or 1) - 1} classes, the pretrained U-Net "
            f"{(pretrained_embeds or 1) - 1} (+ the null class)"
        )


def build_parts(run: LDMRun) -> LDMParts:
    """The run's τ_θ, U-Net (checkpointed if asked) and forward process, new or pretrained; the latent scale
    estimated (or kept) and recorded in the autoencoder's config."""
    args, train, source = run.args, run.train, run.source
    texts = run.kind.captions(source.dataset, source.text_column)
    classes = run.kind.num_classes(source.dataset, source.label_names, source.label_column)
    if run.pretrained:
        parts = pretrained_parts(run, texts=texts, classes=classes)
    else:
        parts = new_parts(run, texts=texts, classes=classes)
    parts.train_text_encoder = args.text_encoder == "scratch" or args.train_text_encoder
    if parts.train_text_encoder:
        parts.text_encoder.requires_grad_(True).train()
    check_patch(parts.unet, run.train_shape[-1])
    if train.gradient_checkpointing:
        parts.unet.enable_gradient_checkpointing()
    scale = run_latent_scale(run)
    run.accelerator.print(f"latent scale 1/std = {scale:.5f}")
    run.vae.register_to_config(scaling_factor=scale)  # saved with the pipeline's vae/
    return parts


def new_parts(run: LDMRun, texts: list[str], classes: int) -> LDMParts:
    """A fresh tokenizer, τ_θ, U-Net (with the task's condition channels) and DDPM forward process."""
    args, train = run.args, run.train
    tokenizer = None
    if args.text_encoder == "scratch":  # saved to output_dir first, reloaded on resume
        check_scratch_tokenizer(run.source.dataset)
        resuming = train.resume_from_checkpoint is not None
        tokenizer = run_tokenizer(run.accelerator, texts, args.text_vocab_size, train.output_dir, resuming)
    tokenizer, text_encoder = text_encoder_for(
        args.text_encoder, tokenizer, args.text_hidden_size, args.text_layers, args.max_text_length
    )
    unet = unet_from_yaml(
        args.unet_config,
        run.vae,
        run.latent_shape[-1],
        cross_attention_dim=hidden_size(text_encoder) if text_encoder else None,
        num_class_embeds=run.kind.num_class_embeds(classes),  # + the null class ∅ of guidance
        condition_channels=run.task.condition_channels,
    )
    noise_scheduler = DDPMScheduler(
        num_train_timesteps=args.num_train_timesteps,
        beta_schedule=args.beta_schedule,
        beta_start=args.beta_start,
        beta_end=args.beta_end,
        prediction_type=args.prediction_type,
        clip_sample=False,  # scaled latents are not in [-1, 1]: clipping x̂_0 there ruins samples
    )
    return LDMParts(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        unet=unet,
        noise_scheduler=noise_scheduler,
        text_attention_mask=True,
        label_names=run.source.label_names,
        texts=texts,
        num_classes=classes,
    )


def pretrained_parts(run: LDMRun, texts: list[str], classes: int) -> LDMParts:
    """The pretrained pipeline's parts, its U-Net adapted to the task (inpaint: + zero-initialised inputs)."""
    pretrained = run.pretrained
    unet = run.task.adapt_pretrained(pretrained.unet)
    check_pretrained_classes(run.kind.num_class_embeds(classes), unet.config.num_class_embeds)
    if run.args.train_text_encoder and pretrained.text_encoder is None:
        raise ValueError("--train_text_encoder: the pretrained pipeline has no text encoder")
    return LDMParts(
        tokenizer=pretrained.tokenizer,
        text_encoder=pretrained.text_encoder,
        unet=unet,
        noise_scheduler=pretrained.noise_scheduler,
        text_attention_mask=pretrained.text_attention_mask,
        label_names=pretrained.label_names or run.source.label_names,
        texts=texts,
        num_classes=classes,
    )


def check_patch(unet, patch: int) -> None:
    """ValueError naming --crop_size when the training latent does not halve as often as the U-Net does."""
    halvings = 2 ** (len(unet.config.block_out_channels) - 1)  # hfldm's and diffusers' U-Nets alike
    if patch % halvings:
        raise ValueError(f"--crop_size: its {patch} px latent does not halve {halvings}x evenly")


def run_latent_scale(run: LDMRun) -> float:
    """1/σ̂: the pretrained U-Net's (kept, never re-estimated), --scaling_factor, or estimated from data."""
    if run.pretrained:
        return run.args.scaling_factor or latent_space(run.vae).scaling_factor
    return latent_scale(
        run.vae,
        run.args.scaling_factor,
        lambda: fixed_batches(run),
        run.args.scale_estimation_images,
        run.latent_shape,
        run.train.seed,
    )


def training_batches(run: LDMRun):
    """The training loader: shuffled by the run's seed (a stream: through --shuffle_buffer_size rows)."""
    train, source = run.train, run.source
    return make_dataloader(
        source.dataset,
        train.train_batch_size,
        train.seed,
        source.collate,
        train.dataloader_num_workers,
        shuffle_buffer_size=run.data.shuffle_buffer_size,
    )


def fixed_batches(run: LDMRun):
    """The training data in order, unshuffled: for the latent scale, and the validation's first batch."""
    train, source = run.train, run.source
    return make_dataloader(source.dataset, train.train_batch_size, train.seed, source.collate, shuffle=False)


def make_conditioner(run: LDMRun, parts: LDMParts, text_encoder) -> Conditioner:
    """batch -> the U-Net's τ_θ(y) / class keyword arguments, ∅ where dropped; `text_encoder` as prepared."""
    return Conditioner(
        run.kind,
        tokenizer=parts.tokenizer,
        text_encoder=text_encoder,
        num_class_embeds=run.kind.num_class_embeds(parts.num_classes),
        train_text_encoder=parts.train_text_encoder,
        uncond=run.source.uncond,
        text_attention_mask=parts.text_attention_mask,
        padding="max_length" if run.args.torch_compile else "longest",  # one shape for a compiled graph
    )


def make_trainer(run: LDMRun, parts: LDMParts, **prepared) -> LDMTrainer:
    """The LDMTrainer of the run; `prepared`: unet (the forward, maybe compiled), condition, optimizer,
    lr_scheduler and trained, as accelerate prepared them."""
    args, data, train = run.args, run.data, run.train
    return LDMTrainer(
        accelerator=run.accelerator,
        ae=latent_space(run.vae),
        scheduler=parts.noise_scheduler,
        latent_shape=run.train_shape,
        seed=train.seed,
        cond_drop_prob=args.cond_drop_prob,
        noise_offset=args.noise_offset,
        snr_gamma=args.snr_gamma,
        random_flip=data.random_flip,
        max_grad_norm=train.max_grad_norm,
        task=run.task,
        augment=run.augment,
        **prepared,
    )


def pipeline_parts(run: LDMRun, parts: LDMParts, unet, text_encoder) -> PipelineParts:
    """The parts the task's pipeline is assembled from: the prepared U-Net and τ_θ, unwrapped there."""
    return PipelineParts(
        accelerator=run.accelerator,
        vae=run.vae,
        unet=unet,
        scheduler=parts.noise_scheduler,
        text_encoder=text_encoder,
        tokenizer=parts.tokenizer,
        label_names=parts.label_names,
        text_attention_mask=parts.text_attention_mask,
    )


def validation_settings(run: LDMRun, parts: LDMParts) -> ValidationSettings:
    """The validation grid's seeds, prompts or classes (the given ones, else the data's first), steps, w."""
    args = run.args
    prompts, labels = run.kind.validation_conditions(
        args.validation_prompts, args.validation_class_labels, parts.texts, parts.num_classes
    )
    return ValidationSettings(
        seeds=args.validation_seeds,
        prompts=prompts,
        class_labels=labels,
        num_inference_steps=args.num_inference_steps,
        guidance_scale=args.guidance_scale,
    )
