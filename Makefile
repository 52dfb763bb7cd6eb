# MeterTrust — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
VENV := .venv

.PHONY: demo test bench build deps venv clean help
.DEFAULT_GOAL := help

help:
	@echo "make demo   install what is missing, create a project-local SoftHSM2 token, build, run metertrust demo"
	@echo "make test   install what is missing, create the test virtualenv, build, run every test"
	@echo "make bench  release build, project-local bench token, metertrust bench issuance (BENCH_COUNT=$(BENCH_COUNT))"

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

test: build venv
	$(SWIFT) build --build-tests
	$(SWIFT) test

## Benchmarks: release build, a fresh project-local token, the issuance benchmark with its limits measured in the same run.
BENCH_COUNT ?= 1000000
bench: deps
	$(SWIFT) build -c release
	METERTRUST_BIN=.build/release/metertrust scripts/softhsm-token.sh .softhsm metertrust-bench
	SOFTHSM2_CONF=$(CURDIR)/.softhsm/softhsm2.conf METERTRUST_HSM_PIN=$$(cat .softhsm/pin) \
		.build/release/metertrust bench issuance --count $(BENCH_COUNT) --token-label metertrust-bench $(BENCH_ARGS)

clean:
	rm -rf .build $(VENV) .softhsm demo-data
