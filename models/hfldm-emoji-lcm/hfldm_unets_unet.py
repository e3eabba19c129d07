"""The LDM denoiser ε_θ(z_t, t, τ_θ(y)) (Rombach et al. 2022, eq. 3): a U-Net with cross-attention.

Called like diffusers' UNet2DConditionModel, so diffusers' pipelines and training scripts can drive it:
`unet(sample, timestep, encoder_hidden_states=..., class_labels=...).sample`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput
from diffusers.utils.peft_utils import apply_lora_scale
from torch import nn

from .hfldm_nn_attention import AttentionProcessorsMixin
from .hfldm_nn_checkpointing import run_block
from .hfldm_nn_embeddings import ClassEmbedding, TimestepEmbedding
from .hfldm_nn_finite import WarnNonFiniteWeights
from .hfldm_nn_resnet import Downsample, ResBlock, Upsample, group_norm
from .hfldm_unets_blocks import Level, ResAttnBlock


def _per_level(value: Any, levels: int, name: str) -> tuple:
    """Broadcast an int/bool to one value per resolution level; check the length of a tuple."""
    values = tuple(value) if isinstance(value, (list, tuple)) else (value,) * levels
    if len(values) != levels:
        raise ValueError(
            f"{name}: expected {levels} values (one per block_out_channels entry), got {len(values)}"
        )
    return values


class ConditionalUNet(
    WarnNonFiniteWeights, ModelMixin, AttentionProcessorsMixin, ConfigMixin, PeftAdapterMixin
):
    """ε_θ(z_t, t, y): predicts the noise in `sample`, given text (cross-attention), a class or nothing."""

    _supports_gradient_checkpointing = True
    _no_split_modules = ["ResAttnBlock"]
    _skip_layerwise_casting_patterns = ["norm"]

    @register_to_config
    def __init__(
        self,
        sample_size: int | None = None,  # H = W of the (latent) input, in latent pixels; read by pipelines
        in_channels: int = 4,  # input channels: z_t's, plus a concatenated condition's (hfldm.unets.concat)
        out_channels: int = 4,  # channels of the prediction (ε), which are z_t's
        block_out_channels: tuple[int, ...] = (128, 256),  # width at each resolution level, from the finest
        layers_per_block: int = 2,  # ResBlocks per level on the down path (the up path has one more)
        attention_levels: tuple[bool, ...]
        | bool = True,  # which levels get a SpatialTransformer per ResBlock
        num_attention_heads: int | tuple[int, ...] = 8,  # attention heads, per level or one for all
        transformer_layers_per_block: int = 1,  # transformer layers inside each SpatialTransformer
        cross_attention_dim: int | None = None,  # width of τ_θ(y) tokens; None = no cross-attention
        num_class_embeds: int | None = None,  # number of classes; None = no class conditioning
        norm_num_groups: int = 32,  # GroupNorm groups (reduced to a divisor of the width if needed)
        dropout: float = 0.0,  # dropout inside ResBlocks and transformer layers
        flip_sin_to_cos: bool = True,  # timestep features ordered (cos, sin), as in diffusers' SD U-Nets
        freq_shift: float = 0.0,  # frequency shift of the sinusoidal timestep features
        mid_attention: bool = True,  # the mid block's SpatialTransformer (off: a U-Net of convolutions only)
        time_cond_proj_dim: int | None = None,  # width of the w-embedding's features (LCM); None = no w input
    ):
        super().__init__()
        levels = len(block_out_channels)
        attention = _per_level(attention_levels, levels, "attention_levels")
        heads = _per_level(num_attention_heads, levels, "num_attention_heads")
        if any(width % h for width, h in zip(block_out_channels, heads)):
            raise ValueError(
                f"num_attention_heads: {heads} must divide block_out_channels {block_out_channels}"
            )
        temb_dim = 4 * block_out_channels[0]
        self.time_embedding = TimestepEmbedding(
            block_out_channels[0],
            temb_dim,
            flip_sin_to_cos=flip_sin_to_cos,
            freq_shift=freq_shift,
            cond_proj_dim=time_cond_proj_dim,
        )
        self.class_embedding = ClassEmbedding(num_class_embeds, temb_dim) if num_class_embeds else None

        def block(c_in: int, c_out: int, level: int, attend: bool | None = None) -> ResAttnBlock:
            return ResAttnBlock(
                c_in,
                c_out,
                temb_dim,
                attention[level] if attend is None else attend,
                heads[level],
                cross_attention_dim,
                transformer_layers_per_block,
                dropout,
                norm_num_groups,
            )

        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], 3, padding=1)
        # Down path; `skips` records the width of every tensor it hands to the up path.
        skips, ch, self.down = [block_out_channels[0]], block_out_channels[0], nn.ModuleList()
        for level, width in enumerate(block_out_channels):
            blocks = []
            for _ in range(layers_per_block):
                blocks.append(block(ch, width, level))
                ch = width
                skips.append(ch)
            last = level == levels - 1
            self.down.append(Level(blocks, None if last else Downsample(ch)))
            skips += [] if last else [ch]
        # Mid: ResBlock - SpatialTransformer - ResBlock (the transformer global over the coarsest grid)
        self.mid_block = block(ch, ch, levels - 1, attend=mid_attention)
        self.mid_resnet = ResBlock(ch, ch, temb_dim, dropout, norm_num_groups)
        # Up path: pops the skips in reverse order.
        self.up = nn.ModuleList()
        for level, width in reversed(list(enumerate(block_out_channels))):
            blocks = []
            for _ in range(layers_per_block + 1):
                blocks.append(block(ch + skips.pop(), width, level))
                ch = width
            self.up.append(Level(blocks, Upsample(ch) if level > 0 else None))
        self.conv_norm_out = group_norm(ch, norm_num_groups)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        self.gradient_checkpointing = False

    @property
    def downsample_factor(self) -> int:
        """How much smaller the coarsest feature map is than the input: 2^(levels - 1)."""
        return 2 ** (len(self.config.block_out_channels) - 1)

    @apply_lora_scale("cross_attention_kwargs")
    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
        timestep_cond: torch.Tensor | None = None,
    ) -> UNet2DConditionOutput | tuple[torch.Tensor]:
        """Predict ε from z_t.

        sample: (B, in_channels, H, W), z_t with any concatenated condition (`hfldm.unets.concat`);
        timestep: scalar or (B,); encoder_hidden_states: (B, L, cross_attention_dim); class_labels: (B,) int;
        encoder_attention_mask: (B, L), 1 = keep, 0 = ignore.
        Returns UNet2DConditionOutput with `.sample` of shape (B, out_channels, H, W), or a 1-tuple.
        `cross_attention_kwargs` reach every attention processor as keyword arguments (as in diffusers;
        `{"scale": s}` is the LoRA scale, applied to the adapters and not passed on).
        timestep_cond: (B, time_cond_proj_dim), the guidance scale's features of a consistency-distilled
        student (`hfldm.nn.embeddings.guidance_scale_embedding`), as in diffusers' LCM U-Nets.
        """
        timesteps = self._check_inputs(sample, timestep, encoder_hidden_states, class_labels)
        self._check_timestep_cond(timestep_cond, len(sample))
        mask = self._attention_mask(encoder_attention_mask, encoder_hidden_states, sample.dtype)
        emb = self.time_embedding(timesteps, dtype=sample.dtype, condition=timestep_cond)
        if self.class_embedding is not None:
            emb = emb + self.class_embedding(class_labels)  # LDM/ADM: the class embedding is added to t's
        emb = emb.to(sample.dtype)
        context = encoder_hidden_states
        attention_kwargs = cross_attention_kwargs or {}  # LoRA's "scale" was taken out by apply_lora_scale

        h = self.conv_in(sample)
        skips = [h]
        for level in self.down:
            for block in level.blocks:
                h = run_block(self, block, h, emb, context, mask, attention_kwargs)
                skips.append(h)
            if level.resample is not None:
                h = level.resample(h)
                skips.append(h)
        # Mid: ResBlock - SpatialTransformer - ResBlock
        h = run_block(self, self.mid_block, h, emb, context, mask, attention_kwargs)
        h = run_block(self, self.mid_resnet, h, emb)
        for level in self.up:
            for block in level.blocks:
                # (B, C, H, W), (B, C_skip, H, W) -> (B, C + C_skip, H, W)
                h = run_block(
                    self, block, torch.cat([h, skips.pop()], dim=1), emb, context, mask, attention_kwargs
                )
            if level.resample is not None:
                h = level.resample(h)
        out = self.conv_out(F.silu(self.conv_norm_out(h)))
        return UNet2DConditionOutput(sample=out) if return_dict else (out,)

    def _check_inputs(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor | None,
        class_labels: torch.Tensor | None,
    ) -> torch.Tensor:
        """Raise ValueError on inputs that do not fit this U-Net; return the timesteps as a (B,) tensor."""
        cfg = self.config
        if sample.ndim != 4 or sample.shape[1] != cfg.in_channels:
            extra = cfg.in_channels - cfg.out_channels  # condition channels concatenated to z_t
            what = f": z_t's {cfg.out_channels} + {extra} condition channels" if extra > 0 else ""
            shape = tuple(sample.shape)
            raise ValueError(f"sample: expected (B, {cfg.in_channels}, H, W){what}, got {shape}")
        factor = self.downsample_factor
        if sample.shape[2] % factor or sample.shape[3] % factor:
            raise ValueError(f"sample: H and W must be divisible by {factor}, got {tuple(sample.shape[2:])}")
        batch = sample.shape[0]
        # torch.full, not torch.as_tensor: under torch.compile a Python number stays a symbol instead of a
        # constant baked into the graph (one recompile when it first changes, then none)
        timesteps = (
            timestep.to(sample.device)
            if torch.is_tensor(timestep)
            else torch.full((), timestep, device=sample.device)
        )
        if timesteps.ndim > 1 or (timesteps.ndim == 1 and timesteps.shape[0] not in (1, batch)):
            raise ValueError(f"timestep: expected a scalar or shape ({batch},), got {tuple(timesteps.shape)}")
        # Value checks read tensors back into Python: eager only, so that torch.compile traces one graph.
        if not torch.compiler.is_compiling() and (timesteps < 0).any():
            raise ValueError("timestep: must be >= 0")
        timesteps = timesteps.reshape(-1).expand(batch)
        if cfg.cross_attention_dim is not None:
            if encoder_hidden_states is None:
                raise ValueError("encoder_hidden_states: required, this U-Net has cross_attention_dim set")
            shape = tuple(encoder_hidden_states.shape)
            if len(shape) != 3 or shape[0] != batch or shape[2] != cfg.cross_attention_dim:
                raise ValueError(
                    f"encoder_hidden_states: expected ({batch}, L, {cfg.cross_attention_dim}), got {shape}"
                )
        elif encoder_hidden_states is not None:
            raise ValueError(
                "encoder_hidden_states: this U-Net has no cross-attention (cross_attention_dim=None)"
            )
        if cfg.num_class_embeds is not None:
            if class_labels is None or class_labels.shape != (batch,):
                raise ValueError(f"class_labels: expected a ({batch},) tensor of class indices")
            out_of_range = not torch.compiler.is_compiling() and (
                (class_labels < 0).any() or (class_labels >= cfg.num_class_embeds).any()
            )
            if class_labels.is_floating_point() or out_of_range:
                raise ValueError(f"class_labels: must be integers in [0, {cfg.num_class_embeds})")
        elif class_labels is not None:
            raise ValueError("class_labels: this U-Net has no class embedding (num_class_embeds=None)")
        return timesteps

    def _check_timestep_cond(self, timestep_cond: torch.Tensor | None, batch: int) -> None:
        """ValueError for a `timestep_cond` given to a U-Net without the w-embedding, or of another shape."""
        dim = self.config.get("time_cond_proj_dim")
        if timestep_cond is None:
            return
        if not dim:
            raise ValueError(
                "timestep_cond: this U-Net has no guidance-scale embedding (time_cond_proj_dim=None); "
                "only a consistency-distilled student takes one"
            )
        if tuple(timestep_cond.shape) != (batch, dim):
            raise ValueError(f"timestep_cond: expected ({batch}, {dim}), got {tuple(timestep_cond.shape)}")

    @staticmethod
    def _attention_mask(
        mask: torch.Tensor | None, context: torch.Tensor | None, dtype: torch.dtype
    ) -> torch.Tensor | None:
        """(B, L) keep-mask -> (B, 1, L) bias added to the attention logits: 0 = attend, -10000 = ignore
        (diffusers' convention, which every diffusers attention processor accepts)."""
        if mask is None:
            return None
        if context is None or mask.shape != context.shape[:2]:
            raise ValueError("encoder_attention_mask: expected shape (B, L) matching encoder_hidden_states")
        return ((1 - mask.to(dtype)) * -10000.0)[:, None, :]
