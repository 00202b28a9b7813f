# Ferry: `make run` starts everything on the embedded default; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

# The embedded default is a local, single-user setup: debug on, and (with no
# DJANGO_SECRET_KEY) the installation's own key in var/secret_key, as outside make.
export DJANGO_DEBUG ?= true

.PHONY: run test fuzz bench bench-nbd bench-nodes bench-frontend setup nbd-packages migrate demo diagrams lint clean

run: setup migrate demo ## Set up and start web, worker and scheduler on http://127.0.0.1:8000
	EMAIL_BACKEND=$${EMAIL_BACKEND:-django.core.mail.backends.console.EmailBackend} \
		$(PY) manage.py runferry

test: setup ## Set up and run the whole test suite, with the fuzz test's replayed examples
	$(BIN)/pytest -m 'fuzz or not fuzz'

# Nightly-style: new random examples, hundreds per operation. Against PostgreSQL when
# DATABASE_URL is set (e.g. postgres://postgres@127.0.0.1:5432/ferry).
FERRY_FUZZ_EXAMPLES ?= 300
fuzz: setup ## Fuzz every API operation with FERRY_FUZZ_EXAMPLES random examples each
	FERRY_FUZZ_RANDOM=true FERRY_FUZZ_EXAMPLES=$(FERRY_FUZZ_EXAMPLES) \
		$(BIN)/pytest -m fuzz -q tests/test_api_fuzz.py

setup: $(STAMP) nbd-packages
	@$(PY) -m importer.nbdlib

# The NBD data path uses the protocol's own tools from Debian: nbdkit and qemu-nbd serve
# (the demo array, the tests), libnbd reads (its Python bindings), nbdcopy and qemu-img are
# the benchmark's references, and nbdkit's Python plugin runs the front end serving
# destination volumes to hosts during an import (importer/frontend). Installed here when
# make runs as root on Debian, as .ci/run does for Chromium; elsewhere this says what to
# install, and Ferry runs on without NBD.
NBD_PACKAGES := nbdkit nbdkit-plugin-python libnbd-bin python3-libnbd qemu-utils
NBD_READY    := command -v nbdkit && command -v nbdcopy && command -v qemu-nbd \
                && test -f /usr/lib/python3/dist-packages/nbd.py \
                && test -n "$$(find /usr/lib/*/nbdkit/plugins -name nbdkit-python-plugin.so)"
nbd-packages:
	@if ( $(NBD_READY) ) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && [ -f /etc/debian_version ]; then \
		echo "Installing Debian packages for the NBD data path: $(NBD_PACKAGES)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq $(NBD_PACKAGES); } >/dev/null \
		|| { echo "Could not install $(NBD_PACKAGES)." >&2; [ "$$CI" != true ]; }; \
	else \
		echo "NOTE: the NBD data path needs Debian's $(NBD_PACKAGES):"; \
		echo "      sudo apt-get install $(NBD_PACKAGES)"; \
		echo "      Ferry runs on without the NBD demo array and NBD remote systems."; \
	fi

# pip -qq shows errors only: a machine's pip.conf may name index folders that do not exist,
# and pip warns about each one for every package ("Location ... is ignored").
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade pip
	$(PY) -m pip install -qq -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

migrate: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py ensure_admin

demo: setup
	$(PY) manage.py seed_demo

bench: setup ## Measure the mover against cp, nbdcopy and qemu-img, 8 imports on 2 nodes, the dashboard and API at 10,000 sessions, and the front end
	FERRY_VAR_DIR=var/bench $(PY) -m tests.bench
	FERRY_VAR_DIR=var/bench-dashboard $(PY) -m tests.bench_dashboard
	FERRY_VAR_DIR=var/bench-frontend $(PY) -m tests.bench_frontend

bench-nbd: setup ## Only the mover's NBD part: Ferry against nbdcopy and qemu-img
	FERRY_VAR_DIR=var/bench $(PY) -m tests.bench --nbd-only

bench-nodes: setup ## Only 8 imports on 2 storage nodes (real workers) against one nbdcopy
	FERRY_VAR_DIR=var/bench $(PY) -m tests.bench --nodes-only

bench-frontend: setup ## Only host I/O through the front end against nbdkit's file plugin, and the copy under host load
	FERRY_VAR_DIR=var/bench-frontend $(PY) -m tests.bench_frontend

lint: setup ## Check style and imports with ruff
	$(BIN)/ruff check .

diagrams: setup ## Regenerate README's state diagrams from importer/states.py
	$(PY) manage.py readme_diagrams

clean: ## Remove the virtualenv and everything under var/ (the demo data and database)
	rm -rf $(VENV) var staticfiles .pytest_cache
