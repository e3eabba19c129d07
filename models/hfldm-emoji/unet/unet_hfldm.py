"""ConditionalUNet for `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`, written by
hfldm's save_pretrained (hfldm 0.1.0). The code is in the hfldm_*.py files beside this one: hfldm's own
source, its hfldm imports made relative, so that the folder loads where hfldm is not installed. With hfldm
installed, hfldm's pipelines load the folder with its installed classes instead.
"""

from .hfldm_unets_unet import ConditionalUNet  # noqa: F401


def _files_diffusers_copies_along():  # never called
    """diffusers copies into its module cache only the files an entry file imports (check_imports)."""
    from .hfldm_unets_unet import __name__
    from .hfldm_nn_attention import __name__
    from .hfldm_nn_checkpointing import __name__
    from .hfldm_nn_embeddings import __name__
    from .hfldm_nn_resnet import __name__
    from .hfldm_unets_blocks import __name__
