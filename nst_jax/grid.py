"""Style grids: many transfers as ONE compiled, batched, sharded program.

Gatys et al. (2016, Fig. 3; seed 003) show style transfer as a grid — rows:
style from conv1_1 up to conv5_1, columns: α/β. Here a grid is the Cartesian
product of axes (style images, layer sets, per-layer weights, α, β, γ, init
seeds); every cell is one optimisation with its own solver state, and all
cells run in one ``jax.lax.while_loop`` (``solvers.minimize_batched``) whose
batch axis is sharded over every device of a ``jax.sharding.Mesh``.

``style_grid(params, content, styles, axes, config)`` builds the cells,
targets and weights and runs them with ``sharded.minimize_cells`` (the
generic batched, sharded minimisation that research code can call with its
own loss).

Shapes stay fixed across cells: a style representation's target has the
same shape for every style image (Grams are C × C whatever its size), and a
layer set is a 0/1 mask over the union of the layers, so one program serves
every cell.
"""

import dataclasses
import itertools
import math
import time
from typing import Any, Callable, Dict, List, NamedTuple, Sequence, Tuple

import jax

import numpy as np
from jax.sharding import Mesh

from nst_jax import io
from nst_jax import losses
from nst_jax import memory
from nst_jax import networks
from nst_jax import objective
from nst_jax import problem as _problem
from nst_jax import run
from nst_jax import sharded
from nst_jax import targets as targets_lib
from nst_jax import solvers
from nst_jax import transfer
from nst_jax import vgg
from nst_jax.errors import NSTError, param


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
  style_weight: Tuple[float, ...] = (losses.DEFAULT_STYLE_WEIGHT,)
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
               guides=None,
               on_level_start: Callable[[int, int, int], None] | None = None,
               ) -> GridResult:
  """Runs every cell of ``axes`` as one batched, sharded optimisation.

  ``content`` is (H, W, 3); ``styles`` a list of (H_s, W_s, 3) of any sizes.
  ``config`` supplies everything the axes do not vary (network, spec with
  its style representation, optimizer, iterations, init, colour control,
  style patches ...); the axes replace its style layers and loss weights.
  A cell has one style image, so blend weights are refused, and so is a
  representation that re-draws its target (the cells share one compiled
  loop). ``chunk_size`` defaults to what fits in 60% of the devices' memory
  by ``transfer.estimate_memory``. ``on_log(iteration, totals (C,))``
  (the running chunk's cells) is called every ``log_every`` iterations;
  ``on_progress`` and
  ``should_stop`` (a progress bar, Ctrl-C) work as in
  ``sharded.minimize_cells``, level by level through ``config.schedule``
  (``run_cells``: ``on_level_start(index, long edge, iterations)`` before
  each level; a ``Progress`` counts its own level's iterations, its
  ``iterations`` that level's count). ``guides`` (``guided.Guides``: the
  content's mask and one per style image) give every cell the regions of
  its style; the targets keep one shape (``K`` regions), so the cells still
  share one compiled program.
  """
  cells = axes.cells()
  for c in cells:
    if not 0 <= c["style"] < len(styles):
      raise NSTError(f"style index {c['style']} but {len(styles)} style images")
  config = cell_config(config, axes.style_layer_sets)
  spec = config.objective_spec()
  check_levels(config, content.shape[:2])
  start = time.perf_counter()
  params = vgg.prepare_params(params, config.conv, spec.layers)
  original = np.asarray(content, np.float32)
  mesh = sharded.cell_mesh() if mesh is None else mesh
  devices = mesh.devices.size
  if chunk_size is None:
    chunk_size = default_chunk_size(config, content.shape[:2], devices)
  chunk = sharded.padded_size(min(chunk_size or len(cells), len(cells)),
                              devices)
  log = None if on_log is None else (lambda logged: on_log(
      next(iter(logged.values()))["iteration"],
      np.asarray([r["total"] for r in logged.values()])))
  result = run_cells(params, [original], styles, cells, config, mesh=mesh,
                     chunk_size=chunk, log_every=log_every if log else 0,
                     on_log=log, on_chunk=on_chunk,
                     on_progress=on_progress, should_stop=should_stop,
                     guides=guides, on_level_start=on_level_start)
  return GridResult(
      cells=cells, images=result.images, terms=result.terms,
      iterations=result.iterations,
      function_evaluations=result.function_evaluations,
      status=result.status,
      wall_seconds=time.perf_counter() - start, devices=devices,
      chunks=math.ceil(len(cells) / chunk))


# --- the pieces of a batch of cells (style grids, folders of photos) -------------


def cell_config(config: transfer.TransferConfig,
                layer_sets: Sequence[Sequence[str]]
                ) -> transfer.TransferConfig:
  """``config`` for cells whose style layer sets are ``layer_sets``: its
  spec's style layers become their union (each cell's set is a 0/1 mask of
  per-layer weights over it, ``cell_data``) and blend weights are dropped.

  Refuses blend weights (a cell has one style image) and a representation
  that re-draws its target (the cells share one compiled loop).
  """
  if config.weights.style_blend is not None:
    raise NSTError(f"a grid cell has one style image: "
                   f"{param('style_blend_weights')} cannot be honoured")
  union = _layer_union(config.network, layer_sets)
  spec = dataclasses.replace(config.objective_spec(), style_layers=union)
  if objective.redraw_every(spec):
    raise NSTError("a style representation that re-draws its target cannot "
                   "run in a grid (its cells share one compiled loop)")
  if str(config.tile_size) not in ("auto", "0") or str(
      config.image_devices) != "1":
    raise NSTError(f"{param('tile_size')} and {param('image_devices')} apply "
                   "to one image (nst-stylize, video); a grid or a folder "
                   "batches its cells over the devices instead")
  config = config.replace(spec=spec,
                          weights=dict(style_layers=None, style_blend=None))
  transfer.check_config(config)
  return config


def cell_data(params, contents: Sequence[np.ndarray],
              styles: Sequence[np.ndarray], cells: Sequence[Dict[str, Any]],
              config: transfer.TransferConfig, *, guides=None
              ) -> Tuple[np.ndarray, objective.Targets, objective.Weights]:
  """Starting images, targets and weights of a batch of cells.

  ``contents``: original content images, float32 ``(H, W, 3)`` in [0, 1],
  all of one shape; ``styles``: style images ``(H_s, W_s, 3)`` of any
  sizes. Each cell is a dict of ``GridAxes`` values (``style`` indexes
  ``styles``) and may hold ``"content"``, an index into ``contents``
  (default 0). ``config`` comes from ``cell_config`` and ``params`` from
  ``vgg.prepare_params``. Colour control prepares each content with the
  styles (``color.ColorControl.prepare``) and targets are those of one
  transfer (``transfer.style_targets``), computed once per (content, style)
  pair. Returns ``x0`` ``(B, H, W, 3)`` and ``Targets``/``Weights`` whose
  leaves have the leading axis ``B = len(cells)``.
  """
  spec = config.objective_spec()
  union = spec.style_layers
  normalize = config.weights.normalize_style
  # Targets over the union of the cells' layers; with normalize_style each
  # cell's blend weight is divided below by the painting's scale over the
  # cell's own layers (a cell equals nst-stylize with its layer set).
  plain = config.replace(weights=dict(normalize_style=False))
  prepared, pair_targets = {}, {}
  for c in cells:
    i, s = c.get("content", 0), c["style"]
    if i not in prepared:
      prepared[i] = config.color.prepare(
          np.asarray(contents[i], np.float32), styles)
    if (i, s) not in pair_targets:
      content, prepared_styles = prepared[i]
      pair_targets[i, s] = transfer.style_targets(
          params, content, [prepared_styles[s]], plain,
          None if guides is None else guides.select(s))
  per_cell = [pair_targets[c.get("content", 0), c["style"]] for c in cells]
  if normalize:
    shape = prepared[cells[0].get("content", 0)][0].shape[:2]
    shapes = vgg.feature_shapes(config.network, shape, union, spec.pooling)
    per_cell = [t._replace(style_blend=t.style_blend / targets_lib.style_scales(
        spec, t.style, shapes, layers=c["style_layer_sets"]))
                for c, t in zip(cells, per_cell)]
  stack = lambda *leaves: np.stack([np.asarray(l) for l in leaves])
  if len(prepared) == 1:   # one content: its features shared, not copied
    content_targets = jax.tree_util.tree_map(
        lambda v: np.broadcast_to(np.asarray(v), (len(cells),) + v.shape),
        per_cell[0].content)
  else:
    content_targets = jax.tree_util.tree_map(
        stack, *[t.content for t in per_cell])
  targets = objective.Targets(
      content_targets,
      jax.tree_util.tree_map(stack, *[t.style for t in per_cell]),
      np.stack([np.asarray(t.style_blend) for t in per_cell]))
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
      config.init.kind, prepared[c.get("content", 0)][0],
      prepared[c.get("content", 0)][1][c["style"]], c["seed"]))
                 for c in cells])
  return x0, targets, weights


def _level_shapes(config: transfer.TransferConfig, shape: Tuple[int, int]
                  ) -> List[Tuple[int, int, Tuple[int, int]]]:
  """``[(long edge, iterations, (h, w))]`` of the levels ``run_cells``
  paints contents of ``shape`` ``(H, W)`` through: one level at ``shape``
  itself, several each at its long edge."""
  levels = config.schedule.levels(max(shape), config.solver.maxiter)
  if len(levels) == 1:
    return [(levels[0][0], levels[0][1], tuple(shape))]
  return [(size, n, io.long_edge_shape(shape, size)) for size, n in levels]


def check_levels(config: transfer.TransferConfig,
                 shape: Tuple[int, int]) -> None:
  """Refuses (``NSTError``, before any work) contents of ``shape`` ``(H,
  W)`` whose level of ``config.schedule`` (``run_cells``) is too small for
  the layers, or whose coarse view the device cannot hold
  (``problem.check_coarse_view``), as ``transfer.stylize_multiscale``
  does."""
  levels = _level_shapes(config, tuple(shape[:2]))
  for _, _, level_shape in levels:
    transfer.check_image_size(config, level_shape)
  if len(levels) > 1:
    _problem.check_coarse_view(config, levels[0][2])


class CellsResult(NamedTuple):
  """Per cell: the image ``(B, H, W, 3)`` in [0, 1] (its colours finished),
  the final weighted loss terms, iterations and evaluations summed over the
  levels, the stop reason of its last level, and its loss records through
  every level (``run.record`` s; with several levels each has a ``size``
  key, the level's long edge)."""
  images: np.ndarray
  terms: List[Dict[str, float]]
  iterations: np.ndarray
  function_evaluations: np.ndarray
  status: List[str]
  loss_history: Sequence[Sequence[Dict[str, Any]]] = ()


def cells_problem(params, contents: Sequence[np.ndarray],
                  styles: Sequence[np.ndarray],
                  cells: Sequence[Dict[str, Any]],
                  config: transfer.TransferConfig, *, mesh: Mesh,
                  chunk_size: int | None = None, guides=None,
                  init_images: np.ndarray | None = None,
                  coarse=None) -> _problem.Problem:
  """The ``problem.Problem`` of a batch of cells (``cell_data``'s inputs;
  all contents of one shape), each cell one transfer of ``config`` with its
  grid values: the untiled objective, ``args`` ``(params, targets,
  weights)`` with targets and weights per cell, ``cells`` for ``mesh`` in
  chunks of ``chunk_size``. ``init_images`` ``(B, H, W, 3)`` (RGB) replace
  the configured start images (the previous level of a coarse-to-fine
  run), put into the run's colour space (``color.ColorControl.to_luma``).
  ``coarse`` — a ``problem.CoarseView`` and the cells' first-level targets
  (stacked per cell) — adds a finer level's coarse view
  (``problem.with_coarse_view``), as ``transfer.stylize_multiscale`` does."""
  x0, targets, weights = cell_data(params, contents, styles, cells, config,
                                   guides=guides)
  if init_images is not None:
    x0 = np.stack([np.asarray(config.color.to_luma(im))
                   for im in init_images])
  spec = config.objective_spec()
  shape = tuple(x0.shape[1:3])
  fun = objective.objective_function(spec)
  if coarse is not None:
    view, first = coarse
    fun = _problem.with_coarse_view(fun, spec, view)
    targets = targets._replace(coarse=first._replace(coarse=None))
  return _problem.Problem(
      fun, (params, targets, weights), x0, spec, _problem.untiled(shape),
      cells=_problem.Cells((None, 0, 0), mesh, chunk_size))


def run_cells(params, contents: Sequence[np.ndarray],
              styles: Sequence[np.ndarray], cells: Sequence[Dict[str, Any]],
              config: transfer.TransferConfig, *, mesh: Mesh,
              chunk_size: int, log_every: int = 0, on_log=None,
              on_chunk=None, on_progress=None, should_stop=None, guides=None,
              on_level_start=None) -> CellsResult:
  """Runs ``cells`` (``cell_data``'s: one content index and grid values
  each; all contents of one shape) through the levels of
  ``config.schedule`` for the contents' long edge — the levels
  ``nst-stylize`` paints (``transfer.paint``), so that a cell equals the
  transfer run alone — each level a batched ``cells_problem`` run by the one
  run loop (``run.run_problem``: one compiled, sharded loop in chunks of
  ``chunk_size`` cells). With one level the styles are used as given; with
  several, each level resizes the contents to its long edge and the styles
  to ``transfer.style_size(level, schedule.style_scale)`` and starts every
  cell from its previous level's result upsampled (as
  ``transfer.stylize_multiscale``). ``params`` are prepared
  (``vgg.prepare_params``); ``log_every``/``on_log`` (``{cell: record}``),
  ``on_chunk``, ``on_progress`` and ``should_stop`` go to every level's
  run (a level's ``Progress`` counts its own iterations, its ``iterations``
  that level's count); ``on_level_start(index, long edge, iterations)`` is
  called before each level; a level that ends interrupted ends the run
  there."""
  full = tuple(np.shape(contents[cells[0].get("content", 0)])[:2])
  levels = _level_shapes(config, full)
  used = sorted({c.get("content", 0) for c in cells})
  images = None
  iterations = evaluations = 0
  histories = [[] for _ in cells]
  began = time.perf_counter()   # the records' seconds count from here
  for index, (size, n, shape) in enumerate(levels):
    if on_level_start is not None:
      on_level_start(index, size, n)
    level_contents, level_styles = list(contents), list(styles)
    if len(levels) > 1:
      for i in used:
        level_contents[i] = io.resize_to(np.asarray(contents[i], np.float32),
                                         shape)
      level_styles = [io.resize_long_edge(
          np.asarray(s, np.float32),
          transfer.style_size(size, config.schedule.style_scale))
                      for s in styles]
    level = config.replace(solver=dict(maxiter=n))
    previous = None if images is None else np.stack(   # upsampled
        [io.resize_to(im, shape) for im in images])
    view = _problem.coarse_view_of(config, index, levels[0][2])
    p = cells_problem(params, level_contents, level_styles, cells, level,
                      mesh=mesh, chunk_size=chunk_size, guides=guides,
                      init_images=previous,
                      coarse=None if view is None else (view, first))
    if index == 0:   # the first level's targets: every later level's view
      first = p.args[1]
    originals = [level_contents[c.get("content", 0)] for c in cells]
    result = run.run_problem(
        p, level.solver,
        finish=lambda x, o=originals: finish_images(config, x, o),
        log_every=log_every, on_log=on_log, on_chunk=on_chunk,
        on_progress=on_progress, should_stop=should_stop, started=began)
    images = result.image
    iterations = iterations + result.iterations
    evaluations = evaluations + result.function_evaluations
    status = result.status
    for h, records in zip(histories, result.loss_history):
      h.extend(dict(r, size=size) if len(levels) > 1 else r for r in records)
    if "interrupted" in status:
      break
  terms = [{k: h[-1][k] for k in transfer.TERMS} for h in histories]
  return CellsResult(images, terms, iterations, evaluations, status,
                     histories)


def default_chunk_size(config: transfer.TransferConfig,
                       shape: Tuple[int, int], devices: int) -> int | None:
  """Cells per compiled run of ``(H, W)`` images that fit in 60% of the
  devices' memory by ``transfer.estimate_memory`` (None: memory unknown)."""
  budget = memory.available_bytes()
  budget = None if budget is None else budget * (
      devices if jax.devices()[0].platform != "cpu" else 1)
  per_cell = config.replace(conv="direct")  # the kernels are shared
  return sharded.chunk_size_for(transfer.estimate_memory(per_cell, shape),
                                devices, budget)


def finish_images(config: transfer.TransferConfig, x,
                  originals: Sequence[np.ndarray]) -> np.ndarray:
  """Results ``(B, H, W, 3)`` clipped to [0, 1] and, under
  ``original_colors``, put back in the colours of each cell's original
  content (``color.ColorControl.finish``)."""
  images = np.clip(np.asarray(x), 0.0, 1.0)
  if config.color.original_colors:
    images = np.stack([config.color.finish(im, o)
                       for im, o in zip(images, originals)])
  return images


# --- the Gatys et al. Fig. 3 preset ---------------------------------------------

# Paper α/β (Caffe VGG, 0-255 input) → this project's β at α = 1 (torchvision
# weights, [0, 1] input, size-invariant content term): the paper's 1e-3 look
# corresponds to the default β here (losses.DEFAULT_STYLE_WEIGHT), so
# β = 1e-3 · default / (α/β)_paper.
GATYS_RATIOS = (1e-5, 1e-4, 1e-3, 1e-2)
GATYS_SCALE = 1e-3 * losses.DEFAULT_STYLE_WEIGHT


def gatys_fig3_axes(network: str = "vgg16") -> GridAxes:
  """Rows: style from relu1_1 (A) up to relu1_1…relu5_1 (E); columns: the
  paper's α/β = 1e-5 … 1e-2 (Gatys et al. 2016, Fig. 3; seed 003)."""
  style = networks.DEFAULT_STYLE_LAYERS[network]
  return GridAxes(
      style_layer_sets=tuple(style[:k] for k in range(1, len(style) + 1)),
      style_weight=tuple(GATYS_SCALE / r for r in GATYS_RATIOS))
