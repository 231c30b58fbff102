"""The pieces a person sees and touches: the progress bar, Ctrl-C handling,
defaults per device and re-running a recorded run (nst_jax.cli)."""

import io as pyio
import json
import os
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


def test_progress_bar_on_a_terminal_redraws_one_line():
  out = FakeTTY()
  bar = cli.ProgressBar(100, stream=out, redraw_seconds=0.0, width=200)
  bar.update(0, now=0.0)
  for i in range(1, 101):
    bar.update(i, RECORD, value=1.25e5, now=1.0 + 2.0 * i)
  bar.close()
  text = out.getvalue()
  assert text.endswith("\n") and text.count("\n") == 1  # one live line
  frames = text.strip("\n").split("\r\x1b[2K")[1:]
  assert len(frames) == 101
  assert "compiling" in frames[0]
  # Rate from the first update after compilation: 2 s per iteration.
  assert "50/100" in frames[50] and " 50%" in frames[50]
  assert "2.00 s/it" in frames[50] and "ETA 1:40" in frames[50]
  assert "total 1.25e+05" in frames[50]    # the solver's current value
  assert "content 5e+04" in frames[50] and "tv 12" in frames[50]
  assert "[##########..........]" in frames[50]


def test_progress_bar_redraws_at_most_every_redraw_seconds():
  out = FakeTTY()
  bar = cli.ProgressBar(1000, stream=out, redraw_seconds=1.0, width=120)
  for i in range(1, 1001):
    bar.update(i, now=i * 0.01)    # 10 s in all
  assert 9 <= out.getvalue().count("\r") <= 12
  assert "1000/1000" in out.getvalue()  # the last frame is always drawn


def test_progress_bar_in_a_log_writes_tenths_not_iterations():
  out = pyio.StringIO()
  bar = cli.ProgressBar(500, stream=out)
  for i in range(501):
    bar.update(i, RECORD, now=float(i) * 0.01)
  bar.close()
  lines = out.getvalue().splitlines()
  assert len(lines) == 11       # 0 %, 10 %, …, 100 %
  assert "\r" not in out.getvalue()
  assert lines[-1].startswith("[####################] 500/500 100%")
  assert "it/s" in lines[-1]


def test_progress_bar_in_a_log_writes_at_least_every_line_seconds():
  out = pyio.StringIO()
  bar = cli.ProgressBar(10_000, stream=out, line_seconds=30.0)
  for i in range(1, 200):
    bar.update(i, now=i * 1.0)   # 1 s per iteration, < 2 % done
  assert len(out.getvalue().splitlines()) == 7  # at 1 s, then every 30 s


def test_quiet_progress_bar_writes_nothing():
  for out in (FakeTTY(), pyio.StringIO()):
    bar = cli.ProgressBar(10, stream=out, quiet=True)
    for i in range(11):
      bar.update(i, RECORD)
    bar.close()
    assert out.getvalue() == ""


def test_duration_format():
  assert cli._duration(0) == "0:00"
  assert cli._duration(75) == "1:15"
  assert cli._duration(3725) == "1:02:05"


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
