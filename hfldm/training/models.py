"""Building the models of the training scripts from their arguments, with the checks that need them:
the autoencoder (new, or loaded from a folder), the U-Net from a YAML config, and τ_θ.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import yaml
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from hfldm.autoencoders import KLAutoencoder, NLayerDiscriminator, VQAutoencoder
from hfldm.autoencoders.latent_space import latent_space
from hfldm.data.user_images import MAX_PIXELS
from hfldm.unets.unet import ConditionalUNet

# what fixes each U-Net argument that train_ldm.py derives rather than reads from --unet_config
DERIVED_FROM = {
    "in_channels": "the autoencoder's latent channels + the concatenated condition's are",
    "out_channels": "the autoencoder's latent channels are",
    "sample_size": "the latent side resolution / f is",
    "cross_attention_dim": "the text encoder's width is",
    "num_class_embeds": "the number of classes + 1 (the null class) is",
}
Autoencoder = KLAutoencoder | VQAutoencoder


def new_autoencoder(
    regularizer: str,
    downsample_factor: int,
    resolution: int,
    base_channels: int,
    latent_channels: int,
    layers_per_block: int,
    num_vq_embeddings: int,
) -> Autoencoder:
    """A fresh KL or VQ autoencoder with f = `downsample_factor`: log2(f) + 1 levels of widths
    base·(1, 2, 4, 4, ...) (LDM's f=4 and f=8 first stages double the width, then keep it)."""
    levels = int(math.log2(downsample_factor)) + 1
    widths = tuple(base_channels * min(2**i, 4) for i in range(levels))
    common = dict(
        block_out_channels=widths,
        layers_per_block=layers_per_block,
        latent_channels=latent_channels,
        sample_size=resolution,
        norm_num_groups=min(32, base_channels),
    )
    if regularizer == "kl":
        return KLAutoencoder(**common)
    return VQAutoencoder(**common, num_vq_embeddings=num_vq_embeddings)


def new_discriminator(resolution: int, base_channels: int, n_layers: int) -> NLayerDiscriminator:
    """The PatchGAN; raises ValueError naming --disc_layers when the patches would vanish at `resolution`."""
    if resolution < 3 * 2**n_layers:
        raise ValueError(
            f"--disc_layers: {n_layers} stride-2 layers leave no patch of a {resolution}px image "
            f"(needs resolution >= {3 * 2**n_layers})"
        )
    return NLayerDiscriminator(in_channels=3, base_channels=base_channels, n_layers=n_layers)


# about 8 GiB of fp32 weights (plus as much for Adam's moments twice): far above hfldm's models (~10^7)
MAX_UNET_PARAMETERS = 2 * 10**9


def check_resolution(vae, resolution: int) -> int:
    """Returns the latent side resolution / f; ValueError naming --resolution when f does not divide it."""
    f = latent_space(vae).downsample_factor
    if resolution * resolution > MAX_PIXELS:  # a batch of these would fill memory before the first step
        raise ValueError(
            f"--resolution: {resolution} px is over the limit of {math.isqrt(MAX_PIXELS)} px a side "
            "(HFLDM_MAX_IMAGE_PIXELS)"
        )
    if resolution % f:
        raise ValueError(f"--resolution: {resolution} is not divisible by the autoencoder's f = {f}")
    return resolution // f


def unet_from_yaml(
    path: str,
    vae,
    latent_size: int,
    cross_attention_dim: int | None,
    num_class_embeds: int | None,
    condition_channels: int = 0,
) -> ConditionalUNet:
    """A fresh ConditionalUNet from the YAML mapping of its arguments in `path`, with the fields that
    follow from the data filled in: out_channels (the latents'), in_channels (the latents' plus
    `condition_channels` of an image condition concatenated to z_t, `hfldm.unets.concat`), sample_size,
    cross_attention_dim and num_class_embeds.

    A value the YAML sets that contradicts them is a ValueError naming --unet_config.
    """
    if not Path(path).is_file():
        raise ValueError(f"--unet_config: no such file {path!r}")
    config = yaml.safe_load(Path(path).read_text()) or {}
    channels = latent_space(vae).latent_channels
    derived = dict(
        in_channels=channels + condition_channels,
        out_channels=channels,
        sample_size=latent_size,
        cross_attention_dim=cross_attention_dim,
        num_class_embeds=num_class_embeds,
    )
    for key, value in derived.items():
        if key in config and config[key] != value:
            raise ValueError(
                f"--unet_config: {key} = {config[key]} in {path}, but {DERIVED_FROM[key]} {value}"
            )
    unknown = set(config) - set(inspect.signature(ConditionalUNet.__init__).parameters)
    if unknown:
        raise ValueError(f"--unet_config: unknown ConditionalUNet argument(s) {sorted(unknown)} in {path}")
    check_unet_size(config, path)
    unet = ConditionalUNet(**{**config, **derived})
    if latent_size % unet.downsample_factor:
        raise ValueError(
            f"--unet_config: the U-Net halves the latents {len(unet.config.block_out_channels) - 1} times, "
            f"which a {latent_size}x{latent_size} latent (resolution / f) does not allow"
        )
    return unet


def text_encoder_for(
    name: str,
    tokenizer: PreTrainedTokenizerBase | None,
    hidden_size: int,
    layers: int,
    max_text_length: int | None = None,
) -> tuple[PreTrainedTokenizerBase | None, PreTrainedModel | None]:
    """(tokenizer, τ_θ): (None, None) for 'none'; frozen MiniLM ('minilm'); a small transformer trained
    jointly with the U-Net on the WordPiece vocabulary `tokenizer` of the captions ('scratch', LDM Sec. 4.3.1;
    see `run_tokenizer`); else a pretrained transformers text encoder by folder or Hub id, frozen.
    `max_text_length` sets the tokenizer's length (saved with it, so the pipeline pads alike)."""
    if name == "none":
        return None, None
    from hfldm.text import load_minilm, make_text_encoder
    from hfldm.text.pretrained import load_text_encoder

    if name == "minilm":
        tokenizer, text_encoder = load_minilm()
    elif name == "scratch":
        text_encoder = make_text_encoder(tokenizer, hidden_size=hidden_size, layers=layers, heads=4)
    else:
        tokenizer, text_encoder = load_text_encoder(name, "--text_encoder")
    if max_text_length is not None:
        tokenizer.model_max_length = max_text_length
    return tokenizer, text_encoder


def run_tokenizer(
    accelerator, captions: list[str], vocab_size: int, output_dir: str | Path, resuming: bool
) -> PreTrainedTokenizerBase:
    """The WordPiece tokenizer of a run whose τ_θ trains from scratch: one vocabulary for every process and
    for every restart of the run.

    WordPiece training breaks ties between equally frequent pieces in a per-process random order (the Rust
    trainer's hash maps), so the same captions can give other token ids in another process. The main
    process trains it and saves it to `output_dir/tokenizer` (where the pipeline keeps it); every process
    loads that copy, and a resumed run loads the saved one instead of training a new one, so the rows of
    τ_θ's embedding table keep meaning the same pieces.
    """
    from transformers import AutoTokenizer

    from hfldm.text import train_caption_tokenizer

    path = Path(output_dir) / "tokenizer"
    if accelerator.is_main_process and not (resuming and (path / "tokenizer.json").is_file()):
        train_caption_tokenizer(captions, vocab_size=vocab_size).save_pretrained(path)
    accelerator.wait_for_everyone()
    return AutoTokenizer.from_pretrained(path)


def perceptual_network(weight: float):
    """LPIPS (Zhang et al. 2018), LDM's perceptual loss, as a PerceptualLoss callable, or None for weight 0.

    It needs the `lpips` package and its pretrained VGG weights (downloaded by torchvision on first use),
    which this project does not ship: a ValueError naming --perceptual_weight says so when they are missing.
    """
    if weight == 0:
        return None
    try:
        import lpips
    except ImportError:
        raise ValueError(
            "--perceptual_weight: needs a feature network; none ships offline (pip install lpips, which "
            "downloads VGG weights), or set it to 0"
        ) from None
    network = lpips.LPIPS(net="vgg", verbose=False).eval().requires_grad_(False)
    return lambda x, x_hat: network.to(x.device)(x.float(), x_hat.float()).flatten()


def check_unet_size(config: dict, path: str) -> None:
    """ValueError naming --unet_config when block_out_channels / layers_per_block are not positive integers
    or give a U-Net of more than MAX_UNET_PARAMETERS, estimated before anything is allocated: each level
    holds about 2·layers + 1 ResBlocks of two 3×3 convolutions (9 c² weights each)."""
    widths = config.get("block_out_channels", (128, 256))
    layers = config.get("layers_per_block", 2)
    for name, values in (("block_out_channels", widths), ("layers_per_block", [layers])):
        if not isinstance(values, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values
        ):
            raise ValueError(f"--unet_config: {name} in {path} must be positive integers, got {values!r}")
    estimate = sum((2 * layers + 1) * 2 * 9 * c * c for c in widths)
    if estimate > MAX_UNET_PARAMETERS:
        raise ValueError(
            f"--unet_config: block_out_channels {list(widths)} × layers_per_block {layers} in {path} give "
            f"about {estimate:.2g} parameters ({4 * estimate / 2**30:,.0f} GiB in fp32), over the limit of "
            f"{MAX_UNET_PARAMETERS:.0e}"
        )
