"""Attention blocks: plain spatial self-attention (autoencoder mid-block) and the U-Net's SpatialTransformer.

SpatialTransformer (LDM Sec. 3.3): self-attention, then cross-attention with Q from the image features and
K, V from τ_θ(y), then a GEGLU feed-forward. Its attention layers are diffusers' `Attention` modules, so
diffusers' processors (and users' own, called as `processor(attn, hidden_states, encoder_hidden_states,
attention_mask)`) plug in; the default one calls F.scaled_dot_product_attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention import AttentionMixin
from diffusers.models.attention_processor import Attention, AttnProcessor, FusedAttnProcessor2_0
from torch import nn

from .hfldm_nn_resnet import group_norm


class SelfAttention2d(nn.Module):
    """Single-head self-attention over the H*W positions of a feature map, with a residual connection."""

    def __init__(self, channels: int, norm_groups: int = 32):
        super().__init__()
        self.norm = group_norm(channels, norm_groups)
        self.to_qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, C, H, W)."""
        b, c, h, w = x.shape
        q, k, v = self.to_qkv(self.norm(x)).chunk(3, dim=1)
        # (B, C, H, W) -> (B, 1, H*W, C)
        q, k, v = (t.flatten(2).transpose(1, 2).unsqueeze(1) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        # (B, 1, H*W, C) -> (B, C, H, W)
        out = out.squeeze(1).transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(out)


class AttentionProcessorsMixin(AttentionMixin):
    """diffusers' attention API for a model built from diffusers' `Attention` modules.

    From diffusers' AttentionMixin: `attn_processors` (a dict "<module path>.processor" -> processor) and
    `set_attn_processor(processor or dict)`. Added here, as on UNet2DConditionModel:
    `set_default_attn_processor()`, `set_attention_slice(slice_size)` (what a pipeline's
    `enable_attention_slicing()` calls) and a one-time `fuse_qkv_projections()` / `unfuse_qkv_projections()`.
    """

    def _attention_modules(self) -> list[Attention]:
        return [module for module in self.modules() if isinstance(module, Attention)]

    def set_default_attn_processor(self) -> None:
        """Use diffusers' plain `AttnProcessor` (softmax(QK^T / sqrt(d)) V written out) everywhere."""
        self.set_attn_processor(AttnProcessor())

    def set_attention_slice(self, slice_size: str | int | None) -> None:
        """Compute attention over the (batch × heads) rows `slice_size` at a time (diffusers'
        `SlicedAttnProcessor`): less memory, the same result. "auto": half of each layer's heads, "max": one
        head at a time, an int: that many (at most the smallest layer's heads), None: back to the default
        processor. ValueError naming `slice_size` otherwise."""
        modules = self._attention_modules()
        heads = min((m.sliceable_head_dim for m in modules), default=1)
        is_int = isinstance(slice_size, int) and not isinstance(slice_size, bool)
        named = isinstance(slice_size, str | None) and slice_size in (None, "auto", "max")
        if not (named or (is_int and 1 <= slice_size <= heads)):
            raise ValueError(
                f'slice_size must be "auto", "max", None or an int in [1, {heads}], got {slice_size!r}'
            )
        for module in modules:
            per_layer = {"auto": max(1, module.sliceable_head_dim // 2), "max": 1}
            module.set_attention_slice(per_layer.get(slice_size, slice_size))

    @torch.no_grad()
    def fuse_qkv_projections(self) -> None:
        """Build each attention's concatenated projection once: to_qkv = [W_q; W_k; W_v] (self-attention),
        to_kv = [W_k; W_v] (cross-attention), and switch to `FusedAttnProcessor2_0`, one matmul instead of
        three. For inference: training would update to_qkv, not to_q/to_k/to_v, so unfuse before training."""
        modules = self._attention_modules()
        if any(module.fused_projections for module in modules):
            return
        if any(type(getattr(m, name)) is not nn.Linear for m in modules for name in ("to_q", "to_k", "to_v")):
            raise ValueError(
                "fuse_qkv_projections: to_q/to_k/to_v carry adapters (e.g. LoRA), which fused weights would "
                "drop; merge them first (fuse_lora / merge_and_unload) or remove them"
            )
        self._unfused_attn_processors = self.attn_processors
        for module in modules:
            module.fuse_projections(fuse=True)
        self.set_attn_processor(FusedAttnProcessor2_0())

    def unfuse_qkv_projections(self) -> None:
        """Undo `fuse_qkv_projections`: drop to_qkv / to_kv and restore the processors in use before."""
        if not any(module.fused_projections for module in self._attention_modules()):
            return
        for module in self._attention_modules():
            for name in ("to_qkv", "to_kv"):
                if hasattr(module, name):
                    delattr(module, name)
            module.fused_projections = False
        self.set_attn_processor(self._unfused_attn_processors)


class AttentionMapRecorder:
    """An attention processor (diffusers' interface) that computes softmax(QK^T / sqrt(d)) V written out and
    keeps each call's attention probabilities in `maps`, as (B, heads, N, L) tensors, in call order.

    Set it on the cross-attention layers only to see where each token of τ_θ(y) is attended:
    `unet.set_attn_processor({n: rec if n.endswith("attn2.processor") else p for n, p in procs.items()})`.
    """

    def __init__(self):
        self.maps: list[torch.Tensor] = []

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        b = hidden_states.shape[0]
        # (B, N, heads * d) -> (B * heads, N, d)
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))
        k, v = attn.head_to_batch_dim(attn.to_k(context)), attn.head_to_batch_dim(attn.to_v(context))
        mask = attn.prepare_attention_mask(attention_mask, context.shape[1], b)
        probs = attn.get_attention_scores(q, k, mask)  # (B * heads, N, L)
        self.maps.append(probs.detach().unflatten(0, (b, attn.heads)))  # (B, heads, N, L)
        # (B * heads, N, d) -> (B, N, heads * d)
        out = attn.batch_to_head_dim(torch.bmm(probs, v))
        return attn.to_out[1](attn.to_out[0](out))


class FeedForward(nn.Module):
    """GEGLU feed-forward (Shazeer 2020): (x W + b) * GELU(x V + c), then a linear back to `dim`."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.proj_in = nn.Linear(dim, 2 * mult * dim)  # W and V side by side: one matmul
        self.dropout = nn.Dropout(dropout)
        self.proj_out = nn.Linear(mult * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, N, dim) -> (B, N, dim)."""
        h, gate = self.proj_in(x).chunk(2, dim=-1)
        return self.proj_out(self.dropout(h * F.gelu(gate)))


class TransformerBlock(nn.Module):
    """Pre-norm transformer layer: self-attention, cross-attention to τ_θ(y) (if any), feed-forward."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        # diffusers' Attention: to_q, to_k, to_v (no bias), to_out.0; its processor (AttnProcessor2_0 by
        # default, scaled_dot_product_attention) computes the attention and can be swapped by the user
        self.attn1 = Attention(dim, heads=heads, dim_head=dim // heads, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim) if context_dim is not None else None
        self.attn2 = (
            Attention(dim, context_dim, heads=heads, dim_head=dim // heads, dropout=dropout)
            if context_dim is not None
            else None
        )
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, dropout=dropout)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        attention_kwargs: dict | None = None,
    ) -> torch.Tensor:
        """x: (B, N, dim), context: (B, L, context_dim), mask: (B, 1, L) additive -> (B, N, dim);
        `attention_kwargs` are passed to both attention processors (diffusers' `cross_attention_kwargs`)."""
        kwargs = attention_kwargs or {}
        x = x + self.attn1(self.norm1(x), **kwargs)
        if self.attn2 is not None:
            if context is None:
                raise ValueError("encoder_hidden_states: cross-attention needs a context")
            x = x + self.attn2(self.norm2(x), encoder_hidden_states=context, attention_mask=mask, **kwargs)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """LDM's attention block on a feature map: GroupNorm, proj_in, transformer layers, proj_out, residual.

    `context_dim=None` gives self-attention only (unconditional or class-conditional U-Nets). proj_out is
    zero-initialised so that the block starts as the identity.
    """

    def __init__(
        self,
        channels: int,
        heads: int,
        context_dim: int | None = None,
        num_layers: int = 1,
        dropout: float = 0.0,
        norm_groups: int = 32,
    ):
        super().__init__()
        self.norm = group_norm(channels, norm_groups)
        self.proj_in = nn.Linear(channels, channels)
        blocks = [TransformerBlock(channels, heads, context_dim, dropout) for _ in range(num_layers)]
        self.transformer_blocks = nn.ModuleList(blocks)
        self.proj_out = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        attention_kwargs: dict | None = None,
    ) -> torch.Tensor:
        """x: (B, C, H, W), context: (B, L, context_dim), mask: (B, 1, L) additive -> (B, C, H, W)."""
        b, c, h, w = x.shape
        # (B, C, H, W) -> (B, H*W, C)
        tokens = self.proj_in(self.norm(x).flatten(2).transpose(1, 2))
        for block in self.transformer_blocks:
            tokens = block(tokens, context, mask, attention_kwargs)
        # (B, H*W, C) -> (B, C, H, W), a strided view: the residual add does the only copy
        return x + self.proj_out(tokens).transpose(1, 2).unflatten(2, (h, w))
