# The two commands of the README: `make demo` (main job on the shipped checkpoints) and `make test`.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
STAMP := .setup-done

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml
	@if [ ! -d /usr/share/datasets/fashion-mnist ]; then \
	  apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; fi
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

# DEMO_ARGS adds sweep options, e.g. make demo DEMO_ARGS='--test-res 7,14,21,28' (how reports/demo was made)
DEMO_ARGS ?=

demo: $(STAMP)
	$(PYTHON) cli.py sweep checkpoints/ -o results/demo $(DEMO_ARGS)
	$(PYTHON) cli.py report results/demo -o reports/demo --kernels checkpoints/s4nd_iso_7.pt

test: $(STAMP)
	$(PYTHON) -m pytest -q

bench: $(STAMP)
	$(PYTHON) benchmarks/bench_layer.py

clean:
	rm -rf $(STAMP) results .pytest_cache
