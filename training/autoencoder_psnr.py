"""PSNR of an autoencoder's reconstructions D(E(x)) at a resolution, beside bicubic 2× upsampling and what a
resize of the low-res image to the latent grid costs: the numbers behind ldm_superres_emoji64.yaml.

    python training/autoencoder_psnr.py --autoencoder models/hfldm-emoji --dataset data/emoji/64

Prints PSNR (dB, `hfldm.eval.reconstruction.psnr`) on the first --num-images of --split:
- D(E(x)) of the autoencoder (posterior mean), the SR model's ceiling;
- bicubic upsampling of the s× smaller image y (the baseline);
- bicubic upsampling of y after a resize to the latent grid (resolution / f): what the "resize" layout keeps.
"""

import argparse

import datasets
import numpy as np
import torch

from hfldm.autoencoders.latent_space import latent_space
from hfldm.autoencoders.loading import load_autoencoder
from hfldm.eval.reconstruction import psnr
from hfldm.training.superres import bicubic_down, bicubic_up


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--autoencoder", required=True, help="autoencoder folder, or a pipeline folder")
    parser.add_argument("--dataset", required=True, help="save_to_disk folder of the high-res images")
    parser.add_argument("--split", default="test")
    parser.add_argument("--num-images", type=int, default=64)
    parser.add_argument("--sr-factor", type=int, default=2)
    args = parser.parse_args()
    rows = datasets.load_from_disk(args.dataset)[args.split].select(range(args.num_images))
    arrays = [np.asarray(image.convert("RGB"), dtype=np.float32) for image in rows["image"]]
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 127.5 - 1  # (N, 3, H, W) in [-1, 1]
    ae = latent_space(load_autoencoder(args.autoencoder))
    x_hat = torch.cat([ae.decode_latents(ae.latents(b)) for b in x.split(16)]).clamp(-1, 1)
    s, f = args.sr_factor, ae.downsample_factor
    y = bicubic_down(x, s).clamp(-1, 1)
    resized = bicubic_down(y, f // s).clamp(-1, 1) if f > s else y  # y resized to the latent grid
    print(f"{len(x)} images of {args.split}, {x.shape[-1]} px; autoencoder f = {f}, SR {s}x")
    print(f"  D(E(x)) reconstruction   PSNR {psnr(x_hat, x, value_range=(-1, 1)):.2f} dB")
    print(f"  bicubic {s}x               PSNR {psnr(bicubic_up(y, s), x, value_range=(-1, 1)):.2f} dB")
    lossy = psnr(bicubic_up(resized, f), x, value_range=(-1, 1))
    print(f"  y resized to {x.shape[-1] // f} px, bicubic PSNR {lossy:.2f} dB")


if __name__ == "__main__":
    main()
