# Sun Commune — the commands the README shows.
#   make demo   install, provision PostgreSQL and Redis, migrate, load the Mianyang demo, run web + worker + beat
#   make test   install, provision, run the whole suite (backend, a real Celery worker, browser journeys)
#   make bench  generate a dataset (SCALE=city, or SCALE=province) and measure every page against the floor

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEV := DEBUG=1

.PHONY: demo test bench install venv npm services db migrate messages lint check run clean

demo: install services db
	$(DEV) $(PY) manage.py load_demo
	$(DEV) ./ops/run-demo.sh

test: install
	./ops/provision.sh --browser
	$(PY) manage.py makemigrations --check --dry-run --settings=tests.settings
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -p no:cacheprovider --durations=10

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is needed, found " + sys.version' 
	@if ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; \
	  else echo "Install python3-venv: sudo apt-get install python3-venv" >&2; exit 1; fi; fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	@if ! command -v npm >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	  else echo "Install Node.js and npm: sudo apt-get install nodejs npm" >&2; exit 1; fi; fi
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

services:
	./ops/provision.sh

# Create the database named in DATABASE_URL (default: sun_commune on the local socket) if missing, then migrate.
db: install
	$(PY) ops/createdb.py
	$(DEV) $(PY) manage.py migrate --no-input
	$(DEV) $(PY) manage.py collectstatic --no-input -v 0

messages: install
	$(DEV) $(PY) manage.py makemessages -l zh_Hans --ignore=.venv --ignore=node_modules --ignore=staticfiles --ignore=tests --no-obsolete
	$(DEV) $(PY) manage.py compilemessages -l zh_Hans --ignore=.venv --ignore=node_modules

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

run: install
	$(DEV) ./ops/run-demo.sh

SCALE ?= city

# Generates sun_commune_bench_$(SCALE) (kept between runs; bench/generate.py --fresh rebuilds it),
# then loads every page with wrk under gunicorn and writes bench/results*.json and the README's table.
bench: install services
	@if ! command -v wrk >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	  else echo "Install wrk: sudo apt-get install wrk" >&2; exit 1; fi; fi
	$(PY) bench/generate.py --scale $(SCALE)
	$(PY) bench/run.py --scale $(SCALE)

clean:
	rm -rf $(VENV) node_modules staticfiles var
