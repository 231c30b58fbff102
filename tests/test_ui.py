"""The pieces a person sees and touches: the progress bar, Ctrl-C handling,
defaults per device and re-running a recorded run (nst_jax.cli)."""

import io as pyio
import json
import os
import re
import signal

import numpy as np
import pytest
from absl import flags

from nst_jax import cli
from nst_jax import io
from nst_jax.errors import NSTError

RECORD = {"iteration": 40, "total": 1.5e5, "content": 5e4, "style": 1e5,
          "tv": 12.0}


class FakeTTY(pyio.StringIO):
  def isatty(self):
    return True


def _bar_cells(frame):
  """The cells between tqdm's ``|`` … ``|`` (ASCII bar: ``#`` filled)."""
  return frame.split("|")[1]


def test_progress_bar_on_a_terminal_redraws_one_line():
  out = FakeTTY()
  bar = cli.ProgressBar(100, stream=out, redraw_seconds=0.0, width=200)
  bar.update(0, now=0.0)
  for i in range(1, 101):
    bar.update(i, RECORD, value=1.25e5, now=1.0 + 2.0 * i)
  bar.close()
  text = out.getvalue()
  assert text.endswith("\n") and text.count("\n") == 1  # one live line
  frames = text.rstrip("\n").split("\r")[1:]
  assert len(frames) == 102     # 101 updates; tqdm redraws the last on close
  assert frames[-1] == frames[-2]
  assert all(len(f) <= 200 for f in frames)   # fits the width
  assert "compiling" in frames[0] and "?it/s" in frames[0]
  # Rate from the first update after compilation: 2 s per iteration.
  assert "50/100" in frames[50] and " 50%" in frames[50]
  assert "2.00s/it" in frames[50] and "<01:40" in frames[50]  # the ETA
  assert "total=1.25e+05" in frames[50]    # the solver's current value
  assert "content=5e+04" in frames[50] and "tv=12" in frames[50]
  assert "compiling" not in frames[50]
  cells = _bar_cells(frames[50])
  assert abs(cells.count("#") - len(cells) / 2) <= 1       # half full
  assert set(_bar_cells(frames[-1])) == {"#"}              # full at the end


def test_progress_bar_redraws_at_most_every_redraw_seconds():
  out = FakeTTY()
  bar = cli.ProgressBar(1000, stream=out, redraw_seconds=1.0, width=120)
  for i in range(1, 1001):
    bar.update(i, now=i * 0.01)    # 10 s in all
  assert 9 <= out.getvalue().count("\r") <= 12
  assert "1000/1000" in out.getvalue()  # the last frame is always drawn
  bar.close()


def test_progress_bar_in_a_log_writes_tenths_not_iterations():
  out = pyio.StringIO()
  bar = cli.ProgressBar(500, stream=out, label="256 px")
  for i in range(501):
    bar.update(i, RECORD, now=float(i) * 0.01)
  bar.close()
  lines = out.getvalue().splitlines()
  assert len(lines) == 11       # 0 %, 10 %, …, 100 %
  assert "\r" not in out.getvalue()
  assert lines[0].startswith("256 px:   0%|") and "compiling" in lines[0]
  assert lines[5].startswith("256 px:  50%|#####     | 250/500")
  assert lines[-1].startswith("256 px: 100%|##########| 500/500")
  assert "100.00it/s" in lines[-1] and "<00:00" in lines[-1]
  assert all(line.isascii() for line in lines[1:])   # no block glyphs


def test_progress_bar_in_a_log_writes_at_least_every_line_seconds():
  out = pyio.StringIO()
  bar = cli.ProgressBar(10_000, stream=out, line_seconds=30.0)
  for i in range(1, 200):
    bar.update(i, now=i * 1.0)   # 1 s per iteration, < 2 % done
  assert len(out.getvalue().splitlines()) == 7  # at 1 s, then every 30 s


def test_progress_bar_rate_and_elapsed_leave_out_compilation():
  bar = cli.ProgressBar(100, stream=pyio.StringIO())
  bar.update(0, now=0.0)
  bar.update(10, now=100.0)      # the first chunk, after 100 s compiling
  line = bar.line(20, now=101.0)
  assert "10.00it/s" in line     # not 20 it / 101 s
  assert "[01:41<00:08" in line  # elapsed since the first update; ETA 8 s


def test_quiet_progress_bar_writes_nothing(capsys):
  for out in (FakeTTY(), pyio.StringIO(), None):
    bar = cli.ProgressBar(10, stream=out, quiet=True, is_tty=out is None)
    for i in range(11):
      bar.update(i, RECORD)
    bar.close()
    if out is not None:
      assert out.getvalue() == ""
  assert capsys.readouterr().err == ""


def test_progress_bar_is_tqdm_auto_by_default(capsys, monkeypatch):
  """Without a stream the bar is ``tqdm.auto``'s (a live widget in a
  notebook, whose stderr is no terminal) on stderr."""
  import tqdm.auto
  monkeypatch.setattr(cli._progress, "_in_notebook", lambda: True)
  bar = cli.ProgressBar(4, is_tty=False)
  for i in range(5):
    bar.update(i, RECORD, now=float(i))
  assert isinstance(bar._bar, tqdm.auto.tqdm)
  bar.close()
  err = capsys.readouterr().err
  assert "4/4" in err and err.endswith("\n")


def test_first_interrupt_asks_to_stop_second_aborts():
  message = pyio.StringIO()
  before = signal.getsignal(signal.SIGINT)
  with cli.StopOnInterrupt(stream=message) as stopper:
    assert not stopper.stop_requested()
    os.kill(os.getpid(), signal.SIGINT)
    assert stopper.stop_requested()
    assert "Ctrl-C again" in message.getvalue()
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
  assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize("platform, want", [("cpu", (256, 300)),
                                            ("gpu", (512, 500)),
                                            ("tpu", (512, 500)),
                                            ("rocm", (512, 500))])
def test_device_defaults(platform, want):
  assert cli.device_defaults(platform) == want


class _Device:
  def __init__(self, platform, kind):
    self.platform, self.device_kind = platform, kind


@pytest.mark.parametrize("devices, want", [
    ([_Device("cpu", "cpu")], r"cpu: 1 device \(x86_64, 2 cores\)"),
    ([_Device("cpu", "cpu")] * 4, r"cpu: 4 devices \(x86_64, 2 cores\)"),
    ([_Device("gpu", "NVIDIA H100 80GB HBM3")],
     r"gpu: 1 device \(NVIDIA H100 80GB HBM3\)"),
    ([_Device("gpu", "NVIDIA H100 80GB HBM3")] * 8,
     r"gpu: 8 devices \(NVIDIA H100 80GB HBM3\)"),
    ([_Device("tpu", "TPU v4")] * 4, r"tpu: 4 devices \(TPU v4\)"),
])
def test_device_description_says_what_and_how_many(monkeypatch, devices,
                                                   want):
  import platform  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(cli.jax, "devices", lambda: devices)
  monkeypatch.setattr(platform, "machine", lambda: "x86_64")
  monkeypatch.setattr(cli.os, "cpu_count", lambda: 2)
  assert re.fullmatch(want, cli.device_description()), (
      cli.device_description())


# --- recorded parameters ---------------------------------------------------------


def test_load_run_params_from_json_and_png(tmp_path):
  params = {"size": 64, "style": ["a.png", "b.png"], "original_colors": True}
  io.save_json(tmp_path / "run.json", {"params": params, "iterations": 3})
  assert cli.load_run_params(str(tmp_path / "run.json")) == params
  io.save_image(tmp_path / "run.png", np.zeros((4, 4, 3), np.float32),
                metadata={"nst_jax": cli.params_json(params)})
  assert cli.load_run_params(str(tmp_path / "run.png")) == params


@pytest.mark.parametrize("content, fragment", [
    (None, "cannot read"),
    (b"{not json", "not a JSON run record"),
    (b'{"iterations": 3}', "no parameters"),
    (b'[1, 2]', "not a JSON run record"),
])
def test_load_run_params_errors(tmp_path, content, fragment):
  path = tmp_path / "run.json"
  if content is not None:
    path.write_bytes(content)
  with pytest.raises(NSTError, match=fragment):
    cli.load_run_params(str(path))


def test_load_run_params_from_a_foreign_png(tmp_path):
  io.save_image(tmp_path / "x.png", np.zeros((4, 4, 3), np.float32))
  with pytest.raises(NSTError, match="no nst_jax parameters"):
    cli.load_run_params(str(tmp_path / "x.png"))


@pytest.fixture
def fresh_flags():
  """A private FlagValues standing in for absl's global FLAGS."""
  values = flags.FlagValues()
  flags.DEFINE_integer("size", None, "", flag_values=values)
  flags.DEFINE_float("style_weight", 1e7, "", flag_values=values)
  flags.DEFINE_list("style", None, "", flag_values=values)
  flags.DEFINE_bool("original_colors", False, "", flag_values=values)
  flags.DEFINE_enum("init", "content", ["content", "noise"], "",
                    flag_values=values)
  flags.DEFINE_string("output", "out.png", "", flag_values=values)
  values(["prog", "--size=128"])
  saved = cli.flags.FLAGS
  cli.flags.FLAGS = values
  yield values
  cli.flags.FLAGS = saved


def test_apply_params_fills_what_the_command_line_left(fresh_flags):
  unknown = cli.apply_params(
      {"size": 64, "style_weight": 1e5, "style": ["a.png", "b.png"],
       "original_colors": True, "init": "noise", "output": "x.png",
       "from_the_future": 1}, skip=("output",))
  assert unknown == ["from_the_future"]
  assert fresh_flags.size == 128           # given on the command line: kept
  assert fresh_flags.style_weight == 1e5
  assert fresh_flags.style == ["a.png", "b.png"]
  assert fresh_flags.original_colors is True
  assert fresh_flags.init == "noise"
  assert fresh_flags.output == "out.png"   # skipped


def test_apply_params_rejects_invalid_values(fresh_flags):
  with pytest.raises(NSTError, match="--init"):
    cli.apply_params({"init": "chaos"})
  del fresh_flags


def test_params_json_round_trip():
  values = {"style": ["a.png"], "size": 64, "style_weight": 1e7}
  assert json.loads(cli.params_json(values)) == values


# --- readable solver status ------------------------------------------------------


def test_solver_status_enum_keeps_the_codes_and_names():
  from nst_jax import solvers
  S = solvers.Status
  assert [int(s) for s in S] == [0, 1, 2, 3, 4]
  assert S.RUNNING is S.MAX_ITERATIONS          # 0: still running / used all
  assert (solvers.RUNNING, solvers.CONVERGED, solvers.NON_FINITE,
          solvers.LINESEARCH_FAILED, solvers.INTERRUPTED) == (0, 1, 2, 3, 4)
  assert solvers.STATUS_NAMES == {
      0: "max_iterations", 1: "converged", 2: "non_finite",
      3: "linesearch_failed", 4: "interrupted"}
  assert str(S.CONVERGED) == S.CONVERGED.label == "converged"
  assert f"{S.NON_FINITE}" == "non_finite"
  assert solvers.status_name(3) == "linesearch_failed"
  assert solvers.status_name(np.int32(4)) == "interrupted"
  with pytest.raises(NSTError, match="unknown solver status 7"):
    solvers.status_name(7)


def test_solver_status_arrays_are_int32():
  import jax.numpy as jnp
  from nst_jax import solvers
  quadratic = lambda x: (jnp.sum((x - 1.0) ** 2), None)
  for method in solvers.METHODS:
    result = solvers.minimize(quadratic, jnp.zeros(3),
                              solvers.SolverConfig(method=method, maxiter=2))
    assert result.status.dtype == jnp.int32 and result.status.shape == ()
    assert solvers.status_name(result.status) in ("max_iterations",
                                                  "converged")
  batched = solvers.minimize_batched(
      quadratic, jnp.zeros((2, 3)), solvers.SolverConfig(maxiter=2))
  assert batched.status.dtype == jnp.int32 and batched.status.shape == (2,)


def test_plain_log_lines():
  import logging  # pylint: disable=g-import-not-at-top
  plain = cli.PlainLogLines(logging.Formatter("E %(message)s"))
  record = lambda level: logging.LogRecord("x", level, "f.py", 1,
                                           "mask regions: %s", ("#ff0000",),
                                           None)
  assert plain.format(record(logging.INFO)) == "mask regions: #ff0000"
  assert plain.format(record(logging.WARNING)) == (
      "warning: mask regions: #ff0000")
  assert plain.format(record(logging.ERROR)) == "E mask regions: #ff0000"
