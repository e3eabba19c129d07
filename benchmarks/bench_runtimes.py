"""The bundled text model on torch, OpenVINO and ONNX Runtime: 4 guided images × 25 DDIM steps, in one run.

Modes: torch eager fp32 (the reference) and bf16 (`hfldm.precision.half_precision`), torch compiled bf16
(`--modes` with "torch-compiled-bf16": a minute of compiling), OpenVINO fp32 and bf16 (its inference
precision hint) with dynamic shapes and with static ones (`hfldm export --batch-size 4`), ONNX Runtime
fp32. Each mode runs in interleaved pairs with torch fp32 (`bench_unet.interleaved_pairs`: alternating
order, a matmul probe before and after each pair, pairs during which the machine stalled dropped); the
figure is the median of the per-pair ratios mode / torch fp32, beside the median seconds.

Apart from these, each mode's cold start in a fresh process (`--cold`): import, load, the first 4-image call
(OpenVINO compiles its graphs at load; torch.compile at the first call, with an empty inductor cache as a
fresh Space has), and the process's peak resident memory after 3 more calls.

    python benchmarks/bench_runtimes.py [--modes ...] [--exports DIR] [--reps 9] [--out docs/speed_runtimes]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()
import torch  # noqa: E402  (after T0: the cold start counts the imports)
from bench_unet import interleaved_pairs, timed  # noqa: E402

from hfldm.eval.outputs import output_file, run_benchmark  # noqa: E402
from hfldm.pipelines.loading import load_pipeline as load_torch  # noqa: E402
from hfldm.precision import half_precision  # noqa: E402
from hfldm.runtime import export_pipeline, load_pipeline  # noqa: E402
from hfldm.schedulers.ddim import DDIMScheduler  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["grinning face", "red apple", "cat face", "rocket"]
# mode -> (backend, precision, static shapes)
MODES = {
    "torch-fp32": ("torch", "float32", False),
    "torch-bf16": ("torch", "bfloat16", False),
    "torch-compiled-bf16": ("torch-compiled", "bfloat16", False),
    "openvino-fp32": ("openvino", "float32", False),
    "openvino-bf16": ("openvino", "bfloat16", False),
    "openvino-static-fp32": ("openvino", "float32", True),
    "openvino-static-bf16": ("openvino", "bfloat16", True),
    "onnx-fp32": ("onnx", "float32", False),
}
DEFAULT_MODES = "torch-bf16,openvino-fp32,openvino-bf16,openvino-static-fp32,openvino-static-bf16,onnx-fp32"


def export_folder(model: str, exports: Path, fmt: str, static: bool) -> Path:
    """The export of `model` in `fmt` (static: 4 images per call at its native size), made if missing."""
    folder = exports / f"{Path(model).name}-{fmt}{'-static' if static else ''}"
    if not folder.exists():
        export_pipeline(model, folder, fmt, batch_size=len(PROMPTS) if static else None)
    return folder


def load(mode: str, model: str, exports: Path, threads: int | None = None):
    """The pipeline of `mode`, DDIM, no progress bar; the runtimes on `threads` threads (torch's are set
    for the process)."""
    backend, precision, static = MODES[mode]
    if backend.startswith("torch"):
        pipe = load_torch(model)
        pipe = half_precision(pipe, torch.bfloat16) if precision == "bfloat16" else pipe
        if backend == "torch-compiled":
            pipe.unet = torch.compile(pipe.unet, fullgraph=True)
    else:
        pipe = load_pipeline(export_folder(model, exports, backend, static), precision, threads)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sampler(pipe):
    return lambda: pipe(PROMPTS, num_inference_steps=25, generator=torch.Generator().manual_seed(0))


def cold(mode: str, model: str, exports: Path, threads: int | None) -> dict:
    """In this (fresh) process: seconds to import, load, draw the first 4 images; peak RSS after 3 more."""
    imported = time.perf_counter() - T0
    start = time.perf_counter()
    pipe = load(mode, model, exports, threads)
    loaded = time.perf_counter() - start
    fn = sampler(pipe)
    first = timed(fn)[0]
    for _ in range(3):
        fn()
    peak_mib = peak_rss_mib()
    return dict(
        import_s=imported,
        load_s=loaded,
        first_call_s=first,
        cold_start_s=loaded + first,
        peak_rss_mib=peak_mib,
    )


def peak_rss_mib() -> float:
    """This process's peak resident memory, MiB: VmHWM (ru_maxrss would keep the parent's peak across the
    fork + exec of `cold_in_child`)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cold_in_child(mode: str, args) -> dict:
    """`cold` in a fresh interpreter, with an empty inductor cache (a fresh Space's compile)."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        argv = [sys.executable, __file__, "--cold", mode, "--model", args.model, "--exports", args.exports]
        argv += ["--threads", str(args.threads)] if args.threads else []
        out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "hfldm-emoji"))
    parser.add_argument(
        "--modes", default=DEFAULT_MODES, help=f"compared with torch-fp32; of {', '.join(MODES)}"
    )
    parser.add_argument("--exports", default=str(Path(tempfile.gettempdir()) / "hfldm-bench-exports"))
    parser.add_argument("--reps", type=int, default=9, help="timed pairs per mode")
    parser.add_argument("--threads", type=int, default=None, help="torch's and the runtimes' threads")
    parser.add_argument(
        "--stall", type=float, default=1.5, help="drop a pair if a probe exceeds this × its min"
    )
    parser.add_argument(
        "--cold-modes",
        default=None,
        help="modes whose cold start is measured (default: torch-fp32 and --modes; none: no cold starts)",
    )
    parser.add_argument("--cold", default=None, help=argparse.SUPPRESS)  # the child of cold_in_child
    parser.add_argument("--out", default=str(ROOT / "docs" / "speed_runtimes"), help="prefix of the .json")
    args = parser.parse_args()
    exports = Path(args.exports)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cold:
        print(json.dumps(cold(args.cold, args.model, exports, args.threads)))
        return
    modes = [m for m in args.modes.split(",") if m not in ("", "torch-fp32")]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"--modes: unknown {', '.join(unknown)}; expected some of {', '.join(MODES)}")
    for mode in modes:  # exports first, so that no timing includes one
        if MODES[mode][0] in ("openvino", "onnx"):
            export_folder(args.model, exports, MODES[mode][0], MODES[mode][2])
    results = {"threads": torch.get_num_threads(), "torch": torch.__version__, "cpu": cpu_name(), "modes": {}}
    reference = sampler(load("torch-fp32", args.model, exports, args.threads))
    reference()
    for mode in modes:
        fn = sampler(load(mode, args.model, exports, args.threads))
        fn()  # warm-up (OpenVINO's first inference, torch.compile's compile)
        pairs = interleaved_pairs({mode: fn, "torch-fp32": reference}, args.reps, args.stall)
        if not pairs:
            results["modes"][mode] = "every pair dropped as stalled"
            continue
        results["modes"][mode] = dict(
            seconds=statistics.median(p[mode][0] for p in pairs),
            torch_fp32_seconds=statistics.median(p["torch-fp32"][0] for p in pairs),
            ratio_to_torch_fp32=statistics.median(p[mode][0] / p["torch-fp32"][0] for p in pairs),
            pairs_kept=len(pairs),
            reps=args.reps,
        )
        print(mode, json.dumps(results["modes"][mode]))
    cold_modes = ["torch-fp32", *modes] if args.cold_modes is None else args.cold_modes.split(",")
    cold_modes = [mode for mode in cold_modes if mode not in ("", "none")]
    if cold_modes:
        results["cold_start"] = {}
        for mode in cold_modes:
            results["cold_start"][mode] = cold_in_child(mode, args)
            print("cold", mode, json.dumps(results["cold_start"][mode]))
    output_file(Path(args.out), ".json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {output_file(Path(args.out), '.json')}")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    run_benchmark(main)
