"""The console commands as installed: every ``[project.scripts]`` entry of
pyproject.toml is an installed entry point that resolves and runs."""

import importlib.metadata
import os
import subprocess
import sys
import tomllib

import pytest

import scripting
from scripting import assert_one_line_error

ROOT = scripting.ROOT
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text(
    encoding="utf-8"))["project"]["scripts"]


def run_command(name: str, *args, timeout: int = 300):
  """The console command ``name`` as its installed entry point runs it."""
  code = ("import sys; from importlib.metadata import entry_points; "
          f"sys.argv = [{name!r}, *sys.argv[1:]]; "
          f"entry_points(group='console_scripts')[{name!r}].load()()")
  env = dict(os.environ, PYTHONUNBUFFERED="1", NST_JAX_CACHE_DIR="off")
  return subprocess.run([sys.executable, "-c", code, *map(str, args)],
                        cwd=ROOT, capture_output=True, text=True, env=env,
                        timeout=timeout)


def test_the_readmes_commands_are_declared():
  for name in ("nst-stylize", "nst-grid", "nst-stylize-video",
               "nst-fetch-weights", "nst-evaluate"):
    assert name in SCRIPTS, name


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_declared_command_is_an_installed_entry_point(name):
  installed = {e.name: e for e in importlib.metadata.entry_points(
      group="console_scripts") if e.value.startswith("nst_jax.")}
  assert name in installed, (
      f"{name} is declared in pyproject.toml but not installed: run "
      "`make install` (pip install -e .)")
  assert installed[name].value == SCRIPTS[name]
  # Loaded in a process of its own: each command defines its flags at import.
  proc = subprocess.run(
      [sys.executable, "-c", "from importlib.metadata import entry_points; "
       f"assert callable(entry_points(group='console_scripts')[{name!r}]"
       ".load())"], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]


def test_nst_evaluate_runs_as_a_command():
  proc = run_command("nst-evaluate")
  assert_one_line_error(proc, "--content, --style and --results are required")
