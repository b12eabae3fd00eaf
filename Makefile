# Two commands set everything up on a fresh machine (Python >= 3.10 with venv):
#   make demo   install gencodec with its evaluation tools into .venv, then run the demo on sample photos
#   make test   install gencodec with everything into .venv, then run the whole test suite
# and one for a quicker check while working:
#   make test-quick   the suite without the tests marked slow (training subprocesses,
#                     accelerate launch, classical-codec searches on Kodak, the app in a browser)
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test test-quick bench clean browser gpu-kit

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# One stamp per set of extras: `make demo` installs only what the demo needs.
$(VENV)/.installed-%: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[$*]'
	touch $@

demo: $(VENV)/.installed-eval
	HF_HUB_OFFLINE=1 $(BIN)/gencodec demo

test: $(VENV)/.installed-dev browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

# The browser test of `gencodec app` drives Debian's chromium with Playwright (from the dev extra; it
# downloads no browser). Install chromium when it is missing and apt-get can (root on Debian); this never
# fails: where it cannot, the test skips and says why. GENCODEC_CHROMIUM names another Chromium binary.
browser:
	@if [ -n "$$GENCODEC_CHROMIUM" ] || [ -x /usr/bin/chromium ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the browser test (apt-get install chromium)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
			|| echo "could not install chromium: the browser test will be skipped"; \
	else \
		echo "no /usr/bin/chromium, and installing it needs root and apt-get: the browser test will be skipped"; \
	fi

test-quick: $(VENV)/.installed-dev
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

bench: $(VENV)/.installed-eval
	HF_HUB_OFFLINE=1 $(BIN)/gencodec bench

# The kit a lent GPU machine (no network) runs: the wheels it lacks and a compact training pack in
# .gpukit/, checked to travel with the tree in 64 MiB; then `python3 train/gpu_kit.py --budget-s 500`
# there (docs/training-gpu.md).
gpu-kit: $(VENV)/.installed-train
	HF_HUB_OFFLINE=1 $(BIN)/python train/build_gpu_kit.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
