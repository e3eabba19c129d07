"""Less work per image, same images: τ_θ's tokens padded to the batch's longest prompt, τ_θ("") computed once
per encoder state, sampling under inference mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _ldm_fixtures import sample, text_pipeline

from hfldm.pipelines.null_text import cat_tokens, pad_tokens
from hfldm.text import encode_text, text_max_length


@pytest.fixture(scope="module")
def text_pipe():
    return text_pipeline()


def test_longest_padding_gives_the_full_length_condition_on_real_tokens(text_pipe):
    tokenizer, encoder, unet = text_pipe.tokenizer, text_pipe.text_encoder, text_pipe.unet
    texts = ["cat face", "grinning face", ""]
    full, full_mask = encode_text(tokenizer, encoder, texts)
    short, short_mask = encode_text(tokenizer, encoder, texts, padding="longest")
    length = int(short_mask.sum(1).max())
    assert full.shape[1] == text_max_length(tokenizer) == 8 and short.shape[1] == length == 4
    real = short_mask.bool()
    torch.testing.assert_close(short[real], full[:, :length][real], atol=1e-5, rtol=0)
    z, t = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor(50)
    with torch.no_grad():
        eps_full = unet(z, t, encoder_hidden_states=full, encoder_attention_mask=full_mask).sample
        eps_short = unet(z, t, encoder_hidden_states=short, encoder_attention_mask=short_mask).sample
    torch.testing.assert_close(eps_short, eps_full, atol=1e-5, rtol=0)


def test_unmasked_conditions_keep_the_full_length(text_pipe):
    """CompVis' LDMs attend to the padding (text_attention_mask=False): it is part of the condition."""
    hidden, mask = encode_text(text_pipe.tokenizer, text_pipe.text_encoder, ["cat"], None, False, "longest")
    assert mask is None and hidden.shape[1] == 8
    with pytest.raises(ValueError, match="unmasked"):
        pad_tokens(hidden[:, :3], None, 8)


def test_cat_tokens_pads_with_masked_zeros():
    a, b = torch.ones(1, 2, 3), torch.full((2, 4, 3), 2.0)
    ones = torch.ones(1, 2, dtype=torch.long), torch.ones(2, 4, dtype=torch.long)
    hidden, mask = cat_tokens([(a, ones[0]), (b, ones[1])])
    assert hidden.shape == (3, 4, 3) and mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]
    assert hidden[0, 2:].abs().sum() == 0


def _count_forwards(module: torch.nn.Module) -> list[int]:
    calls = []
    module.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    return calls


def test_the_unconditional_text_is_encoded_once_until_the_encoder_changes():
    pipe = text_pipeline()
    calls = _count_forwards(pipe.text_encoder)
    first = sample(pipe, prompt=["cat face", "red apple"])
    assert calls == [2, 1]  # the prompts, then τ_θ("") once
    np.testing.assert_array_equal(sample(pipe, prompt=["cat face", "red apple"]), first)
    assert calls == [2, 1, 2]  # cached: only the prompts
    sample(pipe, prompt="cat face", negative_prompt="dog face")
    assert calls[3:] == [1, 1]  # a negative prompt is encoded with the call
    with torch.no_grad():  # new weights (an optimizer step, load_state_dict): computed afresh
        pipe.text_encoder.embeddings.word_embeddings.weight.mul_(1.5)
    changed = sample(pipe, prompt=["cat face", "red apple"])
    assert calls[5:] == [2, 1] and np.abs(changed - first).max() > 1e-4


def test_guided_sampling_matches_a_pipeline_without_the_cache():
    """The cached τ_θ("") with longest padding reproduces the full-length batch of the previous design."""
    pipe = text_pipeline()
    prompts = ["cat face", "thinking face"]
    cached = sample(pipe, prompt=prompts, guidance_scale=3.0)
    texts = [""] * 2 + prompts
    hidden, mask = encode_text(pipe.tokenizer, pipe.text_encoder, texts)
    captured = {}

    def unet_input(module, args, kwargs):
        captured.setdefault("states", kwargs["encoder_hidden_states"])
        captured.setdefault("mask", kwargs["encoder_attention_mask"])

    handle = pipe.unet.register_forward_pre_hook(unet_input, with_kwargs=True)
    sample(pipe, prompt=prompts, guidance_scale=3.0)
    handle.remove()
    length = captured["states"].shape[1]
    assert length < hidden.shape[1]
    torch.testing.assert_close(captured["mask"], mask[:, :length])
    real = mask[:, :length].bool()
    torch.testing.assert_close(captured["states"][real], hidden[:, :length][real], atol=1e-5, rtol=0)
    assert cached.shape == (2, 16, 16, 3)


def test_sampling_runs_in_inference_mode(text_pipe):
    seen = []
    hook = lambda m, a, out: seen.append(torch.is_inference_mode_enabled())  # noqa: E731
    handle = text_pipe.unet.register_forward_hook(hook)
    sample(text_pipe, prompt="cat face", steps=2)
    handle.remove()
    assert seen and all(seen)
