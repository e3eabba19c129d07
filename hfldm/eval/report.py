"""The evaluation report of a trained LatentDiffusionPipeline: samples, their figures, the real references.

An `EvalSet` holds the held-out rows (the conditions and the real images) and the reference (training)
images (`hfldm.commands.eval.load_eval_set` reads one from a dataset); `generate_images` samples one
image per held-out row; `evaluate` puts the figures side by side:

- FID / KID of the samples against the held-out real images and against the training images, each beside a
  real-vs-real floor of the same set sizes (held-out real against training real);
- for text models: CLIP-score and caption retrieval of the samples among all held-out captions, beside the
  real held-out images' (the ceiling) and chance; on all rows and, where some held-out captions are only
  skin-tone variants of training emoji (`hfldm.eval.subsets`), on the rows that are not;
- the autoencoder's reconstructions of the held-out real images: PSNR, SSIM, rFID, VQ codebook usage.

All images are float tensors (N, 3, R, R) in [0, 1]. `markdown_table` renders a report as Markdown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from hfldm.autoencoders.latent_space import latent_space
from hfldm.eval.fid import compute_fid_kid
from hfldm.eval.reconstruction import codebook_usage, psnr, rfid, ssim
from hfldm.eval.retrieval import clip_score, retrieval_accuracy
from hfldm.eval.subsets import skin_tone_variant_mask

KID_SUBSET_SIZE = 100  # KID subsets of at most this many images (fewer when a set is smaller)
FLOOR_SEED = 0  # which training images make the N-vs-N floor; fixed, so floors do not move with --seed


@dataclass
class EvalSet:
    """The held-out rows to condition on and compare with, and the reference (training) images."""

    test_images: torch.Tensor  # (N, 3, R, R) in [0, 1], the first N held-out rows
    train_images: torch.Tensor  # (M, 3, R, R) in [0, 1], the reference rows
    conditioning: str  # "text", "class" or "unconditional"
    captions: list[str] | None = None  # N captions (text models)
    candidates: list[str] | None = None  # every held-out caption: the retrieval candidates
    train_captions: list[str] | None = None  # M captions, for the skin-tone rule
    class_labels: list[int] | None = None  # N class indices of the pipeline (class models)
    grid_captions: list[str] | None = None  # N captions under the samples of the grid


def subsets(data: EvalSet) -> dict[str, torch.Tensor]:
    """{"all": all N rows} and, for text models whose held-out captions include skin-tone variants of
    training captions, {"not_skin_tone_variant": the other rows}: boolean masks of shape (N,)."""
    masks = {"all": torch.ones(len(data.test_images), dtype=torch.bool)}
    if data.conditioning == "text":
        variant = torch.tensor(skin_tone_variant_mask(data.captions, data.train_captions), dtype=torch.bool)
        if variant.any() and (~variant).sum() >= 2:
            masks["not_skin_tone_variant"] = ~variant
    return masks


def image_generators(seed: int, indices: range) -> list[torch.Generator]:
    """One CPU generator per sample, seeded by (seed, sample index): the numbers do not depend on the batch
    size, and two seeds share no sample."""
    states = (np.random.SeedSequence([seed, i]).generate_state(1)[0] for i in indices)
    return [torch.Generator().manual_seed(int(s)) for s in states]


@torch.no_grad()
def generate_images(
    pipe, data: EvalSet, steps: int, guidance_scale: float, seed: int, batch_size: int, progress: bool = True
) -> tuple[torch.Tensor, float]:
    """One sample per held-out row (its caption or class; none for unconditional models).

    Returns (images (N, 3, R, R) float32 in [0, 1], seconds spent sampling).
    """
    n, chunks = len(data.test_images), []
    pipe.set_progress_bar_config(disable=True)  # one bar over all samples instead of one per batch
    start = time.perf_counter()
    with tqdm(total=n, desc="sampling", unit="img", disable=not progress) as bar:
        for first in range(0, n, batch_size):
            rows = range(first, min(first + batch_size, n))
            condition: dict = {"num_images_per_prompt": len(rows)}
            if data.conditioning == "text":
                condition = {"prompt": [data.captions[i] for i in rows]}
            elif data.conditioning == "class":
                condition = {"class_labels": [data.class_labels[i] for i in rows]}
            out = pipe(
                **condition,
                num_inference_steps=steps,
                guidance_scale=guidance_scale,
                generator=image_generators(seed, rows),
                output_type="pt",
            )
            chunks.append(out.images.float().cpu())
            bar.update(len(rows))
    return torch.cat(chunks), time.perf_counter() - start


def fid_figures(generated: torch.Tensor, data: EvalSet, keep: torch.Tensor, features) -> dict:
    """FID / KID dicts (`compute_fid_kid`) of the rows in `keep` (N,) bool:

    generated_vs_test (n samples against their n held-out real rows) with floor_vs_test (n random training
    images against the same n held-out rows), and generated_vs_train (against the M training images) with
    floor_vs_train (the n held-out real rows against the M training images).
    """
    fake, test, train = generated[keep], data.test_images[keep], data.train_images
    subset = min(KID_SUBSET_SIZE, len(fake), len(train))
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(FLOOR_SEED))[: len(test)]

    def fid(real: torch.Tensor, other: torch.Tensor) -> dict:
        return compute_fid_kid(real, other, features, kid_subset_size=subset)

    return {
        "generated_vs_test": fid(test, fake),
        "floor_vs_test": fid(test, train[pick]),
        "generated_vs_train": fid(train, fake),
        "floor_vs_train": fid(train, test),
    }


def text_image_figures(model, generated: torch.Tensor, data: EvalSet, keep: torch.Tensor) -> dict:
    """CLIP-score and retrieval (among all held-out captions) of the kept samples ("generated") and of their
    real held-out images ("real", the ceiling); "chance" holds the top-k accuracies of a random ranking."""
    captions = [c for c, k in zip(data.captions, keep.tolist()) if k]
    figures = {}
    for name, images in (("generated", generated[keep]), ("real", data.test_images[keep])):
        retrieval = retrieval_accuracy(model, images, captions, candidates=data.candidates)
        figures[name] = {
            "clip_score": clip_score(model, images, captions),
            "top1": retrieval["top1"],
            "top5": retrieval["top5"],
        }
    figures["chance"] = {"top1": retrieval["chance_top1"], "top5": retrieval["chance_top5"]}
    return figures | {"num_captions": retrieval["num_captions"]}


@torch.no_grad()
def reconstruct(vae, images: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """D(E(x)) of [0, 1] images (N, 3, R, R): KL through the posterior mean, VQ through the quantiser.

    Returns (reconstructions (N, 3, R, R) in [0, 1], VQ code indices (N, h, w) or None for KL).
    """
    ae, outputs, codes = latent_space(vae), [], []
    for x in images.split(batch_size):
        z = ae.latents(2 * x - 1)  # [0, 1] -> [-1, 1], the autoencoder's range; the posterior mean for KL
        if ae.codebook_size is not None:
            codes.append(ae.codebook_indices(z).cpu())
        outputs.append(((ae.decode_latents(z).float().cpu() + 1) / 2).clamp(0, 1))
    return torch.cat(outputs), (torch.cat(codes) if codes else None)


def reconstruction_figures(vae, images: torch.Tensor, features, batch_size: int = 64) -> dict:
    """PSNR (dB), SSIM, rFID / rKID (`rfid`) of the autoencoder on [0, 1] images (N, 3, R, R), and for a VQ
    autoencoder its codebook usage (`codebook_usage`) under "codebook" (None for KL)."""
    x_hat, codes = reconstruct(vae, images, batch_size)
    subset = min(KID_SUBSET_SIZE, len(images))
    return {
        "psnr": psnr(x_hat, images),
        "ssim": ssim(x_hat, images),
        "rfid": rfid(x_hat, images, features, kid_subset_size=subset),
        "codebook": codebook_usage(codes, latent_space(vae).codebook_size) if codes is not None else None,
    }


def evaluate(generated: torch.Tensor, data: EvalSet, text_image_model, features) -> dict:
    """{subset name: {"num_images", "fid": fid_figures, "text_image": text_image_figures or None}} for each
    of `subsets(data)`; text–image figures only for text models."""
    figures = {}
    for name, keep in subsets(data).items():
        text = data.conditioning == "text"
        figures[name] = {
            "num_images": int(keep.sum()),
            "fid": fid_figures(generated, data, keep, features),
            "text_image": text_image_figures(text_image_model, generated, data, keep) if text else None,
        }
    return figures


SUBSET_NAMES = {"all": "all", "not_skin_tone_variant": "not skin-tone variants"}


def _fid_cell(result: dict) -> str:
    return f"{result['fid']:.4g}"


def _kid_cell(result: dict) -> str:
    return f"{result['kid_mean']:.4g} ± {result['kid_std']:.2g}"


def _rows(name: str, figures: dict) -> list[tuple[str, ...]]:
    """Table rows (figure, subset, generated, real reference, chance) of one subset."""
    subset, fid = f"{SUBSET_NAMES.get(name, name)} ({figures['num_images']})", figures["fid"]
    rows = []
    for against, label in (("test", "held-out real"), ("train", "training real")):
        generated, floor = fid[f"generated_vs_{against}"], fid[f"floor_vs_{against}"]
        sizes = f"{floor['num_real']} vs {floor['num_fake']}"
        rows.append(
            (f"FID vs {label}", subset, _fid_cell(generated), f"{_fid_cell(floor)} (floor, {sizes})", "")
        )
        rows.append((f"KID vs {label}", subset, _kid_cell(generated), f"{_kid_cell(floor)} (floor)", ""))
    if text := figures["text_image"]:
        generated, real, chance = text["generated"], text["real"], text["chance"]
        score = f"{real['clip_score']:.2f} (ceiling)"
        rows.append(("CLIP-score", subset, f"{generated['clip_score']:.2f}", score, ""))
        for k in ("top1", "top5"):
            label = f"retrieval top-{k[3:]} among {text['num_captions']} captions"
            cells = (
                f"{100 * generated[k]:.1f} %",
                f"{100 * real[k]:.1f} % (ceiling)",
                f"{100 * chance[k]:.2f} %",
            )
            rows.append((label, subset, *cells))
    return rows


def _reconstruction_rows(figures: dict) -> list[tuple[str, str]]:
    rows = [
        ("PSNR", f"{figures['psnr']:.2f} dB"),
        ("SSIM", f"{figures['ssim']:.4f}"),
        ("rFID", f"{figures['rfid']['fid']:.4g}"),
        ("rKID", _kid_cell(figures["rfid"])),
    ]
    if codebook := figures["codebook"]:
        rows.append(("codebook perplexity", f"{codebook['perplexity']:.1f}"))
        rows.append(("codebook usage", f"{codebook['used_codes']} codes ({100 * codebook['usage']:.1f} %)"))
    return rows


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


# below this many samples FID / KID / retrieval figures are noisy: generated images can "beat" the real ones
SMALL_SAMPLE = 200


def small_sample_caveat(num_samples: int) -> str | None:
    """A one-line caveat for reports of fewer than SMALL_SAMPLE samples, else None."""
    if num_samples >= SMALL_SAMPLE:
        return None
    return (
        f"Caveat: {num_samples} samples (< {SMALL_SAMPLE}): FID, KID and retrieval are noisy at this size "
        "(KID can be negative, generated images can score past the real reference); compare runs only at "
        f"{SMALL_SAMPLE}+ samples, e.g. the 374 of the emoji test split."
    )


def markdown_table(report: dict) -> str:
    """The report as Markdown: a settings line, a small-sample caveat where it applies, the sample figures
    table, the reconstruction table."""
    s = report["settings"]
    lines = [
        f"**{report['model']}** ({report['conditioning']}) on {report['dataset']} [{report['split']}], "
        f"{report['num_samples']} samples, {s['scheduler']} {s['steps']} steps, "
        f"guidance {s['guidance_scale']}, seed {s['seed']}; "
        f"feature network `{report['feature_network']['name']}`",
        "",
    ]
    if caveat := small_sample_caveat(report["num_samples"]):
        lines += [f"**{caveat}**", ""]
    rows = [row for name, figures in report["samples"].items() for row in _rows(name, figures)]
    lines += _table(("figure", "subset (images)", "generated", "real reference", "chance"), rows)
    lines += ["", f"Autoencoder on the {report['num_samples']} held-out real images:", ""]
    lines += _table(("figure", "value"), _reconstruction_rows(report["reconstruction"]))
    return "\n".join(lines) + "\n"
