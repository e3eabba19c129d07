"""One loader for every first stage hfldm can diffuse in: hfldm's KL/VQ autoencoders and diffusers'
AutoencoderKL, VQModel and AutoencoderTiny, from an autoencoder folder, a pipeline folder (its `vae/`, or
`vqvae/` in CompVis' layout) or a Hub id (`repo`, `repo:subfolder`); `identity` is the f = 1 first stage
(pixel-space diffusion, `IdentityAutoencoder`).
"""

from __future__ import annotations

from pathlib import Path

from diffusers import AutoencoderKL, AutoencoderTiny, VQModel

from hfldm.autoencoders.identity import IdentityAutoencoder
from hfldm.autoencoders.kl import KLAutoencoder
from hfldm.autoencoders.vq import VQAutoencoder

AUTOENCODER_CLASSES = {
    cls.__name__: cls
    for cls in (KLAutoencoder, VQAutoencoder, IdentityAutoencoder, AutoencoderKL, VQModel, AutoencoderTiny)
}
IDENTITY = "identity"  # --autoencoder identity: no first stage, diffusion in pixel space
PIPELINE_SUBFOLDERS = ("vae", "vqvae")  # hfldm / diffusers pipelines; CompVis' LDMs in diffusers


def _split_subfolder(path: str, subfolder: str | None) -> tuple[str, str | None]:
    """`repo:subfolder` -> (repo, subfolder), unless `path` is a local path (which may hold ':')."""
    if subfolder is None and ":" in path and not Path(path).exists():
        path, subfolder = path.split(":", 1)
    return path, subfolder


def _find_config(path: str, subfolder: str | None, revision: str | None, argument: str) -> tuple[dict, str]:
    """(the autoencoder's config, the subfolder it was found in) for a folder or Hub id."""
    tries = [subfolder] if subfolder is not None else [None, *PIPELINE_SUBFOLDERS]
    error = None
    for candidate in tries:
        try:
            config = AutoencoderKL.load_config(path, subfolder=candidate, revision=revision)
        except (OSError, ValueError) as e:
            error = e
            continue
        if "_class_name" in config:
            return config, candidate
    where = f"{path}:{subfolder}" if subfolder else path
    reason = "no autoencoder config.json in it" if Path(path).is_dir() or error is None else str(error)
    reason = reason.strip().splitlines()[0]
    raise ValueError(f"{argument}: cannot load an autoencoder from {where} ({reason})")


def load_autoencoder(
    path: str | Path,
    argument: str = "--autoencoder",
    subfolder: str | None = None,
    revision: str | None = None,
    variant: str | None = None,
):
    """The autoencoder in `path`, frozen and in eval mode; any class of AUTOENCODER_CLASSES.

    `path` is a local folder (an autoencoder's, or a pipeline's with vae/ or vqvae/) or a Hub id, optionally
    `id:subfolder`, or "identity" (f = 1: E and D are the identity, the model diffuses pixels). Errors are
    one-line ValueErrors naming `argument`.
    """
    if str(path) == IDENTITY and not Path(IDENTITY).exists():
        return IdentityAutoencoder().requires_grad_(False).eval()
    path, subfolder = _split_subfolder(str(path), subfolder)
    config, subfolder = _find_config(path, subfolder, revision, argument)
    class_name = config["_class_name"]
    if class_name not in AUTOENCODER_CLASSES:
        raise ValueError(
            f"{argument}: {path} holds a {class_name}, expected one of {sorted(AUTOENCODER_CLASSES)}"
        )
    model = AUTOENCODER_CLASSES[class_name].from_pretrained(
        path, subfolder=subfolder, revision=revision, variant=variant
    )
    return model.requires_grad_(False).eval()
