"""Runtime-backed stand-ins for a pipeline's τ_θ, U-Net and autoencoder, so that hfldm's own pipelines run an
exported folder with their own loop.

Each offers exactly what the pipelines use of the torch component: the U-Net's call signature, `.config`,
`.dtype` and `.device`; τ_θ's `(input_ids, attention_mask) -> .last_hidden_state`; the autoencoder as a
`LatentSpace` (latent moments, decoder, scale). They are parameterless `nn.Module`s, so `DiffusionPipeline`
registers them, `_execution_device` finds the CPU and the τ_θ("") cache keys on them as on a torch τ_θ.
Inputs go to the runtime as fp32 numpy arrays and come back as fp32 tensors: z_t and the scheduler's
arithmetic stay fp32 as in the torch pipelines (`hfldm.pipelines.sampling.predict_noise`).
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers.configuration_utils import FrozenDict
from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from hfldm.autoencoders.latent_space import LatentSpace
from hfldm.pipelines.null_text import pad_tokens
from hfldm.runtime.formats import Session


class RuntimeComponent(nn.Module):
    """A component computed by a runtime `Session` on the CPU, in fp32 at its inputs and outputs."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = FrozenDict(config)

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def run(self, session: Session, **inputs: torch.Tensor) -> list[torch.Tensor]:
        """`session` on `inputs` (ValueError naming the input whose shape a static export does not take)."""
        for name, static in session.input_shapes.items():
            shape = tuple(inputs[name].shape)
            if len(shape) != len(static) or any(s is not None and s != n for s, n in zip(static, shape)):
                raise ValueError(
                    f"{name}: this export takes shape {tuple(s or '?' for s in static)}, got {shape} "
                    "(export it again with other --batch-size / --height / --width, or without them)"
                )
        arrays = {name: inputs[name].detach().cpu().numpy() for name in session.input_shapes}
        return [torch.from_numpy(np.asarray(out, dtype=np.float32)) for out in session(**arrays)]


class RuntimeUNet(RuntimeComponent):
    """ε_θ(z_t, t, τ_θ(y) / class labels) by an exported U-Net graph (`hfldm.runtime.graphs.UNetGraph`)."""

    def __init__(self, session: Session, config: dict):
        super().__init__(config)
        self.session = session

    def forward(
        self,
        sample,
        timestep,
        encoder_hidden_states=None,
        class_labels=None,
        encoder_attention_mask=None,
        cross_attention_kwargs=None,
        return_dict: bool = True,
    ):
        batch = sample.shape[0]
        timestep = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1).expand(batch)
        inputs = dict(sample=sample.float(), timestep=timestep, class_labels=class_labels)
        if encoder_hidden_states is not None:
            inputs |= self._tokens(encoder_hidden_states.float(), encoder_attention_mask)
        eps = self.run(self.session, **inputs)[0]
        return UNet2DConditionOutput(sample=eps) if return_dict else (eps,)

    def _tokens(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """τ_θ(y) and its mask as the graph takes them: the mask only if the graph has one (all ones when the
        caller gave none), right-padded with masked-out tokens to a static export's length."""
        shapes = self.session.input_shapes
        if "encoder_attention_mask" not in shapes:
            return {"encoder_hidden_states": hidden}
        mask = torch.ones(hidden.shape[:2], dtype=torch.int64) if mask is None else mask.long()
        length = shapes["encoder_hidden_states"][1]
        if length is not None and hidden.shape[1] < length:  # padding hidden by the mask changes nothing
            hidden, mask = pad_tokens(hidden, mask, length)
        return {"encoder_hidden_states": hidden, "encoder_attention_mask": mask}


class RuntimeTextEncoder(RuntimeComponent):
    """τ_θ(input_ids[, attention_mask]).last_hidden_state by an exported text-encoder graph."""

    def __init__(self, session: Session, config: dict):
        super().__init__(config)
        self.session = session

    def forward(self, input_ids, attention_mask=None, **_):
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        hidden = self.run(self.session, input_ids=input_ids.long(), attention_mask=mask.long())[0]
        return BaseModelOutput(last_hidden_state=hidden)


class RuntimeAutoencoder(RuntimeComponent, LatentSpace):
    """The first stage as a `LatentSpace`: q(z|x) by the exported encoder, D(z) by the exported decoder, the
    latent scale from the autoencoder's config."""

    def __init__(
        self,
        encoder: Session | None,
        decoder: Session,
        config: dict,
        latent_channels: int,
        downsample_factor: int,
    ):
        super().__init__(config)
        self.encoder, self.decoder = encoder, decoder
        self._latent_channels, self._downsample_factor = latent_channels, downsample_factor

    @property
    def latent_channels(self) -> int:
        return self._latent_channels

    @property
    def downsample_factor(self) -> int:
        return self._downsample_factor

    def latent_moments(self, x):
        mean, std = self.run(self.encoder, x=x.float())
        return mean, std

    def decode_latents(self, z):
        return self.run(self.decoder, z=z.float())[0]
