#!/usr/bin/env bash
# docs/scaling.md's figures on this machine (CPU, gloo): caching throughput of `hfldm cache-latents
# --num_shards` with 1 and 2 processes, the cache's size per 1,000 images, and training samples/s per process
# with 1 and 2 processes streaming from that cache. Usage: bash benchmarks/scaling.sh [OUT] (default
# runs/scaling); each figure is printed as one line and appended to OUT/results.txt.
# 1 process uses both cores (2 threads); 2 processes one core (1 thread) each.
set -euo pipefail
OUT=${1:-runs/scaling}
PY=${PYTHON:-.venv/bin/python}
VAE=models/hfldm-emoji/vae           # the shipped KL-f4 autoencoder (32 px -> 4x8x8 latents)
mkdir -p "$OUT"
LOG="$OUT/results.txt"
say() { echo "$*" | tee -a "$LOG"; }
now() { date +%s.%N; }
launch() { # launch N ARGS...: `accelerate launch` on N CPU processes of 2/N threads
  local n=$1; shift
  local multi=(); [ "$n" -gt 1 ] && multi=(--multi_gpu --main_process_port $((29600 + RANDOM % 300)))
  "$PY" -m accelerate.commands.launch --num_processes "$n" --num_machines 1 --mixed_precision no \
    --dynamo_backend no --num_cpu_threads_per_process $((2 / n)) "${multi[@]}" "$@"
}

STEPS=${STEPS:-40}  # training steps of each timed run; LIMIT: the first N emoji only (a smoke test: STEPS=2 LIMIT=64)
[ -d "$OUT/emoji/32" ] || "$PY" -m hfldm.cli data emoji --out "$OUT/emoji" --resolution 32 ${LIMIT:+--limit $LIMIT}
ROWS=$("$PY" -c "import datasets,sys; print(len(datasets.load_from_disk(sys.argv[1])['train']))" "$OUT/emoji/32")

# a first, untimed run: datasets then holds the image check of the folder, which every later run reuses
launch 1 -m hfldm.cli cache-latents --vae "$VAE" --dataset "$OUT/emoji/32" --out "$OUT/cache-warmup" \
  --num_shards 8 --resolution 32 --batch_size 32 > "$OUT/cache-warmup.log" 2>&1
rm -rf "$OUT/cache-warmup"
for n in 1 2; do  # caching throughput
  rm -rf "$OUT/cache$n"
  launch "$n" -m hfldm.cli cache-latents --vae "$VAE" --dataset "$OUT/emoji/32" --out "$OUT/cache$n" \
    --num_shards 8 --resolution 32 --batch_size 32 > "$OUT/cache$n.log" 2>&1
  # the command's own time: from its start (imports done) to the index, process 0 waiting for the others
  seconds=$(grep -o 'in [0-9.]* s ->' "$OUT/cache$n.log" | cut -d' ' -f2)
  say "$(printf 'cache-latents, %d process(es): %d images in %.1f s = %.1f images/s' \
    "$n" "$ROWS" "$seconds" "$(echo "$ROWS / $seconds" | bc -l)")"
done
# 2 threads vs 1 thread per process: oneDNN sums in another order, so compare values, not bytes
say "$("$PY" - "$OUT" <<'PY'
import sys, torch
from hfldm.data.sharded_cache import load_sharded_cache
a, b = (load_sharded_cache(f"{sys.argv[1]}/cache{n}", streaming=False)[:] for n in (1, 2))
d = max((a[k] - b[k]).abs().max().item() for k in ("latent_mean", "latent_std"))
print(f"cache-latents: 2-process vs 1-process shards: same rows in the same order, max |Δ| {d:.2g}"
      if torch.equal(a["labels"], b["labels"]) and a["text"] == b["text"] else "cache-latents: rows DIFFER")
PY
)"
bytes=$(du -cb "$OUT"/cache1/shards/*.parquet | tail -1 | cut -f1)
say "$(printf 'cache size: %.2f MB per 1,000 images (%d images, 8 shards, float32 mean + std of 4x8x8)' \
  "$(echo "$bytes / $ROWS * 1000 / 1000000" | bc -l)" "$ROWS")"

train() { # train N: a streaming run of $STEPS steps from the cache on N processes; prints s/step
  local n=$1 dir="$OUT/train$1"
  rm -rf "$dir"
  launch "$n" training/train_ldm.py --autoencoder "$VAE" --cached_latents "$OUT/cache1" --streaming \
    --resolution 32 --unet_config training/configs/unet_emoji32.yaml \
    --train_batch_size $((32 / n)) --max_train_steps "$STEPS" --checkpointing_steps 100000 \
    --validation_steps 0 --report_to none --scale_estimation_images 64 --shuffle_buffer_size 256 \
    --output_dir "$dir" > "$dir.log" 2>&1
  # tqdm's rate of the steps bar, from its first step (model loading and the data checks left out)
  tr '\r' '\n' < "$dir.log" | grep -o 'steps: 100%.*' | tail -1 | grep -oE '[0-9.]+(s/it|it/s)' | tail -1 \
    | awk '/s\/it/ {print $1 + 0} /it\/s/ {print 1 / $1}'
}
for n in 1 2; do  # global batch 32 either way: 32 on 1 process, 16 on each of 2
  per_step=$(train "$n")
  say "$(printf 'train_ldm --streaming from the cache, %d process(es), global batch 32, %d steps: %.3f s/step = %.1f samples/s = %.1f samples/s per process' \
    "$n" "$STEPS" "$per_step" "$(echo "32 / $per_step" | bc -l)" "$(echo "32 / $per_step / $n" | bc -l)")"
done
