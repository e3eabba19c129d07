"""Where the bundled U-Net looks for each word: cross-attention maps of a few prompts, drawn beside the image.

An `AttentionMapRecorder` on every cross-attention layer keeps softmax(QK^T / sqrt(d)) during sampling;
the figure shows, per prompt, the image and one map per token: the attention on that token at the finest
level (8x8 latent positions), averaged over heads, layers and the 25 DDIM steps, conditional half only.

    python benchmarks/cross_attention_maps.py [--model DIR] [--out docs/cross_attention_maps.png]
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import hfldm  # noqa: E402
from hfldm.eval.outputs import run_benchmark
from hfldm.nn.attention import AttentionMapRecorder  # noqa: E402

PROMPTS = ["red apple", "cat face", "blue heart", "smiling face with sunglasses"]


def token_maps(pipe, prompt: str, seed: int, steps: int) -> tuple:
    """(image (H, W, 3) in [0, 1], tokens, maps (tokens, h, w)) for one prompt."""
    recorder = AttentionMapRecorder()
    processors = pipe.unet.attn_processors
    pipe.unet.set_attn_processor(
        {name: recorder if name.endswith("attn2.processor") else p for name, p in processors.items()}
    )
    image = pipe(
        [prompt],
        num_inference_steps=steps,
        guidance_scale=3.0,
        generator=torch.manual_seed(seed),
        output_type="np",
    ).images[0]
    pipe.unet.set_attn_processor(processors)
    finest = max(m.shape[2] for m in recorder.maps)
    # (B = 2: unconditional, conditional; heads, h*w, L) -> the conditional half, mean over heads and calls
    maps = torch.stack([m[1].mean(0) for m in recorder.maps if m.shape[2] == finest]).mean(0)  # (h*w, L)
    tokens = pipe.tokenizer.convert_ids_to_tokens(pipe.tokenizer(prompt)["input_ids"])
    side = int(finest**0.5)
    return image, tokens, maps[:, : len(tokens)].T.reshape(len(tokens), side, side)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/hfldm-emoji")
    parser.add_argument("--out", default="docs/cross_attention_maps.png")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pipe = hfldm.LatentDiffusionPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    rows = [token_maps(pipe, prompt, args.seed, args.steps) for prompt in PROMPTS]
    cols = 1 + max(len(tokens) for _, tokens, _ in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.6 * cols, 1.7 * len(rows)), squeeze=False)
    for ax_row, (image, tokens, maps) in zip(axes, rows):
        ax_row[0].imshow(image)
        ax_row[0].set_title("image", fontsize=8)
        for ax, token, attention_map in zip(ax_row[1:], tokens, maps):
            ax.imshow(attention_map.numpy(), cmap="magma", interpolation="bilinear")  # own colour range
            ax.set_title(f"{token} {attention_map.mean():.2f}", fontsize=8)  # mean = the token's share
        for ax in ax_row:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_benchmark(main)
