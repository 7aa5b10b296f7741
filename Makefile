# The two commands of the README: `make demo` (main job on the shipped checkpoints, in minutes) and `make test`.
# PYTHON may be any interpreter, e.g. a virtual environment's: make test PYTHON=.venv/bin/python
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# one set-up stamp per interpreter (its prefix and version), so switching PYTHON installs into the new one
STAMP := .setup-done-$(shell $(PYTHON) -c 'import sys; print(sys.prefix, sys.version)' 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: setup demo study test bench clean

$(STAMP): pyproject.toml
	@if [ ! -d /usr/share/datasets/fashion-mnist ] || ! command -v espeak-ng >/dev/null; then \
	  apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist espeak-ng; fi
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e '.[dev,ray]'
	@touch $(STAMP)

setup: $(STAMP)

# make demo: a quick study that finishes in minutes on a CPU. It is a subset (4 image test sizes, the first 1000
# test images, kept as an explicit --subset first so the README's demo figures stay the ones it prints; signals and
# clips: native, trained bandlimit, the first 500 clips), and the terminal, the run record and the report say so.
# Images and the signal and clip models are swept by one command each into the same folder: each kind at its own
# test sizes. make study: the full study of every shipped checkpoint behind reports/study.*, swept into the
# committed folder reports/study-results (resumable: each sweep skips the cells already there). First the goal
# pairs (S4ND and its discrete twin, three seeds, in 2-d, 1-d and 3-d; at 14 also the twin with S4ND's 8 epochs)
# natively with the trained bandlimit and per-image records, for the paired goal tests, flips and calibration;
# then every top-level image checkpoint at 7, 14, 21, 28 and 56, both policies, bandlimit on, off and capped;
# the ablation arms and the baselines natively at 7, 14, 28 and 56, each in the setting it trained with;
# signals and clips at their default sizes, bandlimit on, off and capped; whole test sets. It takes hours on a
# CPU (docs/study.md gives the time it took).
DEMO_ARGS ?= --test-res 7,14,28,56 --limit 1000 --subset first
DEMO_SIGNAL_CLIP_ARGS ?= --policy native --bandlimit on --limit 500
STUDY_DIR ?= reports/study-results
STUDY_SIZES ?= 7,14,21,28,56
SEED_FILES := .pt _seed1.pt _seed2.pt
STUDY_PAIRS ?= $(foreach m,s4nd_iso_7 conv2d_iso_7 s4nd_iso_14 conv2d_iso_14 conv2d_iso_14_8ep,\
                $(foreach v,$(SEED_FILES),checkpoints/$(m)$(v)))
STUDY_SIGNAL_CLIP_PAIRS ?= $(foreach m,s4nd_iso_digits4000 conv1d_iso_digits4000 s4nd_iso_moving8x14x14 \
                           conv3d_iso_moving8x14x14,$(foreach v,$(SEED_FILES),checkpoints/$(m)$(v)))
STUDY_PAIR_ARGS ?= --policy native --bandlimit on --log-samples
STUDY_IMAGE_ARGS ?= --test-res $(STUDY_SIZES) --bandlimit on,off,capped
# the ablation arms and the baselines: native, each in the setting it trained with, at 7, 14, 28 and 56
STUDY_SET_ARGS ?= --policy native --bandlimit on --test-res 7,14,28,56
STUDY_SIGNAL_CLIP_ARGS ?= --bandlimit on,off,capped

demo: $(STAMP)
	$(PYTHON) cli.py sweep checkpoints/ --kind images -o results/demo $(DEMO_ARGS)
	$(PYTHON) cli.py sweep checkpoints/ --kind signals,clips -o results/demo $(DEMO_SIGNAL_CLIP_ARGS)
	$(PYTHON) cli.py report results/demo -o results/demo-report/demo --kernels checkpoints/s4nd_iso_7.pt

study: $(STAMP)
	$(PYTHON) cli.py sweep $(STUDY_PAIRS) -o $(STUDY_DIR) --test-res $(STUDY_SIZES) $(STUDY_PAIR_ARGS)
	$(PYTHON) cli.py sweep $(STUDY_SIGNAL_CLIP_PAIRS) -o $(STUDY_DIR) $(STUDY_PAIR_ARGS)
	$(PYTHON) cli.py sweep checkpoints/ --kind images -o $(STUDY_DIR) $(STUDY_IMAGE_ARGS)
	$(PYTHON) cli.py sweep checkpoints/ablation checkpoints/baselines --kind images -o $(STUDY_DIR) $(STUDY_SET_ARGS)
	$(PYTHON) cli.py sweep checkpoints/ --kind signals,clips -o $(STUDY_DIR) $(STUDY_SIGNAL_CLIP_ARGS)
	$(PYTHON) cli.py report $(STUDY_DIR) -o reports/study --kernels checkpoints/s4nd_iso_14.pt --format md,pdf,png,svg,tex,html

test: $(STAMP)
	$(PYTHON) -m pytest -q

bench: $(STAMP)
	$(PYTHON) benchmarks/bench_layer.py

clean:
	rm -rf .setup-done* results .pytest_cache
