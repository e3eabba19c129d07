"""train_ldm.py's own flags: the autoencoder, the U-Net, the conditioning, the task and the objective.

A module beside the script (its folder is on sys.path when it runs) so that --unet_config's default can name
the shipped configs/ folder; hfldm.training.args holds the flags every training script shares.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hfldm.training.args import arg, check_positive
from hfldm.training.pretrained_pipeline import check_pretrained_flags
from hfldm.training.task_registry import task_class

CONFIGS = Path(__file__).parent / "configs"


@dataclass
class LDMArguments:
    """The autoencoder, the U-Net, the conditioning and the diffusion objective."""

    autoencoder: str | None = arg(
        None,
        "The frozen first stage: a folder (train_autoencoder.py output, or a pipeline's with vae/), or a Hub "
        "id (`repo` or `repo:subfolder`); hfldm's KL/VQ or diffusers' AutoencoderKL/VQModel/AutoencoderTiny.",
        aliases=["--pretrained_vae_model_name_or_path"],
    )
    pretrained_model_name_or_path: str | None = arg(
        None,
        "Fine-tune a whole trained pipeline (an hfldm folder, a diffusers LDMTextToImagePipeline folder, or "
        "a Hub id): its autoencoder, U-Net, τ_θ with its tokenizer and noise schedule replace --autoencoder, "
        "--unet_config, --text_encoder and the β-schedule / prediction flags. With --task inpaint a text "
        "model's U-Net is widened by zero-initialised input channels.",
        aliases=["--init_from"],
    )
    revision: str | None = arg(None, "Hub revision (branch, tag or commit) of --autoencoder.")
    variant: str | None = arg(None, "Weights variant of --autoencoder, e.g. fp16.")
    unet_config: str = arg(
        str(CONFIGS / "unet_small.yaml"), "YAML of ConditionalUNet arguments (widths, depth)."
    )
    task: str = arg(
        "generate",
        "One of hfldm.training.task_registry's tasks. generate: text / class / unconditional LDM; superres: "
        "ε_θ([z_t, y], t), y the low-res image; inpaint: ε_θ([z_t, E(x ⊙ (1 − m)), m↓], t, τ_θ(y)), m a mask "
        "drawn per sample.",
    )
    full_mask_prob: float = arg(
        0.1,
        "inpaint: share of samples whose mask is the whole image (the model also generates from nothing).",
    )
    sr_factor: int = arg(2, "superres: s, the upscaling (--resolution / s px inputs); must divide f.")
    sr_noise_std: float = arg(0.0, "superres: largest std of the Gaussian noise added to y ([-1, 1] units).")
    sr_blur_sigma: float = arg(
        0.0, "superres: largest σ (high-res pixels) of the Gaussian blur before downsampling."
    )
    sr_degradation_mix: bool = arg(
        False,
        "superres: draw the downsampling kernel (bicubic / bilinear / area) and JPEG (p = 1/2, q 30-95) per "
        "sample after the blur and noise (hfldm.training.degradation_mix); off: bicubic only.",
    )
    torch_compile: bool = arg(
        False,
        "torch.compile the U-Net's training forward (fullgraph, inductor; the first steps compile, minutes "
        "on a CPU). The saved weights, EMA and validation use the same, uncompiled module.",
    )
    text_encoder: str = arg(
        "none",
        "τ_θ: none, minilm (frozen, 384-d), scratch (a transformer trained jointly on the captions, LDM), or "
        "any transformers text model by folder or Hub id (CLIPTextModel, T5EncoderModel, BertModel, ...).",
    )
    train_text_encoder: bool = arg(
        False, "Fine-tune a pretrained --text_encoder with the U-Net (frozen if off)."
    )
    max_text_length: int | None = arg(
        None, "Tokens per caption for τ_θ (default: its tokenizer's, at most 77)."
    )
    text_vocab_size: int = arg(1000, "scratch: WordPiece vocabulary trained on the captions.")
    text_hidden_size: int = arg(256, "scratch: width of τ_θ (the U-Net's cross_attention_dim).")
    text_layers: int = arg(4, "scratch: transformer layers of τ_θ.")
    cached_latents: str | None = arg(
        None, "Train on a latent cache (`hfldm cache-latents`) instead of images."
    )
    prediction_type: Literal["epsilon", "v_prediction"] = arg("epsilon", "What the U-Net predicts: ε or v.")
    num_train_timesteps: int = arg(1000, "T, the length of the forward process.")
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = arg(
        "scaled_linear", "β_t schedule (LDM: scaled_linear, 0.00085 .. 0.012)."
    )
    beta_start: float = arg(0.00085, "β_1.")
    beta_end: float = arg(0.012, "β_T.")
    snr_gamma: float | None = arg(
        None, "Min-SNR-γ loss weighting (Hang et al. 2023; 5.0 is typical); off if unset."
    )
    noise_offset: float = arg(0.0, "Add offset·N(0, I) per channel to ε (brighter/darker images); 0 = off.")
    cond_drop_prob: float = arg(0.1, "Share of samples trained unconditionally (empty prompt / null class).")
    use_ema: bool = arg(True, "Keep an EMA of the U-Net; validation and the saved pipeline use it.")
    ema_decay: float = arg(0.9999, "Largest EMA decay.")
    ema_power: float = arg(0.75, "EMA warm-up power: decay = 1 − (1 + step)^−power (2/3 for 1M-step runs).")
    scaling_factor: float | None = arg(
        None, "Latent scale to use; default: the autoencoder's, estimated if 1.0."
    )
    scale_estimation_images: int = arg(256, "Images whose latents' std gives the latent scale.")
    validation_prompts: list[str] = arg([], "Prompts of the validation grid (default: the first captions).")
    validation_class_labels: list[int] = arg([], "Classes of the validation grid (default: the first four).")
    validation_seeds: list[int] = arg([0, 1, 2, 3], "Seeds of the validation grid, one column each.")
    num_inference_steps: int = arg(50, "DDIM steps of the validation samples.")
    guidance_scale: float = arg(3.0, "Classifier-free guidance scale w of the validation samples.")

    def validate(self) -> None:
        task_class(self.task)  # ValueError naming --task unless it is one of the registry's
        if self.pretrained_model_name_or_path is not None:
            check_pretrained_flags(self)
        elif self.autoencoder is None:
            raise ValueError("--autoencoder: required (the folder written by train_autoencoder.py)")
        check_positive(self, "text_vocab_size", "text_hidden_size", "text_layers", "num_train_timesteps")
        check_positive(self, "max_text_length")
        if (
            self.train_text_encoder
            and self.text_encoder in ("none", "scratch")
            and not self.pretrained_model_name_or_path
        ):
            raise ValueError(
                f"--train_text_encoder: for a pretrained --text_encoder, not {self.text_encoder!r}"
            )
        check_positive(
            self, "beta_start", "beta_end", "snr_gamma", "ema_decay", "ema_power", "scaling_factor"
        )
        check_positive(self, "scale_estimation_images", "num_inference_steps")
        check_positive(
            self, "noise_offset", "guidance_scale", "sr_noise_std", "sr_blur_sigma", allow_zero=True
        )
        check_positive(self, "sr_factor")
        if self.ema_decay > 1:
            raise ValueError(f"--ema_decay: must be in (0, 1], got {self.ema_decay}")
        for name in ("cond_drop_prob", "full_mask_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"--{name}: must be in [0, 1], got {getattr(self, name)}")
        if self.text_encoder == "scratch" and self.text_hidden_size % 4:
            raise ValueError(
                f"--text_hidden_size: must be divisible by the 4 attention heads, got {self.text_hidden_size}"
            )
