#!/usr/bin/env bash
# `make distill-default`: distil the shipped text model into its few-step student and ship it next to it
# (models/hfldm-emoji-lcm). Resumes from the latest checkpoint, so an interrupted run continues; after the
# teacher is retrained (e.g. on more styles), the same command distils the new one.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
TEACHER=${TEACHER:-models/hfldm-emoji}
DATA=${DATA:-data/emoji/32}
RUN=${RUN:-runs/emoji32-lcm}
OUT=${OUT:-models/hfldm-emoji-lcm}
start=$(date +%s)

test -d "$DATA" || "$BIN/hfldm" data emoji --out "$(dirname "$DATA")" --resolution 32
"$BIN/python" training/distill.py --config training/configs/distill_emoji32.yaml --teacher "$TEACHER" \
    --train_data_dir "$DATA" --output_dir "$RUN" --resume_from_checkpoint latest "$@"
"$BIN/python" training/export_model.py --pipeline "$RUN" --data "$DATA" --out "$OUT" \
    --training-notes training/configs/emoji32_lcm_card.md
# docs/few_step.md's figure and held-out table: the student at 1, 2, 4, 8 steps, the teacher at 25 DDIM, w = 3
"$BIN/python" benchmarks/few_step_figure.py --teacher "$TEACHER" --student "$OUT" --out "$RUN/few_step_samples.png"
if [ "${EVAL:-1}" = 1 ]; then
  for n in 1 2 4 8; do
    "$BIN/hfldm" eval --model "$OUT" --dataset "$DATA" --split test --num-samples all --steps $n \
        --guidance-scale 3 --out "$RUN-eval-lcm$n"
  done
  "$BIN/hfldm" eval --model "$TEACHER" --dataset "$DATA" --split test --num-samples all --steps 25 \
      --scheduler ddim --guidance-scale 3 --out "$RUN-eval-teacher25"
  # the card carries the 4-step table of the exported (fp16) folder itself
  "$BIN/python" training/export_model.py --pipeline "$RUN" --data "$DATA" --out "$OUT" \
      --training-notes training/configs/emoji32_lcm_card.md --report "$RUN-eval-lcm4/report.md"
fi
echo "distill-default: done in $(( ($(date +%s) - start) / 60 )) min; few-step model in $OUT"
