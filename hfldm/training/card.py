"""The model card train_ldm.py writes with the pipeline: the pipeline's own card (metadata, usage with the
repo id it goes to) plus a sample grid saved in the folder, the training command and the final validation
figures. `hfldm eval` reports join the card when a model is exported (training/export_model.py --report)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

SAMPLES_FILE = "samples.png"


def training_command(argv: list[str] | None = None) -> str:
    """The command that trained this model, as one shell line: `accelerate launch <script> <flags>`."""
    argv = sys.argv if argv is None else argv
    return "accelerate launch " + " ".join(shlex.quote(a) for a in [Path(argv[0]).name, *argv[1:]])


def training_card(
    pipe,
    repo: str,
    samples,
    metrics: dict[str, float],
    command: str,
    base_model: str | None = None,
    datasets: list[str] | None = None,
) -> str:
    """Markdown: `pipe.default_model_card(repo, base_model=..., datasets=...)`, then ## Samples (the image
    `samples`, which the caller saves as SAMPLES_FILE in the folder), ## Training, ## Validation."""
    card = pipe.default_model_card(repo, base_model=base_model, datasets=datasets)
    card += f"\n## Samples\n\n![validation samples]({SAMPLES_FILE})\n\n"
    card += f"Validation samples of the final weights ({samples.width}×{samples.height} px grid).\n"
    card += f"\n## Training\n\n```bash\n{command}\n```\n"
    if base_model:
        card += f"\nFine-tuned from `{base_model}`.\n"
    if metrics:
        rows = "\n".join(f"| {name} | {value:.4g} |" for name, value in metrics.items())
        card += f"\n## Validation\n\n| metric | value |\n|---|---|\n{rows}\n"
    return card
