# Two entry points a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test fuzz bench clean chromium docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[demo]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench,demo,docs,dev,dask]'
	touch $@

# the CPU settings (npconv environment) go in before Python starts, as for the benchmark, so the
# whole-network part times what the README quotes
demo: $(VENV)/.installed-demo
	eval "$$($(BIN)/npconv environment)"; $(BIN)/npconv demo

# The HTML page's test drives Debian's headless Chromium; install it where it is missing
# (CI and a fresh machine run as root; elsewhere, install chromium and chromium-driver yourself).
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

test: $(VENV)/.installed-test chromium
	$(BIN)/python -m pytest

# The differential fuzz suite with the 'long' hypothesis profile (150000 examples, about 20
# minutes on two quiet cores): fresh random cases each run, failures kept in .hypothesis/.
fuzz: $(VENV)/.installed-test
	NPCONV_FUZZ=long $(BIN)/python -m pytest -p no:cacheprovider --hypothesis-show-statistics \
	  tests/test_fuzz.py tests/test_fuzz_regressions.py

# the API reference site, warnings as errors, into docs/_build/html (make test builds it too)
docs: $(VENV)/.installed-test
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html

# the environment advice (npconv.cpu) must be in place before NumPy/SciPy load OpenBLAS;
# the layer suite, then the deformable conv rows (bench/deform.py), then a 40,000 x 40,000
# image convolved by Dask chunk by chunk (bench/scale.py, about a minute), then a WaveNet-style
# causal stack streamed one sample and 10 ms at a time (bench/stream.py, seconds), then complex64/complex128
# convolutions beside torch's complex conv (bench/complex.py, a few minutes)
bench: $(VENV)/.installed-test
	eval "$$($(BIN)/npconv environment)"; $(BIN)/python bench/layers.py && $(BIN)/python bench/deform.py && $(BIN)/python bench/scale.py && $(BIN)/python bench/stream.py && $(BIN)/python bench/complex.py && $(BIN)/python bench/networks.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache docs/_build
