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

# Offline data from Debian where apt is available: Fashion-MNIST (dataset-fashion-mnist) and English
# text (fortunes, the default corpus of data=chars, text_topics and words). Without apt, lightdl
# downloads Fashion-MNIST (with checksums) on first use; text data then needs data.path.
data:
	@if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ -d /usr/share/games/fortunes ]; then \
	  echo "data: Fashion-MNIST and fortunes found under /usr/share"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist fortunes >/dev/null) \
	    || echo "data: apt-get failed; lightdl will download Fashion-MNIST on first use"; \
	else \
	  echo "data: no apt as root here; lightdl will download Fashion-MNIST on first use"; \
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
	$(PY) benchmarks/run.py

docs:
	$(PY) -m lightdl.catalog_docs

clean:
	rm -rf outputs dist build
