"""Fine-tune a trained LatentDiffusionPipeline with LoRA (Hu et al. 2022) on new images.

    accelerate launch training/train_lora.py --pretrained_model runs/ldm-emoji --train_data_dir my_images

Only low-rank updates W + (α/r)·B·A of the U-Net's attention projections (to_q, to_k, to_v, to_out.0) are
trained (and, with --train_text_encoder, of τ_θ's attention), with the same objective as train_ldm.py
(LDM eq. 3 / DDPM eq. 14). The adapter is saved to output_dir/pytorch_lora_weights.safetensors, a few
percent of the U-Net (with --train_text_encoder, τ_θ's adapter beside it); load both with

    pipe.load_lora_weights(output_dir, adapter_name="style")
    pipe.unet.set_adapters(["style"], weights=[0.8])  # the LoRA scale; pipe.unet.disable_lora(): off

(the U-Net's alone: pipe.unet.load_lora_adapter(output_dir, prefix=None, use_safetensors=True)).
"""

from dataclasses import dataclass

from accelerate.utils import set_seed
from peft import LoraConfig

from hfldm.atomic import atomic_entries
from hfldm.autoencoders.latent_space import latent_space
from hfldm.data.arguments import DataArguments
from hfldm.data.loader import collate_fn
from hfldm.pipelines.loading import load_pipeline
from hfldm.schedulers.ddpm import DDPMScheduler
from hfldm.text.lora import add_text_encoder_lora, save_text_encoder_lora, text_lora_targets
from hfldm.training.args import (
    TrainingArguments,
    arg,
    check_positive,
    check_training_arguments,
    parse_args,
    run,
)
from hfldm.training.checkpoints import resume
from hfldm.training.conditioner import Conditioner
from hfldm.training.conditioning import pipeline_kind
from hfldm.training.data import data_for, load_images
from hfldm.training.generation import GenerationTask
from hfldm.training.hub import hub_repo, push_folder
from hfldm.training.ldm_trainer import LDMTrainer  # train_ldm.py's step: only the trained parameters differ
from hfldm.training.loop import train_loop
from hfldm.training.models import check_resolution
from hfldm.training.nonfinite import stop_on_nonfinite
from hfldm.training.output_dir import claim_run
from hfldm.training.pipeline_parts import PipelineParts
from hfldm.training.runtime import (
    make_accelerator,
    make_dataloader,
    make_lr_scheduler,
    make_optimizer,
    tracker_config,
)
from hfldm.training.tasks import ValidationSettings
from hfldm.training.validation import save_and_log


@dataclass
class LoRAArguments:
    """The pipeline to adapt and the low-rank adapters."""

    pretrained_model: str | None = arg(
        None, "Folder of a trained LatentDiffusionPipeline (train_ldm.py output)."
    )
    rank: int = arg(4, "r, the rank of each LoRA update B·A.")
    lora_alpha: float | None = arg(None, "α; the update is scaled by α / r (default: α = r).")
    target_modules: list[str] = arg(["to_q", "to_k", "to_v", "to_out.0"], "U-Net modules that get adapters.")
    train_text_encoder: bool = arg(False, "Also put adapters on τ_θ's attention projections.")
    cond_drop_prob: float = arg(0.1, "Share of samples trained unconditionally (empty prompt / null class).")
    snr_gamma: float | None = arg(None, "Min-SNR-γ loss weighting (Hang et al. 2023); off if unset.")
    noise_offset: float = arg(0.0, "Add offset·N(0, I) per channel to ε; 0 = off.")
    validation_prompts: list[str] = arg([], "Prompts of the validation grid (default: the first captions).")
    validation_class_labels: list[int] = arg([], "Classes of the validation grid (default: the first four).")
    validation_seeds: list[int] = arg([0, 1, 2, 3], "Seeds of the validation grid, one column each.")
    num_inference_steps: int = arg(50, "Steps of the validation samples.")
    guidance_scale: float = arg(3.0, "Classifier-free guidance scale of the validation samples.")

    def validate(self) -> None:
        if self.pretrained_model is None:
            raise ValueError("--pretrained_model: required (the folder written by train_ldm.py)")
        check_positive(self, "rank", "lora_alpha", "snr_gamma", "num_inference_steps")
        check_positive(self, "noise_offset", "guidance_scale", allow_zero=True)
        if not 0 <= self.cond_drop_prob <= 1:
            raise ValueError(f"--cond_drop_prob: must be in [0, 1], got {self.cond_drop_prob}")


def lora_objective(args, train, random_flip: bool, augment) -> dict:
    """LDMTrainer's objective and augmentation flags of a LoRA run (train_ldm.py's, without a task)."""
    return {
        "cond_drop_prob": args.cond_drop_prob,
        "noise_offset": args.noise_offset,
        "snr_gamma": args.snr_gamma,
        "random_flip": random_flip,
        "max_grad_norm": train.max_grad_norm,
        "augment": augment,
    }


def validation_settings(args, kind, texts: list[str], num_class_embeds: int | None) -> ValidationSettings:
    """The validation grid's seeds, prompts or classes (the given ones, else the data's first), steps, w."""
    prompts, labels = kind.validation_conditions(
        args.validation_prompts, args.validation_class_labels, texts, (num_class_embeds or 1) - 1
    )
    return ValidationSettings(
        seeds=args.validation_seeds,
        prompts=prompts,
        class_labels=labels,
        num_inference_steps=args.num_inference_steps,
        guidance_scale=args.guidance_scale,
    )


def add_adapters(args, unet, text_encoder) -> tuple[list, LoraConfig | None]:
    """LoRA on the U-Net (and on τ_θ if asked); B = 0 at the start, so training starts from the pipeline's
    own outputs. Returns the models that train and τ_θ's LoRA config (None when τ_θ stays frozen)."""
    lora = dict(r=args.rank, lora_alpha=args.lora_alpha or args.rank, init_lora_weights="gaussian")
    unet.add_adapter(LoraConfig(**lora, target_modules=args.target_modules))
    if not args.train_text_encoder or text_encoder is None:
        return [unet], None
    text_lora = LoraConfig(**lora, target_modules=text_lora_targets(text_encoder))
    add_text_encoder_lora(text_encoder, text_lora)
    return [unet, text_encoder], text_lora


def save_adapters(unet, text_encoder, text_lora: LoraConfig | None, output_dir: str) -> None:
    """The adapters only, one small safetensors file per model; a kill while saving keeps the earlier ones."""
    with atomic_entries(output_dir, last="pytorch_lora_weights.safetensors") as staging:
        unet.save_lora_adapter(staging, safe_serialization=True)
        if text_lora is not None:
            save_text_encoder_lora(text_encoder, text_lora, staging)


def main() -> None:
    args, data, train = parse_args(LoRAArguments, DataArguments, TrainingArguments, description=__doc__)
    check_training_arguments(train)
    repo_id = hub_repo(train.push_to_hub, train.hub_model_id, train.output_dir, train.hub_token)
    accelerator = make_accelerator(train, train.seed)
    claim_run(accelerator, train, tracker_config(args, data, train))  # a second run is refused
    set_seed(train.seed)

    # 1. the pipeline: frozen autoencoder, τ_θ and U-Net, and how it is conditioned
    pipeline = load_pipeline(args.pretrained_model, "--pretrained_model")
    vae, unet, text_encoder = pipeline.vae, pipeline.unet, pipeline.text_encoder
    kind = pipeline_kind(pipeline)  # TEXT, CLASS or NONE (hfldm.training.conditioning)
    kind.require_column(data.caption_column, data.label_column)
    num_class_embeds = unet.config.num_class_embeds
    for model in (vae, unet, text_encoder):
        if model is not None:
            model.requires_grad_(False).to(accelerator.device)
    noise_scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    augment = data.augmentation()  # scale / shift / crop of the training batches (hfldm.data.augment)
    latent_size = check_resolution(vae, augment.output_size(data.resolution))  # what a step sees
    latent_shape = (latent_space(vae).latent_channels, latent_size, latent_size)

    # 2. data: images with the captions or labels the pipeline understands
    flip, data = data.random_flip, data_for(data, kind)  # flips: drawn per sample in the training step
    dataset, _ = load_images(data)
    train_loader = make_dataloader(
        dataset,
        train.train_batch_size,
        train.seed,
        collate_fn,
        train.dataloader_num_workers,
        shuffle_buffer_size=data.shuffle_buffer_size,
    )

    # 3. adapters (B = 0 at the start, so training starts from the pipeline's own outputs) and the optimiser
    trained, text_lora = add_adapters(args, unet, text_encoder)
    optimizer = make_optimizer((p for m in trained for p in m.parameters()), train)
    lr_scheduler = make_lr_scheduler(optimizer, train, accelerator.num_processes)

    # 4. accelerate
    *trained, optimizer, lr_scheduler, train_loader = accelerator.prepare(
        *trained, optimizer, lr_scheduler, train_loader
    )
    unet, text_model = trained[0], trained[1] if len(trained) > 1 else text_encoder
    stop_on_nonfinite(accelerator, train.skip_nonfinite_steps, optimizer)
    condition = Conditioner(
        kind,
        tokenizer=pipeline.tokenizer,
        text_encoder=text_model,
        num_class_embeds=num_class_embeds,
        train_text_encoder=len(trained) > 1,
        text_attention_mask=pipeline.config.text_attention_mask,  # the pipeline's (CompVis: False)
    )
    trainer = LDMTrainer(
        accelerator=accelerator,
        ae=latent_space(vae),
        unet=unet,
        scheduler=noise_scheduler,
        condition=condition,
        optimizer=optimizer,
        lr_scheduler=lr_scheduler,
        trained=trained,
        latent_shape=latent_shape,
        seed=train.seed,
        **lora_objective(args, train, random_flip=flip, augment=augment),
    )
    if accelerator.is_main_process:
        accelerator.init_trackers("train_lora", config=tracker_config(args, data, train))
    first_step = resume(accelerator, train.output_dir, train.resume_from_checkpoint)

    settings = validation_settings(args, kind, kind.captions(dataset, data.caption_column), num_class_embeds)
    parts = PipelineParts(
        accelerator=accelerator,
        vae=vae,
        unet=unet,
        scheduler=noise_scheduler,
        text_encoder=text_model,
        tokenizer=pipeline.tokenizer,
        label_names=list((pipeline.config.id2label or {}).values()) or None,
        text_attention_mask=pipeline.config.text_attention_mask,
    )
    task = GenerationTask()  # LoRA fine-tunes a text / class / unconditional pipeline: z_t alone

    def validate(step: int) -> None:
        grid, _ = task.validation(task.pipeline(parts), {}, settings)
        save_and_log(accelerator, grid, train.output_dir, "samples", step)

    # 5. the loop of train_ldm.py (without EMA), then the adapters only: a small safetensors file per model
    train_loop(accelerator, train_loader, train, first_step, trainer.training_step, lr_scheduler, validate)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        text_adapted = accelerator.unwrap_model(text_model) if text_lora is not None else None
        save_adapters(accelerator.unwrap_model(unet), text_adapted, text_lora, train.output_dir)
        accelerator.print(f"saved the LoRA adapter to {train.output_dir}")
        if repo_id is not None:
            push_folder(repo_id, train.output_dir, train.hub_token, "Upload from hfldm's train_lora.py")
    accelerator.end_training()


if __name__ == "__main__":
    run(main)
