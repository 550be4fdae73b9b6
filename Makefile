# The two commands a newcomer needs: `make demo` and `make test`. Both set everything up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# pytest-xdist processes for `make test` / `make unit` (0: all in one process). The suite
# waits on engines and subprocesses more than on CPU, so 3 beat 2 on these 2 cores.
PYTEST_WORKERS ?= 3
PACKAGES := -e '.[test]' -e src/plugins_aws -e src/plugins_docker -e examples/hello-plugin

.PHONY: test unit lint demo bench bench-quick clean

$(STAMP): pyproject.toml src/plugins_aws/pyproject.toml src/plugins_docker/pyproject.toml examples/hello-plugin/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(PACKAGES)
	$(PY) -m compileall -q src examples/hello-plugin/src >/dev/null  # editable installs get no bytecode
	touch $@

## make test: the whole suite, real engines included (moto server, dockerd, registry, PostgreSQL);
## testenv installs missing Debian packages (docker.io, postgresql, ...) when run as root
test: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS)

## make unit: only the fast tests that need no external engine
unit: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m "not integration"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests testenv bench examples

## make demo: the seed scenario end to end (AWS on a local moto server + a local Docker engine)
demo: $(STAMP)
	$(PY) examples/aws-docker/demo.py

## make bench: our benchmarks beside Cloudify's local mode (results in bench/results/)
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) bench/run.py

bench-quick: $(STAMP)
	$(PY) bench/plan_bench.py --sizes 1000,10000
	$(PY) bench/engine_bench.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .orchestrator src/*.egg-info src/*/*.egg-info
