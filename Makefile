# The two commands a newcomer needs: `make run` and `make test`.
# `make bench` measures the gateway beside nginx and HAProxy (bench/).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test lint typecheck unit bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# Upstream demo on :9000 and the gateway on :8080, on the embedded store
# unless GATEWAY_STORE_URL names a Dragonfly or Redis server.
run: install
	@BIN=$(BIN) scripts/run-local.sh

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

# Every test, on real servers; redis-server is installed if it is missing.
test: install lint typecheck
	scripts/ensure-test-tools.sh
	$(BIN)/pytest

# matplotlib (the chart) and py-spy (the profile) come with the bench extra.
$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

# A few minutes on loopback: nginx, HAProxy, wrk and redis-server are
# installed from Debian's packages if missing; results go to bench/results/.
bench: $(BIN)/.bench-installed
	bench/ensure-tools.sh
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
