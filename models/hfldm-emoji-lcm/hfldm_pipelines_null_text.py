"""τ_θ("") once per pipeline: the unconditional text of classifier-free guidance, cached, and the padding
that lets it stand beside prompts of another length.

Every guided call needs ε(z_t, ∅), whose condition τ_θ("") never changes while τ_θ doesn't. The cache is
keyed on the encoder's state (each parameter's storage, dtype and in-place version counter, train/eval
mode, peft adapters' activity and scales), so loading weights, fusing or switching a LoRA, moving or casting
τ_θ computes it afresh.
"""

from __future__ import annotations

import torch
from torch import nn

from .hfldm_text_encoder import encode_text


def encoder_state(text_encoder: nn.Module) -> tuple:
    """A key that changes whenever `text_encoder`'s output for a fixed input may change."""
    params = tuple((p.data_ptr(), p.dtype, p.device, p._version) for p in text_encoder.parameters())
    adapters = tuple(
        (name, tuple(m.active_adapters), bool(m.disable_adapters), tuple(sorted(m.scaling.items())))
        for name, m in text_encoder.named_modules()
        if hasattr(m, "active_adapters") and isinstance(getattr(m, "scaling", None), dict)
    )
    return id(text_encoder), text_encoder.training, params, adapters


def pad_tokens(hidden: torch.Tensor, mask: torch.Tensor | None, length: int):
    """(B, L, D) states and (B, L) mask right-padded to `length` tokens with masked-out zeros."""
    extra = length - hidden.shape[1]
    if extra == 0:
        return hidden, mask
    if mask is None:  # unmasked padding is part of the condition: it cannot be invented here
        raise ValueError(f"cannot pad unmasked text states from {hidden.shape[1]} to {length} tokens")
    hidden = nn.functional.pad(hidden, (0, 0, 0, extra))
    return hidden, nn.functional.pad(mask, (0, extra))


def cat_tokens(parts: list[tuple[torch.Tensor, torch.Tensor | None]]):
    """Concatenates (states, mask) pairs along the batch, padding each to the longest."""
    length = max(hidden.shape[1] for hidden, _ in parts)
    padded = [pad_tokens(hidden, mask, length) for hidden, mask in parts]
    masks = [mask for _, mask in padded]
    hidden = torch.cat([hidden for hidden, _ in padded])
    return hidden, (torch.cat(masks) if masks[0] is not None else None)


class NullTextCache:
    """τ_θ("") as (1, L, D) states and (1, L) mask (None without attention masks), computed once per
    encoder state."""

    def __init__(self):
        self._key, self._value = None, None

    def __call__(self, tokenizer, text_encoder: nn.Module, device, attention_mask: bool, padding: str):
        key = (encoder_state(text_encoder), str(device), attention_mask, padding, id(tokenizer))
        if key != self._key:
            self._value = encode_text(tokenizer, text_encoder, [""], device, attention_mask, padding)
            self._key = key
        return self._value
