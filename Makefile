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

# Debian's Chromium for the browser tests (never a downloaded browser build),
# and axe-core from npm (package-lock.json) for their accessibility checks.
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	      || echo "warning: could not install chromium; browser tests will not run"; \
	  else echo "note: /usr/bin/chromium missing and not root; browser tests will be skipped"; fi; \
	fi
	@if [ ! -f node_modules/axe-core/axe.min.js ]; then \
	  if command -v npm >/dev/null 2>&1; then \
	    if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; \
	    else npm install --no-audit --no-fund; fi \
	      || echo "warning: npm could not install axe-core; accessibility checks will not run"; \
	  else echo "note: npm missing; node_modules/axe-core absent, accessibility checks will be skipped"; fi; \
	fi

run: $(STAMP)
	$(VENV)/bin/lti-tool demo

test: $(STAMP) browser-deps
	$(PY) -m pytest -q

# Twice: the LMS on loopback, and an LMS 50 ms away as over the internet.
bench: $(STAMP)
	$(PY) benchmarks/launch.py --out benchmarks/results/launch-local.json
	$(PY) benchmarks/launch.py --platform-latency-ms 50 --out benchmarks/results/launch-remote.json
	$(PY) benchmarks/gradebook.py
	$(PY) benchmarks/passback.py
	$(PY) benchmarks/load.py

lint: $(STAMP)
	$(VENV)/bin/ruff check lti_tool tests benchmarks

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
