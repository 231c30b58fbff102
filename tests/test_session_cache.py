"""The run's one compilation cache (conftest._session_compilation_cache):
a program a child compiled is loaded by the next child, and every process of
the run writes entries atomically (tests/cache_site)."""

import os
import pathlib
import subprocess
import sys

import pytest

import scripting
from conftest import CACHE_DIR_ENV, CACHE_SITE

# Compiles one small program with the session's cache and prints the cache
# directory, the cache hits and misses JAX counted, and whether this
# process's LRUCache.put is the atomic one.
_CHILD = """
import jax, jax.numpy as jnp
from jax import monitoring
from nst_jax import cli
events = []
monitoring.register_event_listener(lambda name, **kw: events.append(name))
path = cli.enable_compilation_cache()
jax.jit(lambda x: jnp.sin(x) * 3.25 + 0.5)(jnp.arange(7.0)).block_until_ready()
from jax._src import lru_cache
print(path, events.count("/jax/compilation_cache/cache_hits"),
      events.count("/jax/compilation_cache/cache_misses"),
      getattr(lru_cache.LRUCache.put, "atomic", False))
"""


def _child():
  proc = subprocess.run([sys.executable, "-c", _CHILD], cwd=scripting.ROOT,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  path, hits, misses, atomic = proc.stdout.split()
  return pathlib.Path(path), int(hits), int(misses), atomic == "True"


def test_children_share_one_cache_and_write_it_atomically():
  cache = pathlib.Path(os.environ[CACHE_DIR_ENV])
  assert cache.is_dir() and cache.name == "compilation_cache"
  if os.environ.get("PYTEST_XDIST_WORKER"):   # the run's, not the worker's
    assert not cache.parent.name.startswith("popen-gw"), cache
  assert str(CACHE_SITE) in os.environ["PYTHONPATH"].split(os.pathsep)
  first, _, _, atomic = _child()
  assert first == cache and atomic
  # The same program in a second process: loaded, not compiled again (the
  # first child, or any earlier one of the run, wrote it).
  _, hits, misses, _ = _child()
  assert hits >= 1 and misses == 0, (hits, misses)
  assert not list(cache.glob(".*.partial"))


def test_atomic_put_writes_whole_entries_or_none(tmp_path, monkeypatch):
  from jax._src import lru_cache  # pylint: disable=g-import-not-at-top
  assert getattr(lru_cache.LRUCache.put, "atomic", False)
  cache = lru_cache.LRUCache(str(tmp_path), max_size=-1)
  cache.put("key", b"entry")
  assert cache.get("key") == b"entry"
  cache.put("key", b"other")    # an existing entry is kept, as JAX does
  assert cache.get("key") == b"entry"
  # A write that fails before its rename leaves neither the entry nor the
  # temporary file.
  def fail(*args):
    raise OSError("disk full")
  monkeypatch.setattr(os, "replace", fail)
  with pytest.raises(OSError, match="disk full"):
    cache.put("new", b"entry")
  assert cache.get("new") is None
  assert sorted(p.name for p in tmp_path.iterdir()) == ["key-cache"]


# The suite's compiler level (conftest.py) and the tests that keep XLA's.

@pytest.mark.xla_defaults
def test_an_xla_defaults_test_runs_at_xla_defaults():
  """Wherever the suite compiles at its own level, this test runs in a
  pytest process of its own whose ``XLA_FLAGS`` hold no level."""
  assert "xla_backend_optimization_level" not in os.environ.get(
      "XLA_FLAGS", "")


def test_without_level_drops_only_the_level():
  from conftest import without_level  # pylint: disable=g-import-not-at-top
  assert without_level("--a=1 --xla_backend_optimization_level=0 --b") == (
      "--a=1 --b")
  assert without_level("") == ""
