"""The condition y of a training batch, as U-Net keyword arguments, with classifier-free-guidance dropout.

LDM conditions through τ_θ(y) (cross-attention, Sec. 3.3) or a class embedding. For classifier-free guidance
(Ho & Salimans 2022) a share of the samples is trained without condition: the empty prompt "" for text (what
the pipeline uses as unconditional text) or the null class, the last class embedding (`null_class_label`).
"""

from __future__ import annotations

import torch
from torch import nn

from hfldm.training.conditioning import Conditioning, conditioning


class Conditioner:
    """Maps (batch, drop mask) to the U-Net's conditioning kwargs; kind is TEXT, CLASS or NONE
    (`hfldm.training.conditioning`, or its name).

    text: encoder_hidden_states (B, L, D) and encoder_attention_mask (B, L) from τ_θ of the captions, with
    dropped captions replaced by "" (gradients flow into τ_θ when it is trained); class: class_labels (B,),
    dropped ones set to the null class; none: no arguments. Text embeddings cached with the latents (frozen
    τ_θ) are used as they are. `text_attention_mask` is the pipeline's convention (False for CompVis' LDMs,
    which attend to the padding): training and sampling encode captions alike. Captions are padded to the
    batch's longest (`padding="longest"`), or to the tokenizer's length for a compiled U-Net, whose graph
    would otherwise see a new shape in every batch.
    """

    def __init__(
        self,
        kind: Conditioning | str,
        tokenizer=None,
        text_encoder: nn.Module | None = None,
        num_class_embeds: int | None = None,
        train_text_encoder: bool = False,
        uncond: dict | None = None,
        text_attention_mask: bool = True,
        padding: str = "longest",
    ):
        self.kind, self.tokenizer, self.text_encoder = conditioning(kind), tokenizer, text_encoder
        self.num_class_embeds, self.train_text_encoder = num_class_embeds, train_text_encoder
        self.text_attention_mask = text_attention_mask  # False: attend to the padding, as the pipeline does
        self.padding = padding  # "longest" (less work), or "max_length": one shape for a compiled U-Net
        self.uncond = (
            uncond  # τ_θ("") of a latent cache: {"encoder_hidden_states": (L, D), "attention_mask": (L,)}
        )

    def __call__(self, batch: dict, drop: torch.Tensor, device: torch.device) -> dict:
        """U-Net kwargs for `batch` (with "text" or "labels"); `drop` (B,) bool marks unconditional ones."""
        return self.kind.unet_kwargs(self, batch, drop, device)

    def cached_text(self, batch: dict, drop: torch.Tensor, device: torch.device) -> dict:
        """τ_θ(y) read from a latent cache; dropped samples get the cached τ_θ("")."""
        if self.uncond is None:
            raise ValueError("--cached_latents: the cache has text embeddings but no uncond.safetensors")
        keep = ~drop[:, None]
        hidden = batch["encoder_hidden_states"].to(device)
        mask = batch["attention_mask"].to(device)
        hidden = torch.where(keep[..., None], hidden, self.uncond["encoder_hidden_states"].to(hidden))
        mask = torch.where(keep, mask, self.uncond["attention_mask"].to(mask))
        return {"encoder_hidden_states": hidden, "encoder_attention_mask": mask}
