"""The super-resolution task of train_ldm.py (LDM §4.4): the U-Net's input [z_t, y] with y the degraded image.

The training pair of a high-resolution image x (the batch's pixel_values, in [-1, 1]) is (x, y): y is x
blurred by a Gaussian of σ_b ~ U(0, --sr_blur_sigma) high-res pixels, downsampled bicubically (antialiased)
by s = --sr_factor, plus N(0, σ_n² I) noise with σ_n ~ U(0, --sr_noise_std) (a light version of the paper's
"bsr" degradation; with --sr_degradation_mix the kernel is drawn from bicubic / bilinear / area and JPEG
follows, hfldm.training.degradation_mix), then brought to the latent grid by a space-to-depth of r = f / s
(`hfldm.unets.condition_layout`): ε_θ([z_t, y], t). The draws come from the sample's own generator of the
stream SUPERRES_STREAM, seeded by (seed, micro step, global index), so resumed and multi-process runs
degrade every image as the uninterrupted run does.

`SuperResolutionTask` is one of train_ldm.py's tasks (`hfldm.training.tasks`): it gives the U-Net y, saves
a LatentDiffusionSuperResolutionPipeline and validates on low-res | bicubic | SR | real grids with their
PSNRs (the clean bicubic downsampling of fixed training images; call those on the main process only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hfldm.autoencoders.latent_space import latent_space
from hfldm.eval.reconstruction import psnr
from hfldm.training.degradation_mix import DegradationMix, downsample, jpeg
from hfldm.training.latents import mirrored
from hfldm.training.randomness import global_indices, sample_generators
from hfldm.training.tasks import Task, TaskContext
from hfldm.training.validation import comparison_grid
from hfldm.unets.condition_layout import IMAGE_CHANNELS, to_latent_grid

SUPERRES_STREAM = 2  # after randomness.TRAINING_STREAM and SCALE_STREAM
CONDITION_LAYOUT = "space_to_depth"  # what train_ldm.py records in the saved pipeline's config


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """x (C, H, W) convolved with a normalised Gaussian of std `sigma` pixels (reflect padding), or x."""
    if sigma < 1e-3:
        return x
    radius = max(1, int(3 * sigma + 0.5))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = x.shape[0]
    x = F.pad(x[None], (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # along W
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)[0]  # along H


def bicubic_down(x: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H/factor, W/factor), bicubic with antialiasing."""
    return downsample(x, factor, kernel=0)


@dataclass
class SuperResolutionTask(Task):
    """Makes y from the batch's high-resolution images and concatenates it to z_t."""

    sr_factor: int  # s: the low-res image is 1/s of the high-res one per side
    downsample_factor: int  # f of the autoencoder; r = f / s
    noise_std: float  # largest σ_n, in units of [-1, 1] pixel values
    blur_sigma: float  # largest σ_b, in high-res pixels
    seed: int
    process_index: int
    mix: DegradationMix = DegradationMix()  # kernels and JPEG drawn per sample (off: bicubic only)

    fine_tunes_pretrained = False  # a new U-Net on [z_t, y]

    @classmethod
    def check_arguments(cls, args, data) -> None:
        check_superres(
            args.sr_factor,
            data.resolution,
            text_encoder=args.text_encoder,
            label_column=data.label_column,
            cached_latents=args.cached_latents,
        )

    @classmethod
    def from_arguments(cls, args, context: TaskContext) -> SuperResolutionTask:
        f = latent_space(context.vae).downsample_factor
        check_superres(args.sr_factor, context.resolution, downsample_factor=f)
        return cls(
            sr_factor=args.sr_factor,
            downsample_factor=f,
            noise_std=args.sr_noise_std,
            blur_sigma=args.sr_blur_sigma,
            seed=context.seed,
            process_index=context.process_index,
            mix=DegradationMix(enabled=args.sr_degradation_mix),
        )

    @property
    def space_to_depth(self) -> int:
        """r = f / s: y's r×r pixel blocks become one latent cell."""
        return self.downsample_factor // self.sr_factor

    @property
    def condition_channels(self) -> int:
        return IMAGE_CHANNELS * self.space_to_depth**2

    def degrade(self, x: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        """y (B, 3, H/s, W/s) in [-1, 1] of x (B, 3, H, W): blur, down by s, noise, (JPEG), per sample."""
        h, w = x.shape[-2] // self.sr_factor, x.shape[-1] // self.sr_factor
        ys = []
        for image, g in zip(x.float(), generators):
            u_blur, u_noise = torch.rand(2, generator=g).tolist()  # σ_b, σ_n ~ U(0, max), always drawn
            eta = torch.randn(image.shape[0], h, w, generator=g)
            kernel, quality = self.mix.draw(g)  # drawn after the above: the draws without the mix stay
            blurred = gaussian_blur(image, u_blur * self.blur_sigma)
            low = downsample(blurred[None], self.sr_factor, kernel)[0]
            low = (low + u_noise * self.noise_std * eta.to(low.device)).clamp(-1, 1)
            ys.append(low if quality is None else jpeg(low, quality))
        return torch.stack(ys).to(x.dtype)

    def low_res(self, batch: dict, micro_step: int, flip: torch.Tensor | None) -> torch.Tensor:
        """y of this process's samples at forward pass `micro_step`, mirrored where `flip` as x is."""
        x = mirrored(batch["pixel_values"], flip)
        indices = global_indices(len(x), self.process_index)
        return self.degrade(x, sample_generators(self.seed, micro_step, indices, SUPERRES_STREAM))

    def condition(self, batch: dict, micro_step: int, flip) -> torch.Tensor:
        """y brought to the latent grid by space-to-depth: (B, 3·r², h, w)."""
        return to_latent_grid(self.low_res(batch, micro_step, flip), self.space_to_depth)

    def adapt_pretrained(self, unet):
        raise ValueError("--task: superres trains a new U-Net (check_pretrained_flags says so first)")

    def pipeline(self, parts):
        """A LatentDiffusionSuperResolutionPipeline: scaled latents, y by space-to-depth."""
        from hfldm.pipelines.pipeline_latent_diffusion_superres import LatentDiffusionSuperResolutionPipeline

        return parts.assemble(
            LatentDiffusionSuperResolutionPipeline,
            conditioned=False,
            scale_latents=True,
            condition_layout=CONDITION_LAYOUT,
        )

    def validation(self, pipeline, batch: dict, settings) -> tuple:
        """low-res | bicubic | SR | real of the first images of the batch, no guidance; their PSNRs."""
        x = batch["pixel_values"][: len(settings.seeds)]
        return superres_grid(pipeline, x, self.sr_factor, settings.seeds[0], settings.num_inference_steps)


def bicubic_up(y: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, h·factor, w·factor), bicubic, clamped to [-1, 1]: the baseline."""
    return F.interpolate(y, scale_factor=factor, mode="bicubic", align_corners=False).clamp(-1, 1)


@torch.no_grad()
def upscale(pipeline, x: torch.Tensor, sr_factor: int, seed: int, num_inference_steps: int) -> tuple:
    """(y, bicubic(y), SR(y)) of high-res images x (B, 3, H, W) in [-1, 1], y their clean bicubic
    downsampling; all in [-1, 1], on CPU."""
    y = bicubic_down(x.float(), sr_factor).clamp(-1, 1)
    generators = [torch.Generator().manual_seed(seed + i) for i in range(len(x))]
    sr = pipeline(
        (y.cpu() + 1) / 2, num_inference_steps=num_inference_steps, generator=generators, output_type="pt"
    ).images
    return y.cpu(), bicubic_up(y, sr_factor).cpu(), sr.float().cpu() * 2 - 1


def superres_grid(pipeline, x: torch.Tensor, sr_factor: int, seed: int, num_inference_steps: int):
    """(grid, one row per image: low-res (nearest) | bicubic | SR | real; {"psnr_sr", "psnr_bicubic"})."""
    y, bicubic, sr = upscale(pipeline, x, sr_factor, seed, num_inference_steps)
    x = x.float().cpu()
    metrics = {
        "psnr_sr": psnr(sr, x, value_range=(-1, 1)),
        "psnr_bicubic": psnr(bicubic, x, value_range=(-1, 1)),
    }
    nearest = F.interpolate(y, scale_factor=sr_factor, mode="nearest")
    grid = comparison_grid([nearest, bicubic, sr, x])
    return grid, metrics


def check_superres(
    sr_factor: int,
    resolution: int,
    text_encoder: str = "none",
    label_column: str | None = None,
    cached_latents: str | None = None,
    downsample_factor: int | None = None,
) -> None:
    """ValueError naming the argument that --task superres cannot use: a --sr_factor that does not divide
    --resolution (or, once the autoencoder is loaded, its f), a text or class condition, a latent cache."""
    if resolution % sr_factor:
        raise ValueError(f"--sr_factor: {sr_factor} does not divide --resolution {resolution}")
    if text_encoder != "none":
        raise ValueError(
            f"--text_encoder: --task superres is conditioned on the low-res image only, not {text_encoder!r}"
        )
    if label_column is not None:
        raise ValueError(
            "--label_column: --task superres is conditioned on the low-res image only, not on classes"
        )
    if cached_latents:
        raise ValueError("--cached_latents: --task superres makes y from the images; train from images")
    if downsample_factor is not None and downsample_factor % sr_factor:
        raise ValueError(
            f"--sr_factor: {sr_factor} does not divide the autoencoder's f = {downsample_factor} (y, the "
            f"low-res image, reaches the f-times smaller latent grid by a space-to-depth of f / {sr_factor})"
        )
