"""Encoding and decoding in pieces, as diffusers' autoencoders offer: per image of a batch (slicing, the same
result with the memory of one image) or per overlapping spatial tile (tiling, for images larger than
memory allows; the tiles' outputs are blended linearly where they overlap, so the seams do not show).

Tiles are laid out on the latent grid (h, w); the image side is f times larger. A single tile that covers
the whole input gives exactly the untiled result.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start indices of tiles of length `tile` that step by `tile - overlap` and end exactly at `size`."""
    if size <= tile:
        return [0]
    return [*range(0, size - tile, tile - overlap), size - tile]


def blend_ramp(length: int, overlap: int, first: bool, last: bool) -> torch.Tensor:
    """(length,) weights of one tile along one axis: rising linearly over the `overlap` cells it shares with
    the previous tile, falling over those it shares with the next, 1 elsewhere (and at the image's edges)."""
    weights = torch.ones(length)
    ramp = torch.arange(1, overlap + 1) / (overlap + 1)
    if overlap and not first:
        weights[:overlap] = ramp
    if overlap and not last:
        weights[-overlap:] = torch.minimum(weights[-overlap:], ramp.flip(0))
    return weights


def tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    tile: int,
    overlap: int,
    in_scale: int,
    out_scale: int,
) -> torch.Tensor:
    """fn(x) computed on overlapping tiles of x (B, C, H, W) and blended.

    `tile` and `overlap` are in latent cells; x has `in_scale` pixels per cell (f for the encoder, 1 for the
    decoder) and fn's output `out_scale` (1 for the encoder, f for the decoder).
    Returns fn's output for the whole input, (B, C', H / in_scale · out_scale, W / in_scale · out_scale).
    """
    rows, cols = x.shape[2] // in_scale, x.shape[3] // in_scale
    out = weight = None
    for i in tile_starts(rows, tile, overlap):
        for j in tile_starts(cols, tile, overlap):
            h, w = min(tile, rows), min(tile, cols)
            piece = fn(x[..., i * in_scale : (i + h) * in_scale, j * in_scale : (j + w) * in_scale])
            ramp_h = blend_ramp(h * out_scale, overlap * out_scale, i == 0, i + h == rows)
            ramp_w = blend_ramp(w * out_scale, overlap * out_scale, j == 0, j + w == cols)
            window = (ramp_h[:, None] * ramp_w[None]).to(piece)  # (h·s, w·s)
            if out is None:
                out = piece.new_zeros(*piece.shape[:2], rows * out_scale, cols * out_scale)
                weight = piece.new_zeros(rows * out_scale, cols * out_scale)
            rows_out = slice(i * out_scale, (i + h) * out_scale)
            cols_out = slice(j * out_scale, (j + w) * out_scale)
            out[..., rows_out, cols_out] += piece * window
            weight[rows_out, cols_out] += window
    return out / weight


class SlicingTilingMixin:
    """`enable_slicing()` / `enable_tiling()` (and `disable_*`) of diffusers' autoencoders, for a model that
    routes its encoder and decoder through `in_pieces`.

    Tiles are `tile_latent_size` latent cells (default: the training size `sample_size / f`) overlapping by
    `tile_overlap_factor` of a tile, as diffusers' AutoencoderKL's defaults.
    """

    use_slicing = False
    use_tiling = False
    tile_overlap_factor = 0.25

    def enable_slicing(self) -> None:
        """Encode and decode a batch one image at a time: the same result, the memory of one image."""
        self.use_slicing = True

    def disable_slicing(self) -> None:
        self.use_slicing = False

    def enable_tiling(self, tile_latent_size: int | None = None) -> None:
        """Encode and decode inputs larger than a tile in overlapping tiles of `tile_latent_size` latent cells
        (default sample_size / f)."""
        size = tile_latent_size or max(1, self.config.sample_size // self.downsample_factor)
        if isinstance(size, bool) or not isinstance(size, int) or size < 2:
            raise ValueError(f"tile_latent_size must be an int >= 2, got {tile_latent_size!r}")
        self.use_tiling, self.tile_latent_size = True, size

    def disable_tiling(self) -> None:
        self.use_tiling = False

    def in_pieces(self, fn, x: torch.Tensor, *, in_scale: int, out_scale: int) -> torch.Tensor:
        """fn(x) per image if slicing is on, per tile if tiling is on (see `tiled`), else at once."""
        if self.use_slicing and x.shape[0] > 1:
            return torch.cat(
                [self.in_pieces(fn, one, in_scale=in_scale, out_scale=out_scale) for one in x.split(1)]
            )
        if self.use_tiling:
            tile = self.tile_latent_size
            overlap = int(tile * self.tile_overlap_factor)
            return tiled(fn, x, tile=tile, overlap=overlap, in_scale=in_scale, out_scale=out_scale)
        return fn(x)
