"""ConditionalUNet: conditioning, parity with diffusers, checkpointing, training, pipelines, LoRA, errors."""

from __future__ import annotations

import diffusers
import pytest
import torch
import torch.nn.functional as F
from _jitter import jitter
from diffusers import DDPMPipeline, UNet2DConditionModel
from peft import LoraConfig

from hfldm.schedulers.ddpm import DDPMScheduler
from hfldm.unets.convert import diffusers_unet_to_hfldm
from hfldm.unets.unet import ConditionalUNet

TINY = dict(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(16, 32), layers_per_block=1)
TINY.update(num_attention_heads=(2, 4), norm_num_groups=8, attention_levels=(True, False))
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def perturbed(model: torch.nn.Module, scale: float = 0.1, seed: int = 0) -> torch.nn.Module:
    """Add Gaussian noise to every weight (`_jitter.jitter(everywhere=True)`), so that zero-initialised
    layers (output conv, last conv of each residual branch, proj_out) stop hiding the dependence of the
    output on the inputs."""
    return jitter(model, seed=seed, scale=scale, everywhere=True)


def text_unet(**kw) -> ConditionalUNet:
    torch.manual_seed(0)
    return perturbed(ConditionalUNet(**TINY, cross_attention_dim=16, **kw)).eval()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def context() -> torch.Tensor:
    return torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(2))


def test_zero_init_output_is_zero(x, context):
    unet = ConditionalUNet(**TINY, cross_attention_dim=16)
    assert torch.count_nonzero(unet(x, 10, context).sample) == 0


@pytest.mark.parametrize("mode", ["text", "class", "unconditional"])
def test_modes_give_output_shape(mode, x, context):
    kw = {"text": dict(cross_attention_dim=16), "class": dict(num_class_embeds=10), "unconditional": {}}[mode]
    unet = perturbed(ConditionalUNet(**dict(TINY, out_channels=5), **kw))
    inputs = {"text": dict(encoder_hidden_states=context), "class": dict(class_labels=torch.tensor([3, 7]))}
    out = unet(x, torch.tensor([5, 900]), **inputs.get(mode, {})).sample
    assert out.shape == (2, 5, 8, 8) and torch.isfinite(out).all() and out.abs().mean() > 1e-3


@torch.no_grad()
def test_output_depends_on_text_and_class(x, context):
    unet = text_unet(num_class_embeds=10)
    y = torch.tensor([1, 2])
    out = unet(x, 50, context, class_labels=y).sample
    assert (unet(x, 50, context + 1.0, class_labels=y).sample - out).abs().max() > 1e-3
    assert (unet(x, 50, context, class_labels=torch.tensor([1, 9])).sample[1] - out[1]).abs().max() > 1e-3
    # each sample only sees its own conditioning
    torch.testing.assert_close(unet(x, 50, context, class_labels=torch.tensor([1, 9])).sample[0], out[0])


@torch.no_grad()
def test_attention_mask_hides_masked_tokens(x, context):
    unet = text_unet()
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    out = unet(x, 7, context, encoder_attention_mask=mask).sample
    changed = context.clone()
    changed[0, 3:] += 5.0  # only tokens masked out for sample 0
    torch.testing.assert_close(unet(x, 7, changed, encoder_attention_mask=mask).sample[0], out[0])
    # the mask is equivalent to dropping those tokens
    torch.testing.assert_close(unet(x[:1], 7, context[:1, :3]).sample, out[:1], atol=1e-5, rtol=1e-5)
    # without the mask the same change does matter; an all-ones mask equals no mask
    assert (unet(x, 7, changed).sample[0] - unet(x, 7, context).sample[0]).abs().max() > 1e-3
    ones = torch.ones(2, 5)
    torch.testing.assert_close(
        unet(x, 7, context, encoder_attention_mask=ones).sample, unet(x, 7, context).sample
    )


@torch.no_grad()
def test_same_function_as_diffusers_unet(x, context):
    torch.manual_seed(0)
    reference = UNet2DConditionModel(
        **{k: v for k, v in TINY.items() if k not in ("num_attention_heads", "attention_levels")},
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=(2, 4),  # diffusers' name for the number of heads
        cross_attention_dim=16,
        num_class_embeds=10,
        use_linear_projection=True,
        norm_eps=1e-6,
    )
    perturbed(reference)
    unet = ConditionalUNet(**TINY, cross_attention_dim=16, num_class_embeds=10)
    unet.load_state_dict(diffusers_unet_to_hfldm(reference.state_dict()), strict=True)
    assert sum(p.numel() for p in unet.parameters()) == sum(p.numel() for p in reference.parameters())
    args = (x, torch.tensor([3, 999]), context)
    kw = dict(class_labels=torch.tensor([0, 9]), encoder_attention_mask=torch.tensor([[1, 1, 0, 0, 0]] * 2))
    torch.testing.assert_close(unet(*args, **kw).sample, reference(*args, **kw).sample, atol=1e-5, rtol=1e-5)


def test_timestep_forms_broadcast(x, context):
    unet = text_unet()
    with torch.no_grad():
        ref = unet(x, torch.tensor([42, 42]), context).sample
        for t in (42, 42.0, torch.tensor(42), torch.tensor([42])):
            torch.testing.assert_close(unet(x, t, context).sample, ref)


@torch.no_grad()
def test_bf16_weights_and_autocast_match_fp32_to_bf16_precision(x, context):
    """bf16 keeps 8 significant bits (relative rounding 2^-9 per op); through the whole U-Net the output
    stays within a few percent of fp32, with the mask, class and timestep paths all in bf16."""
    kw = dict(class_labels=torch.tensor([0, 3]), encoder_attention_mask=torch.tensor([[1, 1, 1, 0, 0]] * 2))
    t = torch.tensor([3, 700])
    ref = text_unet(num_class_embeds=4)(x, t, context, **kw).sample
    bf16 = text_unet(num_class_embeds=4).to(torch.bfloat16)(x.bfloat16(), t, context.bfloat16(), **kw).sample
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = text_unet(num_class_embeds=4)(x, t, context, **kw).sample
    for out in (bf16, autocast):
        assert out.dtype == torch.bfloat16
        assert (out.float() - ref).norm() / ref.norm() < 0.05


def test_gradient_checkpointing_gives_same_gradients(x, context):
    unet = text_unet(num_class_embeds=4).train()
    y = torch.tensor([0, 3])

    def grads() -> dict[str, torch.Tensor]:
        unet.zero_grad()
        unet(x, torch.tensor([3, 600]), context, class_labels=y).sample.square().mean().backward()
        return {n: p.grad.clone() for n, p in unet.named_parameters()}

    plain = grads()
    unet.enable_gradient_checkpointing()
    assert unet.is_gradient_checkpointing
    checkpointed = grads()
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-6, rtol=1e-5, msg=name)
    assert sum(g.abs().sum() for g in plain.values()) > 0


@pytest.mark.slow
def test_training_on_digits_reduces_ddpm_loss():
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    digits = load_digits()
    x0 = torch.tensor(digits.images[:32], dtype=torch.float32)[:, None] / 8.0 - 1.0  # (32, 1, 8, 8), [-1, 1]
    y = torch.tensor(digits.target[:32])
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    unet = ConditionalUNet(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(16, 32), layers_per_block=1,
        attention_levels=(False, True), num_attention_heads=4, num_class_embeds=10, norm_num_groups=8,
    )  # fmt: skip
    g = torch.Generator().manual_seed(1)
    eval_t = torch.randint(0, 1000, (4, 32), generator=g)  # fixed (t, ε) pairs, the same before and after
    eval_noise = torch.randn(4, *x0.shape, generator=g)

    def ddpm_loss(t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x_t = scheduler.add_noise(x0, noise, t)  # DDPM eq. 4: sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε
        return F.mse_loss(unet(x_t, t, class_labels=y).sample, noise)  # DDPM eq. 14 (L_simple)

    def eval_loss() -> float:
        with torch.no_grad():
            return sum(ddpm_loss(t, n).item() for t, n in zip(eval_t, eval_noise)) / len(eval_t)

    before = eval_loss()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=2e-3)
    for _ in range(150):
        loss = ddpm_loss(torch.randint(0, 1000, (32,)), torch.randn_like(x0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = eval_loss()
    assert before == pytest.approx(1.0, abs=0.1)  # zero-initialised output: loss = E[ε²] = 1
    assert after < before / 5, (before, after)


def test_ddpm_pipeline_drives_unconditional_unet():
    unet = perturbed(ConditionalUNet(**TINY)).eval()
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=100)
    pipe = DDPMPipeline(unet=unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    images = pipe(
        batch_size=2, num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="np"
    )
    assert images.images.shape == (2, 8, 8, 3)
    # the same loop written out: x_T ~ N(0, I), then scheduler.step with our ε prediction (DDPM Algorithm 2)
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 3, 8, 8, generator=g)
    scheduler.set_timesteps(3)
    with torch.no_grad():
        for t in scheduler.timesteps:
            sample = scheduler.step(unet(sample, t).sample, t, sample, generator=g).prev_sample
    expected = (sample / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert abs(images.images - expected).max() < 1e-5


def test_save_and_load_pretrained_safetensors(tmp_path, x, context):
    unet = text_unet(num_class_embeds=3)
    unet.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert "diffusion_pytorch_model.safetensors" in files and not any(f.endswith(".bin") for f in files)
    loaded = ConditionalUNet.from_pretrained(tmp_path, use_safetensors=True).eval()
    assert loaded.config.block_out_channels == [16, 32] and loaded.config.num_class_embeds == 3
    y = torch.tensor([0, 2])
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(x, 9, context, class_labels=y).sample, unet(x, 9, context, class_labels=y).sample
        )


def test_lora_adapter(tmp_path, x, context):
    unet = text_unet()
    with torch.no_grad():
        base = unet(x, 9, context).sample
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=LORA_TARGETS, init_lora_weights=True))
    lora_params = [n for n, _ in unet.named_parameters() if "lora_" in n]
    # every to_q/to_k/to_v/to_out.0 in every transformer layer got A and B: 2 attentions x 4 targets x 2
    n_layers = sum(1 for n, _ in unet.named_modules() if n.endswith("transformer_blocks.0"))
    assert len(lora_params) == n_layers * 2 * 4 * 2
    with torch.no_grad():
        torch.testing.assert_close(unet(x, 9, context).sample, base)  # lora_B = 0: no change at init
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1, generator=torch.Generator().manual_seed(3))
        adapted = unet(x, 9, context).sample
        assert (adapted - base).abs().max() > 1e-3
        half = unet(x, 9, context, cross_attention_kwargs={"scale": 0.5}).sample
        assert (half - base).abs().max() < (adapted - base).abs().max()
        unet.disable_adapters()
        torch.testing.assert_close(unet(x, 9, context).sample, base)
        unet.enable_adapters()
        torch.testing.assert_close(unet(x, 9, context).sample, adapted)
    unet.save_lora_adapter(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["pytorch_lora_weights.safetensors"]
    fresh = text_unet()
    fresh.load_lora_adapter(tmp_path, prefix=None, use_safetensors=True)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x, 9, context).sample, adapted)


@pytest.mark.parametrize(
    "change, argument",
    [
        (dict(sample=torch.randn(2, 4, 8, 8)), "sample"),
        (dict(sample=torch.randn(2, 3, 7, 7)), "sample"),
        (dict(timestep=-1), "timestep"),
        (dict(timestep=torch.tensor([1, 2, 3])), "timestep"),
        (dict(encoder_hidden_states=None), "encoder_hidden_states"),
        (dict(encoder_hidden_states=torch.randn(2, 5, 15)), "encoder_hidden_states"),
        (dict(class_labels=None), "class_labels"),
        (dict(class_labels=torch.tensor([0, 10])), "class_labels"),
        (dict(class_labels=torch.tensor([0, -1])), "class_labels"),
        (dict(encoder_attention_mask=torch.ones(2, 4)), "encoder_attention_mask"),
    ],
)
def test_bad_inputs_raise_value_error(change, argument, x, context):
    unet = ConditionalUNet(**TINY, cross_attention_dim=16, num_class_embeds=10)
    inputs = dict(sample=x, timestep=3, encoder_hidden_states=context, class_labels=torch.tensor([0, 9]))
    with pytest.raises(ValueError, match=argument):
        unet(**{**inputs, **change})


def test_conditioning_the_unet_does_not_have_is_rejected(x, context):
    unet = ConditionalUNet(**TINY)
    with pytest.raises(ValueError, match="encoder_hidden_states"):
        unet(x, 3, context)
    with pytest.raises(ValueError, match="class_labels"):
        unet(x, 3, class_labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="attention_levels"):
        ConditionalUNet(**{**TINY, "attention_levels": (True, False, True)})
    with pytest.raises(ValueError, match="num_attention_heads"):
        ConditionalUNet(**{**TINY, "num_attention_heads": 3})
