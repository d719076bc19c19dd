# The README's two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test setup system-deps bench-serving bench-precision bench-capacity model clean

demo: setup
	$(BIN)/spillover demo

test: setup
	$(BIN)/ruff check spillover loadtest tests
	$(BIN)/ruff format --check spillover loadtest tests
	$(BIN)/mypy spillover loadtest
	$(BIN)/lint-imports
	$(BIN)/pytest

setup: system-deps $(VENV)/.installed

system-deps:
	@sh scripts/install-system-deps.sh

# Reinstalled whenever the dependency list changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

model: setup
	$(BIN)/spillover model build

bench-serving: setup
	$(BIN)/spillover bench serving

bench-precision: setup
	$(BIN)/spillover bench serving --precision fp32,int8,fp16

bench-capacity: setup
	$(BIN)/spillover bench capacity

clean:
	-$(BIN)/spillover local down
	rm -rf $(VENV) .spillover
