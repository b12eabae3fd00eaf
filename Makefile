# Two commands set everything up on a fresh machine (Python >= 3.10 with venv):
#   make demo   install gencodec with its evaluation tools into .venv, then run the demo on sample photos
#   make test   install gencodec with everything into .venv, then run the whole test suite
# and one for a quicker check while working:
#   make test-quick   the suite without the tests marked slow (training subprocesses,
#                     accelerate launch, classical-codec searches on Kodak)
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test test-quick bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# One stamp per set of extras: `make demo` installs only what the demo needs.
$(VENV)/.installed-%: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[$*]'
	touch $@

demo: $(VENV)/.installed-eval
	HF_HUB_OFFLINE=1 $(BIN)/gencodec demo

test: $(VENV)/.installed-dev
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

test-quick: $(VENV)/.installed-dev
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

bench: $(VENV)/.installed-eval
	HF_HUB_OFFLINE=1 $(BIN)/gencodec bench

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
