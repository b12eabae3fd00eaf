# Two commands set everything up on a fresh machine (Python >= 3.10 with venv):
#   make demo   install into .venv, then compress and decompress sample photos
#   make test   install into .venv, then run the test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/gencodec demo

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

bench: install
	HF_HUB_OFFLINE=1 $(BIN)/gencodec bench

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
