#!/usr/bin/env bash
# `make train-inpaint`: rebuild the shipped inpainting model models/hfldm-emoji-inpaint (text-guided, 32 px)
# end to end: the bundled text model's U-Net widened by zero-initialised channels and fine-tuned on masked
# emoji, the from-scratch arm of the comparison, the held-out evaluation, export + model card. Every training
# stage resumes from its latest checkpoint, so an interrupted run continues where it stopped.
#   SKIP_SCRATCH=1 leaves out the from-scratch arm (and the init-vs-scratch curve).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
LAUNCH="$BIN/accelerate launch --num_processes 1 --num_machines 1 --dynamo_backend no --num_cpu_threads_per_process $(nproc)"
OUT=${OUT:-models/hfldm-emoji-inpaint}
start=$(date +%s)

test -d data/emoji/32 || "$BIN/hfldm" data emoji --out data/emoji --resolution 32,64
$LAUNCH training/train_ldm.py --config training/configs/ldm_inpaint_emoji32.yaml --resume_from_checkpoint latest
reports=(--report runs/eval-inpaint-emoji32/inpaint.md)
if [ -z "${SKIP_SCRATCH:-}" ]; then
  $LAUNCH training/train_ldm.py --config training/configs/ldm_inpaint_emoji32_scratch.yaml \
      --resume_from_checkpoint latest
  "$BIN/python" benchmarks/inpaint_init_curve.py --run "init from the text model=runs/ldm-inpaint-emoji32" \
      --init-source models/hfldm-emoji --run "from scratch=runs/ldm-inpaint-emoji32-scratch" \
      --dataset data/emoji/32 --out runs/eval-inpaint-emoji32/inpaint_init
  reports+=(--report runs/eval-inpaint-emoji32/inpaint_init.md)
fi
"$BIN/python" benchmarks/inpaint_eval.py --model runs/ldm-inpaint-emoji32 --text-model models/hfldm-emoji \
    --dataset data/emoji/32 --out runs/eval-inpaint-emoji32/inpaint
"$BIN/python" training/export_model.py --pipeline runs/ldm-inpaint-emoji32 --data data/emoji/32 --out "$OUT" \
    --training-notes training/configs/emoji_inpaint_card.md "${reports[@]}"
echo "train-inpaint: done in $(( ($(date +%s) - start) / 60 )) min; model in $OUT"
