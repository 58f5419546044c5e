# cap-verifier-ops: every target bootstraps its own Python environment from uv.lock.
SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
SYNCED := $(VENV)/.synced
CHECKOV_STAMP := $(TOOLS)/checkov/.installed
COLLECTIONS_STAMP := $(TOOLS)/ansible/collections/.installed
LOGQL_STAMP := $(TOOLS)/logql/.installed
OPTIC_STAMP := $(TOOLS)/optic/.installed
COSIGN_STAMP := $(TOOLS)/cosign/.installed
# cosign: the pinned Debian package (tools/cosign/cosign.lock) unless COSIGN=<path> names one
# the CI installed itself.
COSIGN ?=
COSIGN_DEP := $(if $(COSIGN),,$(COSIGN_STAMP))
PYTEST_ARGS ?=
# pytest-xdist workers (0: one process); the local-environment tests stay on one worker.
PYTEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -n $(PYTEST_WORKERS)

.DEFAULT_GOAL := help
.PHONY: help venv crds collections logql optic contract-check fmt generate render check-generated check lint lint-playbooks typecheck test test-fast checkov bench bench-ops up down status logs test-page smoke loadtest promote backup restore rotate-secret rotate-signing-key rotate-tls rotate-tls-check flush-cache image-base image cosign signing-key sign verify-image scan orr clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-19s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(SYNCED): uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

venv: $(SYNCED) ## create .venv from uv.lock

$(CHECKOV_STAMP): tools/checkov/requirements.txt tools/checkov/bootstrap.sh | $(UV)
	PYTHON=$(PYTHON) UV=$(UV) bash tools/checkov/bootstrap.sh

$(COLLECTIONS_STAMP): tools/ansible/requirements.txt tools/ansible/collections.txt | $(SYNCED)
	$(BIN)/python -m cap_ops.collections

collections: $(COLLECTIONS_STAMP) ## the pinned Ansible collections into .tools/ansible/collections

# Grafana's LogQL grammar (npm, tools/logql/package-lock.json) for the LogQL checks of the tests.
$(LOGQL_STAMP): tools/logql/package.json tools/logql/package-lock.json
	mkdir -p $(TOOLS)/logql
	cp tools/logql/package.json tools/logql/package-lock.json $(TOOLS)/logql/
	npm ci --ignore-scripts --no-audit --no-fund --prefix $(TOOLS)/logql
	@touch $@

logql: $(LOGQL_STAMP) ## the pinned LogQL grammar (@grafana/lezer-logql) into .tools/logql

# Optic's breaking-change rules (npm, tools/optic/package-lock.json) for the API contract check.
$(OPTIC_STAMP): tools/optic/package.json tools/optic/package-lock.json
	mkdir -p $(TOOLS)/optic
	cp tools/optic/package.json tools/optic/package-lock.json $(TOOLS)/optic/
	npm ci --ignore-scripts --no-audit --no-fund --prefix $(TOOLS)/optic
	@touch $@

optic: $(OPTIC_STAMP) ## the pinned Optic CLI (@useoptic/optic) into .tools/optic

contract-check: $(SYNCED) $(OPTIC_STAMP) ## no breaking change of openapi/openapi.yaml against the contract prod runs (BASE=ref)
	$(BIN)/python -m cap_ops.contract check $(if $(BASE),--base $(BASE))

crds: $(SYNCED) ## fill and verify .cache/crds/ from infra/crds.lock (CRD_MIRROR=DIR or the network)
	$(BIN)/python -m cap_ops.crds

fmt: $(SYNCED) ## format the Python sources
	$(BIN)/ruff format service tools tests bench alerts infra dashboards playbooks

generate: $(SYNCED) ## regenerate: rule files, runbook tables, docs/slo.md, dashboard (alerts/config.yaml); the guide's config keys
	$(BIN)/python -m alerts.generate
	$(BIN)/python -m dashboards.generate
	$(BIN)/python -m infra.config_reference

render: $(SYNCED) ## write deploy/<env>/ from the Kubernetes model (deterministic)
	$(BIN)/python -m infra.render

GENERATED := alerts/*.rules.yaml runbooks dashboards/*.json deploy docs
check-generated: generate render ## regenerate everything; fail when it differs from what git holds
	@git diff --exit-code --stat -- $(GENERATED) && \
	  test -z "$$(git status --porcelain --untracked-files=all -- $(GENERATED))" || \
	  { echo "generated files differ from git: run make generate render and commit them" >&2; exit 1; }

check: fmt generate render lint test ## everything, in order: format, generate, lint, test

lint: $(SYNCED) ## ruff (lint + format check)
	$(BIN)/ruff check service tools tests bench alerts infra dashboards playbooks
	$(BIN)/ruff format --check service tools tests bench alerts infra dashboards playbooks

lint-playbooks: $(SYNCED) $(COLLECTIONS_STAMP) ## ansible-lint, production profile, offline
	cd playbooks && PATH=$(CURDIR)/$(BIN):$$PATH ansible-lint

# Test folders import their sibling helpers by bare name (pytest puts the folder on sys.path):
# each folder is checked on its own, with itself on MYPYPATH.
TEST_DIRS := $(sort $(dir $(wildcard tests/*/*.py tests/*/*/*.py)))
typecheck: $(SYNCED) ## mypy --strict on the packages, generators, infra/, bench/ and tests/
	$(BIN)/mypy
	$(BIN)/mypy --strict alerts dashboards infra bench tests/*.py
	$(BIN)/mypy --strict playbooks/library playbooks/filter_plugins playbooks/callback_plugins
	@for dir in $(TEST_DIRS); do \
	  MYPYPATH=$$dir $(BIN)/mypy --strict $$dir || exit 1; \
	done

test: lint lint-playbooks typecheck crds $(CHECKOV_STAMP) $(LOGQL_STAMP) $(OPTIC_STAMP) $(COSIGN_DEP) ## the whole suite: lint, types, pytest
	$(PYTEST) $(PYTEST_ARGS)

test-fast: $(SYNCED) crds $(CHECKOV_STAMP) $(COLLECTIONS_STAMP) $(LOGQL_STAMP) $(OPTIC_STAMP) $(COSIGN_DEP) ## pytest without lint, types, slow and local-environment tests
	$(PYTEST) -m "not slow and not localenv" $(PYTEST_ARGS)

checkov: $(SYNCED) $(CHECKOV_STAMP) ## checkov on deploy/<env>/ (own venv: .tools/checkov)
	$(BIN)/pytest tests/infra/test_checkov.py $(PYTEST_ARGS)

bench: $(SYNCED) ## benchmark the service with wrk (not part of make test)
	$(BIN)/python bench/run.py

bench-ops: $(SYNCED) ## benchmark backup and restore of a large registry (not part of make test)
	$(BIN)/python bench/ops.py

up: $(SYNCED) ## start the local environment
	$(BIN)/python -m cap_ops.localenv up

down: $(SYNCED) ## stop the local environment
	$(BIN)/python -m cap_ops.localenv down

test-page: $(SYNCED) ## test alert (ORR 3.3-09, 4.2 verification): a synthetic P1 through Prometheus, Alertmanager, pager sink
	$(BIN)/python -m cap_ops.test_page

smoke: $(SYNCED) ## ORR 5.1 smoke checks: ENV=local (default) or URL= TOKEN_URL= CLIENT_ID= CLIENT_SECRET=
	$(BIN)/python -m cap_ops.smoke

# The ORR 5.1 spot load test (cap_ops.loadtest), the target as for make smoke; the report in
# orr-report/loadtest-<ENV>.json and .png.
DURATION ?= 5m
RATE ?= 10
loadtest: $(SYNCED) ## ORR 5.1 spot load test, RATE=10/s for DURATION=5m: ENV=local (default) or ENV=<name> URL= TOKEN_URL= CLIENT_ID= CLIENT_SECRET=
	$(BIN)/python -m cap_ops.loadtest --env '$(or $(ENV),local)' --duration '$(DURATION)' --rate '$(RATE)'

# The promotion gate (cap_ops.promote): staging takes only dev's digest, prod only staging's.
VERSION ?=
promote: $(SYNCED) ## write DIGEST=sha256:... into Pulumi.<ENV>.yaml and render deploy/<ENV>/ (VERSION= for dev)
	$(BIN)/python -m cap_ops.promote '$(ENV)' '$(DIGEST)' $(if $(VERSION),--version '$(VERSION)')

# Selections of `make logs`; empty means all.
REQUEST_ID ?=
LEVEL ?=
SINCE ?=
logs: $(SYNCED) ## the local logs of every program in time order: REQUEST_ID=<id>, LEVEL=ERROR, SINCE=10m
	@$(BIN)/python -m cap_ops.logs $(if $(REQUEST_ID),--request-id '$(REQUEST_ID)') $(if $(LEVEL),--level '$(LEVEL)') $(if $(SINCE),--since '$(SINCE)')

status: $(SYNCED) ## show the local environment
	$(BIN)/python -m cap_ops.localenv status

# The on-call runbooks against the local environment (playbooks/README.md); each exits non-zero
# when its playbook fails. Extra ansible-playbook options: ANSIBLE_ARGS="-e ...".
PLAYBOOK = cd playbooks && PATH=$(CURDIR)/$(BIN):$$PATH ansible-playbook -i inventories/local/inventory.py
ANSIBLE_ARGS ?=

backup: $(SYNCED) $(COLLECTIONS_STAMP) ## back up the local registry and configuration (AGE_RECIPIENT=age1... or AGE_RECIPIENTS_FILE=)
	$(PLAYBOOK) backup.yml $(ANSIBLE_ARGS)

restore: $(SYNCED) $(COLLECTIONS_STAMP) ## restore the latest backup, or BACKUP=<name>
	$(PLAYBOOK) restore.yml $(if $(BACKUP),-e backup=$(BACKUP)) $(ANSIBLE_ARGS)

rotate-secret: $(SYNCED) $(COLLECTIONS_STAMP) ## rotate an OAuth2 client secret (CLIENT=all by default)
	$(PLAYBOOK) rotate-oauth2-secret.yml $(if $(CLIENT),-e client=$(CLIENT)) $(ANSIBLE_ARGS)

rotate-signing-key: $(SYNCED) $(COLLECTIONS_STAMP) ## rotate the dev IdP's signing key
	$(PLAYBOOK) rotate-signing-key.yml $(ANSIBLE_ARGS)

rotate-tls: $(SYNCED) $(COLLECTIONS_STAMP) ## renew the serving certificate and make the server use it
	$(PLAYBOOK) rotate-tls.yml $(ANSIBLE_ARGS)

rotate-tls-check: $(SYNCED) $(COLLECTIONS_STAMP) ## days to expiry of every certificate; fails under 30
	$(PLAYBOOK) rotate-tls.yml --tags check $(ANSIBLE_ARGS)

flush-cache: $(SYNCED) $(COLLECTIONS_STAMP) ## empty the compiled-policy cache (rolling restart)
	$(PLAYBOOK) flush-cache.yml $(ANSIBLE_ARGS)

# The service image, built with buildah on Debian bases made here by mmdebstrap (no registry);
# buildah and podman keep their state in .local/containers/ (tools/cap_ops/image/).
NO_CACHE ?=
image-base: $(SYNCED) ## the image's two Debian bases (mmdebstrap, reproducible), made if missing
	$(BIN)/python -m cap_ops.image base

image: $(SYNCED) ## build service/Dockerfile (buildah), record it in .local/image/image.json; NO_CACHE=1 rebuilds every layer
	$(BIN)/python -m cap_ops.image build $(if $(NO_CACHE),--no-cache)

# The image's supply chain (docs/supply-chain.md): IMAGE=REPO@sha256:... and SBOM=FILE sign or
# verify an image already in a registry (CI).
IMAGE ?=
SBOM ?=

$(COSIGN_STAMP): tools/cosign/cosign.lock | $(SYNCED)
	$(BIN)/python -m cap_ops.image.cosign
	@touch $@

cosign: $(COSIGN_STAMP) ## the pinned cosign (Debian 13's package, sha256 in tools/cosign/cosign.lock) into .tools/cosign

signing-key: $(SYNCED) $(COSIGN_DEP) ## a new cosign key pair: private key in .local/cosign/ (0600, never in git), public key to keys/cosign.pub
	COSIGN=$(COSIGN) $(BIN)/python -m cap_ops.image.sign signing-key

sign: $(SYNCED) $(COSIGN_DEP) ## sign the built image by digest in the local registry, attest its SBOM; or IMAGE=REF@DIGEST SBOM=FILE (key: COSIGN_KEY)
	COSIGN=$(COSIGN) $(BIN)/python -m cap_ops.image.sign sign $(if $(IMAGE),--image '$(IMAGE)') $(if $(SBOM),--sbom '$(SBOM)')

verify-image: $(SYNCED) $(COSIGN_DEP) ## verify the signature and SBOM attestation with keys/cosign.pub (the signed local image, or IMAGE=REF@DIGEST)
	COSIGN=$(COSIGN) $(BIN)/python -m cap_ops.image.sign verify $(if $(IMAGE),--image '$(IMAGE)')

scan: $(SYNCED) ## the built image: Debian security fixes not applied, pip-audit --strict (no vulnerability data fails)
	$(BIN)/python -m cap_ops.image.scan

# The ORR report (cap_ops.orr.report), ENV=local by default: GO / NO-GO from the results of a
# make test of this commit (.cache/orr/results.json, or RESULTS=), or RUN=1 to run the suite
# first; ALLOW_DIRTY=1 accepts a tree with changes not committed. Exit status 1 on NO-GO.
RESULTS ?=
RUN ?=
ALLOW_DIRTY ?=
orr: $(SYNCED) ## the ORR Go/No-Go report of this commit: orr-report/<ENV>.{json,md,html} (RUN=1, RESULTS=, ALLOW_DIRTY=1)
	$(BIN)/python -m cap_ops.orr.report --env '$(or $(ENV),local)' $(if $(RESULTS),--results '$(RESULTS)') $(if $(RUN),--run) $(if $(ALLOW_DIRTY),--allow-dirty)

clean: ## remove the environments and caches
	rm -rf $(VENV) $(TOOLS) .cache .pytest_cache .mypy_cache .ruff_cache
