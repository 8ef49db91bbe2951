# Every target sets up .venv itself, so a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test bench lint browser-deps clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# Debian's Chromium for the browser tests (never a downloaded browser build).
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	      || echo "warning: could not install chromium; browser tests will not run"; \
	  else echo "note: /usr/bin/chromium missing and not root; browser tests will be skipped"; fi; \
	fi

run: $(STAMP)
	$(VENV)/bin/lti-tool demo

test: $(STAMP) browser-deps
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/launch.py

lint: $(STAMP)
	$(VENV)/bin/ruff check lti_tool tests benchmarks

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
