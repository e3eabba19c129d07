"""A pretrained τ_θ from transformers: any text encoder (CLIP's text tower, T5's encoder, BERT, ...) with its
tokenizer, from a folder, a pipeline folder (tokenizer/ + text_encoder/) or a Hub id, frozen."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, AutoModel, AutoTokenizer, CLIPTextModel, PreTrainedModel, T5EncoderModel

# model types whose checkpoint holds more than a text encoder: load just the encoder that gives τ_θ(y)
ENCODER_CLASSES = {"clip": CLIPTextModel, "t5": T5EncoderModel, "mt5": T5EncoderModel, "umt5": T5EncoderModel}


def _subfolders(source: str) -> tuple[str | None, str | None]:
    """(tokenizer subfolder, encoder subfolder) of a local pipeline folder, else (None, None)."""
    path = Path(source)
    if (path / "text_encoder" / "config.json").is_file():
        return ("tokenizer" if (path / "tokenizer").is_dir() else None), "text_encoder"
    return None, None


def load_text_encoder(
    source: str, argument: str = "--text_encoder", revision: str | None = None
) -> tuple[object, PreTrainedModel]:
    """(tokenizer, text encoder in eval mode, requires_grad off) from `source`.

    The encoder's `last_hidden_state` (B, L, D) is τ_θ(y); D must be the U-Net's cross_attention_dim.
    One-line ValueErrors naming `argument` when `source` cannot be loaded or holds no text encoder.
    """
    tokenizer_dir, encoder_dir = _subfolders(source)
    try:
        config = AutoConfig.from_pretrained(source, subfolder=encoder_dir or "", revision=revision)
        model_class = ENCODER_CLASSES.get(config.model_type, AutoModel)
        if getattr(config, "is_encoder_decoder", False) and model_class is AutoModel:
            raise ValueError(
                f"{argument}: {source} is an encoder-decoder ({config.model_type}); give its encoder"
            )
        model = model_class.from_pretrained(source, subfolder=encoder_dir or "", revision=revision)
        tokenizer = AutoTokenizer.from_pretrained(source, subfolder=tokenizer_dir or "", revision=revision)
    except (OSError, KeyError, ValueError) as e:  # no such folder / id, or no transformers config in it
        if str(e).startswith(argument):
            raise
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"{argument}: cannot load a text encoder and tokenizer from {source} ({reason})"
        ) from None
    if not hasattr(model.config, "hidden_size") and not hasattr(model.config, "d_model"):
        raise ValueError(f"{argument}: {source} holds a {type(model).__name__}, not a text encoder")
    return tokenizer, model.eval().requires_grad_(False)


def hidden_size(text_encoder: PreTrainedModel) -> int:
    """D, the width of `last_hidden_state` (`hidden_size`, or T5's `d_model`)."""
    config = text_encoder.config
    return getattr(config, "hidden_size", None) or config.d_model
