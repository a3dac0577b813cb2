# lightdl on a fresh machine:  `make` sets everything up and trains the default run;  `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0

.PHONY: all setup data train test test-slow lint bench docs clean

all: setup train

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "lightdl needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

setup: $(PY) data
	$(PY) -m pip install --quiet "$(TORCH)"   # the CPU build first, so nothing pulls a CUDA one
	$(PY) -m pip install --quiet -e ".[dev]"

# Fashion-MNIST from Debian's dataset-fashion-mnist where apt is available; otherwise lightdl
# downloads it (with checksums) on first use.
data:
	@if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then \
	  echo "Fashion-MNIST: found in /usr/share/datasets/fashion-mnist"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
	    || echo "Fashion-MNIST: apt-get failed; lightdl will download it on first use"; \
	else \
	  echo "Fashion-MNIST: no apt as root here; lightdl will download it on first use"; \
	fi

train:
	$(PY) -m lightdl

test:
	$(PY) -m pytest

test-slow:
	$(PY) -m pytest -m slow

lint:
	$(VENV)/bin/ruff check src tests benchmarks

bench:
	$(PY) benchmarks/epoch_overhead.py
	$(PY) benchmarks/cnn_throughput.py

docs:
	$(PY) -m lightdl.catalog_docs

clean:
	rm -rf outputs dist build
