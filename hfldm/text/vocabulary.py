"""The names a text model was trained on, and how far a prompt is from them.

A model folder may hold `vocabulary.txt`: one training caption a line (for the emoji models, the CLDR names
of the train split; `training/export_model.py --data` writes it). A prompt that is one of them is what the
model draws best; another prompt is compared with them by τ_θ itself: cosine similarity of the mean of its
token embeddings (the same encoder the U-Net attends to), and the nearest names are suggested.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

VOCABULARY_FILE = "vocabulary.txt"
FAR_BELOW = 0.95  # cosine similarity under which a prompt counts as far from every trained name
CHUNK = 256  # names per τ_θ call: sorted by length, so padding stays short


def normalise(text: str) -> str:
    """Lower case, single spaces: 'Grinning  Face ' and 'grinning face' are the same name."""
    return " ".join(text.lower().split())


def read_vocabulary(folder: str | Path) -> list[str]:
    """The names in `folder`/vocabulary.txt, in file order ([] when the folder has none)."""
    path = Path(folder) / VOCABULARY_FILE
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_vocabulary(folder: str | Path, names: list[str]) -> Path:
    """`folder`/vocabulary.txt with the distinct `names`, sorted; returns its path."""
    path = Path(folder) / VOCABULARY_FILE
    path.write_text("\n".join(sorted(set(names))) + "\n", encoding="utf-8")
    return path


@torch.inference_mode()
def mean_embeddings(tokenizer, text_encoder, texts: list[str]) -> torch.Tensor:
    """Unit-norm mean of τ_θ's token embeddings over each text's real tokens -> (N, D) float32."""
    from hfldm.text.encoder import encode_text

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.empty(0)
    for start in range(0, len(order), CHUNK):
        batch = [texts[i] for i in order[start : start + CHUNK]]
        hidden, mask = encode_text(tokenizer, text_encoder, batch, text_encoder.device, True, "longest")
        weights = mask.unsqueeze(-1).float()  # (B, L) -> (B, L, 1)
        means = (hidden.float() * weights).sum(1) / weights.sum(1)  # (B, L, D) -> (B, D)
        out = torch.cat([out, torch.nn.functional.normalize(means, dim=-1)])
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
    return out[inverse]


@dataclass
class Nearness:
    prompt: str
    known: bool  # one of the names (after `normalise`)
    similarity: float  # cosine similarity to the nearest name (1.0 when known)
    nearest: list[str]  # the nearest names, nearest first

    @property
    def far(self) -> bool:
        return not self.known and self.similarity < FAR_BELOW

    def warning(self) -> str:
        """One line for a far prompt."""
        names = ", ".join(repr(n) for n in self.nearest)
        return (
            f"warning: {self.prompt!r} is far from the names this model was trained on (τ_θ similarity "
            f"{self.similarity:.2f}); it draws known names best, the nearest are {names}"
        )


def nearness(tokenizer, text_encoder, prompts: list[str], names: list[str], k: int = 3) -> list[Nearness]:
    """How near each prompt is to `names`; τ_θ runs only when some prompt is not a name itself."""
    known = {normalise(n) for n in names}
    unknown = [p for p in dict.fromkeys(prompts) if normalise(p) not in known]
    found = {p: Nearness(p, True, 1.0, [p]) for p in prompts if normalise(p) in known}
    if unknown and names:
        similarity = (
            mean_embeddings(tokenizer, text_encoder, unknown)
            @ mean_embeddings(tokenizer, text_encoder, names).T
        )  # (prompts, names)
        values, indices = similarity.topk(min(k, len(names)), dim=1)
        for p, v, i in zip(unknown, values, indices, strict=True):
            found[p] = Nearness(p, False, float(v[0]), [names[j] for j in i.tolist()])
    return [found[p] for p in prompts if p in found]


# names of the emoji train split that the shipped model draws recognisably (the demo's and the Space's
# "known" examples; a model whose vocabulary lacks them shows none)
KNOWN_EXAMPLES = [
    "smiling cat with heart-eyes",
    "grinning face",
    "red apple",
    "pizza",
    "rocket",
    "fire",
    "ghost",
    "red heart",
    "face with tears of joy",
    "loudly crying face",
    "dog face",
    "evergreen tree",
    "sun",
    "rainbow",
    "alien",
    "banana",
]


def known_examples(names: list[str], count: int) -> list[str]:
    """The first `count` of KNOWN_EXAMPLES that are in `names`."""
    vocabulary = set(names)
    return [n for n in KNOWN_EXAMPLES if n in vocabulary][:count]
