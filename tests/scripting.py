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
"""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run(script: str, *args, timeout: int = 600,
        cache: bool = True) -> subprocess.CompletedProcess:
  """``python scripts/<script> args`` from the repository root, with the
  session's compilation cache (``cache=False``: none)."""
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  if not cache:
    env["NST_JAX_CACHE_DIR"] = "off"   # nst_jax.cli.CACHE_DIR_ENV
  return subprocess.run([sys.executable, str(ROOT / "scripts" / script),
                         *map(str, args)], cwd=ROOT, capture_output=True,
                        text=True, env=env, timeout=timeout)


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
