"""What initialising from the text model saves (the SD-2 recipe): held-out loss against training steps of
two inpainting runs, one --init_from the bundled text model (zero-initialised new channels), one from
scratch (fresh U-Net and τ_θ), read from their checkpoints.

    python benchmarks/inpaint_init_curve.py \
        --run "init from text model=runs/ldm-inpaint-emoji32" --init-source models/hfldm-emoji \
        --run "from scratch=runs/ldm-inpaint-emoji32-scratch" --dataset data/emoji/32 --out docs/inpaint_init

The held-out loss is DDPM's simplified objective (unweighted ‖ε − ε̂‖², LDM eq. 2) of the EMA U-Net of each
checkpoint (with its jointly trained τ_θ, if any) on all held-out emoji, each with its caption, its held-out
mask (`hfldm.data.masks.held_out_masks`, seed 0) and one (t, ε) drawn from a generator seeded by its index:
the same draws for every checkpoint, so the curves differ only by the weights. --init-source adds step 0 of
the init run: the text model widened by zero channels. Writes OUT.json, OUT.md and OUT.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from hfldm.data.masks import held_out_masks
from hfldm.eval.emoji_split import load_emoji_split
from hfldm.eval.outputs import output_file, run_benchmark
from hfldm.pipelines.loading import load_pipeline
from hfldm.pipelines.pipeline_latent_diffusion_inpaint import LatentDiffusionInpaintPipeline
from hfldm.schedulers.ddpm import DDPMScheduler
from hfldm.training.checkpoints import checkpoint_step, list_checkpoints
from hfldm.training.losses import diffusion_loss
from hfldm.unets.concat import with_condition_channels
from hfldm.unets.inpaint_condition import inpaint_condition_channels


def draws(n: int, latent_shape: tuple, num_train_timesteps: int, seed: int = 1):
    """(t (N,), ε (N, c, h, w)): image i's from a generator seeded by (seed, i)."""
    ts, eps = [], []
    for i in range(n):
        g = torch.Generator().manual_seed(seed * 1_000_003 + i)
        ts.append(torch.randint(0, num_train_timesteps, (), generator=g))
        eps.append(torch.randn(latent_shape, generator=g))
    return torch.stack(ts), torch.stack(eps)


@torch.no_grad()
def held_out_loss(pipe, x: torch.Tensor, masks: torch.Tensor, captions: list[str], batch_size: int = 64):
    """Mean unweighted diffusion loss of `pipe`'s U-Net over the held-out images x in [-1, 1]."""
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    z0 = pipe.latent_space.scale_latents(pipe.latent_space.latents(x))
    t, eps = draws(len(x), tuple(z0.shape[1:]), noise_scheduler.config.num_train_timesteps)
    total = 0.0
    for start in range(0, len(x), batch_size):
        s = slice(start, start + batch_size)
        condition = pipe.encode_masked_image(x[s], masks[s])
        z_t = noise_scheduler.add_noise(z0[s], eps[s], t[s])  # DDPM eq. 4
        _, _, kwargs = pipe.encode_conditions(captions[s], None, None, 1, guidance_scale=1.0)
        prediction = pipe.unet(torch.cat([z_t, condition], 1), t[s], **kwargs).sample
        total += float(diffusion_loss(noise_scheduler, prediction, z0[s], eps[s], t[s])) * len(x[s])
    return total / len(x)


def load_checkpoint(pipe, checkpoint: Path) -> None:
    """The checkpoint's EMA U-Net (or its raw U-Net without EMA) and its τ_θ, if it trained one."""
    ema = checkpoint / "ema.safetensors"
    if ema.is_file():
        shadow = load_file(ema)
        for i, p in enumerate(pipe.unet.parameters()):
            p.data.copy_(shadow[f"shadow_params.{i}"])
    else:
        pipe.unet.load_state_dict(load_file(checkpoint / "model.safetensors"))
    if (checkpoint / "model_1.safetensors").is_file():
        pipe.text_encoder.load_state_dict(load_file(checkpoint / "model_1.safetensors"))


def curve(run: str, x, masks, captions, init_source: str | None) -> list[tuple[int, float]]:
    pipe = load_pipeline(run, "--run", pipeline_class=LatentDiffusionInpaintPipeline)
    points = []
    if init_source:
        text = load_pipeline(init_source, "--init-source")
        c = text.unet.config.out_channels
        start = LatentDiffusionInpaintPipeline(
            text.vae,
            with_condition_channels(text.unet, inpaint_condition_channels(c)),
            text.scheduler,
            text.text_encoder,
            text.tokenizer,
            text_attention_mask=text.config.text_attention_mask,
        )
        points.append((0, held_out_loss(start.to(torch.float32), x, masks, captions)))
    for checkpoint in list_checkpoints(run):
        load_checkpoint(pipe, checkpoint)
        points.append((checkpoint_step(checkpoint), held_out_loss(pipe, x, masks, captions)))
        print(f"{run} step {points[-1][0]}: held-out loss {points[-1][1]:.5f}", flush=True)
    return points


def steps_to_reach(points: list[tuple[int, float]], loss: float) -> int | None:
    """The first step at which the curve is at or below `loss` (None: never)."""
    return next((step for step, value in points if value <= loss), None)


def report(curves: dict, summary: dict, n: int, out: Path) -> list[str]:
    """Writes OUT.json, OUT.md (the table, returned as lines) and OUT.png (one curve per run)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    output_file(out, ".json").write_text(json.dumps({"curves": curves, "summary": summary}, indent=2) + "\n")
    labels, steps = list(curves), sorted({s for c in curves.values() for s, _ in c})
    lines = [
        f"Held-out loss (unweighted, {n} emoji, fixed masks and draws) by step",
        "",
        "| step | " + " | ".join(labels) + " |",
        "|---" * (len(labels) + 1) + "|",
    ]
    for step in steps:
        values = [dict(c).get(step) for c in curves.values()]
        lines.append(f"| {step} | " + " | ".join("" if v is None else f"{v:.5f}" for v in values) + " |")
    output_file(out, ".md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for label, points in curves.items():
        ax.plot(*np.array(points).T, marker="o", label=label)
    ax.set(xlabel="training step (batch 32)", ylabel="held-out loss", title="Inpainting: init vs scratch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(output_file(out, ".png"), dpi=120)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", action="append", required=True, help="LABEL=FOLDER of a finished run")
    parser.add_argument("--init-source", help="the text pipeline the first run started from (its step 0)")
    parser.add_argument("--dataset", default="data/emoji/32")
    parser.add_argument("--out", default="docs/inpaint_init")
    args = parser.parse_args()
    runs = dict(item.rsplit("=", 1) for item in args.run)  # labels may hold "="
    test = load_emoji_split(args.dataset)["test"]
    x = test.images * 2 - 1
    masks = held_out_masks(len(x), x.shape[-2], x.shape[-1], seed=0)
    curves = {}
    for i, (label, folder) in enumerate(runs.items()):
        curves[label] = curve(folder, x, masks, test.captions, args.init_source if i == 0 else None)
    labels = list(curves)
    summary = {}
    if len(labels) == 2:
        final = curves[labels[1]][-1]
        summary = {
            "reference": labels[1],
            "reference_step": final[0],
            "reference_loss": final[1],
            "steps_to_reach": steps_to_reach(curves[labels[0]], final[1]),
        }
    lines = report(curves, summary, len(x), Path(args.out))
    print("\n".join(lines), json.dumps(summary), sep="\n")


if __name__ == "__main__":
    run_benchmark(main)
