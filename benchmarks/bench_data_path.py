"""What the data path adds to one LDM train step: bare latents, the latent cache, or encoding on the fly.

One process, one U-Net (bench_unet.py's: widths (128, 256), a SpatialTransformer at both levels,
cross-attention to MiniLM's 77 x 384 hidden states), one AdamW optimiser, batch 32 of 32x32 emoji, and a KL
autoencoder with f = 4 (latents 4x8x8, widths (64, 128, 128), 2 ResBlocks per level; randomly initialised:
its cost does not depend on its weights). One train step = the LDM loss ‖ε − ε_θ(z_t, t, τ_θ(y))‖²
(as train_ldm.py's training step, LDM eq. 2), backward, AdamW step, fed in three ways:

  A  bare:       z_0 and τ_θ(y) already in memory as tensors (one cached batch, reused);
  B  cached:     the next batch of the latent cache (`load_latent_cache`, a shuffled DataLoader with torch's
                 default collate, as train_ldm.py --cached_latents), z_0 = mean + std·ε (`sample_latents`);
  C  on the fly: the next batch of the image loader (`load_image_dataset`, `make_dataloader`: PNG decode,
                 crop, collate), z_0 ~ q(z|x) from the autoencoder and τ_θ(y) from frozen MiniLM,
                 both under no_grad.

Each step also times its phases (data = fetching the batch, encode, text, unet). A, B and C alternate within
each repetition (forward, then reversed order); a short matmul probe before and after each repetition flags
those during which the machine stalled, and they are dropped. Ratios are medians of per-repetition ratios.
The latent cache is built first (`cache_latents`) in a temporary folder; the emoji data are built there too
when --data does not exist.

    python benchmarks/bench_data_path.py [--threads 2] [--reps 20] [--data data/emoji/32] [--cache DIR]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from bench_unet import OURS as UNET_CONFIG
from bench_unet import probe, timed

from hfldm.autoencoders.kl import KLAutoencoder
from hfldm.autoencoders.latent_space import latent_space
from hfldm.data.arguments import DataArguments
from hfldm.data.latent_cache import cache_latents, load_latent_cache, sample_latents
from hfldm.data.loader import load_image_dataset, make_dataloader
from hfldm.eval.outputs import run_benchmark
from hfldm.schedulers.ddpm import DDPMScheduler
from hfldm.text import encode_text, load_minilm
from hfldm.training.losses import diffusion_loss
from hfldm.unets.unet import ConditionalUNet

VAE_CONFIG = dict(block_out_channels=(64, 128, 128), layers_per_block=2, latent_channels=4, sample_size=32)
PHASES = ("data", "encode", "text", "unet")


def emoji_data(path: str, workdir: Path) -> str:
    """`path` if it holds a saved dataset, else the 32 px emoji DatasetDict built into `workdir`/emoji/32."""
    if Path(path).is_dir():
        return path
    from hfldm.data.emoji import build_emoji

    out = workdir / "emoji" / "32"
    print(f"{path} not found: building the emoji dataset into {out}")
    build_emoji((32,)).datasets[32].save_to_disk(str(out))
    return str(out)


def forever(make_loader: Callable[[int], torch.utils.data.DataLoader]) -> Iterator[dict]:
    """Batches of make_loader(epoch), epoch after epoch (a new shuffle each epoch, as in training)."""
    for epoch in itertools.count():
        yield from make_loader(epoch)


class TrainStep:
    """One U-Net and its AdamW; a call runs one LDM train step on (z_0, U-Net conditioning)."""

    def __init__(self, unet: ConditionalUNet, scheduler: DDPMScheduler):
        self.unet, self.scheduler = unet, scheduler
        self.optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)

    def __call__(self, z0: torch.Tensor, cond: dict) -> None:
        noise = torch.randn_like(z0)
        timesteps = torch.randint(0, self.scheduler.config.num_train_timesteps, (len(z0),))
        self.optimizer.zero_grad(set_to_none=True)
        z_t = self.scheduler.add_noise(z0, noise, timesteps)  # DDPM eq. 4
        prediction = self.unet(z_t, timesteps, **cond).sample
        diffusion_loss(self.scheduler, prediction, z0, noise, timesteps).backward()
        self.optimizer.step()


def unet_cond(batch: dict) -> dict:
    """The U-Net's conditioning keywords from a batch holding τ_θ(y) (B, 77, 384) and its mask (B, 77)."""
    return {
        "encoder_hidden_states": batch["encoder_hidden_states"],
        "encoder_attention_mask": batch["attention_mask"],
    }


class DataPaths:
    """The three ways of feeding one TrainStep; each records its phase times (s) in `phases[name]`."""

    def __init__(self, step: TrainStep, cache_batches, image_batches, vae, text_model, scale: float):
        self.step, self.cache_batches, self.image_batches = step, cache_batches, image_batches
        self.vae, self.text_model, self.scale = vae, text_model, scale
        self.phases: dict[str, dict[str, float]] = {}
        first = next(cache_batches)  # A's batch, held in memory
        self.bare_batch = (sample_latents(first) * scale, unet_cond(first))

    @contextmanager
    def phase(self, name: str, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.phases[name][phase] += time.perf_counter() - start

    def start(self, name: str) -> Callable:
        self.phases[name] = dict.fromkeys(PHASES, 0.0)
        return lambda phase: self.phase(name, phase)

    def bare(self) -> None:
        clock = self.start("A")
        with clock("unet"):
            self.step(*self.bare_batch)

    def cached(self) -> None:
        clock = self.start("B")
        with clock("data"):
            batch = next(self.cache_batches)
        with clock("unet"):
            self.step(sample_latents(batch) * self.scale, unet_cond(batch))  # z = mean + std·ε ~ q(z|x)

    @torch.no_grad()
    def _encode(self, batch: dict, clock: Callable) -> tuple[torch.Tensor, dict]:
        """(scaled z_0 ~ q(z|x), conditioning) of a batch of images and captions, with frozen encoders."""
        with clock("encode"):
            pixels = batch["pixel_values"]
            eta = torch.randn(len(pixels), *latent_space(self.vae).latent_shape(pixels.shape[-1]))
            z0 = latent_space(self.vae).latents(pixels, eta) * self.scale  # z ~ q(z|x)
        with clock("text"):
            hidden_states, mask = encode_text(*self.text_model, batch["text"])
        return z0, unet_cond({"encoder_hidden_states": hidden_states, "attention_mask": mask})

    def on_the_fly(self) -> None:
        clock = self.start("C")
        with clock("data"):
            batch = next(self.image_batches)
        z0, cond = self._encode(batch, clock)
        with clock("unet"):
            self.step(z0, cond)


def interleaved_reps(paths: DataPaths, steps: dict[str, Callable], reps: int, stall: float) -> list[dict]:
    """Per kept repetition: {name: {"wall": s, "cpu": s, **phase seconds}}; reps with a slow probe dropped."""
    probe_min = min(probe() for _ in range(5))
    kept = []
    for rep in range(reps):
        order = list(steps) if rep % 2 == 0 else list(steps)[::-1]
        before = probe()
        times = {}
        for name in order:
            wall, cpu = timed(steps[name])
            times[name] = {"wall": wall, "cpu": cpu, **paths.phases[name]}
        after = probe()
        status = "dropped (stall)" if max(before, after) > stall * probe_min else ""
        print(f"  rep {rep:2d}: " + "  ".join(f"{k} {times[k]['wall'] * 1e3:7.1f} ms" for k in steps), status)
        if not status:
            kept.append(times)
    return kept


def median(reps: list[dict], fn: Callable[[dict], float]) -> float:
    """Median over repetitions of fn(repetition)."""
    return statistics.median(fn(r) for r in reps)


def report(reps: list[dict]) -> None:
    """Prints the table of median times (ms) per path and phase, and the per-repetition ratios."""
    print(f"\n{'path':28s} {'total':>8s} {'cpu':>8s} " + " ".join(f"{p:>8s}" for p in PHASES))
    names = {
        "A": "A bare (tensors in memory)",
        "B": "B cached (latent cache)",
        "C": "C on the fly (VAE+MiniLM)",
    }
    for key, name in names.items():
        cells = [statistics.median(r[key][c] * 1e3 for r in reps) for c in ("wall", "cpu", *PHASES)]
        print(f"{name:28s} " + " ".join(f"{c:8.1f}" for c in cells))
    b_over_a = median(reps, lambda r: r["B"]["wall"] / r["A"]["wall"])
    c_over_b = median(reps, lambda r: r["C"]["wall"] / r["B"]["wall"])
    # what C/B should be if the data path cost only the two encoders: (encode + text + U-Net) / U-Net
    predicted = median(reps, lambda r: (r["C"]["encode"] + r["C"]["text"] + r["A"]["wall"]) / r["A"]["wall"])
    cpu_b_over_a = median(reps, lambda r: r["B"]["cpu"] / r["A"]["cpu"])
    print(
        f"\nB/A   cached / bare      (median of per-rep ratios): wall {b_over_a:.3f}, cpu {cpu_b_over_a:.3f}"
    )
    print(f"C/B   on the fly / cached (median of per-rep ratios): {c_over_b:.3f}")
    print(f"(encode + text + U-Net) / U-Net   (phases of C, U-Net = A): {predicted:.3f}")
    verdict = "PASS" if b_over_a <= 1.10 else "FAIL"
    print(f"requirement B/A <= 1.10: {verdict}")


def build(args: argparse.Namespace, workdir: Path) -> tuple[DataPaths, dict[str, Callable]]:
    """The models, the latent cache (built into `workdir`), both loaders and the three step functions."""
    torch.manual_seed(0)
    vae = KLAutoencoder(**VAE_CONFIG).eval().requires_grad_(False)
    text_model = load_minilm()
    data = DataArguments(train_data_dir=emoji_data(args.data, workdir), max_samples=args.num_images)
    cache_dir = Path(args.cache) if args.cache else workdir / "latents"
    if not cache_dir.is_dir():  # same seed, same autoencoder: a kept --cache matches this run's models
        start = time.perf_counter()
        cache_latents(data, vae, cache_dir, text_model=text_model, batch_size=64)
        print(f"latent cache built in {time.perf_counter() - start:.1f} s")
    cache = load_latent_cache(cache_dir)
    print(f"latent cache: {len(cache)} rows in {cache_dir}")
    images, _ = load_image_dataset(data)
    b, workers = args.batch_size, args.num_workers

    def cache_loader(epoch: int) -> torch.utils.data.DataLoader:  # as hfldm.training.runtime.make_dataloader
        generator = torch.Generator().manual_seed(epoch)
        return torch.utils.data.DataLoader(
            cache, b, shuffle=True, drop_last=True, generator=generator, num_workers=workers
        )

    def image_loader(epoch: int) -> torch.utils.data.DataLoader:
        return make_dataloader(images, b, shuffle=True, seed=epoch, num_workers=workers)

    unet = ConditionalUNet(**UNET_CONFIG)
    step = TrainStep(unet, DDPMScheduler(num_train_timesteps=1000))
    paths = DataPaths(step, forever(cache_loader), forever(image_loader), vae, text_model, scale=1.0)
    steps = {"A": paths.bare, "B": paths.cached, "C": paths.on_the_fly}
    return paths, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default="data/emoji/32", help="save_to_disk emoji dataset (built if absent)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--reps", type=int, default=20, help="timed A/B/C repetitions")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps of each path first")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-images", type=int, default=1024, help="images cached and loaded")
    parser.add_argument("--cache", default=None, help="latent cache folder to reuse (built if absent)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers of B and C")
    parser.add_argument(
        "--stall", type=float, default=1.5, help="drop a rep if a probe exceeds this x its min"
    )
    args = parser.parse_args()
    if args.num_images < args.batch_size:
        raise ValueError(f"num_images ({args.num_images}) must be at least batch_size ({args.batch_size})")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_data_path_") as tmp:
        paths, steps = build(args, Path(tmp))
        load = os.getloadavg()
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
            f"32x32 images -> latents 4x8x8, context 77x384, {args.num_workers} loader workers"
        )
        print(f"U-Net {UNET_CONFIG}\nautoencoder KLAutoencoder {VAE_CONFIG}; text: MiniLM (frozen)")
        print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        for _ in range(args.warmup):
            for fn in steps.values():
                fn()
        reps = interleaved_reps(paths, steps, args.reps, args.stall)
        load = os.getloadavg()
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if not reps:
        raise SystemExit(
            "every repetition was dropped as stalled; rerun on a quieter machine or raise --stall"
        )
    print(f"kept {len(reps)} of {args.reps} repetitions")
    report(reps)


if __name__ == "__main__":
    run_benchmark(main)
