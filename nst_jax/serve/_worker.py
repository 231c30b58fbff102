"""The one worker of ``nst-serve``: runs the queued jobs one at a time, in
order, through the library's run loop (``transfer.stylize`` or
``transfer.stylize_multiscale``, as ``nst-stylize`` calls them, so a job
paints the picture ``nst-stylize`` paints with the same flags).

While a job runs, its hooks keep the job's state current: ``on_progress``
(every ``preview_seconds``) writes the iteration, loss, ETA, a loss-curve
point and ``preview.png`` (the current iterate); ``should_stop`` asks for
a cancel or a server shutdown; ``on_checkpoint`` writes nst-stylize's one
resume state (``commands._resume``) every ``checkpoint_every`` iterations
and at a stop. A job found ``running`` after a crash continues from that
state (``resume=``) to the image an uninterrupted run reaches. A cancelled
job keeps the image it reached (``result.png`` and its record, stop
reason ``interrupted``); a shutdown leaves the job queued with its state.
"""

import logging
import os
import threading
import time
from typing import Any, Dict

import numpy as np

from nst_jax import cli
from nst_jax import config as config_module
from nst_jax import io
from nst_jax import transfer
from nst_jax import vgg
from nst_jax import weights
from nst_jax.commands import _resume
from nst_jax.errors import NSTError
from nst_jax.serve import _jobs
from nst_jax.serve import _params

log = logging.getLogger("nst_jax.serve")


def preview_image(x, content: np.ndarray, color) -> np.ndarray:
  """The image a run is at, for display: iterate ``x`` ``(H, W, 3)`` (or
  ``(1, H, W, 3)``) clipped to [0, 1], in the content's colours under
  colour control (``color.finish`` with ``content`` ``(h, w, 3)`` resized
  to ``x``'s shape), as ``run.run_problem`` finishes its snapshots."""
  image = np.clip(np.asarray(x, np.float32).reshape(
      np.shape(x)[-3:]), 0.0, 1.0)
  if content.shape[:2] != image.shape[:2]:
    content = io.resize_to(content, image.shape[:2])
  return np.asarray(color.finish(image, content), np.float32)


def eta_seconds(done: int, total: int, since: tuple | None,
                now: float) -> float | None:
  """Seconds left at the rate measured since ``since`` = ``(seconds,
  iteration)``: ``(total − done) · (now − t₀) / (done − i₀)``; ``None``
  before any iteration was timed."""
  if since is None or done <= since[1]:
    return None
  return (total - done) * (now - since[0]) / (done - since[1])


class Worker:
  """Runs ``store``'s jobs in a thread (``start``, ``stop``)."""

  def __init__(self, store: _jobs.JobStore, *, checkpoint_every: int = 20,
               preview_seconds: float = 1.0):
    self.store = store
    self.checkpoint_every = checkpoint_every
    self.preview_seconds = preview_seconds
    self.stopping = threading.Event()
    self._params: Dict[str, Any] = {}   # VGG weights by network, loaded once
    self._thread = threading.Thread(target=self._loop, name="nst-worker",
                                    daemon=True)

  def start(self) -> None:
    self._thread.start()

  def stop(self, timeout: float = 30.0) -> None:
    """Stops after the current step of the running job (its state written,
    the job left queued)."""
    self.stopping.set()
    self._thread.join(timeout)

  def _loop(self) -> None:
    while not self.stopping.is_set():
      job = self.store.take(self.stopping)
      if job is None:
        return
      try:
        self.run(job)
      except NSTError as e:
        log.warning("job %s failed: %s", job["id"], cli.flag_message(e))
        self.store.update(job["id"], state="failed", finished=time.time(),
                          error=cli.flag_message(e), eta_seconds=None)
      except Exception as e:  # pylint: disable=broad-except
        log.exception("job %s failed", job["id"])
        self.store.update(job["id"], state="failed", finished=time.time(),
                          error=f"internal error: {type(e).__name__}: {e}",
                          eta_seconds=None)

  def _vgg(self, network: str):
    if network not in self._params:
      self._params[network] = vgg.load_params(network)
    return self._params[network]

  def _progress(self, job_id: str, folder: str, total: int, content,
                color, level: Dict[str, int]):
    """``on_progress`` of a job's run: the iteration (``level["before"]``
    plus the stage's), loss, ETA, a curve point and ``preview.png``."""
    timing = {"since": None, "preview": 0.0}

    def on_progress(p):
      done = level["before"] + int(p.iteration)
      now = time.perf_counter()
      fields = {"iteration": done, "seconds": float(p.seconds),
                "level": level["index"]}
      if p.x is not None:
        if timing["since"] is None:
          timing["since"] = (now, done)
        fields["eta_seconds"] = eta_seconds(done, total, timing["since"],
                                            now)
        if now - timing["preview"] >= self.preview_seconds * 0.5:
          timing["preview"] = now
          io.save_image(os.path.join(folder, "preview.png"),
                        preview_image(p.x(), content, color))
          fields["preview"] = self.store.get(job_id)["preview"] + 1
      loss = float(p.value)   # the objective at the current iterate
      if np.isfinite(loss):
        fields["loss"] = loss
        fields["point"] = (done, loss)
      self.store.update(job_id, **fields)
    return on_progress

  def _finish(self, job_id: str, folder: str, values, inputs, result,
              resumed=None) -> None:
    """Writes a finished (or cancelled) job's result, record and state; a
    run stopped by the shutdown is queued again."""
    cancelled = self.store.cancel_requested(job_id)
    if result.status == "interrupted" and not cancelled:
      self.store.update(job_id, state="queued", eta_seconds=None)
      log.info("job %s stopped by the shutdown: queued again", job_id)
      return
    from nst_jax.commands import stylize  # pylint: disable=g-import-not-at-top
    output = os.path.join(folder, "result.png")
    record = stylize.run_record(values, inputs, result, resumed)
    io.save_image(output, result.image,
                  metadata={"nst_jax": cli.params_json(values)})
    io.save_image(os.path.join(folder, "preview.png"), result.image)
    io.save_json(os.path.join(folder, "record.json"), record)
    _resume.remove(_resume.state_path(output))
    last = result.loss_history[-1]["total"]
    self.store.update(
        job_id, state="cancelled" if cancelled else "done",
        finished=time.time(), iteration=result.iterations, loss=last,
        point=(result.iterations, last), seconds=result.wall_seconds,
        eta_seconds=0.0, preview=self.store.get(job_id)["preview"] + 1)
    log.info("job %s %s: %d iterations, %.1f s", job_id,
             "cancelled" if cancelled else "done", result.iterations,
             result.wall_seconds)

  def _run_method(self, job_id: str, folder: str, setup) -> None:
    """A STROTSS or NNST job (``methods.paint``, as ``nst-stylize
    --method`` runs it): its stages' iterations counted as one run. It has
    no resume state: after a crash or a shutdown it starts again."""
    # pylint: disable=g-import-not-at-top
    from nst_jax import color
    from nst_jax import methods
    content = io.load_image(setup.content)
    style = io.load_image(setup.styles[0])
    methods.check_shapes(setup.method, content.shape[:2], style.shape[:2])
    total = sum(n for _, n in setup.levels)
    level = {"index": -1, "before": 0, "stage": 0}
    self.store.update(job_id, iterations=total, level=0)

    def on_stage(size, stage, iterations):
      del size, stage
      level["index"] += 1
      level["before"] += level["stage"]
      level["stage"] = iterations

    result = methods.paint(
        self._vgg("vgg16"), content, [style], setup.method,
        log_every=setup.log_every, on_stage=on_stage,
        on_progress=self._progress(job_id, folder, total, content,
                                   color.ColorControl(), level),
        should_stop=lambda: (self.stopping.is_set()
                             or self.store.cancel_requested(job_id)),
        progress_seconds=self.preview_seconds)
    self._finish(job_id, folder, setup.values,
                 [setup.content, *setup.styles], result)

  def run(self, job: Dict[str, Any]) -> None:
    """Runs one job to its end (or a shutdown), as ``nst-stylize`` does."""
    job_id, folder = job["id"], self.store.folder(job["id"])
    setup = _params.job_setup(job["values"])
    if setup.method is not None:
      self._run_method(job_id, folder, setup)
      return
    config, levels, values = setup.config, setup.levels, setup.values
    output = os.path.join(folder, "result.png")
    inputs = [setup.content, *setup.styles]
    state_file = _resume.state_path(output)
    scales = scale_iterations = None
    if config.schedule.scales is not None or len(levels) > 1:
      scales = [s for s, _ in levels]
      scale_iterations = [n for _, n in levels]
    resumed = None
    if os.path.exists(state_file):   # the server died while it ran
      resumed, meta = _resume.load(state_file)
      _resume.check_inputs(meta, inputs)
      if io.to_jsonable(meta["params"]) != io.to_jsonable(values):
        raise NSTError("the job's resume state is of other parameters")
      log.info("job %s resumes at iteration %d", job_id, resumed.iteration)
    size = levels[-1][0]
    style_size = transfer.style_size(size, config.schedule.style_scale)
    content = io.load_image(setup.content)
    shape = io.long_edge_shape(content.shape[:2], size)
    transfer.check_image_size(config, shape)
    transfer.check_memory(config, shape)
    originals = [io.load_image(p) for p in setup.styles]
    config_module.check_style_sizes(
        config, [s.shape for s in originals], style_size,
        [f"{k + 1} of {len(originals)}" for k in range(len(originals))])
    content = io.resize_to(content, shape)
    styles = [io.resize_long_edge(s, style_size) for s in originals]
    params = self._vgg(setup.network)

    total = sum(n for _, n in levels)
    level = {"index": 0, "before": 0}
    if resumed is not None and resumed.before is not None:
      level.update(index=resumed.level, before=resumed.before.iterations)
    self.store.update(job_id, iterations=total, level=level["index"])
    on_progress = self._progress(job_id, folder, total, content,
                                 config.color, level)

    def should_stop():
      return self.stopping.is_set() or self.store.cancel_requested(job_id)

    digests = {p: weights.sha256_file(p) for p in dict.fromkeys(inputs)}

    def on_checkpoint(state):
      if self.store.cancel_requested(job_id):
        return   # a cancelled job ends here: nothing to resume
      _resume.save(state_file, state, params=values, inputs=digests,
                   stage={"level": state.level} if scales else {})

    run = dict(log_every=setup.log_every, on_progress=on_progress,
               should_stop=should_stop,
               progress_seconds=self.preview_seconds,
               checkpoint_every=self.checkpoint_every,
               on_checkpoint=on_checkpoint, resume=resumed)
    if scales:
      def on_level(s, r):
        del s
        level["index"] += 1
        level["before"] += r.iterations
      result = transfer.stylize_multiscale(
          params, content, originals, scales, config,
          scale_iterations=scale_iterations,
          style_scale=config.schedule.style_scale, on_level=on_level, **run)
    else:
      result = transfer.stylize(params, content, styles, config, **run)
    self._finish(job_id, folder, values, inputs, result, resumed)
