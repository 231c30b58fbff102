# Two commands do all set-up on a fresh machine:
#   make demo   virtual environment, install, fetch weights, stylise the
#               bundled examples on the CPU (a few minutes), results in out/
#   make test   install the test extras and run the suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test weights install clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

weights: $(STAMP)
	$(PY) scripts/fetch_weights.py --network=vgg16,alexnet

demo: weights
	$(PY) scripts/stylize.py --content=examples/chelsea.png \
	  --style=examples/style_brushwork.png --size=256 --iterations=300 \
	  --print_every=50 --output=out/chelsea_brushwork.png
	@echo "demo done: see out/chelsea_brushwork.png and out/chelsea_brushwork.json"

test: weights
	$(PY) -m pytest -q

clean:
	rm -rf out .pytest_cache
