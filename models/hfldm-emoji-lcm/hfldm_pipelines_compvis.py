"""CompVis' published LDMs, as diffusers ships them (`LDMTextToImagePipeline`, the layout of
`CompVis/ldm-text2im-large-256`), loaded as a LatentDiffusionPipeline.

The parts are the same, under other names: `vqvae` -> `vae` (a VQModel), `bert` -> `text_encoder` (an
LDMBertModel); `tokenizer`, `unet` and `scheduler` keep theirs. What differs is the text convention:
LDMTextToImagePipeline pads every text to 77 tokens and gives neither τ_θ nor the U-Net an attention mask,
so both attend to the padding. The converted pipeline records that with the model, where saving keeps it:
`tokenizer.model_max_length = 77` (tokenizer_config.json), `text_attention_mask = False` (model_index.json).

Same scheduler, steps, guidance scale, η and generator give the same images as LDMTextToImagePipeline, with
two caveats of that pipeline's loop: it draws DDIM's η-noise from torch's global generator (it does not pass
`generator` to `scheduler.step`; LatentDiffusionPipeline does), so with η > 0 the two agree when the generator
is the global one (`torch.manual_seed(0)`); and it neither scales z_T by `init_noise_sigma` nor calls
`scale_model_input`, so they agree for schedulers where both are the identity (DDIM, PNDM, DDPM).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from diffusers import DiffusionPipeline
from diffusers.pipelines.latent_diffusion.pipeline_latent_diffusion import LDMTextToImagePipeline

from .hfldm_pipelines_arguments import check_model_path

LDM_PIPELINE = "LDMTextToImagePipeline"
# LDMTextToImagePipeline's `max_length`: every text is padded or truncated to this many tokens
LDM_TEXT_LENGTH = 77
# from_pretrained keywords that also locate model_index.json on the Hub
_CONFIG_KWARGS = ("cache_dir", "force_download", "proxies", "token", "local_files_only", "revision")


def pipeline_class_name(source: str | Path, **kwargs) -> str | None:
    """The `_class_name` in the model_index.json of a folder or Hub id (a list-form name: its class), or
    None where there is no model_index.json to read."""
    hub_kwargs = {k: kwargs[k] for k in _CONFIG_KWARGS if k in kwargs}
    try:
        with warnings.catch_warnings():  # huggingface_hub's deprecation of an argument diffusers passes
            warnings.simplefilter("ignore", UserWarning)
            config = DiffusionPipeline.load_config(source, **hub_kwargs)
    except (OSError, ValueError):  # no such folder, or a Hub id that cannot be fetched
        return None
    name = config.get("_class_name")
    return name[-1] if isinstance(name, (list, tuple)) else name


def from_ldm_text_to_image(ldm: LDMTextToImagePipeline, pipeline_class: type[DiffusionPipeline]):
    """`ldm`'s components as a `pipeline_class` (LatentDiffusionPipeline) that draws the same images.

    The components are shared, not copied; the tokenizer's `model_max_length` becomes 77.
    """
    tokenizer = ldm.tokenizer
    tokenizer.model_max_length = LDM_TEXT_LENGTH
    return pipeline_class(
        vae=ldm.vqvae,
        unet=ldm.unet,
        scheduler=ldm.scheduler,
        text_encoder=ldm.bert,
        tokenizer=tokenizer,
        text_attention_mask=False,
    )


class CompVisLoadingMixin:
    """`from_pretrained` that also reads an LDMTextToImagePipeline folder or Hub id (converted on load)."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs):
        """diffusers' from_pretrained; a folder saved by LDMTextToImagePipeline loads through that class and
        is converted with `from_ldm_text_to_image`. Keywords (dtype, revision, ...) go to the loader."""
        check_model_path(pretrained_model_name_or_path)
        if pipeline_class_name(pretrained_model_name_or_path, **kwargs) == LDM_PIPELINE:
            ldm = LDMTextToImagePipeline.from_pretrained(pretrained_model_name_or_path, **kwargs)
            return from_ldm_text_to_image(ldm, cls)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
