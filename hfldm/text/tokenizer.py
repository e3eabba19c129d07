"""A WordPiece tokenizer trained on the dataset's own captions (the LDM text-to-image setup, Sec. 4.3.1).

LDM trains its transformer τ_θ from scratch together with the U-Net; the vocabulary is then small and fitted
to the captions. The result is a `transformers` fast tokenizer, so `save_pretrained` / `from_pretrained`
and the pipeline's `model_index.json` treat it like any other tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

# special tokens, in the order of their ids: [PAD] = 0 so that zero-padding is padding
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]


def train_caption_tokenizer(
    captions: Iterable[str], vocab_size: int = 1000, model_max_length: int = 32
) -> PreTrainedTokenizerFast:
    """Train a lower-cased WordPiece tokenizer on `captions`.

    Returns a `PreTrainedTokenizerFast` that wraps every text as `[CLS] ... [SEP]`, pads with `[PAD]` (id 0)
    and truncates to `model_max_length` tokens. Its vocabulary holds at most `vocab_size` entries.
    """
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ValueError(f"vocab_size must be at least {len(SPECIAL_TOKENS) + 1}, got {vocab_size}")
    if model_max_length < 3:
        raise ValueError(f"model_max_length must be at least 3 ([CLS] token [SEP]), got {model_max_length}")
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS)
    tokenizer.train_from_iterator(list(captions), trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_max_length=model_max_length,
        padding_side="right",
    )
