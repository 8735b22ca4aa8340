# Set-up and the two commands of the README. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# On the project's machines this pin takes the CPU wheel that lies on disk; elsewhere PyPI's build.
TORCH ?= torch==2.13.0
DEMO_OUT ?= demo-out

.PHONY: venv test demo clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

test: venv
	$(BIN)/python -m pytest -q

demo: venv
	$(BIN)/gvtnet-zoo demo --out $(DEMO_OUT)

clean:
	rm -rf $(VENV) build *.egg-info
