# pycontainerd — `make run` starts the daemon, `make test` runs every test.
# Both install what they need first (Debian packages and a .venv).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
APT_PACKAGES := containerd runc crun golang-github-containerd-containerd-dev \
	docker-registry skopeo umoci busybox-static debootstrap
STAMP_APT := $(VENV)/.apt-stamp
STAMP_PIP := $(VENV)/.pip-stamp
STAMP_PROTO := $(VENV)/.proto-stamp
STAMP_DOCKER := $(VENV)/.docker-io-stamp
PROTOS := $(shell find pycontainerd/api -name '*.proto')

.PHONY: install run test soak lint typecheck unit bench clean proto

install: $(STAMP_APT) $(STAMP_PIP) $(STAMP_PROTO) $(STAMP_DOCKER)

$(STAMP_APT):
	@mkdir -p $(VENV)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

# docker.io (dockerd 20.10): the migration tests fill a real Docker root, and the bench compares with it.
# The script installs it without ever starting the system's dockerd.
$(STAMP_DOCKER): | $(STAMP_APT)
	sh bench/install-docker-io.sh
	@touch $@

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP_PIP): pyproject.toml | $(PY)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	@touch $@

$(STAMP_PROTO): $(PROTOS) scripts/genproto.py $(STAMP_PIP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) scripts/genproto.py >/dev/null
	@touch $@

proto: $(STAMP_PROTO)

run: install
	$(VENV)/bin/pycontainerd

lint: install
	$(VENV)/bin/ruff check pycontainerd pydockerd tests bench scripts
	$(VENV)/bin/ruff format --check pycontainerd pydockerd tests bench scripts

typecheck: install
	$(VENV)/bin/mypy

test: install lint typecheck
	$(VENV)/bin/pytest -q tests

# The reliability suites (tests/reliability) run long, then print what they tried and what held.
soak: install
	mkdir -p build && rm -f build/soak.jsonl
	PYCONTAINERD_SOAK=1 PYCONTAINERD_SOAK_REPORT=$(CURDIR)/build/soak.jsonl $(VENV)/bin/pytest -q tests/reliability; \
	s=$$?; $(PY) -m tests.reliability.report build/soak.jsonl; r=$$?; [ $$s -eq 0 ] && exit $$r; exit $$s

bench: install
	$(PY) bench/run.py
	$(PY) -m bench.migrate --runs 3

clean:
	rm -rf $(VENV) build *.egg-info
	find pycontainerd/api \( -name '*_pb2*.py' -o -name '*_pb2*.pyi' \) -delete
