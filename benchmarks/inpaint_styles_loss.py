"""Held-out inpainting loss per style of the multi-style corpus (#30): how far the shipped inpainting model is
from a model trained on all five artists, and how a run's checkpoints close the gap.

    python benchmarks/inpaint_styles_loss.py --model models/hfldm-emoji-inpaint \
        --data data/emoji-styles/32 [--run runs/ldm-inpaint-emoji32-robust-finetune]

The loss is `inpaint_init_curve.held_out_loss` (LDM eq. 2, unweighted, fixed masks and (t, ε) draws) on the
held-out names in every style; --run adds each checkpoint's EMA U-Net, loaded into --model's pipeline (the
run's own architecture must be --model's: a fine-tune of it). A zero-initialised U-Net (a fresh run's step 0)
scores 1.0 (ε-prediction of 0), so docs/inpaint_init.md's from-scratch curves say how many steps a fresh
U-Net needs to reach the same loss.
"""

from __future__ import annotations

import argparse

import datasets
from inpaint_init_curve import held_out_loss, load_checkpoint  # benchmarks/ is the script's folder

from hfldm.data.masks import held_out_masks
from hfldm.eval.emoji_split import to_image_caption_set
from hfldm.eval.outputs import run_benchmark
from hfldm.pipelines.loading import load_pipeline
from hfldm.pipelines.pipeline_latent_diffusion_inpaint import LatentDiffusionInpaintPipeline
from hfldm.training.checkpoints import checkpoint_step, list_checkpoints


def losses_by_style(pipe, test: datasets.Dataset) -> dict[str, float]:
    """{style: held-out loss} and "all": the mean over every held-out image."""
    out, total, n = {}, 0.0, 0
    for style in sorted(set(test["style"])):
        subset = to_image_caption_set(test.filter(lambda s, style=style: s == style, input_columns="style"))
        x = subset.images * 2 - 1
        masks = held_out_masks(len(x), x.shape[-2], x.shape[-1], seed=0)
        out[style] = held_out_loss(pipe, x, masks, subset.captions)
        total, n = total + out[style] * len(x), n + len(x)
    out["all"] = total / n
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models/hfldm-emoji-inpaint")
    parser.add_argument(
        "--data", default="data/emoji-styles/32", help="hfldm data emoji --styles ... (32 px)"
    )
    parser.add_argument("--run", help="a run folder whose checkpoints fine-tune --model")
    args = parser.parse_args()
    test = datasets.load_from_disk(args.data)["test"]
    pipe = load_pipeline(args.model, "--model", pipeline_class=LatentDiffusionInpaintPipeline)
    rows = [("0 (--model)", losses_by_style(pipe, test))]
    for checkpoint in list_checkpoints(args.run) if args.run else []:
        load_checkpoint(pipe, checkpoint)
        rows.append((str(checkpoint_step(checkpoint)), losses_by_style(pipe, test)))
    styles = list(rows[0][1])
    print("| step | " + " | ".join(styles) + " |\n" + "|---" * (len(styles) + 1) + "|")
    for label, values in rows:
        print(f"| {label} | " + " | ".join(f"{values[s]:.5f}" for s in styles) + " |")


if __name__ == "__main__":
    run_benchmark(main)
