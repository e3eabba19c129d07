"""Text–image scores of a `TextImageModel`: a CLIP-score and caption retrieval accuracy.

CLIP-score (Hessel et al. 2021, with w = 1): 100 * max(cos(E_I(image), E_T(caption)), 0), averaged over pairs.
Retrieval: for each image, rank all distinct candidate captions by cosine similarity; top-k accuracy is the
fraction of images whose own caption is among the k best. Chance is k / (number of distinct captions).
"""

from __future__ import annotations

import torch

from hfldm.eval.features import to_unit_range


def _check_pairs(images: torch.Tensor, captions: list[str]) -> None:
    if isinstance(captions, str) or len(images) != len(captions):
        raise ValueError(f"captions: expected a list of {len(images)} strings, one per image")


@torch.no_grad()
def clip_score(
    model, images: torch.Tensor, captions: list[str], value_range: tuple[float, float] = (0.0, 1.0)
) -> float:
    """Mean over pairs of 100 * max(cos(image_i, caption_i), 0); images (N, 3, H, W) in `value_range`."""
    _check_pairs(images, captions)
    cosine = (model.image_embeds(to_unit_range(images, value_range)) * model.encode_text(captions)).sum(-1)
    return float((100 * cosine).clamp(min=0).mean())


def retrieval_from_embeddings(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    targets: torch.Tensor | None = None,
    k: tuple[int, ...] = (1, 5),
) -> dict:
    """Top-k caption retrieval from embeddings.

    image_embeds: (N, D), text_embeds: (M, D) (cosine similarity is used, so any norm), targets: (N,) index of
    each image's caption in text_embeds (default: arange(N), i.e. M = N and pair i matches i).
    Returns {"top{k}": accuracy, "chance_top{k}": min(k, M) / M} for each k, with "num_images": N and
    "num_captions": M.
    """
    if image_embeds.ndim != 2 or text_embeds.ndim != 2 or image_embeds.shape[1] != text_embeds.shape[1]:
        raise ValueError(
            f"text_embeds: expected (M, D) matching image_embeds (N, D), got {tuple(text_embeds.shape)} "
            f"and {tuple(image_embeds.shape)}"
        )
    n, m = len(image_embeds), len(text_embeds)
    targets = torch.arange(n) if targets is None else torch.as_tensor(targets).long()
    if targets.shape != (n,) or (n and (targets.min() < 0 or targets.max() >= m)):
        raise ValueError(f"targets: expected {n} indices in [0, {m})")
    similarity = torch.nn.functional.normalize(image_embeds.float(), dim=-1) @ (
        torch.nn.functional.normalize(text_embeds.float(), dim=-1).T
    )
    # rank of the right caption = number of other captions scored at least as high (ties count against it)
    right = similarity.gather(1, targets[:, None].to(similarity.device))
    rank = (similarity >= right).sum(dim=1) - 1
    result = {}
    for top in k:
        result[f"top{top}"] = float((rank < top).float().mean())
        result[f"chance_top{top}"] = min(top, m) / m
    return {**result, "num_images": n, "num_captions": m}


@torch.no_grad()
def retrieval_accuracy(
    model,
    images: torch.Tensor,
    captions: list[str],
    k: tuple[int, ...] = (1, 5),
    value_range: tuple[float, float] = (0.0, 1.0),
    candidates: list[str] | None = None,
) -> dict:
    """Top-k accuracy of finding each image's caption among the M distinct candidate captions.

    images: (N, 3, H, W) in `value_range`; captions: N strings; candidates: the pool to rank (default: the
    distinct `captions`; it must contain every caption). Returns the dict of `retrieval_from_embeddings`
    (top1, top5, chance_top1 = 1/M, chance_top5 = 5/M, num_images, num_captions).
    """
    _check_pairs(images, captions)
    candidates = list(dict.fromkeys(captions if candidates is None else candidates))  # distinct, in order
    if missing := set(captions) - set(candidates):
        raise ValueError(f"candidates: missing {len(missing)} of the captions, e.g. {sorted(missing)[0]!r}")
    position = {caption: i for i, caption in enumerate(candidates)}
    targets = torch.tensor([position[c] for c in captions])
    image_embeds = model.image_embeds(to_unit_range(images, value_range))
    return retrieval_from_embeddings(image_embeds, model.encode_text(candidates), targets, k)
