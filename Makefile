# smarthost: `make run` runs the whole relay locally, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt
# Programs the tests and `make run` start as real processes (postfix: a customer's
# MTA relaying through the ingress, in a private instance; nmap: its open-relay script).
DEBIAN_PACKAGES := redis-server dnsmasq-base swaks postgresql postfix nmap
PROGRAMS := redis-server dnsmasq swaks postfix nmap
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

# Installs the Debian packages whose programs are missing (CI starts bare). Postfix
# comes with "No configuration": its programs only, no system MTA.
system-packages:
	@missing=""; for p in $(PROGRAMS); do command -v $$p >/dev/null || PATH="$$PATH:/usr/sbin" command -v $$p >/dev/null || missing=1; done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing=1; \
	if [ -n "$$missing" ]; then \
	  echo "installing $(DEBIAN_PACKAGES)"; \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
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
	$(BIN)/python bench/policy_calls.py
	$(BIN)/python bench/dkim_signing.py
	$(BIN)/python bench/ingress_dkim.py
	$(BIN)/python bench/ingress_throughput.py
	$(BIN)/python bench/ingress_large_messages.py
	$(BIN)/python bench/delivery_throughput.py
	$(BIN)/python bench/queue_tiers.py
	$(BIN)/python bench/relay_vs_postfix.py

clean:
	rm -rf $(VENV) libs/common/smarthost .mypy_cache .pytest_cache .ruff_cache

# Container images, one per service, built with Debian's buildah: no Docker
# engine, no registry. The base is a Python image made here with debootstrap
# (scripts/python-base-image.sh) unless PYTHON_IMAGE names another, e.g. the
# public python:3.11-slim-bookworm. Builds trust this machine's CA bundle, so
# pip works where TLS to the package index is intercepted.
IMAGES := ingress-smtp policy delivery
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' helm/smarthost/Chart.yaml)
BASE_IMAGE := localhost/smarthost-python:bookworm
PYTHON_IMAGE ?= $(BASE_IMAGE)
IMAGE_PACKAGES := buildah podman runc debootstrap
CA_BUNDLE := /etc/ssl/certs/ca-certificates.crt
BUILD_TRUST := $(if $(wildcard $(CA_BUNDLE)),-v $(CA_BUNDLE):$(CA_BUNDLE):ro -v $(CURDIR)/build/pip.conf:/etc/pip.conf:ro)
# podman runs the images with runc, cgroupfs and no default ulimits (tests/images/containers.conf).
export CONTAINERS_CONF := $(CURDIR)/tests/images/containers.conf
.PHONY: images image-tools test-images chart

image-tools:
	@command -v buildah >/dev/null && command -v podman >/dev/null && command -v runc >/dev/null \
	  && PATH="$$PATH:/usr/sbin" command -v debootstrap >/dev/null || { \
	  echo "installing $(IMAGE_PACKAGES)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(IMAGE_PACKAGES) >/dev/null; }

images: image-tools
	@mkdir -p build && printf '[global]\ncert = $(CA_BUNDLE)\n' > build/pip.conf
	@if [ "$(PYTHON_IMAGE)" = "$(BASE_IMAGE)" ] && ! podman image exists $(BASE_IMAGE); then \
	  echo "making $(BASE_IMAGE) with debootstrap"; PATH="$$PATH:/usr/sbin" ./scripts/python-base-image.sh $(BASE_IMAGE) || exit 1; \
	fi
	@for image in $(IMAGES); do \
	  start=$$(date +%s); \
	  buildah bud --quiet --isolation chroot --layers --network host $(BUILD_TRUST) \
	    --build-arg PYTHON_IMAGE=$(PYTHON_IMAGE) -f services/$$image/Dockerfile \
	    -t localhost/smarthost-$$image:$(IMAGE_TAG) . >/dev/null || exit 1; \
	  echo "localhost/smarthost-$$image:$(IMAGE_TAG): $$(podman image inspect --format '{{.Size}}' \
	    localhost/smarthost-$$image:$(IMAGE_TAG) | awk '{printf "%d MB", $$1 / 1e6}'), built in $$(( $$(date +%s) - start )) s"; \
	done

# The built images run by podman on loopback: the relay as containers, then the
# chart's own pods played by `podman kube play` (tests/images).
test-images: install system-packages images
	$(BIN)/pytest -m images tests/images

# Renders the Helm chart for every ci/*-values.yaml, lints it and validates it
# against Kubernetes' schemas, offline.
chart: install
	$(BIN)/pytest -q tests/chart
