"""LoRA adapters on τ_θ (any transformers text encoder), with peft's model-agnostic API.

The U-Net uses diffusers' own `add_adapter` / `save_lora_adapter` / `load_lora_adapter`. For the text encoder
the same is done here with `peft.inject_adapter_in_model`, which works with every peft version this project
accepts (transformers' `add_adapter` needs a newer peft). The adapter is one safetensors file whose metadata
holds its LoraConfig.
"""

from __future__ import annotations

import json
from pathlib import Path

from peft import LoraConfig, inject_adapter_in_model
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

TEXT_ENCODER_LORA = "text_encoder_lora.safetensors"


def text_lora_targets(text_encoder: nn.Module) -> list[str]:
    """Names of τ_θ's attention projections: BERT query/key/value, DistilBERT q_lin/k_lin/v_lin, CLIP
    q_proj/k_proj/v_proj (whichever the model has)."""
    names = {name.rsplit(".", 1)[-1] for name, _ in text_encoder.named_modules()}
    for candidates in (
        ["query", "key", "value"],
        ["q_lin", "k_lin", "v_lin"],
        ["q_proj", "k_proj", "v_proj"],
    ):
        if set(candidates) <= names:
            return candidates
    raise ValueError(f"--train_text_encoder: no known attention projections in {type(text_encoder).__name__}")


def add_text_encoder_lora(text_encoder: nn.Module, config: LoraConfig) -> None:
    """Inject LoRA layers (adapter "default") into `text_encoder`; only they require gradients after."""
    text_encoder.requires_grad_(False)
    inject_adapter_in_model(config, text_encoder, adapter_name="default")


def save_text_encoder_lora(text_encoder: nn.Module, config: LoraConfig, folder: str | Path) -> Path:
    """Write the LoRA weights of `text_encoder` (and `config` as metadata) to folder/TEXT_ENCODER_LORA."""
    state = {k: v.detach().contiguous().cpu() for k, v in text_encoder.state_dict().items() if ".lora_" in k}
    settings = {k: sorted(v) if isinstance(v, set) else v for k, v in config.to_dict().items()}
    path = Path(folder) / TEXT_ENCODER_LORA
    save_file(state, str(path), metadata={"lora_config": json.dumps(settings, default=str)})
    return path


def load_text_encoder_lora(text_encoder: nn.Module, folder: str | Path) -> None:
    """Inject and load the adapter saved by `save_text_encoder_lora` in `folder` into `text_encoder`.

    Turn it off / rescale with diffusers' `set_adapter_layers(text_encoder, False)` / `scale_lora_layers`.
    """
    path = Path(folder) / TEXT_ENCODER_LORA
    with safe_open(str(path), "pt") as f:
        settings = json.loads(f.metadata()["lora_config"])
    config = LoraConfig(**{k: v for k, v in settings.items() if k in LoraConfig.__dataclass_fields__})
    add_text_encoder_lora(text_encoder, config)
    missing = set(load_file(str(path))) - set(text_encoder.state_dict())
    if missing:
        raise ValueError(f"{path}: {len(missing)} weights match no layer of {type(text_encoder).__name__}")
    text_encoder.load_state_dict(load_file(str(path)), strict=False)
