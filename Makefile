# Every README command is a target here; .ci/run calls the same targets.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TORCH   ?= torch==2.13.0
MODEL   ?= models/hfldm-emoji
export OMP_NUM_THREADS ?= 2
# OpenMP threads that sleep instead of spinning: on a shared 2-core machine spinning threads of two
# processes made every training step up to 6x slower (measured: 15 s vs 2.5 s per autoencoder step).
export OMP_WAIT_POLICY ?= PASSIVE
export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY ?= 1
export GRADIO_ANALYTICS_ENABLED ?= False

.PHONY: install system-deps emoji-styles data-styles test lint format bench bench-runtimes bench-data demo space data train-default train-sr train-inpaint distill-default refresh-models clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU torch first: a bare `torch` requirement may pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages: the emoji font and CLDR names (data), chromium (browser test).
system-deps:
	@if [ ! -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || [ ! -f /usr/share/unicode/emoji/emoji-test.txt ] \
	   || ! command -v chromium >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    fonts-noto-color-emoji unicode-data chromium >/dev/null; fi

# the other emoji art styles (hfldm.data.emoji_styles): Iconify npm tarballs, read in place by
# `hfldm data emoji --styles ...`. Never Twemoji (kept back for independent evaluation), nor Apple / Facebook.
NPM_CACHE   ?= $(HOME)/.cache/hfldm/npm
NPM_EMOJI   := @iconify-json/fluent-emoji-flat @iconify-json/fluent-emoji @iconify-json/openmoji @iconify-json/emojione
EMOJI_STYLES ?= noto,fluent-flat,fluent,openmoji,emojione
emoji-styles:
	@command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null)
	mkdir -p $(NPM_CACHE)
	cd $(NPM_CACHE) && for p in $(NPM_EMOJI); do \
	  stem=$$(echo $$p | sed 's|^@||; s|/|-|'); \
	  ls $$stem-[0-9]*.tgz >/dev/null 2>&1 || npm pack -q $$p; done

data-styles: $(STAMP) system-deps emoji-styles
	$(BIN)/hfldm data emoji --out data/emoji-styles --resolution 32,64 --styles $(EMOJI_STYLES) --npm_cache $(NPM_CACHE) --overwrite

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# two pytest workers with one thread each: the machine has 2 cores
test: $(STAMP) lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile

# the train step against diffusers (each side's training-script optimiser), then sampling end to end,
# its scaling with the batch and the demo's / Space's start-up (docs/speed.md), the few-step student against
# its teacher (docs/few_step.md); compiled modes take minutes
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_unet.py --modes fp32,bf16 --adamw defaults --threads 1 --batch-size 16
	$(BIN)/python benchmarks/bench_sampling.py --modes fp32,bf16
	$(BIN)/python benchmarks/bench_few_step.py --modes fp32,bf16,bf16-compiled

# torch eager / bf16 vs OpenVINO fp32 / bf16 vs ONNX Runtime fp32 (exports the bundled model first, minutes;
# docs/export.md), and the parity of the three bundled models' exports with torch
bench-runtimes: $(STAMP)
	$(BIN)/python benchmarks/bench_runtimes.py --threads 1 --reps 3 --stall 3
	$(BIN)/python benchmarks/runtime_parity.py

bench-data: $(STAMP)
	$(BIN)/python benchmarks/bench_data_path.py

data: $(STAMP)
	$(BIN)/hfldm data emoji --out data/emoji --resolution 32,64 --overwrite

demo: $(STAMP)
	$(BIN)/python -m hfldm.demo --model $(MODEL) $(if $(PROMPT),--prompt "$(PROMPT)")

space: $(STAMP)
	$(BIN)/python space/app.py

# the shipped model, end to end: data, autoencoder, latent cache, LDM, evaluation, export + model card
train-default: $(STAMP) system-deps
	BIN=$(BIN) OUT=$(MODEL) bash training/train_default.sh

# the shipped super-resolution model (32 -> 64 px), end to end: the 64 px autoencoder, train_ldm.py --task
# superres, evaluation, export + model card; each training stage resumes from its latest checkpoint
train-sr: $(STAMP) system-deps
	BIN=$(BIN) bash training/train_sr.sh

# the shipped inpainting model (text-guided, 32 px): the text model's U-Net widened by zero-initialised
# channels and fine-tuned on masked emoji, the from-scratch comparison, evaluation, export + model card
train-inpaint: $(STAMP) system-deps
	BIN=$(BIN) bash training/train_inpaint.sh

# the shipped model's few-step student (LCM, docs/few_step.md): training/distill.py on the text model, then
# exported to models/hfldm-emoji-lcm; resumes from its latest checkpoint; rerun after retraining the teacher
distill-default: $(STAMP)
	BIN=$(BIN) TEACHER=$(MODEL) bash training/distill_default.sh

# the bundled folders' copies of the source (generated; .gitattributes marks them): rewrite them after changing
# any code they ship, without touching their weights
refresh-models: $(STAMP)
	for m in hfldm-emoji hfldm-emoji-sr hfldm-emoji-inpaint hfldm-emoji-sketch hfldm-emoji-lcm; do \
	  test -d models/$$m || continue; \
	  $(BIN)/python training/export_model.py --code-only --out models/$$m || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
