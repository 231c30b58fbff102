"""The one run loop: minimises a ``problem.Problem`` with the library's
solvers and does everything around the iterations — loss records, snapshots,
live progress, a clean stop, checkpoints and resume, targets re-drawn by a
representation — the same way for every caller. One image, each level of a
coarse-to-fine run (``transfer.stylize_multiscale``), each frame of a
video (``video.stylize_video``), each level of a batch of cells (a style
grid, a folder's photos of one shape: ``grid.run_cells``, a ``Problem``
with ``cells``) and each round of ``synthesize`` are callers of
``run_problem``.

A record is ``{iteration, seconds, total, content, style, tv, style_layers:
{layer: term}}`` plus one entry per extra term of the problem (video's
``temporal``), terms weighted, seconds since the run's start.
"""

import functools
import time
from typing import Any, Callable, Dict, List, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import checkpoint
from nst_jax import objective
from nst_jax import problem as _problem
from nst_jax import sharded
from nst_jax import solvers
from nst_jax.errors import NSTError, param

TERMS = ("total", "content", "style", "tv")

# What ``run_problem`` tells ``on_progress`` (the library's one progress type).
Progress = solvers.Progress


class Levels(NamedTuple):
  """What the finished stages of a run (the levels of a coarse-to-fine run)
  add to its result: their records (each with a ``size`` key), iterations,
  evaluations and seconds."""
  history: Sequence[Dict[str, Any]] = ()
  iterations: int = 0
  evaluations: int = 0
  seconds: float = 0.0


class RunState(NamedTuple):
  """What a run needs to continue after a crash (``run_problem``'s
  ``on_checkpoint`` receives it, ``resume=`` takes it back): ``solver``, the
  whole ``solvers.SolverState`` as named numpy arrays
  (``checkpoint.flatten``: the iterate, L-BFGS memory or Adam moments,
  iteration and evaluation counts, the re-draw round), the loss ``history``
  so far, the ``seconds`` spent and the ``iteration`` reached.
  ``io.save_arrays`` stores it without pickle.

  A run of several stages says at which one the state is: ``level`` (index
  into a coarse-to-fine run's scales, or a video frame's; 0 for one level)
  and what the finished levels left (``before``, ``Levels``); a video's
  frame index is the ``stage`` of the command's state file
  (``commands._resume``)."""
  solver: Dict[str, np.ndarray]
  history: List[Dict[str, Any]]
  seconds: float
  iteration: int
  level: int = 0
  before: "Levels | None" = None


class RunResult(NamedTuple):
  """The result clipped to [0, 1], one record per logged iteration (the
  last one always), solver counts, the stop reason (``solvers.Status``
  name), seconds spent compiling plus optimising, and, for a problem whose
  parameters are not the image (``Problem.image_of``: e.g. pyramid
  coefficients), those parameters as the solver left them (``x``; else
  ``None``: the image is ``image``, and a large one is not kept twice)."""
  image: np.ndarray
  loss_history: List[Dict[str, float]]
  iterations: int
  function_evaluations: int
  status: str
  wall_seconds: float
  x: Any = None


def _floats(terms, names) -> Dict[str, float]:
  return {k: float(np.asarray(terms[k])) for k in names}


def record(iteration, terms, seconds: float, style_layers: Sequence[str],
           extra: Sequence[str] = ()) -> Dict[str, Any]:
  """One loss record from the objective's terms (see the module docstring).

  An objective of another method (``nst_jax.methods``: STROTSS's
  ``remd``, ``moment``, ``palette``; NNST's per-layer distances) records
  its own scalar terms: those of ``TERMS`` it has, in that order, then the
  others by name; ``style_layers`` only when it has them."""
  names = [k for k in TERMS if k in terms] + sorted(
      k for k in terms if k not in TERMS and k != "style_layers"
      and k not in extra) + list(extra)
  out = {"iteration": int(iteration), "seconds": round(float(seconds), 3),
         **_floats(terms, names)}
  if "style_layers" in terms:
    per_layer = np.asarray(terms["style_layers"]).reshape(-1)
    out["style_layers"] = {l: float(v) for l, v in zip(style_layers,
                                                       per_layer)}
  return out


@functools.lru_cache(maxsize=None)
def terms_on_device(fun):
  """The terms of objective ``fun`` at an image."""
  return lambda x, *args: fun(x, *args)[1]


@functools.lru_cache(maxsize=None)
def terms_program(fun):
  """The loss terms at an image, compiled (one forward pass, no gradient)."""
  return jax.jit(terms_on_device(fun))


def _clip_on_device(x, *args):
  del args
  return jnp.clip(x, 0.0, 1.0)


@functools.lru_cache(maxsize=None)
def _image_program(image_of):
  """The image in [0, 1] of the optimised variable (``Problem.image_of``;
  None: the variable is the image), compiled; ``(x, *args)`` for a hook."""
  if image_of is None:
    return _clip_on_device
  return jax.jit(lambda x, *args: jnp.clip(image_of(x), 0.0, 1.0))


def _redraw(spec, current: dict) -> solvers.Restart | None:
  """A ``solvers.Restart`` that re-draws the targets of ``spec``'s
  representations that re-draw (``objective.redraw_every``), keeping the
  newest in ``current["targets"]`` for the live records."""
  period = objective.redraw_every(spec)
  if period <= 0:
    return None

  def redraw(iteration, args):
    targets = objective.redraw_targets(spec, args[1], iteration)
    if targets is None:
      return None
    current["targets"] = targets
    return (args[0], targets) + tuple(args[2:])
  return solvers.Restart(period, redraw)


@functools.lru_cache(maxsize=None)
def cells_terms_on_device(fun, args_axes: tuple):
  """The loss terms of a chunk of cells ``x (C, ...)``: ``fun``'s terms
  ``jax.vmap``-ed over the cells (``args_axes`` as the problem's); one
  function per (``fun``, axes), so that its programs are reused."""
  return jax.vmap(terms_on_device(fun), in_axes=(0, *args_axes))


@functools.lru_cache(maxsize=None)
def cells_terms_program(fun, args_axes: tuple):
  """``cells_terms_on_device``, compiled."""
  return jax.jit(cells_terms_on_device(fun, args_axes))


def _cell_records(iteration, terms, cells: range, clock, style_layers,
                  extra) -> Dict[int, Dict[str, Any]]:
  """``{cell: record}`` of the cells ``cells`` from terms whose leaves have
  a leading axis over them (a padded chunk: the rest is left out)."""
  return {c: record(iteration, jax.tree_util.tree_map(lambda a, n=n: a[n],
                                                     terms),
                    clock(), style_layers, extra)
          for n, c in enumerate(cells)}


def _run_cells(p: _problem.Problem, solver: solvers.SolverConfig, *, finish,
               log_every, on_log, on_progress, should_stop, on_chunk,
               progress_seconds, clock) -> RunResult:
  """``run_problem`` of a batch of cells (``p.cells``); see there."""
  fun, args, spec, cells = p.fun, p.args, p.spec, p.cells
  extra = tuple(t.name for t in p.terms)
  count = int(np.shape(p.x0)[0])
  chunk = sharded.agreed_chunk(cells.chunk_size, count,
                               cells.mesh.devices.size)
  histories: List[List[Dict[str, Any]]] = [[] for _ in range(count)]
  first = [0]   # the first cell of the running chunk

  def log(iteration, terms):   # terms of the running (padded) chunk
    size = len(np.asarray(terms["total"]))
    logged = _cell_records(iteration, terms,
                           range(first[0], min(first[0] + size, count)),
                           clock, spec.style_layers, extra)
    for c, r in logged.items():
      histories[c].append(r)
    if on_log is not None:
      on_log(logged)

  def chunk_done(done, total):
    first[0] = done
    if on_chunk is not None:
      on_chunk(done, total)

  hooks = [solvers.Hook(log_every, cells_terms_on_device(fun, cells.args_axes),
                        log)] if log_every > 0 else []
  progress = None if on_progress is None else (
      lambda start, pr: on_progress(start, pr._replace(
          iterations=solver.maxiter, seconds=clock())))
  result = sharded.minimize_cells(
      fun, p.x0, args, cells.args_axes, solver, mesh=cells.mesh,
      chunk_size=chunk, hooks=hooks, on_chunk=chunk_done,
      on_progress=progress, should_stop=should_stop,
      progress_seconds=progress_seconds)
  iterations = np.asarray(result.iterations)
  final = sharded.map_cells(cells_terms_program(fun, cells.args_axes),
                            result.x, args, cells.args_axes, mesh=cells.mesh,
                            chunk_size=chunk)
  for c, r in _cell_records(0, final, range(count), clock, spec.style_layers,
                            extra).items():
    if not histories[c] or histories[c][-1]["iteration"] != iterations[c]:
      histories[c].append(dict(r, iteration=int(iterations[c])))
  images = finish(np.clip(np.asarray(result.x), 0.0, 1.0))
  return RunResult(images, histories, iterations,
                   np.asarray(result.function_evaluations),
                   [solvers.status_name(int(s)) for s in result.status],
                   clock())


def run_problem(p: _problem.Problem, solver: solvers.SolverConfig, *,
                finish: Callable[[np.ndarray], np.ndarray] = lambda x: x,
                log_every: int = 50,
                on_log: Callable[[Dict[str, Any]], None] | None = None,
                snapshot_every: int = 0,
                on_snapshot: Callable[[int, np.ndarray], None] | None = None,
                on_progress: Callable[[Progress], None] | None = None,
                should_stop: Callable[[], bool] | None = None,
                progress_seconds: float = 2.0,
                terms_seconds: float = 4.0,
                checkpoint_every: int = 0,
                on_checkpoint: Callable[[RunState], None] | None = None,
                resume: RunState | None = None,
                nonfinite_hint: str = "",
                started: float | None = None,
                on_chunk: Callable[[int, int], None] | None = None
                ) -> RunResult:
  """Minimises problem ``p`` with ``solver`` and returns a ``RunResult``.

  Every ``log_every`` iterations the loss terms are recorded and passed to
  ``on_log``; every ``snapshot_every`` iterations ``on_snapshot(iteration,
  image)`` receives the current image clipped to [0, 1] and passed through
  ``finish`` (colour control's last step; the result goes through it
  too). With ``on_progress`` or ``should_stop`` the compiled loop runs in
  chunks of about ``progress_seconds``: after each,
  ``on_progress(Progress)`` (with ``iterations``, ``seconds`` and ``record``
  filled in; the record refreshed by one more forward pass when the latest
  is older than ``terms_seconds``) is called and ``should_stop()`` asked;
  when it says yes the run ends there with status ``interrupted``. None of
  this changes the iterates. A representation that re-draws its target gets
  new targets every ``K`` iterations, the solver restarted there from the
  current image (``solvers.Restart``).

  ``on_checkpoint(RunState)`` receives the whole state every
  ``checkpoint_every`` iterations (after that iteration's snapshot; 0: only
  when ``should_stop`` stops the run); ``resume=`` such a state continues
  that run — same problem — to the image a run never stopped reaches
  (bit-identical on the CPU; checked against this run's shapes,
  ``checkpoint.unflatten``). Records, seconds and counts go on from the
  state's.

  Seconds count from ``started`` (a ``time.perf_counter()`` value: a
  caller's start, so that the targets and the start image it computed
  count too; default: this call).

  Raises ``NSTError`` if the loss becomes NaN or infinite (the message ends
  with ``nonfinite_hint``), or ``resume`` does not fit this run.

  **A batch of cells** (``p.cells``: ``problem.Cells``) runs as one
  compiled, sharded loop in chunks (``sharded.minimize_cells``), every cell
  with its own solver state and stop: the result's ``image`` is ``(B, H, W,
  3)`` (``finish`` receives the batch), ``loss_history`` one history per
  cell, ``iterations`` and ``function_evaluations`` arrays ``(B,)``,
  ``status`` one name per cell (a cell whose loss became NaN says
  ``non_finite``; nothing is raised, the others are kept). ``on_log``
  receives ``{cell: record}`` of the running chunk's cells,
  ``on_progress(first cell of the chunk, Progress)`` its value and
  evaluations per cell, ``on_chunk(cells done, B)`` follows each chunk;
  ``should_stop`` stops the running chunk (status ``interrupted``) and
  starts no other (their cells keep ``x0``). Snapshots, checkpoints,
  ``resume`` and re-drawn targets are for one image (a folder resumes from
  its finished results: ``batch.stylize_batch``'s ``skip``).
  """
  start = time.perf_counter() if started is None else float(started)
  if p.cells is not None:
    if (on_snapshot is not None or on_checkpoint is not None
        or resume is not None or objective.redraw_every(p.spec) > 0
        or p.image_of is not None):
      raise ValueError("snapshots, checkpoints, resume, re-drawn targets and "
                       "parameterisations are for one image, not a batch of "
                       "cells")
    return _run_cells(p, solver, finish=finish, log_every=log_every,
                      on_log=on_log, on_progress=on_progress,
                      should_stop=should_stop, on_chunk=on_chunk,
                      progress_seconds=progress_seconds,
                      clock=lambda: time.perf_counter() - start)
  fun, args, spec = p.fun, p.args, p.spec
  extra = tuple(t.name for t in p.terms)
  history: List[Dict[str, Any]] = list(resume.history) if resume else []
  offset = float(resume.seconds) if resume else 0.0
  clock = lambda: time.perf_counter() - start + offset
  current = {"targets": p.targets}   # re-drawn targets, for the live records

  def live_args():
    return (args[0], current["targets"]) + tuple(args[2:])

  def log(iteration, terms):
    history.append(record(iteration, terms, clock(), spec.style_layers,
                          extra))
    if on_log is not None:
      on_log(history[-1])

  hooks = [solvers.Hook(log_every, terms_on_device(fun), log)]
  if snapshot_every > 0 and on_snapshot is not None:
    hooks.append(solvers.Hook(
        snapshot_every, _image_program(p.image_of),
        lambda i, x: int(i) > 0 and on_snapshot(
            int(i), finish(_problem.gathered(x)))))
  on_chunk = None
  wanted = solver.maxiter
  if on_progress is not None:
    latest = []  # a record refreshed between log hooks for a live display

    def on_chunk(pr: solvers.Progress):
      newest = max(latest + history[-1:], key=lambda r: r["seconds"],
                   default=None)
      if pr.running and (newest is None or
                         clock() - newest["seconds"] > terms_seconds):
        terms = terms_program(fun)(pr.x(), *live_args())
        latest[:] = [record(pr.iteration, terms, clock(), spec.style_layers,
                            extra)]
        newest = latest[0]
      image = pr.x if p.image_of is None else (   # the image, not the
          lambda: _image_program(p.image_of)(pr.x()))   # parameters
      on_progress(pr._replace(value=float(np.asarray(pr.value)),
                              evaluations=int(np.asarray(pr.evaluations)),
                              iterations=wanted, seconds=clock(),
                              record=newest, x=image))
    # before compiling: the display can say so
    on_progress(Progress(resume.iteration if resume else 0, float("nan"), 0,
                         True, None, wanted, clock(), None))
  chunked = on_chunk is not None or should_stop is not None
  saver, state = None, None
  if on_checkpoint is not None:
    saver = solvers.Checkpoint(checkpoint_every, lambda s: on_checkpoint(
        RunState(checkpoint.flatten(s), list(history), clock(),
                 int(s.loop.i))))
  if resume is not None:
    state = checkpoint.unflatten(resume.solver, solvers.state_template(
        fun, p.x0, solver, args), what="resumed state")
    if p.evaluation.mesh is not None:   # replicated, like the run's data
      state = state._replace(loop=_problem.place_on_mesh(
          p.evaluation.mesh, p.x0, state.loop)[1])
  result = solvers.minimize(
      fun, p.x0, solver, hooks, args, donate=True, should_stop=should_stop,
      on_chunk=on_chunk, chunk_seconds=progress_seconds if chunked else None,
      restart=_redraw(spec, current), checkpoint=saver, resume=state)
  image = _problem.gathered(_image_program(p.image_of)(result.x))
  iterations = int(result.iterations)
  status = solvers.status_name(int(result.status))
  if status == "non_finite" or not np.all(np.isfinite(image)):
    raise NSTError(
        f"the loss became NaN or infinite by iteration {iterations}: lower "
        f"{param('solver.learning_rate')} or the loss weights"
        + nonfinite_hint)
  if not history or history[-1]["iteration"] != iterations:
    log(iterations, terms_program(fun)(result.x, *live_args()))
  return RunResult(finish(image), history, iterations,
                   int(result.function_evaluations), status, clock(),
                   None if p.image_of is None else _problem.gathered(result.x))
