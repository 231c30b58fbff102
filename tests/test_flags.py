"""Flag names as a user types them: ``--remat`` (gradient
rematerialisation) and its former name ``--checkpoint``, which still works
with a one-line deprecation note, and old run records that recorded
``checkpoint`` run again with ``--from_json``."""

import json
import subprocess
import sys

import pytest

import scripting
from scripting import assert_ok

ROOT = scripting.ROOT
CONTENT = ROOT / "examples" / "chelsea.png"
STYLE = ROOT / "examples" / "style_brushwork.png"
TINY = (f"--content={CONTENT}", f"--style={STYLE}", "--size=32",
        "--iterations=2", "--content_layers=relu1_1",
        "--style_layers=relu1_1", "--pyramid_base=0")
NOTE = "warning: --checkpoint is deprecated: use --remat"


def _config_remat(*args, field: str = "spec.remat") -> tuple[bool, str]:
  """``transfer_config().<field>`` (a bool) of nst-stylize's flags parsed
  from ``args`` (in a process of its own: flags are global), and its
  stderr."""
  code = ("import sys; from absl import flags; from nst_jax import cli; "
          "import nst_jax.commands.stylize; "
          "cli.parse_flags(['nst-stylize', *sys.argv[1:]]); "
          f"print(cli.transfer_config().{field})")
  proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout.strip() == "True", proc.stderr


@pytest.mark.parametrize("args, want, note", [
    ((), False, False), (("--remat",), True, False),
    (("--checkpoint",), True, True), (("--remat", "--nocheckpoint"), False,
                                      True)])
def test_remat_and_its_deprecated_name(args, want, note):
  remat, stderr = _config_remat(*args)
  assert remat is want
  assert stderr.splitlines().count(NOTE) == int(note), stderr


def test_checkpoint_still_runs_and_records_remat(tmp_path, vgg16_params):
  del vgg16_params
  out = tmp_path / "r.png"
  proc = scripting.run("stylize.py", *TINY, "--checkpoint", f"--output={out}")
  assert_ok(proc)
  assert proc.stderr.splitlines().count(NOTE) == 1, proc.stderr
  params = json.loads(out.with_suffix(".json").read_text())["params"]
  assert params["remat"] is True and "checkpoint" not in params

  # A record of an older version: the same run recorded as `checkpoint`.
  old = tmp_path / "old.json"
  params = {k: v for k, v in params.items() if k != "remat"}
  params["checkpoint"] = True
  old.write_text(json.dumps({"params": params}))
  again = tmp_path / "again.png"
  proc = scripting.run("stylize.py", f"--from_json={old}", f"--output={again}")
  assert_ok(proc)
  assert "deprecated" not in proc.stderr and "ignored" not in proc.stderr, (
      proc.stderr)
  rerun = json.loads(again.with_suffix(".json").read_text())["params"]
  assert rerun["remat"] is True and "checkpoint" not in rerun
  # The command line wins over the old name in the record.
  third = tmp_path / "third.png"
  proc = scripting.run("stylize.py", f"--from_json={old}", "--noremat",
                       f"--output={third}")
  assert_ok(proc)
  assert json.loads(third.with_suffix(".json").read_text())["params"][
      "remat"] is False


def test_define_flags_by_name_then_by_group():
  # ``init`` is a group and a flag of it: once a flag was asked for by name
  # (which learns every flag's group), a later group must still be defined.
  code = ("from absl import flags; from nst_jax import cli; "
          "cli.define_flags('content'); "
          "print(sorted(cli.define_flags('init', 'remat')))")
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  # The deprecated alias comes with its flag but is not one to record.
  assert proc.stdout.split() == ["['init',", "'remat',", "'seed']"]


def test_normalize_style_reaches_the_configuration():
  """``--normalize_style`` sets ``LossWeights.normalize_style`` (off by
  default: Gatys' default results stay as they were)."""
  field = "weights.normalize_style"
  assert _config_remat(field=field)[0] is False
  assert _config_remat("--normalize_style", field=field)[0] is True


def test_coarse_weight_reaches_the_schedule():
  """``--coarse_weight`` sets ``Schedule.coarse_weight`` (the coarse view
  of the levels after the first; issue 26, item 6)."""
  field = "schedule.coarse_weight == 0.25"
  assert _config_remat("--coarse_weight=0.25", field=field)[0] is True
