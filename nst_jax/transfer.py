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

from nst_jax import color
from nst_jax import networks
from nst_jax import objective
from nst_jax import solvers
from nst_jax import vgg
from nst_jax.errors import NSTError

INITS = ("content", "style", "noise")
TERMS = ("total", "content", "style", "tv")


@dataclasses.dataclass(frozen=True)
class TransferConfig:
  """Everything that defines a run besides the images and the weights.

  ``content_layers``/``style_layers`` of ``None`` take the network's defaults
  (Gatys et al. 2016: relu4_2; relu1_1 … relu5_1). Loss weights are α
  (``content_weight``), β (``style_weight``) and γ (``tv_weight``). The
  default β/α = 1e7 is calibrated by eye at 256-512 px for the torchvision
  weights, whose normalised input is ~1/58 of Caffe's 0-255 scale (Gram losses
  shrink ~58⁴, content losses ~58²); the paper's α/β = 1e-3…1e-4 refers to
  Caffe's input.
  """
  network: str = "vgg16"
  pooling: str = "max"
  content_layers: Tuple[str, ...] | None = None
  style_layers: Tuple[str, ...] | None = None
  style_layer_weights: Tuple[float, ...] | None = None
  style_blend_weights: Tuple[float, ...] | None = None
  content_weight: float = 1.0
  style_weight: float = 1e7
  tv_weight: float = 1.0
  gram_normalization: str = "paper"
  optimizer: str = "optax_lbfgs"
  iterations: int = 500
  learning_rate: float = 0.02
  history_size: int = 10
  init: str = "content"
  seed: int = 0
  precision: str = "float32"  # vgg.PRECISIONS: "float32", "tf32", "bf16"
  remat: bool = False         # gradient checkpointing per VGG block
  conv: str = "auto"          # vgg.CONV_ALGORITHMS: "auto", "direct", "winograd"
  # Style representation (objective.STYLE_STATS) and its parameters, and
  # style patches (0: the whole style image); see ``style_targets``.
  style_stat: str = "gram"
  style_rank: int = 0
  eigen_loss: str = "reconstruction"
  local_window: Tuple[int, ...] = (0,)
  style_patches: int = 0
  patch_size: int = 128
  patch_mode: str = "mean"
  # Colour control (Gatys, Bethge, Hertzmann & Shechtman 2016; nst_jax.color):
  # recolour the styles to the content's colour statistics before the
  # transfer ("histogram": mean and covariance, §2.1; "cdf": per channel),
  # and/or transfer luminance only and keep the content's chrominance (§2.2).
  color_transfer: str = "none"
  original_colors: bool = False
  color_space: str = "yiq"

  def spec(self) -> objective.Spec:
    content = (networks.DEFAULT_CONTENT_LAYERS[self.network]
               if self.content_layers is None else tuple(self.content_layers))
    style = (networks.DEFAULT_STYLE_LAYERS[self.network]
             if self.style_layers is None else tuple(self.style_layers))
    return objective.Spec(content, style, self.pooling, self.gram_normalization,
                          precision=self.precision, remat=self.remat,
                          style_stat=self.style_stat,
                          style_rank=self.style_rank,
                          eigen_loss=self.eigen_loss,
                          local_window=tuple(self.local_window))

  def solver(self) -> solvers.SolverConfig:
    return solvers.SolverConfig(
        method=self.optimizer, maxiter=self.iterations,
        learning_rate=self.learning_rate, history_size=self.history_size)


class TransferResult(NamedTuple):
  """The result clipped to [0, 1], one ``{iteration, total, content, style,
  tv}`` record per logged iteration (the last one always), solver counts,
  the stop reason, and seconds spent compiling plus optimising."""
  image: np.ndarray
  loss_history: List[Dict[str, float]]
  iterations: int
  function_evaluations: int
  status: str
  wall_seconds: float


def _check_choice(value, choices, what: str) -> None:
  if value not in choices:
    raise NSTError(f"unknown {what} {value!r}: use one of {', '.join(choices)}")


def check_config(config: TransferConfig) -> None:
  """Raises ``NSTError`` for a configuration no run could use."""
  _check_choice(config.network, networks.NETWORKS, "network")
  _check_choice(config.optimizer, solvers.METHODS, "optimizer")
  _check_choice(config.init, INITS, "init")
  if config.iterations < 0:
    raise NSTError(f"iterations must be >= 0, got {config.iterations}")
  if not config.learning_rate > 0:
    raise NSTError(f"learning rate must be > 0, got {config.learning_rate}")
  if config.history_size < 1:
    raise NSTError(f"history size must be >= 1, got {config.history_size}")
  _check_choice(config.precision, vgg.PRECISIONS, "precision")
  _check_choice(config.conv, vgg.CONV_ALGORITHMS, "conv")
  spec = config.spec()
  vgg.check_layers(config.network, spec.layers)
  if not spec.style_layers and not spec.content_layers:
    raise NSTError("no content and no style layers: nothing to optimise")
  objective.check_style_spec(spec)
  if config.style_patches < 0 or config.patch_size < 1:
    raise NSTError(f"style patches must be >= 0 and patch size >= 1, got "
                   f"{config.style_patches} and {config.patch_size}")
  _check_choice(config.patch_mode, objective.PATCH_MODES, "patch mode")
  _check_choice(config.color_transfer, color.COLOR_TRANSFERS,
                "colour transfer")
  _check_choice(config.color_space, color.COLOR_SPACES, "colour space")


def _layer_shapes(config: TransferConfig, shape: Tuple[int, int], layers):
  params = {k: {n: jax.ShapeDtypeStruct(s, jnp.float32) for n, s in v.items()}
            for k, v in networks.param_shapes(config.network).items()}
  image = jax.ShapeDtypeStruct((1, *shape, 3), jnp.float32)
  try:
    return jax.eval_shape(
        lambda p, x: vgg.features(p, x, layers, config.pooling), params, image)
  except (TypeError, ValueError):  # a negative size inside the network
    return {layers[-1]: jax.ShapeDtypeStruct((1, 0, 0, 1), jnp.float32)}


def check_image_size(config: TransferConfig, shape: Tuple[int, int]) -> None:
  """Refuses images too small to reach the deepest layer (without computing).

  Every requested layer must have at least one position; otherwise its Gram
  would divide by zero.
  """
  for layer, s in _layer_shapes(config, shape, config.spec().layers).items():
    if s.shape[1] < 1 or s.shape[2] < 1:
      raise NSTError(
          f"a {shape[1]}x{shape[0]} image is too small for layer {layer} of "
          f"{config.network}: use a larger --size")


def estimate_memory(config: TransferConfig, shape: Tuple[int, int]) -> int:
  """Bytes one run needs, estimated from shapes alone (nothing is allocated).

  1.2 float32 copies of every activation up to the deepest layer (what the
  backward pass keeps, and the cotangents as they are freed), and L-BFGS's
  ``2·history_size`` image-sized vectors besides a few working copies.
  Calibrated on XLA:CPU's buffer assignment of the whole solver loop (VGG-16,
  2026-11-22, since the 2×2 max pool has its own gradient): 1.02–1.36
  copies at 256x192, 1.01–1.08 at 512x384 and 1.01–1.06 at 1024x768 (1.90
  GiB; the estimate says 2.2), with direct or Winograd convolutions, with or
  without ``config.remat``, which saves nothing on XLA:CPU: the peak is the
  backward pass of the full-resolution first block, which must be held (or
  recomputed) either way. Winograd convolutions (``config.conv``) add their
  transformed kernels, 8× the weights of the layers they cover
  (``vgg.prepare_params``).
  """
  spec = config.spec()
  names = networks.layer_names(config.network)
  deepest = max(spec.layers, key=names.index)
  shapes = _layer_shapes(config, shape, names[:names.index(deepest) + 1])
  activations = sum(int(np.prod(s.shape)) for s in shapes.values())
  image = shape[0] * shape[1] * 3
  copies = 1.2
  kernels = 0
  if vgg.resolve_conv(config.conv) == "winograd":
    param_shapes = networks.param_shapes(config.network)
    kernels = sum(8 * int(np.prod(param_shapes[l]["kernel"]))
                  for l in vgg.winograd_layers(config.network)
                  if names.index(l) <= names.index(deepest))
  return int(4 * (copies * activations + kernels
                  + (2 * config.history_size + 8) * image))


def available_memory() -> int | None:
  """Memory the default device can use, in bytes (None if unknown)."""
  device = jax.devices()[0]
  try:
    stats = device.memory_stats() or {}
  except Exception:  # pylint: disable=broad-except  # backends differ
    stats = {}
  if "bytes_limit" in stats:
    return int(stats["bytes_limit"])
  try:
    import os
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (ValueError, OSError, AttributeError):
    return None


def check_memory(config: TransferConfig, shape: Tuple[int, int]) -> int:
  """Refuses a run whose estimate exceeds the device's memory; returns it."""
  need, have = estimate_memory(config, shape), available_memory()
  if have is not None and need > have:
    raise NSTError(
        f"a {shape[1]}x{shape[0]} transfer needs about {need / 2**30:.1f} GiB "
        f"but the device has {have / 2**30:.1f} GiB: use a smaller --size")
  return need


def initial_image(init: str, content: np.ndarray, style: np.ndarray | None,
                  seed: int) -> jax.Array:
  """The starting point (Nikulin & Novak §4): the content image, the (first)
  style image resized to the content's shape, or uniform white noise in [0, 1]
  drawn from ``jax.random.key(seed)``."""
  if init == "content":
    return jnp.asarray(content, jnp.float32)
  if init == "style":
    if style is None:
      raise NSTError("init 'style' needs a style image")
    from nst_jax import io  # resizing is the I/O module's job
    return jnp.asarray(io.resize_to(np.asarray(style), content.shape[:2]))
  if init == "noise":
    return jax.random.uniform(jax.random.key(seed), content.shape, jnp.float32)
  raise NSTError(f"unknown init {init!r}: use one of {', '.join(INITS)}")


def _record(iteration, terms, seconds: float,
            style_layers: Sequence[str]) -> Dict[str, Any]:
  per_layer = np.asarray(terms["style_layers"]).reshape(-1)
  return {"iteration": int(iteration), "seconds": round(float(seconds), 3),
          **{k: float(np.asarray(terms[k])) for k in TERMS},
          "style_layers": {l: float(v) for l, v in zip(style_layers,
                                                       per_layer)}}


class Progress(NamedTuple):
  """What ``stylize`` tells ``on_progress`` after each chunk of iterations:
  iterations done of ``iterations``, seconds since the start (compilation
  included), the objective's current value, function evaluations so far,
  and the latest loss record (``loss_history``'s format, at most
  ``terms_seconds`` old, or ``None`` before the first)."""
  iteration: int
  iterations: int
  seconds: float
  value: float
  evaluations: int
  record: Dict[str, Any] | None


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

  ``spatial`` and ``local`` compare maps position by position, so each style
  image (or each patch) is first resized to the content's shape
  (``io.resize_to``; this changes its aspect ratio when the shapes differ).
  With ``config.style_patches = N > 0`` the targets come from ``N`` random
  ``patch_size`` crops of each style image (``objective.random_crops``, seeded
  by ``config.seed``), averaged or kept as ``N`` instances
  (``config.patch_mode``; the thesis's style patches, seed 002).
  """
  from nst_jax import io  # resizing is the I/O module's job
  styles = [np.asarray(s) for s in styles]
  n = config.style_patches
  if n > 0:
    styles = [np.asarray(c) for i, s in enumerate(styles)
              for c in objective.random_crops(s, count=n,
                                              size=config.patch_size,
                                              seed=config.seed + i)]
  if config.style_stat in objective.SAME_SIZE_STATS:
    styles = [io.resize_to(s, content.shape[:2])
              if s.shape[:2] != content.shape[:2] else s for s in styles]
  return objective.make_targets(
      params, jnp.asarray(content), [jnp.asarray(s) for s in styles],
      config.spec(), config.style_blend_weights, patches_per_style=max(n, 1),
      patch_mode=config.patch_mode)


def _clip_on_device(x, *args):
  del args
  return jnp.clip(x, 0.0, 1.0)


def prepare_colors(content: np.ndarray, styles: Sequence[np.ndarray],
                   config: TransferConfig):
  """The images a transfer optimises with, after colour control.

  ``config.color_transfer`` recolours each style to the content's colour
  statistics (``color.match_color``, paper §2.1); ``config.original_colors``
  replaces content and styles by their luma (styles' luma matched to the
  content's mean and spread, §2.2), replicated to three channels. Returns
  ``(content, styles)`` as float32 ``(H, W, 3)`` arrays; unchanged without
  colour control.
  """
  content = np.asarray(content, np.float32)
  styles = [np.asarray(s, np.float32) for s in styles]
  if config.color_transfer != "none":
    styles = [color.match_color(s, content, mode=config.color_transfer)
              for s in styles]
  if config.original_colors:
    content, styles = color.luminance_images(content, styles,
                                             config.color_space)
  return content, styles


def _finish_colors(image: np.ndarray, content: np.ndarray,
                   config: TransferConfig) -> np.ndarray:
  """The content's chrominance put back under the result's luma (§2.2)."""
  if not config.original_colors:
    return image
  return color.combine_luminance(image, content, config.color_space)


def stylize(params, content: np.ndarray, styles: Sequence[np.ndarray],
            config: TransferConfig = TransferConfig(), *,
            log_every: int = 50,
            on_log: Callable[[Dict[str, Any]], None] | None = None,
            snapshot_every: int = 0,
            on_snapshot: Callable[[int, np.ndarray], None] | None = None,
            on_progress: Callable[[Progress], None] | None = None,
            should_stop: Callable[[], bool] | None = None,
            progress_seconds: float = 2.0,
            terms_seconds: float = 10.0,
            init_image: np.ndarray | None = None,
            ) -> TransferResult:
  """Paints ``content`` ``(H, W, 3)`` in the style of ``styles``.

  ``init_image`` ``(H, W, 3)``, when given, is the starting point instead of
  ``config.init`` (``stylize_multiscale`` passes the upsampled result of the
  coarser level). Colour control (``config.color_transfer``,
  ``config.original_colors``) happens here: see ``prepare_colors``.

  Every ``log_every`` iterations the loss terms are recorded — ``{iteration,
  seconds, total, content, style, tv, style_layers: {layer: term}}``, terms
  weighted, seconds since the start — and passed to ``on_log``; every
  ``snapshot_every`` iterations ``on_snapshot(iteration, image)`` receives the
  current image clipped to [0, 1] (in the content's colours under
  ``original_colors``). With ``on_progress`` or ``should_stop`` the compiled
  loop runs in chunks of about ``progress_seconds``: after each,
  ``on_progress(Progress)`` is called (its ``record`` refreshed, by one more
  forward pass, when the latest is older than ``terms_seconds``) and
  ``should_stop()`` asked; when it says yes the run ends there with status
  ``interrupted`` and the result is the image reached. None of this changes
  the iterates.

  Raises ``NSTError`` if the loss becomes NaN or infinite.
  """
  check_config(config)
  check_image_size(config, content.shape[:2])
  check_memory(config, content.shape[:2])
  spec = config.spec()
  start = time.perf_counter()
  params = vgg.prepare_params(params, config.conv, spec.layers)
  original = np.asarray(content, np.float32)
  content, styles = prepare_colors(original, styles, config)
  targets = style_targets(params, content, styles, config)
  weights = objective.make_weights(
      spec, content_weight=config.content_weight,
      style_weight=config.style_weight, tv_weight=config.tv_weight,
      style_layer_weights=config.style_layer_weights)
  fun = objective.objective_function(spec)
  args = (params, targets, weights)
  history: List[Dict[str, Any]] = []
  clock = lambda: time.perf_counter() - start

  def log(iteration, terms):
    history.append(_record(iteration, terms, clock(), spec.style_layers))
    if on_log is not None:
      on_log(history[-1])

  hooks = [solvers.Hook(log_every, _terms_on_device(spec), log)]
  if snapshot_every > 0 and on_snapshot is not None:
    hooks.append(solvers.Hook(
        snapshot_every, _clip_on_device,
        lambda i, x: int(i) > 0 and on_snapshot(
            int(i), _finish_colors(np.asarray(x), original, config))))
  on_chunk = None
  if on_progress is not None:
    latest = []  # a record refreshed between log hooks for a live display

    def on_chunk(p: solvers.Progress):
      newest = max(latest + history[-1:], key=lambda r: r["seconds"],
                   default=None)
      if p.running and (newest is None or
                        clock() - newest["seconds"] > terms_seconds):
        terms = _terms_program(spec)(p.x(), *args)
        latest[:] = [_record(p.iteration, terms, clock(), spec.style_layers)]
        newest = latest[0]
      on_progress(Progress(p.iteration, config.iterations, clock(),
                           float(np.asarray(p.value)),
                           int(np.asarray(p.evaluations)), newest))
  if init_image is None:
    x0 = initial_image(config.init, content, styles[0] if styles else None,
                       config.seed)
  elif np.shape(init_image) != content.shape:
    raise NSTError(f"init image has shape {np.shape(init_image)}, the content "
                   f"image {content.shape}")
  else:
    x0 = init_image
    if config.original_colors:   # continue in luma, like the content
      x0 = color.luminance_images(np.asarray(x0, np.float32), [],
                                  config.color_space)[0]
  # A fresh buffer that this function owns, donated to the compiled loop.
  x0 = jnp.array(x0, jnp.float32, copy=True)
  if on_progress is not None:   # before compiling: the display can say so
    on_progress(Progress(0, config.iterations, clock(), float("nan"), 0, None))
  chunked = on_chunk is not None or should_stop is not None
  result = solvers.minimize(
      fun, x0, config.solver(), hooks, args, donate=True,
      should_stop=should_stop, on_chunk=on_chunk,
      chunk_seconds=progress_seconds if chunked else None)
  image = np.asarray(jnp.clip(result.x, 0.0, 1.0))
  iterations = int(result.iterations)
  status = solvers.STATUS_NAMES[int(result.status)]
  if status == "non_finite" or not np.all(np.isfinite(image)):
    raise NSTError(
        f"the loss became NaN or infinite by iteration {iterations}: lower "
        "--learning_rate or the loss weights")
  if not history or history[-1]["iteration"] != iterations:
    log(iterations, _terms_program(spec)(result.x, *args))
  return TransferResult(_finish_colors(image, original, config), history,
                        iterations, int(result.function_evaluations), status,
                        time.perf_counter() - start)


def style_size(size: int, style_scale: float) -> int:
  """The long edge of the style images for a ``size`` px output: ``size ·
  style_scale`` (jcjohnson/neural-style's ``-style_scale``: below 1 the
  style's brush strokes and motifs come out larger relative to the picture,
  above 1 smaller)."""
  if not (style_scale > 0 and np.isfinite(style_scale)):
    raise NSTError(f"style scale must be a positive number, got {style_scale}")
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
  (default: ``config.iterations`` at every level); ``on_level(size,
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
    raise NSTError(f"scales must be positive long edges, got {scales}")
  if scales != sorted(scales):
    raise NSTError(f"scales must increase (coarse to fine), got {scales}")
  if scale_iterations is None:
    scale_iterations = [config.iterations] * len(scales)
  scale_iterations = [int(n) for n in scale_iterations]
  if len(scale_iterations) != len(scales):
    raise NSTError(f"got {len(scale_iterations)} iteration counts for "
                   f"{len(scales)} scales")
  content = np.asarray(content, np.float32)
  for size in scales:   # refuse before any work, as stylize would per level
    shape = io.long_edge_shape(content.shape[:2], size)
    check_image_size(config, shape)
    check_memory(config, shape)
  check_config(config)
  # Once for every level (each stylize would transform the kernels again).
  params = vgg.prepare_params(params, config.conv, config.spec().layers)
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
                     dataclasses.replace(config, iterations=n),
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
