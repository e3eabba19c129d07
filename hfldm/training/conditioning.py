"""What a model is conditioned on through the U-Net's keyword arguments: text, a class, or nothing (LDM §3.3).

One object per kind answers every question that used to compare the strings "text" / "class" / "none":
which data column the loader keeps, what a latent cache must hold, the captions of the data, the class
embeddings of a fresh U-Net, the U-Net's keyword arguments of a batch (with the guidance dropout), the
validation grid's prompts or classes. Each kind is a `str` ("text", "class", "none"), so it prints and
logs as its name and compares equal to it.

    kind = conditioning_kind(text_encoder="minilm", caption_column="text", label_column=None)  # TEXT
    kind.unet_kwargs(conditioner, batch, drop, device)   # {"encoder_hidden_states": ..., ...}
"""

from __future__ import annotations

import torch

from hfldm.text import encode_text
from hfldm.unets.null_class import null_class_label


class Conditioning(str):
    """The unconditional kind, and the interface of the others: each method says what no condition does."""

    def loader_columns(self, caption_column: str | None, label_column: str | None) -> tuple:
        """(caption column, label column) the loader keeps: only the one this kind reads."""
        return None, None

    def check_cache(self, cached: dict) -> None:
        """ValueError naming the data argument when a latent cache's data lack what this kind reads."""

    def require_column(self, caption_column: str | None, label_column: str | None) -> None:
        """ValueError naming the data argument a model of this kind needs (to fine-tune it) when unset."""

    def captions(self, dataset, column: str) -> list[str]:
        """The data's captions (for τ_θ's vocabulary and the validation prompts); [] without text."""
        return []

    def num_classes(self, dataset, label_names: list[str] | None, column: str) -> int:
        """The data's classes; 0 without classes."""
        return 0

    def num_class_embeds(self, num_classes: int) -> int | None:
        """A fresh U-Net's class embeddings: the classes + the null class ∅ of guidance; None without."""
        return None

    def unet_kwargs(self, conditioner, batch: dict, drop: torch.Tensor, device: torch.device) -> dict:
        """The U-Net's conditioning keyword arguments of `batch`; `drop` (B,) marks the unconditional ones."""
        return {}

    def validation_conditions(self, prompts, class_labels, captions, num_classes) -> tuple:
        """(prompts, class labels) of the validation grid: (None, None), one unconditional row."""
        return None, None


class TextConditioning(Conditioning):
    """τ_θ(y) of a caption y through cross-attention; dropped captions are the empty prompt ""."""

    def loader_columns(self, caption_column, label_column) -> tuple:
        return caption_column, None

    def check_cache(self, cached: dict) -> None:
        if cached.get("caption_column") is None:
            raise ValueError("--caption_column: the latent cache was made without captions")

    def require_column(self, caption_column, label_column) -> None:
        if caption_column is None:
            raise ValueError("--caption_column: this pipeline is text-conditional; name the captions' column")

    def captions(self, dataset, column: str) -> list[str]:
        from hfldm.training.data import captions

        return captions(dataset, column)

    def unet_kwargs(self, conditioner, batch, drop, device) -> dict:
        if "encoder_hidden_states" in batch and not conditioner.train_text_encoder:
            return conditioner.cached_text(batch, drop.to(device), device)
        texts = ["" if d else t for t, d in zip(batch["text"], drop.tolist())]
        with torch.set_grad_enabled(conditioner.train_text_encoder and torch.is_grad_enabled()):
            hidden, mask = encode_text(  # to the batch's longest caption: the mask hides the rest
                conditioner.tokenizer,
                conditioner.text_encoder,
                texts,
                device,
                conditioner.text_attention_mask,
                conditioner.padding,
            )
        return {"encoder_hidden_states": hidden, "encoder_attention_mask": mask}

    def validation_conditions(self, prompts, class_labels, captions, num_classes) -> tuple:
        """The given prompts, else the first 4 distinct captions."""
        return prompts or list(dict.fromkeys(captions))[:4] or [""], None


class ClassConditioning(Conditioning):
    """A class embedding added to the time embedding; dropped labels are the null class (the last)."""

    def loader_columns(self, caption_column, label_column) -> tuple:
        return None, label_column

    def check_cache(self, cached: dict) -> None:
        if cached.get("label_column") is None:
            raise ValueError("--label_column: the latent cache was made without a label column")

    def require_column(self, caption_column, label_column) -> None:
        if label_column is None:
            raise ValueError("--label_column: this pipeline is class-conditional; name the labels' column")

    def num_classes(self, dataset, label_names, column: str) -> int:
        from hfldm.training.data import num_classes

        return num_classes(dataset, label_names, column)

    def num_class_embeds(self, num_classes: int) -> int | None:
        return num_classes + 1

    def unet_kwargs(self, conditioner, batch, drop, device) -> dict:
        labels = batch["labels"].to(device)
        null = torch.full_like(labels, null_class_label(conditioner.num_class_embeds))
        return {"class_labels": torch.where(drop.to(device), null, labels)}

    def validation_conditions(self, prompts, class_labels, captions, num_classes) -> tuple:
        """The given classes, else the first 4."""
        return None, class_labels or list(range(min(4, num_classes)))


TEXT, CLASS, NONE = TextConditioning("text"), ClassConditioning("class"), Conditioning("none")
KINDS = {kind: kind for kind in (TEXT, CLASS, NONE)}


def conditioning(name: str) -> Conditioning:
    """The kind called `name` ("text", "class" or "none"); ValueError naming `kind` otherwise."""
    if name not in KINDS:
        raise ValueError(f"kind: expected text, class or none, got {name!r}")
    return KINDS[name]


def conditioning_kind(
    text_encoder: str, caption_column: str | None, label_column: str | None
) -> Conditioning:
    """TEXT (a τ_θ is chosen), CLASS (a --label_column is given) or NONE; ValueError naming the argument when
    the two are combined or text has no captions."""
    if text_encoder != "none" and label_column is not None:
        raise ValueError(
            "--label_column: give either a text encoder (--text_encoder) or class labels, not both"
        )
    if text_encoder != "none" and caption_column is None:
        raise ValueError(f"--caption_column: --text_encoder {text_encoder} needs a column of captions")
    if text_encoder != "none":
        return TEXT
    return CLASS if label_column is not None else NONE


def pipeline_kind(pipeline) -> Conditioning:
    """How a trained pipeline (or its parts: `text_encoder`, `unet`) is conditioned."""
    if pipeline.text_encoder is not None:
        return TEXT
    return CLASS if pipeline.unet.config.num_class_embeds else NONE
