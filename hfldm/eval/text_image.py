"""A small CLIP-style text–image model (Radford et al. 2021) for offline evaluation.

Image tower: a small CNN trained from scratch (hfldm's ResBlock, global average pooling), a linear projection.
Text tower: the FROZEN MiniLM sentence encoder (`hfldm.eval.sentence`) + a linear projection. Only the image
tower, the two projections and the temperature are saved (safetensors); MiniLM comes from its package.
Its pooled image features serve FID/KID (`TextImageFeatures`); its cosine similarity the text–image score.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from hfldm.eval.features import to_unit_range
from hfldm.eval.sentence import SENTENCE_DIM, SENTENCE_ENCODER, encode_sentences
from hfldm.nn.resnet import Downsample, ResBlock, group_norm


class TextImageModel(ModelMixin, ConfigMixin):
    """Image tower and projection heads of the text–image model; the text tower is frozen MiniLM.

    Images enter as floats in [0, 1] (N, 3, H, W) and are resized to `sample_size`.
    """

    @register_to_config
    def __init__(
        self,
        sample_size: int = 32,  # side in pixels the image tower works at
        block_out_channels: tuple[int, ...] = (32, 64, 128, 128),  # CNN width per resolution (halved each)
        layers_per_block: int = 1,  # ResBlocks per resolution
        norm_num_groups: int = 8,  # GroupNorm groups
        text_embed_dim: int = SENTENCE_DIM,  # width of the frozen sentence embeddings
        projection_dim: int = 128,  # width of the joint embedding space
        logit_scale_init: float = math.log(1 / 0.07),  # log of the initial inverse temperature (CLIP)
        text_encoder: str = SENTENCE_ENCODER,  # name of the frozen text tower (not saved here)
    ):
        super().__init__()
        if text_encoder != SENTENCE_ENCODER:
            raise ValueError(f"text_encoder: only {SENTENCE_ENCODER!r} is available, got {text_encoder!r}")
        channels = list(block_out_channels)
        self.conv_in = nn.Conv2d(3, channels[0], 3, padding=1)
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip([channels[0]] + channels[:-1], channels)):
            for j in range(layers_per_block):
                layers.append(ResBlock(c_in if j == 0 else c_out, c_out, norm_groups=norm_num_groups))
            if i < len(channels) - 1:
                layers.append(Downsample(c_out))
        self.blocks = nn.Sequential(*layers)
        self.norm_out = group_norm(channels[-1], norm_num_groups)
        self.image_projection = nn.Linear(channels[-1], projection_dim, bias=False)
        self.text_projection = nn.Linear(text_embed_dim, projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale_init)))

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled CNN features, used by FID/KID: [0, 1] images (N, 3, H, W) -> (N, block_out_channels[-1])."""
        x = to_unit_range(images).to(self.device, self.dtype)
        if x.shape[-2:] != (self.config.sample_size, self.config.sample_size):
            x = F.interpolate(
                x, size=self.config.sample_size, mode="bilinear", antialias=True, align_corners=False
            )
        h = self.blocks(self.conv_in(2 * x - 1))  # [0, 1] -> [-1, 1]
        return F.silu(self.norm_out(h)).mean(dim=(2, 3))  # global average pool: (N, C, h, w) -> (N, C)

    def image_embeds(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-norm joint embeddings of [0, 1] images (N, 3, H, W) -> (N, projection_dim)."""
        return F.normalize(self.image_projection(self.image_features(images)), dim=-1)

    def text_embeds(self, sentence_embeddings: torch.Tensor) -> torch.Tensor:
        """Unit-norm joint embeddings of precomputed MiniLM embeddings (N, 384) -> (N, projection_dim)."""
        return F.normalize(self.text_projection(sentence_embeddings.to(self.device, self.dtype)), dim=-1)

    def encode_text(self, captions: list[str]) -> torch.Tensor:
        """Unit-norm joint embeddings of captions -> (N, projection_dim) (runs the frozen MiniLM)."""
        return self.text_embeds(encode_sentences(captions))

    def forward(self, images: torch.Tensor, sentence_embeddings: torch.Tensor) -> torch.Tensor:
        """CLIP logits: exp(logit_scale) * cos(image_i, text_j), shape (N_images, N_texts)."""
        scale = self.logit_scale.clamp(max=math.log(100.0)).exp()  # CLIP caps the inverse temperature at 100
        return scale * self.image_embeds(images) @ self.text_embeds(sentence_embeddings).T


def info_nce_loss(logits: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP): mean of the image->text and text->image cross-entropies, pair i matches i."""
    targets = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))
