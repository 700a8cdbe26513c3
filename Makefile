# Two commands: `make run` (the quickstart, end to end) and `make test` (the test suite).
# Both create .venv if missing and install the package; `make run` also makes sure the
# quickstart data (Fashion-MNIST) is present.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
CONFIG ?= configs/quickstart.yaml
REPORT ?= results/quickstart-report
STAMP := $(VENV)/.installed

.PHONY: run test setup data browser lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch/torchvision pinned to the releases this project is tested with (local wheels on our machines)
$(STAMP): $(PY) pyproject.toml
	$(PIP) install "torch==2.14.1" "torchvision==0.29.1"
	$(PIP) install -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

data:
	@bash scripts/ensure_data.sh

browser:
	@bash scripts/ensure_browser.sh

run: setup data
	$(VENV)/bin/compressbench run $(CONFIG)
	$(VENV)/bin/compressbench report results/quickstart.sqlite --out $(REPORT)

test: setup data browser
	$(PY) -m pytest tests

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

bench: setup
	$(PY) benchmarks/efficiency.py
	$(PY) benchmarks/corruptions.py

clean:
	rm -rf .compressbench results
