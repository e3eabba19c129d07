"""Random stand-ins with the exact architectures of Stable Diffusion's autoencoder (stabilityai/sd-vae-ft-mse:
diffusers' AutoencoderKL defaults, f = 8, 4 latent channels, scale 0.18215) and CLIP ViT-L/14's text tower
(12 layers, width 768, 77 tokens), saved to folders: what `training/configs/ldm_sd_vae_clip256.yaml` costs
per step can be measured offline, since the cost does not depend on the weights.

    python benchmarks/sd_like_parts.py --out /tmp/byo
    accelerate launch training/train_ldm.py --config training/configs/ldm_sd_vae_clip256.yaml \
        --autoencoder /tmp/byo/sd-vae --text_encoder /tmp/byo/clip-l --train_data_dir data/emoji/64 \
        --max_train_steps 6 --logging_steps 1 --validation_steps 0 --output_dir /tmp/byo/run
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hfldm.eval.outputs import run_benchmark

LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"


def save_sd_vae(folder: Path) -> None:
    from diffusers import AutoencoderKL

    blocks = dict(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512), layers_per_block=2, sample_size=256, **blocks
    )
    vae.register_to_config(scaling_factor=0.18215)
    vae.save_pretrained(folder)


def save_clip_l(folder: Path) -> None:
    """CLIP-L's text tower with a character-level BPE tokenizer (the real one needs the Hub)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {
        t: i
        for i, t in enumerate(["<|startoftext|>", "<|endoftext|>", *LETTERS, *(c + "</w>" for c in LETTERS)])
    }
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77
    ).save_pretrained(folder)
    config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        max_position_embeddings=77,
        projection_dim=768,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    CLIPTextModel(config).save_pretrained(folder)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="folder for sd-vae/ and clip-l/")
    out = Path(parser.parse_args().out)
    save_sd_vae(out / "sd-vae")
    save_clip_l(out / "clip-l")
    print(f"wrote {out / 'sd-vae'} and {out / 'clip-l'}")


if __name__ == "__main__":
    run_benchmark(main)
