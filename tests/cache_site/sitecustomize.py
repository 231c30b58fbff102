"""Atomic writes to JAX's persistent compilation cache, for the test session.

The suite shares one compilation cache between every process it runs: the
pytest-xdist workers and every command or ``python -c`` child they start
(``conftest._session_compilation_cache``). JAX (``jax._src.lru_cache``,
checked in jax 0.10.2) writes an entry in place, ``path.write_bytes(value)``,
and takes a lock only when a size limit is set (which needs the ``filelock``
package, not a dependency here). Two processes that share the directory can
then read an entry while another writes it (a decompression error: JAX warns
on stderr and compiles again) or write the same entry at once (a corrupt
file that every later reader warns about).

This module makes each write atomic, the usual way: the entry is written to
a temporary file in the same directory and renamed over its name
(``os.replace``), so a reader sees the whole entry or none, and of two
writers of one key the last rename wins with a whole file. Reads are JAX's.

Two ways in:

* children: ``conftest`` puts this directory first on ``PYTHONPATH``, so
  Python imports this file at start-up (``site``: ``sitecustomize``); it
  imports nothing heavy, only registers an import hook that patches
  ``LRUCache.put`` when (if ever) the child imports ``jax._src.lru_cache``;
* the pytest processes: ``conftest`` calls ``install()`` (jax is imported
  there already, so the class is patched at once).

A cache with a size limit (eviction, under JAX's file lock) or on a
non-local filesystem keeps JAX's own ``put``.
"""

import importlib.abc
import importlib.machinery
import os
import sys
import tempfile

MODULE = "jax._src.lru_cache"


def _atomic(put):
  """``LRUCache.put`` that writes the entry under a temporary name and
  renames it; ``put`` itself where JAX locks (eviction) or the path is not
  a local directory."""
  def atomic_put(self, key: str, value: bytes) -> None:
    directory = str(self.path)
    if getattr(self, "eviction_enabled", True) or "://" in directory:
      return put(self, key, value)
    if not key:
      raise ValueError("key cannot be empty")
    suffix = getattr(sys.modules.get(MODULE), "_CACHE_SUFFIX", "-cache")
    final = os.path.join(directory, f"{key}{suffix}")
    if os.path.exists(final):   # as JAX: an existing entry is kept
      return
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{key}.",
                                suffix=".partial")
    try:
      with os.fdopen(fd, "wb") as f:
        f.write(value)
      os.replace(temp, final)
    except BaseException:
      try:
        os.unlink(temp)
      except OSError:
        pass
      raise
  atomic_put.atomic = True
  atomic_put.__doc__ = put.__doc__
  return atomic_put


def patch(module) -> None:
  """Replaces ``module.LRUCache.put`` (once) by its atomic version."""
  cache = getattr(module, "LRUCache", None)
  if cache is not None and not getattr(cache.put, "atomic", False):
    cache.put = _atomic(cache.put)


class _PatchOnImport(importlib.abc.MetaPathFinder):
  """Finds ``jax._src.lru_cache`` as Python would and patches it once its
  code has run; every other import is left to the other finders."""

  def find_spec(self, name, path, target=None):
    if name != MODULE:
      return None
    spec = importlib.machinery.PathFinder.find_spec(name, path, target)
    if spec is None or spec.loader is None:
      return spec
    run = spec.loader.exec_module

    def exec_module(module):
      run(module)
      patch(module)
    spec.loader.exec_module = exec_module
    return spec


def install() -> None:
  """Patches ``jax._src.lru_cache`` now if it is imported, else when it
  is."""
  module = sys.modules.get(MODULE)
  if module is not None:
    patch(module)
  elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _PatchOnImport())


install()
