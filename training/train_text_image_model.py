"""Train the small CLIP-style text–image model on the emoji TRAIN split, save it, report held-out numbers.

    OMP_NUM_THREADS=2 python training/train_text_image_model.py --output_dir models/hfldm-textimage

The text tower (MiniLM) is frozen, so its caption embeddings are computed once. Each step: augment a batch
of training images, symmetric InfoNCE over the batch. At the end: held-out (test split) retrieval top-1 /
top-5 beside chance, on all test captions and on the emoji that are not skin-tone variants of training
ones, and the real-vs-real FID/KID floor (test real vs train real) with the model's own image features.
The numbers are printed and written to <output_dir>/eval_results.json.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from diffusers.optimization import get_cosine_schedule_with_warmup
from transformers import HfArgumentParser

from hfldm.eval.augment import augment
from hfldm.eval.emoji_split import load_emoji_split
from hfldm.eval.features import TextImageFeatures
from hfldm.eval.reference import reference_figures
from hfldm.eval.retrieval import retrieval_from_embeddings
from hfldm.eval.sentence import encode_sentences
from hfldm.eval.text_image import TextImageModel, info_nce_loss

logger = logging.getLogger("train_text_image_model")


@dataclass
class Arguments:
    data_dir: str | None = field(
        default=None, metadata={"help": "emoji save_to_disk folder; none = render now"}
    )
    output_dir: str = "models/hfldm-textimage"
    resolution: int = 32  # image side the model works at
    block_out_channels: str = "16,32,64,128"  # CNN widths, comma separated
    projection_dim: int = 128
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50
    max_minutes: float | None = None  # stop early (and still save) past this wall-clock budget
    checkpoint_dir: str = "outputs/text_image_checkpoint"  # git-ignored; holds the latest checkpoint
    checkpoint_every: int = 5  # epochs between checkpoints
    resume: bool = False  # continue from checkpoint_dir
    eval_only: bool = False  # skip training: load <output_dir> and recompute the held-out numbers
    kid_subset_size: int = 100
    threads: int = 2
    seed: int = 0


def training_step(model, optimizer, scheduler, accelerator, images, text, generator) -> float:
    """One InfoNCE step on a batch of [0, 1] images (B, 3, R, R) and their MiniLM embeddings (B, 384)."""
    logits = model(augment(images, generator=generator), text)  # (B, B)
    loss = info_nce_loss(logits)
    accelerator.backward(loss)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


@torch.no_grad()
def held_out_top1(model, images: torch.Tensor, text: torch.Tensor) -> float:
    """Top-1 retrieval of the test captions (quick validation on precomputed text embeddings)."""
    model.eval()
    result = retrieval_from_embeddings(model.image_embeds(images), model.text_embeds(text), k=(1,))
    model.train()
    return result["top1"]


def save_checkpoint(model, optimizer, scheduler, epoch: int, folder: Path) -> None:
    model.save_pretrained(folder)  # config.json + diffusion_pytorch_model.safetensors
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch}
    torch.save(state, folder / "training_state.pt")


def load_training_state(optimizer, scheduler, folder: Path) -> int:
    """Restore optimiser and schedule from `save_checkpoint`; returns the epoch to continue from."""
    state = torch.load(folder / "training_state.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return state["epoch"] + 1


def main() -> None:
    (args,) = HfArgumentParser(Arguments).parse_args_into_dataclasses()
    logging.basicConfig(format="%(asctime)s %(message)s", level=logging.INFO)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    start, output_dir = time.time(), Path(args.output_dir)
    checkpoint_dir = Path(args.checkpoint_dir)

    # 1. data: emoji train / test images in [0, 1], frozen MiniLM caption embeddings computed once
    data = load_emoji_split(args.data_dir, args.resolution)
    train, test = data["train"], data["test"]
    train_text, test_text = encode_sentences(train.captions), encode_sentences(test.captions)
    logger.info(
        "train %d, test %d emoji; text embeddings %s",
        len(train.captions),
        len(test.captions),
        train_text.shape,
    )

    # 2. model (new; from the checkpoint with --resume; the saved one with --eval_only), optimiser, schedule
    source = checkpoint_dir if args.resume else output_dir if args.eval_only else None
    channels = tuple(int(c) for c in args.block_out_channels.split(","))
    model = (
        TextImageModel.from_pretrained(source)
        if source
        else TextImageModel(args.resolution, channels, projection_dim=args.projection_dim)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    total_steps = args.epochs * math.ceil(len(train.captions) / args.batch_size)
    scheduler = get_cosine_schedule_with_warmup(optimizer, args.warmup_steps, total_steps)
    first_epoch = load_training_state(optimizer, scheduler, checkpoint_dir) if args.resume else 0
    last_epoch = first_epoch if args.eval_only else args.epochs
    accelerator = Accelerator(cpu=True)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    logger.info("model: %d parameters", sum(p.numel() for p in model.parameters()))

    # 3. train
    model.train()
    for epoch in range(first_epoch, last_epoch):
        order = torch.randperm(len(train.captions), generator=generator)
        losses = [
            training_step(model, optimizer, scheduler, accelerator, train.images[i], train_text[i], generator)
            for i in order.split(args.batch_size)
            if len(i) > 1
        ]
        top1 = held_out_top1(model, test.images, test_text)
        minutes = (time.time() - start) / 60
        logger.info(
            "epoch %d loss %.3f test top1 %.3f (%.1f min)", epoch, sum(losses) / len(losses), top1, minutes
        )
        if (epoch + 1) % args.checkpoint_every == 0:
            save_checkpoint(accelerator.unwrap_model(model), optimizer, scheduler, epoch, checkpoint_dir)
        if args.max_minutes is not None and minutes > args.max_minutes:
            logger.info("stopping after epoch %d: past --max_minutes %.1f", epoch, args.max_minutes)
            break

    # 4. save the model, then measure the reference figures with it (--eval_only keeps the training record)
    model = accelerator.unwrap_model(model).eval()
    results_file = output_dir / "eval_results.json"
    if args.eval_only:
        results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    else:
        model.save_pretrained(output_dir)
        results = {"arguments": asdict(args), "train_minutes": round((time.time() - start) / 60, 2)}
    results.update(
        reference_figures(
            model,
            train.images,
            test.images,
            test.captions,
            train.captions,
            kid_subset_size=args.kid_subset_size,
        ),
        feature_network=TextImageFeatures(model).name,
    )
    results_file.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
