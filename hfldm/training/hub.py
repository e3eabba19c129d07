"""--push_to_hub of the training scripts: the repo is created (or found) before any training work, so that an
offline or unauthorised push fails in one line at once; the finished model folder is uploaded at the end."""

from __future__ import annotations

from pathlib import Path

# what output_dir holds besides the model: training state and logs stay local
NOT_UPLOADED = ["checkpoint-*/**", ".checkpoint-*/**", "logs/**", "tokenizer-training/**"]


def hub_repo(push_to_hub: bool, hub_model_id: str | None, output_dir: str, token: str | None) -> str | None:
    """The repo id --push_to_hub will upload to, created if missing; None without --push_to_hub."""
    if not push_to_hub:
        return None
    from huggingface_hub import create_repo

    try:
        return create_repo(hub_model_id or Path(output_dir).name, exist_ok=True, token=token).repo_id
    except Exception as e:  # offline (HF_HUB_OFFLINE), no token, no network (httpx's errors are not OSErrors)
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"--push_to_hub: cannot create the Hub repo ({reason})") from None


def push_folder(repo_id: str, folder: str, token: str | None, message: str) -> None:
    """Upload the model files of `folder` (not its checkpoints or logs) to `repo_id`."""
    from huggingface_hub import upload_folder

    upload_folder(
        repo_id=repo_id, folder_path=folder, token=token, commit_message=message, ignore_patterns=NOT_UPLOADED
    )
