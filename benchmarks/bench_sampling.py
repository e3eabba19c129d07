"""Sampling speed of the bundled text model end to end, how cost grows with the batch, and the start-up of the
demo and the Space.

Sections (`--sections`, comma-separated):
  e2e      4 guided images × 25 DDIM steps (τ_θ + U-Net + decode) with the bundled model, in each mode:
           fp32 eager, bf16 (U-Net and τ_θ in bf16, autoencoder and sampler fp32: `hfldm.precision`;
           skipped on CPUs without AVX512-BF16 / AMX unless --force-bf16), compiled (torch.compile of the
           U-Net, fullgraph; its compile time is printed). fp32 also runs interleaved with the previous
           design -- τ_θ's tokens padded to the tokenizer's full length and τ_θ("") encoded in every call --
           for the ratio that the "less work" changes bought; plus where a call's time goes. bf16 runs
           interleaved with fp32 (their ratio); bf16-compiled is torch.compile of the bf16 U-Net.
  scaling  time per image of guided sampling (--scaling-steps DDIM steps) and of a training step (the
           bundled U-Net, fp32, AdamW as hfldm's training makes it) against the batch size, as a plot.
  startup  wall time of `python -m hfldm.demo` (the `make demo` command, 16 images, with and without the
           64 px upscaling), and the Space's time from `python space/app.py` to its first image through
           gradio_client (4 images, 25 steps).

Timings are medians over --reps; a small matmul probe before and after each timed call flags calls during
which the machine stalled (shared VMs), and those are dropped (as benchmarks/bench_unet.py).

    python benchmarks/bench_sampling.py [--sections e2e,scaling,startup] [--out docs/speed_sampling]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_unet import interleaved_pairs, probe, timed

from hfldm.eval.outputs import output_file, run_benchmark
from hfldm.pipelines.loading import load_pipeline
from hfldm.pipelines.pipeline_latent_diffusion import LatentDiffusionPipeline
from hfldm.precision import half_precision, has_fast_bf16
from hfldm.schedulers.ddim import DDIMScheduler
from hfldm.text import encode_text

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["grinning face", "red apple", "cat face", "rocket"]


def guarded(fn, reps: int, stall: float, probe_min: float) -> list[float]:
    """Wall seconds of `reps` calls of `fn`, less the calls during which the probe ran > stall × its min."""
    kept = []
    for _ in range(reps):
        before = probe()
        seconds = timed(fn)[0]
        if max(before, probe()) <= stall * probe_min:
            kept.append(seconds)
    return kept


def full_length_encoding(pipe: LatentDiffusionPipeline) -> LatentDiffusionPipeline:
    """The same pipeline with the previous prompt encoding: every text padded to the tokenizer's length and
    τ_θ("") encoded with the prompts in every call."""
    ref = LatentDiffusionPipeline(**pipe.components, text_attention_mask=pipe.config.text_attention_mask)
    ref.set_progress_bar_config(disable=True)

    def encode_prompt(
        self, prompt, num_images_per_prompt=1, do_classifier_free_guidance=True, negative_prompt=None, **_
    ):
        n, do_cfg = len(prompt), do_classifier_free_guidance
        texts = ((negative_prompt or [""] * n) if do_cfg else []) + list(prompt)
        hidden, mask = encode_text(
            self.tokenizer, self.text_encoder, texts, self._execution_device, self.config.text_attention_mask
        )
        hidden = hidden.to(self.unet.dtype).repeat_interleave(num_images_per_prompt, dim=0)
        mask = mask.repeat_interleave(num_images_per_prompt, dim=0) if mask is not None else None
        cut = (n if do_cfg else 0) * num_images_per_prompt  # the unconditional rows come first
        masks = (mask[cut:], mask[:cut] if do_cfg else None) if mask is not None else (None, None)
        return hidden[cut:], masks[0], hidden[:cut] if do_cfg else None, masks[1]

    ref.encode_prompt = types.MethodType(encode_prompt, ref)
    return ref


def ddim(pipe: LatentDiffusionPipeline) -> LatentDiffusionPipeline:
    """`pipe` with DDIM sampling and no progress bar."""
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sampler(pipe, prompts: list[str], steps: int):
    return lambda: pipe(prompts, num_inference_steps=steps, generator=torch.Generator().manual_seed(0))


def breakdown(pipe: LatentDiffusionPipeline, reps: int) -> dict[str, float]:
    """Milliseconds of a guided 4-image call's parts: τ_θ, one U-Net step (batch 8), the decode of 4."""
    with torch.inference_mode():
        encode = lambda: pipe.encode_conditions(PROMPTS, None, None, 1, 3.0)  # noqa: E731
        _, _, kwargs = encode()
        size = pipe.unet.config.sample_size
        z = torch.randn(8, pipe.unet.config.out_channels, size, size)
        t = torch.tensor(500)
        unet = lambda: pipe.unet(z.to(pipe.unet.dtype), t, **kwargs)  # noqa: E731
        decode = lambda: pipe.decode_latents(z[:4], "pt")  # noqa: E731
        parts = {
            "tau_theta (prompts + cached uncond)": encode,
            "U-Net step (batch 8)": unet,
            "decode 4": decode,
        }
        return {
            name: statistics.median(timed(fn)[0] for _ in range(reps)) * 1e3 for name, fn in parts.items()
        }


def e2e(model: str, args, probe_min: float) -> dict:
    """Seconds per 4 guided images × 25 DDIM steps in each mode (medians), and fp32's ratio to the previous
    design."""
    results = {}
    base = ddim(load_pipeline(model))
    ref = full_length_encoding(base)
    run, run_ref = sampler(base, PROMPTS, 25), sampler(ref, PROMPTS, 25)
    run(), run_ref()  # warm-up
    ratios, ours, before = [], [], []
    for rep in range(args.reps):
        p0 = probe()
        pair = [timed(f)[0] for f in ((run, run_ref) if rep % 2 == 0 else (run_ref, run))]
        pair = pair if rep % 2 == 0 else pair[::-1]
        if max(p0, probe()) > args.stall * probe_min:
            continue
        ours.append(pair[0]), before.append(pair[1]), ratios.append(pair[0] / pair[1])
    results["fp32"] = dict(seconds=statistics.median(ours), kept=len(ours), reps=args.reps)
    results["fp32, previous prompt encoding"] = dict(seconds=statistics.median(before), kept=len(before))
    results["ratio new / previous (median of pairs)"] = statistics.median(ratios)
    results["fp32 breakdown, ms"] = breakdown(base, args.reps)
    print(json.dumps(results, indent=1))

    modes, bf16_ok = set(args.modes.split(",")), has_fast_bf16() or args.force_bf16
    skipped = "skipped: no AVX512-BF16 / AMX on this CPU (bf16 emulated); --force-bf16 runs it"
    if "bf16" in modes and bf16_ok:  # interleaved with fp32: the ratio survives the VM's stalls
        bf16_pipe = ddim(half_precision(load_pipeline(model), torch.bfloat16))
        bf16 = sampler(bf16_pipe, PROMPTS, 25)
        bf16()
        pairs = interleaved_pairs({"bf16": bf16, "fp32": run}, max(2, args.reps // 2), args.stall)
        results["bf16"] = dict(
            seconds=statistics.median(p["bf16"][0] for p in pairs), kept=len(pairs), fast_bf16=has_fast_bf16()
        )
        results["ratio bf16 / fp32 (median of pairs)"] = statistics.median(
            p["bf16"][0] / p["fp32"][0] for p in pairs
        )
        results["bf16 breakdown, ms"] = breakdown(bf16_pipe, args.reps)
    elif "bf16" in modes:
        results["bf16"] = skipped
    print("bf16:", results.get("bf16"))

    for mode, dtype in (("compiled", torch.float32), ("bf16-compiled", torch.bfloat16)):
        if mode not in modes:
            continue
        if dtype == torch.bfloat16 and not bf16_ok:
            results[mode] = skipped
            continue
        pipe = ddim(half_precision(load_pipeline(model), dtype))
        pipe.unet = torch.compile(pipe.unet, fullgraph=True)
        fn = sampler(pipe, PROMPTS, 25)
        first = timed(fn)[0]
        kept = guarded(fn, args.reps, args.stall, probe_min)
        results[mode] = dict(seconds=statistics.median(kept), kept=len(kept), first_call_s=first)
        print(f"{mode}:", results[mode])
    return results


def scaling(model: str, args, probe_min: float, dtype: torch.dtype = torch.float32) -> dict:
    """{batch: (sampling ms per image per step, train-step ms per sample)}: sampling with the U-Net and τ_θ in
    `dtype`, training in fp32 or, for bf16, under bf16 autocast (train_ldm.py --mixed_precision bf16)."""
    pipe = ddim(half_precision(load_pipeline(model), dtype))
    unet = load_pipeline(model).unet
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-5, fused=True)  # as hfldm.training.runtime
    captions = (PROMPTS * 16)[:64]
    rows = {}
    for batch in [int(b) for b in args.batches.split(",")]:
        steps = args.scaling_steps
        fn = sampler(pipe, captions[:batch], steps)
        fn()
        kept = guarded(fn, args.scaling_reps, args.stall, probe_min)
        sample_ms = statistics.median(kept) * 1e3 / batch / steps if kept else float("nan")
        with torch.no_grad():
            hidden, mask = encode_text(pipe.tokenizer, pipe.text_encoder, captions[:batch], padding="longest")
        size = unet.config.sample_size
        z = torch.randn(batch, unet.config.out_channels, size, size)
        t = torch.randint(0, 1000, (batch,))

        def train_step(z=z, t=t, hidden=hidden, mask=mask):
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                eps = unet(z, t, encoder_hidden_states=hidden.float(), encoder_attention_mask=mask).sample
            F.mse_loss(eps.float(), z).backward()
            optimizer.step()

        unet.train()
        train_step()
        kept = guarded(train_step, args.scaling_reps, args.stall, probe_min)
        unet.eval()
        train_ms = statistics.median(kept) * 1e3 / batch if kept else float("nan")
        rows[batch] = (sample_ms, train_ms)
        print(f"batch {batch:3d}: sampling {sample_ms:7.2f} ms/image/step, train {train_ms:7.2f} ms/sample")
    return rows


def plot_scaling(curves: dict[str, dict], out: Path, steps: int) -> None:
    """One line per dtype (`curves`: {dtype name: scaling()'s rows}) in each of the two panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, i, title in (
        (axes[0], 0, f"guided sampling, ms per image per step ({steps} DDIM steps)"),
        (axes[1], 1, "training step, ms per sample (fused AdamW)"),
    ):
        for name, rows in curves.items():
            batches = sorted(rows)
            ax.plot(batches, [rows[b][i] for b in batches], "o-", label=name)
        ax.legend(fontsize=8)
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set_xlabel("batch size (images)")
        ax.set_title(title, fontsize=9)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.suptitle("models/hfldm-emoji (14.3 M-parameter U-Net, 8×8×4 latents) on this machine", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def startup(model: str, args) -> dict:
    """Seconds: `python -m hfldm.demo` (with and without upscaling), and the Space to its first image."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    results = {}
    for name, extra in (("demo (16 images, 32 px -> 64 px)", []), ("demo --no-upscale", ["--no-upscale"])):
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "hfldm.demo", "--model", model, "--out", "/tmp/bench_demo.png", *extra],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        results[name] = dict(wall_s=time.perf_counter() - start, reported=out.strip().splitlines()[0])
        print(name, results[name])
    results["space"] = space_first_image(model, env)
    print("space", results["space"])
    return results


def space_first_image(model: str, env: dict) -> dict:
    """Seconds from starting space/app.py to its HTTP answer, and to its first 4-image result."""
    import socket
    import urllib.request

    from gradio_client import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**env, "HFLDM_MODEL": model, "HFLDM_HOST": "127.0.0.1", "HFLDM_PORT": str(port)}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "space" / "app.py")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.perf_counter() - start > 300:
                    raise RuntimeError("space/app.py did not start") from None
                time.sleep(0.2)
        ready = time.perf_counter() - start
        client = Client(url, verbose=False)
        request = time.perf_counter()
        client.predict("grinning face", "", 25, 3.0, 0, False, "DDIM", 4, 32, api_name="/generate")
        done = time.perf_counter()
        return dict(server_ready_s=ready, first_request_s=done - request, to_first_image_s=done - start)
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "hfldm-emoji"))
    parser.add_argument("--sections", default="e2e,scaling,startup")
    parser.add_argument(
        "--modes", default="fp32,bf16,compiled,bf16-compiled", help="e2e modes (fp32 always runs)"
    )
    parser.add_argument("--force-bf16", action="store_true", help="time bf16 even where it is emulated")
    parser.add_argument("--reps", type=int, default=9, help="timed calls (pairs) per e2e mode")
    parser.add_argument("--batches", default="1,2,4,8,16,32,64")
    parser.add_argument("--scaling-steps", type=int, default=5, help="DDIM steps per sampling call")
    parser.add_argument("--scaling-reps", type=int, default=3)
    parser.add_argument(
        "--stall", type=float, default=1.5, help="drop a call if a probe exceeds this × its min"
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "speed_sampling"), help="prefix of .json / .png")
    args = parser.parse_args()
    probe_min = min(probe() for _ in range(5))
    out, results = Path(args.out), {"threads": torch.get_num_threads(), "torch": torch.__version__}
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(output_file(out, ".json").read_text()) if output_file(out, ".json").exists() else {}
    sections = args.sections.split(",")
    if "e2e" in sections:
        results["e2e"] = e2e(args.model, args, probe_min)
    if "scaling" in sections:
        dtypes = {"fp32": torch.float32} | ({"bf16": torch.bfloat16} if has_fast_bf16() else {})
        curves = {name: scaling(args.model, args, probe_min, dtype) for name, dtype in dtypes.items()}
        row = lambda s, t: dict(sample_ms_per_image_step=s, train_ms_per_sample=t)  # noqa: E731
        results["scaling"] = {
            name: {str(b): row(*times) for b, times in rows.items()} for name, rows in curves.items()
        }
        plot_scaling(curves, output_file(out, ".png"), args.scaling_steps)
    if "startup" in sections:
        results["startup"] = startup(args.model, args)
    output_file(out, ".json").write_text(json.dumps(previous | results, indent=1) + "\n")
    print(f"wrote {output_file(out, '.json')}")


if __name__ == "__main__":
    run_benchmark(main)
