"""One style transfer, end to end, on arrays: the library call behind
``nst-stylize``.

``stylize(params, content, styles, config)`` paints one level: it builds the
problem (``nst_jax.problem``: targets, objective and start image, evaluated
untiled, tiled or row-sharded as decided once) and minimises it with the one
run loop (``nst_jax.run``). ``stylize_multiscale`` paints coarse to fine, one
``stylize`` per level, and ``paint`` follows ``config.schedule`` (the
default pyramid from 2 × 256 px). Images are float32 ``(H, W, 3)`` in
[0, 1]; the caller loads and resizes them (``nst_jax.io``).

The configuration (``TransferConfig`` and its parts) lives in
``nst_jax.config`` and the problem layer in ``nst_jax.problem``; their names
are re-exported here for research code written against this module.
"""

import time
from typing import Any, Callable, Dict, Sequence

import numpy as np

from nst_jax import io
from nst_jax import memory
from nst_jax import problem
from nst_jax import run as _run
from nst_jax import vgg
# Re-exported: the names research code wrote against this module before the
# configuration, the problem layer and the run loop had their own.
from nst_jax.config import (  # noqa: F401
    INITS, PYRAMID_BASE, PYRAMID_FINE_FRACTION, Init, Schedule, StylePatches,
    TransferConfig, check_config, check_image_size, image_device_count,
    pyramid, style_size)
from nst_jax.errors import NSTError
from nst_jax.problem import (  # noqa: F401
    check_memory, estimate_memory, initial_image, image_mesh, objective_for,
    place_on_mesh, style_targets, tile_size_for, tiling_message)
from nst_jax.run import TERMS, Levels, Progress, RunState  # noqa: F401

TransferResult = _run.RunResult


def stylize(params, content: np.ndarray, styles: Sequence[np.ndarray],
            config: TransferConfig = TransferConfig(), *,
            log_every: int = 50,
            on_log: Callable[[Dict[str, Any]], None] | None = None,
            snapshot_every: int = 0,
            on_snapshot: Callable[[int, np.ndarray], None] | None = None,
            on_progress: Callable[[Progress], None] | None = None,
            should_stop: Callable[[], bool] | None = None,
            progress_seconds: float = 2.0,
            terms_seconds: float = 4.0,
            init_image: np.ndarray | None = None,
            guides=None,
            checkpoint_every: int = 0,
            on_checkpoint: Callable[[RunState], None] | None = None,
            resume: RunState | None = None,
            first_level=None,
            ) -> TransferResult:
  """Paints ``content`` ``(H, W, 3)`` in the style of ``styles``.

  ``init_image`` ``(H, W, 3)``, when given, is the starting point instead of
  ``config.init`` (``stylize_multiscale`` passes the upsampled result of the
  coarser level). Colour control (``config.color``) happens here: see
  ``color.ColorControl``. ``guides`` (``guided.Guides``, e.g. from
  ``masks.load_guides``) say where each style goes: the content's and each
  style image's region maps, at any resolution of the same aspect (each
  guided representation resizes them to its layers).

  Every ``log_every`` iterations the loss terms are recorded — ``{iteration,
  seconds, total, content, style, tv, style_layers: {layer: term}}``, terms
  weighted, seconds since the start — and passed to ``on_log``; every
  ``snapshot_every`` iterations ``on_snapshot(iteration, image)`` receives the
  current image clipped to [0, 1] (in the content's colours under
  ``original_colors``; in a notebook, show it with ``IPython.display``). With
  ``on_progress`` or ``should_stop`` the compiled loop runs in chunks of
  about ``progress_seconds``: after each, ``on_progress(solvers.Progress)``
  (with ``iterations``, ``seconds`` and ``record`` filled in) is called
  (its ``record`` refreshed, by one more forward pass, when the latest is
  older than ``terms_seconds``) and ``should_stop()`` asked; when it says yes
  the run ends there with status ``interrupted`` and the result is the image
  reached. None of this changes the iterates. A representation that
  re-draws its target (``SlicedWasserstein(redraw_every=K)``) gets new
  targets every ``K`` iterations, the solver restarted there from the
  current image (``solvers.Restart``); records, snapshots and progress count
  the iterations of the whole run.

  ``on_checkpoint(RunState)`` receives the whole state of the run every
  ``checkpoint_every`` iterations (after that iteration's snapshot; 0: only
  when ``should_stop`` stops the run); ``resume=`` such a state continues
  that run — same arguments — to the image a run never stopped reaches
  (bit-identical on the CPU; the state is checked against this run's
  shapes, ``checkpoint.unflatten``). Records, seconds and counts go on
  from the state's.

  ``first_level`` — ``(content, styles)`` of the first level of a
  coarse-to-fine run, at its size — makes this a finer level of that run:
  the first level's objective at the image seen at that size is added with
  weight ``config.schedule.coarse_weight`` (``objective.coarse_view_loss``;
  ``stylize_multiscale`` passes it).

  Raises ``NSTError`` if the loss becomes NaN or infinite, or ``resume``
  does not fit this run.
  """
  check_config(config)
  shape = tuple(content.shape[:2])
  check_image_size(config, shape)
  ev = problem.evaluation(config, shape)
  memory.check_fits(ev.bytes, shape)
  started = time.perf_counter()
  params = vgg.prepare_params(params, config.conv,
                              config.objective_spec().layers)
  original = np.asarray(content, np.float32)
  content, styles = config.color.prepare(original, styles)
  if init_image is not None and np.shape(init_image) == content.shape:
    init_image = config.color.to_luma(init_image)  # the run's colour space
  coarse = None
  if first_level is not None:
    first_content, first_styles = config.color.prepare(
        np.asarray(first_level[0], np.float32), first_level[1])
    coarse = problem.coarse_part(params, config, 1,   # a finer level
                                 first_content, first_styles, guides)
  p = problem.make_problem(params, content, styles, config, guides=guides,
                           init_image=init_image, ev=ev, coarse=coarse)
  return _run.run_problem(
      p, config.solver, finish=lambda x: config.color.finish(x, original),
      log_every=log_every, on_log=on_log, snapshot_every=snapshot_every,
      on_snapshot=on_snapshot, on_progress=on_progress,
      should_stop=should_stop, progress_seconds=progress_seconds,
      terms_seconds=terms_seconds, checkpoint_every=checkpoint_every,
      on_checkpoint=on_checkpoint, resume=resume, started=started)


def stylize_multiscale(params, content: np.ndarray,
                       styles: Sequence[np.ndarray], scales: Sequence[int],
                       config: TransferConfig = TransferConfig(), *,
                       scale_iterations: Sequence[int] | None = None,
                       style_scale: float = 1.0,
                       on_level: Callable[[int, TransferResult], None] | None
                       = None,
                       on_snapshot: Callable[[int, np.ndarray], None] | None
                       = None,
                       on_checkpoint: Callable[[RunState], None] | None = None,
                       resume: RunState | None = None,
                       **kwargs) -> TransferResult:
  """Coarse-to-fine transfer: one ``stylize`` per long edge in ``scales``.

  ``content`` and ``styles`` are given at any resolution (ideally at least the
  last scale) and resized here, every image to the level's long edge. The
  first level starts from ``config.init``; each later one from the previous
  level's result, upsampled to the new size — the image pyramid of the peers
  (jcjohnson/neural-style's multires recipe, pystiche's ``ImagePyramid``):
  the coarse levels fix the large-scale structure cheaply, the fine ones
  only add detail. Each level after the first also keeps the first
  level's objective at the picture seen at the first level's size, with
  weight ``config.schedule.coarse_weight`` (``objective.coarse_view_loss``:
  without it the fine levels bring the photo back and a large result seen
  small is less stylised than the small one). ``scale_iterations`` gives
  the iterations of each level
  (default: ``config.solver.maxiter`` at every level; ``pyramid`` gives the
  default pyramid); ``on_level(size, result)`` is called after each level;
  styles are resized to ``style_scale`` times the level's long edge
  (``style_size``); other keyword arguments go to ``stylize``. ``guides``
  (masks) are given once, at any resolution: every level resizes them to
  each of its layers (a level's content and styles keep their aspect
  ratios, so the same maps fit). A level that ends ``interrupted`` (its
  ``should_stop``) ends the pyramid there.

  ``on_snapshot(iteration, image)`` counts the iterations of the whole run
  (a level's snapshots come after the earlier levels' iterations).
  ``on_checkpoint`` gets ``RunState``s whose ``level`` and ``before``
  (``Levels``: the finished levels' records and counts) say where the run
  is; ``resume=`` such a state skips the finished levels and continues the
  level it names, to the image an uninterrupted run reaches (same
  arguments).

  Returns the last level's result, its ``loss_history`` the records of every
  level in order (each with a ``size`` key), ``iterations``,
  ``function_evaluations`` and ``wall_seconds`` summed over the levels.
  """
  scales = [int(s) for s in scales]
  if scale_iterations is None:
    scale_iterations = [config.solver.maxiter] * len(scales)
  scale_iterations = [int(n) for n in scale_iterations]
  # The schedule's own checks (increasing positive scales, one count each).
  Schedule(scales=tuple(scales), scale_iterations=tuple(scale_iterations),
           style_scale=style_scale).check()
  if resume is not None and not 0 <= resume.level < len(scales):
    raise NSTError(f"the resumed state is at level {resume.level}, but the "
                   f"run has {len(scales)} scales")
  content = np.asarray(content, np.float32)
  check_config(config)
  for size in scales:   # refuse before any work, as stylize would per level
    shape = io.long_edge_shape(content.shape[:2], size)
    check_image_size(config, shape)
    check_memory(config, shape)
  if len(scales) > 1:
    problem.check_coarse_view(
        config, io.long_edge_shape(content.shape[:2], scales[0]))
  # Once for every level (each stylize would transform the kernels again).
  params = vgg.prepare_params(params, config.conv,
                              config.objective_spec().layers)
  done = Levels() if resume is None else (resume.before or Levels())
  first = 0 if resume is None else resume.level
  result, image = None, None
  for index in range(first, len(scales)):
    size, n = scales[index], scale_iterations[index]
    shape = io.long_edge_shape(content.shape[:2], size)
    level_content = io.resize_to(content, shape)
    level_styles = [io.resize_long_edge(np.asarray(s, np.float32),
                                        style_size(size, style_scale))
                    for s in styles]
    init = None if image is None else io.resize_to(image, shape)
    level_kwargs = dict(kwargs)
    if on_snapshot is not None:
      level_kwargs["on_snapshot"] = (
          lambda i, x, before=done.iterations: on_snapshot(before + i, x))
    if on_checkpoint is not None:
      level_kwargs["on_checkpoint"] = (
          lambda s, index=index, before=done: on_checkpoint(
              s._replace(level=index, before=before)))
    if resume is not None and index == first:
      level_kwargs["resume"] = resume._replace(level=0, before=None)
    if index > 0:   # the first level's images: its coarse view
      first_shape = io.long_edge_shape(content.shape[:2], scales[0])
      level_kwargs["first_level"] = (
          io.resize_to(content, first_shape),
          [io.resize_long_edge(np.asarray(s, np.float32),
                               style_size(scales[0], style_scale))
           for s in styles])
    result = stylize(params, level_content, level_styles,
                     config.replace(solver=dict(maxiter=n)),
                     init_image=init, **level_kwargs)
    image = result.image
    done = Levels(
        list(done.history) + [{**r, "size": size}
                              for r in result.loss_history],
        done.iterations + result.iterations,
        done.evaluations + result.function_evaluations,
        done.seconds + result.wall_seconds)
    if on_level is not None:
      on_level(size, result)
    if result.status == "interrupted":
      break
  return result._replace(loss_history=list(done.history),
                         iterations=done.iterations,
                         function_evaluations=done.evaluations,
                         wall_seconds=done.seconds)


def paint(params, content: np.ndarray, styles: Sequence[np.ndarray],
          config: TransferConfig = TransferConfig(), **kwargs
          ) -> TransferResult:
  """Paints ``content`` (at the output size) in the style of ``styles``
  (at any size) through the levels of ``config.schedule`` for the content's
  long edge and ``config.solver.maxiter`` (``Schedule.levels``): what
  ``nst-stylize`` runs. One level is ``stylize`` with the styles resized to
  ``style_size(size, schedule.style_scale)``; several are
  ``stylize_multiscale``. Keyword arguments go to them."""
  levels = config.schedule.levels(max(content.shape[:2]),
                                  config.solver.maxiter)
  if len(levels) == 1:
    kwargs.pop("on_level", None)
    size, n = levels[0]
    if size != max(content.shape[:2]):
      content = io.resize_to(content, io.long_edge_shape(content.shape[:2],
                                                         size))
    styles = [io.resize_long_edge(np.asarray(s, np.float32),
                                  style_size(size, config.schedule.style_scale))
              for s in styles]
    return stylize(params, content, styles,
                   config.replace(solver=dict(maxiter=n)), **kwargs)
  return stylize_multiscale(
      params, content, styles, [s for s, _ in levels], config,
      scale_iterations=[n for _, n in levels],
      style_scale=config.schedule.style_scale, **kwargs)
