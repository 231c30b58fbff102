"""Really distributed (issue 14.3): two local processes join with
``jax.distributed.initialize`` on the loopback address (CPU collectives:
gloo, JAX's default) and run ``nst-grid``'s multi-host path — the cells
sharded over one device per process, ``sharded._fetch`` gathering them,
chunk sizes and lengths decided by process 0 and a Ctrl-C on either process
stopping both at the same iteration. Every child is killed if the test
fails."""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT
from nst_jax import io

_FLAGS = [f"--content={ROOT / 'examples/chelsea.png'}",
          f"--style={ROOT / 'examples/style_brushwork.png'}", "--size=32",
          "--style_weight=1e6,1e7", "--seed=0,1", "--init=noise",
          "--chunk_size=2", "--log_every=2",
          "--style_layers=relu1_1,relu2_1", "--content_layers=relu2_1"]
_TIMEOUT = 240


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class _Children:
  """Started command processes (``nst-grid`` by default), each writing to
  its own log file, all killed on leaving (the test's failure must not
  leave one waiting for its peer)."""

  def __init__(self, tmp_path: pathlib.Path):
    self.tmp, self.procs = tmp_path, []

  def start(self, name: str, *args, command=None) -> subprocess.Popen:
    """Starts ``command`` (default: ``nst-grid`` with ``_FLAGS``) with
    ``args``, its output to a log file: a pipe nobody reads while the test
    waits on another process could fill and stop this one, and with it its
    peer."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    log = open(self.tmp / f"{name}.log", "w+")  # pylint: disable=consider-using-with
    if command is None:
      command = [sys.executable, str(ROOT / "scripts/style_grid.py"), *_FLAGS]
    proc = subprocess.Popen(
        [*command, *map(str, args)], cwd=ROOT, env=env, stdout=log,
        stderr=subprocess.STDOUT, text=True)
    proc.log = log
    self.procs.append(proc)
    return proc

  def wait(self, proc, status=0) -> str:
    try:
      proc.wait(timeout=_TIMEOUT)
    except subprocess.TimeoutExpired:
      # Every child's last lines: where a two-process run stopped shows in
      # its peer's log as much as in its own.
      pytest.fail("timed out:\n" + "\n".join(
          f"--- {pathlib.Path(p.log.name).name}:\n{self.text(p)[-1500:]}"
          for p in self.procs))
    assert proc.returncode == status, self.text(proc)[-3000:]
    assert "Traceback" not in self.text(proc), self.text(proc)[-3000:]
    return self.text(proc)

  @staticmethod
  def text(proc) -> str:
    # Through a fresh open: the child writes through a copy of ``proc.log``'s
    # descriptor, which shares its offset, so seeking that one back to 0
    # while the child runs would make the child's next line overwrite the
    # log's start (and a line polled for could be missed).
    return pathlib.Path(proc.log.name).read_text(errors="replace")

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    for proc in self.procs:
      if proc.poll() is None:
        proc.kill()
        proc.wait()
      proc.log.close()
    return False


def _pair(children, out, *extra, own=((), ())):
  """Processes 0 and 1 of one run; ``own[k]``: flags of process k only."""
  address = f"--coordinator_address=127.0.0.1:{_free_port()}"
  return [children.start(f"process{k}", *extra, f"--output_dir={out}",
                         address, "--num_processes=2", f"--process_id={k}",
                         *own[k])
          for k in (0, 1)]


def _manifest(out: pathlib.Path) -> dict:
  return json.loads((out / "manifest.json").read_text())


@pytest.mark.slow
def test_two_processes_run_the_grid_of_one(vgg16_params, tmp_path):
  del vgg16_params   # the commands load the real weights themselves
  with _Children(tmp_path) as children:
    # Process 1 would take all 4 cells at once: process 0 decides (2).
    pair = _pair(children, tmp_path / "two", "--iterations=4",
                 own=((), ("--chunk_size=4",)))
    one = children.start("single", "--iterations=4",
                         f"--output_dir={tmp_path / 'one'}")
    for proc in [*pair, one]:
      children.wait(proc)
  two, single = _manifest(tmp_path / "two"), _manifest(tmp_path / "one")
  assert (two["devices"], single["devices"]) == (2, 1)
  assert two["chunks"] == single["chunks"] == 2   # 4 cells, 2 per chunk
  assert len(two["cells"]) == 4
  for a, b in zip(two["cells"], single["cells"]):
    assert a["stop_reason"] == b["stop_reason"] == "max_iterations"
    assert a["function_evaluations"] == b["function_evaluations"]
    np.testing.assert_allclose(a["final"]["total"], b["final"]["total"],
                               rtol=1e-4)
    image_a = io.load_image(tmp_path / "two" / a["file"])
    image_b = io.load_image(tmp_path / "one" / b["file"])
    assert np.abs(image_a - image_b).max() <= 1.5 / 255   # 8-bit rounding
  assert not (tmp_path / "two" / "cells" / "cell_004.png").exists()


@pytest.mark.slow
def test_ctrl_c_on_one_process_stops_both(vgg16_params, tmp_path):
  del vgg16_params
  with _Children(tmp_path) as children:
    first, second = _pair(children, tmp_path / "two", "--iterations=400")
    deadline = time.monotonic() + _TIMEOUT
    while "iteration     2  loss" not in children.text(second):
      assert second.poll() is None, children.text(second)[-3000:]
      assert time.monotonic() < deadline, "process 1 did not start"
      time.sleep(0.02)
    second.send_signal(signal.SIGINT)   # in the first chunk's loop
    children.wait(second, status=130)
    children.wait(first, status=130)
  cells = _manifest(tmp_path / "two")["cells"]
  assert all(c["stop_reason"] == "interrupted" for c in cells)
  ran = [c["iterations"] for c in cells]
  assert 0 < ran[0] == ran[1] < 400 and ran[2:] == [0, 0], ran


def test_a_process_without_its_index_is_refused_in_one_line():
  from scripting import assert_one_line_error, run  # pylint: disable=g-import-not-at-top
  proc = run("style_grid.py", *_FLAGS, "--coordinator_address=127.0.0.1:1",
             "--num_processes=2")
  assert_one_line_error(proc, "--coordinator_address needs --num_processes "
                        "and --process_id")
  proc = run("style_grid.py", *_FLAGS, "--coordinator_address=127.0.0.1:1",
             "--num_processes=2", "--process_id=2")
  assert_one_line_error(proc, "--process_id=2 must be in 0..1")


@pytest.mark.slow
def test_one_image_split_over_two_processes(vgg16_params, tmp_path):
  """``nst-stylize --image_devices=all`` over two processes: the rows of one
  image over the devices of both (XLA exchanging halos and reducing the
  statistics across them) give the single-process transfer; process 0
  writes the outputs, snapshots and resumable state."""
  del vgg16_params
  address = f"--coordinator_address=127.0.0.1:{_free_port()}"
  common = [sys.executable, str(ROOT / "scripts/stylize.py"), *_FLAGS[:2],
            "--size=48", "--iterations=5", "--save_every=2", "--log_every=2",
            "--tile_size=0", "--content_layers=relu2_1",
            "--style_layers=relu1_1,relu2_1"]
  with _Children(tmp_path) as children:
    procs = [children.start(f"two_{k}", f"--output={tmp_path / 'two.png'}",
                            "--image_devices=all", address,
                            "--num_processes=2", f"--process_id={k}",
                            command=common) for k in (0, 1)]
    procs.append(children.start("one", f"--output={tmp_path / 'one.png'}",
                                command=common))
    outs = [children.wait(proc) for proc in procs]
  two = json.loads((tmp_path / "two.json").read_text())
  one = json.loads((tmp_path / "one.json").read_text())
  assert two["params"]["image_devices"] == "all"
  assert "rows over 2 devices" in outs[0] and "rows over" not in outs[2]
  assert two["function_evaluations"] == one["function_evaluations"]
  np.testing.assert_allclose(two["loss_history"][-1]["total"],
                             one["loss_history"][-1]["total"], rtol=1e-4)
  np.testing.assert_allclose(io.load_image(tmp_path / "two.png"),
                             io.load_image(tmp_path / "one.png"),
                             atol=1.5 / 255)
  for name in ("two_0002.png", "two_0004.png"):
    assert (tmp_path / name).exists()
  assert not (tmp_path / "two.resume.npz").exists()   # finished: removed
