"""Inpainting on the held-out emoji (LDM §4.5): the inpainting LDM against what a user has without it.

    python benchmarks/inpaint_eval.py --model models/hfldm-emoji-inpaint --text-model models/hfldm-emoji \
        --dataset data/emoji/32 --out docs/inpaint

Every held-out image x gets its held-out mask m (`hfldm.data.masks.held_out_masks`, seed 0: rectangles and
strokes over 10–60 % of the image; saved as OUT_masks.npz) and its caption as the prompt. Methods:
- the inpainting LDM, with its caption (DDIM, guidance w), kept pixels pasted back;
- the text model through image-to-image (SDEdit) on the masked image x ⊙ (1 − m) (grey where masked), the
  same paste-back: at strength 0.8 and at 1.0 (which is text-to-image pasted into the hole);
- a classical fill: OpenCV's Telea inpainting (radius 3) when opencv is installed, else the kept pixels'
  mean colour;
- the real image (the ceiling / floor).
Reported: PSNR inside the mask (against x), PSNR outside the mask without paste-back for the LDM (what its
autoencoder keeps; every pasted method is exact there), FID / KID with `hfldm eval`'s feature network at
32 px against the unpaired training images (the real held-out row is the floor), and caption retrieval
(top-1 / top-5 among the distinct held-out captions) by the same text–image model. Writes OUT.json,
OUT.md (the table), OUT.png (16 images: masked | LDM | img2img 0.8 | Telea | real).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from hfldm.commands.eval import load_feature_model
from hfldm.data.masks import held_out_masks
from hfldm.eval.emoji_split import load_emoji_split
from hfldm.eval.fid import compute_fid_kid
from hfldm.eval.outputs import output_file, run_benchmark
from hfldm.eval.retrieval import clip_score, retrieval_accuracy
from hfldm.pipelines.loading import load_pipeline
from hfldm.pipelines.pipeline_latent_diffusion_inpaint import LatentDiffusionInpaintPipeline
from hfldm.resources import bundled
from hfldm.training.inpaint import masked_psnr
from hfldm.training.validation import comparison_grid
from hfldm.unets.inpaint_condition import masked_image


def paste(filled: torch.Tensor, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """m ⊙ filled + (1 − m) ⊙ x."""
    return torch.where(masks.bool(), filled, x)


def generators(seed: int, start: int, n: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + start + i) for i in range(n)]


@torch.no_grad()
def ldm_inpaint(pipe, x, masks, captions, steps, guidance, seed, batch_size) -> torch.Tensor:
    """The inpainting LDM's images in [0, 1], without paste-back (pasted by the caller)."""
    out = []
    for s in range(0, len(x), batch_size):
        b = slice(s, s + batch_size)
        images = pipe(
            captions[b],
            image=x[b],
            mask_image=masks[b],
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=generators(seed, s, len(x[b])),
            paste_back=False,
            output_type="pt",
        ).images
        out.append(images.float().cpu())
    return torch.cat(out)


@torch.no_grad()
def img2img(text, x, masks, captions, steps, guidance, strength, seed, batch_size) -> torch.Tensor:
    """The text model's SDEdit of the masked image x ⊙ (1 − m) (grey holes), in [0, 1], not yet pasted."""
    grey_holes = (masked_image(x * 2 - 1, masks) + 1) / 2
    out = []
    for s in range(0, len(x), batch_size):
        b = slice(s, s + batch_size)
        images = text(
            captions[b],
            image=grey_holes[b],
            strength=strength,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=generators(seed, s, len(x[b])),
            output_type="pt",
        ).images
        out.append(images.float().cpu())
    return torch.cat(out)


def classical_fill(x: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, str]:
    """(x with the holes filled, the method's name): OpenCV's Telea, or the kept pixels' mean colour."""
    try:
        import cv2
    except ImportError:
        keep = 1 - masks
        mean = (x * keep).sum((2, 3), keepdim=True) / keep.sum((2, 3), keepdim=True).clamp_min(1)
        return paste(mean.expand_as(x), x, masks), "mean colour of the kept pixels"
    filled = []
    for image, mask in zip(x, masks):
        pixels = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        hole = (mask[0].numpy() * 255).astype(np.uint8)
        filled.append(torch.from_numpy(cv2.inpaint(pixels, hole, 3, cv2.INPAINT_TELEA)).permute(2, 0, 1))
    return torch.stack(filled).float() / 255, f"OpenCV Telea (cv2 {cv2.__version__}, radius 3)"


def scores(images, x, masks, captions, candidates, reference, model, features) -> dict:
    fid = compute_fid_kid(reference, images, features, kid_subset_size=min(100, len(x)))
    retrieval = retrieval_accuracy(model, images, captions, candidates=candidates)
    return {
        "psnr_inside": masked_psnr(images * 2 - 1, x * 2 - 1, masks),
        "fid": fid["fid"],
        "kid": fid["kid_mean"],
        "clip_score": clip_score(model, images, captions),
        "top1": retrieval["top1"],
        "top5": retrieval["top5"],
        "chance_top5": retrieval["chance_top5"],
        "feature_network": fid["feature_network"],
    }


def table(results: dict, header: str) -> str:
    lines = [
        header,
        "",
        "| method | PSNR in mask (dB) ↑ | PSNR outside, no paste (dB) ↑ | FID ↓ | KID ↓ | CLIP-score ↑ "
        "| top-1 ↑ | top-5 ↑ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        outside = f"{r['psnr_outside']:.2f}" if "psnr_outside" in r else "exact (pasted)"
        inside = "∞" if r["psnr_inside"] == float("inf") else f"{r['psnr_inside']:.2f}"
        cells = [
            inside,
            outside,
            f"{r['fid']:.2f}",
            f"{r['kid']:.4f}",
            f"{r['clip_score']:.2f}",
            f"{r['top1']:.3f}",
            f"{r['top5']:.3f}",
        ]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=str(bundled("hfldm-emoji-inpaint")), help="inpainting pipeline")
    parser.add_argument("--text-model", default=str(bundled("hfldm-emoji")), help="the img2img baseline's")
    parser.add_argument("--dataset", default="data/emoji/32")
    parser.add_argument("--num-images", type=int, default=None, help="first N held-out images (default all)")
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps of both LDMs")
    parser.add_argument("--guidance-scale", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--feature-model", default="models/hfldm-textimage")
    parser.add_argument("--out", default="docs/inpaint", help="writes OUT.json, OUT.md, OUT.png")
    args = parser.parse_args()

    split = load_emoji_split(args.dataset)
    test, reference = split["test"], split["train"].images
    n = min(args.num_images or len(test.images), len(test.images))
    x, captions = test.images[:n], test.captions[:n]
    candidates = sorted(set(test.captions))
    masks = held_out_masks(n, x.shape[-2], x.shape[-1], seed=0)
    pipe = load_pipeline(args.model, "--model", pipeline_class=LatentDiffusionInpaintPipeline)
    text = load_pipeline(args.text_model, "--text-model")
    for p in (pipe, text):
        p.set_progress_bar_config(disable=True)
    common = dict(steps=args.steps, guidance=args.guidance_scale, seed=args.seed, batch_size=args.batch_size)
    start = time.perf_counter()
    raw = ldm_inpaint(pipe, x, masks, captions, **common)
    seconds = (time.perf_counter() - start) / n
    classical, classical_name = classical_fill(x, masks)
    methods = {
        f"inpainting LDM ({args.steps} DDIM steps, w = {args.guidance_scale})": paste(raw, x, masks),
        "text model img2img on the masked image, strength 0.8, pasted": paste(
            img2img(text, x, masks, captions, strength=0.8, **common), x, masks
        ),
        "text model img2img, strength 1.0 (text-to-image), pasted": paste(
            img2img(text, x, masks, captions, strength=1.0, **common), x, masks
        ),
        f"classical: {classical_name}": classical,
        "real held-out x": x,
    }
    model, features = load_feature_model(args.feature_model)
    results = {
        name: scores(images, x, masks, captions, candidates, reference, model, features)
        for name, images in methods.items()
    }
    first = next(iter(results))
    results[first]["psnr_outside"] = masked_psnr(raw * 2 - 1, x * 2 - 1, 1 - masks)
    coverage = float(masks.mean())
    header = (
        f"{n} held-out emoji of {args.dataset} at {x.shape[-1]} px, masks covering {coverage:.0%} on average "
        f"(seed 0, {Path(args.out).name}_masks.npz); model {args.model}, baseline {args.text_model}, seed "
        f"{args.seed}; {seconds:.2f} s per inpainted image on this machine; FID / KID against the "
        f"{len(reference)} training images, feature network `{results[first]['feature_network']}`; "
        f"retrieval among {len(candidates)} captions (chance top-5 {results[first]['chance_top5']:.3f})"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        f"{out}_masks.npz", masks=np.packbits(masks.bool().numpy(), axis=-1), shape=masks.shape
    )
    output_file(out, ".json").write_text(json.dumps({"header": header, "results": results}, indent=2) + "\n")
    output_file(out, ".md").write_text(table(results, header))
    shown = (masked_image(x[:16] * 2 - 1, masks[:16]) + 1) / 2 + masks[:16]  # holes white, as drawn
    picks = list(methods.values())
    columns = [shown.clamp(0, 1), picks[0][:16], picks[1][:16], picks[3][:16], x[:16]]
    comparison_grid([c * 2 - 1 for c in columns], scale=2).save(output_file(out, ".png"))
    print(table(results, header))


if __name__ == "__main__":
    run_benchmark(main)
