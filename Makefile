# The two commands a user needs: `make report` and `make test`.
# Both build the virtual environment .venv from requirements.txt first when it is missing or stale.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= standard
DEVICE ?= auto
OUT ?=

# Named images come from a local mirror folder when there is one beside the checkout;
# otherwise each is downloaded once from its pinned URL (see assets/manifest.json).
NST_ASSET_MIRROR ?= $(abspath $(wildcard ../shared/assets))
export NST_ASSET_MIRROR

.PHONY: setup browser report test notebooks bench bench-quality clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --requirement requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --editable .
	touch $(STAMP)

# Headless Chromium for the browser tests: Debian's package, never a downloaded browser.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "The browser tests need Debian's chromium: run 'sudo apt-get install chromium'."; exit 1; fi; }

report: setup
	$(BIN)/python -m nst_lib report --profile $(PROFILE) --device $(DEVICE) $(if $(OUT),--output $(OUT))

test: setup browser
	$(BIN)/python -m pytest

# Re-run the notebooks in place (quick profile) so that their stored outputs, which nbval compares, are current.
notebooks: setup
	cd notebooks && NST_PROGRESS=off ../$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	  --ExecutePreprocessor.store_widget_state=False --ExecutePreprocessor.record_timing=False [0-9][0-9]_*.ipynb

bench: setup
	$(BIN)/python bench/speed.py

# Quality per second against the classic recipe (about 90 minutes on 2 idle cores; QUICK=1: a minute or two;
# QUALITY_ARGS: any other options of bench/quality.py, e.g. QUALITY_ARGS="--size 128 --resume").
bench-quality: setup
	$(BIN)/python bench/quality.py $(if $(QUICK),--quick) $(QUALITY_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
