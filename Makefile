# The two commands a user needs: `make report` and `make test`.
# Both build the virtual environment .venv from requirements.txt first when it is missing or stale.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# PROFILE (quick, standard, full), DEVICE (cpu, cuda, ...) and PRECISION (auto, float32, bfloat16): empty means
# the defaults of nst_lib/profiles.py.
PROFILE ?=
DEVICE ?=
PRECISION ?=
OUT ?=
# Your own pictures for the report's section "Your pictures": comma-separated files or named images, and a folder.
CONTENT ?=
STYLE ?=
ALBUM ?=

# Named images come from a local mirror folder when there is one beside the checkout;
# otherwise each is downloaded once from its pinned URL (see assets/manifest.json).
NST_ASSET_MIRROR ?= $(abspath $(wildcard ../shared/assets))
export NST_ASSET_MIRROR

.PHONY: setup browser report test notebooks bench bench-quality generators clean

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
	$(BIN)/python -m nst_lib report $(if $(PROFILE),--profile $(PROFILE)) $(if $(DEVICE),--device $(DEVICE)) \
	  $(if $(PRECISION),--precision $(PRECISION)) $(if $(OUT),--output "$(OUT)") \
	  $(if $(CONTENT),--content "$(CONTENT)") $(if $(STYLE),--style "$(STYLE)") $(if $(ALBUM),--album "$(ALBUM)")

test: setup browser
	$(BIN)/python -m pytest

# Notebooks are committed without outputs (see docs/report.md, "Notebooks"), except those that keep outputs for nbval to
# compare: re-run those in place in the quick profile, and clear the outputs of the others.
notebooks: setup
	@for nb in notebooks/[0-9][0-9]_*.ipynb; do \
	  if $(BIN)/python -c "import json, sys; sys.exit(not any(c.get('outputs') for c in json.load(open(sys.argv[1]))['cells']))" $$nb; then \
	    echo "running $$nb (quick profile)"; \
	    (cd notebooks && NST_PROGRESS=off NST_PROFILE=quick ../$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	      --ExecutePreprocessor.store_widget_state=False --ExecutePreprocessor.record_timing=False $$(basename $$nb)); \
	  else \
	    $(BIN)/jupyter nbconvert --clear-output --inplace $$nb; \
	  fi; \
	done

# SPEED_ARGS: e.g. SPEED_ARGS="--parts per-evaluation" measures only the per-evaluation table (a few minutes).
bench: setup
	$(BIN)/python bench/speed.py $(SPEED_ARGS)

# Quality per second against the classic recipe (about 90 minutes on 2 idle cores; QUICK=1: a minute or two;
# QUALITY_ARGS: any other options of bench/quality.py, e.g. QUALITY_ARGS="--size 128 --resume").
bench-quality: setup
	$(BIN)/python bench/quality.py $(if $(QUICK),--quick) $(QUALITY_ARGS)

# The generators shipped in nst_lib/trained (docs/generators.md), retrained with the commands that made them: each
# `nst train-generator` with the package's recipe at the budget below (about an hour each on two CPU cores, one
# torch thread each), resumed from its checkpoint in build/generators/ when one is there, then scored on the held-out
# photos and written into the package by bench/ship_generator.py.
STARRY_NIGHT_STEPS ?= 2800
FRIDA_KAHLO_STEPS ?= 2400
TEXTURE_STEPS ?= 3000
GENERATOR_IMAGE_SIZE ?= 256
GENERATOR_OPTIONS ?= --batch 3 --crop-size 160
TEXTURE_OPTIONS ?= --batch 1 --crop-size 256
TRAINED := build/generators
define train_and_ship
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/nst train-generator --style $(2) $(3) \
	  --image-size $(GENERATOR_IMAGE_SIZE) --checkpoint $(TRAINED)/$(1).pt $$(test -f $(TRAINED)/$(1).pt && echo --resume)
	$(BIN)/python bench/ship_generator.py --checkpoint $(TRAINED)/$(1).pt --name $(1) --style $(2) \
	  --image-size $(GENERATOR_IMAGE_SIZE)
endef

generators: setup
	@mkdir -p $(TRAINED)
	$(call train_and_ship,starry_night,starry_night,--steps $(STARRY_NIGHT_STEPS) $(GENERATOR_OPTIONS))
	$(call train_and_ship,frida_kahlo,frida_kahlo,--steps $(FRIDA_KAHLO_STEPS) $(GENERATOR_OPTIONS))
	$(call train_and_ship,starry_night_texture,starry_night,--texture --steps $(TEXTURE_STEPS) $(TEXTURE_OPTIONS))

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
