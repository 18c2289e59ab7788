# Agent Bruno — developer entry points. `make help` lists them.
# A fresh machine needs Python 3.11+ and make: uv is installed with pip when it is missing.

PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
RUN := $(UV) run --frozen
LINT_PATHS := packages services pipelines tests scripts benchmarks k8s
# mypy checks each workspace member on its own: the members' test modules share names.
TYPED_DIRS := packages/core packages/extract packages/proto/tests packages/testing packages/cli services/embedding \
	services/retrieval services/generation services/edge pipelines scripts \
	tests/docs tests/e2e tests/k8s benchmarks k8s

.DEFAULT_GOAL := help
.PHONY: help uv sync run demo test test-fast coverage lint sast format proto proto-check smoke load bench-chat bench-overhead bench-retrieval bench-chunking bench-readers bench-documents bench-embedding-memory bench-embedding-cpu bench-edge-cpu bench-request-cpu bench-retrieval-cpu bench-chat-hops bench-first-chat bench-embedding-ingest bench-quiet-optimize clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

uv: ## Install uv with pip when it is missing
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv>=0.9"

sync: uv ## Create .venv with every workspace member and the dev tools (from uv.lock)
	@$(UV) sync --frozen --all-packages --quiet

run: sync ## Run all four services on loopback (edge on http://127.0.0.1:8080), restarting any that dies; Ctrl-C stops them
	@mkdir -p data
	@$(RUN) supervisord -c supervisord.conf

demo: sync ## Ingest the demo corpus into the running system (make run in another terminal)
	$(RUN) bruno ingest demo/

test: sync ## Run every test
	$(RUN) pytest

test-fast: sync ## Unit tests only: no end-to-end, k8s or pipeline tests, nothing marked slow (well under a minute)
	$(RUN) pytest packages services tests/docs -m "not slow" -q

coverage: sync ## Every test with branch coverage per package (build/coverage/); fails below a floor
	$(RUN) python -m bruno_pipelines.coverage

lint: sync ## ruff (lint + format check) and mypy --strict
	$(RUN) ruff check $(LINT_PATHS)
	$(RUN) ruff format --check $(LINT_PATHS)
	@set -e; for d in $(TYPED_DIRS); do echo "mypy --strict $$d"; $(RUN) mypy $$d; done

sast: sync ## Semgrep with the committed rules (sast/rules), offline; SARIF in build/sast/
	$(RUN) python -m bruno_pipelines.sast

format: sync ## Apply ruff's fixes and formatting
	$(RUN) ruff check --fix $(LINT_PATHS)
	$(RUN) ruff format $(LINT_PATHS)

proto: sync ## Regenerate the gRPC stubs from proto/
	$(RUN) python scripts/generate_protos.py

proto-check: sync ## Fail when the committed stubs are stale
	$(RUN) python scripts/generate_protos.py --check

smoke: ## Build the four images with Docker, run them together, chat through the edge (BRUNO_SMOKE=skip skips)
	$(PYTHON) scripts/smoke.py

load: sync ## Load test: the canary's Locust scenario, 32 users for 60 s against the four services and the Ollama stand-in; percentiles and memory into docs/benchmarks.md (LOAD_ARGS="--url http://127.0.0.1:8080": a running system)
	$(RUN) python benchmarks/load.py $(LOAD_ARGS)

bench-chat: sync ## Benchmark chat latency through the stack beside direct Ollama (docs/benchmarks.md; BENCH_ARGS=--under-ingest: idle against a large ingest)
	$(RUN) python benchmarks/chat.py $(BENCH_ARGS)

bench-overhead: sync ## Benchmark each request's fixed cost against a minimal FastAPI → grpc.aio → LanceDB stack in one run (docs/benchmarks.md)
	$(RUN) python benchmarks/overhead.py $(BENCH_ARGS)

bench-retrieval: sync ## Benchmark search quality, latency, ANN recall and ingestion (docs/benchmarks.md; BENCH_ARGS="--skip-100k", "--quality-only", "--ann-index ivf_pq")
	$(RUN) python benchmarks/retrieval.py $(BENCH_ARGS)

bench-readers: sync ## Benchmark search throughput of one and two retrieval readers at concurrency 16, and their CPU per search (docs/benchmarks.md; BENCH_ARGS="--s3": on moto's S3)
	$(RUN) python benchmarks/readers.py $(BENCH_ARGS)

bench-chunking: sync ## Benchmark search quality per chunk size / overlap on Cranfield (BENCH_ARGS=--settings 200/20,300/60)
	$(RUN) python benchmarks/chunking.py $(BENCH_ARGS)

bench-documents: sync ## Benchmark PDF extraction (pages/s) and upload throughput against the raw model on Cranfield PDFs (BENCH_ARGS=--compare; "--jobs --abstracts 200": also as one ingest job, against the upload)
	$(RUN) python benchmarks/documents.py $(BENCH_ARGS)

bench-embedding-memory: sync ## Benchmark the embedding service's resident memory idle, at peak and after ingests (BENCH_ARGS="--texts 32,256 --threads 1")
	$(RUN) python benchmarks/embedding_memory.py $(BENCH_ARGS)

bench-embedding-cpu: sync ## Benchmark the embedding service's CPU and latency per distinct query, 1 and 16 clients (BENCH_ARGS="--queries 400 --rounds 2")
	$(RUN) python benchmarks/embedding_cpu.py $(BENCH_ARGS)

bench-edge-cpu: sync ## Benchmark the edge's own CPU per text and hybrid search (BENCH_ARGS="--rounds 5 --requests 600 --before DIR": against DIR's edge in the same run)
	$(RUN) python benchmarks/edge_cpu.py $(BENCH_ARGS)

bench-request-cpu: sync ## Benchmark each service's CPU per search, chat and follow-up through the edge (BENCH_ARGS="--requests 300 --chats 75"; "--py-spy DIR" with py-spy installed)
	$(RUN) python benchmarks/request_cpu.py $(BENCH_ARGS)

bench-retrieval-cpu: sync ## Benchmark retrieval's CPU per search and per chat's retrieval at c=1 and c=16 (BENCH_ARGS="--before DIR": against DIR's retrieval in the same run)
	$(RUN) python benchmarks/retrieval_cpu.py $(BENCH_ARGS)

bench-chat-hops: sync ## Benchmark where a c=1 chat's time to first token goes, hop by hop, from the services' spans (BENCH_ARGS="--chats 80")
	$(RUN) python benchmarks/chat_hops.py $(BENCH_ARGS)

bench-first-chat: sync ## Benchmark the generation service's first answer after a start beside its next ones (BENCH_ARGS="--restarts 9")
	$(RUN) python benchmarks/first_chat.py $(BENCH_ARGS)

bench-embedding-ingest: sync ## Benchmark the embedding service's chunks/s and CPU per chunk per ONNX Runtime thread setting (BENCH_ARGS="--threads 0,1 --rounds 10")
	$(RUN) python benchmarks/embedding_ingest.py $(BENCH_ARGS)

bench-quiet-optimize: sync ## Benchmark retrieval's CPU per search of a few-ingest collection before and after the quiet optimize (BENCH_ARGS="--documents 1 10 19")
	$(RUN) python benchmarks/quiet_optimize.py $(BENCH_ARGS)

clean: ## Remove caches and the local LanceDB data
	rm -rf .mypy_cache .ruff_cache .pytest_cache data build
