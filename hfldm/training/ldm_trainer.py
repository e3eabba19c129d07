"""One pass of the LDM objective (DDPM's Algorithm 1 in latent space), shared by every task and by LoRA.

train_ldm.py trains the U-Net (and τ_θ) with it, train_lora.py only the low-rank adapters; a task
(hfldm.training.tasks) decides what the U-Net sees beside z_t.
"""

from dataclasses import dataclass, field

import torch
from accelerate import Accelerator

from hfldm.autoencoders.latent_space import LatentSpace
from hfldm.data.augment import AUGMENT_STREAM, Augmentation, flippable
from hfldm.schedulers.ddpm import DDPMScheduler
from hfldm.training.conditioner import Conditioner
from hfldm.training.generation import GenerationTask
from hfldm.training.latents import batch_latents
from hfldm.training.losses import diffusion_loss
from hfldm.training.randomness import batch_size_of, global_indices, sample_generators, step_draws
from hfldm.training.runtime import optimizer_step
from hfldm.training.tasks import Task


@dataclass
class LDMTrainer:
    """What one pass of the LDM objective touches; train_lora.py trains with the same step."""

    accelerator: Accelerator
    ae: LatentSpace  # the frozen first stage E / D
    unet: torch.nn.Module  # ε_θ, prepared by accelerate
    scheduler: DDPMScheduler  # the forward process q(z_t | z_0)
    condition: Conditioner  # batch -> U-Net kwargs: τ_θ(y) or a class label, ∅ where dropped
    optimizer: torch.optim.Optimizer
    lr_scheduler: object
    trained: list[torch.nn.Module]  # what the optimiser updates: the U-Net (and τ_θ when trained with it)
    latent_shape: tuple[int, int, int]  # (c, h, w) of z_0
    seed: int
    cond_drop_prob: float
    noise_offset: float
    snr_gamma: float | None
    random_flip: bool
    max_grad_norm: float
    task: Task = field(default_factory=GenerationTask)  # what the U-Net sees (hfldm.training.tasks)
    augment: Augmentation = field(default_factory=Augmentation)  # scale / shift / crop (hfldm.data.augment)

    def augmented(self, batch: dict, micro_step: int) -> dict:
        """The batch with its pixel_values scaled, shifted and cropped, each sample by its own draws."""
        if self.augment.is_identity:
            return batch
        indices = global_indices(batch_size_of(batch), self.accelerator.process_index)
        generators = sample_generators(self.seed, micro_step, indices, AUGMENT_STREAM)
        return {**batch, "pixel_values": self.augment(batch["pixel_values"], generators)}

    def training_step(self, batch: dict, micro_step: int) -> dict:
        """One forward/backward pass of DDPM's Algorithm 1 in latent space; returns {"loss": the loss}."""
        # t ~ U{0..T-1}, ε ~ N(0, I), η of z ~ q(z|x), the CFG dropout and the flips, each from the sample's
        # own generator seeded by (seed, micro_step, global index): a resumed run draws what it would have
        d = step_draws(
            self.accelerator,
            self.seed,
            micro_step,
            batch_size_of(batch),
            self.latent_shape,
            self.scheduler.config.num_train_timesteps,
            self.cond_drop_prob,
        )
        batch = self.augmented(batch, micro_step)  # what every task reads from the pixels, alike
        with self.accelerator.accumulate(*self.trained):
            # mirror only where the caption stays true of the picture ("right arrow", "flag: France" don't)
            flip = d.flip & flippable(batch.get("text"), len(d.flip)) if self.random_flip else None
            z = batch_latents(batch, self.ae, d.posterior_noise, flip)
            z0 = self.ae.scale_latents(z)  # z_0 = E(x)·scale (LDM App. G)
            eps = (d.noise + self.noise_offset * d.offset).to(z0.device)  # noise offset (Guttenberg 2023)
            t = d.timesteps.to(z0.device)
            cond = self.condition(batch, d.drop, z0.device)  # τ_θ(y), or ∅ with probability cond_drop_prob
            z_t = self.scheduler.add_noise(z0, eps, t)  # z_t = √ᾱ_t z_0 + √(1 − ᾱ_t) ε  (DDPM eq. 4)
            unet_config = self.accelerator.unwrap_model(self.unet, keep_torch_compile=False).config
            z_in = self.task.unet_input(z_t, batch, micro_step, flip, unet_config)  # z_t or [z_t, y] (§3.3)
            prediction = self.unet(z_in, t, **cond).sample  # ε_θ(z_t, t, τ_θ(y)) or ε_θ([z_t, y], t)
            loss = diffusion_loss(self.scheduler, prediction, z0, eps, t, self.snr_gamma)  # DDPM eq. 14
            self.accelerator.backward(loss)
            parameters = self.optimizer.param_groups[0]["params"]
            optimizer_step(
                self.accelerator, self.optimizer, self.lr_scheduler, parameters, self.max_grad_norm
            )
        return {"loss": loss.detach()}
