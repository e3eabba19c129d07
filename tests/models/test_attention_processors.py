"""diffusers' attention API on ConditionalUNet: processors by name, custom ones, fused QKV, old weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0, FusedAttnProcessor2_0
from peft import LoraConfig
from safetensors.torch import load_file

from hfldm.nn.attention import AttentionMapRecorder
from hfldm.unets.unet import ConditionalUNet
from tests.models.test_unet import TINY, perturbed

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "models" / "hfldm-emoji"
# The bundled U-Net's output for the input below, recorded with the code before its attention layers became
# diffusers' Attention modules (hfldm's own Attention, per-forward concatenated QKV, boolean mask).
REFERENCE = ROOT / "tests" / "fixtures" / "emoji_unet_reference.safetensors"


@pytest.fixture
def unet() -> ConditionalUNet:
    torch.manual_seed(0)
    return perturbed(ConditionalUNet(**TINY, cross_attention_dim=16)).eval()


@pytest.fixture
def inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return dict(
        sample=torch.randn(2, 3, 8, 8, generator=g),
        timestep=torch.tensor([3, 700]),
        encoder_hidden_states=torch.randn(2, 5, 16, generator=g),
        encoder_attention_mask=torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]),
    )


@torch.no_grad()
def test_bundled_unet_loads_with_identical_outputs():
    unet = ConditionalUNet.from_pretrained(BUNDLED, subfolder="unet").eval()
    g = torch.Generator().manual_seed(0)
    x, context = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 7, 256, generator=g)
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    out = unet(x, torch.tensor([10, 500]), context, encoder_attention_mask=mask).sample
    torch.testing.assert_close(out, load_file(REFERENCE)["sample"], atol=1e-5, rtol=1e-5)


def test_attn_processors_names_every_attention(unet):
    processors = unet.attn_processors
    # TINY: attention at level 0 only (1 down block, 2 up blocks) and the mid block; self + cross each
    assert len(processors) == 2 * 4
    assert all(name.endswith((".attn1.processor", ".attn2.processor")) for name in processors)
    assert all(type(p) is AttnProcessor2_0 for p in processors.values())
    module = unet.get_submodule(next(iter(processors)).removesuffix(".processor"))
    assert module.get_processor() is processors[next(iter(processors))]
    with pytest.raises(ValueError, match="number of attention layers"):
        unet.set_attn_processor({next(iter(processors)): AttnProcessor()})


@torch.no_grad()
def test_swapping_the_default_processor_changes_nothing(unet, inputs):
    ref = unet(**inputs).sample
    unet.set_default_attn_processor()
    assert all(type(p) is AttnProcessor for p in unet.attn_processors.values())
    torch.testing.assert_close(unet(**inputs).sample, ref, atol=1e-5, rtol=1e-5)
    unet.set_attn_processor(AttnProcessor2_0())
    torch.testing.assert_close(unet(**inputs).sample, ref, atol=0, rtol=0)


@torch.no_grad()
def test_custom_processor_records_cross_attention_maps(unet, inputs):
    ref = unet(**inputs).sample
    recorder = AttentionMapRecorder()
    processors = unet.attn_processors
    unet.set_attn_processor(
        {name: recorder if name.endswith("attn2.processor") else p for name, p in processors.items()}
    )
    torch.testing.assert_close(unet(**inputs).sample, ref, atol=1e-5, rtol=1e-5)
    assert len(recorder.maps) == 4  # one per cross-attention layer, in call order
    heads = {8 * 8: TINY["num_attention_heads"][0], 4 * 4: TINY["num_attention_heads"][1]}  # level 0, mid
    for attention_map in recorder.maps:
        b, h, hw, length = attention_map.shape
        assert (b, h, length) == (2, heads[hw], 5)
        torch.testing.assert_close(attention_map.sum(-1), torch.ones(b, h, hw))  # rows are distributions
        assert attention_map[1, :, :, 3:].max() < 1e-6  # masked tokens get no weight
        assert attention_map[0, :, :, 3:].min() > 0


@torch.no_grad()
def test_fused_qkv_equals_unfused_and_unfuse_restores(unet, inputs):
    ref, keys = unet(**inputs).sample, set(unet.state_dict())
    attn1 = unet.get_submodule("down.0.blocks.0.attention.transformer_blocks.0.attn1")
    attn2 = unet.get_submodule("down.0.blocks.0.attention.transformer_blocks.0.attn2")
    unet.fuse_qkv_projections()
    assert all(type(p) is FusedAttnProcessor2_0 for p in unet.attn_processors.values())
    qkv = torch.cat([attn1.to_q.weight, attn1.to_k.weight, attn1.to_v.weight])
    torch.testing.assert_close(attn1.to_qkv.weight, qkv)
    torch.testing.assert_close(attn2.to_kv.weight, torch.cat([attn2.to_k.weight, attn2.to_v.weight]))
    fused_weight = attn1.to_qkv.weight
    torch.testing.assert_close(unet(**inputs).sample, ref, atol=1e-5, rtol=1e-5)
    unet(**inputs)
    assert attn1.to_qkv.weight is fused_weight  # built once, not per forward
    unet.fuse_qkv_projections()  # a second call is a no-op
    assert attn1.to_qkv.weight is fused_weight
    unet.unfuse_qkv_projections()
    assert not hasattr(attn1, "to_qkv") and not hasattr(attn2, "to_kv")
    assert all(type(p) is AttnProcessor2_0 for p in unet.attn_processors.values())
    assert set(unet.state_dict()) == keys
    torch.testing.assert_close(unet(**inputs).sample, ref, atol=0, rtol=0)


def test_fusing_refuses_to_drop_lora_adapters(unet):
    unet.add_adapter(LoraConfig(r=2, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with pytest.raises(ValueError, match="adapters"):
        unet.fuse_qkv_projections()
    assert not any(name.endswith("to_qkv.weight") for name in unet.state_dict())


def test_fused_unet_compiles_without_graph_breaks(unet, inputs):
    unet.fuse_qkv_projections()
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(unet)(**inputs)
    torch._dynamo.reset()
    assert explanation.graph_break_count == 0, explanation.break_reasons
