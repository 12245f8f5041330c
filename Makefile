# Build and test the ocsp.stapling collection. `make help` lists the targets.
#
# Every target installs what it needs first (system packages, .venv/, the collections tree), so
# `make test` works on a fresh Debian/Ubuntu machine as root, and repeated runs skip what is done.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory
# Gates share .build/, pytest-ansible's collections/ tree and test ports: run them one at a time.
.NOTPARALLEL:

ROOT := $(CURDIR)

# The interpreter that creates the venvs (Debian 12: 3.11; ansible-core 2.19 runs on 3.11-3.13).
# Looked up on the PATH without .venv/bin, and only when needed (os-deps may install it first).
PYTHON ?= python3
ORIG_PATH := $(PATH)
BASE_PYTHON = $(shell PATH='$(ORIG_PATH)' command -v $(PYTHON))
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
# sslyze 6.3.1 pins cryptography<47, which conflicts with the main venv: the benchmark gets its own.
BENCHMARK_VENV := $(ROOT)/.venv-benchmarks

BUILD := $(ROOT)/.build
# ansible-lint, ansible-doc and ansible-playbook find the collection only through a collections
# path: .build/collections/ansible_collections/ocsp/stapling is a symlink to this repository.
COLLECTIONS := $(BUILD)/collections
COLLECTION_LINK := $(COLLECTIONS)/ansible_collections/ocsp/stapling
# ansible-test needs the collection at .../ansible_collections/ocsp/stapling and does not follow a
# symlink for that, so sanity runs on a copy of the working tree.
SANITY_ROOT := $(BUILD)/sanity/ansible_collections/ocsp/stapling
# The --python of ansible-test sanity: that of .venv (3.11 on Debian 12), found as pythonX.Y on PATH.
SANITY_PYTHON ?= $(shell $(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)

# Extra arguments, e.g. `make unit PYTEST_ARGS='-k ocsp -x'` or `make sanity SANITY_ARGS='--test pep8'`.
PYTEST_ARGS ?=
SANITY_ARGS ?=
LINT_ARGS ?=

# chromium: the audit test renders the HTML report in it (headless).
# openssh-server: the hosts of the namespace fleet (tests/bench/netns.py) run their own sshd.
APT_PACKAGES := nginx apache2 openssl shellcheck rsync python3-venv strace chromium openssh-server

# For every command below: the venv's tools come first; ansible finds this collection; modules run
# on localhost with the venv's Python (interpreter discovery picks a broken pyenv shim here).
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_PYTHON_INTERPRETER := $(PY)
# pip: no nagging about its own version; requirements.txt pins everything.
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# What the sanity copy leaves out: local environments, build output, caches, and whatever git ignores.
RSYNC_EXCLUDES := --exclude=/.git --exclude=/.venv --exclude='/.venv-*' --exclude=/.build \
	--exclude=/collections --exclude=.ansible --exclude=.cache --exclude=.pytest_cache \
	--exclude=__pycache__ --exclude=/tests/output --filter=':- .gitignore'

.PHONY: help setup os-deps venv benchmark-venv collections ansible-test-seed \
	test sanity lint docs changelog unit integration demo benchmark benchmark-compare clean distclean \
	molecule molecule-images benchmark-molecule ee benchmark-fleet matrix

help: ## Show this help
	@echo "Usage: make TARGET   (each target installs what it needs first)"
	@grep -E '^[a-z][a-zA-Z_-]*:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 20 | sed 's/^/  /'

# --- Setup -------------------------------------------------------------------------------------

setup: os-deps venv collections ## Install system packages, .venv/ and the collections tree

os-deps: ## Install missing system packages with apt (without starting nginx/apache2)
	@scripts/install-os-packages.sh $(APT_PACKAGES)

# Stamp keyed on the content of the requirements file: an unchanged file costs one hash.
venv: os-deps ## Create .venv/ from the pinned requirements.txt
	@scripts/ensure-venv.sh "$(VENV)" requirements.txt "$(BASE_PYTHON)"

benchmark-venv: os-deps ## Create .venv-benchmarks/ from benchmarks/requirements.txt (sslyze, crossplane)
	@scripts/ensure-venv.sh "$(BENCHMARK_VENV)" benchmarks/requirements.txt "$(BASE_PYTHON)"

collections: venv ## Link the collection into .build/collections (ANSIBLE_COLLECTIONS_PATH), with its dependencies
	@mkdir -p "$(dir $(COLLECTION_LINK))"
	@[[ "$$(readlink "$(COLLECTION_LINK)")" == "$(ROOT)" ]] || ln -sfn "$(ROOT)" "$(COLLECTION_LINK)"
	@scripts/install-collection-deps.sh "$(PY)" "$(COLLECTIONS)"

# ansible-test downloads a pip bootstrap script from a host these machines cannot reach.
ansible-test-seed: venv ## Seed ansible-test's pip bootstrap cache (~/.ansible/test/cache)
	@scripts/seed-ansible-test-pip.sh "$(PY)" "$(SANITY_PYTHON)"

# --- Gates -------------------------------------------------------------------------------------

test: sanity lint docs changelog unit integration ## Run every gate (fails if no test at all ran)
	@PYTHON="$(PY)" scripts/pytest-gate.sh summary unit integration

sanity: ansible-test-seed ## ansible-test sanity, all tests, on a copy in .build/sanity
	@if compgen -G 'tests/sanity/ignore-*.txt' >/dev/null && grep -Hn '[^[:space:]]' tests/sanity/ignore-*.txt; then \
		echo "error: sanity ignore entries are not allowed (listed above); fix the findings instead" >&2; exit 1; fi
	@mkdir -p "$(SANITY_ROOT)"
	rsync -a --delete --delete-excluded $(RSYNC_EXCLUDES) "$(ROOT)/" "$(SANITY_ROOT)/"
	@# The content root is given explicitly: searching upwards from the copy, ansible-test would find
	@# this repository's .git, in which .build/ is ignored, and so see no files at all.
	cd "$(SANITY_ROOT)" && ANSIBLE_TEST_CONTENT_ROOT="$(SANITY_ROOT)" \
		ansible-test sanity --python "$(SANITY_PYTHON)" $(SANITY_ARGS)

# From the collection's place in the collections tree, with the collections path set, so that
# ansible-lint resolves ocsp.stapling locally and never asks Galaxy.
# HOME of its own: Molecule's prerun installs a copy of the collection into ~/.ansible/collections, which
# ansible-lint would then read instead of this tree (a stale copy after every `make molecule`).
lint: venv collections ## ansible-lint (production profile, offline) and shellcheck
	@mkdir -p "$(BUILD)/lint-home"
	cd "$(COLLECTION_LINK)" && HOME="$(BUILD)/lint-home" ansible-lint --offline --profile production $(LINT_ARGS)
	shellcheck .ci/run .ci/*.sh scripts/*.sh

docs: venv collections ## ansible-doc renders every plugin and role; HTML documentation site in .build/docsite/html, no broken reference
	@scripts/check-docs.sh "$(VENV)/bin/ansible-doc"
	@scripts/build-docsite.sh "$(VENV)/bin"

changelog: venv ## antsibull-changelog lint (changelogs/fragments)
	antsibull-changelog lint

unit: venv collections ## pytest tests/unit
	@PYTHON="$(PY)" scripts/pytest-gate.sh run unit tests/unit $(PYTEST_ARGS)

integration: os-deps venv collections ## pytest tests/integration (real nginx/apache/openssl on loopback)
	@PYTHON="$(PY)" scripts/pytest-gate.sh run integration tests/integration $(PYTEST_ARGS)

# The version matrix (issue 15): ansible-core 2.17 to 2.21, each in .venv-matrix/<line>, and the managed-host
# Pythons 3.8 to 3.13 (pyenv); scripts/matrix.sh says what runs where. MATRIX_ARGS: some jobs, e.g. '2.21 hosts'.
MATRIX_ARGS ?=
matrix: os-deps collections ## Version matrix: ansible-core 2.17-2.21, managed-host Python 3.8-3.13 (scripts/matrix.sh)
	@scripts/matrix.sh $(MATRIX_ARGS)

# --- Tools -------------------------------------------------------------------------------------

demo: setup ## Run the demo (python -m bench.demo)
	cd "$(ROOT)" && PYTHONPATH=tests "$(PY)" -m bench.demo

# The benchmarks run with .venv; they find the peers' interpreter (sslyze, crossplane) through BENCHMARK_PYTHON.
# Each writes its own table into BENCHMARKS.md (benchmarks/_report.py) with the date, the machine and the command.
benchmark: setup benchmark-venv ## Run the benchmarks (benchmarks/*.py); each writes its table into BENCHMARKS.md
	cd "$(ROOT)" && PYTHONPATH=tests BENCHMARK_PYTHON="$(BENCHMARK_VENV)/bin/python" "$(PY)" benchmarks/verify_endpoints.py
	cd "$(ROOT)" && PYTHONPATH=tests BENCHMARK_PYTHON="$(BENCHMARK_VENV)/bin/python" "$(PY)" benchmarks/audit_endpoints.py
	cd "$(ROOT)" && PYTHONPATH=tests BENCHMARK_PYTHON="$(BENCHMARK_VENV)/bin/python" "$(PY)" benchmarks/verify_distance.py
	cd "$(ROOT)" && PYTHONPATH=tests BENCHMARK_PYTHON="$(BENCHMARK_VENV)/bin/python" "$(PY)" benchmarks/nginx_edit.py
	cd "$(ROOT)" && PYTHONPATH=tests "$(PY)" benchmarks/apache_edit.py

# Edit speed of the working tree against a git revision, both timed in one run, interleaved round by
# round (benchmarks/_compare.py), e.g. BASELINE=a06f45c~1 for the issue 12 refactor; BENCHMARK_ARGS='--rounds 9'
# or BENCHMARK_ARGS='--current REV2' to time a revision instead of the working tree.
# Only the two modules run (no crossplane, no apache2 -S), so .venv-benchmarks is not needed.
BASELINE ?=
BENCHMARK_ARGS ?=
benchmark-compare: setup ## Edit speed against a git revision in the same run: make benchmark-compare BASELINE=REV
	@[[ -n "$(BASELINE)" ]] || { echo "usage: make benchmark-compare BASELINE=REV (e.g. a06f45c~1)" >&2; exit 1; }
	cd "$(ROOT)" && PYTHONPATH=tests "$(PY)" benchmarks/nginx_edit.py --baseline "$(BASELINE)" $(BENCHMARK_ARGS)
	cd "$(ROOT)" && PYTHONPATH=tests "$(PY)" benchmarks/apache_edit.py --baseline "$(BASELINE)" $(BENCHMARK_ARGS)

# The fleet over SSH in network namespaces (root): converge and idempotent runs at 10-100 hosts against the
# naive playbook (about 80 min on 2 cores), then what one task costs per host.
benchmark-fleet: setup ## Time the enable playbook against the how-to by hand over SSH on 10-100 hosts (network namespaces)
	cd "$(ROOT)" && PYTHONPATH=tests "$(PY)" benchmarks/fleet_netns.py $(BENCHMARK_ARGS)
	cd "$(ROOT)" && PYTHONPATH=tests "$(PY)" benchmarks/fleet_netns.py --hosts 10 --task-cost

# --- Molecule ----------------------------------------------------------------------------------
# The scenarios run here on podman, from local images that debootstrap builds from Debian's
# packages (no registry is reachable); podman keeps them, so later runs start at once. Users run
# the same scenario files with docker and the public images (molecule/README.md). Installing and
# configuring podman itself is CI provisioning: .ci/provision-podman.sh.
MOLECULE_SUITES := bullseye bookworm trixie
MOLECULE_IMAGE := localhost/ocsp-stapling-debian
MOLECULE_SCENARIOS ?= default fleet
MOLECULE_ENV := MOLECULE_CONTAINER_ENGINE=podman OCSP_STAPLING_MOLECULE_GALAXY=false NO_COLOR=1 \
	OCSP_STAPLING_IMAGE_BULLSEYE=$(MOLECULE_IMAGE):bullseye \
	OCSP_STAPLING_IMAGE_BOOKWORM=$(MOLECULE_IMAGE):bookworm \
	OCSP_STAPLING_IMAGE_TRIXIE=$(MOLECULE_IMAGE):trixie

molecule-images: ## Build the Debian 11/12/13 images of the scenarios with debootstrap (once per machine)
	@for tool in podman debootstrap; do command -v $$tool >/dev/null || { \
		echo "make molecule: $$tool is missing: install podman and debootstrap (CI: bash .ci/provision-podman.sh)" >&2; exit 1; }; done
	@for suite in $(MOLECULE_SUITES); do scripts/build-molecule-image.sh $$suite $(MOLECULE_IMAGE):$$suite; done

molecule: collections molecule-images ## Run every Molecule scenario (molecule test) in podman
	@failed=(); for scenario in $(MOLECULE_SCENARIOS); do \
		start=$$SECONDS; \
		if $(MOLECULE_ENV) molecule test --scenario-name $$scenario; then result=passed; else result=FAILED; failed+=($$scenario); fi; \
		echo "molecule: scenario $$scenario $$result in $$((SECONDS - start)) s"; \
	done; \
	if (( $${#failed[@]} )); then echo "molecule: failed scenarios: $${failed[*]}" >&2; exit 1; fi

benchmark-molecule: collections molecule-images ## Time the fleet's converge and idempotent runs against a naive playbook
	cd "$(ROOT)" && $(MOLECULE_ENV) "$(PY)" benchmarks/molecule_fleet.py

# --- Execution environment -------------------------------------------------------------------------
# After the CI machine's podman set-up (.ci/provision-podman.sh); docs/execution-environment.md says how a
# user's build differs (no registry, no Galaxy here).
ee: collections ## Build the example execution environment (ansible-builder, podman) and run the main job in it with ansible-navigator
	@scripts/ee-check.sh

# --- Cleaning ----------------------------------------------------------------------------------

clean: ## Remove build and test output (.build, caches); keeps the venvs
	rm -rf "$(BUILD)" collections .ansible .pytest_cache tests/output changelogs/.plugin-cache.yaml
	find . -path ./.git -prune -o -path ./.venv -prune -o -path ./.venv-benchmarks -prune \
		-o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean ## Also remove .venv/ and .venv-benchmarks/
	rm -rf "$(VENV)" "$(BENCHMARK_VENV)" "$(ROOT)/.venv-ee" "$(ROOT)/.venv-matrix"
