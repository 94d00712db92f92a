# The README's two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_OUT ?= runs/demo

# ATEN_CPU_CAPABILITY=avx2|avx512|default picks torch's kernel family for `make test-invariance`.
.PHONY: install demo test test-invariance test-fast bench-cpu bench-gpu gpu-wheels clean browser-deps

# torch is pinned in the same pip command as everything else (constraints.txt says
# torch==2.13.0+cpu, a wheel on disk here); otherwise pip would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt "torch==2.13.0" -e ".[dev,ray]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/neobabel generate --prompts examples/demo_prompts.csv -n 2 --batch-size 4 --out $(DEMO_OUT)
	@echo "demo images: $(DEMO_OUT)/images   manifest: $(DEMO_OUT)/generations.parquet"

# The explorer's browser test (tests/test_explorer_browser.py) drives Debian's chromium with
# playwright; `playwright install` cannot download browsers here. Idempotent: nothing to do
# when /usr/bin/chromium exists; without apt-get it says so and the test skips with the reason
# (under CI=true a missing browser fails the test instead).
browser-deps:
	@if [ -x /usr/bin/chromium ]; then echo "browser-deps: /usr/bin/chromium present"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; \
	else echo "browser-deps: apt-get not available; install chromium at /usr/bin/chromium for the browser test" >&2; fi

test: install browser-deps
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test-invariance: install
	$(if $(ATEN_CPU_CAPABILITY),ATEN_CPU_CAPABILITY=$(ATEN_CPU_CAPABILITY)) $(BIN)/python -m pytest -q -n 2 -m invariance

test-fast: install
	$(BIN)/python -m pytest -q -x -m "not slow"

bench-cpu: install
	$(BIN)/python benchmarks/bench_pipeline_cpu.py

bench-gpu: install
	$(BIN)/python benchmarks/bench_sd15_gpu.py

# Wheels the lent GPU machine lacks (its Python 3.12 image has torch and transformers), for
# benchmarks/gpu_world_train.sh and benchmarks/gpu_bench.sh; carried there as .whl/ (ignored by git).
GPU_WHEELS := diffusers==0.42.1 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
	typing-inspection==0.4.5 importlib-metadata==10.2.0
gpu-wheels:
	python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  -d .whl $(GPU_WHEELS)

clean:
	rm -rf $(VENV) runs .pytest_cache
