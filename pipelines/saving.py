"""What hfldm's pipelines add to diffusers' saving and loading: the remote-code entry, the model card, the
upload, and loading their own folders without `trust_remote_code`.

diffusers finds a third-party pipeline through a list-form `_class_name` in model_index.json,
`[<module file in the folder>, <class>]`, and a third-party component through `[<file in its sub-folder>,
<class>]`, loaded with `trust_remote_code=True` (diffusers/pipelines/pipeline_loading_utils.py,
`_resolve_custom_pipeline_and_cls`, `get_class_obj_and_candidates`). The files, and the hfldm source they
need, are written by `hfldm.pipelines.self_contained`, so that the folder loads without hfldm.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

from hfldm.pipelines.few_step import embeds_guidance
from hfldm.pipelines.self_contained import installed_entries, write_folder_code

# save_pretrained(..., push_to_hub=True, **these) are passed on to the upload
HUB_KWARGS = ("repo_id", "token", "private", "commit_message", "create_pr")

CARD = """{front_matter}
# {title}

A latent diffusion model (Rombach et al., 2022) trained with hfldm and saved as a diffusers pipeline.
Images of {height}×{width} pixels are generated in a {channels}×{latent_h}×{latent_w} latent space
(autoencoder factor f = {f}).

| component | class | parameters |
|---|---|---|
{rows}

## Usage

```python
import torch
from diffusers import DiffusionPipeline

# the code ships in this folder (pipeline_latent_diffusion.py and hfldm's source): no hfldm install needed
pipe = DiffusionPipeline.from_pretrained("{repo}", trust_remote_code=True)
image = pipe({example}num_inference_steps={steps}, generator=torch.manual_seed(0)).images[0]
```

or, with hfldm installed, `hfldm.LatentDiffusionPipeline.from_pretrained("{repo}")` (no remote code), or
from the command line: `hfldm generate --model {repo} {cli_example}--steps {steps} --out sample.png`.
"""


def card_front_matter(
    pipeline_tag: str,
    tags: list[str],
    base_model: str | None = None,
    datasets: list[str] | None = None,
    license: str | None = None,
) -> str:
    """The YAML front matter of a model card, written by huggingface_hub's ModelCardData."""
    from huggingface_hub import ModelCardData

    data = ModelCardData(
        library_name="diffusers",
        pipeline_tag=pipeline_tag,
        base_model=base_model,
        datasets=datasets,
        license=license,
        tags=["diffusers", "latent-diffusion", "hfldm", *tags],
    )
    return f"---\n{data.to_yaml()}\n---\n"


def _num_parameters(module) -> str:
    n = sum(p.numel() for p in module.parameters())
    return f"{n / 1e6:.1f} M" if n >= 100_000 else f"{n:,}"


def pipeline_model_card(pipe, repo: str, **metadata) -> str:
    """Markdown with HF front matter describing `pipe` (a LatentDiffusionPipeline): kind, sizes, usage with
    `repo` (the Hub id or the folder); `metadata` (base_model, datasets, license) goes to the front matter."""
    height, width = pipe.default_image_size()
    f = pipe.vae_scale_factor
    if pipe.is_text_conditional:
        kind, pipeline_tag, title = "text-to-image", "text-to-image", "Text-to-image latent diffusion"
        example, cli_example = '"a smiling cat face", ', '--prompt "a smiling cat face" '
    elif pipe.num_class_embeds is not None:
        kind, pipeline_tag, title = (
            "class-conditional",
            "unconditional-image-generation",
            "Class-conditional LDM",
        )
        label = next(iter(pipe.label2id), 0)
        example, cli_example = f"class_labels=[{label!r}], ", f'--class-label "{label}" '
    else:
        kind, pipeline_tag, title = "unconditional", "unconditional-image-generation", "Unconditional LDM"
        example, cli_example = "", ""
    modules = {"unet": pipe.unet, "vae": pipe.vae, "text_encoder": pipe.text_encoder}
    rows = "\n".join(
        f"| {name} | `{type(m).__module__}.{type(m).__name__}` | {_num_parameters(m)} |"
        for name, m in modules.items()
        if m is not None
    )
    rows += f"\n| scheduler | `{type(pipe.scheduler).__name__}` | - |"
    return CARD.format(
        steps=4 if embeds_guidance(pipe.unet) else 50,  # a consistency-distilled student samples in 1-8 steps
        front_matter=card_front_matter(pipeline_tag, [kind], **metadata),
        title=title,
        height=height,
        width=width,
        channels=pipe.unet.config.in_channels,
        latent_h=height // f,
        latent_w=width // f,
        f=f,
        rows=rows,
        repo=repo,
        example=example,
        cli_example=cli_example,
    )


def add_remote_code(
    pipe, folder: str | Path, pipeline_file: str, model_card: str | None = None, repo: str | None = None
) -> None:
    """Point model_index.json at `<pipeline_file>.py` and each hfldm component at `<name>/<name>_hfldm.py`,
    write those files with the hfldm source they need (`self_contained.write_code`), write README.md.

    The README is `model_card` if given, else `pipe.default_model_card(repo)` (`repo`: the Hub id the folder
    goes to, default the folder itself) unless the folder already has one.
    """
    folder = Path(folder)
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text())
    write_folder_code(pipe, folder, pipeline_file, index)
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    readme = folder / "README.md"
    if model_card is not None or not readme.exists():
        readme.write_text(
            model_card if model_card is not None else pipe.default_model_card(repo or str(folder))
        )


def push_folder_to_hub(
    folder: str | Path,
    repo_id: str | None = None,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
) -> str:
    """Upload a saved pipeline folder (code and model card included) to the Hub; returns the repo id."""
    from huggingface_hub import create_repo, upload_folder

    repo_id = create_repo(repo_id or Path(folder).name, exist_ok=True, private=private, token=token).repo_id
    upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        token=token,
        create_pr=create_pr,
        commit_message=commit_message or "Upload LatentDiffusionPipeline",
    )
    return repo_id


class RemoteCodeMixin:
    """save_pretrained / load_config of a DiffusionPipeline whose module file travels with the folder."""

    @classmethod
    def pipeline_file(cls) -> str:
        """The module name a saved folder's model_index.json points at: this class's file, without .py (and,
        for a class loaded from a saved folder, without the prefix of its shipped copy's name)."""
        return Path(inspect.getfile(cls)).stem.removeprefix("hfldm_pipelines_")

    def default_model_card(self, repo: str, **metadata) -> str:
        """The README.md that save_pretrained writes into a folder that has none (Markdown, front matter);
        `metadata` (base_model, datasets, license) goes to the front matter."""
        return pipeline_model_card(self, repo, **metadata)

    def save_pretrained(self, save_directory: str | Path, model_card: str | None = None, **kwargs) -> None:
        """diffusers' save_pretrained, plus the pipeline's file and a model card, so that the folder loads
        with `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`.

        `model_card` (Markdown with front matter) replaces README.md; otherwise an existing README is kept.
        `push_to_hub=True` (with `repo_id`, `token`, `private`, ...) uploads the finished folder.
        """
        hub_kwargs = {k: kwargs.pop(k) for k in HUB_KWARGS if k in kwargs}
        push_to_hub = kwargs.pop("push_to_hub", False)
        super().save_pretrained(save_directory, **kwargs)
        repo = hub_kwargs.get("repo_id") if push_to_hub else None  # the card names where the folder goes
        add_remote_code(self, save_directory, self.pipeline_file(), model_card, repo)
        if push_to_hub:
            push_folder_to_hub(save_directory, **hub_kwargs)

    @classmethod
    def load_config(cls, *args, **kwargs):
        """ConfigMixin.load_config, except that a folder saved by this class loads through the class itself
        without `trust_remote_code`: its list-form `_class_name` reads as our (already imported) class, and
        the components whose code the folder ships as hfldm's installed classes."""
        loaded = super().load_config(*args, **kwargs)
        config = loaded[0] if isinstance(loaded, tuple) else loaded
        if config.get("_class_name") == [cls.pipeline_file(), cls.__name__]:
            config["_class_name"] = cls.__name__
            installed_entries(config)
        return loaded
