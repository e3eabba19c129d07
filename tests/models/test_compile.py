"""torch.compile: the U-Net and the KL decoder trace as one graph, and a sampling loop does not recompile.

The "eager" and "aot_eager" backends trace exactly what inductor would get, in seconds instead of minutes.
"""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from hfldm.autoencoders.kl import KLAutoencoder
from hfldm.unets.unet import ConditionalUNet
from tests.models.test_unet import TINY, perturbed

CONTEXT = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(2))
MODES = {
    "text": (dict(cross_attention_dim=16), dict(encoder_hidden_states=CONTEXT)),
    "text+mask": (
        dict(cross_attention_dim=16),
        dict(encoder_hidden_states=CONTEXT, encoder_attention_mask=torch.tensor([[1, 1, 1, 0, 0]] * 2)),
    ),
    "class": (dict(num_class_embeds=10), dict(class_labels=torch.tensor([3, 7]))),
    "unconditional": ({}, {}),
}


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def unet(mode: str) -> ConditionalUNet:
    torch.manual_seed(0)
    return perturbed(ConditionalUNet(**TINY, **MODES[mode][0])).eval()


@pytest.mark.parametrize("mode", list(MODES))
def test_unet_has_no_graph_breaks(mode):
    x = torch.randn(2, 3, 8, 8)
    explanation = torch._dynamo.explain(unet(mode))(x, torch.tensor(500), **MODES[mode][1])
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_kl_decode_has_no_graph_breaks():
    vae = KLAutoencoder(block_out_channels=(8, 16), layers_per_block=1, latent_channels=4, norm_num_groups=4)
    explanation = torch._dynamo.explain(vae.decode)(torch.randn(1, 4, 4, 4))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(vae.decode, backend="aot_eager", fullgraph=True)
    z = torch.randn(2, 4, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(compiled(z).sample, vae.decode(z).sample)


@torch.no_grad()
def test_sampling_loop_over_25_timesteps_does_not_recompile():
    model, x = unet("text"), torch.randn(2, 3, 8, 8)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    timesteps = torch.linspace(999, 0, 25).long()  # as scheduler.timesteps: iterating gives 0-d tensors
    with torch._dynamo.config.patch(error_on_recompile=True):
        for t in timesteps:
            out = compiled(x, t, CONTEXT).sample
    assert counters["stats"]["unique_graphs"] == 1
    torch.testing.assert_close(out, model(x, timesteps[-1], CONTEXT).sample, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_python_int_timesteps_compile_once_more_then_stay():
    """A Python int is a constant in the first graph; when it changes torch makes it a symbol: one
    recompile, then none for the rest of the loop (0-d tensors, as pipelines pass, never recompile)."""
    compiled = torch.compile(unet("class"), backend="eager", fullgraph=True)
    labels = MODES["class"][1]
    for t in range(999, 0, -40):  # 25 steps
        compiled(torch.randn(2, 3, 8, 8), t, **labels)
    assert counters["stats"]["unique_graphs"] == 2


def test_training_step_compiles_with_gradient_checkpointing():
    model = unet("text").train()
    model.enable_gradient_checkpointing()
    explanation = torch._dynamo.explain(lambda x: model(x, torch.tensor([3, 600]), CONTEXT).sample.sum())(
        torch.randn(2, 3, 8, 8)
    )
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_value_errors_stay_in_eager_mode():
    model = ConditionalUNet(**TINY, num_class_embeds=10)
    with pytest.raises(ValueError, match="timestep"):
        model(torch.randn(2, 3, 8, 8), torch.tensor(-1), class_labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="class_labels"):
        model(torch.randn(2, 3, 8, 8), 1, class_labels=torch.tensor([0, 10]))


def test_a_pipeline_samples_with_its_unet_replaced_by_the_compiled_module():
    """`pipe.unet = torch.compile(pipe.unet)` (diffusers' recipe) gives an OptimizedModule, which has no bool():
    the text pipeline samples with it, and draws what the eager U-Net draws."""
    from _ldm_fixtures import sample, text_pipeline

    pipe = text_pipeline()
    eager = sample(pipe, prompt=["a", "b c"])
    pipe.unet = torch.compile(pipe.unet, backend="eager", fullgraph=True)
    torch.testing.assert_close(sample(pipe, prompt=["a", "b c"]), eager)
