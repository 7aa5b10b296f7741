# The two commands of the README: `make demo` (main job on the shipped checkpoints) and `make test`.
# PYTHON may be any interpreter, e.g. a virtual environment's: make test PYTHON=.venv/bin/python
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# one set-up stamp per interpreter (its prefix and version), so switching PYTHON installs into the new one
STAMP := .setup-done-$(shell $(PYTHON) -c 'import sys; print(sys.prefix, sys.version)' 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml
	@if [ ! -d /usr/share/datasets/fashion-mnist ]; then \
	  apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; fi
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

# DEMO_ARGS adds sweep options, e.g. make demo DEMO_ARGS='--test-res 7,14,28 --limit 1000' for a quick look;
# reports/demo was made with no DEMO_ARGS (the full default sweep, see the README)
DEMO_ARGS ?=

demo: $(STAMP)
	$(PYTHON) cli.py sweep checkpoints/ -o results/demo $(DEMO_ARGS)
	$(PYTHON) cli.py report results/demo -o reports/demo --kernels checkpoints/s4nd_iso_7.pt

test: $(STAMP)
	$(PYTHON) -m pytest -q

bench: $(STAMP)
	$(PYTHON) benchmarks/bench_layer.py

clean:
	rm -rf .setup-done* results .pytest_cache
