"""Train LDM's second stage: a conditional U-Net ε_θ in the latent space of a trained autoencoder.

    accelerate launch training/train_ldm.py --config training/configs/ldm_emoji.yaml

The objective is LDM eq. 2/3, DDPM's simplified loss (Ho et al. 2020, eq. 14) on z_0 = E(x)·scale:
    L = E_{z_0, ε ~ N(0, I), t} || ε − ε_θ(z_t, t, τ_θ(y)) ||²,   z_t = √ᾱ_t z_0 + √(1 − ᾱ_t) ε,
or the v-target (--prediction_type v_prediction), optionally min-SNR-γ weighted (--snr_gamma). The condition
y is text (τ_θ = frozen MiniLM, a transformer trained jointly, or any pretrained transformers encoder such as
CLIP's, --text_encoder), a class (--label_column) or
nothing; --cond_drop_prob of the samples train without it, for classifier-free guidance. The latent scale
1/σ̂ is estimated from the data when the autoencoder's config still has scaling_factor 1.0 (LDM App. G).
--task (hfldm.training.task_registry) says what the U-Net sees beside z_t: --task superres trains
ε_θ([z_t, y], t) instead (LDM §4.4): y is the image degraded and downsampled by
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
from hfldm.data.arguments import DataArguments
from hfldm.training.args import TrainingArguments, check_training_arguments, parse_args, run
from hfldm.training.card import SAMPLES_FILE, training_card, training_command
from hfldm.training.checkpoints import resume
from hfldm.training.data import ldm_data
from hfldm.training.ema import ema_weights, make_ema
from hfldm.training.hub import hub_repo, push_folder
from hfldm.training.ldm_parts import (
    LDMRun,
    build_parts,
    check_augmentation,
    first_stage,
    fixed_batches,
    make_conditioner,
    make_trainer,
    pipeline_parts,
    run_conditioning,
    training_batches,
    validation_settings,
)
from hfldm.training.loop import train_loop
from hfldm.training.nonfinite import stop_on_nonfinite
from hfldm.training.output_dir import claim_run
from hfldm.training.pretrained_pipeline import load_pretrained_parts
from hfldm.training.runtime import make_accelerator, make_lr_scheduler, make_optimizer, tracker_config
from hfldm.training.task_registry import task_class
from hfldm.training.tasks import TaskContext
from hfldm.training.validation import save_and_log


def save_final(accelerator, final, grid, metrics, args, data, train, repo_id) -> None:
    """The pipeline with its card and sample grid in output_dir (atomically), pushed to the Hub if asked."""
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


def main() -> None:
    args, data, train = parse_args(LDMArguments, DataArguments, TrainingArguments, description=__doc__)
    check_training_arguments(train)
    repo_id = hub_repo(train.push_to_hub, train.hub_model_id, train.output_dir, train.hub_token)
    Task = task_class(args.task)  # hfldm.training.task_registry
    Task.check_arguments(args, data)  # what it can check before loading anything
    pretrained = load_pretrained_parts(args.pretrained_model_name_or_path)  # None: build the parts anew
    kind = run_conditioning(args, data, pretrained)  # TEXT, CLASS or NONE (hfldm.training.conditioning)
    accelerator = make_accelerator(train, train.seed)
    claim_run(accelerator, train, tracker_config(args, data, train))  # a second run is refused
    set_seed(train.seed)

    # 1. data: images (or cached posteriors) with their captions or labels, the frozen autoencoder, the task
    vae = first_stage(args, pretrained).to(accelerator.device)
    augment = data.augmentation()  # scale / shift / crop of the training batches (hfldm.data.augment)
    check_augmentation(augment, args.cached_latents)
    context = TaskContext(vae, data.resolution, train.seed, accelerator.process_index)
    run = LDMRun(
        args=args,
        data=data,
        train=train,
        accelerator=accelerator,
        kind=kind,
        vae=vae,
        source=ldm_data(data, kind, args.cached_latents, vae, args.text_encoder),
        task=Task.from_arguments(args, context),  # complete: what the U-Net sees, the pipeline it saves
        augment=augment,
        pretrained=pretrained,
    )
    task, train_loader = run.task, training_batches(run)

    # 2. models: τ_θ, the U-Net, the noise schedule, the latent scale (the autoencoder stays frozen)
    parts = build_parts(run)
    unet, text_encoder = parts.unet, parts.text_encoder

    # 3. the optimiser over the U-Net (and τ_θ when it is trained with it); accelerate; EMA; resume
    if text_encoder is not None:
        text_encoder.to(accelerator.device)
    trained = [unet, text_encoder] if parts.train_text_encoder else [unet]
    optimizer = make_optimizer((p for m in trained for p in m.parameters()), train)
    lr_scheduler = make_lr_scheduler(optimizer, train, accelerator.num_processes)
    *trained, optimizer, lr_scheduler, train_loader = accelerator.prepare(
        *trained, optimizer, lr_scheduler, train_loader
    )
    unet, text_encoder = trained[0], trained[-1] if parts.train_text_encoder else text_encoder
    stop_on_nonfinite(accelerator, train.skip_nonfinite_steps, optimizer)
    ema = make_ema(accelerator, unet, args.ema_decay, args.ema_power) if args.use_ema else None
    if accelerator.is_main_process:
        accelerator.init_trackers("train_ldm", config=tracker_config(args, data, train))
    first_step = resume(accelerator, train.output_dir, train.resume_from_checkpoint)

    condition = make_conditioner(run, parts, text_encoder)  # batch -> τ_θ(y) or class, ∅ where dropped
    # compile-clean (tests/models/test_compile.py): one graph, no breaks; only the forward is compiled, so the
    # prepared module that accelerate checkpoints, EMA and validation stay the plain one
    forward = torch.compile(unet, fullgraph=True) if args.torch_compile else unet
    trainer = make_trainer(
        run,
        parts,
        unet=forward,
        condition=condition,
        optimizer=optimizer,
        lr_scheduler=lr_scheduler,
        trained=trained,
    )
    pipeline_of = pipeline_parts(run, parts, unet, text_encoder)
    settings = validation_settings(run, parts)

    def samples() -> tuple:
        """(grid, metrics) of the EMA weights, from the task (hfldm.training.tasks)."""
        with ema_weights(ema, accelerator.unwrap_model(unet)):
            return task.validation(task.pipeline(pipeline_of), next(iter(fixed_batches(run))), settings)

    def validate(step: int) -> None:
        grid, metrics = samples()
        if metrics:
            accelerator.log(metrics, step=step)
        save_and_log(accelerator, grid, train.output_dir, "samples", step)

    # 4. the loop, then the whole pipeline with the EMA weights, loadable by DiffusionPipeline.from_pretrained
    ema_step = (lambda step: ema.step(accelerator.unwrap_model(unet).parameters())) if ema else None
    train_loop(
        accelerator,
        train_loader,
        train,
        first_step,
        trainer.training_step,
        lr_scheduler,
        validate,
        after_step=ema_step,
    )
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        grid, metrics = samples()  # for the card
        if ema is not None:
            ema.copy_to(accelerator.unwrap_model(unet).parameters())
        save_final(accelerator, task.pipeline(pipeline_of), grid, metrics, args, data, train, repo_id)
    accelerator.end_training()


if __name__ == "__main__":
    run(main)
