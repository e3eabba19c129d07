"""The sketch task of train_ldm.py: the spatial conditioning of LDM §4.3.2 (a map concatenated to z_t), hybrid
with the caption through cross-attention as inpainting is.

For an image x (the batch's pixel_values, in [-1, 1]) the condition is a drawing-like edge map, derived by a
deterministic function of x and the sample's own generator of SKETCH_STREAM, seeded by (seed, micro step,
global index), so resumed and multi-process runs draw the same sketches:

1. `edge_map`: 1-px lines where a pixel's right or lower neighbour differs by more than EDGE_THRESHOLD in any
   RGB channel (forward differences, a Sobel-free Canny stand-in that needs no thinning at 32 px);
2. `doodle`: the lines displaced by a smooth random warp (up to ~1 px, as a hand wavers), low-frequency
   regions erased (0–40 % of the strokes, as a user leaves parts out), thickened to 2 px half of the time.

A user's sketch is dark strokes on white; its ink s = 1 − gray reaches the latent grid by the f×f
space-to-depth of `hfldm.pipelines.pipeline_latent_diffusion_sketch.sketch_condition` (f² channels, as SR's
low-res image does). `adapt_pretrained` is the SD-2 recipe of inpainting: a text U-Net widened by
zero-initialised input channels, so that training starts from the text model's own predictions.

Validation draws sketch | output | real rows of the first training images' edge maps, with the edge F1 of the
outputs against those maps (`edge_f1`, at a tolerance of TOLERANCE px).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hfldm.autoencoders.latent_space import latent_space
from hfldm.data.grid import image_grid
from hfldm.training.latents import mirrored
from hfldm.training.randomness import global_indices, sample_generators
from hfldm.training.tasks import Task, TaskContext, ValidationSettings
from hfldm.training.validation import to_pil
from hfldm.unets.concat import condition_channels, with_condition_channels

SKETCH_STREAM = 4  # after randomness' TRAINING / SCALE streams, superres' and inpaint's
EDGE_THRESHOLD = 0.25  # in [0, 1] pixel units
TOLERANCE = 1  # px: an output edge within this (Chebyshev) distance of an input edge counts as a match


def edge_map(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) in {0, 1}: pixels whose right or lower neighbour differs by more than EDGE_THRESHOLD in
    any RGB channel of x (B, 3, H, W) in [-1, 1], taken in [0, 1] units (forward differences: 1 px lines)."""
    rgb = (x.float() + 1) / 2
    dx = (rgb[..., :, 1:] - rgb[..., :, :-1]).abs().amax(dim=1, keepdim=True)
    dy = (rgb[..., 1:, :] - rgb[..., :-1, :]).abs().amax(dim=1, keepdim=True)
    edges = torch.maximum(F.pad(dx, (0, 1, 0, 0)), F.pad(dy, (0, 0, 0, 1)))
    return (edges > EDGE_THRESHOLD).float()


def doodle(edges: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A drawing-like copy of an edge map (1, H, W): strokes displaced by a smooth random warp of up to ~1 px,
    low-frequency regions erased (0–40 % of the strokes), thickened by one pixel half of the time."""
    _, h, w = edges.shape
    amplitude, drop, thicken = torch.rand(3, generator=generator).tolist()
    flow = torch.randn(1, 2, 4, 4, generator=generator) * amplitude * 2 / max(h, w)
    flow = F.interpolate(flow, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    grid = torch.stack([xs, ys], dim=-1)[None] + flow
    warped = F.grid_sample(edges[None].cpu(), grid, mode="bilinear", align_corners=True)
    keep = F.interpolate(torch.rand(1, 1, 4, 4, generator=generator), size=(h, w), mode="bilinear")
    strokes = (warped > 0.4).float() * (keep >= 0.4 * drop).float()
    if thicken < 0.5:  # 1 px lines to 2 px ones
        strokes = F.max_pool2d(F.pad(strokes, (0, 1, 0, 1)), 2, stride=1)
    return strokes[0].to(edges.device)


def edge_f1(output: torch.Tensor, target: torch.Tensor, tolerance: int = TOLERANCE) -> float:
    """F1 of the edges of `output` against the edge map `target` (B, 1, H, W): precision = output edge pixels
    within `tolerance` px of a target edge, recall = target edge pixels within it of an output edge."""
    found = edge_map(output)
    near = lambda m: F.max_pool2d(m, 2 * tolerance + 1, stride=1, padding=tolerance)  # noqa: E731
    precision = (found * near(target)).sum() / found.sum().clamp(min=1)
    recall = (target * near(found)).sum() / target.sum().clamp(min=1)
    return float(2 * precision * recall / (precision + recall).clamp(min=1e-8))


@dataclass
class SketchTask(Task):
    """Draws a doodle of each image's edges; its strokes, folded onto the latent grid, join z_t."""

    downsample_factor: int  # f of the autoencoder
    seed: int
    process_index: int

    @classmethod
    def from_arguments(cls, args, context: TaskContext) -> SketchTask:
        f = latent_space(context.vae).downsample_factor
        return cls(downsample_factor=f, seed=context.seed, process_index=context.process_index)

    @classmethod
    def check_arguments(cls, args, data) -> None:
        if args.cached_latents:
            raise ValueError("--cached_latents: --task sketch draws its sketches from the images")

    @property
    def condition_channels(self) -> int:
        return self.downsample_factor**2

    def strokes(self, batch: dict, micro_step: int, flip) -> torch.Tensor:
        """(B, 1, H, W) in {0, 1}: this process's doodles at pass `micro_step`, x mirrored as z_0's is."""
        x = mirrored(batch["pixel_values"], flip)
        indices = global_indices(len(x), self.process_index)
        generators = sample_generators(self.seed, micro_step, indices, SKETCH_STREAM)
        return torch.stack([doodle(e, g) for e, g in zip(edge_map(x), generators)])

    def condition(self, batch: dict, micro_step: int, flip) -> torch.Tensor:
        """s↓ (B, f², h, w): the doodles' strokes by space-to-depth."""
        from hfldm.pipelines.pipeline_latent_diffusion_sketch import sketch_condition

        return sketch_condition(self.strokes(batch, micro_step, flip), self.downsample_factor)

    def adapt_pretrained(self, unet):
        """A text / class / unconditional U-Net widened by zero-initialised condition channels; a sketch U-Net
        of this autoencoder as it is; ValueError naming the flag for any other."""
        have = condition_channels(unet.config)
        if have == 0:
            return with_condition_channels(unet, self.condition_channels)
        if have != self.condition_channels:
            raise ValueError(
                f"--init_from: its U-Net takes {have} condition channels; a sketch model with this "
                f"autoencoder needs 0 (a text model, widened) or {self.condition_channels}"
            )
        return unet

    def pipeline(self, parts):
        from hfldm.pipelines.pipeline_latent_diffusion_sketch import LatentDiffusionSketchPipeline

        return parts.assemble(LatentDiffusionSketchPipeline)

    def validation(self, pipeline, batch: dict, settings: ValidationSettings) -> tuple:
        """sketch | output | real of the first training images' edge maps with their captions; {"edge_f1"}."""
        n = len(settings.seeds)
        x = batch["pixel_values"][:n].float().cpu()
        prompts = list(batch["text"][:n]) if pipeline.is_text_conditional and "text" in batch else None
        return sketch_grid(pipeline, x, prompts, settings)


@torch.no_grad()
def draw(pipeline, sketches: torch.Tensor, prompts, settings: ValidationSettings) -> torch.Tensor:
    """The pipeline's images (B, 3, H, W) in [-1, 1] of `sketches` (B, 1, H, W) in [0, 1] (dark on white),
    image i drawn with a generator seeded by settings.seeds[i]."""
    generators = [torch.Generator().manual_seed(s) for s in settings.seeds[: len(sketches)]]
    out = pipeline(
        prompt=prompts,
        image=sketches.expand(-1, 3, -1, -1),
        num_inference_steps=settings.num_inference_steps,
        guidance_scale=settings.guidance_scale if prompts else 1.0,
        generator=generators,
        output_type="pt",
    )
    return out.images.float().cpu() * 2 - 1


def sketch_grid(pipeline, x: torch.Tensor, prompts, settings: ValidationSettings) -> tuple:
    """(grid with one row per image: sketch | output | real, {"edge_f1"}); main process only."""
    edges = edge_map(x)
    drawn = draw(pipeline, 1 - edges, prompts, settings)
    shown = (1 - edges).expand(-1, 3, -1, -1) * 2 - 1
    cells = [im for row in zip(to_pil(shown), to_pil(drawn), to_pil(x)) for im in row]
    captions = [c for p in (prompts or [""] * len(x)) for c in ("sketch", p or "output", "real")]
    grid = image_grid(cells, captions, columns=3, cell=max(64, x.shape[-1]))
    return grid, {"edge_f1": edge_f1(drawn, edges)}
