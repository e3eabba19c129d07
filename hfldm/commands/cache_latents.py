"""`hfldm cache-latents --vae DIR --dataset SRC --out DIR`: encode a dataset once with a frozen autoencoder.

Training reads the result with `--cached_latents DIR` (hfldm.data.latent_cache.load_latent_cache).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from accelerate import PartialState

from hfldm.data.arguments import add_data_arguments, data_arguments_from


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "cache-latents", help="store the autoencoder posterior (and text embeddings) of every image"
    )
    parser.add_argument(
        "--vae",
        required=True,
        help="autoencoder folder or hub id: hfldm's KL/VQ, diffusers' AutoencoderKL/VQModel/AutoencoderTiny",
    )
    parser.add_argument(
        "--dataset", help="a local folder (save_to_disk or imagefolder) or a hub dataset name"
    )
    parser.add_argument("--out", required=True, help="output folder of the cache")
    parser.add_argument("--text_encoder", default=None, help='frozen text encoder folder, or "minilm"')
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument(
        "--num_shards",
        type=int,
        default=None,
        help="write K Parquet shards + an index (streamable; `accelerate launch` writes them in parallel; "
        "rerun to resume) instead of one saved dataset",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_data_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hfldm.autoencoders.loading import load_autoencoder
    from hfldm.data.latent_cache import cache_latents, load_text_encoder

    if args.dataset is not None:  # --dataset picks the local folder or the hub name for you
        key = "train_data_dir" if Path(args.dataset).exists() else "dataset_name"
        data = data_arguments_from(args, **{key: args.dataset})
    else:
        data = data_arguments_from(args)
    if args.batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {args.batch_size}")
    start = time.perf_counter()
    device = args.device
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and torch.cuda.is_available():  # accelerate launch
        device = PartialState().device  # this process's GPU
    vae = load_autoencoder(args.vae, argument="--vae").to(device)
    text_model = None
    if args.text_encoder:
        tokenizer, text_encoder = load_text_encoder(args.text_encoder)
        text_model = (tokenizer, text_encoder.to(device))
    if args.num_shards is not None:
        return run_sharded(args, data, vae, text_model, start)
    cache = cache_latents(data, vae, args.out, text_model=text_model, batch_size=args.batch_size)
    shape = tuple(cache[0]["latent_mean"].shape)
    print(f"cached {len(cache)} rows, latents {shape}, in {time.perf_counter() - start:.1f} s -> {args.out}")
    return 0


def run_sharded(args: argparse.Namespace, data, vae, text_model, start: float) -> int:
    """--num_shards: this process's shards (hfldm.data.sharded_cache); process 0 reports the whole cache."""
    from hfldm.data.sharded_cache import cache_latents_sharded

    info = cache_latents_sharded(
        data, vae, args.out, args.num_shards, text_model=text_model, batch_size=args.batch_size
    )
    if info is not None:
        seconds = time.perf_counter() - start
        print(
            f"cached {info['num_rows']} rows in {args.num_shards} shards, latents "
            f"{tuple(info['latent_shape'])}, in {seconds:.1f} s -> {args.out}"
        )
    return 0
