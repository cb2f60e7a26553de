# Civic Ledger — two commands on a fresh machine:
#   make run    local chain (kept under data/), contracts deployed once, demo agency; prints URL and address
#   make test   the guardrails (lint, import rules, types), then every test, on the in-process chain and on anvil
# Each installs what it needs first (Python venv, pinned pip packages, pinned npm packages).

PYTHON ?= python3
VENV := .venv
SLITHER_VENV := .venv-slither
# The page is tested in Debian's Chromium, driven by Playwright (never `playwright install`: it downloads).
CHROMIUM := /usr/bin/chromium
# …and a Chinese font, without which the page's Chinese text renders as empty boxes in screenshots.
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-microhei.ttc
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test check deps bench clean

run: deps
	$(VENV)/bin/python -m ledger.dev.devnet

test: check $(SLITHER_VENV)/.installed $(CHROMIUM) $(CJK_FONT)
	$(VENV)/bin/python -m pytest

# The guardrails (pyproject.toml says why each rule): lint, the import rules between layers, types.
check: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: deps
	$(VENV)/bin/python bench/gas.py
	$(VENV)/bin/python bench/batches.py

deps: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# Slither pins an older web3 than the ledger, so it lives in a venv of its own.
# It is created without pip of its own; the main venv's pip installs into it (pip --python).
$(SLITHER_VENV)/.installed: constraints-slither.txt $(VENV)/.installed
	rm -rf $(SLITHER_VENV)
	$(PYTHON) -m venv --without-pip $(SLITHER_VENV)
	$(VENV)/bin/python -m pip --python $(SLITHER_VENV)/bin/python install --quiet \
		-c constraints-slither.txt slither-analyzer==0.11.3
	touch $@

$(CHROMIUM) $(CJK_FONT):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-wqy-microhei

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) $(SLITHER_VENV) node_modules build crytic-export .pytest_cache .hypothesis
