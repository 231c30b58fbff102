"""Shared plumbing for the absl scripts: one-line errors and run records.

Scripts stay thin: they parse flags, call library functions and use
``run_main`` so that every ``NSTError`` (and an interrupted run) ends as
``error: <message>`` on stderr with a non-zero exit status, never a traceback.
"""

import json
import logging
import os
import sys
from typing import Callable

import jax
from absl import flags

from nst_jax.errors import NSTError


def module_flag_values(module_name: str) -> dict:
  """``{name: value}`` of every flag the script module defined itself."""
  return {f.name: f.value
          for f in flags.FLAGS.get_key_flags_for_module(module_name)}


def device_description() -> str:
  """E.g. ``"cpu: cpu (2 devices)"`` or ``"gpu: NVIDIA H100 80GB HBM3"``."""
  devices = jax.devices()
  d = devices[0]
  kind = getattr(d, "device_kind", d.platform)
  extra = f" ({len(devices)} devices)" if len(devices) > 1 else ""
  return f"{d.platform}: {kind}{extra}"


CACHE_DIR_ENV = "NST_JAX_CACHE_DIR"


def compilation_cache_dir() -> str | None:
  """``$NST_JAX_CACHE_DIR``, else ``~/.cache/nst_jax``; ``None`` when the
  variable is set to ``""`` or ``"off"`` (caching disabled)."""
  path = os.environ.get(CACHE_DIR_ENV)
  if path is None:
    return os.path.join(os.path.expanduser("~"), ".cache", "nst_jax")
  return None if path.strip().lower() in ("", "off") else path


def enable_compilation_cache(path: str | None = None) -> str | None:
  """Turns on JAX's persistent compilation cache; returns its directory.

  ``path`` defaults to ``compilation_cache_dir()``. Every program is cached
  whatever its compile time, so a second run of a command with the same
  shapes and flags loads its programs from disk instead of compiling them.
  JAX does not write programs that contain host callbacks to the cache
  (``jax.debug.callback``: the solver's progress hooks), so such programs are
  compiled again in every process. A directory that cannot be created leaves
  the cache off (returns ``None``) rather than failing the run.
  """
  path = compilation_cache_dir() if path is None else path
  if path is None:
    return None
  try:
    os.makedirs(path, exist_ok=True)
  except OSError:
    return None
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path


def run_main(main: Callable[[list], None]) -> Callable[[list], None]:
  """Wraps an absl ``main`` so that user errors become one line and exit 1."""
  def wrapped(argv):
    # jax reports at INFO that it found no TPU; that is not news to a user.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    try:
      main(argv)
    except NSTError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(1)
    except KeyboardInterrupt:
      print("error: interrupted", file=sys.stderr)
      sys.exit(130)
  return wrapped


def parse_flags(argv):
  """absl ``flags_parser`` that reports a bad flag as one ``error:`` line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    sys.exit(2)


def run(main: Callable[[list], None]) -> None:
  """``absl.app.run`` with one-line errors for flags and ``NSTError``s."""
  from absl import app  # pylint: disable=g-import-not-at-top
  app.run(run_main(main), flags_parser=parse_flags)


def params_json(values: dict) -> str:
  """The flag values as compact JSON (for PNG text chunks)."""
  return json.dumps(values, sort_keys=True, default=str)
