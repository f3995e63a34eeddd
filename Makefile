# Hobbies Community — `make run` serves the app, `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
DEMO_PASSWORD ?= hobbies-demo-2026
export DEMO_PASSWORD

.PHONY: venv install install-dev lock run migrate seed test lint fmt bench bench-workloads bench-attachments clean chromium

# Two hash-locked files, both made by `make lock` from pyproject.toml: requirements.txt holds what
# the application imports at run time; requirements-dev.txt adds the test, lint, deploy and lock
# tools, at the same versions for every package the two share. Each has its own stamp, so `make
# run` and `make test` each install only what changed since they last did.
$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(PY)
	$(PY) -m pip install --quiet --require-hashes -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.txt
	touch $@

venv install: $(VENV)/.runtime

install-dev: $(VENV)/.dev

# Re-pins both lock files from pyproject.toml, keeping every pin that still fits;
# `make lock LOCK_ARGS=--upgrade` (or `--upgrade-package NAME`) moves pins forward.
LOCK_PYTHON ?= 3.11
UV_COMPILE = $(VENV)/bin/uv pip compile pyproject.toml --quiet --generate-hashes \
	--python-version $(LOCK_PYTHON) --custom-compile-command "make lock" $(LOCK_ARGS)

lock: $(VENV)/.dev
	$(UV_COMPILE) -o requirements.txt
	$(UV_COMPILE) --group test --group lint --group deploy --group lock \
	  -c requirements.txt -o requirements-dev.txt

migrate: install
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

run: seed
	@echo ""
	@echo "  Hobbies Community on http://127.0.0.1:$(PORT)/"
	@echo "  Demo users: alice, bob, carol — password: $(DEMO_PASSWORD)"
	@echo ""
	$(VENV)/bin/daphne -b 127.0.0.1 -p $(PORT) hobbies.asgi:application

# Browser tests drive Debian's Chromium; install it when it is missing (needs root).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Chromium for the browser tests (apt-get)…"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: install-dev chromium
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy hobbies accounts communities chat analytics
	$(VENV)/bin/cfn-lint deploy/cloudformation.yaml
	$(VENV)/bin/hadolint Dockerfile

fmt: install-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The fan-out benchmark on both paths, beside a bare broadcast server: the embedded default
# (app) and PostgreSQL + Redis (app-pg, at BENCH_POSTGRES_URL / BENCH_REDIS_URL, 127.0.0.1 by
# default). BENCH_ARGS passes options, e.g. BENCH_ARGS="--rate 150".
bench: install-dev migrate
	$(PY) bench/fanout.py --servers bare,app,app-pg $(BENCH_ARGS)

# Many senders, replays beside live traffic, history at 1,000,000 messages and memory per idle
# socket, on both paths (bench/workloads.py; BENCH_ARGS="--only senders" for one).
bench-workloads: install-dev
	$(PY) bench/workloads.py $(BENCH_ARGS)

bench-attachments: install-dev
	$(PY) bench/attachments.py

clean:
	rm -rf $(VENV) var/test.sqlite3 .pytest_cache .mypy_cache .ruff_cache
