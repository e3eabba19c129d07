"""Sketch-to-emoji on the held-out emoji (LDM §4.3.2): the sketch model against the text model without one.

    python benchmarks/sketch_eval.py --model models/hfldm-emoji-sketch --text-model models/hfldm-emoji \
        --dataset data/emoji/32 --out docs/sketch

Every held-out image x gives its edge map e(x) (`hfldm.training.sketch.edge_map`, the clean map, no doodle
noise) drawn as a sketch (dark strokes on white) and its caption as the prompt. Methods: the sketch model
with sketch and caption; the text model with the caption alone (the reference: what the sketch adds); the
real image (the ceiling). Reported: edge F1 of the output's edges against e(x) within TOLERANCE px
(`hfldm.training.sketch.edge_f1`), FID / KID with `hfldm eval`'s feature network at 32 px against the
training images, and caption retrieval (top-1 / top-5 among the distinct held-out captions). Writes OUT.json,
OUT.md (the table), OUT.png (16 rows: sketch | sketch model | text model | real).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from hfldm.commands.eval import load_feature_model
from hfldm.eval.emoji_split import load_emoji_split
from hfldm.eval.fid import compute_fid_kid
from hfldm.eval.outputs import output_file, run_benchmark
from hfldm.eval.retrieval import retrieval_accuracy
from hfldm.pipelines.loading import load_pipeline
from hfldm.pipelines.pipeline_latent_diffusion_sketch import LatentDiffusionSketchPipeline
from hfldm.resources import bundled
from hfldm.training.sketch import TOLERANCE, edge_f1, edge_map
from hfldm.training.validation import comparison_grid


@torch.no_grad()
def draw(pipe, sketches, captions, steps: int, guidance: float, seed: int, batch_size: int) -> torch.Tensor:
    """Images (N, 3, H, W) in [0, 1] of the pipeline, image i from a generator seeded by seed + i; `sketches`
    (N, 1, H, W) in [0, 1] dark on white, or None for the text model."""
    out = []
    for s in range(0, len(captions), batch_size):
        b = slice(s, s + batch_size)
        kwargs = {} if sketches is None else {"image": sketches[b].expand(-1, 3, -1, -1)}
        images = pipe(
            prompt=captions[b],
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=[torch.Generator().manual_seed(seed + s + i) for i in range(len(captions[b]))],
            output_type="pt",
            **kwargs,
        ).images
        out.append(images.float().cpu())
    return torch.cat(out)


def scores(images, edges, captions, candidates, reference, model, features) -> dict:
    fid = compute_fid_kid(reference, images, features, kid_subset_size=min(100, len(images)))
    retrieval = retrieval_accuracy(model, images, captions, candidates=candidates)
    return {
        "edge_f1": edge_f1(images * 2 - 1, edges),
        "fid": fid["fid"],
        "kid": fid["kid_mean"],
        "top1": retrieval["top1"],
        "top5": retrieval["top5"],
        "chance_top5": retrieval["chance_top5"],
        "feature_network": fid["feature_network"],
    }


def table(results: dict, header: str) -> str:
    lines = [header, "", f"| method | edge F1 (±{TOLERANCE} px) ↑ | FID ↓ | KID ↓ | top-1 ↑ | top-5 ↑ |"]
    lines.append("|---|---|---|---|---|---|")
    for name, r in results.items():
        cells = [
            f"{r['edge_f1']:.3f}",
            f"{r['fid']:.2f}",
            f"{r['kid']:.4f}",
            f"{r['top1']:.3f}",
            f"{r['top5']:.3f}",
        ]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=str(bundled("hfldm-emoji-sketch")), help="sketch pipeline")
    parser.add_argument("--text-model", default=str(bundled("hfldm-emoji")), help="the reference")
    parser.add_argument("--dataset", default="data/emoji/32")
    parser.add_argument("--num-images", type=int, default=None, help="first N held-out images (default all)")
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps of both LDMs")
    parser.add_argument("--guidance-scale", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--feature-model", default="models/hfldm-textimage")
    parser.add_argument("--out", default="docs/sketch", help="writes OUT.json, OUT.md, OUT.png")
    args = parser.parse_args()

    split = load_emoji_split(args.dataset)
    test, reference = split["test"], split["train"].images
    n = min(args.num_images or len(test.images), len(test.images))
    x, captions = test.images[:n], list(test.captions[:n])
    candidates = sorted(set(test.captions))
    edges = edge_map(x * 2 - 1)  # the held-out images' clean edge maps: the sketches
    pipe = load_pipeline(args.model, "--model", pipeline_class=LatentDiffusionSketchPipeline)
    text = load_pipeline(args.text_model, "--text-model")
    for p in (pipe, text):
        p.set_progress_bar_config(disable=True)
    common = dict(steps=args.steps, guidance=args.guidance_scale, seed=args.seed, batch_size=args.batch_size)
    start = time.perf_counter()
    sketched = draw(pipe, 1 - edges, captions, **common)
    seconds = (time.perf_counter() - start) / n
    methods = {
        f"sketch model, sketch + caption ({args.steps} DDIM steps, w = {args.guidance_scale})": sketched,
        "text model, caption only (reference)": draw(text, None, captions, **common),
        "real held-out x": x,
    }
    model, features = load_feature_model(args.feature_model)
    results = {
        name: scores(images, edges, captions, candidates, reference, model, features)
        for name, images in methods.items()
    }
    first = next(iter(results))
    header = (
        f"{n} held-out emoji of {args.dataset} at {x.shape[-1]} px, each with its own edge map as the sketch "
        f"({float(edges.mean()):.0%} of the pixels are strokes); model {args.model}, reference "
        f"{args.text_model}, seed {args.seed}; {seconds:.2f} s per sketch-model image on this machine; "
        f"edge F1 of the output's edges against the sketch within {TOLERANCE} px; FID / KID against the "
        f"{len(reference)} training images, feature network `{results[first]['feature_network']}`; "
        f"retrieval among {len(candidates)} captions (chance top-5 {results[first]['chance_top5']:.3f})"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    output_file(out, ".json").write_text(json.dumps({"header": header, "results": results}, indent=2) + "\n")
    output_file(out, ".md").write_text(table(results, header))
    picks = list(methods.values())
    columns = [(1 - edges[:16]).expand(-1, 3, -1, -1), picks[0][:16], picks[1][:16], x[:16]]
    comparison_grid([c * 2 - 1 for c in columns], scale=2).save(output_file(out, ".png"))
    print(table(results, header))


if __name__ == "__main__":
    run_benchmark(main)
