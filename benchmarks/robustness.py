"""Robustness of the shipped image-conditioned models off the training layout (#30): every style of the
multi-style corpus × scale {0.7, 0.87, 1.0, 1.15} × shift {0, ±4 px}, against the baselines a user has.

    make data-styles   # hfldm data emoji --styles noto,fluent-flat,fluent,openmoji,emojione
    python benchmarks/robustness.py --data data/emoji-styles --names 8 --out docs/robustness

Images: the first --names held-out names (test split: a held-out name is held out in every style) that every
chosen style draws; each is reframed (`hfldm.eval.robustness.reframe`: resized by the scale onto white,
moved by (±shift, ±shift) px with the four sign pairs in turn) at the model's resolution.
- super-resolution (64 px from 32 px): y = the reframed 64 px image bicubically downsampled 2× (antialiased,
  clean); the SR model (DDIM, --sr-steps) against bicubic and Pillow-Lanczos upsampling; PSNR / SSIM against
  the reframed image and the SWD ×10³ of the finest (64 px) Laplacian level (`hfldm.eval.swd`) against it;
  and the PSNR of the SR model's autoencoder on the reframed image itself, D(E(x)): no model decoded by it
  does better.
- inpainting (32 px): the held-out masks of benchmarks/inpaint_eval.py (seed 0) and the caption as prompt;
  the model (pasted back) against the mean colour of the kept pixels and OpenCV's Telea (radius 3);
  RMSE and PSNR inside the mask.
Writes OUT.json, OUT.md (both tables and how many cells meet #30's targets) and OUT.png (per style, one
held-out name at each scale: SR's low-res | bicubic | SR | real, then inpainting's masked | model | real).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import datasets
import numpy as np
import torch

from hfldm.data.masks import held_out_masks
from hfldm.eval.outputs import output_file, run_benchmark
from hfldm.eval.reconstruction import psnr, ssim
from hfldm.eval.robustness import (
    SCALES,
    lanczos_up,
    masked_rmse,
    mean_colour_fill,
    reframe,
    rmse_to_psnr,
    shift_pattern,
    target_counts,
)
from hfldm.eval.swd import swd
from hfldm.pipelines.loading import load_pipeline
from hfldm.pipelines.pipeline_latent_diffusion_inpaint import LatentDiffusionInpaintPipeline
from hfldm.pipelines.pipeline_latent_diffusion_superres import LatentDiffusionSuperResolutionPipeline
from hfldm.resources import bundled
from hfldm.training.superres import bicubic_down, bicubic_up
from hfldm.training.validation import comparison_grid


def held_out(folder: Path, styles: list[str] | None, names: int) -> tuple[dict, list[str], list[str]]:
    """({style: (N, 3, R, R) in [-1, 1]}, captions, styles): the first `names` test names all styles draw."""
    rows = datasets.load_from_disk(str(folder))["test"]
    available = list(dict.fromkeys(rows["style"]))
    styles = styles or available
    missing = [s for s in styles if s not in available]
    if missing:
        raise ValueError(f"--styles: {missing} not in {folder}, which has {available}")
    by_style = {s: {} for s in styles}
    for i, (style, cps) in enumerate(zip(rows["style"], rows["codepoints"])):
        if style in by_style:
            by_style[style][cps] = i
    common = [cps for cps in by_style[styles[0]] if all(cps in by_style[s] for s in styles)][:names]
    if not common:
        raise ValueError(f"--styles: no held-out name is drawn by all of {styles}")
    images = {}
    for s in styles:
        picked = rows.select([by_style[s][cps] for cps in common])
        arrays = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in picked["image"]])
        images[s] = torch.from_numpy(arrays).permute(0, 3, 1, 2) / 127.5 - 1
    captions = list(rows.select([by_style[styles[0]][cps] for cps in common])["text"])
    return images, captions, styles


def cells(styles: list[str], shift: int) -> list[tuple[str, float, int]]:
    return [(style, scale, p) for style in styles for scale in SCALES for p in (0, shift)]


def autoencoded(pipe, x: torch.Tensor) -> torch.Tensor:
    """D(E(x)) with the pipeline's own autoencoder, x in [-1, 1]."""
    space = pipe.latent_space
    return space.decode_latents(space.latents(x.to(pipe.vae.dtype))).float().clamp(-1, 1)


@torch.no_grad()
def super_resolution(pipe, images: dict, shift: int, steps: int, seed: int) -> tuple[list[dict], list]:
    """One row of figures per cell, and each cell's (low-res, bicubic, SR, real) for the figure."""
    rows, shown = [], []
    for style, scale, p in cells(list(images), shift):
        x = reframe(images[style], scale, shift_pattern(len(images[style]), p))
        y = bicubic_down(x, 2).clamp(-1, 1)
        generators = [torch.Generator().manual_seed(seed + i) for i in range(len(y))]
        sr = pipe((y + 1) / 2, num_inference_steps=steps, generator=generators, output_type="pt")
        methods = {
            "sr": sr.images.float().cpu() * 2 - 1,
            "bicubic": bicubic_up(y, 2),
            "lanczos": lanczos_up(y, 2),
        }
        row = {"style": style, "scale": scale, "shift": p}
        for name, out in methods.items():
            row[f"psnr_{name}"] = psnr(out, x, value_range=(-1, 1))
            row[f"ssim_{name}"] = ssim(out, x, value_range=(-1, 1))
            row[f"swd_{name}"] = swd(x, out)["swd"][0]  # the finest (64 px) level
        # the ceiling of any model decoded by the SR model's D: x itself encoded (posterior mean) and decoded
        row["psnr_autoencoder"] = psnr(autoencoded(pipe, x), x, value_range=(-1, 1))
        rows.append(row)
        shown.append(
            (torch.nn.functional.interpolate(y, scale_factor=2), methods["bicubic"], methods["sr"], x)
        )
    return rows, shown


@torch.no_grad()
def inpainting(pipe, images: dict, captions: list[str], shift: int, steps: int, guidance: float, seed: int):
    """One row of figures per cell, and each cell's (masked, model, real) for the figure."""
    import cv2

    rows, shown = [], []
    for style, scale, p in cells(list(images), shift):
        x = reframe(images[style], scale, shift_pattern(len(images[style]), p))
        masks = held_out_masks(len(x), x.shape[-2], x.shape[-1], seed=0)
        generators = [torch.Generator().manual_seed(seed + i) for i in range(len(x))]
        out = pipe(
            captions,
            image=(x + 1) / 2,
            mask_image=masks,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=generators,
            output_type="pt",
        ).images
        telea = []
        for image, mask in zip(x, masks):
            pixels = ((image.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
            filled = cv2.inpaint(pixels, (mask[0].numpy() * 255).astype(np.uint8), 3, cv2.INPAINT_TELEA)
            telea.append(torch.from_numpy(filled).permute(2, 0, 1).float() / 127.5 - 1)
        methods = {
            "model": out.float().cpu() * 2 - 1,
            "mean": mean_colour_fill(x, masks),
            "telea": torch.stack(telea),
        }
        row = {"style": style, "scale": scale, "shift": p}
        for name, filled in methods.items():
            row[f"rmse_{name}"] = masked_rmse(filled, x, masks)
            row[f"psnr_{name}"] = rmse_to_psnr(row[f"rmse_{name}"])
        rows.append(row)
        shown.append((torch.where(masks.bool(), 1.0, x), methods["model"], x))
    return rows, shown


def sr_table(rows: list[dict]) -> str:
    lines = [
        "| style | scale | shift (px) | PSNR SR | bicubic | Lanczos | SR − bicubic (dB) | SSIM SR | bicubic "
        "| SWD ×10³ SR | bicubic | Lanczos | PSNR D(E(x)) (ceiling) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells_ = [r["style"], f"{r['scale']:.2f}", f"±{r['shift']}" if r["shift"] else "0"]
        cells_ += [f"{r[f'psnr_{m}']:.2f}" for m in ("sr", "bicubic", "lanczos")]
        cells_ += [
            f"{r['psnr_sr'] - r['psnr_bicubic']:+.2f}",
            f"{r['ssim_sr']:.4f}",
            f"{r['ssim_bicubic']:.4f}",
        ]
        cells_ += [f"{r[f'swd_{m}']:.1f}" for m in ("sr", "bicubic", "lanczos")]
        cells_ += [f"{r['psnr_autoencoder']:.2f}" if "psnr_autoencoder" in r else "–"]
        lines.append(f"| {' | '.join(cells_)} |")
    return "\n".join(lines)


def inpaint_table(rows: list[dict]) -> str:
    lines = [
        "| style | scale | shift (px) | RMSE in mask, model | mean colour | Telea | model / mean colour "
        "| PSNR in mask, model | mean colour | Telea |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells_ = [r["style"], f"{r['scale']:.2f}", f"±{r['shift']}" if r["shift"] else "0"]
        cells_ += [f"{r[f'rmse_{m}']:.4f}" for m in ("model", "mean", "telea")]
        cells_ += [f"{r['rmse_model'] / r['rmse_mean']:.3f}"]
        cells_ += [f"{r[f'psnr_{m}']:.2f}" for m in ("model", "mean", "telea")]
        lines.append(f"| {' | '.join(cells_)} |")
    return "\n".join(lines)


def figure(sr_shown: list, inpaint_shown: list, num_cells: int) -> torch.Tensor:
    """Per cell without shift, its first name: SR's 4 columns then inpainting's 3 (upsampled to 64 px); a task
    that was not run has no columns."""
    columns = [[] for _ in range(4 * bool(sr_shown) + 3 * bool(inpaint_shown))]
    for i in range(0, num_cells, 2):  # cells alternate shift 0, ±shift
        row = [*(sr_shown[i] if sr_shown else []), *(inpaint_shown[i] if inpaint_shown else [])]
        for column, image in zip(columns, row):
            column.append(torch.nn.functional.interpolate(image[:1], size=64))
    return comparison_grid([torch.cat(c) for c in columns])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", default="data/emoji-styles", help="`hfldm data emoji --styles` output (32/, 64/)"
    )
    parser.add_argument("--styles", default=None, help="comma-separated (default: every style in --data)")
    parser.add_argument("--names", type=int, default=8, help="held-out names per cell (the subset)")
    parser.add_argument("--shift", type=int, default=4, help="± pixels of the shifted cells")
    parser.add_argument("--sr-model", default=str(bundled("hfldm-emoji-sr")))
    parser.add_argument("--inpaint-model", default=str(bundled("hfldm-emoji-inpaint")))
    parser.add_argument("--tasks", default="sr,inpaint", help="sr, inpaint or both")
    parser.add_argument("--sr-steps", type=int, default=50, help="DDIM steps of the SR model")
    parser.add_argument("--inpaint-steps", type=int, default=25)
    parser.add_argument("--guidance-scale", type=float, default=3.0, help="w of the inpainting model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/robustness", help="writes OUT.json, OUT.md, OUT.png")
    args = parser.parse_args()
    if args.names <= 0:
        raise ValueError(f"--names: must be positive, got {args.names}")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not tasks or set(tasks) - {"sr", "inpaint"}:
        raise ValueError(f"--tasks: expected sr, inpaint or both, got {args.tasks!r}")
    styles = [s.strip() for s in args.styles.split(",")] if args.styles else None
    start, results, sr_shown, inpaint_shown = time.perf_counter(), {}, [], []
    if "sr" in tasks:
        images, _, styles = held_out(Path(args.data) / "64", styles, args.names)
        pipe = load_pipeline(
            args.sr_model, "--sr-model", pipeline_class=LatentDiffusionSuperResolutionPipeline
        )
        pipe.set_progress_bar_config(disable=True)
        results["superres"], sr_shown = super_resolution(pipe, images, args.shift, args.sr_steps, args.seed)
    if "inpaint" in tasks:
        images, captions, styles = held_out(Path(args.data) / "32", styles, args.names)
        pipe = load_pipeline(
            args.inpaint_model, "--inpaint-model", pipeline_class=LatentDiffusionInpaintPipeline
        )
        pipe.set_progress_bar_config(disable=True)
        results["inpaint"], inpaint_shown = inpainting(
            pipe, images, captions, args.shift, args.inpaint_steps, args.guidance_scale, args.seed
        )
    minutes = (time.perf_counter() - start) / 60
    header = (
        f"{args.names} held-out names per cell, drawn by every style of {args.data} ({', '.join(styles)}); "
        f"shifts (±{args.shift}, ±{args.shift}) px in turn; SR {args.sr_model} ({args.sr_steps} DDIM steps), "
        f"inpainting {args.inpaint_model} ({args.inpaint_steps} steps, w = {args.guidance_scale}); seed "
        f"{args.seed}; {minutes:.1f} min on this machine"
    )
    counts = target_counts(results.get("superres", []), results.get("inpaint", []))
    sections = [header, "", f"Cells meeting #30's targets: {counts}", ""]
    if "superres" in results:
        sections += ["## Super-resolution, 32 → 64 px", "", sr_table(results["superres"]), ""]
    if "inpaint" in results:
        sections += ["## Inpainting, 32 px", "", inpaint_table(results["inpaint"]), ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"header": header, "targets": counts, **results}
    output_file(out, ".json").write_text(json.dumps(report, indent=2) + "\n")
    output_file(out, ".md").write_text("\n".join(sections))
    figure(sr_shown, inpaint_shown, len(sr_shown or inpaint_shown)).save(output_file(out, ".png"))
    print("\n".join(sections))


if __name__ == "__main__":
    run_benchmark(main)
