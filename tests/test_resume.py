"""Runs that survive a crash (issue 14): the solver state stored beside each
snapshot (``solvers.Checkpoint``/``SolverState``, ``checkpoint.flatten``/
``unflatten``, ``io.save_arrays``) and ``nst-stylize --resume`` after a
``kill -9`` of a running transfer, bit-identical to a run never stopped."""

import functools
import json
import os
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT, tiny_vgg16_params
from nst_jax import checkpoint, io, objective, solvers, transfer, video
from nst_jax.errors import NSTError
import scripting
from scripting import assert_one_line_error, run


def _toy(x, a):
  return jnp.sum((x - a) ** 4) + jnp.sum(jnp.sin(3.0 * x) * a), {}


_A = jnp.linspace(0.1, 0.9, 12).reshape(3, 4)
_X0 = jnp.full((3, 4), 0.5)


def _stored(state):
  """Through the file format and back, as a resumed run reads it."""
  return checkpoint.flatten(state)


@pytest.mark.parametrize("method", solvers.METHODS)
def test_resumed_solver_is_bit_identical(method):
  config = solvers.SolverConfig(method=method, maxiter=13)
  saved = []
  full = solvers.minimize(_toy, _X0, config, args=(_A,),
                          checkpoint=solvers.Checkpoint(
                              4, lambda s: saved.append(_stored(s))))
  assert [int(s[".loop.i"]) for s in saved] == [4, 8, 12]
  state = checkpoint.unflatten(saved[1], solvers.state_template(
      _toy, _X0, config, (_A,)))
  resumed = solvers.minimize(_toy, _X0, config, args=(_A,), resume=state)
  plain = solvers.minimize(_toy, _X0, config, args=(_A,))
  for result in (resumed, plain):
    np.testing.assert_array_equal(result.x, full.x)
    assert float(result.value) == float(full.value)
    assert int(result.function_evaluations) == int(full.function_evaluations)
    assert int(result.iterations) == 13


def test_resume_across_restarts_replays_the_new_data():
  """A restart (re-drawn targets) at 3 and 6: a run resumed at 8 gets the
  data of round 6 and the counts of every segment."""
  config = solvers.SolverConfig(maxiter=11)
  calls = []

  def new_args(i, args):
    calls.append(i)
    return (args[0] * 0.9 + 0.01 * i,)

  saved = []
  full = solvers.minimize(_toy, _X0, config, args=(_A,),
                          restart=solvers.Restart(3, new_args),
                          checkpoint=solvers.Checkpoint(
                              4, lambda s: saved.append(_stored(s))))
  assert calls == [3, 6, 9]
  state = checkpoint.unflatten(saved[1], solvers.state_template(
      _toy, _X0, config, (_A,)))
  assert int(state.restarts_through) == 6
  calls.clear()
  resumed = solvers.minimize(_toy, _X0, config, args=(_A,),
                             restart=solvers.Restart(3, new_args),
                             resume=state)
  assert calls == [3, 6, 9]
  np.testing.assert_array_equal(resumed.x, full.x)
  assert int(resumed.function_evaluations) == int(full.function_evaluations)
  assert int(resumed.iterations) == 11


def test_stop_saves_the_state_it_stops_at():
  config = solvers.SolverConfig(maxiter=20)
  saved, asked = [], []
  def stop():
    asked.append(1)
    return len(asked) >= 3
  result = solvers.minimize(_toy, _X0, config, args=(_A,), should_stop=stop,
                            chunk_seconds=1e-9,
                            checkpoint=solvers.Checkpoint(
                                0, lambda s: saved.append(_stored(s))))
  assert solvers.status_name(result.status) == "interrupted"
  assert len(saved) == 1 and int(saved[0][".loop.i"]) == int(result.iterations)
  np.testing.assert_array_equal(saved[0][".loop.carry[0]"], result.x)


def test_unflatten_refuses_another_structure():
  config = solvers.SolverConfig(maxiter=3)
  saved = []
  solvers.minimize(_toy, _X0, config, args=(_A,),
                   checkpoint=solvers.Checkpoint(
                       1, lambda s: saved.append(_stored(s))))
  template = solvers.state_template(_toy, _X0, config, (_A,))
  smaller = solvers.state_template(_toy, _X0[:2], config, (_A[:2],))
  with pytest.raises(NSTError, match=r"\.loop\.carry\[0\] is float32\[3, 4\]"
                     r", this run needs float32\[2, 4\]"):
    checkpoint.unflatten(saved[0], smaller)
  adam = solvers.state_template(_toy, _X0, solvers.SolverConfig(
      method="adam"), (_A,))
  with pytest.raises(NSTError, match="holds '.loop.carry"):
    checkpoint.unflatten(saved[0], adam)
  missing = dict(saved[0])
  del missing[".loop.fails"]
  with pytest.raises(NSTError, match="lacks '.loop.fails'"):
    checkpoint.unflatten(missing, template)


def test_save_arrays_is_pickle_free(tmp_path):
  path = tmp_path / "s.npz"
  io.save_arrays(path, {"a": np.arange(3, dtype=np.int32)}, meta={"k": [1]})
  arrays, meta = io.load_arrays(path)
  assert meta == {"k": [1]} and arrays["a"].tolist() == [0, 1, 2]
  with pytest.raises(TypeError, match="numeric or boolean"):
    io.save_arrays(path, {"o": np.array([{}], dtype=object)})
  np.savez(tmp_path / "p.npz", o=np.array([{}], dtype=object))
  with pytest.raises(NSTError, match="not an array file"):
    io.load_arrays(tmp_path / "p.npz")
  with pytest.raises(NSTError, match="no such file"):
    io.load_arrays(tmp_path / "none.npz")


def _small_run(tmp_path):
  rng = np.random.default_rng(0)
  content = rng.uniform(size=(32, 40, 3)).astype(np.float32)
  style = rng.uniform(size=(32, 32, 3)).astype(np.float32)
  config = transfer.TransferConfig(
      spec=objective.Spec(content_layers=("relu2_1",),
                          style_layers=("relu1_1", "relu2_1")),
      solver=solvers.SolverConfig(maxiter=8))
  return tiny_vgg16_params(), content, [style], config


def test_a_failing_state_write_ends_the_run_and_keeps_the_previous(
    tmp_path, monkeypatch):
  params, content, styles, config = _small_run(tmp_path)
  path = tmp_path / "run.resume.npz"
  written = []
  real_replace = os.replace

  def replace(src, dst):
    if str(dst) == str(path) and written:   # the disk is full from now on
      raise OSError(28, "No space left on device")
    real_replace(src, dst)

  def on_checkpoint(state):
    io.save_arrays(path, state.solver, meta={"iteration": state.iteration})
    written.append(state.iteration)

  monkeypatch.setattr(os, "replace", replace)
  with pytest.raises(NSTError, match="cannot write .*run.resume.npz: No space"):
    transfer.stylize(params, content, styles, config, log_every=0,
                     checkpoint_every=3, on_checkpoint=on_checkpoint)
  assert written == [3]
  arrays, meta = io.load_arrays(path)
  assert meta["iteration"] == 3 and int(arrays[".loop.i"]) == 3
  assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
  monkeypatch.setattr(os, "replace", real_replace)
  # The state left behind continues the run to the image of one never
  # stopped.
  full = transfer.stylize(params, content, styles, config, log_every=0)
  resumed = transfer.stylize(
      params, content, styles, config, log_every=0,
      resume=transfer.RunState(arrays, [], 0.0, 3))
  np.testing.assert_array_equal(resumed.image, full.image)
  assert resumed.function_evaluations == full.function_evaluations
  with pytest.raises(NSTError, match="resumed state's .loop.carry"):
    transfer.stylize(params, content[:, :32], styles, config, log_every=0,
                     resume=transfer.RunState(arrays, [], 0.0, 3))


# --- nst-stylize --resume, as a user runs it ---------------------------------

_IMAGES = [f"--content={ROOT / 'examples/chelsea.png'}",
           f"--style={ROOT / 'examples/style_brushwork.png'}"]


def _stylize(*args, **kwargs):
  """nst-stylize with the session's compilation cache (conftest), so that
  the second and third runs do not compile again."""
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  return subprocess.Popen([sys.executable, str(ROOT / "scripts/stylize.py"),
                           *_IMAGES, *map(str, args)], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, **kwargs)


def _finish(proc, timeout=300):
  try:
    out, err = proc.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    proc.kill()
    raise
  assert proc.returncode == 0, err[-3000:]
  return out, err


def _kill_9_once_written(proc, state):
  """Kills ``proc`` with SIGKILL as soon as ``state`` exists (within 300 s
  of waiting) and checks it died of it."""
  _kill_9_when(proc, state.exists)


@pytest.mark.slow
def test_resume_after_kill_9_is_bit_identical(vgg16_params, tmp_path):
  del vgg16_params   # the commands load the real weights themselves
  flags_ = ["--size=48", "--iterations=40", "--save_every=3", "--quiet"]
  _finish(_stylize(*flags_, f"--output={tmp_path / 'full.png'}"))
  killed = tmp_path / "killed.png"
  state = tmp_path / "killed.resume.npz"
  proc = _stylize(*flags_, f"--output={killed}")
  _kill_9_once_written(proc, state)
  assert not killed.exists()   # the run did not finish
  reached = io.load_arrays(state)[1]["iteration"]
  assert 3 <= reached < 40 and reached % 3 == 0
  before = {p: p.stat().st_mtime_ns for p in tmp_path.glob("killed_*.png")}
  assert tmp_path / f"killed_{reached:04d}.png" in before
  out, _ = _finish(_stylize("--resume", tmp_path / "killed.json"))
  # It went on from the state: no earlier snapshot written again.
  assert all(p.stat().st_mtime_ns == t for p, t in before.items())
  assert (tmp_path / f"killed_{min(reached + 3, 39):04d}.png").exists()
  assert not state.exists()    # a finished run leaves no state behind
  ours = json.loads((tmp_path / "killed.json").read_text())
  theirs = json.loads((tmp_path / "full.json").read_text())
  assert ours["resumed_at_iteration"] == reached
  assert ours["loss_history"][-1]["total"] == theirs["loss_history"][-1][
      "total"]
  for key in ("iterations", "function_evaluations"):
    assert ours[key] == theirs[key]
  np.testing.assert_array_equal(io.load_image(killed),
                                io.load_image(tmp_path / "full.png"))
  # The record's flags are the run's: another value is refused in one line.
  proc = run("stylize.py", "--resume", tmp_path / "full.png", "--size=64")
  assert_one_line_error(proc, "nothing to resume", "full.resume.npz")
  io.save_arrays(tmp_path / "full.resume.npz", {}, meta={
      "format": 1, "params": {"size": 48, "content_weight": 1.0},
      "history": [], "seconds": 0.0, "iteration": 3, "inputs": {}})
  proc = run("stylize.py", "--resume", tmp_path / "full.png", "--size=64")
  assert_one_line_error(proc, "--size=64 differs from its 48")
  # An input changed since the run cannot be continued.
  io.save_arrays(tmp_path / "full.resume.npz", {}, meta={
      "format": 1, "params": {"size": 48, "iterations": 40,
                              "output": str(tmp_path / "full.png"),
                              "content": _IMAGES[0].split("=", 1)[1],
                              "style": [_IMAGES[1].split("=", 1)[1]]},
      "history": [], "seconds": 0.0, "iteration": 3,
      "inputs": {_IMAGES[0].split("=", 1)[1]: "0" * 64}})
  proc = run("stylize.py", "--resume", tmp_path / "full.json")
  assert_one_line_error(proc, "chelsea.png is not the one the recorded run "
                        "read")


def test_a_batch_is_not_resumed(tmp_path):
  proc = run("stylize.py", *_IMAGES, f"--output_dir={tmp_path}",
             f"--resume={tmp_path / 'a.json'}")
  assert_one_line_error(proc, "--resume continues or spreads one run, not a "
                        "batch")


def test_a_coarse_to_fine_run_resumes_at_its_level(tmp_path):
  """States written in each level of a pyramid (through the file format)
  continue it to the image, records and counts of a run never stopped;
  snapshots count the iterations of the whole run."""
  from nst_jax.commands import _resume
  params, content, styles, config = _small_run(tmp_path)
  scales, iterations = [24, 40], [5, 4]
  saved, snaps = [], []

  def on_checkpoint(state):
    path = tmp_path / f"s{len(saved)}.resume.npz"
    _resume.save(path, state, params={}, inputs={})
    saved.append(path)
  full = transfer.stylize_multiscale(
      params, content, styles, scales, config, scale_iterations=iterations,
      log_every=2, checkpoint_every=2, on_checkpoint=on_checkpoint,
      snapshot_every=2, on_snapshot=lambda i, x: snaps.append(i))
  assert snaps == [2, 4, 7, 9]
  states = [_resume.load(p)[0] for p in saved]
  # (none at a level's last iteration: the level ends there)
  assert [(s.level, s.iteration) for s in states] == [(0, 2), (0, 4), (1, 2)]
  assert states[0].before == transfer.Levels([], 0, 0, 0.0)
  assert states[2].before.iterations == 5
  for state in (states[1], states[2]):
    resumed = transfer.stylize_multiscale(
        params, content, styles, scales, config,
        scale_iterations=iterations, log_every=2, resume=state)
    np.testing.assert_array_equal(resumed.image, full.image)
    assert resumed.iterations == full.iterations == 9
    assert resumed.function_evaluations == full.function_evaluations
    assert [(r["size"], r["iteration"], r["total"])
            for r in resumed.loss_history] == [
                (r["size"], r["iteration"], r["total"])
                for r in full.loss_history]
  with pytest.raises(NSTError, match="at level 1, but the run has 1 scales"):
    transfer.stylize_multiscale(params, content, styles, [40], config,
                                resume=states[2])


@pytest.mark.slow
def test_a_killed_coarse_to_fine_command_resumes_at_its_level(vgg16_params,
                                                             tmp_path):
  """nst-stylize --resume of a --scales run killed in its second level,
  whose --scale_iterations exceed --iterations: the run goes on (it was
  refused as "below the iterations done"), and the record counts the
  iteration it resumed at over the whole run, as its "iterations"."""
  del vgg16_params   # the command loads the real weights itself
  out = tmp_path / "c2f.png"
  state = tmp_path / "c2f.resume.npz"
  proc = _stylize("--scales=24,48", "--scale_iterations=2,40",
                  "--iterations=3", "--save_every=5", "--quiet",
                  f"--output={out}")
  # No state in level 0 (2 iterations): the first is level 1's 5th.
  _kill_9_once_written(proc, state)
  meta = io.load_arrays(state)[1]
  assert meta["level"] == 1 and meta["before"]["iterations"] == 2
  reached = meta["iteration"]
  assert 5 <= reached < 40 and reached % 5 == 0
  _finish(_stylize("--resume", tmp_path / "c2f.json"))
  record = json.loads((tmp_path / "c2f.json").read_text())
  assert record["iterations"] == 42 and record["stop_reason"] != "interrupted"
  assert record["resumed_at_iteration"] == 2 + reached
  assert [r["size"] for r in record["loss_history"]][::len(
      record["loss_history"]) - 1] == [24, 48]
  assert io.load_image(out).shape[:2] == (32, 48)
  assert not state.exists()


@pytest.mark.parametrize("size, iterations, base, scales, counts", [
    (512, 500, 256, [256, 512], [500, 100]),
    (1024, 300, 256, [256, 512, 1024], [300, 60, 60]),
    (1000, 10, 200, [250, 500, 1000], [10, 2, 2]),
    (511, 500, 256, [511], [500]),
    (2048, 500, 0, [2048], [500]),
    (64, 1, 16, [16, 32, 64], [1, 1, 1]),
    (64, 0, 16, [64], [0])])
def test_pyramid(size, iterations, base, scales, counts):
  assert transfer.pyramid(size, iterations, base) == (scales, counts)


@pytest.mark.slow
def test_a_state_that_cannot_be_written_ends_the_command_in_one_line(
    vgg16_params, tmp_path):
  del vgg16_params
  (tmp_path / "out.resume.npz").mkdir()   # where the state must go
  proc = _stylize("--size=48", "--iterations=40", "--save_every=3",
                  "--quiet", f"--output={tmp_path / 'out.png'}")
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 1, err[-3000:]
  assert "Traceback" not in err, err[-3000:]
  lines = [l for l in err.splitlines() if l.startswith("error: ")]
  assert len(lines) == 1 and "out.resume.npz: it is a directory" in lines[0]
  assert io.load_image(tmp_path / "out_0003.png").shape[1] == 48  # intact
  assert not (tmp_path / "out.png").exists()


def test_an_incomplete_coarse_to_fine_state_is_refused_in_one_line(tmp_path):
  from nst_jax.commands import _resume
  path = tmp_path / "x.resume.npz"
  io.save_arrays(path, {}, meta={"format": 1, "params": {}, "seconds": 0.0,
                                 "iteration": 3, "level": 1,
                                 "before": {"history": []}})
  with pytest.raises(NSTError, match="not a complete resumable state.*"
                     "iterations"):
    _resume.load(str(path))


# --- kill -9 of the other drivers: video and folders ----------------------------


def _popen(script, *args, xla_defaults=False):
  """A command as a user starts it, with the session's compilation cache;
  ``xla_defaults``: at XLA's defaults (``scripting.child_env``); runs
  compared bit for bit share the setting."""
  return subprocess.Popen([sys.executable, str(ROOT / "scripts" / script),
                           *map(str, args)], cwd=ROOT,
                          env=scripting.child_env(xla_defaults=xla_defaults),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


# The video's AlexNet commands: at XLA's defaults, where its strided
# convolutions run several times faster (scripting.py; the folder's, which
# compile a program per photo and run it briefly, gain nothing so).
_at_defaults = functools.partial(_popen, xla_defaults=True)


def _kill_9_when(proc, ready, timeout=300):
  """Kills ``proc`` with SIGKILL as soon as ``ready()`` holds."""
  try:
    deadline = time.monotonic() + timeout
    while not ready():
      assert proc.poll() is None, proc.communicate()[1][-3000:]
      assert time.monotonic() < deadline, "never ready"
      time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == -signal.SIGKILL


def frames_folder(tmp_path, frames):
  """``frames`` written as ``tmp_path/clip/000.png …``: a video's input."""
  clip = tmp_path / "clip"
  clip.mkdir()
  for i, f in enumerate(frames):
    io.save_image(clip / f"{i:03d}.png", f)
  return clip


def _state_inside_a_frame(path, frame):
  """Whether the video state at ``path`` is inside frame >= ``frame`` with
  the frame's solver state (a kill lands mid-frame)."""
  try:
    arrays, meta = io.load_arrays(path)
  except (OSError, ValueError, NSTError):
    return False
  return bool(arrays) and meta["stage"]["frame"] >= frame


@pytest.mark.slow
def test_a_video_killed_inside_a_frame_resumes_bit_identically(tmp_path):
  """nst-stylize-video with --save_every=1, killed with SIGKILL inside its
  second frame, then --resume: the frames equal an uninterrupted run's."""
  frames, _ = video.pan_zoom_clip(
      io.load_image(ROOT / "examples/chelsea.png"), frames=3, shape=(32, 48))
  clip = frames_folder(tmp_path, frames)
  common = (f"--input={clip}", "--network=alexnet", "--size=48",
            "--iterations=6", "--save_every=1", "--quiet",
            f"--style={ROOT / 'examples/style_brushwork.png'}")
  full = _at_defaults("stylize_video.py", *common,
                      f"--output={tmp_path}/full.mp4")
  _finish(full)
  proc = _at_defaults("stylize_video.py", *common, f"--output={tmp_path}/k.mp4")
  state = tmp_path / "k.resume.npz"
  _kill_9_when(proc, lambda: _state_inside_a_frame(state, 1))
  assert not (tmp_path / "k.mp4").exists()
  at = io.load_arrays(state)[1]
  assert at["command"] == "nst-stylize-video" and at["iteration"] >= 1
  # Another flag value is refused in one line, naming it.
  proc = run("stylize_video.py", f"--resume={tmp_path}/k.mp4", "--size=64")
  assert_one_line_error(proc, "--size=64 differs from its 48")
  _finish(_at_defaults("stylize_video.py", f"--resume={tmp_path}/k.mp4"))
  assert not state.exists()
  record = json.loads((tmp_path / "k.json").read_text())
  assert record["resumed_at_frame"] == at["stage"]["frame"]
  for i in range(3):
    np.testing.assert_array_equal(
        io.load_image(tmp_path / f"k_frames/frame_{i:05d}.png"),
        io.load_image(tmp_path / f"full_frames/frame_{i:05d}.png"))
  theirs = json.loads((tmp_path / "full.json").read_text())
  assert [r["function_evaluations"] for r in record["per_frame"]] == [
      r["function_evaluations"] for r in theirs["per_frame"]]
  # A changed input cannot be continued.
  io.save_image(clip / "000.png", frames[1])
  _resume_state = dict(at, stage={"frame": 1})
  io.save_arrays(state, {}, meta=_resume_state)
  proc = run("stylize_video.py", f"--resume={tmp_path}/k.mp4")
  assert_one_line_error(proc, "is not the one the recorded run read")


@pytest.mark.slow
def test_a_folder_killed_after_its_first_result_resumes_bit_identically(
    tmp_path):
  """nst-stylize --output_dir killed with SIGKILL once its first result is
  written: run again, it makes the rest, each equal to an uninterrupted
  batch's (the finished results are the batch's stage)."""
  photos = tmp_path / "photos"
  photos.mkdir()
  image = io.load_image(ROOT / "examples/chelsea.png")
  io.save_image(photos / "a.png", io.resize_to(image, (36, 48)))
  io.save_image(photos / "b.png", io.resize_to(image, (48, 36)))
  common = (f"--content={photos}", "--network=alexnet", "--size=48",
            "--iterations=4", "--quiet",
            f"--style={ROOT / 'examples/style_brushwork.png'}")
  _finish(_popen("stylize.py", *common, f"--output_dir={tmp_path / 'full'}"))
  out = tmp_path / "out"
  proc = _popen("stylize.py", *common, f"--output_dir={out}")
  _kill_9_when(proc, lambda: (out / "a_style_brushwork.json").exists())
  assert not (out / "batch.json").exists()
  _finish(_popen("stylize.py", *common, f"--output_dir={out}"))
  summary = json.loads((out / "batch.json").read_text())
  assert (summary["done"], summary["skipped"]) == (1, 1), summary
  for name in ("a", "b"):
    np.testing.assert_array_equal(
        io.load_image(out / f"{name}_style_brushwork.png"),
        io.load_image(tmp_path / "full" / f"{name}_style_brushwork.png"))
