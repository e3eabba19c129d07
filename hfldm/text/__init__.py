"""τ_θ: text encoders and tokenizers for the conditional U-Net."""

from .encoder import MAX_TEXT_LENGTH, encode_text, make_text_encoder, text_max_length
from .minilm import MINILM_HIDDEN_SIZE, load_minilm
from .tokenizer import train_caption_tokenizer

__all__ = [
    "MAX_TEXT_LENGTH",
    "MINILM_HIDDEN_SIZE",
    "encode_text",
    "load_minilm",
    "make_text_encoder",
    "text_max_length",
    "train_caption_tokenizer",
]
