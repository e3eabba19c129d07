"""One step of latent consistency distillation (Luo et al. 2023, Algorithm 1), for training/distill.py.

The full student is a U-Net copied from the teacher with a w-embedding, its target θ⁻ an EMA of it; the
LCM-LoRA student is the teacher's U-Net with low-rank adapters (the teacher is that U-Net with the adapters
off), its target the student itself without gradient (as LCM-LoRA, Luo et al. 2023b, trains it).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from accelerate import Accelerator

from hfldm.autoencoders.latent_space import latent_space
from hfldm.nn.embeddings import guidance_scale_embedding
from hfldm.schedulers.prediction import predict_x0_and_eps
from hfldm.training.conditioner import Conditioner
from hfldm.training.consistency import (
    adjacent_timesteps,
    alpha_sigma,
    consistency_output,
    ddim_solver_step,
    guided,
    pseudo_huber,
)
from hfldm.training.latents import batch_latents
from hfldm.training.randomness import batch_size_of, global_indices, sample_generators, step_draws
from hfldm.training.runtime import optimizer_step

TeacherMode = Callable[[], AbstractContextManager]
CONSISTENCY_STREAM = 5  # after randomness', superres', inpaint's and augment's streams (0-4)


@dataclass
class ConsistencyDraws:
    """The draws of one step beside StepNoise's: the schedule index n and the guidance scale w, (B,) each."""

    index: torch.Tensor
    w: torch.Tensor


def draw_n_and_w(
    generators: list[torch.Generator], num_ddim_timesteps: int, w_min: float, w_max: float
) -> ConsistencyDraws:
    """n ~ U{0..N−1} and w ~ U[w_min, w_max] per sample (LCM Alg. 1, lines 3-4), each from its generator."""
    index = torch.stack([torch.randint(0, num_ddim_timesteps, (), generator=g) for g in generators])
    u = torch.stack([torch.rand((), generator=g) for g in generators])
    return ConsistencyDraws(index, w_min + (w_max - w_min) * u)


@dataclass
class ConsistencyTrainer:
    """What one LCD step touches."""

    accelerator: Accelerator
    vae: torch.nn.Module  # the frozen first stage E (any kind: hfldm.autoencoders.latent_space)
    student: torch.nn.Module  # f_θ's U-Net, prepared by accelerate
    target: torch.nn.Module  # f_θ⁻'s U-Net: the EMA copy (full student) or the student itself (LoRA)
    teacher: torch.nn.Module  # the teacher's U-Net (for LoRA: the student's, adapters off in `teacher_mode`)
    teacher_mode: TeacherMode | None  # () -> the context in which `teacher` is one (LoRA: adapters off)
    alphas_cumprod: torch.Tensor  # ᾱ_t of the teacher's forward process
    prediction_type: str  # what the teacher (and the student) predict
    schedule: torch.Tensor  # the N DDIM timesteps t_{n+k} (hfldm.training.consistency.skipping_schedule)
    k: int  # the skipping interval
    condition: Conditioner  # batch -> U-Net kwargs of c (drop=False) and ∅ (drop=True)
    optimizer: torch.optim.Optimizer
    lr_scheduler: object
    latent_shape: tuple[int, int, int]
    seed: int
    w_min: float
    w_max: float
    huber_c: float | None  # None: L2
    timestep_scaling: float
    max_grad_norm: float
    embeds_guidance: bool  # whether the student gets w (its w-embedding) as input

    def w_kwargs(self, w: torch.Tensor) -> dict:
        """{"timestep_cond": features of w} for a student with a w-embedding, else {}."""
        if not self.embeds_guidance:
            return {}
        dim = self.accelerator.unwrap_model(self.student).config.time_cond_proj_dim
        return {"timestep_cond": guidance_scale_embedding(w, dim)}

    def f(self, unet, z, t, cond: dict, w: torch.Tensor) -> torch.Tensor:
        """f(z, w, c, t) = c_skip(t) z + c_out(t) ẑ_0(z, w, c, t)  (LCM eq. 9)."""
        out = unet(z, t, **cond, **self.w_kwargs(w)).sample
        return consistency_output(out, z, t, self.alphas_cumprod, self.prediction_type, self.timestep_scaling)

    @torch.no_grad()
    def teacher_step(self, z, t, t_prev, cond: dict, uncond: dict, w: torch.Tensor) -> torch.Tensor:
        """ẑ_{t_n} = Ψ(z_{t_{n+k}}, t_{n+k}, t_n, c) with the guided estimates (LCM eq. 8, Alg. 1 line 6)."""
        with self.teacher_mode() if self.teacher_mode else nullcontext():
            both = {k: torch.cat([uncond[k], cond[k]]) for k in cond}  # ∅ rows first, as the pipeline
            out = self.teacher(torch.cat([z, z]), torch.cat([t, t]), **both).sample.float()
        alpha_bar = self.alphas_cumprod.to(t.device)[torch.cat([t, t])].float()[:, None, None, None]
        x0, eps = predict_x0_and_eps(out, torch.cat([z, z]).float(), alpha_bar, self.prediction_type)
        (x0_u, x0_c), (eps_u, eps_c) = x0.chunk(2), eps.chunk(2)
        return ddim_solver_step(guided(x0_c, x0_u, w), guided(eps_c, eps_u, w), self.alphas_cumprod, t_prev)

    def training_step(self, batch: dict, micro_step: int) -> dict:
        """One step of LCM's Algorithm 1; returns {"loss": d(f_θ, f_θ⁻)}."""
        n = batch_size_of(batch)
        # ε and z's posterior noise from train_ldm.py's per-sample draws (their t and dropout unused here)
        d = step_draws(self.accelerator, self.seed, micro_step, n, self.latent_shape, 1, 0.0)
        generators = sample_generators(
            self.seed, micro_step, global_indices(n, self.accelerator.process_index), CONSISTENCY_STREAM
        )
        draws = draw_n_and_w(generators, len(self.schedule), self.w_min, self.w_max)
        device = self.accelerator.device
        with self.accelerator.accumulate(self.student):
            z = batch_latents(batch, self.vae, d.posterior_noise)  # z ~ q(z | x), or the latent cache's
            z0 = latent_space(self.vae).scale_latents(z)  # z_0 = E(x)·scale (LDM App. G)
            t, t_prev = (x.to(device) for x in adjacent_timesteps(self.schedule, self.k, draws.index))
            w, eps = draws.w.to(device), d.noise.to(z0)
            cond = self.condition(batch, torch.zeros(n, dtype=torch.bool), device)  # τ_θ(c)
            uncond = self.condition(batch, torch.ones(n, dtype=torch.bool), device)  # τ_θ(∅)
            alpha, sigma = alpha_sigma(self.alphas_cumprod, t)
            z_t = alpha * z0 + sigma * eps  # z_{t_{n+k}} = α_t z_0 + σ_t ε ~ q(z_t | z_0)  (DDPM eq. 4)
            with self.accelerator.autocast(), torch.no_grad():  # --mixed_precision for the frozen passes too
                z_prev = self.teacher_step(z_t, t, t_prev, cond, uncond, w)  # ẑ_{t_n}  (LCM eq. 8)
                target = self.f(self.target, z_prev, t_prev, cond, w)  # f_θ⁻(ẑ_{t_n}, w, c, t_n)
            online = self.f(self.student, z_t, t, cond, w)  # f_θ(z_{t_{n+k}}, w, c, t_{n+k})
            loss = self.distance(online, target)  # L(θ, θ⁻; Ψ)  (LCM eq. 10)
            self.accelerator.backward(loss)
            parameters = [p for p in self.student.parameters() if p.requires_grad]
            optimizer_step(
                self.accelerator, self.optimizer, self.lr_scheduler, parameters, self.max_grad_norm
            )
        return {"loss": loss.detach()}

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Pseudo-Huber (`huber_c`) or L2 between f_θ and f_θ⁻."""
        if self.huber_c is None:
            return torch.nn.functional.mse_loss(a.float(), b.float())
        return pseudo_huber(a, b, self.huber_c)
