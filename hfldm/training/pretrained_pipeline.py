"""train_ldm.py --pretrained_model_name_or_path: fine-tune a whole trained pipeline instead of building one.

The pipeline (an hfldm folder, a diffusers LDMTextToImagePipeline folder in CompVis' layout, or a Hub id;
`hfldm.pipelines.loading.load_pipeline`) gives every part the flags would otherwise build: the frozen
autoencoder with its latent scale, the U-Net (trained on), τ_θ and its tokenizer (frozen unless
--train_text_encoder), the forward process q(z_t | z_0) of its scheduler's config (β schedule, T, prediction
type), the class names, and its text-mask convention (CompVis' LDMs attend to the padding:
`text_attention_mask=False`), which training must share with sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

from hfldm.schedulers.ddpm import DDPMScheduler
from hfldm.training.conditioning import pipeline_kind
from hfldm.training.task_registry import task_class


@dataclass
class PretrainedParts:
    vae: object
    unet: object
    text_encoder: object | None
    tokenizer: object | None
    noise_scheduler: DDPMScheduler
    text_attention_mask: bool
    label_names: list[str] | None

    @property
    def kind(self):
        """TEXT, CLASS or NONE: what the pipeline is conditioned on (`hfldm.training.conditioning`)."""
        return pipeline_kind(self)


# flags whose part the pretrained pipeline brings: (flag, the value that means "not given")
REPLACED_FLAGS = {"autoencoder": None, "text_encoder": "none", "cached_latents": None}


def check_pretrained_flags(args) -> None:
    """ValueError naming a flag that contradicts --pretrained_model_name_or_path (--init_from)."""
    if not task_class(args.task).fine_tunes_pretrained:
        raise ValueError(
            f"--task: {args.task} trains a new U-Net on [z_t, y]; --pretrained_model_name_or_path fine-tunes "
            "a text / class / unconditional pipeline, or widens one for --task inpaint"
        )
    for name, unset in REPLACED_FLAGS.items():
        if getattr(args, name) != unset:
            raise ValueError(
                f"--{name}: the part comes from --pretrained_model_name_or_path "
                f"{args.pretrained_model_name_or_path}; give one of the two"
            )


def load_pretrained_parts(source: str | None) -> PretrainedParts | None:
    """The parts of the text / class / unconditional pipeline at `source`, τ_θ and the autoencoder frozen;
    None for no `source`."""
    from hfldm.pipelines.loading import load_pipeline

    if not source:
        return None
    pipe = load_pipeline(source, "--pretrained_model_name_or_path")
    text_encoder = pipe.text_encoder
    if text_encoder is not None:
        text_encoder.requires_grad_(False).eval()
    pipe.vae.requires_grad_(False).eval()
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)  # its sampling settings kept too
    id2label = pipe.config.id2label or {}
    labels = [id2label[k] for k in sorted(id2label, key=int)] if id2label else None
    return PretrainedParts(
        vae=pipe.vae,
        unet=pipe.unet.train(),
        text_encoder=text_encoder,
        tokenizer=pipe.tokenizer,
        noise_scheduler=noise_scheduler,
        text_attention_mask=bool(pipe.config.text_attention_mask),
        label_names=labels,
    )
