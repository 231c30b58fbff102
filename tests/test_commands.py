"""The console commands as installed: every ``[project.scripts]`` entry of
pyproject.toml is an installed entry point that resolves and runs."""

import importlib.metadata
import os
import re
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
  env = dict(os.environ, PYTHONUNBUFFERED="1")   # the session's cache
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


# ---------------------------------------------------------------------------
# --help: the command's own flags by topic; absl's own left to --helpfull.

ABSL_FLAGS = ("--logtostderr", "--verbosity", "--pdb", "--run_with_profiling",
              "--only_check_args", "--helpfull")
# A few flags of each command and the section --help lists them under.
EXPECTED = {
    "nst-stylize": {"content": "Images", "style_scale": "Images",
                    "network": "Model and weights",
                    "style_weight": "Loss weights",
                    "style_stat": "Style representation",
                    "content_mask": "Masks (guided transfer)",
                    "optimizer": "Solver", "init": "Initial image",
                    "original_colors": "Colour", "scales": "Coarse to fine",
                    "evaluate": "Evaluation",
                    "from_json": "Running again and resuming",
                    "remat": "Compute", "output": "Output",
                    "coordinator_address": "Several processes or hosts"},
    "nst-grid": {"style_weight": "Loss weights", "preset": "Grid",
                 "output_dir": "Output", "chunk_size": "Compute"},
    "nst-stylize-video": {"input": "Images", "temporal_weight": "Video",
                          "flow": "Video", "work_dir": "Output",
                          "iterations": "Solver"},
    "nst-evaluate": {"results": "Images", "json": "Output",
                     "via": "Evaluation"},
    "nst-fetch-weights": {"network": "Model and weights",
                          "force": "Model and weights"},
    "nst-serve": {"host": "Server", "data_dir": "Server", "token": "Server"},
}


def _own_flags(name: str) -> list:
  """The flags a command defines (absl's own and deprecated names left
  out), read in a process of its own."""
  module = SCRIPTS[name].split(":")[0]
  code = (f"import {module}; from absl import flags; from nst_jax import cli; "
          "print(' '.join(f.name for m, fs in "
          "flags.FLAGS.flags_by_module_dict().items() "
          "if not m.startswith('absl') for f in fs "
          "if f.name not in cli.DEPRECATED_FLAGS))")
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout.split()


def _sections(text: str) -> dict:
  """``{flag: heading}`` of a --help text."""
  found, heading = {}, None
  for line in text.splitlines():
    if line and not line.startswith(" ") and line.endswith(":"):
      heading = line[:-1]
    for flag in re.findall(r"^  --(?:\[no\])?(\w+)", line) + re.findall(
        r"\(or --(\w+)\)", line if line.startswith("  --") else ""):
      found[flag] = heading
  return found


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_help_lists_the_commands_own_flags_by_topic(name):
  proc = run_command(name, "--help")
  assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-3000:]
  text = proc.stdout
  assert text.startswith(f"Usage: {name} [flags]"), text[:200]
  assert "Try --helpfull" not in text
  listed = _sections(text)
  for flag in ABSL_FLAGS:
    assert flag[2:] not in listed, flag
  missing = sorted(set(_own_flags(name)) - set(listed))
  assert not missing, f"--help of {name} leaves out {missing}"
  for flag, heading in EXPECTED[name].items():
    assert listed[flag] == heading, (flag, listed[flag])
  assert "Other flags" not in text   # every flag of a command has a topic


def test_helpfull_is_still_absls_and_deprecated_names_are_there_only():
  short = run_command("nst-stylize", "-h")
  assert short.returncode == 0, short.stderr[-3000:]
  assert "--[no]remat" in short.stdout and "checkpoint" not in _sections(
      short.stdout)
  full = run_command("nst-stylize", "--helpfull")
  for flag in ("--[no]logtostderr", "--content", "--[no]checkpoint"):
    assert flag in full.stdout, flag
