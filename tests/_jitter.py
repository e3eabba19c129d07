"""The shared jitter of the tests: a zero-initialised `ConditionalUNet` (LDM's zero output conv, zero last
conv of each residual branch, zero attention proj_out) outputs exactly 0, so any equivalence asserted on a
fresh one compares 0 with 0. Jitter it first; `_zero_audit` (a pytest plugin) finds the tests that forget.
"""

from __future__ import annotations

import torch


def jitter(
    module: torch.nn.Module, seed: int = 0, scale: float = 0.1, everywhere: bool = False
) -> torch.nn.Module:
    """Seeded N(0, scale²) values in the parameters that are exactly zero (output convs, proj_out, norm
    biases), so that every branch -- the text's cross-attention included -- changes the output; with
    `everywhere`, the noise is added to every parameter instead. Returns `module`, changed in place."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if everywhere:
                p.add_(scale * torch.randn(p.shape, generator=generator))
            elif not p.any():
                p.copy_(torch.randn(p.shape, generator=generator) * scale)
    return module
