#!/usr/bin/env bash
# The day a CUDA GPU is available: train each task for a few hundred steps in bf16 (fp16 where the GPU has
# no bf16), sample from each result, time a compiled U-Net, and print one summary line per task. NOT RUN
# YET: this project has had no GPU (docs/scaling.md). Usage: bash benchmarks/gpu_check.sh [OUT] [STEPS]
# (defaults runs/gpu_check, 300). Needs the emoji data (`make data`) and the shipped models (models/).
set -euo pipefail
OUT=${1:-runs/gpu_check}
STEPS=${2:-300}
PY=${PYTHON:-.venv/bin/python}
DATA=${DATA:-data/emoji}
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: no CUDA GPU here')"
PRECISION=$("$PY" -c "import torch; print('bf16' if torch.cuda.is_bf16_supported() else 'fp16')")
DTYPE=$([ "$PRECISION" = bf16 ] && echo bfloat16 || echo float16)
GPU=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0))")
echo "gpu_check on $GPU, $PRECISION, $STEPS steps per task" | tee -a "$SUMMARY"

task() { # task NAME TRAIN_FLAGS... : train, then time it; the sampling command comes from the caller
  local name=$1; shift
  local start; start=$(date +%s.%N)
  "$PY" -m accelerate.commands.launch --num_processes 1 --mixed_precision "$PRECISION" training/train_ldm.py \
    --mixed_precision "$PRECISION" --max_train_steps "$STEPS" --checkpointing_steps "$STEPS" \
    --validation_steps 0 --report_to none --torch_compile --output_dir "$OUT/$name" "$@" > "$OUT/$name.log" 2>&1 \
    && status=ok || status=FAILED
  TRAIN_S=$(echo "$(date +%s.%N) - $start" | bc -l)
  LOSS=$(grep -o 'loss=[0-9.]*' "$OUT/$name.log" | tail -1 | cut -d= -f2)
}
sample() { # sample NAME COMMAND... : time one sampling command on the trained pipeline
  local name=$1; shift
  local start; start=$(date +%s.%N)
  "$@" > "$OUT/$name.sample.log" 2>&1 && sampled=ok || sampled=FAILED
  SAMPLE_S=$(echo "$(date +%s.%N) - $start" | bc -l)
}
report() {
  printf '%-10s train %s (%.0f s, last loss %s)  sample %s (%.1f s)\n' "$1" "$status" "$TRAIN_S" \
    "${LOSS:-?}" "$sampled" "$SAMPLE_S" | tee -a "$SUMMARY"
}

# the sharded latent caches (hfldm cache-latents --num_shards) of the text and class runs, timed too
start=$(date +%s.%N)
"$PY" -m hfldm.cli cache-latents --vae models/hfldm-emoji/vae --text_encoder minilm --dataset "$DATA/32" \
  --resolution 32 --out "$OUT/cache-minilm" --num_shards 8 --device cuda > "$OUT/cache.log" 2>&1
"$PY" -m hfldm.cli cache-latents --vae models/hfldm-emoji/vae --dataset "$DATA/32" --resolution 32 \
  --caption_column none --label_column group --out "$OUT/cache-class" --num_shards 8 --device cuda >> "$OUT/cache.log" 2>&1
printf 'caches     two sharded caches of %s in %.0f s\n' "$DATA/32" "$(echo "$(date +%s.%N) - $start" | bc -l)" | tee -a "$SUMMARY"

task text --config training/configs/ldm_emoji32_minilm.yaml --train_data_dir "$DATA/32" \
  --autoencoder models/hfldm-emoji/vae --cached_latents "$OUT/cache-minilm" --train_batch_size 64
sample text "$PY" -m hfldm.cli generate --model "$OUT/text" --prompt "red apple" --steps 25 --compile \
  --dtype "$DTYPE" --device cuda --out "$OUT/text.png"
report text

task class --config training/configs/ldm_emoji32.yaml --train_data_dir "$DATA/32" \
  --autoencoder models/hfldm-emoji/vae --cached_latents "$OUT/cache-class" --streaming --text_encoder none \
  --label_column group --train_batch_size 64
sample class "$PY" -m hfldm.cli generate --model "$OUT/class" --class-label 0 --steps 25 --compile \
  --dtype "$DTYPE" --device cuda --out "$OUT/class.png"
report class

task superres --config training/configs/ldm_superres_emoji64.yaml --train_data_dir "$DATA/64" \
  --autoencoder models/hfldm-emoji-sr/vae --train_batch_size 32
sample superres "$PY" -m hfldm.cli upscale --model "$OUT/superres" --image "$OUT/text.png" --steps 25 \
  --dtype "$DTYPE" --device cuda --out "$OUT/superres.png"
report superres

task inpaint --config training/configs/ldm_inpaint_emoji32.yaml --train_data_dir "$DATA/32" \
  --train_batch_size 64
sample inpaint "$PY" -m hfldm.cli inpaint --model "$OUT/inpaint" --image "$OUT/text.png" \
  --mask space/examples/centre-mask.png --prompt "red apple" --steps 25 --dtype "$DTYPE" --device cuda \
  --out "$OUT/inpaint.png"
report inpaint
echo "one line per task above; logs in $OUT" | tee -a "$SUMMARY"
