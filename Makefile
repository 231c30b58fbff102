# Two commands do all set-up on a fresh machine:
#   make demo   virtual environment, install, fetch weights, stylise the
#               bundled examples (on a CPU a few minutes), results in out/
#   make test   install the test extras and run the suite
#   make docs   install the docs extra and build the documentation site into
#               site/ (strict: a broken link or docstring fails it)
# Where `nvidia-smi -L` lists a GPU both install JAX's CUDA build (the cuda12
# extra of pyproject.toml) as well; GPU=1 forces it, GPU=0 the CPU build.
# `make check-gpu-extra` checks that the CUDA build resolves against the
# package index without installing it (not part of `make test` nor of CI).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CHOICE := $(VENV)/.extras
comma  := ,

# GPU= on the command line wins; otherwise ask nvidia-smi (a GPU variable in
# the environment is not read).
ifneq ($(origin GPU),command line)
GPU := $(if $(shell nvidia-smi -L 2>/dev/null | grep '^GPU '),1,0)
endif
ifeq ($(filter $(GPU),0 1),)
$(error GPU must be 0 or 1, got '$(GPU)')
endif
EXTRAS := test$(comma)video$(if $(filter 1,$(GPU)),$(comma)cuda12)

.PHONY: demo test docs weights install clean check-gpu-extra chromium FORCE

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The extras installed, rewritten only when the choice changes (so that the
# stamp below reinstalls); leaving the CUDA build drops its JAX plugin, which
# JAX would otherwise keep using.
$(CHOICE): FORCE | $(VENV)/bin/python
	@if ! echo '$(EXTRAS)' | cmp -s - $@; then \
	  if [ $(GPU) = 0 ] && grep -qs cuda12 $@; then \
	    echo "GPU=0: removing JAX's CUDA plugin"; \
	    $(PY) -m pip uninstall --quiet -y jax-cuda12-plugin jax-cuda12-pjrt; \
	  fi; \
	  echo '$(EXTRAS)' > $@; \
	fi

$(STAMP): pyproject.toml $(CHOICE) | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

weights: $(STAMP)
	$(PY) scripts/fetch_weights.py --network=vgg16,alexnet

demo: weights
	$(PY) scripts/stylize.py --content=examples/chelsea.png \
	  --style=examples/style_brushwork.png --size=256 --iterations=300 \
	  --print_every=50 --output=out/chelsea_brushwork.png
	@echo "demo done: see out/chelsea_brushwork.png and out/chelsea_brushwork.json"

# Two pytest-xdist workers on a CPU: the suite is mostly XLA compilation,
# which uses one core (measured on the 2-core machine: 2026-11-30, 6m24s
# against 8m40s in one process, 717 tests; three workers were slower than
# two on 2026-12-07; today's time is on docs/about/testing.md). One on a GPU,
# where each process would preallocate most of the device's memory.
# WORKERS= overrides.
WORKERS ?= $(if $(filter 1,$(GPU)),1,2)

# --dist worksteal: a worker that runs out of tests takes some from the
# other (the multi-process and tiling tests are long); --durations: the
# slowest tests in every log, to keep the suite under 15 minutes.
test: weights chromium
	$(PY) -m pytest -q -n $(WORKERS) --dist worksteal --durations=15

# The documentation site (mkdocs.yml): the docs extra installed on top of the
# others (its stamp follows theirs, so a change of extras or of pyproject.toml
# installs it again), then a strict build into site/. The hook
# docs/hooks/nst_docs.py imports each command to list its flags, and the
# tutorial notebook is executed, so the weights are fetched first.
DOCS_STAMP := $(VENV)/.docs-installed

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[$(EXTRAS),docs]"
	touch $(DOCS_STAMP)

docs: weights $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

# tests/test_serve_browser.py drives Debian's Chromium through Playwright
# (which cannot download a browser of its own here): installed as root with
# apt-get when /usr/bin/chromium is missing, else left to the user.
chromium:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null \
	    && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian's chromium (the browser test)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq chromium >/dev/null 2>&1 || { \
	    apt-get update -qq >/dev/null 2>&1 && \
	    apt-get install -y -qq chromium >/dev/null 2>&1; } || \
	  echo "warning: chromium could not be installed: the browser test fails"; \
	fi

# Resolves what a GPU machine installs, `.[test,cuda12]`, against the package
# index as a fresh venv would, and installs nothing: pip reads each wheel's
# metadata by HTTP range requests (fast-deps: a few MB, where a plain dry run
# downloads the ~3 GB of CUDA wheels; CHECK_PIP= does that instead). Prints
# the versions of JAX's CUDA packages, which must all be jax's own.
CHECK_PIP ?= --use-feature=fast-deps
define CHECK_GPU_EXTRA
import json, sys
report = json.load(open(sys.argv[1]))
got = {i["metadata"]["name"].lower().replace("_", "-"):
       i["metadata"]["version"] for i in report["install"]}
names = ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda12-pjrt")
for name in names:
  print(f"{name:18} {got.get(name, 'missing')}")
cuda = sorted(n for n in got if n.startswith("nvidia-"))
print(f"{len(cuda)} CUDA library wheels: {' '.join(cuda)}")
if len({got.get(n) for n in names}) != 1:
  sys.exit("error: JAX's CUDA packages do not resolve to jax's version")
endef

check-gpu-extra: export CHECK_GPU_EXTRA := $(CHECK_GPU_EXTRA)
check-gpu-extra: | $(VENV)/bin/python
	@$(PY) -m pip install --dry-run --ignore-installed --quiet $(CHECK_PIP) \
	  --report $(VENV)/gpu-extra.json ".[test,cuda12]" \
	  > $(VENV)/gpu-extra.log 2>&1 || { cat $(VENV)/gpu-extra.log; exit 1; }
	@$(PY) -c "$$CHECK_GPU_EXTRA" $(VENV)/gpu-extra.json

clean:
	rm -rf out .pytest_cache site
