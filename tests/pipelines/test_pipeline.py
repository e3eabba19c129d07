"""LatentDiffusionPipeline on tiny random hfldm components: seeds, batches, guidance, schedulers, img2img."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _ldm_fixtures import (
    ID2LABEL,
    IMAGE_SIZE,
    TEXT_DIM,
    class_pipeline,
    perturb,
    sample,
    text_pipeline,
    tiny_text,
    tiny_unet,
    tiny_vae,
    unconditional_pipeline,
)
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    UNet2DConditionModel,
)
from transformers import BertConfig, BertModel, CLIPTextConfig, CLIPTextModel

import hfldm
from hfldm.unets.null_class import null_class_label


@pytest.fixture(scope="module")
def text_pipe():
    return text_pipeline()


@pytest.fixture(scope="module")
def class_pipe():
    return class_pipeline()


def test_same_seed_same_images_other_seed_other_images(text_pipe):
    a, b = sample(text_pipe, seed=0, prompt="cat face"), sample(text_pipe, seed=0, prompt="cat face")
    c = sample(text_pipe, seed=1, prompt="cat face")
    assert a.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3) and 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 1e-3


def test_batch_size_is_prompts_times_images_per_prompt(text_pipe, class_pipe):
    assert (
        len(text_pipe(["cat face", "red apple"], num_images_per_prompt=3, num_inference_steps=2).images) == 6
    )
    images = sample(class_pipe, class_labels=[0, "dog face"], num_images_per_prompt=2, steps=2)
    assert images.shape == (4, IMAGE_SIZE, IMAGE_SIZE, 3)
    # images of one prompt come out next to each other and differ (independent noise)
    assert np.abs(images[0] - images[1]).mean() > 1e-3


def test_latent_output_has_latent_shape(text_pipe):
    latents = sample(text_pipe, prompt="cat face", height=32, width=16, output_type="latent")
    assert isinstance(latents, torch.Tensor) and latents.shape == (1, 4, 16, 8)  # (B, C, H / f, W / f)


def test_callback_runs_once_per_step_and_can_replace_latents(text_pipe):
    calls = []

    def zero_at_last_step(pipe, i, t, tensors):
        calls.append((i, int(t)))
        return {"latents": torch.zeros_like(tensors["latents"])} if i == pipe.num_timesteps - 1 else {}

    latents = sample(
        text_pipe, prompt="cat face", steps=5, output_type="latent", callback_on_step_end=zero_at_last_step
    )
    assert [i for i, _ in calls] == list(range(5))
    assert [t for _, t in calls] == text_pipe.scheduler.timesteps.tolist()
    assert torch.count_nonzero(latents) == 0


def test_guidance_scale_zero_equals_unconditional_sample(text_pipe):
    """w = 0 turns ε̃ = ε(∅) + w (ε(y) - ε(∅)) into ε(∅): the same images as the prompt ""."""
    guided = sample(text_pipe, prompt="cat face", guidance_scale=0.0)
    unconditional = sample(text_pipe, prompt="")
    np.testing.assert_allclose(guided, unconditional, atol=1e-5)
    # w = 1 is the conditional model alone, w = 5 differs from both
    conditional, strong = (sample(text_pipe, prompt="cat face", guidance_scale=w) for w in (1.0, 5.0))
    assert np.abs(conditional - unconditional).mean() > 1e-3
    assert np.abs(strong - conditional).mean() > 1e-3


def test_negative_prompt_is_the_unconditional_text(text_pipe):
    """With w = 0 only the negative branch remains: the images of prompt=negative_prompt without guidance."""
    negative = sample(text_pipe, prompt="cat face", negative_prompt="dog face", guidance_scale=0.0)
    np.testing.assert_allclose(negative, sample(text_pipe, prompt="dog face", guidance_scale=1.0), atol=1e-5)


def test_class_names_and_null_class(class_pipe):
    assert null_class_label(class_pipe.unet.config.num_class_embeds) == len(ID2LABEL)
    np.testing.assert_array_equal(
        sample(class_pipe, class_labels="dog face"), sample(class_pipe, class_labels=1)
    )
    # w = 0 keeps only ε(z_t, ∅): the same images as no class label at all (the null class)
    np.testing.assert_allclose(
        sample(class_pipe, class_labels=1, guidance_scale=0.0), sample(class_pipe), atol=1e-5
    )
    assert np.abs(sample(class_pipe, class_labels=0) - sample(class_pipe, class_labels=1)).mean() > 1e-3


def test_unconditional_model_goes_through_the_same_call():
    pipe = unconditional_pipeline()
    images = sample(pipe, num_images_per_prompt=2)
    assert images.shape == (2, IMAGE_SIZE, IMAGE_SIZE, 3)
    np.testing.assert_array_equal(images, sample(pipe, num_images_per_prompt=2))


SCHEDULERS = [
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    hfldm.DDPMScheduler,
    hfldm.DDIMScheduler,
]


@pytest.mark.parametrize(
    "scheduler_cls", SCHEDULERS, ids=lambda c: f"{c.__module__.split('.')[0]}.{c.__name__}"
)
def test_scheduler_swap(scheduler_cls):
    pipe = text_pipeline()
    pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config)
    assert pipe.config.scheduler[1] == scheduler_cls.__name__
    steps = []
    images = sample(pipe, prompt="cat face", callback_on_step_end=lambda p, i, t, k: steps.append(i) or {})
    assert images.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3) and np.isfinite(images).all()
    assert len(steps) == len(pipe.scheduler.timesteps)


def test_hfldm_ddim_matches_diffusers_ddim_in_the_pipeline(text_pipe):
    pipe = text_pipeline()
    images = {}
    for cls in (DDIMScheduler, hfldm.DDIMScheduler):
        pipe.scheduler = cls.from_config(text_pipe.scheduler.config)
        images[cls.__module__] = sample(pipe, prompt="cat face", steps=5)
    ours, theirs = images.values()
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


@pytest.mark.parametrize("vae_kind", ["kl", "vq"])
def test_img2img_strength_zero_is_the_autoencoder_round_trip(vae_kind):
    pipe = text_pipeline(vae_kind)
    x = torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        encoded = pipe.vae.encode(x * 2 - 1)
        z = encoded.latent_dist.mode() if vae_kind == "kl" else encoded.latents
        round_trip = ((pipe.vae.decode(z).sample + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    steps = []
    out = sample(
        pipe, prompt="cat face", image=x, strength=0.0, callback_on_step_end=lambda *a: steps.append(1) or {}
    )
    assert steps == []  # nothing to denoise
    np.testing.assert_allclose(out, round_trip, atol=1e-5)
    half = sample(pipe, prompt="cat face", image=x, strength=0.5, steps=6)
    full = sample(pipe, prompt="cat face", image=x, strength=1.0, steps=6)
    assert pipe.num_timesteps == 6
    # more noise, further from the input: |x̂ - round trip| grows with the strength
    assert np.abs(half - round_trip).mean() < np.abs(full - round_trip).mean()


def test_img2img_runs_the_last_strength_share_of_the_steps(text_pipe):
    x = torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(4))
    images = sample(text_pipe, prompt=["cat face", "red apple"], image=x, strength=0.5, steps=10)
    assert text_pipe.num_timesteps == 5 and images.shape == (2, IMAGE_SIZE, IMAGE_SIZE, 3)


@pytest.mark.parametrize("kind", ["clip", "bert"])
def test_any_transformers_text_encoder(kind):
    """A user's CLIPTextModel or BertModel (random tiny configs) works as τ_θ."""
    tokenizer, _ = tiny_text()
    common = dict(vocab_size=len(tokenizer), hidden_size=TEXT_DIM, num_hidden_layers=1, num_attention_heads=2)
    torch.manual_seed(5)
    if kind == "clip":
        encoder = CLIPTextModel(CLIPTextConfig(**common, intermediate_size=32, max_position_embeddings=8))
    else:
        encoder = BertModel(BertConfig(**common, intermediate_size=32, max_position_embeddings=8))
    pipe = hfldm.LatentDiffusionPipeline(
        vae=tiny_vae(),
        unet=tiny_unet(cross_attention_dim=TEXT_DIM),
        scheduler=hfldm.DDIMScheduler(num_train_timesteps=100),
        text_encoder=encoder.eval(),
        tokenizer=tokenizer,
    )
    pipe.set_progress_bar_config(disable=True)
    cat, dog = sample(pipe, prompt="cat face"), sample(pipe, prompt="dog face")
    assert cat.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert np.abs(cat - dog).mean() > 1e-4  # the text reaches the image


def test_diffusers_unet_and_autoencoder_work_too():
    """The pipeline uses only the diffusers API: diffusers' UNet2DConditionModel and AutoencoderKL fit."""
    torch.manual_seed(6)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=2,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=IMAGE_SIZE,
    )
    tokenizer, text_encoder = tiny_text()
    pipe = hfldm.LatentDiffusionPipeline(
        vae=vae.eval(),
        unet=perturb(unet, seed=7).eval(),
        scheduler=DDIMScheduler(num_train_timesteps=100),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
    )
    pipe.set_progress_bar_config(disable=True)
    guided = sample(pipe, prompt="cat face", guidance_scale=0.0)
    assert guided.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3)
    np.testing.assert_allclose(guided, sample(pipe, prompt=""), atol=1e-5)
    assert np.abs(sample(pipe, prompt="cat face", guidance_scale=4.0) - guided).mean() > 1e-4


def _bad_call_cases():
    return [
        ("num_inference_steps", "text", dict(prompt="cat face", num_inference_steps=0)),
        ("guidance_scale", "text", dict(prompt="cat face", guidance_scale=-1.0)),
        ("num_images_per_prompt", "text", dict(prompt="cat face", num_images_per_prompt=0)),
        ("height", "text", dict(prompt="cat face", height=15)),
        ("width", "text", dict(prompt="cat face", width=9)),
        ("negative_prompt", "text", dict(prompt=["cat face", "dog face"], negative_prompt=["x"])),
        ("prompt", "class", dict(prompt="cat face")),
        ("negative_prompt", "class", dict(negative_prompt="cat face")),
        ("class_labels", "text", dict(class_labels=0)),
        ("class_labels", "class", dict(class_labels="unicorn")),
        ("class_labels", "class", dict(class_labels=[0, 9])),
        ("strength", "text", dict(image=torch.zeros(1, 3, 16, 16), strength=1.5)),
        ("strength", "text", dict(strength=0.5)),
        ("latents", "text", dict(latents=torch.zeros(1, 4, 4, 4))),
        ("output_type", "text", dict(output_type="jpeg")),
        ("callback_on_step_end_tensor_inputs", "text", dict(callback_on_step_end_tensor_inputs=["noise"])),
    ]


@pytest.mark.parametrize(
    "argument,kind,kwargs", _bad_call_cases(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_bad_input_raises_value_error_naming_the_argument(text_pipe, class_pipe, argument, kind, kwargs):
    pipe = text_pipe if kind == "text" else class_pipe
    with pytest.raises(ValueError, match=argument):
        pipe(**{"num_inference_steps": 2, **kwargs})
