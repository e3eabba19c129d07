"""What diffusers' PipelineTesterMixin checks, for hfldm's text-to-image, inpainting and super-resolution
pipelines on jittered tiny models (every number below depends on the U-Net, the text and the callback):
`num_images_per_prompt`, batch-vs-single equivalence, callbacks that change latents and guidance under
diffusers' tensor names, `prompt_embeds` equivalence, `encode_prompt` alone, `cross_attention_kwargs`,
attention slicing, custom timesteps, and the one `check_inputs` table every `__call__` argument goes through.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from _inpaint_fixtures import box_mask, images, inpaint_pipeline
from _ldm_fixtures import sample, text_pipeline
from _superres_fixtures import low_res_images, sr_pipeline, upscale
from diffusers.callbacks import SDCFGCutoffCallback

from hfldm import LatentDiffusionPipeline
from hfldm.pipelines.pipeline_latent_diffusion_inpaint import LatentDiffusionInpaintPipeline
from hfldm.pipelines.pipeline_latent_diffusion_superres import LatentDiffusionSuperResolutionPipeline
from hfldm.schedulers.ddim import DDIMScheduler
from tests.models.test_diffusers_conventions import RecordingProcessor

PIPELINES = (LatentDiffusionPipeline, LatentDiffusionInpaintPipeline, LatentDiffusionSuperResolutionPipeline)


@pytest.fixture(scope="module")
def pipe() -> LatentDiffusionPipeline:
    return text_pipeline()


def generators(n: int, seed: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def test_every_call_argument_is_checked_by_the_one_table():
    """Each parameter of each pipeline's __call__ has its type/range check in `ARGUMENTS` (a new argument
    without one fails here), and each pipeline's __call__ hands all of them to check_inputs."""
    from hfldm.pipelines.arguments import ARGUMENTS

    for cls in PIPELINES:
        parameters = set(inspect.signature(cls.__call__).parameters) - {"self"}
        assert parameters <= set(ARGUMENTS), (cls.__name__, parameters - set(ARGUMENTS))
        assert "self.check_inputs(**{k: v for k, v in locals().items()" in inspect.getsource(cls.__call__)


def test_num_images_per_prompt_and_batch_equal_single_calls(pipe):
    """Two prompts × two images with one generator per image: the same images as four single calls."""
    prompts = ["cat face", "red apple"]
    batch = pipe(
        prompt=prompts,
        num_images_per_prompt=2,
        num_inference_steps=3,
        generator=generators(4),
        output_type="np",
    ).images
    assert batch.shape == (4, 16, 16, 3)
    singles = [
        pipe(
            prompt=prompts[i // 2], num_inference_steps=3, generator=generators(1, seed=i), output_type="np"
        ).images[0]
        for i in range(4)
    ]
    np.testing.assert_allclose(batch, np.stack(singles), atol=1e-5)
    assert np.abs(batch[0] - batch[2]).max() > 1e-3  # the prompt matters


def test_prompt_embeds_give_the_prompts_images(pipe):
    """#32 item 4: precomputed τ_θ(y) (and its mask, and the negative's) give the images of the text."""
    prompts = ["cat face", "dog face"]
    reference = sample(pipe, prompt=prompts, negative_prompt="red apple")
    embeds, mask, negative, negative_mask = pipe.encode_prompt(prompts, negative_prompt="red apple")
    given = sample(
        pipe,
        prompt_embeds=embeds,
        prompt_attention_mask=mask,
        negative_prompt_embeds=negative,
        negative_prompt_attention_mask=negative_mask,
    )
    np.testing.assert_array_equal(given, reference)
    # weighted: scaling the condition changes the images
    assert (
        np.abs(sample(pipe, prompt_embeds=1.5 * embeds, prompt_attention_mask=mask) - reference).max() > 1e-3
    )
    with pytest.raises(ValueError, match="prompt and prompt_embeds cannot both be given"):
        sample(pipe, prompt=prompts, prompt_embeds=embeds)
    with pytest.raises(ValueError, match=r"prompt_embeds must have shape \(2, L, 16\)"):
        sample(pipe, prompt_embeds=embeds[..., :8])


def test_encode_prompt_alone_without_vae_and_unet(pipe):
    """#32 item 4: a pipeline of τ_θ and its tokenizer only encodes prompts as the full one does."""
    encoder_only = LatentDiffusionPipeline(
        vae=None,
        unet=None,
        scheduler=pipe.scheduler,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
    )
    with torch.no_grad():
        alone = encoder_only.encode_prompt(["cat face"], num_images_per_prompt=2)
        full = pipe.encode_prompt(["cat face"], num_images_per_prompt=2)
    for a, b in zip(alone, full):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert alone[0].shape[0] == 2 and alone[0].abs().mean() > 0.1
    with pytest.raises(ValueError, match="vae is None: this pipeline only encodes prompts"):
        encoder_only("cat face")


def test_callback_tensor_names_and_guidance_state(pipe):
    """#32 item 3: diffusers' names (prompt_embeds = the U-Net's text states, unconditional rows first;
    negative_prompt_embeds = those rows), guidance_scale / do_classifier_free_guidance read in a callback."""
    assert pipe._callback_tensor_inputs == ["latents", "prompt_embeds", "negative_prompt_embeds"]
    seen = []

    def record(p, i, t, tensors):
        seen.append(
            (
                p.guidance_scale,
                p.do_classifier_free_guidance,
                tensors["prompt_embeds"].shape,
                tensors["negative_prompt_embeds"].shape,
            )
        )
        return tensors

    sample(
        pipe,
        prompt=["cat face", "dog face"],
        guidance_scale=2.0,
        callback_on_step_end=record,
        callback_on_step_end_tensor_inputs=["prompt_embeds", "negative_prompt_embeds"],
    )
    length = seen[0][2][1]
    assert seen == [(2.0, True, (4, length, 16), (2, length, 16))] * 4


def test_callback_changes_guidance_like_diffusers_cfg_cutoff(pipe):
    """#32 item 3: diffusers' SDCFGCutoffCallback (keep the conditional rows of prompt_embeds, w = 0) gives
    the images of switching guidance off at the same step (w = 1), and differs from guiding to the end."""

    def guidance_off(p, i, t, tensors):
        if i == 1:
            p._guidance_scale = 1.0
        return tensors

    cutoff = SDCFGCutoffCallback(cutoff_step_ratio=None, cutoff_step_index=1)
    by_diffusers = sample(pipe, prompt="cat face", callback_on_step_end=cutoff)
    by_hand = sample(pipe, prompt="cat face", callback_on_step_end=guidance_off)
    np.testing.assert_array_equal(by_diffusers, by_hand)
    assert np.abs(by_hand - sample(pipe, prompt="cat face")).max() > 1e-4


def test_callback_replaces_latents_in_every_pipeline(pipe):
    zero = lambda p, i, t, tensors: {"latents": torch.zeros_like(tensors["latents"])}  # noqa: E731
    z = sample(pipe, prompt="cat face", output_type="latent", callback_on_step_end=zero)
    assert torch.count_nonzero(torch.as_tensor(z)) == 0
    inpaint = inpaint_pipeline(text=pipe)
    z = inpaint(
        prompt="cat face",
        image=images(1),
        mask_image=box_mask(),
        num_inference_steps=2,
        output_type="latent",
        callback_on_step_end=zero,
    ).images
    assert torch.count_nonzero(z) == 0
    z = sr_pipeline()(
        low_res_images(1), num_inference_steps=2, output_type="latent", callback_on_step_end=zero
    )
    assert torch.count_nonzero(z.images) == 0


def test_cross_attention_kwargs_reach_the_processors_from_the_pipeline(pipe):
    recorder = RecordingProcessor()
    processors = pipe.unet.attn_processors
    n_layers = len(processors)
    pipe.unet.set_attn_processor(recorder)
    try:
        sample(pipe, prompt="cat face", steps=2, cross_attention_kwargs={"weight": 2.0})
        assert pipe.cross_attention_kwargs == {"weight": 2.0}
    finally:
        pipe.unet.set_attn_processor(processors)
    assert recorder.seen == [2.0] * (2 * n_layers)  # each attention layer at each of the 2 steps


def test_attention_slicing_from_the_pipeline_gives_the_same_images(pipe):
    """#32 item 5: pipe.enable_attention_slicing() reaches the U-Net and changes nothing but the memory."""
    reference = sample(pipe, prompt="cat face")
    pipe.enable_attention_slicing("max")
    try:
        assert {type(p).__name__ for p in pipe.unet.attn_processors.values()} == {"SlicedAttnProcessor"}
        np.testing.assert_allclose(sample(pipe, prompt="cat face"), reference, atol=1e-6)
    finally:
        pipe.disable_attention_slicing()


def test_custom_timesteps_in_every_pipeline(pipe):
    """#32 item 6: `timesteps=` equal to the scheduler's own spacing gives its images; another schedule
    gives others."""
    spaced = [75, 50, 25, 0]  # DDPM, T = 100, 4 "leading" steps
    np.testing.assert_array_equal(
        sample(pipe, prompt="cat face", timesteps=spaced), sample(pipe, prompt="cat face")
    )
    assert pipe.num_timesteps == 4
    assert (
        np.abs(sample(pipe, prompt="cat face", timesteps=[90, 40, 5]) - sample(pipe, prompt="cat face")).max()
        > 1e-3
    )
    sr = sr_pipeline()
    sr.scheduler = DDIMScheduler.from_config(sr.scheduler.config)  # diffusers' DDIM takes no timesteps=
    np.testing.assert_array_equal(
        upscale(sr, low_res_images(1), timesteps=spaced), upscale(sr, low_res_images(1))
    )
    inpaint = inpaint_pipeline(text=pipe)

    def run(**kwargs) -> np.ndarray:
        mask, g = box_mask(), generators(1)
        return inpaint("cat face", images(1), mask, generator=g, output_type="np", **kwargs).images

    np.testing.assert_array_equal(run(timesteps=spaced), run(num_inference_steps=4))
    with pytest.raises(ValueError, match=r"timesteps must lie in \[0, 100\)"):
        sample(pipe, prompt="cat face", timesteps=[150, 3])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [  # #36 item 19: each raised TypeError / AttributeError before
        (dict(num_inference_steps="4"), "num_inference_steps must be an integer"),
        (dict(height="16"), "height must be an integer"),
        (dict(generator=0), "generator must be a torch.Generator"),
        (dict(callback_on_step_end=lambda *a: None), "callback_on_step_end must return a dict"),
        (dict(generator=generators(3)), "generator: a list of 3 generators for 2 images"),
        (dict(prompt=[]), "prompt must be a string or a non-empty list"),
        (dict(latents=np.zeros((2, 4, 8, 8))), "latents must be a 4-D torch.Tensor"),
        (dict(guidance_scale=[3.0]), "guidance_scale must be a finite number"),
        (dict(negative_prompt=["a", "b", "c"]), "negative_prompt has 3 entries for a batch of 2"),
    ],
)
def test_bad_arguments_raise_one_value_error_naming_them(pipe, kwargs, message):
    call = dict(prompt=["cat face", "dog face"], num_inference_steps=2) | kwargs
    with pytest.raises(ValueError, match=message):
        pipe(**call)


@pytest.mark.parametrize("cls", PIPELINES)
def test_from_pretrained_of_a_non_path_is_a_value_error(cls):
    with pytest.raises(ValueError, match="pretrained_model_name_or_path must be a folder or a Hub id"):
        cls.from_pretrained(123)
