"""Noise schedulers: β schedules, the (ε / x_0 / v) parameterisation, DDPM and DDIM sampling."""

from .ddim import ConsistentDDIMScheduler, DDIMScheduler
from .ddpm import DDPMScheduler

__all__ = ["ConsistentDDIMScheduler", "DDIMScheduler", "DDPMScheduler"]
