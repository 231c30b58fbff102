"""One style transfer, end to end, on arrays: the library call behind
``scripts/stylize.py``.

``stylize(params, content, styles, config)`` builds the objective
(``nst_jax.objective``), picks the initial image (Nikulin & Novak §4: content,
style or noise), runs the compiled solver loop (``nst_jax.solvers``) and
returns the image with its loss history and counts. Images are float32
``(H, W, 3)`` in [0, 1]; the caller loads and resizes them (``nst_jax.io``).
"""

import dataclasses
import functools
import time
from typing import Any, Callable, Dict, List, NamedTuple, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.color import ColorControl as _ColorControl
from nst_jax import memory
from nst_jax import networks
from nst_jax import objective
from nst_jax import solvers
from nst_jax import vgg
from nst_jax.errors import NSTError, check_choice, param

INITS = ("content", "style", "noise")
TERMS = ("total", "content", "style", "tv")


@dataclasses.dataclass(frozen=True)
class Init:
  """The starting image (Nikulin & Novak §4): ``"content"``, ``"style"``
  (the first style image resized) or ``"noise"`` (uniform, drawn from
  ``jax.random.key(seed)``). ``seed`` also seeds the style patches."""
  kind: str = "content"
  seed: int = 0


@dataclasses.dataclass(frozen=True)
class StylePatches:
  """Style targets from ``count`` seeded random ``size × size`` crops of each
  style image (0: the whole image), averaged into one target (``"mean"``)
  or kept as ``count`` styles of weight ``1/count`` (``"instances"``): the
  thesis's style patches (seed 002)."""
  count: int = 0
  size: int = 128
  mode: str = "mean"


@dataclasses.dataclass(frozen=True)
class TransferConfig:
  """Everything that defines a run besides the images and the weights,
  composed of parts that each hold their own fields once:

  * ``network`` and ``spec`` (``objective.Spec``: layers, pooling, style
    representation, precision, gradient checkpointing; ``None`` takes the
    network's default layers — Gatys et al. 2016: relu4_2; relu1_1 …
    relu5_1 — with the ``Gram`` representation);
  * ``weights`` (``objective.LossWeights``: α, β, γ, per-layer and blend
    weights). The default β = 800 at α = 1 (``losses.DEFAULT_STYLE_WEIGHT``)
    was chosen by measurement against the Lua implementation's published
    pictures (docs/benchmarks.md) for the torchvision weights and the
    size-invariant content term (``objective.Spec.size_invariant``); the
    paper's α/β = 1e-3…1e-4 refers to Caffe's 0-255 input and summed
    content term;
  * ``solver`` (``solvers.SolverConfig``: method, iterations, step size,
    L-BFGS memory); ``init`` (``Init``); ``color``
    (``color.ColorControl``); ``patches`` (``StylePatches``);
  * ``conv``, the convolution algorithm (``vgg.CONV_ALGORITHMS``);
  * ``tile_size``: the exact tiled objective (``nst_jax.tiling``) with tile
    interiors of that many pixels, 0 untiled, ``"auto"`` untiled when the
    memory estimate fits the device and tiled otherwise (``tile_size_for``);
  * ``image_devices``: the image's rows sharded over that many local devices
    (``"all"``: every one), XLA partitioning the network (``image_mesh``).

  Change one field of a part with ``config.replace(solver=dict(maxiter=10))``.
  """
  network: str = "vgg16"
  spec: objective.Spec | None = None
  weights: objective.LossWeights = objective.LossWeights()
  solver: solvers.SolverConfig = solvers.SolverConfig()
  init: Init = Init()
  color: _ColorControl = _ColorControl()
  patches: StylePatches = StylePatches()
  conv: str = "auto"
  tile_size: int | str = "auto"
  image_devices: int | str = 1

  def objective_spec(self) -> objective.Spec:
    """``spec``, or the network's default layers with the Gram style."""
    if self.spec is not None:
      return self.spec
    return objective.Spec(networks.DEFAULT_CONTENT_LAYERS[self.network],
                          networks.DEFAULT_STYLE_LAYERS[self.network])

  def replace(self, **parts) -> "TransferConfig":
    """A copy with parts replaced: a part given as a dict changes only those
    fields of it (``replace(solver=dict(maxiter=10), conv="direct")``)."""
    changes = {}
    for name, value in parts.items():
      if isinstance(value, dict):
        current = (self.objective_spec() if name == "spec"
                   else getattr(self, name))
        value = dataclasses.replace(current, **value)
      changes[name] = value
    return dataclasses.replace(self, **changes)


class TransferResult(NamedTuple):
  """The result clipped to [0, 1], one ``{iteration, total, content, style,
  tv}`` record per logged iteration (the last one always), solver counts,
  the stop reason (``solvers.Status`` name), and seconds spent compiling plus
  optimising."""
  image: np.ndarray
  loss_history: List[Dict[str, float]]
  iterations: int
  function_evaluations: int
  status: str
  wall_seconds: float


def check_config(config: TransferConfig) -> None:
  """Raises ``NSTError`` for a configuration no run could use."""
  check_choice("network", config.network, networks.NETWORKS)
  check_choice("solver.method", config.solver.method, solvers.METHODS)
  check_choice("init.kind", config.init.kind, INITS)
  if config.solver.maxiter < 0:
    raise NSTError(f"{param('solver.maxiter')} must be >= 0, got "
                   f"{config.solver.maxiter}")
  if not config.solver.learning_rate > 0:
    raise NSTError(f"{param('solver.learning_rate')} must be > 0, got "
                   f"{config.solver.learning_rate}")
  if config.solver.history_size < 1:
    raise NSTError(f"{param('solver.history_size')} must be >= 1, got "
                   f"{config.solver.history_size}")
  check_choice("conv", config.conv, vgg.CONV_ALGORITHMS)
  objective.check_spec(config.objective_spec(), config.network)
  if config.patches.count < 0 or config.patches.size < 1:
    raise NSTError(f"{param('patches.count')} must be >= 0 and "
                   f"{param('patches.size')} >= 1, got {config.patches.count} "
                   f"and {config.patches.size}")
  check_choice("patches.mode", config.patches.mode, objective.PATCH_MODES)
  from nst_jax import tiling  # pylint: disable=g-import-not-at-top
  if tiling.parse_tile_size(config.tile_size) not in (0, "auto"):
    tiling.check_tileable(config.objective_spec())
  image_device_count(config)
  config.color.check()


def check_image_size(config: TransferConfig, shape: Tuple[int, int]) -> None:
  """Refuses images too small to reach the deepest layer (without computing)."""
  objective.check_image_size(config.network, config.objective_spec(), shape)


def tile_size_for(config: TransferConfig, shape: Tuple[int, int]) -> int:
  """The tile interior ``config.tile_size`` means for an ``(H, W)`` image: a
  number as given (0: untiled), ``"auto"`` by ``tiling.choose_tile_size``
  (0 while the untiled estimate fits the device's memory, shared by
  ``image_device_count`` devices)."""
  from nst_jax import tiling  # pylint: disable=g-import-not-at-top
  size = tiling.parse_tile_size(config.tile_size)
  if size != "auto":
    return int(size)
  spec = config.objective_spec()
  have = memory.available_bytes()
  devices = image_device_count(config)
  if have is not None and devices > 1 and jax.default_backend() != "cpu":
    have *= devices
  return tiling.choose_tile_size(config.network, spec, shape,
                                 history_size=config.solver.history_size,
                                 conv=config.conv, available=have)


def image_device_count(config: TransferConfig) -> int:
  """The number of devices ``config.image_devices`` names (``"all"``: every
  device, of every process after ``jax.distributed.initialize``); raises
  ``NSTError`` for more than there are."""
  value, have = config.image_devices, jax.device_count()
  if isinstance(value, str) and value.strip().lower() == "all":
    return have
  try:
    count = int(value)
  except (TypeError, ValueError):
    raise NSTError(f"{param('image_devices')} must be a number or 'all', got "
                   f"{value!r}") from None
  if not 1 <= count <= have:
    raise NSTError(f"{param('image_devices')} must be between 1 and the "
                   f"{have} device(s), got {count}")
  return count


def image_mesh(config: TransferConfig):
  """The ``jax.sharding.Mesh`` of the first ``image_device_count(config)``
  devices (``jax.devices()``: those of every process when JAX runs over
  several) with one axis ``"rows"`` (``None`` for one device)."""
  count = image_device_count(config)
  if count == 1:
    return None
  return jax.sharding.Mesh(np.asarray(jax.devices()[:count]), ("rows",))


def objective_for(config: TransferConfig, shape: Tuple[int, int], *,
                  reuse_last: bool = True):
  """``(f, tile_size)``: the objective ``f(image, params, targets, weights)
  -> (total, terms)`` of an ``(H, W)`` run of ``config`` — untiled
  (``objective.objective_function``) or over tiles
  (``tiling.objective_function``, its plan's ``reuse_last`` as given: see
  ``tiling.Plan``) as ``tile_size_for`` decides — and with
  ``image_devices > 1`` the image's rows sharded over ``image_mesh`` (a
  sharding constraint: XLA partitions the network, exchanging halos; tiled,
  each device evaluates its own tiles, one at a time)."""
  from nst_jax import tiling  # pylint: disable=g-import-not-at-top
  spec = config.objective_spec()
  tile = tile_size_for(config, shape)
  mesh = image_mesh(config)
  if tile:
    fun = tiling.objective_function(
        spec, tiling.plan(config.network, spec.layers, shape, tile,
                          reuse_last=reuse_last), mesh)
  else:
    fun = objective.objective_function(spec)
  if mesh is not None:
    fun = _row_sharded(fun, mesh)
  return fun, tile


@functools.lru_cache(maxsize=None)
def _row_sharded(fun, mesh):
  """``fun`` with its image argument constrained to rows sharded on ``mesh``."""
  rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("rows"))

  def sharded(image, *args):
    return fun(jax.lax.with_sharding_constraint(image, rows), *args)
  return sharded


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


def _gathered(a) -> np.ndarray:
  """A numpy copy of ``a``, gathered from every process when it spans
  devices of several (a collective: every process calls it at the same
  point)."""
  if isinstance(a, jax.Array) and not a.is_fully_addressable:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return np.asarray(multihost_utils.process_allgather(a, tiled=True))
  return np.asarray(a)


def tiling_message(config: TransferConfig, shape: Tuple[int, int]) -> str:
  """One line saying how an ``(H, W)`` run of ``config`` is evaluated:
  untiled or in how many tiles, the memory estimate, and the devices."""
  from nst_jax import tiling  # pylint: disable=g-import-not-at-top
  tile = tile_size_for(config, shape)
  need = estimate_memory(config, shape) / 2**30
  how = ("auto: " if tiling.parse_tile_size(config.tile_size) == "auto"
         else "")
  if tile:
    spec = config.objective_spec()
    p = tiling.plan(config.network, spec.layers, shape, tile)
    text = (f"{how}tiled, {tile} px interiors: {p.count} "
            f"window{'s' if p.count > 1 else ''} of "
            f"{p.window[1]}x{p.window[0]} (margin {p.margin}), about "
            f"{need:.1f} GiB")
  else:
    text = f"{how}untiled, about {need:.1f} GiB"
  devices = image_device_count(config)
  return text + (f"; rows over {devices} devices" if devices > 1 else "")


def estimate_memory(config: TransferConfig, shape: Tuple[int, int]) -> int:
  """Bytes one run of ``config`` needs for an ``(H, W)`` image
  (``memory.estimate_bytes``; tiled: ``tiling.estimate_bytes``)."""
  spec = config.objective_spec()
  from nst_jax import tiling  # pylint: disable=g-import-not-at-top
  tile = tile_size_for(config, shape)
  if tile:
    return tiling.estimate_bytes(
        config.network, spec, tiling.plan(config.network, spec.layers, shape,
                                          tile),
        history_size=config.solver.history_size, conv=config.conv)
  return memory.estimate_bytes(config.network, spec.layers, shape,
                               pooling=spec.pooling,
                               history_size=config.solver.history_size,
                               conv=config.conv)


def check_memory(config: TransferConfig, shape: Tuple[int, int]) -> int:
  """Refuses a run whose estimate exceeds the device's memory; returns it."""
  return memory.check_fits(estimate_memory(config, shape), shape)


def initial_image(init: str, content: np.ndarray, style: np.ndarray | None,
                  seed: int) -> jax.Array:
  """The starting point (Nikulin & Novak §4): the content image, the (first)
  style image resized to the content's shape, or uniform white noise in [0, 1]
  drawn from ``jax.random.key(seed)``."""
  check_choice("init", init, INITS)
  if init == "content":
    return jnp.asarray(content, jnp.float32)
  if init == "style":
    if style is None:
      raise NSTError(f"{param('init')} 'style' needs a style image")
    from nst_jax import io  # resizing is the I/O module's job
    return jnp.asarray(io.resize_to(np.asarray(style), content.shape[:2]))
  return jax.random.uniform(jax.random.key(seed), content.shape, jnp.float32)


def _record(iteration, terms, seconds: float,
            style_layers: Sequence[str]) -> Dict[str, Any]:
  per_layer = np.asarray(terms["style_layers"]).reshape(-1)
  return {"iteration": int(iteration), "seconds": round(float(seconds), 3),
          **{k: float(np.asarray(terms[k])) for k in TERMS},
          "style_layers": {l: float(v) for l, v in zip(style_layers,
                                                       per_layer)}}


# What ``stylize`` tells ``on_progress`` (the library's one progress type).
Progress = solvers.Progress


class RunState(NamedTuple):
  """What a transfer needs to continue after a crash (``stylize``'s
  ``on_checkpoint`` receives it, ``resume=`` takes it back): ``solver``, the
  whole ``solvers.SolverState`` as named numpy arrays
  (``checkpoint.flatten``: the iterate, L-BFGS memory or Adam moments,
  iteration and evaluation counts, the re-draw round), the loss ``history``
  so far, the ``seconds`` spent and the ``iteration`` reached.
  ``io.save_arrays`` stores it without pickle."""
  solver: Dict[str, np.ndarray]
  history: List[Dict[str, Any]]
  seconds: float
  iteration: int
  # A coarse-to-fine run (``stylize_multiscale``) also says at which
  # ``level`` (index into its scales) the state is and what the finished
  # levels left (``Levels``); a single-level run leaves the defaults.
  level: int = 0
  before: "Levels | None" = None


class Levels(NamedTuple):
  """What the finished levels of a coarse-to-fine run add to its result:
  their records (each with a ``size`` key), iterations, evaluations and
  seconds."""
  history: Sequence[Dict[str, Any]] = ()
  iterations: int = 0
  evaluations: int = 0
  seconds: float = 0.0


@functools.lru_cache(maxsize=None)
def _terms_on_device(fun):
  """The terms of objective ``fun`` (``objective_for``) at an image."""
  return lambda x, *args: fun(x, *args)[1]


@functools.lru_cache(maxsize=None)
def _terms_program(fun):
  """The loss terms at an image, compiled (one forward pass, no gradient)."""
  return jax.jit(_terms_on_device(fun))


def style_targets(params, content: np.ndarray, styles: Sequence[np.ndarray],
                  config: TransferConfig, guides=None) -> objective.Targets:
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
  ``objective.make_targets``.
  """
  from nst_jax import io  # resizing is the I/O module's job
  spec = config.objective_spec()
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
  return objective.make_targets(
      params, jnp.asarray(content), [jnp.asarray(s) for s in styles], spec,
      config.weights.style_blend, patches_per_style=max(n, 1),
      patch_mode=config.patches.mode, guides=guides,
      tile_size=tile_size_for(config, content.shape[:2]))


def _clip_on_device(x, *args):
  del args
  return jnp.clip(x, 0.0, 1.0)


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

  Raises ``NSTError`` if the loss becomes NaN or infinite, or ``resume``
  does not fit this run.
  """
  check_config(config)
  check_image_size(config, content.shape[:2])
  check_memory(config, content.shape[:2])
  spec = config.objective_spec()
  start = time.perf_counter()
  params = vgg.prepare_params(params, config.conv, spec.layers)
  original = np.asarray(content, np.float32)
  content, styles = config.color.prepare(original, styles)
  targets = style_targets(params, content, styles, config, guides)
  weights = config.weights.arrays(spec)
  fun, _ = objective_for(config, content.shape[:2])
  history: List[Dict[str, Any]] = list(resume.history) if resume else []
  offset = float(resume.seconds) if resume else 0.0
  clock = lambda: time.perf_counter() - start + offset
  current = {"targets": targets}   # re-drawn targets, for the live records

  def log(iteration, terms):
    history.append(_record(iteration, terms, clock(), spec.style_layers))
    if on_log is not None:
      on_log(history[-1])

  hooks = [solvers.Hook(log_every, _terms_on_device(fun), log)]
  if snapshot_every > 0 and on_snapshot is not None:
    hooks.append(solvers.Hook(
        snapshot_every, _clip_on_device,
        lambda i, x: int(i) > 0 and on_snapshot(
            int(i), config.color.finish(_gathered(x), original))))
  on_chunk = None
  iterations_wanted = config.solver.maxiter
  if on_progress is not None:
    latest = []  # a record refreshed between log hooks for a live display

    def on_chunk(p: solvers.Progress):
      newest = max(latest + history[-1:], key=lambda r: r["seconds"],
                   default=None)
      if p.running and (newest is None or
                        clock() - newest["seconds"] > terms_seconds):
        terms = _terms_program(fun)(p.x(), params, current["targets"],
                                     weights)
        latest[:] = [_record(p.iteration, terms, clock(), spec.style_layers)]
        newest = latest[0]
      on_progress(p._replace(value=float(np.asarray(p.value)),
                             evaluations=int(np.asarray(p.evaluations)),
                             iterations=iterations_wanted, seconds=clock(),
                             record=newest))
  if init_image is None:
    x0 = initial_image(config.init.kind, content,
                       styles[0] if styles else None, config.init.seed)
  elif np.shape(init_image) != content.shape:
    raise NSTError(f"init image has shape {np.shape(init_image)}, the content "
                   f"image {content.shape}")
  else:
    x0 = config.color.to_luma(init_image)  # continue in the run's space
  # A fresh buffer that this function owns, donated to the compiled loop.
  x0 = jnp.array(x0, jnp.float32, copy=True)
  mesh = image_mesh(config)
  if mesh is not None:   # rows over the devices, the data on each of them
    x0, (params, targets, weights) = place_on_mesh(
        mesh, x0, (params, targets, weights))
  if on_progress is not None:   # before compiling: the display can say so
    on_progress(Progress(resume.iteration if resume else 0, float("nan"), 0,
                         True, None, iterations_wanted, clock(), None))
  chunked = on_chunk is not None or should_stop is not None
  restart = None
  period = objective.redraw_every(spec)
  if period > 0:
    def redraw(iteration, args):
      targets = objective.redraw_targets(spec, args[1], iteration)
      if targets is None:
        return None
      current["targets"] = targets
      return (args[0], targets, args[2])
    restart = solvers.Restart(period, redraw)
  saver, state = None, None
  if on_checkpoint is not None:
    from nst_jax import checkpoint  # pylint: disable=g-import-not-at-top
    saver = solvers.Checkpoint(checkpoint_every, lambda s: on_checkpoint(
        RunState(checkpoint.flatten(s), list(history), clock(),
                 int(s.loop.i))))
  if resume is not None:
    from nst_jax import checkpoint  # pylint: disable=g-import-not-at-top
    state = checkpoint.unflatten(resume.solver, solvers.state_template(
        fun, x0, config.solver, (params, targets, weights)),
                                 what="resumed state")
    if mesh is not None:   # replicated on the run's devices, like its data
      state = state._replace(loop=place_on_mesh(mesh, x0, state.loop)[1])
  result = solvers.minimize(
      fun, x0, config.solver, hooks, (params, targets, weights),
      donate=True, should_stop=should_stop, on_chunk=on_chunk,
      chunk_seconds=progress_seconds if chunked else None, restart=restart,
      checkpoint=saver, resume=state)
  image = _gathered(jnp.clip(result.x, 0.0, 1.0))
  iterations = int(result.iterations)
  status = solvers.status_name(int(result.status))
  if status == "non_finite" or not np.all(np.isfinite(image)):
    raise NSTError(
        f"the loss became NaN or infinite by iteration {iterations}: lower "
        f"{param('solver.learning_rate')} or the loss weights")
  if not history or history[-1]["iteration"] != iterations:
    log(iterations, _terms_program(fun)(result.x, params,
                                         current["targets"], weights))
  return TransferResult(config.color.finish(image, original), history,
                        iterations, int(result.function_evaluations), status,
                        clock())


def style_size(size: int, style_scale: float) -> int:
  """The long edge of the style images for a ``size`` px output: ``size ·
  style_scale`` (jcjohnson/neural-style's ``-style_scale``: below 1 the
  style's brush strokes and motifs come out larger relative to the picture,
  above 1 smaller)."""
  if not (style_scale > 0 and np.isfinite(style_scale)):
    raise NSTError(f"{param('style_scale')} must be a positive number, got "
                   f"{style_scale}")
  return max(1, int(round(size * style_scale)))


# The default pyramid (``pyramid``): levels down to this long edge. 256 px
# is the size the default style weight was calibrated at (docs/benchmarks.md,
# issue 12); a larger output painted at one scale gets finer strokes and none
# of the painting's large structures (VGG's receptive fields cover less of
# it), so it starts from the 256 px result instead.
PYRAMID_BASE = 256
# Iterations of every level after the first, as a fraction of the first's:
# measured on The Scream at 512 px (docs/benchmarks.md), 500 + 100 kept the
# 256 px look better than 300 + 200 (style SWD at 256 px 0.162 against
# 0.172; one level of 500: 0.219) at less than half one level's cost.
PYRAMID_FINE_FRACTION = 0.2


def pyramid(size: int, iterations: int, base: int = PYRAMID_BASE
            ) -> Tuple[List[int], List[int]]:
  """``(scales, scale_iterations)`` of the default coarse-to-fine run for an
  output long edge ``size`` and ``iterations``: ``size`` halved while the
  half is at least ``base`` (512 → 256, 512; 1000 → 250, 500, 1000 with
  ``base=200``), the coarsest level ``iterations`` and each finer one
  ``PYRAMID_FINE_FRACTION`` of them (at least 1): a finer level starts from the upsampled result and only adds detail.
  ``base`` 0, ``size`` below ``2·base`` or no iterations give one level:
  ``([size], [iterations])``."""
  size, iterations, base = int(size), int(iterations), int(base)
  if size < 1 or base < 0:
    raise NSTError(f"pyramid: size {size} and base {base} must be positive")
  scales = [size]
  while base > 0 and iterations > 0 and scales[0] // 2 >= base:
    scales.insert(0, scales[0] // 2)
  fine = max(1, int(round(iterations * PYRAMID_FINE_FRACTION)))
  return scales, [iterations] + [fine] * (len(scales) - 1)


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
  only add detail. ``scale_iterations`` gives the iterations of each level
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
  from nst_jax import io  # resizing is the I/O module's job
  scales = [int(s) for s in scales]
  if not scales or min(scales) < 1:
    raise NSTError(f"{param('scales')} must be positive long edges, got "
                   f"{scales}")
  if scales != sorted(scales):
    raise NSTError(f"{param('scales')} must increase (coarse to fine), got "
                   f"{scales}")
  if scale_iterations is None:
    scale_iterations = [config.solver.maxiter] * len(scales)
  scale_iterations = [int(n) for n in scale_iterations]
  if len(scale_iterations) != len(scales):
    raise NSTError(f"got {len(scale_iterations)} iteration counts for "
                   f"{len(scales)} scales")
  if resume is not None and not 0 <= resume.level < len(scales):
    raise NSTError(f"the resumed state is at level {resume.level}, but the "
                   f"run has {len(scales)} scales")
  content = np.asarray(content, np.float32)
  check_config(config)
  for size in scales:   # refuse before any work, as stylize would per level
    shape = io.long_edge_shape(content.shape[:2], size)
    check_image_size(config, shape)
    check_memory(config, shape)
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
