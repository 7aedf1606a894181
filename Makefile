# The README's two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-reverse check bench bench-smoke clean

DEMO_STAMP := $(VENV)/.installed-demo

# the tests' venv: the package with the test and demo extras (the demo's own stamp comes with it)
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,demo]'
	@# byte-compiled as a pip install would be (PYTHONDONTWRITEBYTECODE would leave it to every start)
	$(BIN)/python -m compileall -q src
	touch $(STAMP) $(DEMO_STAMP)

# the demo needs only the demo extra (supervisor, prometheus-client, sentry-sdk): no test tools
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[demo]'
	$(BIN)/python -m compileall -q src
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/opsconsole demo

test: $(STAMP)
	scripts/with-services.sh $(BIN)/python -m pytest $(PYTEST_ARGS)

# the suite in reverse order: it must pass in any order (no test leans on another's leftovers)
test-reverse: $(STAMP)
	scripts/with-services.sh $(BIN)/python -m pytest --reverse $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	scripts/with-services.sh $(BIN)/python -m bench.run

bench-smoke: $(STAMP)
	scripts/with-services.sh $(BIN)/python -m bench.run --smoke

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
