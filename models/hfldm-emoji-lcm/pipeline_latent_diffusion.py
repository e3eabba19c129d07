"""LatentDiffusionPipeline for `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`, written by
hfldm's save_pretrained (hfldm 0.1.0). The code is in the hfldm_*.py files beside this one: hfldm's own
source, its hfldm imports made relative, so that the folder loads where hfldm is not installed. With hfldm
installed, hfldm's pipelines load the folder with its installed classes instead.
"""

from .hfldm_pipelines_pipeline_latent_diffusion import LatentDiffusionPipeline  # noqa: F401


def _files_diffusers_copies_along():  # never called
    """diffusers copies into its module cache only the files an entry file imports (check_imports)."""
    from .hfldm_pipelines_pipeline_latent_diffusion import __name__
    from .hfldm_autoencoders_base import __name__
    from .hfldm_autoencoders_encoder_decoder import __name__
    from .hfldm_autoencoders_identity import __name__
    from .hfldm_autoencoders_kl import __name__
    from .hfldm_autoencoders_latent_space import __name__
    from .hfldm_autoencoders_regularizers import __name__
    from .hfldm_autoencoders_tiling import __name__
    from .hfldm_autoencoders_vq import __name__
    from .hfldm_data_images import __name__
    from .hfldm_nn_attention import __name__
    from .hfldm_nn_checkpointing import __name__
    from .hfldm_nn_embeddings import __name__
    from .hfldm_nn_finite import __name__
    from .hfldm_nn_resnet import __name__
    from .hfldm_pipelines_arguments import __name__
    from .hfldm_pipelines_call_device import __name__
    from .hfldm_pipelines_compvis import __name__
    from .hfldm_pipelines_conditions import __name__
    from .hfldm_pipelines_few_step import __name__
    from .hfldm_pipelines_guidance import __name__
    from .hfldm_pipelines_images import __name__
    from .hfldm_pipelines_inputs import __name__
    from .hfldm_pipelines_lora_loading import __name__
    from .hfldm_pipelines_native_size import __name__
    from .hfldm_pipelines_null_text import __name__
    from .hfldm_pipelines_sampling import __name__
    from .hfldm_pipelines_saving import __name__
    from .hfldm_pipelines_self_contained import __name__
    from .hfldm_schedulers_base import __name__
    from .hfldm_schedulers_betas import __name__
    from .hfldm_schedulers_ddim import __name__
    from .hfldm_schedulers_ddpm import __name__
    from .hfldm_schedulers_prediction import __name__
    from .hfldm_text_encoder import __name__
    from .hfldm_text_lora import __name__
    from .hfldm_unets_blocks import __name__
    from .hfldm_unets_concat import __name__
    from .hfldm_unets_null_class import __name__
    from .hfldm_unets_unet import __name__
