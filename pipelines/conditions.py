"""The conditions y of LatentDiffusionPipeline's U-Net: τ_θ(prompt) through `encode_prompt` (as diffusers'
text-to-image pipelines encode prompts, precomputed `prompt_embeds` included) and class labels, each with
the unconditional half of classifier-free guidance first (τ_θ(""), τ_θ(negative_prompt) or the null class ∅,
`hfldm.unets.null_class`).
"""

from __future__ import annotations

import torch

from hfldm.pipelines.inputs import as_list, class_label_ids
from hfldm.pipelines.null_text import cat_tokens
from hfldm.text.encoder import encode_text
from hfldm.unets.null_class import null_class_label


class ConditionEncodingMixin:
    """`encode_prompt`, `encode_class_labels` and `encode_conditions` (both as the U-Net's kwargs) of a
    pipeline with `text_encoder`, `tokenizer`, `unet`, `label2id`, `num_class_embeds` and `_null_text`."""

    def class_label_ids(self, class_labels) -> list[int]:
        """Class names (from id2label) or indices -> indices; the last index is the null class."""
        return class_label_ids(class_labels, self.label2id, self.num_class_embeds)

    def encode_prompt(
        self,
        prompt: str | list[str] | None,
        device: torch.device | None = None,
        num_images_per_prompt: int = 1,
        do_classifier_free_guidance: bool = True,
        negative_prompt: str | list[str] | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        prompt_attention_mask: torch.Tensor | None = None,
        negative_prompt_attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """τ_θ(y) of each prompt (or the given `prompt_embeds`), and under guidance the unconditional text's
        (τ_θ(""), τ_θ(negative_prompt) or the given `negative_prompt_embeds`), each repeated
        `num_images_per_prompt` times, as diffusers' text-to-image pipelines encode them.

        Returns `(prompt_embeds, prompt_attention_mask, negative_prompt_embeds,
        negative_prompt_attention_mask)` of shapes (B', L, D) and (B', L), B' = number of prompts ·
        num_images_per_prompt; the masks are None without `text_attention_mask` (given embeddings without a
        mask attend to every token), the negative pair None without guidance.
        """
        device = device or self._execution_device
        masked = self.config.text_attention_mask
        padding = "longest" if masked else "max_length"  # masked padding is work without effect

        def encode(texts: list[str]):
            return encode_text(self.tokenizer, self.text_encoder, texts, device, masked, padding)

        if prompt_embeds is None:
            prompt_embeds, prompt_attention_mask = encode(as_list(prompt))
        n = len(prompt_embeds)
        negative = (negative_prompt_embeds, negative_prompt_attention_mask)
        if do_classifier_free_guidance and negative_prompt_embeds is None and negative_prompt is None:
            hidden, mask = self._null_text(self.tokenizer, self.text_encoder, device, masked, padding)
            negative = (hidden.expand(n, -1, -1), mask.expand(n, -1) if mask is not None else None)
        elif do_classifier_free_guidance and negative_prompt_embeds is None:
            texts = [negative_prompt] * n if isinstance(negative_prompt, str) else as_list(negative_prompt)
            negative = encode(texts)
        elif not do_classifier_free_guidance:
            negative = (None, None)
        positive = self._per_image(prompt_embeds, prompt_attention_mask, num_images_per_prompt, device)
        return *positive, *self._per_image(*negative, num_images_per_prompt, device)

    def _per_image(self, hidden, mask, num_images_per_prompt: int, device) -> tuple:
        """Text states (B, L, D) and mask (B, L) (all ones if missing and the text is masked) in the U-Net's
        dtype on `device`, each row repeated num_images_per_prompt times; (None, None) for no states."""
        if hidden is None:
            return None, None
        if mask is None and self.config.text_attention_mask:
            mask = torch.ones(hidden.shape[:2], dtype=torch.long)
        dtype = (self.unet if self.unet is not None else self.text_encoder).dtype  # compiled: no bool()
        hidden = hidden.to(device, dtype).repeat_interleave(num_images_per_prompt, dim=0)
        return hidden, mask.to(device).repeat_interleave(
            num_images_per_prompt, dim=0
        ) if mask is not None else None

    def encode_class_labels(
        self, label_ids: list[int], num_images_per_prompt: int, do_cfg: bool
    ) -> torch.Tensor:
        """Class indices (B',) for the U-Net; under CFG the null class comes first."""
        labels = torch.tensor(label_ids, device=self._execution_device)
        if do_cfg:
            labels = torch.cat([torch.full_like(labels, null_class_label(self.num_class_embeds)), labels])
        return labels.repeat_interleave(num_images_per_prompt, dim=0)

    def encode_conditions(
        self,
        prompt,
        negative_prompt,
        class_labels,
        num_images_per_prompt: int,
        guidance_scale: float,
        default_batch_size: int = 1,
        prompt_embeds=None,
        negative_prompt_embeds=None,
        prompt_attention_mask=None,
        negative_prompt_attention_mask=None,
    ) -> tuple[int, bool, dict]:
        """The U-Net's conditioning kwargs for a call: `(batch_size, do_cfg, unet_kwargs)`.

        batch_size is the number of prompts (or prompt_embeds) / class labels (else `default_batch_size`);
        do_cfg says whether guidance has an unconditional half to mix with; unet_kwargs are τ_θ(y) with its
        mask and the class labels, (2 ×) batch_size × num_images_per_prompt rows, the unconditional half
        first under CFG.
        """
        label_ids = self.class_label_ids(class_labels) if class_labels is not None else None
        prompts = as_list(prompt) if prompt is not None else None
        n_embeds = len(prompt_embeds) if prompt_embeds is not None else None
        batch_size = len(prompts or label_ids or []) or n_embeds or default_batch_size
        if self.is_text_conditional and prompts is None and prompt_embeds is None:
            prompts = [""] * batch_size
        given = (prompt_embeds, label_ids, negative_prompt, negative_prompt_embeds)
        conditional = any(prompts or []) or any(x is not None for x in given)
        do_cfg = conditional and guidance_scale != 1.0
        if label_ids is None and self.num_class_embeds is not None:
            label_ids = [null_class_label(self.num_class_embeds)] * batch_size
        kwargs = dict(encoder_hidden_states=None, encoder_attention_mask=None, class_labels=None)
        if self.is_text_conditional:
            hidden, mask, negative, negative_mask = self.encode_prompt(
                prompts,
                num_images_per_prompt=num_images_per_prompt,
                do_classifier_free_guidance=do_cfg,
                negative_prompt=negative_prompt,
                prompt_embeds=prompt_embeds,
                negative_prompt_embeds=negative_prompt_embeds,
                prompt_attention_mask=prompt_attention_mask,
                negative_prompt_attention_mask=negative_prompt_attention_mask,
            )
            parts = [(negative, negative_mask), (hidden, mask)] if do_cfg else [(hidden, mask)]
            kwargs["encoder_hidden_states"], kwargs["encoder_attention_mask"] = cat_tokens(parts)
        if label_ids is not None:
            kwargs["class_labels"] = self.encode_class_labels(label_ids, num_images_per_prompt, do_cfg)
        return batch_size, do_cfg, kwargs
