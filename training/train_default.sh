#!/usr/bin/env bash
# `make train-default`: rebuild the shipped model models/hfldm-emoji end to end, on CPU or GPU.
# Every stage resumes from its latest checkpoint, so an interrupted run continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
LAUNCH="$BIN/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no --num_cpu_threads_per_process $(nproc)"
OUT=${OUT:-models/hfldm-emoji}
start=$(date +%s)

test -d data/emoji/32 || "$BIN/hfldm" data emoji --out data/emoji --resolution 32,64
$LAUNCH training/train_autoencoder.py --config training/configs/autoencoder_emoji32.yaml \
    --resume_from_checkpoint latest
"$BIN/hfldm" cache-latents --vae runs/autoencoder-emoji32 --dataset data/emoji/32 --resolution 32 \
    --out runs/latents-emoji32
$LAUNCH training/train_ldm.py --config training/configs/ldm_emoji32.yaml --resume_from_checkpoint latest
for w in 3 1; do  # the default guidance scale, and no guidance
    "$BIN/hfldm" eval --model runs/ldm-emoji32 --dataset data/emoji/32 --split test --num-samples all \
        --steps 25 --scheduler ddim --guidance-scale $w --out runs/eval-emoji32-w$w
done
"$BIN/python" training/export_model.py --pipeline runs/ldm-emoji32 --data data/emoji/32 --out "$OUT" \
    --training-notes training/configs/emoji32_card.md \
    --report runs/eval-emoji32-w3/report.md --report runs/eval-emoji32-w1/report.md
echo "train-default: done in $(( ($(date +%s) - start) / 60 )) min; model in $OUT"
