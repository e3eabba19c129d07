"""Which held-out emoji are only skin-tone variants of training emoji (the rule every hfldm report uses).

About half of the emoji test split are skin-tone variants ("man technologist: dark skin tone") of emoji whose
other tones are in train; retrieving them is easier than retrieving a truly unseen emoji, so results are
reported on all test rows and on the rows that are *not* such variants.
"""

from __future__ import annotations

SKIN_TONE = "skin tone"


def base_name(caption: str) -> str:
    """The CLDR name with its skin-tone qualifiers removed.

    "man technologist: dark skin tone" -> "man technologist"; "woman: light skin tone, blond hair" ->
    "woman: blond hair"; "handshake: light skin tone, dark skin tone" -> "handshake"; names without a
    skin tone are returned unchanged.
    """
    if ":" not in caption:
        return caption
    head, qualifiers = caption.split(":", 1)
    kept = [q.strip() for q in qualifiers.split(",") if not q.strip().endswith(SKIN_TONE)]
    return f"{head}: {', '.join(kept)}" if kept else head


def is_skin_tone_variant(caption: str, train_base_names: set[str]) -> bool:
    """True iff `caption` names a skin tone and its `base_name` is the base name of some training caption."""
    return SKIN_TONE in caption and base_name(caption) in train_base_names


def skin_tone_variant_mask(test_captions: list[str], train_captions: list[str]) -> list[bool]:
    """Returns, for each test caption, whether it is a skin-tone variant of an emoji in `train_captions`."""
    if isinstance(test_captions, str) or isinstance(train_captions, str):
        raise ValueError("test_captions, train_captions: expected lists of strings")
    train_base_names = {base_name(c) for c in train_captions}
    return [is_skin_tone_variant(c, train_base_names) for c in test_captions]
