"""Train-step speed of hfldm's ConditionalUNet against diffusers' UNet2DConditionModel, same architecture.

Both models: latent 4x8x8, batch 32, widths (128, 256), 2 ResBlocks per level (3 on the up path),
a SpatialTransformer (1 layer, self- + cross-attention, GEGLU) after every ResBlock at both levels and in the
mid block, head width 32, cross-attention to 16 tokens of width 384 (a MiniLM-sized text encoder), linear
proj_in/proj_out. The two models hold the same parameters (their counts are printed) and, after the diffusers
weights are copied into ours, compute the same function (the max difference is printed).

One timed step = zero_grad, forward, MSE loss, backward, AdamW step. A and B repetitions alternate (in
alternating order) within one process; a short matmul probe before and after each pair flags pairs during
which the machine stalled (these shared VMs have host stalls), and those pairs are dropped. The figure is
the median of the per-pair ratios ours / diffusers.

Modes, each side in the same one, each from the same starting weights:
  fp32      eager float32
  bf16      forward and loss under torch.autocast("cpu", dtype=torch.bfloat16); skipped, with a line saying
            so, on CPUs without bf16 instructions (AVX512-BF16 or AMX), where bf16 matmuls are emulated
  compiled  torch.compile(model) (inductor), float32; the first (compiling) step is timed and printed

`--step forward` times one no-grad forward instead (one sampling step); `--adamw fused` uses
AdamW(fused=True) on both sides; `--adamw defaults` gives each side its training script's default, the
step a user of each gets: hfldm's `make_optimizer` (fused AdamW, hfldm.training.runtime) against diffusers'
`train_text_to_image.py` (`torch.optim.AdamW(...)`, torch's default foreach implementation).

    python benchmarks/bench_unet.py [--modes fp32,bf16,compiled] [--step train|forward] [--threads N]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel

from hfldm.eval.outputs import run_benchmark
from hfldm.precision import has_fast_bf16
from hfldm.unets.convert import diffusers_unet_to_hfldm
from hfldm.unets.unet import ConditionalUNet

SHAPE = dict(sample_size=8, in_channels=4, out_channels=4, cross_attention_dim=384)
OURS = dict(
    block_out_channels=(128, 256),
    layers_per_block=2,
    attention_levels=(True, True),
    num_attention_heads=(4, 8),  # head width 32
    transformer_layers_per_block=1,
    **SHAPE,
)
DIFFUSERS = dict(
    block_out_channels=(128, 256),
    layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    attention_head_dim=(4, 8),  # diffusers' historical name: this is the number of heads
    transformer_layers_per_block=1,
    use_linear_projection=True,
    norm_eps=1e-6,
    **SHAPE,
)


def parameter_count(model: torch.nn.Module) -> int:
    """Number of scalar parameters."""
    return sum(p.numel() for p in model.parameters())


MODES = ("fp32", "bf16", "compiled")


def make_step(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], mode: str = "fp32", kind: str = "train", adamw=""
):
    """A closure running, in `mode`, one AdamW training step of the ε-prediction MSE loss on `batch`
    (`kind="train"`; `adamw="fused"` for AdamW(fused=True)) or one no-grad forward (`kind="forward"`, the
    cost of one sampling step)."""
    forward = torch.compile(model) if mode == "compiled" else model

    def eps() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16) if mode == "bf16" else nullcontext():
            return forward(batch["z_t"], batch["t"], encoder_hidden_states=batch["context"]).sample.float()

    if kind == "forward":
        return torch.no_grad()(eps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True if adamw == "fused" else None)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.mse_loss(eps(), batch["noise"]).backward()
        optimizer.step()

    return step


def timed(fn) -> tuple[float, float]:
    """(wall-clock seconds, process CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def probe() -> float:
    """Wall seconds for a fixed small matmul workload: a stall detector."""
    a = torch.ones(256, 256)
    return timed(lambda: [a @ a for _ in range(20)])[0]


def interleaved_pairs(steps: dict, reps: int, stall: float) -> list[dict[str, tuple[float, float]]]:
    """Time `reps` pairs of steps in alternating order; drop pairs with a probe > stall x the quiet probe."""
    probe_min = min(probe() for _ in range(5))
    kept = []
    for rep in range(reps):
        order = list(steps) if rep % 2 == 0 else list(steps)[::-1]
        before = probe()
        pair = {name: timed(steps[name]) for name in order}
        after = probe()
        status = "dropped (stall)" if max(before, after) > stall * probe_min else ""
        print(f"  pair {rep:2d}: " + "  ".join(f"{k} {pair[k][0] * 1e3:7.1f} ms" for k in steps), status)
        if not status:
            kept.append(pair)
    return kept


def run_mode(mode: str, ours: torch.nn.Module, diffusers_unet: torch.nn.Module, batch: dict, args):
    """Time interleaved train-step pairs of fresh copies of both models in `mode`; returns
    (ours ms, diffusers ms, median of per-pair ratios, pairs kept), wall clock."""
    models = {"ours": copy.deepcopy(ours), "diffusers": copy.deepcopy(diffusers_unet)}
    adamw = {"ours": "fused", "diffusers": "foreach"} if args.adamw == "defaults" else {}
    steps = {
        name: make_step(model, batch, mode, args.step, adamw.get(name, args.adamw))
        for name, model in models.items()
    }
    for name, step in steps.items():
        first = timed(step)[0]
        if mode == "compiled":
            print(f"  {name}: first step (compiling) {first:.1f} s")
    for _ in range(args.warmup - 1):
        for step in steps.values():
            step()
    pairs = interleaved_pairs(steps, args.reps, args.stall)
    if not pairs:
        raise SystemExit("every pair was dropped as stalled; rerun on a quieter machine or raise --stall")
    print(f"  kept {len(pairs)} of {args.reps} pairs")
    summary = {}
    for i, clock in enumerate(("wall", "cpu")):
        ours_ms, diffusers_ms = (
            statistics.median(p[k][i] for p in pairs) * 1e3 for k in ("ours", "diffusers")
        )
        ratio = statistics.median(p["ours"][i] / p["diffusers"][i] for p in pairs)
        print(
            f"  {clock:4s} {args.step} step, median: ours {ours_ms:.1f} ms, diffusers {diffusers_ms:.1f} ms"
        )
        print(f"  {clock:4s} ratio ours/diffusers (median of per-pair ratios): {ratio:.3f}")
        summary[clock] = (ours_ms, diffusers_ms, ratio)
    return (*summary["wall"], len(pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--reps", type=int, default=20, help="timed A/B pairs")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps of each model first")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--modes", default="fp32,bf16,compiled", help=f"comma-separated, of {MODES}")
    parser.add_argument("--force-bf16", action="store_true", help="run bf16 even without bf16 instructions")
    parser.add_argument(
        "--step", choices=("train", "forward"), default="train", help="what one timed step is"
    )
    parser.add_argument(
        "--adamw",
        choices=("foreach", "fused", "defaults"),
        default="foreach",
        help="AdamW implementation (defaults: hfldm's fused, diffusers' scripts' foreach)",
    )
    parser.add_argument(
        "--stall", type=float, default=1.5, help="drop a pair if a probe exceeds this x its min"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    diffusers_unet = UNet2DConditionModel(**DIFFUSERS)
    ours = ConditionalUNet(**OURS)
    ours.load_state_dict(diffusers_unet_to_hfldm(diffusers_unet.state_dict()))
    b = args.batch_size
    batch = {
        "z_t": torch.randn(b, 4, 8, 8),
        "t": torch.randint(0, 1000, (b,)),
        "context": torch.randn(b, 16, 384),
        "noise": torch.randn(b, 4, 8, 8),
    }
    with torch.no_grad():
        ref = diffusers_unet(batch["z_t"], batch["t"], batch["context"]).sample
        diff = (ours(batch["z_t"], batch["t"], batch["context"]).sample - ref).abs().max().item()
    n_ours, n_diffusers = parameter_count(ours), parameter_count(diffusers_unet)
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, batch {b}, latent 4x8x8, context 16x384")
    print(f"timed step: {args.step}" + (f", AdamW {args.adamw}" if args.step == "train" else ", no grad"))
    print(f"ours:      ConditionalUNet {OURS}")
    print(f"diffusers: UNet2DConditionModel {DIFFUSERS}")
    print(f"parameters: ours {n_ours:,}  diffusers {n_diffusers:,}  ({n_ours / n_diffusers - 1:+.2%})")
    print(f"same weights -> max |output difference| = {diff:.2e}")

    rows = []
    for mode in args.modes.split(","):
        if mode not in MODES:
            raise SystemExit(f"--modes: unknown mode {mode!r}; choose from {', '.join(MODES)}")
        if mode == "bf16" and not has_fast_bf16("cpu") and not args.force_bf16:
            print(f"\n[{mode}] skipped: this CPU has no AVX512-BF16 or AMX, bf16 would be emulated")
            print("        (torch.cpu._is_avx512_bf16_supported() is False); --force-bf16 runs it anyway")
            continue
        print(f"\n[{mode}]")
        rows.append((mode, *run_mode(mode, ours, diffusers_unet, batch, args)))
    print(f"\n{args.step} step, batch {b}, {threads} thread(s)")
    print("| mode | ours ms | diffusers ms | ratio ours/diffusers | pairs kept |")
    print("|---|---|---|---|---|")
    for mode, ours_ms, diffusers_ms, ratio, kept in rows:
        print(f"| {mode} | {ours_ms:.0f} | {diffusers_ms:.0f} | {ratio:.3f} | {kept}/{args.reps} |")


if __name__ == "__main__":
    run_benchmark(main)
