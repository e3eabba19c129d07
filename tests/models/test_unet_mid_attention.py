"""ConditionalUNet(mid_attention=False): a U-Net of convolutions only (#30's SR model, which must work on any
crop), while the default keeps the mid block's transformer, so every shipped model loads as before."""

from __future__ import annotations

import torch

from hfldm.nn.attention import SpatialTransformer
from hfldm.unets.unet import ConditionalUNet

TINY = dict(
    sample_size=8, in_channels=4, block_out_channels=(8, 16), norm_num_groups=4, num_attention_heads=2
)


def test_without_mid_attention_the_unet_has_no_attention_and_round_trips(tmp_path):
    local = ConditionalUNet(**TINY, attention_levels=False, mid_attention=False)
    default = ConditionalUNet(**TINY, attention_levels=False)
    assert not any(isinstance(m, SpatialTransformer) for m in local.modules())
    assert sum(isinstance(m, SpatialTransformer) for m in default.modules()) == 1  # the mid block's
    extra = set(default.state_dict()) - set(local.state_dict())
    assert extra and all(k.startswith("mid_block.") for k in extra)  # nothing else differs
    torch.nn.init.normal_(local.conv_out.weight, std=0.1)  # zero-initialised output: jitter it first
    local.save_pretrained(tmp_path)
    again = ConditionalUNet.from_pretrained(tmp_path)
    assert again.config.mid_attention is False
    x, t = torch.randn(2, 4, 12, 12), torch.tensor([3, 700])  # any multiple of 2^(levels - 1)
    out = local(x, t).sample
    assert out.shape == (2, 4, 12, 12) and out.abs().mean() > 0
    torch.testing.assert_close(again(x, t).sample, out)
