"""nst-serve survives a crash (issue 23): the server killed with SIGKILL in
the middle of a job, started again on the same --data_dir, resumes the job
from its last checkpoint (nst-stylize's one resume state) and finishes
with the picture of a run never interrupted: the same job, queued at the
kill, which runs after it."""

import json
import os

import numpy as np

from nst_jax import io
from serving import TINY, Server, picture


def test_kill_9_mid_job_then_restart_resumes_it(tmp_path, vgg16_params):
  del vgg16_params   # the server loads the real weights itself
  content = picture(tmp_path / "photo.png", (32, 40), 0)
  style = picture(tmp_path / "painting.png", (32, 32), 1)
  data = tmp_path / "data"
  params = dict(TINY, iterations=200)
  flags_ = ("--checkpoint_every=10", "--preview_seconds=0.2")
  server = Server(data, *flags_)
  try:
    killed = server.post_job(content, [style], params)[1]["id"]
    waiting = server.post_job(content, [style], params)[1]["id"]
    state = data / "jobs" / killed / "result.resume.npz"
    server.wait(killed, states=(), until=lambda j: state.exists())
  finally:
    server.kill()
  reached = io.load_arrays(state)[1]["iteration"]
  assert 10 <= reached < 200 and reached % 10 == 0
  assert not (data / "jobs" / killed / "result.png").exists()
  assert json.loads((data / "jobs" / killed / "job.json").read_text())[
      "state"] == "running"

  server = Server(data, *flags_)
  try:
    assert "2 jobs to run" in server.log()
    first = server.wait(killed)
    # The uninterrupted reference: the same job, queued at the kill.
    second = server.wait(waiting)
  finally:
    assert server.stop() in (0, -15), server.log()[-3000:]
  assert "Traceback" not in server.log(), server.log()[-5000:]
  assert first["state"] == "done" and first["attempts"] == 2, first
  assert second["state"] == "done" and second["attempts"] == 1, second
  assert not state.exists()
  records = [json.loads((data / "jobs" / j / "record.json").read_text())
             for j in (killed, waiting)]
  assert records[0]["resumed_at_iteration"] == reached
  assert "resumed_at_iteration" not in records[1]
  for key in ("iterations", "function_evaluations"):
    assert records[0][key] == records[1][key]
  assert records[0]["loss_history"][-1]["total"] == records[1][
      "loss_history"][-1]["total"]
  images = [io.load_image(os.path.join(data, "jobs", j, "result.png"))
            for j in (killed, waiting)]
  np.testing.assert_array_equal(images[0], images[1])
