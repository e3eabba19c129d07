"""The state of a guided denoising loop that diffusers' callbacks read and change, as diffusers' text-to-image
pipelines keep it: `guidance_scale` (w), `do_classifier_free_guidance`, `cross_attention_kwargs`, and the
callback's tensors under diffusers' names (`latents`, `prompt_embeds`, `negative_prompt_embeds`).

Under classifier-free guidance (Ho & Salimans 2022) every condition tensor of the U-Net holds the
unconditional half first: 2 × the images' rows. A callback may set `pipe._guidance_scale` (1: no guidance)
or keep only the conditional rows of `prompt_embeds` (diffusers' `SDCFGCutoffCallback` does both): from the
next step on, the U-Net sees z_t and the conditional rows alone.
"""

from __future__ import annotations

import torch


class GuidanceStateMixin:
    """`guidance_scale`, `do_classifier_free_guidance`, `cross_attention_kwargs` of the current call, the
    U-Net's condition tensors of a step (`step_conditions`), the callback after each step (`after_step`)."""

    _guidance_scale: float = 1.0
    _cross_attention_kwargs: dict | None = None
    _conditions: dict | None = (
        None  # the U-Net's condition kwargs; under guidance the unconditional half first
    )
    _num_images: int = 0  # rows of z_t

    @property
    def guidance_scale(self) -> float:
        """w in ε̃ = ε(z_t, ∅) + w (ε(z_t, y) - ε(z_t, ∅)) of the current (or last) call."""
        return self._guidance_scale

    @property
    def cross_attention_kwargs(self) -> dict | None:
        """Keyword arguments of the U-Net's attention processors in the current (or last) call."""
        return self._cross_attention_kwargs

    @property
    def do_classifier_free_guidance(self) -> bool:
        """Whether the next step mixes ε(z_t, ∅) and ε(z_t, y): w ≠ 1 and every condition tensor still holds
        the unconditional half (2 × the images' rows)."""
        tensors = [v for v in (self._conditions or {}).values() if isinstance(v, torch.Tensor)]
        halves = bool(tensors) and all(len(v) == 2 * self._num_images for v in tensors)
        return self._guidance_scale != 1.0 and halves

    def step_conditions(self, rows: int) -> dict:
        """The U-Net's condition kwargs for a batch of `rows`: all of them under guidance, else the
        conditional (last) `rows` of each."""
        return {k: v[-rows:] if isinstance(v, torch.Tensor) else v for k, v in self._conditions.items()}

    def after_step(self, callback, tensor_names: list[str], i: int, t, latents: torch.Tensor) -> torch.Tensor:
        """Call `callback(self, i, t, {name: tensor})` and take back what it returns: `latents`,
        `prompt_embeds` (the U-Net's text states, unconditional rows first under guidance) and
        `negative_prompt_embeds` (those unconditional rows). Returns the (new) latents; ValueError naming
        `callback_on_step_end` when it returns anything but a dict, or latents of another shape."""
        n, hidden = len(latents), self._conditions.get("encoder_hidden_states")
        negative = hidden[:-n] if hidden is not None and len(hidden) > n else None
        tensors = {"latents": latents, "prompt_embeds": hidden, "negative_prompt_embeds": negative}
        outputs = callback(self, i, t, {name: tensors[name] for name in tensor_names})
        if not isinstance(outputs, dict):
            raise ValueError(
                f"callback_on_step_end must return a dict of tensors (e.g. its callback_kwargs), got "
                f"{type(outputs).__name__}"
            )
        new_latents = outputs.get("latents", latents)
        if not isinstance(new_latents, torch.Tensor) or new_latents.shape != latents.shape:
            raise ValueError(
                f"callback_on_step_end returned latents that are not a tensor of shape {tuple(latents.shape)}"
            )
        hidden = outputs.get("prompt_embeds", hidden)
        if outputs.get("negative_prompt_embeds") is not None:
            hidden = torch.cat([outputs["negative_prompt_embeds"], hidden[-n:]])
        if hidden is not None:
            self._conditions["encoder_hidden_states"] = hidden
        return new_latents
