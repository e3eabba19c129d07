"""Latent consistency distillation (Luo et al. 2023, Algorithm 1) of a trained hfldm LDM: a few-step student.

    python training/distill.py --teacher models/hfldm-emoji --train_data_dir data/emoji/32 \
        --caption_column text --output_dir runs/emoji-lcm

The teacher is a text-, class- or unconditional LatentDiffusionPipeline folder. Per step: z_0 from the data
(or --cached_latents), t_{n+k} → t_n on a skipping-step DDIM schedule, w ~ U[w_min, w_max]; the teacher's
guided DDIM step gives ẑ_{t_n}; the loss is d(f_θ(z_{t_{n+k}}, w, c), f_θ⁻(ẑ_{t_n}, w, c)) through the
consistency boundary conditions (hfldm.training.consistency). --student full trains a copy of the teacher's
U-Net with a zero-initialised w-embedding (its target an EMA, μ = --ema_decay) and saves a whole pipeline
with diffusers' LCMScheduler; --student lora trains an LCM-LoRA adapter on the teacher's U-Net (guidance-
free) and saves output_dir/pytorch_lora_weights.safetensors, loaded with `pipe.load_lora_weights(dir)`.
Same loop, checkpoints, exact resume (per-sample generators) and output-dir ownership as train_ldm.py.
"""

from contextlib import contextmanager

import torch
from accelerate.utils import set_seed
from diffusers import LCMScheduler
from distill_arguments import DistillArguments  # beside this script
from peft import LoraConfig

from hfldm.atomic import atomic_entries
from hfldm.autoencoders.latent_space import latent_space
from hfldm.data.arguments import DataArguments
from hfldm.pipelines.loading import load_pipeline
from hfldm.pipelines.pipeline_latent_diffusion import LatentDiffusionPipeline
from hfldm.training.args import TrainingArguments, check_training_arguments, parse_args, run
from hfldm.training.checkpoints import resume
from hfldm.training.conditioner import Conditioner
from hfldm.training.conditioning import pipeline_kind
from hfldm.training.consistency import skipping_schedule, student_from_teacher
from hfldm.training.consistency_trainer import ConsistencyTrainer
from hfldm.training.data import ldm_data
from hfldm.training.ema import make_ema
from hfldm.training.generation import sample_grid
from hfldm.training.loop import train_loop
from hfldm.training.models import check_resolution
from hfldm.training.nonfinite import stop_on_nonfinite
from hfldm.training.output_dir import claim_run
from hfldm.training.runtime import (
    make_accelerator,
    make_dataloader,
    make_lr_scheduler,
    make_optimizer,
    tracker_config,
)
from hfldm.training.validation import save_and_log

LORA_FILE = "pytorch_lora_weights.safetensors"


@contextmanager
def adapters_off(unet):
    """Within the block the LoRA student's U-Net is its teacher: adapters disabled."""
    unet.disable_adapters()
    try:
        yield
    finally:
        unet.enable_adapters()


def make_student(args: DistillArguments, teacher):
    """(student, target or None, teacher_mode): the full student with its w-embedding and an EMA target, or
    the teacher's U-Net with LCM-LoRA adapters (its own target; the teacher with the adapters off)."""
    if args.student == "full":
        student = student_from_teacher(teacher, args.time_cond_proj_dim).train().requires_grad_(True)
        return student, None, None
    lora = LoraConfig(
        r=args.rank, lora_alpha=args.rank, init_lora_weights="gaussian", target_modules=args.target_modules
    )
    teacher.add_adapter(lora)  # B = 0: the student starts as the teacher
    return teacher, teacher, lambda: adapters_off(teacher)


def few_step_pipeline(accelerator, teacher_pipe, unet, args: DistillArguments) -> LatentDiffusionPipeline:
    """The teacher's pipeline around the student's (unwrapped) U-Net, with diffusers' LCMScheduler on the
    distillation's skipping-step grid and boundary coefficients."""
    scheduler = LCMScheduler.from_config(
        teacher_pipe.scheduler.config,
        original_inference_steps=args.num_ddim_timesteps,
        timestep_scaling=args.timestep_scaling,
    )
    pipe = LatentDiffusionPipeline(
        vae=teacher_pipe.vae,
        unet=accelerator.unwrap_model(unet),
        scheduler=scheduler,
        text_encoder=teacher_pipe.text_encoder,
        tokenizer=teacher_pipe.tokenizer,
        id2label=teacher_pipe.config.id2label,
        text_attention_mask=teacher_pipe.config.text_attention_mask,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_validate(accelerator, args, train, pipe, student, kind, source):
    """validate(step): a grid of the student's few-step samples of the validation prompts / labels."""
    texts = kind.captions(source.dataset, source.text_column)
    classes = (pipe.unet.config.num_class_embeds or 1) - 1
    prompts, labels = kind.validation_conditions(
        args.validation_prompts, args.validation_class_labels, texts, classes
    )

    def validate(step: int) -> None:
        grid = sample_grid(
            few_step_pipeline(accelerator, pipe, student, args),
            seeds=args.validation_seeds,
            prompts=prompts,
            class_labels=labels,
            num_inference_steps=args.num_inference_steps,
            guidance_scale=args.guidance_scale if args.student == "full" else 1.0,  # LoRA: w baked in
        )
        save_and_log(accelerator, grid, train.output_dir, "samples", step)

    return validate


def save_student(accelerator, args, output_dir, pipe, student, target) -> None:
    """The full student as a whole few-step pipeline (θ⁻'s weights), or the LCM-LoRA adapter alone."""
    if args.student == "full":
        final = few_step_pipeline(accelerator, pipe, target, args)
        with atomic_entries(output_dir) as staging:  # a kill here leaves the earlier model whole
            final.save_pretrained(staging)
    else:
        with atomic_entries(output_dir, last=LORA_FILE) as staging:
            accelerator.unwrap_model(student).save_lora_adapter(staging, safe_serialization=True)
    accelerator.print(f"saved the {args.student} student to {output_dir}")


def main() -> None:
    args, data, train = parse_args(DistillArguments, DataArguments, TrainingArguments, description=__doc__)
    check_training_arguments(train)
    accelerator = make_accelerator(train, train.seed)
    claim_run(accelerator, train, tracker_config(args, data, train))  # a second run is refused
    set_seed(train.seed)

    # 1. the teacher (frozen) and the data it was trained on: images or their cached latents
    pipe = load_pipeline(args.teacher, "--teacher")
    kind = pipeline_kind(pipe)  # TEXT, CLASS or NONE (hfldm.training.conditioning)
    kind.require_column(data.caption_column, data.label_column)
    for model in (pipe.vae, pipe.unet, pipe.text_encoder):
        if model is not None:
            model.requires_grad_(False).eval().to(accelerator.device)
    latent_size = check_resolution(pipe.vae, data.resolution)
    latent_shape = (latent_space(pipe.vae).latent_channels, latent_size, latent_size)
    source = ldm_data(data, kind, args.cached_latents, pipe.vae, "pretrained")
    train_loader = make_dataloader(
        source.dataset, train.train_batch_size, train.seed, source.collate, train.dataloader_num_workers
    )

    # 2. the student, the optimiser over what it trains, accelerate, the EMA target, resume
    student, target, teacher_mode = make_student(args, pipe.unet)
    optimizer = make_optimizer(student.parameters(), train)
    lr_scheduler = make_lr_scheduler(optimizer, train, accelerator.num_processes)
    student, optimizer, lr_scheduler, train_loader = accelerator.prepare(
        student, optimizer, lr_scheduler, train_loader
    )
    stop_on_nonfinite(accelerator, train.skip_nonfinite_steps, optimizer)
    ema = None
    if target is None:  # θ⁻, a frozen copy that the EMA of θ is copied into after every step
        target = student_from_teacher(accelerator.unwrap_model(student), None).requires_grad_(False).eval()
        ema = make_ema(accelerator, student, args.ema_decay, warmup=False)
    if accelerator.is_main_process:
        accelerator.init_trackers("distill", config=tracker_config(args, data, train))
    first_step = resume(accelerator, train.output_dir, train.resume_from_checkpoint)
    if ema is not None:
        ema.copy_to(target.parameters())  # θ⁻ of the checkpoint (θ at a fresh start)

    # 3. LCM's Algorithm 1, one step per batch (hfldm.training.consistency_trainer)
    schedule, k = skipping_schedule(pipe.scheduler.config.num_train_timesteps, args.num_ddim_timesteps)
    condition = Conditioner(
        kind,
        tokenizer=pipe.tokenizer,
        text_encoder=pipe.text_encoder,
        num_class_embeds=pipe.unet.config.num_class_embeds,
        uncond=source.uncond,
        text_attention_mask=pipe.config.text_attention_mask,
        padding="max_length",  # c and ∅ stacked into one teacher batch: one length
    )
    trainer = ConsistencyTrainer(
        accelerator=accelerator,
        vae=pipe.vae,
        student=student,
        target=target,
        teacher=pipe.unet,
        teacher_mode=teacher_mode,
        alphas_cumprod=torch.as_tensor(pipe.scheduler.alphas_cumprod),
        prediction_type=pipe.scheduler.config.prediction_type,
        schedule=schedule,
        k=k,
        condition=condition,
        optimizer=optimizer,
        lr_scheduler=lr_scheduler,
        latent_shape=latent_shape,
        seed=train.seed,
        w_min=args.w_min,
        w_max=args.w_max,
        huber_c=args.huber_c if args.loss_type == "huber" else None,
        timestep_scaling=args.timestep_scaling,
        max_grad_norm=train.max_grad_norm,
        embeds_guidance=args.student == "full",
    )
    validate = make_validate(accelerator, args, train, pipe, student, kind, source)

    def after_step(step: int) -> None:  # θ⁻ ← μ θ⁻ + (1 − μ) θ  (LCM Alg. 1, last line)
        if ema is not None:
            ema.step(accelerator.unwrap_model(student).parameters())
            ema.copy_to(target.parameters())

    train_loop(
        accelerator,
        train_loader,
        train,
        first_step,
        training_step=trainer.training_step,
        lr_scheduler=lr_scheduler,
        validate=validate,
        after_step=after_step,
    )

    # 4. the student: a whole few-step pipeline (θ⁻'s weights), or the LCM-LoRA adapter alone
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_student(accelerator, args, train.output_dir, pipe, student, target)
    accelerator.end_training()


if __name__ == "__main__":
    run(main)
