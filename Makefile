# smarthost: `make run` runs the whole relay locally, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt
# Programs the tests and `make run` start as real processes.
DEBIAN_PACKAGES := redis-server dnsmasq-base swaks postgresql
PROGRAMS := redis-server dnsmasq swaks
PROTOS := $(shell find proto -name '*.proto')
GENERATED := libs/common/smarthost/policy/v1/policy_pb2.py
SERVICES := libs/common services/policy services/ingress-smtp services/delivery

.PHONY: install proto system-packages bench-packages run test lint typecheck pytest bench clean test-backlog test-faults

install: $(VENV)/.installed $(GENERATED)

# Debian's own Python needs python3-venv for this; install it when missing.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }

$(VENV)/.installed: $(BIN)/python constraints.txt requirements-dev.txt $(addsuffix /pyproject.toml,$(SERVICES))
	$(PIP) -r requirements-dev.txt
	$(MAKE) proto
	# compat mode puts each source folder on sys.path, generated protos included.
	$(PIP) --config-settings editable_mode=compat $(addprefix -e ,$(SERVICES))
	touch $@

# Generated gRPC and protobuf code (with type stubs) for every service to import.
proto: $(GENERATED)

$(GENERATED): $(PROTOS) $(BIN)/python
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m grpc_tools.protoc -I proto \
	  --python_out=libs/common --grpc_python_out=libs/common \
	  --mypy_out=libs/common --mypy_grpc_out=libs/common $(PROTOS)

# Installs the Debian packages whose programs are missing (CI starts bare).
system-packages:
	@missing=""; for p in $(PROGRAMS); do command -v $$p >/dev/null || PATH="$$PATH:/usr/sbin" command -v $$p >/dev/null || missing=1; done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing=1; \
	if [ -n "$$missing" ]; then \
	  echo "installing $(DEBIAN_PACKAGES)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_PACKAGES) >/dev/null; \
	fi

# What bench/relay_vs_postfix.py adds: Postfix (the reference relay, with its
# smtp-source and smtp-sink), unshare and ip for its private namespaces.
# "No configuration": the package sets up no system mail server.
BENCH_DEBIAN_PACKAGES := postfix util-linux iproute2
bench-packages:
	@if ! [ -x /usr/sbin/postfix ] || ! [ -x /usr/sbin/smtp-source ] || ! command -v unshare >/dev/null || \
	  ! PATH="$$PATH:/usr/sbin:/sbin" command -v ip >/dev/null; then \
	  echo "installing $(BENCH_DEBIAN_PACKAGES)"; \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BENCH_DEBIAN_PACKAGES) >/dev/null; \
	fi

run: install system-packages
	./scripts/run-local.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy libs services tests bench

pytest: install system-packages
	$(BIN)/pytest

test: lint typecheck pytest

# The backlog suite at full size: 20,000 messages of 100 KiB (2 GiB) to a dead
# destination through a Redis with maxmemory 256mb (`make test` runs 400).
test-backlog: install system-packages
	BACKLOG_MESSAGES=20000 $(BIN)/pytest -s --timeout 3600 tests/backlog/test_backlog.py

# The fault-injection suite at full size: 2,000 messages while processes are
# killed and restarted (`make test` runs 300). FAULT_SEED=<n> repeats a run.
test-faults: install system-packages
	FAULT_MESSAGES=2000 $(BIN)/pytest -s --timeout 1800 tests/faults

# Benchmarks; figures are ratios against a baseline measured in the same run.
# The end-to-end ones start Redis, dnsmasq and the services on loopback; the
# last one (as root, in its own network namespace) measures the relay against
# Postfix and writes bench/results/relay-vs-postfix.md.
bench: install system-packages bench-packages
	$(BIN)/python bench/customer_lookup.py
	$(BIN)/python bench/ingress_throughput.py
	$(BIN)/python bench/delivery_throughput.py
	$(BIN)/python bench/queue_tiers.py
	$(BIN)/python bench/relay_vs_postfix.py

clean:
	rm -rf $(VENV) libs/common/smarthost .mypy_cache .pytest_cache .ruff_cache

# Container images, one per service, built from the repository root (needs a
# Docker engine with BuildKit).
IMAGES := ingress-smtp policy delivery
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' helm/smarthost/Chart.yaml)
.PHONY: images chart
images:
	@for image in $(IMAGES); do \
	  echo "docker build -f services/$$image/Dockerfile -t smarthost-$$image:$(IMAGE_TAG) ."; \
	  docker build -f services/$$image/Dockerfile -t smarthost-$$image:$(IMAGE_TAG) . || exit 1; \
	done

# Renders the Helm chart for every ci/*-values.yaml, lints it and validates it
# against Kubernetes' schemas, offline.
chart: install
	$(BIN)/pytest -q tests/chart
