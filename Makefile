# MeterTrust — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
VENV := .venv

.PHONY: demo test build deps venv clean help
.DEFAULT_GOAL := help

help:
	@echo "make demo   install what is missing, create a project-local SoftHSM2 token, build, run metertrust demo"
	@echo "make test   install what is missing, create the test virtualenv, build, run every test"

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

clean:
	rm -rf .build $(VENV) .softhsm demo-data
