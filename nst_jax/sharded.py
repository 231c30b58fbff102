"""Many independent minimisations as ONE compiled, batched, sharded program.

``minimize_cells(fun, x0, args, args_axes, config)`` runs ``B`` cells — any
objective ``fun(x, *args) -> (value, aux)``, per-cell ``x0`` (B, ...), args
batched on axis 0 where ``args_axes`` says 0 — in one
``jax.lax.while_loop`` (``solvers.minimize_batched``) whose batch axis is
sharded over every device of a ``jax.sharding.Mesh``: it pads ``B`` to a
multiple of the device count and runs in chunks that fit in memory. Style
grids (``nst_jax.grid``) are built on it; research code calls it with its
own loss.
"""

from typing import Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from nst_jax import solvers
from nst_jax.errors import NSTError

AXIS = "cells"


def cell_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh named ``"cells"`` over ``devices`` (default: all devices of
  all processes)."""
  devices = list(jax.devices() if devices is None else devices)
  return Mesh(np.asarray(devices), (AXIS,))


def padded_size(cells: int, devices: int) -> int:
  """``cells`` rounded up to a multiple of ``devices``."""
  return -(-cells // devices) * devices


def agreed_chunk(chunk_size: int | None, cells: int, devices: int) -> int:
  """Cells per compiled chunk of a batch of ``cells``: ``chunk_size``
  (None: all) at most ``cells``, padded to a multiple of ``devices``, as
  process 0 says (its memory budget may differ from the others'; every
  process must cut the same chunks, their hooks and fetches being
  collectives)."""
  return padded_size(solvers._agreed(min(chunk_size or cells, cells)),  # pylint: disable=protected-access
                     devices)


def _pad(tree, size: int):
  """Pads axis 0 of every leaf to ``size`` by repeating the last cell (the
  padding cells compute a copy of real work and are dropped afterwards)."""
  def pad(a):
    a = np.asarray(a)
    extra = size - a.shape[0]
    return a if extra == 0 else np.concatenate([a, np.repeat(a[-1:], extra, 0)])
  return jax.tree_util.tree_map(pad, tree)


def _put(tree, mesh: Mesh, batched: bool):
  """Global arrays on ``mesh``: batched leaves split along axis 0, others
  replicated. Works on one host and on several (every process holds the same
  host data, as after ``jax.distributed.initialize``)."""
  spec = PartitionSpec(AXIS) if batched else PartitionSpec()
  sharding = NamedSharding(mesh, spec)
  def put(a):
    a = np.asarray(a)
    return jax.make_array_from_callback(a.shape, sharding, lambda i: a[i])
  return jax.tree_util.tree_map(put, tree)


def _fetch(tree):
  """Numpy copies of every leaf on every host. A global array that spans
  other processes' devices is gathered (``process_allgather``: a
  collective, so every process must call this at the same point, as the
  chunks and hooks of ``minimize_cells`` do); the others are copied."""
  def fetch(a):
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return np.asarray(a)
  return jax.tree_util.tree_map(fetch, tree)


def _fetched_hook(hook: solvers.Hook) -> solvers.Hook:
  """``hook`` whose ``host_fn`` receives numpy arrays also when the batch
  spans several processes (a plain ``np.asarray`` of such an array fails)."""
  host_fn = hook.host_fn
  return hook._replace(host_fn=lambda i, out: host_fn(i, _fetch(out)))


def _fetched_progress(on_progress, start: int):
  """``on_progress(start, p)`` with ``p.value``/``p.evaluations`` as numpy
  arrays gathered from every process."""
  def call(p: solvers.Progress):
    on_progress(start, p._replace(value=_fetch(p.value),
                                  evaluations=_fetch(p.evaluations)))
  return call


def _take(tree, start: int, stop: int):
  return jax.tree_util.tree_map(lambda a: np.asarray(a)[start:stop], tree)


def minimize_cells(fun: Callable, x0, args: tuple, args_axes: tuple,
                   config: solvers.SolverConfig, *, mesh: Mesh | None = None,
                   chunk_size: int | None = None,
                   hooks: Sequence[solvers.Hook] = (),
                   on_chunk: Callable[[int, int], None] | None = None,
                   on_progress: Callable[[int, solvers.Progress], None]
                   | None = None,
                   should_stop: Callable[[], bool] | None = None,
                   progress_seconds: float = 2.0,
                   ) -> solvers.SolveResult:
  """Minimises ``B`` independent cells, sharded over ``mesh``, in chunks.

  Args:
    fun: ``fun(x, *args) -> (value, aux)`` for one cell (jit-able).
    x0: per-cell starting points, shape ``(B, ...)``.
    args: data; an entry whose ``args_axes`` entry is 0 holds per-cell data on
      axis 0 (every leaf), one whose entry is None is shared by all cells.
    config: the solver configuration (all cells share it).
    mesh: device mesh with axis ``"cells"`` (default: all devices).
    chunk_size: cells per compiled run (default: all); rounded up to a
      multiple of the device count. Every chunk is padded to the same size, so
      one compiled program serves all chunks.
    hooks: passed to ``solvers.minimize_batched`` (they see each padded chunk).
    on_chunk: called as ``on_chunk(done, total)`` after each chunk.
    on_progress: ``on_progress(first_cell, solvers.Progress)`` between
      compiled stretches of about ``progress_seconds`` of iterations.
    should_stop: asked between those stretches; when it says yes the current
      chunk stops (status ``interrupted``) and later chunks do not start:
      their cells keep ``x0``, 0 iterations, status ``interrupted``.

  Returns:
    A ``SolveResult`` of numpy arrays with leading axis ``B`` (padding
    removed).
  """
  mesh = cell_mesh() if mesh is None else mesh
  x0 = np.asarray(x0)
  cells = x0.shape[0]
  if cells == 0:
    raise NSTError("the grid has no cells")
  devices = mesh.devices.size
  chunk = agreed_chunk(chunk_size, cells, devices)
  hooks = tuple(_fetched_hook(h) for h in hooks)
  shared = tuple(a for a, ax in zip(args, args_axes) if ax is None)
  shared = _put(shared, mesh, batched=False)
  results = []
  for start in range(0, cells, chunk):
    stop = min(start + chunk, cells)
    if should_stop is not None and solvers._any_process(should_stop()):  # pylint: disable=protected-access
      results.append(_not_started(x0[start:stop]))
      continue
    batch_x0 = _put(_pad(x0[start:stop], chunk), mesh, batched=True)
    it = iter(shared)
    batch_args = tuple(
        next(it) if ax is None
        else _put(_pad(_take(a, start, stop), chunk), mesh, batched=True)
        for a, ax in zip(args, args_axes))
    host = on_progress is not None or should_stop is not None
    result = solvers.minimize_batched(
        fun, batch_x0, config, hooks, batch_args, args_axes,
        should_stop=should_stop,
        on_chunk=None if on_progress is None else _fetched_progress(
            on_progress, start),
        chunk_seconds=progress_seconds if host else None)
    results.append(_take(_fetch(result), 0, stop - start))
    if on_chunk is not None:
      on_chunk(stop, cells)
  return solvers.SolveResult(*(np.concatenate([getattr(r, f) for r in results])
                               for f in solvers.SolveResult._fields))


def cell_aux(fun: Callable, x, args: tuple, args_axes: tuple):
  """``fun``'s auxiliary output (e.g. the objective's loss terms) of every
  cell at ``x`` ``(B, ...)``: one batched evaluation, numpy leaves with
  leading axis ``B``. The solver keeps only values; call this on
  ``minimize_cells``'s result for per-term values."""
  batched = jax.jit(jax.vmap(lambda xi, *a: fun(xi, *a)[1],
                             in_axes=(0, *args_axes)))
  return jax.tree_util.tree_map(np.asarray, batched(np.asarray(x), *args))


def map_cells(device_fn: Callable, x, args: tuple, args_axes: tuple, *,
              mesh: Mesh | None = None, chunk_size: int | None = None):
  """``device_fn(x (C, ...), *args)`` — a function of a whole chunk of
  cells, e.g. ``jax.vmap`` of a per-cell function — applied to ``x`` ``(B,
  ...)`` chunk by chunk as ``minimize_cells`` cuts them (``chunk_size``
  cells padded to a multiple of the mesh's devices, so that one compiled
  program serves every chunk; ``args_axes`` as there). Returns its output
  as numpy leaves with leading axis ``B`` (padding removed). Compile
  ``device_fn`` once (``jax.jit``) for its program to be reused."""
  mesh = cell_mesh() if mesh is None else mesh
  x = np.asarray(x)
  cells = x.shape[0]
  chunk = agreed_chunk(chunk_size, cells, mesh.devices.size)
  shared = _put(tuple(a for a, ax in zip(args, args_axes) if ax is None),
                mesh, batched=False)
  outs = []
  for start in range(0, cells, chunk):
    stop = min(start + chunk, cells)
    it = iter(shared)
    batch_args = tuple(
        next(it) if ax is None
        else _put(_pad(_take(a, start, stop), chunk), mesh, batched=True)
        for a, ax in zip(args, args_axes))
    out = device_fn(_put(_pad(x[start:stop], chunk), mesh, batched=True),
                    *batch_args)
    outs.append(_take(_fetch(out), 0, stop - start))
  return jax.tree_util.tree_map(lambda *a: np.concatenate(a), *outs)


def _not_started(x0: np.ndarray) -> solvers.SolveResult:
  """The result of cells whose chunk never ran (the run was stopped)."""
  n = x0.shape[0]
  zeros = np.zeros(n, np.int32)
  return solvers.SolveResult(x0, np.full(n, np.nan, np.float32), zeros, zeros,
                             np.full(n, solvers.INTERRUPTED, np.int32))


def chunk_size_for(per_cell_bytes: int, devices: int,
                   budget_bytes: int | None, fraction: float = 0.6) -> int | None:
  """Cells per chunk so that ``fraction`` of ``budget_bytes`` holds them
  (None: no limit known). At least one cell per device."""
  if budget_bytes is None:
    return None
  per_chunk = max(1, int(fraction * budget_bytes // max(per_cell_bytes, 1)))
  return max(devices, per_chunk // devices * devices)


