"""train_ldm.py's --task names and the `Task` classes (`hfldm.training.tasks`) they build. A new task is one
file with a `Task` subclass and one line here."""

from __future__ import annotations

from hfldm.training.generation import GenerationTask
from hfldm.training.inpaint import InpaintTask
from hfldm.training.sketch import SketchTask
from hfldm.training.superres import SuperResolutionTask
from hfldm.training.tasks import Task

TASKS: dict[str, type[Task]] = {
    "generate": GenerationTask,  # text / class / unconditional LDM (§4.1–4.3)
    "superres": SuperResolutionTask,  # ε_θ([z_t, y], t), y the degraded low-res image (§4.4)
    "inpaint": InpaintTask,  # ε_θ([z_t, E(x ⊙ (1 − m)), m↓], t, τ_θ(y)) (§4.5)
    "sketch": SketchTask,  # ε_θ([z_t, s↓], t, τ_θ(y)), s a doodle of the image's edges (§4.3.2)
}


def task_class(name: str) -> type[Task]:
    """The Task class of --task `name`; ValueError naming --task otherwise."""
    if name not in TASKS:
        raise ValueError(f"--task: expected one of {sorted(TASKS)}, got {name!r}")
    return TASKS[name]
