"""The problem layer: a configuration and images → what one run minimises.

Decided here, once per run, and nowhere else:

* **how the objective is evaluated** (``Evaluation``, from ``evaluation``):
  untiled, over tiles (``nst_jax.tiling``: the exact tiled objective) or with
  the image's rows sharded over several devices — ``config.tile_size``
  (``"auto"``: tiled only when the untiled memory estimate does not fit) and
  ``config.image_devices``. The memory estimate, the one-line description,
  the targets and the objective all read this one value;
* **the targets** (``style_targets``, ``content_targets``): computed through
  the same evaluation (tile by tile when the image spans several tiles);
* **the objective** (``objective_for``): ``objective.objective_function`` or
  ``tiling.objective_function``, row-sharded when asked, plus any extra
  ``Term`` s — terms that read only the optimised image and data of their own
  (video's temporal loss is one: Ruder et al. 2016, eq. 3);
* **the start image** (``initial_image``; Nikulin & Novak §4).

``make_problem`` puts them together into a ``Problem`` (objective, its
arguments, the start image, the evaluation); ``nst_jax.run.run_problem``
minimises any ``Problem`` — one image, a pyramid level, a video frame.

Array contract: images are float32 ``(H, W, 3)`` RGB in [0, 1].
"""

import functools
from typing import Any, Callable, NamedTuple, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import config as _config
from nst_jax import io
from nst_jax import memory
from nst_jax import objective
from nst_jax import targets
from nst_jax import tiling
from nst_jax import vgg
from nst_jax.config import TransferConfig, image_device_count
from nst_jax.errors import NSTError, check_choice, param


# --- how the objective is evaluated: decided once ------------------------------


class Evaluation(NamedTuple):
  """How a run of an ``(H, W)`` image is evaluated, decided once
  (``evaluation``): ``tile`` the tile interior in pixels (0: untiled),
  ``plan`` its ``tiling.Plan`` (``None`` untiled), ``devices`` how many
  devices share the image's rows and ``mesh`` their ``jax.sharding.Mesh``
  (``None`` for one), ``auto`` whether ``tile_size="auto"`` chose, and the
  memory estimate in ``bytes`` (``memory.estimate_bytes`` untiled,
  ``tiling.estimate_bytes`` tiled)."""
  shape: Tuple[int, int]
  tile: int
  plan: Any
  devices: int
  mesh: Any
  auto: bool
  bytes: int

  def message(self) -> str:
    """One line: untiled or in how many tiles, the estimate, the devices."""
    how = "auto: " if self.auto else ""
    need = self.bytes / 2**30
    if self.tile:
      p = self.plan
      text = (f"{how}tiled, {self.tile} px interiors: {p.count} "
              f"window{'s' if p.count > 1 else ''} of "
              f"{p.window[1]}x{p.window[0]} (margin {p.margin}), about "
              f"{need:.1f} GiB")
    else:
      text = f"{how}untiled, about {need:.1f} GiB"
    return text + (f"; rows over {self.devices} devices"
                   if self.devices > 1 else "")

  def tiles_of(self, shape: Sequence[int], layers: Sequence[str],
               network: str):
    """The plan that computes an image of ``shape`` ``(H, W, …)`` at
    ``layers`` tile by tile with this evaluation's tile size, or ``None``
    when it is untiled or the image fits one tile (targets of style images
    and content features: ``targets.make_targets``)."""
    if not self.tile:
      return None
    p = tiling.plan(network, layers, tuple(shape[:2]), self.tile)
    return p if p.count > 1 else None


def _untiled_bytes(config: TransferConfig, shape: Tuple[int, int]) -> int:
  spec = config.objective_spec()
  return memory.estimate_bytes(config.network, spec.layers, shape,
                               pooling=spec.pooling,
                               history_size=config.solver.history_size,
                               conv=config.conv)


def evaluation(config: TransferConfig, shape: Tuple[int, int], *,
               reuse_last: bool = True) -> Evaluation:
  """How an ``(H, W)`` run of ``config`` is evaluated (``Evaluation``).

  ``config.tile_size``: a number as given (0: untiled), ``"auto"`` by
  ``tiling.choose_tile_size`` (0 while the untiled estimate fits
  ``config.memory_budget`` — default the device's memory less a margin —
  less the process around XLA's buffers, ``memory.buffer_budget``; shared by
  ``config.image_devices`` devices). A tiled
  plan's ``reuse_last`` is as given (see ``tiling.Plan``). The estimate
  counts XLA's buffers of one evaluation and the solver's memory.
  """
  shape = (int(shape[0]), int(shape[1]))
  spec = config.objective_spec()
  size = tiling.parse_tile_size(config.tile_size)
  devices = image_device_count(config)
  auto = size == "auto"
  if auto:
    have = memory.buffer_budget(config.memory_budget, shape)
    if have is not None and devices > 1 and jax.default_backend() != "cpu":
      have *= devices
    size = tiling.choose_tile_size(config.network, spec, shape,
                                   history_size=config.solver.history_size,
                                   conv=config.conv, available=have)
  tile = int(size)
  p = (tiling.plan(config.network, spec.layers, shape, tile,
                   reuse_last=reuse_last) if tile else None)
  need = (tiling.estimate_bytes(config.network, spec, p,
                                history_size=config.solver.history_size,
                                conv=config.conv)
          if tile else _untiled_bytes(config, shape))
  return Evaluation(shape, tile, p, devices, _rows_mesh(devices), auto,
                    int(need))


def _rows_mesh(devices: int):
  """The ``Mesh`` of the first ``devices`` devices (``jax.devices()``: those
  of every process when JAX runs over several) with one axis ``"rows"``;
  ``None`` for one device."""
  if devices == 1:
    return None
  return jax.sharding.Mesh(np.asarray(jax.devices()[:devices]), ("rows",))


def untiled(shape: Tuple[int, int]) -> Evaluation:
  """The ``Evaluation`` of a run evaluated whole on one device, for a
  problem built without a ``TransferConfig`` (``synthetic.synthesize``);
  no memory estimate (0)."""
  return Evaluation((int(shape[0]), int(shape[1])), 0, None, 1, None, False,
                    0)


def tile_size_for(config: TransferConfig, shape: Tuple[int, int]) -> int:
  """The tile interior ``evaluation`` decides for an ``(H, W)`` run (0:
  untiled)."""
  return evaluation(config, shape).tile


def image_mesh(config: TransferConfig):
  """The ``jax.sharding.Mesh`` of the first ``image_device_count(config)``
  devices with one axis ``"rows"`` (``None`` for one device)."""
  return _rows_mesh(image_device_count(config))


def estimate_memory(config: TransferConfig, shape: Tuple[int, int]) -> int:
  """Bytes one run of ``config`` needs for an ``(H, W)`` image (the
  ``Evaluation``'s estimate)."""
  return evaluation(config, shape).bytes


def check_memory(config: TransferConfig, shape: Tuple[int, int]) -> int:
  """Refuses a tiled run that ``normalize_style`` cannot scale
  (``targets.check_scales_untiled``), a run whose estimate exceeds the
  device's memory, or, with
  ``config.memory_budget`` given, whose predicted peak
  (``memory.predicted_peak_bytes``) exceeds the budget whatever its tiles;
  returns the estimate."""
  ev = evaluation(config, shape)
  spec = config.objective_spec()
  if config.weights.normalize_style and spec.style_layers and ev.tiles_of(
      shape, spec.style_layers, config.network) is not None:
    targets.check_scales_untiled(spec)
  if config.memory_budget is not None:
    budget = memory.budget_bytes(config.memory_budget)
    peak = memory.predicted_peak_bytes(ev.bytes, shape, tiled=bool(ev.tile))
    if peak > budget:
      raise NSTError(
          f"a {shape[1]}x{shape[0]} transfer {ev.message()} is predicted to "
          f"peak at {peak / 2**30:.1f} GiB, over {param('memory_budget')} "
          f"{budget / 2**30:.1f} GiB: tile it ({param('tile_size')}=auto "
          "picks tiles that fit) or lower the size")
  return memory.check_fits(ev.bytes, shape)


def tiling_message(config: TransferConfig, shape: Tuple[int, int]) -> str:
  """``Evaluation.message`` of an ``(H, W)`` run of ``config``."""
  return evaluation(config, shape).message()


# --- the objective ---------------------------------------------------------------


class Term(NamedTuple):
  """An extra term of the objective that reads only the optimised image and
  data of its own: ``fn(image (H, W, 3), data) -> scalar``, already weighted,
  added to ``total`` and recorded under ``name``. Its data is an argument of
  the objective (a pytree), so new data (the next video frame's warped
  predecessors) change no compiled program; the term is independent of
  tiling and row sharding (it never sees features). ``fn`` should be a
  module-level function, so that equal terms are equal values (programs are
  cached per objective)."""
  name: str
  fn: Callable[[jax.Array, Any], jax.Array]


@functools.lru_cache(maxsize=None)
def _with_terms(fun, terms: Tuple[Term, ...]):
  """``f(image, params, targets, weights, extra) -> (total, terms)``: ``fun``
  plus each ``Term`` of ``terms`` at its data ``extra[k]``."""
  def objective_with_terms(image, params, targets, weights, extra):
    total, values = fun(image, params, targets, weights)
    values = dict(values)
    for term, data in zip(terms, extra):
      values[term.name] = term.fn(image, data)
      total = total + values[term.name]
    values["total"] = total
    return total, values
  return objective_with_terms


class CoarseView(NamedTuple):
  """The coarse view of a finer level (``Schedule.coarse_weight``): the
  first level's image ``shape`` ``(h, w)`` and the ``weight`` of
  ``objective.coarse_view_loss``; its targets travel in
  the level's ``Targets.coarse``. Hashable: a part of the objective's
  identity (programs are cached per objective)."""
  shape: Tuple[int, int]
  weight: float


@functools.lru_cache(maxsize=None)
def with_coarse_view(fun, spec: objective.Spec, view: CoarseView):
  """``fun`` (``f(image, params, targets, weights, *extra) -> (total,
  terms)``) plus ``view.weight · objective.coarse_view_loss`` at
  ``targets.coarse``, recorded as the term ``coarse`` and added to
  ``total``; ``fun`` itself sees the targets without ``coarse``. The view
  is evaluated whole (untiled: it is the first level's size) whatever
  evaluates ``fun``."""
  shape, weight = tuple(view.shape), float(view.weight)

  def objective_with_coarse_view(image, params, targets, weights, *extra):
    total, terms = fun(image, params, targets._replace(coarse=None), weights,
                       *extra)
    coarse = jnp.float32(weight) * objective.coarse_view_loss(
        params, image, targets.coarse, weights, spec, shape)
    terms = dict(terms)
    terms["coarse"] = coarse
    terms["total"] = total + coarse
    return terms["total"], terms
  return objective_with_coarse_view


@functools.lru_cache(maxsize=None)
def _row_sharded(fun, mesh):
  """``fun`` with its image argument constrained to rows sharded on ``mesh``."""
  rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("rows"))

  def sharded(image, *args):
    return fun(jax.lax.with_sharding_constraint(image, rows), *args)
  return sharded


def objective_of(spec: objective.Spec, ev: Evaluation,
                 terms: Tuple[Term, ...] = (),
                 coarse: CoarseView | None = None):
  """``f(image, params, targets, weights[, extra]) -> (total, terms)`` of
  ``spec`` evaluated as ``ev`` says: untiled (``objective.objective_function``)
  or over ``ev.plan``'s tiles (``tiling.objective_function``), rows sharded
  over ``ev.mesh`` (a sharding constraint: XLA partitions the network,
  exchanging halos; tiled, each device evaluates its own tiles), plus the
  extra ``terms`` (their data as a fifth argument, a tuple) and the
  ``coarse`` view (``with_coarse_view``: its targets in ``targets.coarse``)."""
  if ev.tile:
    fun = tiling.objective_function(spec, ev.plan, ev.mesh)
  else:
    fun = objective.objective_function(spec)
  if terms:
    fun = _with_terms(fun, tuple(terms))
  if coarse is not None:
    fun = with_coarse_view(fun, spec, coarse)
  if ev.mesh is not None:
    fun = _row_sharded(fun, ev.mesh)
  return fun


def objective_for(config: TransferConfig, shape: Tuple[int, int], *,
                  reuse_last: bool = True):
  """``(f, tile_size)``: the objective of an ``(H, W)`` run of ``config``
  (``objective_of`` at ``evaluation(config, shape, reuse_last=...)``)."""
  ev = evaluation(config, shape, reuse_last=reuse_last)
  return objective_of(config.objective_spec(), ev), ev.tile


def place_on_mesh(mesh, image, args):
  """``image`` ``(H, W, 3)`` with its rows sharded over ``mesh``'s
  ``"rows"`` axis and ``args`` (params, targets, weights) replicated on it.
  Over several processes each builds its shards from its own (identical)
  host copy (``jax.make_array_from_callback``)."""
  P = jax.sharding.PartitionSpec
  if jax.process_count() == 1:
    image = jax.device_put(image, jax.sharding.NamedSharding(mesh, P("rows")))
    args = jax.device_put(args, jax.sharding.NamedSharding(mesh, P()))
    return image, args

  def put(a, spec):
    a = np.asarray(jax.device_get(a))
    return jax.make_array_from_callback(
        a.shape, jax.sharding.NamedSharding(mesh, spec), lambda i: a[i])
  image = put(image, P("rows"))
  args = jax.tree_util.tree_map(lambda a: put(a, P()), args)
  return image, args


def gathered(a) -> np.ndarray:
  """A numpy copy of ``a``, gathered from every process when it spans
  devices of several (a collective: every process calls it at the same
  point)."""
  if isinstance(a, jax.Array) and not a.is_fully_addressable:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return np.asarray(multihost_utils.process_allgather(a, tiled=True))
  return np.asarray(a)


# --- targets and the start image --------------------------------------------------


def style_targets(params, content: np.ndarray, styles: Sequence[np.ndarray],
                  config: TransferConfig, guides=None, *,
                  ev: Evaluation | None = None) -> objective.Targets:
  """The objective's targets for one run, style images prepared for the
  representation.

  A representation that compares maps position by position (``same_size``)
  needs each style image (or each patch) at the content's shape: it is
  resized first (``io.resize_to``; this changes its aspect ratio when the
  shapes differ). With ``config.patches.count = N > 0`` the targets come from
  ``N`` random ``patches.size`` crops of each style image
  (``objective.random_crops``, seeded by ``config.init.seed``), averaged or
  kept as ``N`` instances (``config.patches.mode``; the thesis's style
  patches, seed 002). ``guides`` (``guided.Guides``: masks) go to
  ``targets.make_targets``. Images larger than a tile of the run's
  evaluation ``ev`` (default: ``evaluation(config, content shape)``) are
  computed tile by tile.
  """
  spec = config.objective_spec()
  ev = evaluation(config, content.shape[:2]) if ev is None else ev
  styles = [np.asarray(s) for s in styles]
  n = config.patches.count
  if n > 0:
    styles = [np.asarray(c) for i, s in enumerate(styles)
              for c in objective.random_crops(s, count=n,
                                              size=config.patches.size,
                                              seed=config.init.seed + i)]
  if spec.same_size:
    styles = [io.resize_to(s, content.shape[:2])
              if s.shape[:2] != content.shape[:2] else s for s in styles]
  return targets.make_targets(
      params, jnp.asarray(content), [jnp.asarray(s) for s in styles], spec,
      config.weights.style_blend, patches_per_style=max(n, 1),
      patch_mode=config.patches.mode, guides=guides, tile_size=ev.tile,
      normalize_style=config.weights.normalize_style)


def coarse_view_of(config: TransferConfig, level: int,
                   first_shape: Tuple[int, int]) -> CoarseView | None:
  """The ``CoarseView`` of level ``level`` (0 the first) of a
  coarse-to-fine run of ``config`` whose first level is ``first_shape``
  ``(h, w)``: None at the first level or with
  ``config.schedule.coarse_weight`` 0."""
  weight = float(config.schedule.coarse_weight)
  if level == 0 or weight == 0:
    return None
  return CoarseView(tuple(int(n) for n in first_shape), weight)


def check_coarse_view(config: TransferConfig,
                      first_shape: Tuple[int, int]) -> None:
  """Refuses, before any work, a coarse-to-fine run of ``config`` whose
  coarse view — the first level's objective at an ``(h, w)`` view,
  evaluated whole whatever tiles the finer levels use
  (``with_coarse_view``) — needs more than the device's memory; nothing
  without a coarse view (``coarse_weight`` 0)."""
  if float(config.schedule.coarse_weight) == 0:
    return
  need, have = _untiled_bytes(config, first_shape), memory.available_bytes()
  if have is not None and need > have:
    raise NSTError(
        f"the coarse view of the first level ({first_shape[1]}x"
        f"{first_shape[0]}) is evaluated whole and needs about "
        f"{need / 2**30:.1f} GiB but the device has {have / 2**30:.1f} GiB: "
        f"start from a smaller first level ({param('scales')}) or set "
        f"{param('coarse_weight')}=0")


def coarse_part(params, config: TransferConfig, level: int,
                first_content: np.ndarray, first_styles: Sequence[np.ndarray],
                guides=None) -> Tuple[CoarseView, objective.Targets] | None:
  """``make_problem``'s ``coarse`` for level ``level`` of a coarse-to-fine
  run of ``config``: the ``CoarseView`` (``coarse_view_of``) and the first
  level's targets from its content ``(h, w, 3)`` and styles (already in
  the run's colour space); None where there is no coarse view."""
  view = coarse_view_of(config, level, np.shape(first_content)[:2])
  if view is None:
    return None
  return view, style_targets(params, np.asarray(first_content, np.float32),
                             first_styles, config, guides)


def content_targets(params, content: np.ndarray, config: TransferConfig, *,
                    ev: Evaluation | None = None):
  """``{layer: (H_l, W_l, C_l)}``: the content features of ``content``
  ``(H, W, 3)`` at ``config``'s content layers, tile by tile when it spans
  several tiles of ``ev`` (default ``evaluation(config, its shape)``) — the
  content targets of ``targets.make_targets``, without the styles (a
  video's frames share one style target)."""
  spec = config.objective_spec()
  ev = evaluation(config, content.shape[:2]) if ev is None else ev
  image = jnp.asarray(content, jnp.float32)
  p = ev.tiles_of(image.shape, spec.layers, vgg.network_of(params))
  if p is not None:
    return tiling.content_features(params, image, spec.content_layers,
                                   spec.pooling, p)
  return objective._content_targets(  # pylint: disable=protected-access
      params, image, spec.content_layers, spec.pooling)


def initial_image(init: str, content: np.ndarray, style: np.ndarray | None,
                  seed: int) -> jax.Array:
  """The starting point (Nikulin & Novak §4): the content image, the (first)
  style image resized to the content's shape, or uniform white noise in [0, 1]
  drawn from ``jax.random.key(seed)``."""
  check_choice("init", init, _config.INITS)
  if init == "content":
    return jnp.asarray(content, jnp.float32)
  if init == "style":
    if style is None:
      raise NSTError(f"{param('init')} 'style' needs a style image")
    return jnp.asarray(io.resize_to(np.asarray(style), content.shape[:2]))
  return jax.random.uniform(jax.random.key(seed), content.shape, jnp.float32)


# --- the problem ------------------------------------------------------------------


class Cells(NamedTuple):
  """What makes a ``Problem`` a batch of independent cells (a style grid's
  cells, a folder's photos of one shape): its ``x0`` has a leading axis
  ``B``, ``args_axes`` mirrors its ``args`` like ``jax.vmap``'s ``in_axes``
  (0: per-cell data on axis 0, None: shared), and the run minimises every
  cell in one compiled loop sharded over ``mesh`` (axis ``"cells"``), in
  chunks of ``chunk_size`` cells (``sharded.minimize_cells``)."""
  args_axes: tuple
  mesh: Any
  chunk_size: int | None = None


class Problem(NamedTuple):
  """What one run minimises: ``fun(x, *args) -> (total, terms)``
  (``objective_of``), its ``args`` — ``(params, targets, weights)`` and,
  with extra terms, their data as a fourth — placed on the evaluation's
  devices, the start image ``x0`` (a buffer the run may donate), the
  ``spec``, the ``Evaluation`` and the extra ``terms``. With ``cells``
  (``Cells``) it is a batch of independent problems of one shape: ``fun``
  is one cell's objective, ``x0`` ``(B, H, W, 3)``. ``image_of`` maps the
  optimised variable to the image ``(H, W, 3)`` when it is not the pixels
  themselves (a parameterisation, e.g. a Laplacian pyramid's coefficients
  in ``parameterize``; None: ``x`` is the image)."""
  fun: Callable
  args: tuple
  x0: jax.Array
  spec: objective.Spec
  evaluation: Evaluation
  terms: Tuple[Term, ...] = ()
  cells: Cells | None = None
  image_of: Callable | None = None

  @property
  def targets(self) -> objective.Targets:
    return self.args[1]


def make_problem(params, content: np.ndarray, styles: Sequence[np.ndarray],
                 config: TransferConfig, *, guides=None,
                 init_image: np.ndarray | None = None,
                 targets: objective.Targets | None = None,
                 terms: Sequence[Term] = (), term_data: Sequence[Any] = (),
                 ev: Evaluation | None = None,
                 coarse: Tuple[CoarseView, objective.Targets] | None = None
                 ) -> Problem:
  """The ``Problem`` of one run of ``config`` on ``content`` ``(H, W, 3)``
  (already in the run's colour space: ``color.ColorControl.prepare``) and
  ``styles``; ``params`` prepared (``vgg.prepare_params``).

  ``targets`` (default ``style_targets``) and the start image — ``config.init``
  or ``init_image`` ``(H, W, 3)`` (in the run's colour space) — are computed
  through the one ``Evaluation`` ``ev`` (default: ``evaluation(config,
  content shape)``), which also chooses the objective. ``terms`` are extra
  ``Term`` s with their data ``term_data`` (one each); ``coarse`` — a
  ``CoarseView`` and the first level's targets (``coarse_part``) — adds
  the coarse view of a finer level (``with_coarse_view``)."""
  shape = tuple(content.shape[:2])
  ev = evaluation(config, shape) if ev is None else ev
  if tuple(ev.shape) != shape:
    raise ValueError(f"evaluation for {ev.shape}, content {shape}")
  if len(terms) != len(term_data):
    raise ValueError(f"{len(terms)} terms but {len(term_data)} data")
  spec = config.objective_spec()
  if targets is None:
    targets = style_targets(params, content, styles, config, guides, ev=ev)
  view = None
  if coarse is not None:
    view, first = coarse
    targets = targets._replace(coarse=first._replace(coarse=None))
  weights = config.weights.arrays(spec)
  if init_image is None:
    x0 = initial_image(config.init.kind, content,
                       styles[0] if len(styles) else None, config.init.seed)
  elif np.shape(init_image) != content.shape:
    raise NSTError(f"init image has shape {np.shape(init_image)}, the content "
                   f"image {content.shape}")
  else:
    x0 = init_image
  # A fresh buffer that the run owns, donated to the compiled loop.
  x0 = jnp.array(x0, jnp.float32, copy=True)
  args = (params, targets, weights)
  if terms:
    args = args + (tuple(term_data),)
  if ev.mesh is not None:   # rows over the devices, the data on each of them
    x0, args = place_on_mesh(ev.mesh, x0, args)
  return Problem(objective_of(spec, ev, tuple(terms), view), args, x0, spec,
                 ev, tuple(terms))
