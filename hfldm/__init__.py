"""hfldm: Latent Diffusion Models (Rombach et al., CVPR 2022) as native diffusers components.

Public names are imported lazily so that `import hfldm` (and the CLI) stays fast.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "DDPMScheduler": "hfldm.schedulers.ddpm",
    "DDIMScheduler": "hfldm.schedulers.ddim",
    "KLAutoencoder": "hfldm.autoencoders.kl",
    "VQAutoencoder": "hfldm.autoencoders.vq",
    "IdentityAutoencoder": "hfldm.autoencoders.identity",
    "ConditionalUNet": "hfldm.unets.unet",
    "LatentDiffusionPipeline": "hfldm.pipelines.pipeline_latent_diffusion",
    "LatentDiffusionSuperResolutionPipeline": "hfldm.pipelines.pipeline_latent_diffusion_superres",
    "LatentDiffusionInpaintPipeline": "hfldm.pipelines.pipeline_latent_diffusion_inpaint",
    "LatentDiffusionSketchPipeline": "hfldm.pipelines.pipeline_latent_diffusion_sketch",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hfldm' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
