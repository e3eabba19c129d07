"""train_lora.py: a LoRA adapter changes the outputs, scales, and switches off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _training_helpers import RESOLUTION, flags, run_script, tiny_autoencoder, tiny_unet
from safetensors.torch import load_file

from hfldm import DDPMScheduler, LatentDiffusionPipeline


def save_pipeline(folder: Path, kind: str) -> Path:
    """A LatentDiffusionPipeline (random weights, nothing zero-initialised) conditioned on the digits' class
    labels or on their captions through a small DistilBERT τ_θ."""
    from hfldm.text import make_text_encoder, train_caption_tokenizer

    vae = tiny_autoencoder()
    vae.register_to_config(scaling_factor=0.7)
    text = dict(tokenizer=None, text_encoder=None, id2label={i: str(i) for i in range(10)})
    if kind == "text":
        tokenizer = train_caption_tokenizer([f"digit {d}" for d in range(10)], vocab_size=40)
        torch.manual_seed(1)
        text = dict(tokenizer=tokenizer, text_encoder=make_text_encoder(tokenizer, 32, layers=1).eval())
    condition = dict(cross_attention_dim=32) if kind == "text" else dict(num_class_embeds=11)
    unet = tiny_unet((16, 32), sample_size=8, **condition)
    with torch.no_grad():  # as after training: no zero-initialised layer blocks the gradient to the attention
        for parameter in unet.parameters():
            if not parameter.any():
                parameter.normal_(std=0.05)
    LatentDiffusionPipeline(vae, unet, DDPMScheduler(num_train_timesteps=100), **text).save_pretrained(folder)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["class", "text"])
def test_lora_adapter_changes_outputs_and_switches_off(digits, kind, tmp_path):
    """U-Net adapters (and τ_θ's, for text) trained a few steps: on, the same seed gives another image; at
    scale 0 or switched off, the pipeline's own; the U-Net adapter is under 5 % of the U-Net's size."""
    from diffusers.utils.peft_utils import set_adapter_layers

    from hfldm.text.lora import load_text_encoder_lora

    pipeline_dir, out = save_pipeline(tmp_path / "pipeline", kind), tmp_path / "lora"
    condition = ["--train_text_encoder", "true"] if kind == "text" else ["--label_column", "label"]
    run_script(
        "train_lora.py",
        *condition,
        *flags(
            pretrained_model=pipeline_dir,
            train_data_dir=digits,
            resolution=RESOLUTION,
            max_samples=32,
            rank=4,
            max_train_steps=4,
            train_batch_size=8,
            learning_rate=1e-2,
            validation_steps=4,
            report_to="none",
            num_inference_steps=3,
            output_dir=out,
        ),
    )
    assert (out / "validation" / "samples-000004.png").is_file()  # validation samples with the adapters
    adapter, unet_file = (
        out / "pytorch_lora_weights.safetensors",
        pipeline_dir / "unet/diffusion_pytorch_model.safetensors",
    )
    assert adapter.stat().st_size < 0.05 * unet_file.stat().st_size
    assert all(".lora_" in k for k in load_file(adapter))

    pipe = LatentDiffusionPipeline.from_pretrained(pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    condition = dict(prompt=["digit 3", "digit 7"]) if kind == "text" else dict(class_labels=[3, 7])

    def sample() -> np.ndarray:
        g = torch.Generator().manual_seed(0)
        return pipe(**condition, num_inference_steps=3, generator=g, output_type="np").images

    base = sample()
    if kind == "text":
        load_text_encoder_lora(pipe.text_encoder, out)
        assert np.abs(sample() - base).max() > 1e-4  # τ_θ's adapter alone changes the image
        set_adapter_layers(pipe.text_encoder, False)
        np.testing.assert_allclose(sample(), base, atol=1e-6)
    pipe.unet.load_lora_adapter(str(out), prefix=None, use_safetensors=True, adapter_name="digits")
    adapted = sample()
    assert np.abs(adapted - base).max() > 1e-3
    pipe.unet.set_adapters(["digits"], weights=[0.0])
    np.testing.assert_allclose(sample(), base, atol=1e-6)
    pipe.unet.set_adapters(["digits"], weights=[1.0])
    np.testing.assert_allclose(sample(), adapted, atol=1e-6)
    pipe.unet.disable_lora()
    np.testing.assert_allclose(sample(), base, atol=1e-6)

    # the pipeline's one-call loader equals loading both adapters by hand
    pipe = LatentDiffusionPipeline.from_pretrained(pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    if kind == "text":
        load_text_encoder_lora(pipe.text_encoder, out)
    pipe.unet.load_lora_adapter(str(out), prefix=None, use_safetensors=True)
    by_hand = sample()
    pipe = LatentDiffusionPipeline.from_pretrained(pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(out)
    np.testing.assert_allclose(sample(), by_hand, atol=1e-6)
    assert np.abs(by_hand - base).max() > 1e-3
    with pytest.raises(FileNotFoundError, match="folder"):
        pipe.load_lora_weights(pipeline_dir)
