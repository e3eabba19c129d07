"""τ_θ: the text encoder of LDM (Sec. 3.3), and the one function that turns captions into its output.

`make_text_encoder` builds a small bidirectional transformer (DistilBERT architecture, no pooler) that is
trained jointly with the U-Net, as LDM does for text-to-image. `encode_text` is used both by training and
by the pipeline, so that the U-Net sees at sampling time exactly what it saw in training.
"""

from __future__ import annotations

import torch
from transformers import DistilBertConfig, DistilBertModel, PreTrainedModel

# the longest token sequence fed to τ_θ (CLIP's and LDM's 77)
MAX_TEXT_LENGTH = 77


def make_text_encoder(tokenizer, hidden_size: int = 256, layers: int = 4, heads: int = 4) -> DistilBertModel:
    """A randomly initialised transformer encoder for `tokenizer`'s vocabulary.

    Returns a `DistilBertModel` whose `last_hidden_state` has shape (B, L, hidden_size); `hidden_size` is
    the U-Net's `cross_attention_dim`. Positions go up to `text_max_length(tokenizer)`.
    """
    if hidden_size % heads != 0:
        raise ValueError(f"hidden_size ({hidden_size}) must be divisible by heads ({heads})")
    if layers < 1:
        raise ValueError(f"layers must be at least 1, got {layers}")
    config = DistilBertConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=text_max_length(tokenizer),
        dim=hidden_size,
        n_layers=layers,
        n_heads=heads,
        hidden_dim=4 * hidden_size,
        pad_token_id=tokenizer.pad_token_id,
        dropout=0.0,
        attention_dropout=0.0,
    )
    return DistilBertModel(config)


def text_max_length(tokenizer) -> int:
    """The padded length of a tokenised text: `tokenizer.model_max_length`, capped at `MAX_TEXT_LENGTH`."""
    return min(int(tokenizer.model_max_length), MAX_TEXT_LENGTH)


def check_unicode(texts: list[str], argument: str = "prompt") -> None:
    """ValueError naming `argument` for a text that is not valid Unicode (a lone surrogate, as Python decodes
    an invalid UTF-8 byte of a command line): the tokenizer would raise a TypeError deep inside."""
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(
                f"{argument}: {text!r} is not valid Unicode text (character {e.start} is a lone surrogate or "
                "an undecodable byte)"
            ) from None
        except AttributeError:  # not a string: the pipeline's input checks name it
            return


def encode_text(
    tokenizer,
    text_encoder: PreTrainedModel,
    texts: list[str],
    device: torch.device | str | None = None,
    attention_mask: bool = True,
    padding: str = "max_length",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """τ_θ(y) for a batch of texts.

    Returns `(hidden_states, attention_mask)`: hidden_states (B, L, D) is the encoder's `last_hidden_state`,
    attention_mask (B, L) is 1 on tokens and 0 on padding (pass it to the U-Net as `encoder_attention_mask`).
    Texts are truncated to `text_max_length(tokenizer)` tokens and padded to it (`padding="max_length"`:
    fixed shapes, what latent caches store) or to the batch's longest text (`padding="longest"`: the same
    τ_θ(y) on the real tokens for less work, since the mask hides the padding from τ_θ and the U-Net). With
    `attention_mask=False` τ_θ and the U-Net attend to the padding too, as CompVis' LDMs were trained
    (LDMTextToImagePipeline): the encoder gets no mask, the returned mask is None, and the padding is part
    of the condition, so it is always padded to the full length.
    """
    device = device if device is not None else text_encoder.device
    check_unicode(texts)
    tokens = tokenizer(
        list(texts),
        padding=padding if attention_mask else "max_length",
        max_length=text_max_length(tokenizer),
        truncation=True,
        return_tensors="pt",
    )
    input_ids = tokens.input_ids.to(device)
    if not attention_mask:
        return text_encoder(input_ids).last_hidden_state, None
    mask = tokens.attention_mask.to(device)
    return text_encoder(input_ids, attention_mask=mask).last_hidden_state, mask
