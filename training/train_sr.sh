#!/usr/bin/env bash
# `make train-sr`: rebuild the shipped super-resolution model models/hfldm-emoji-sr (emoji 32 -> 64 px) end to
# end: data, the 64 px autoencoder (the bundled one fine-tuned), the SR LDM, evaluation, export + model card.
# Every training stage resumes from its latest checkpoint, so an interrupted run continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
LAUNCH="$BIN/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no --num_cpu_threads_per_process $(nproc)"
OUT=${OUT:-models/hfldm-emoji-sr}
start=$(date +%s)

test -d data/emoji/64 || "$BIN/hfldm" data emoji --out data/emoji --resolution 32,64
$LAUNCH training/train_autoencoder.py --config training/configs/autoencoder_emoji64.yaml \
    --resume_from_checkpoint latest
$LAUNCH training/train_ldm.py --config training/configs/ldm_superres_emoji64.yaml --resume_from_checkpoint latest
"$BIN/python" benchmarks/superres_eval.py --model runs/ldm-superres-emoji64 --dataset data/emoji/64 \
    --steps 50 --out runs/eval-superres-emoji64/superres
"$BIN/python" training/export_model.py --pipeline runs/ldm-superres-emoji64 --data data/emoji/64 --out "$OUT" \
    --training-notes training/configs/emoji_sr_card.md --report runs/eval-superres-emoji64/superres.md
echo "train-sr: done in $(( ($(date +%s) - start) / 60 )) min; model in $OUT"
