# MeterTrust — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
VENV := .venv

.PHONY: demo test bench build deps venv clean help fuzz fuzz-smoke fuzz-seeds
.DEFAULT_GOAL := help

help:
	@echo "make demo   install what is missing, create a project-local SoftHSM2 token, build, run metertrust demo"
	@echo "make test   install what is missing, create the test virtualenv, build, run every test"
	@echo "make bench  release build, project-local bench token, metertrust bench issuance (BENCH_COUNT=$(BENCH_COUNT)): SQLite, then PostgreSQL with one and two processes; bench enroll over HTTPS; bench est against nginx (10k and 100k meters)"
	@echo "make fuzz   build the libFuzzer targets (Fuzz/), run each FUZZ_SECONDS=$(FUZZ_SECONDS) s; FUZZ_TARGETS=\"FuzzCSR ...\" to choose"

## System packages (softhsm2, libp11-kit-dev, ...) through apt-get, only if missing.
deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

demo: build
	scripts/demo.sh

## Project-local virtualenv with the independent verifiers (Python cryptography, pkilint).
venv: deps $(VENV)/.ready

$(VENV)/.ready: scripts/requirements-test.txt
	rm -rf $(VENV)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r scripts/requirements-test.txt
	touch $@

test: build venv fuzz-smoke
	python3 scripts/check-architecture.py
	$(SWIFT) build --build-tests
	scripts/pg-cluster.sh run -- $(SWIFT) test

## Fuzzing (Fuzz/, a package of its own; scripts/fuzz.sh): every parser under libFuzzer with AddressSanitizer.
## `make fuzz` runs each target FUZZ_SECONDS; `fuzz-smoke` (part of `make test`, so of CI) builds every target and
## runs each a few seconds, failing on any crash. Findings are in .fuzz-artifacts/<Target>/.
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 5
FUZZ_TARGETS ?=
FUZZ_JOBS ?= 1
fuzz: deps
	SWIFT=$(SWIFT) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS="$(FUZZ_TARGETS)" FUZZ_JOBS=$(FUZZ_JOBS) scripts/fuzz.sh run

fuzz-smoke: deps
	SWIFT=$(SWIFT) FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) FUZZ_TARGETS="$(FUZZ_TARGETS)" FUZZ_JOBS=$(FUZZ_JOBS) scripts/fuzz.sh run

## Rewrites the seed corpora Fuzz/Corpus/ with the real code (a SoftHSM2 token and a factory run); commit the result.
fuzz-seeds: deps
	SWIFT=$(SWIFT) scripts/fuzz.sh seeds

## Benchmarks: release build, a fresh project-local token, the issuance benchmark with its limits measured in the same run.
BENCH_COUNT ?= 1000000
bench: deps
	$(SWIFT) build -c release
	METERTRUST_BIN=.build/release/metertrust scripts/softhsm-token.sh .softhsm metertrust-bench
	SOFTHSM2_CONF=$(CURDIR)/.softhsm/softhsm2.conf METERTRUST_HSM_PIN=$$(cat .softhsm/pin) \
		.build/release/metertrust bench issuance --count $(BENCH_COUNT) --token-label metertrust-bench $(BENCH_ARGS)
	scripts/bench-postgres.sh $(BENCH_COUNT) 1
	scripts/bench-postgres.sh $(BENCH_COUNT) 2
	scripts/bench-enroll-http.sh $(BENCH_COUNT)
	scripts/bench-est.sh 32 10000 100000

clean:
	rm -rf .build .build-fuzz .build-fuzz-seeds .fuzz-corpus $(VENV) .softhsm demo-data
