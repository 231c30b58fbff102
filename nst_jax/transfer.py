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
    weights). The default β/α = 1e7 is calibrated by eye at 256-512 px for
    the torchvision weights, whose normalised input is ~1/58 of Caffe's
    0-255 scale (Gram losses shrink ~58⁴, content losses ~58²); the paper's
    α/β = 1e-3…1e-4 refers to Caffe's input;
  * ``solver`` (``solvers.SolverConfig``: method, iterations, step size,
    L-BFGS memory); ``init`` (``Init``); ``color``
    (``color.ColorControl``); ``patches`` (``StylePatches``);
  * ``conv``, the convolution algorithm (``vgg.CONV_ALGORITHMS``).

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
  config.color.check()


def check_image_size(config: TransferConfig, shape: Tuple[int, int]) -> None:
  """Refuses images too small to reach the deepest layer (without computing)."""
  objective.check_image_size(config.network, config.objective_spec(), shape)


def estimate_memory(config: TransferConfig, shape: Tuple[int, int]) -> int:
  """Bytes one run of ``config`` needs for an ``(H, W)`` image
  (``memory.estimate_bytes``)."""
  spec = config.objective_spec()
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


@functools.lru_cache(maxsize=None)
def _terms_on_device(spec: objective.Spec):
  fun = objective.objective_function(spec)
  return lambda x, *args: fun(x, *args)[1]


@functools.lru_cache(maxsize=None)
def _terms_program(spec: objective.Spec):
  """The loss terms at an image, compiled (one forward pass, no gradient)."""
  return jax.jit(_terms_on_device(spec))


def style_targets(params, content: np.ndarray, styles: Sequence[np.ndarray],
                  config: TransferConfig) -> objective.Targets:
  """The objective's targets for one run, style images prepared for the
  representation.

  A representation that compares maps position by position (``same_size``)
  needs each style image (or each patch) at the content's shape: it is
  resized first (``io.resize_to``; this changes its aspect ratio when the
  shapes differ). With ``config.patches.count = N > 0`` the targets come from
  ``N`` random ``patches.size`` crops of each style image
  (``objective.random_crops``, seeded by ``config.init.seed``), averaged or
  kept as ``N`` instances (``config.patches.mode``; the thesis's style
  patches, seed 002).
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
      patch_mode=config.patches.mode)


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
            ) -> TransferResult:
  """Paints ``content`` ``(H, W, 3)`` in the style of ``styles``.

  ``init_image`` ``(H, W, 3)``, when given, is the starting point instead of
  ``config.init`` (``stylize_multiscale`` passes the upsampled result of the
  coarser level). Colour control (``config.color``) happens here: see
  ``color.ColorControl``.

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

  Raises ``NSTError`` if the loss becomes NaN or infinite.
  """
  check_config(config)
  check_image_size(config, content.shape[:2])
  check_memory(config, content.shape[:2])
  spec = config.objective_spec()
  start = time.perf_counter()
  params = vgg.prepare_params(params, config.conv, spec.layers)
  original = np.asarray(content, np.float32)
  content, styles = config.color.prepare(original, styles)
  targets = style_targets(params, content, styles, config)
  weights = config.weights.arrays(spec)
  fun = objective.objective_function(spec)
  history: List[Dict[str, Any]] = []
  clock = lambda: time.perf_counter() - start
  current = {"targets": targets}   # re-drawn targets, for the live records

  def log(iteration, terms):
    history.append(_record(iteration, terms, clock(), spec.style_layers))
    if on_log is not None:
      on_log(history[-1])

  hooks = [solvers.Hook(log_every, _terms_on_device(spec), log)]
  if snapshot_every > 0 and on_snapshot is not None:
    hooks.append(solvers.Hook(
        snapshot_every, _clip_on_device,
        lambda i, x: int(i) > 0 and on_snapshot(
            int(i), config.color.finish(np.asarray(x), original))))
  on_chunk = None
  iterations_wanted = config.solver.maxiter
  if on_progress is not None:
    latest = []  # a record refreshed between log hooks for a live display

    def on_chunk(p: solvers.Progress):
      newest = max(latest + history[-1:], key=lambda r: r["seconds"],
                   default=None)
      if p.running and (newest is None or
                        clock() - newest["seconds"] > terms_seconds):
        terms = _terms_program(spec)(p.x(), params, current["targets"],
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
  if on_progress is not None:   # before compiling: the display can say so
    on_progress(Progress(0, float("nan"), 0, True, None, iterations_wanted,
                         clock(), None))
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
  result = solvers.minimize(
      fun, x0, config.solver, hooks, (params, targets, weights),
      donate=True, should_stop=should_stop, on_chunk=on_chunk,
      chunk_seconds=progress_seconds if chunked else None, restart=restart)
  image = np.asarray(jnp.clip(result.x, 0.0, 1.0))
  iterations = int(result.iterations)
  status = solvers.status_name(int(result.status))
  if status == "non_finite" or not np.all(np.isfinite(image)):
    raise NSTError(
        f"the loss became NaN or infinite by iteration {iterations}: lower "
        f"{param('solver.learning_rate')} or the loss weights")
  if not history or history[-1]["iteration"] != iterations:
    log(iterations, _terms_program(spec)(result.x, params,
                                         current["targets"], weights))
  return TransferResult(config.color.finish(image, original), history,
                        iterations, int(result.function_evaluations), status,
                        time.perf_counter() - start)


def style_size(size: int, style_scale: float) -> int:
  """The long edge of the style images for a ``size`` px output: ``size ·
  style_scale`` (jcjohnson/neural-style's ``-style_scale``: below 1 the
  style's brush strokes and motifs come out larger relative to the picture,
  above 1 smaller)."""
  if not (style_scale > 0 and np.isfinite(style_scale)):
    raise NSTError(f"{param('style_scale')} must be a positive number, got "
                   f"{style_scale}")
  return max(1, int(round(size * style_scale)))


def stylize_multiscale(params, content: np.ndarray,
                       styles: Sequence[np.ndarray], scales: Sequence[int],
                       config: TransferConfig = TransferConfig(), *,
                       scale_iterations: Sequence[int] | None = None,
                       style_scale: float = 1.0,
                       on_level: Callable[[int, TransferResult], None] | None
                       = None, **kwargs) -> TransferResult:
  """Coarse-to-fine transfer: one ``stylize`` per long edge in ``scales``.

  ``content`` and ``styles`` are given at any resolution (ideally at least the
  last scale) and resized here, every image to the level's long edge. The
  first level starts from ``config.init``; each later one from the previous
  level's result, upsampled to the new size — the image pyramid of the peers
  (jcjohnson/neural-style's multires recipe, pystiche's ``ImagePyramid``):
  the coarse levels fix the large-scale structure cheaply, the fine ones
  only add detail. ``scale_iterations`` gives the iterations of each level
  (default: ``config.solver.maxiter`` at every level); ``on_level(size,
  result)`` is called after each level; styles are resized to
  ``style_scale`` times the level's long edge (``style_size``); other keyword
  arguments go to ``stylize``. A level that ends ``interrupted`` (its
  ``should_stop``) ends the pyramid there.

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
  content = np.asarray(content, np.float32)
  check_config(config)
  for size in scales:   # refuse before any work, as stylize would per level
    shape = io.long_edge_shape(content.shape[:2], size)
    check_image_size(config, shape)
    check_memory(config, shape)
  # Once for every level (each stylize would transform the kernels again).
  params = vgg.prepare_params(params, config.conv,
                              config.objective_spec().layers)
  history: List[Dict[str, float]] = []
  result, image = None, None
  iterations = evaluations = 0
  seconds = 0.0
  for size, n in zip(scales, scale_iterations):
    shape = io.long_edge_shape(content.shape[:2], size)
    level_content = io.resize_to(content, shape)
    level_styles = [io.resize_long_edge(np.asarray(s, np.float32),
                                        style_size(size, style_scale))
                    for s in styles]
    init = None if image is None else io.resize_to(image, shape)
    result = stylize(params, level_content, level_styles,
                     config.replace(solver=dict(maxiter=n)),
                     init_image=init, **kwargs)
    image = result.image
    history += [{**r, "size": size} for r in result.loss_history]
    iterations += result.iterations
    evaluations += result.function_evaluations
    seconds += result.wall_seconds
    if on_level is not None:
      on_level(size, result)
    if result.status == "interrupted":
      break
  return result._replace(loss_history=history, iterations=iterations,
                         function_evaluations=evaluations,
                         wall_seconds=seconds)
