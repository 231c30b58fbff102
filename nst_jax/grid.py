"""Style grids: many transfers as ONE compiled, batched, sharded program.

Gatys et al. (2016, Fig. 3; seed 003) show style transfer as a grid — rows:
style from conv1_1 up to conv5_1, columns: α/β. Here a grid is the Cartesian
product of axes (style images, layer sets, per-layer weights, α, β, γ, init
seeds); every cell is one optimisation with its own solver state, and all
cells run in one ``jax.lax.while_loop`` (``solvers.minimize_batched``) whose
batch axis is sharded over every device of a ``jax.sharding.Mesh``.

Two levels of API:

* ``minimize_cells(fun, x0, args, args_axes, config)`` — generic: any
  objective ``fun(x, *args) -> (value, aux)``, per-cell ``x0`` (B, ...), and
  args batched on axis 0 where ``args_axes`` says 0. Pads B to a multiple of
  the device count, shards, and runs in chunks that fit in memory. Research
  code calls this with its own loss.
* ``style_grid(params, content, styles, axes, config)`` — neural style
  transfer: builds the cells, targets and weights, and calls the above.

Shapes stay fixed across cells: style Grams are C × C whatever the style
image's size, and a layer set is a 0/1 mask over the union of the layers, so
one program serves every cell.
"""

import dataclasses
import functools
import itertools
import math
import time
from typing import Any, Callable, Dict, List, NamedTuple, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from nst_jax import networks
from nst_jax import objective
from nst_jax import solvers
from nst_jax import vgg
from nst_jax import transfer
from nst_jax.errors import NSTError

AXIS = "cells"


# --- generic batched, sharded minimisation ----------------------------------


def cell_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh named ``"cells"`` over ``devices`` (default: all devices of
  all processes)."""
  devices = list(jax.devices() if devices is None else devices)
  return Mesh(np.asarray(devices), (AXIS,))


def padded_size(cells: int, devices: int) -> int:
  """``cells`` rounded up to a multiple of ``devices``."""
  return -(-cells // devices) * devices


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
  """Brings a (possibly multi-host) global array back as numpy on every host."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return jax.tree_util.tree_map(
        lambda a: np.asarray(multihost_utils.process_allgather(a, tiled=True)),
        tree)
  return jax.tree_util.tree_map(np.asarray, tree)


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
  chunk = padded_size(min(chunk_size or cells, cells), devices)
  shared = tuple(a for a, ax in zip(args, args_axes) if ax is None)
  shared = _put(shared, mesh, batched=False)
  results = []
  for start in range(0, cells, chunk):
    stop = min(start + chunk, cells)
    if should_stop is not None and should_stop():
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
        on_chunk=None if on_progress is None else functools.partial(
            on_progress, start),
        chunk_seconds=progress_seconds if host else None)
    results.append(_take(_fetch(result), 0, stop - start))
    if on_chunk is not None:
      on_chunk(stop, cells)
  return solvers.SolveResult(*(np.concatenate([getattr(r, f) for r in results])
                               for f in solvers.SolveResult._fields))


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


# --- style grids ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GridAxes:
  """The axes of a style grid; the cells are their Cartesian product, in the
  order of the fields (the last field varies fastest).

  ``style_layer_sets`` are subsets of layer names; ``style_layer_weights``
  (optional) gives one weight per layer of the set, for every set (default:
  ``1/len(set)``). ``style`` indexes the style images passed to
  ``style_grid``.
  """
  style: Tuple[int, ...] = (0,)
  style_layer_sets: Tuple[Tuple[str, ...], ...] = (
      networks.DEFAULT_STYLE_LAYERS["vgg16"],)
  style_layer_weights: Tuple[Tuple[float, ...] | None, ...] = (None,)
  content_weight: Tuple[float, ...] = (1.0,)
  style_weight: Tuple[float, ...] = (1e7,)
  tv_weight: Tuple[float, ...] = (1.0,)
  seed: Tuple[int, ...] = (0,)

  def cells(self) -> List[Dict[str, Any]]:
    """One dict of parameters per cell."""
    names = [f.name for f in dataclasses.fields(self)]
    values = [getattr(self, n) for n in names]
    for name, v in zip(names, values):
      if not v:
        raise NSTError(f"grid axis {name} is empty")
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]

  def varying(self) -> List[str]:
    """The axes with more than one value, in order."""
    return [f.name for f in dataclasses.fields(self)
            if len(getattr(self, f.name)) > 1]


class GridResult(NamedTuple):
  """Per cell: parameters, image (H, W, 3) in [0, 1], final weighted loss
  terms, iterations, evaluations and stop reason; plus wall seconds and the
  number of devices and chunks used."""
  cells: List[Dict[str, Any]]
  images: np.ndarray
  terms: List[Dict[str, float]]
  iterations: np.ndarray
  function_evaluations: np.ndarray
  status: List[str]
  wall_seconds: float
  devices: int
  chunks: int


def _layer_union(network: str, sets) -> Tuple[str, ...]:
  order = networks.layer_names(network)
  union = {l for s in sets for l in s}
  unknown = sorted(union - set(order))
  if unknown:
    raise NSTError(f"{network} has no layer {unknown[0]!r}; its layers are "
                   f"{', '.join(order)}")
  return tuple(l for l in order if l in union)


def _cell_weights(cell, union) -> np.ndarray:
  layers, given = cell["style_layer_sets"], cell["style_layer_weights"]
  if given is not None and len(given) != len(layers):
    raise NSTError(f"{len(given)} style layer weights for the layer set "
                   f"{','.join(layers)}")
  given = [1.0 / len(layers)] * len(layers) if given is None else list(given)
  w = dict(zip(layers, given))
  return np.asarray([w.get(l, 0.0) for l in union], np.float32)


def style_grid(params, content: np.ndarray, styles: Sequence[np.ndarray],
               axes: GridAxes, config: transfer.TransferConfig, *,
               mesh: Mesh | None = None, chunk_size: int | None = None,
               log_every: int = 0,
               on_log: Callable[[int, np.ndarray], None] | None = None,
               on_chunk: Callable[[int, int], None] | None = None,
               on_progress: Callable[[int, solvers.Progress], None]
               | None = None,
               should_stop: Callable[[], bool] | None = None,
               ) -> GridResult:
  """Runs every cell of ``axes`` as one batched, sharded optimisation.

  ``content`` is (H, W, 3); ``styles`` a list of (H_s, W_s, 3) of any sizes.
  ``config`` supplies everything the axes do not vary (network, pooling,
  content layers, optimizer, iterations, init, ...). ``chunk_size`` defaults
  to what fits in 60% of the devices' memory by ``transfer.estimate_memory``.
  ``on_log(iteration, totals (B,))`` is called every ``log_every`` iterations;
  ``on_progress`` and ``should_stop`` (a progress bar, Ctrl-C) work as in
  ``minimize_cells``.
  """
  cells = axes.cells()
  for c in cells:
    if not 0 <= c["style"] < len(styles):
      raise NSTError(f"style index {c['style']} but {len(styles)} style images")
  union = _layer_union(config.network, axes.style_layer_sets)
  config = dataclasses.replace(config, style_layers=union,
                               style_layer_weights=None)
  transfer.check_config(config)
  transfer.check_image_size(config, content.shape[:2])
  spec = config.spec()
  start = time.perf_counter()
  params = vgg.prepare_params(params, config.conv, spec.layers)

  # Targets: the content once, each style's Grams once, then one row per cell.
  per_style = [objective.make_targets(params, jnp.asarray(content),
                                      [jnp.asarray(s)], spec) for s in styles]
  index = np.asarray([c["style"] for c in cells])
  stack = lambda *leaves: np.stack([np.asarray(l) for l in leaves])
  targets = objective.Targets(
      jax.tree_util.tree_map(
          lambda v: np.broadcast_to(np.asarray(v), (len(cells),) + v.shape),
          per_style[0].content),
      jax.tree_util.tree_map(stack, *[per_style[i].style for i in index]),
      np.ones((len(cells), 1), np.float32))
  weights = objective.Weights(
      np.asarray([c["content_weight"] for c in cells], np.float32),
      np.asarray([c["style_weight"] for c in cells], np.float32),
      np.asarray([c["tv_weight"] for c in cells], np.float32),
      np.stack([_cell_weights(c, union) for c in cells]))
  for name in ("content", "style", "tv", "style_layers"):
    if not np.all(np.isfinite(getattr(weights, name))) or np.any(
        getattr(weights, name) < 0):
      raise NSTError(f"grid {name} weights must be finite and >= 0")
  x0 = np.stack([np.asarray(transfer.initial_image(
      config.init, content, styles[c["style"]], c["seed"])) for c in cells])

  mesh = cell_mesh() if mesh is None else mesh
  devices = mesh.devices.size
  if chunk_size is None:
    budget = transfer.available_memory()
    budget = None if budget is None else budget * (
        devices if jax.devices()[0].platform != "cpu" else 1)
    per_cell = dataclasses.replace(config, conv="direct")  # kernels shared
    chunk_size = chunk_size_for(
        transfer.estimate_memory(per_cell, content.shape[:2]), devices, budget)
  chunk = padded_size(min(chunk_size or len(cells), len(cells)), devices)
  fun = objective.objective_function(spec)
  hooks = ()
  if log_every > 0 and on_log is not None:
    hooks = (solvers.Hook(log_every, _batched_totals(spec),
                          lambda i, t: on_log(int(i), np.asarray(t))),)
  result = minimize_cells(
      fun, x0, (params, targets, weights), (None, 0, 0), config.solver(),
      mesh=mesh, chunk_size=chunk, hooks=hooks, on_chunk=on_chunk,
      on_progress=on_progress, should_stop=should_stop)
  terms = _final_terms(spec, result.x, params, targets, weights)
  return GridResult(
      cells=cells, images=np.clip(result.x, 0.0, 1.0), terms=terms,
      iterations=result.iterations,
      function_evaluations=result.function_evaluations,
      status=[solvers.STATUS_NAMES[int(s)] for s in result.status],
      wall_seconds=time.perf_counter() - start, devices=devices,
      chunks=math.ceil(len(cells) / chunk))


def _batched_totals(spec):
  fun = objective.objective_function(spec)
  batched = jax.vmap(lambda x, p, t, w: fun(x, p, t, w)[0],
                     in_axes=(0, None, 0, 0))
  return lambda x, p, t, w: batched(x, p, t, w)


def _final_terms(spec, x, params, targets, weights) -> List[Dict[str, float]]:
  fun = objective.objective_function(spec)
  batched = jax.vmap(lambda x, p, t, w: fun(x, p, t, w)[1],
                     in_axes=(0, None, 0, 0))
  terms = jax.jit(batched)(jnp.asarray(x), params, targets, weights)
  terms = jax.tree_util.tree_map(np.asarray, terms)
  return [{k: float(terms[k][i]) for k in transfer.TERMS}
          for i in range(x.shape[0])]


# --- the Gatys et al. Fig. 3 preset ---------------------------------------------

# Paper α/β (Caffe VGG, 0-255 input) → this project's β at α = 1 (torchvision
# weights, [0, 1] input): the paper's 1e-3 look corresponds to β = 1e7 here
# (nst_jax.transfer.TransferConfig), so β = 1e4 / (α/β)_paper.
GATYS_RATIOS = (1e-5, 1e-4, 1e-3, 1e-2)
GATYS_SCALE = 1e4


def gatys_fig3_axes(network: str = "vgg16") -> GridAxes:
  """Rows: style from relu1_1 (A) up to relu1_1…relu5_1 (E); columns: the
  paper's α/β = 1e-5 … 1e-2 (Gatys et al. 2016, Fig. 3; seed 003)."""
  style = networks.DEFAULT_STYLE_LAYERS[network]
  return GridAxes(
      style_layer_sets=tuple(style[:k] for k in range(1, len(style) + 1)),
      style_weight=tuple(GATYS_SCALE / r for r in GATYS_RATIOS))
