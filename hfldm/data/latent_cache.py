"""Encode a dataset once with a frozen autoencoder (and a frozen text encoder) and train from the cache.

LDM trains the diffusion model on z ~ q(z|x) = N(mean, std^2) of a fixed autoencoder (Sec. 3.2), so the
cache stores the posterior's `latent_mean` and `latent_std` (each (c, h, w)), not one sample: training
draws z = mean + std * eps afresh every step (`sample_latents`). With a frozen τ_θ it also stores
`encoder_hidden_states` (L, D) and `attention_mask` (L,) of each caption, and the "" embedding in
uncond.safetensors for classifier-free guidance dropout.

Folder layout: a `save_to_disk` Dataset + cache_info.json + (with a text encoder) uncond.safetensors.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import datasets
import torch
from safetensors.torch import load_file, save_file

from hfldm.atomic import atomic_path
from hfldm.autoencoders.latent_space import latent_space
from hfldm.data.arguments import DataArguments
from hfldm.data.loader import load_image_dataset, make_dataloader

INFO_FILE = "cache_info.json"
UNCOND_FILE = "uncond.safetensors"


def load_text_encoder(source: str | Path) -> tuple:
    """(tokenizer, frozen text encoder): "minilm" for the packaged MiniLM, else `hfldm.text.pretrained`'s
    (a transformers folder or Hub id, or a pipeline folder with tokenizer/ and text_encoder/)."""
    if str(source).lower() == "minilm":
        from hfldm.text import load_minilm

        return load_minilm()
    from hfldm.text.pretrained import load_text_encoder as load_pretrained

    return load_pretrained(str(source), "--text_encoder")


def _features(vae, resolution: int, uncond: dict | None, label_names: list[str] | None) -> datasets.Features:
    """The cache's columns."""
    latent_shape = latent_space(vae).latent_shape(resolution)
    features = {
        "latent_mean": datasets.Array3D(latent_shape, "float32"),
        "latent_std": datasets.Array3D(latent_shape, "float32"),
        "text": datasets.Value("string"),
        "labels": datasets.ClassLabel(names=label_names) if label_names else datasets.Value("int64"),
    }
    if uncond is not None:
        length, width = uncond["encoder_hidden_states"].shape
        features["encoder_hidden_states"] = datasets.Array2D((length, width), "float32")
        features["attention_mask"] = datasets.List(datasets.Value("int64"), length=length)
    return datasets.Features(features)


@torch.no_grad()
def _rows(loader, vae, text_model, features: datasets.Features) -> Iterator[dict]:
    """Yields one cache row per image of `loader`."""
    from hfldm.text import encode_text

    device, ae = next(vae.parameters()).device, latent_space(vae)
    for batch in loader:
        mean, std = ae.latent_moments(batch["pixel_values"])  # q(z|x); std = 0 for VQ
        columns = {"latent_mean": mean, "latent_std": std}
        if text_model is not None:
            hidden_states, mask = encode_text(*text_model, batch["text"], device=device)
            columns.update(encoder_hidden_states=hidden_states, attention_mask=mask)
        columns = {
            k: v.float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy()
            for k, v in columns.items()
        }
        size = len(batch["pixel_values"])
        columns["text"] = batch.get("text", [""] * size)
        columns["labels"] = batch["labels"].tolist() if "labels" in batch else [-1] * size
        for i in range(size):
            yield {name: columns[name][i] for name in features}


def cache_latents(
    data: DataArguments,
    vae: torch.nn.Module,
    out: str | Path,
    text_model: tuple | None = None,
    batch_size: int = 32,
) -> datasets.Dataset:
    """Encodes every readable image of `data` once; saves and returns the cache Dataset (torch format).

    text_model: (tokenizer, frozen text encoder), or None to cache images only. `labels` is -1 without a
    label column, `text` "" without a caption column.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"out: {out} exists and is not empty")
    if text_model is not None and data.caption_column is None:
        raise ValueError("caption_column: a text encoder needs captions; set caption_column")
    dataset, report = load_image_dataset(data)
    uncond = None
    if text_model is not None:
        from hfldm.text import encode_text

        with torch.no_grad():
            hidden_states, mask = encode_text(*text_model, [""], device=next(vae.parameters()).device)
        uncond = {"encoder_hidden_states": hidden_states[0].float().cpu(), "attention_mask": mask[0].cpu()}
    features = _features(vae, data.resolution, uncond, report.label_names)
    loader = make_dataloader(dataset, batch_size, shuffle=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    # written under a temporary name, renamed when complete (hfldm.atomic): a killed run leaves no cache
    with atomic_path(out, "out") as staging, tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        cache = datasets.Dataset.from_generator(
            _rows,
            features=features,
            cache_dir=tmp,
            fingerprint=uuid.uuid4().hex,
            gen_kwargs={"loader": loader, "vae": vae, "text_model": text_model, "features": features},
        )
        cache.save_to_disk(str(staging))
        if uncond is not None:
            save_file({k: v.contiguous() for k, v in uncond.items()}, str(staging / UNCOND_FILE))
        write_info(
            staging, cache=cache, features=features, vae=vae, text_model=text_model, report=report, data=data
        )
    return load_latent_cache(out)


def write_info(folder: Path, *, cache, features, vae, text_model, report, data) -> None:
    """folder/cache_info.json: what the cache holds and how it was made; written last, the loaders need it."""
    info = {
        "num_rows": len(cache),
        "latent_shape": list(features["latent_mean"].shape),
        "vae_class": type(vae).__name__,
        "text_encoder": type(text_model[1]).__name__ if text_model else None,
        "skipped": report.skipped,
        "empty_captions": len(report.empty_captions),
        "data": dataclasses.asdict(data),
    }
    (folder / INFO_FILE).write_text(json.dumps(info, indent=2))


def load_latent_cache(path: str | Path) -> datasets.Dataset:
    """Returns the cache as a torch-format Dataset: rows of latent_mean, latent_std (c, h, w) float32,
    labels, text and, when cached, encoder_hidden_states (L, D) and attention_mask (L,)."""
    path = Path(path)
    if not (path / INFO_FILE).is_file():
        raise FileNotFoundError(f"cached_latents: {path} is not a latent cache (no {INFO_FILE})")
    return datasets.load_from_disk(str(path)).with_format("torch")


def load_uncond_embedding(path: str | Path) -> dict[str, torch.Tensor] | None:
    """Returns {"encoder_hidden_states": (L, D), "attention_mask": (L,)} of the "" prompt, or None."""
    file = Path(path) / UNCOND_FILE
    return load_file(str(file)) if file.is_file() else None


def sample_latents(batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
    """Returns z = mean + std * eps, eps ~ N(0, I): a draw from q(z|x) (reparameterisation), (B, c, h, w)."""
    mean, std = batch["latent_mean"], batch["latent_std"]
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + std * eps
