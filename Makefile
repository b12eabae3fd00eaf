# Two commands set everything up on a fresh machine (Python >= 3.10 with venv):
#   make demo   install gencodec with its evaluation tools into .venv, then run the demo on sample photos
#   make test   install gencodec with everything into .venv, then run the whole test suite
# one for a quicker check while working:
#   make test-quick   the suite without the tests marked slow (training subprocesses,
#                     accelerate launch, classical-codec searches on Kodak, the app in a browser)
# and one for the codec alone (compress, decompress, info):
#   make install-core
#
# torch comes in two builds: CPU-only, or PyPI's default, which brings CUDA on Linux (about 4.5 GB more).
# TORCH=cpu or TORCH=cuda chooses. By default (TORCH=auto) every install takes the CPU-only build, from
# the CPU-only index, where nvidia-smi does not run, torchvision with it for the extras (the two must be
# built for each other); where that index cannot be reached (a machine that sees only PyPI), it says so
# and takes PyPI's build. TORCH=cpu fails instead. The stamps below do not record the choice: `make clean`
# before switching.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
TORCH ?= auto
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
CORE_TORCH := $(if $(filter auto,$(TORCH)),$(if $(shell command -v nvidia-smi 2>/dev/null),cuda,cpu),$(TORCH))

ifeq ($(filter $(TORCH),auto cpu cuda),)
$(error TORCH must be cpu, cuda or auto, not '$(TORCH)')
endif

.PHONY: demo test test-quick install-core bench clean browser gpu-kit

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# $(1) cpu: the packages $(2) first, from the CPU-only index; pip then keeps them when it installs gencodec.
# The line printed at the end of an install says which build it got.
# With torchvision, --isolated: both from that index alone, not from find-links or extra indexes in pip's
# configuration, which could pair a CPU torch with a torchvision built for another torch.
define install_torch
	$(if $(filter cpu,$(1)),$(BIN)/python -m pip install $(if $(findstring torchvision,$(2)),--isolated) --quiet --retries 1 --timeout 20 \
		--index-url $(TORCH_CPU_INDEX) $(2)$(if $(filter auto,$(TORCH)), \
		|| echo "the CPU-only index $(TORCH_CPU_INDEX) cannot be reached: taking PyPI's build of torch"))
endef
define show_torch
	@$(BIN)/python -c "from importlib.metadata import version; v = version('torch'); \
		print('torch', v, '(CPU-only build)' if '+cpu' in v else '(PyPI\'s default build: with CUDA on Linux)')"
endef

# One stamp per set of extras: `make demo` installs only what the demo needs.
$(VENV)/.installed-%: pyproject.toml | $(VENV)/bin/python
	$(call install_torch,$(CORE_TORCH),torch torchvision)
	$(BIN)/python -m pip install --quiet -e '.[$*]'
	$(show_torch)
	touch $@

# The codec alone: compress, decompress and info, offline.
install-core: $(VENV)/.installed-core
$(VENV)/.installed-core: pyproject.toml | $(VENV)/bin/python
	$(call install_torch,$(CORE_TORCH),torch)
	$(BIN)/python -m pip install --quiet -e .
	$(show_torch)
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
