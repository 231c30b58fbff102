"""Test helper: run a script of scripts/ as a user does, and check its exit.

Every test that runs a script goes through ``run`` (unbuffered output, the
session's compilation cache), and checks a success with ``assert_ok`` and a
bad input with ``assert_one_line_error``: no traceback, exactly one
``error:`` line.

The cache: the child inherits ``NST_JAX_CACHE_DIR`` and ``PYTHONPATH`` from
``conftest._session_compilation_cache``, the run's one cache directory, which
every worker and child shares (writes made atomic by ``tests/cache_site``), so
a program compiled by one command is loaded by the next instead of compiled
again. ``cache=False`` turns it off for a child that must compile.

XLA's level. A child inherits the suite's
``--xla_backend_optimization_level=0`` (conftest.py): compiling is what most
commands of the suite cost. Where running is, ``xla_defaults=True`` starts
the child at XLA's defaults (``conftest.XLA_FLAGS_DEFAULTS``): without
LLVM's passes AlexNet's strided convolutions (their gradients) run several
times slower, so a test whose commands paint with ``--network=alexnet`` and
share their programs (a run, then its resumption) finishes sooner so
(test_video_levels.py's killed video, 3 commands: 80 s → 55 s on the loaded
2-core machine, 2026-12-08; commands that each compile their programs and
run them briefly gain nothing). Children compared bit for bit must share
the setting.
"""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def child_env(cache: bool = True, xla_defaults: bool = False) -> dict:
  """The environment of a command a test starts: this process's, output
  unbuffered, the session's compilation cache (``cache=False``: none) and
  the suite's XLA level (``xla_defaults=True``: XLA's defaults)."""
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  if not cache:
    env["NST_JAX_CACHE_DIR"] = "off"   # nst_jax.cli.CACHE_DIR_ENV
  if xla_defaults:
    from conftest import (  # pylint: disable=g-import-not-at-top
        XLA_FLAGS_DEFAULTS)
    env["XLA_FLAGS"] = XLA_FLAGS_DEFAULTS
  return env


def run(script: str, *args, timeout: int = 600, cache: bool = True,
        xla_defaults: bool = False) -> subprocess.CompletedProcess:
  """``python scripts/<script> args`` from the repository root, with the
  session's compilation cache (``cache=False``: none), at the suite's XLA
  level (``xla_defaults=True``: XLA's defaults; see ``child_env``)."""
  return subprocess.run([sys.executable, str(ROOT / "scripts" / script),
                         *map(str, args)], cwd=ROOT, capture_output=True,
                        text=True,
                        env=child_env(cache, xla_defaults), timeout=timeout)


def assert_ok(proc) -> None:
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def assert_one_line_error(proc, *fragments, status: int | None = 1) -> None:
  """Exit ``status`` (any non-zero with ``None``), no traceback, exactly one
  ``error:`` line holding every fragment."""
  if status is None:
    assert proc.returncode != 0, proc.stdout
  else:
    assert proc.returncode == status, (proc.returncode, proc.stderr[-3000:])
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  lines = [l for l in proc.stderr.splitlines() if l.startswith("error: ")]
  assert len(lines) == 1, proc.stderr[-3000:]
  for fragment in fragments:
    assert fragment in lines[0], lines[0]
