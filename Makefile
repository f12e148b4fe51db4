# The README's two commands: `make demo` (install + main job on the offline default) and `make test`.
.PHONY: install demo test test-slow lint bench clean
VENV := .venv
BIN := $(VENV)/bin
export TORCH_EXTENSIONS_DIR ?= $(CURDIR)/.cache/torch_extensions

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh

demo: install
	$(BIN)/videollm demo

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: install
	$(BIN)/python -m pytest -m slow -q

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .cache
