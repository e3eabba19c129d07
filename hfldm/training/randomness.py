"""Training noise drawn per sample from (seed, step, global sample index), not from a global RNG.

Every random number of a training step (the timestep t, the noise ε, the posterior sample of z_0, the
condition dropout, the noise offset) comes from a generator seeded by the sample's position in the global
batch. So 2 processes × B and 1 process × 2B draw the same numbers for the same samples, and a run resumed
from a checkpoint draws what the uninterrupted run drew.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# independent streams of draws: the training steps, and the latent-scale estimate before training
TRAINING_STREAM, SCALE_STREAM = 0, 1


def sample_generators(
    seed: int, micro_step: int, indices: list[int], stream: int = TRAINING_STREAM
) -> list[torch.Generator]:
    """Returns one CPU generator per global sample index, seeded by SeedSequence((seed, stream, micro_step,
    index)); `micro_step` counts forward passes (optimiser steps × gradient_accumulation_steps)."""
    generators = []
    for index in indices:
        state = np.random.SeedSequence([seed, stream, micro_step, index]).generate_state(2, dtype=np.uint32)
        generators.append(torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1])))
    return generators


def global_indices(batch_size: int, process_index: int) -> list[int]:
    """Positions in the global batch of this process's `batch_size` samples.

    Accelerate hands process p the p-th local batch of each global batch, so these are p·B .. p·B + B − 1
    (the forward pass enters the generator seed as `micro_step`).
    """
    start = process_index * batch_size
    return list(range(start, start + batch_size))


@dataclass
class StepNoise:
    """The random draws of one training step, stacked over the local batch (all on CPU)."""

    timesteps: torch.Tensor  # (B,) int64 in [0, T)
    noise: torch.Tensor  # (B, C, h, w) ε ~ N(0, I)
    posterior_noise: torch.Tensor  # (B, C, h, w) for z_0 = μ + σ·η from the encoder's posterior
    offset: torch.Tensor  # (B, C, 1, 1) N(0, I), scaled by --noise_offset
    drop: torch.Tensor  # (B,) bool: replace the condition by the null one (classifier-free guidance)
    flip: torch.Tensor  # (B,) bool: mirror the image (--random_flip)


def draw_step_noise(
    generators: list[torch.Generator],
    latent_shape: tuple[int, ...],
    num_train_timesteps: int,
    drop_prob: float,
) -> StepNoise:
    """Returns the StepNoise of one step; sample i uses only `generators[i]`, in a fixed order of draws."""
    draws = []
    for g in generators:
        t = torch.randint(0, num_train_timesteps, (), generator=g)
        noise = torch.randn(latent_shape, generator=g)
        posterior = torch.randn(latent_shape, generator=g)
        offset = torch.randn(latent_shape[0], 1, 1, generator=g)
        drop = torch.rand((), generator=g) < drop_prob
        flip = torch.rand((), generator=g) < 0.5
        draws.append((t, noise, posterior, offset, drop, flip))
    return StepNoise(*(torch.stack(column) for column in zip(*draws)))


def per_sample_normal(generators: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
    """N(0, I) draws of `shape`, one per generator, stacked to (len(generators), *shape) on CPU."""
    return torch.stack([torch.randn(shape, generator=g) for g in generators])


def step_draws(
    accelerator,
    seed: int,
    micro_step: int,
    batch_size: int,
    latent_shape: tuple,
    num_train_timesteps: int,
    drop_prob: float,
) -> StepNoise:
    """The StepNoise of this process's `batch_size` samples at forward pass `micro_step`."""
    indices = global_indices(batch_size, accelerator.process_index)
    return draw_step_noise(
        sample_generators(seed, micro_step, indices), latent_shape, num_train_timesteps, drop_prob
    )


def batch_size_of(batch: dict) -> int:
    """Number of samples in a batch of images (pixel_values) or of cached latents (latent_mean)."""
    return len(batch["latent_mean"] if "latent_mean" in batch else batch["pixel_values"])
