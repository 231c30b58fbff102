"""Methods beyond Gatys, composed from the library's values and run by the
one run loop (``run.run_problem``).

A method is a value — ``Gatys`` (the ``TransferConfig`` every command runs
by default), ``Strotss`` (Kolkin, Salavon & Shakhnarovich, CVPR 2019) or
``Nnst`` (Kolkin et al., ECCV 2022) — with its settings (``strotss.Settings``,
``nnst.Settings``: the official defaults, each with its source). ``method``
returns one by name with any part changed (``method("strotss",
size=256, settings=dict(content_weight=8.0))``); ``paint(params, content,
styles, m)`` runs it.

Each method is a schedule of stages, every stage one ``problem.Problem``
run by ``run.run_problem`` (records, snapshots, live progress, a clean stop
— the same hooks as ``transfer.paint``):

* **STROTSS** (official ``styleTransfer.run_st``): coarse to fine, long
  sides ``size / 2^k`` down to 64 px; at each level the image is a
  Laplacian pyramid (``parameterize.laplacian``) optimised by RMSprop, the
  loss ``strotss.objective`` on hypercolumns sampled at new positions every
  step (``solvers.SolverConfig.step_key``: the run loop draws step ``k``'s
  key from ``--seed``), the content weight halved per level.
* **NNST** (official ``utils/stylize.produce_stylization``): one Laplacian
  pyramid of the output, optimised coarse to fine over ``settings.scales``
  levels up to ``settings.size`` (level ``k`` its bands from ``k`` on); at
  each level the neighbour targets (``nnst.make_targets``) are computed
  once, and Adam minimises the cosine loss to them (``nnst.loss``); then a
  final pass at full size (``nnst.final_loss``, re-matched every step) and
  the OkLab colour transfer (``oklab.color_transfer``); ``paint_nnst``.

Array contract: images float32 ``(H, W, 3)`` RGB in [0, 1]; ``params`` VGG-16
weights (``vgg.load_params("vgg16")``). Records carry each method's own
terms (``run.record``; ``total`` always) and a ``size`` key, the stage's
long side; those of NNST's final pass also ``"stage": "final"``.
"""

import dataclasses
import functools
import time
from typing import Any, Dict, List, NamedTuple, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from nst_jax import guided
from nst_jax import io
from nst_jax import nnst
from nst_jax import objective
from nst_jax import oklab
from nst_jax import parameterize
from nst_jax import problem as _problem
from nst_jax import run
from nst_jax import solvers
from nst_jax import strotss
from nst_jax import transfer
from nst_jax import vgg
from nst_jax.config import TransferConfig
from nst_jax.errors import NSTError, param

# The run loop's records name style layers from a Spec; these methods have
# none (their terms are their own: run.record).
_NO_LAYERS = objective.Spec(content_layers=(), style_layers=())

# The smallest long side of a STROTSS level (official ``run_st``: smll_sz).
STROTSS_SMALLEST = 64


def _replace(value, changes: Dict[str, Any]):
  """``dataclasses.replace`` where a dict changes fields of a part."""
  out = {}
  for name, change in changes.items():
    if isinstance(change, dict):
      change = dataclasses.replace(getattr(value, name), **change)
    out[name] = change
  return dataclasses.replace(value, **out)


@dataclasses.dataclass(frozen=True)
class Gatys:
  """Gatys, Ecker & Bethge (2016): the library's ``TransferConfig`` (run by
  ``transfer.paint``: coarse to fine by ``config.schedule``)."""
  config: TransferConfig = TransferConfig()
  name = "gatys"

  def check_shape(self, shape, what: str) -> None:
    """Nothing here: ``transfer.check_image_size`` checks Gatys' levels."""

  def paint(self, params, content, styles, *, guides=None, **hooks):
    """``transfer.paint`` with ``config`` (``paint``'s hooks; Gatys' levels
    report no stages)."""
    hooks.pop("on_stage", None)
    return transfer.paint(params, content, styles, self.config,
                          guides=guides, **hooks)

  def replace(self, config=None) -> "Gatys":
    """``config``: a ``TransferConfig``, or a dict of its parts to change
    (``TransferConfig.replace``)."""
    if isinstance(config, dict):
      config = self.config.replace(**config)
    return Gatys(self.config if config is None else config)


@dataclasses.dataclass(frozen=True)
class Strotss:
  """STROTSS at output long side ``size`` (official ``styleTransfer.py``:
  512 px, ``max_scl = 5``), its settings (``strotss.Settings``; the content
  weight — ``--content_weight`` of the official script times 16 — is
  ``settings.content_weight``) and the ``seed`` of its position and style
  draws."""
  settings: strotss.Settings = strotss.DEFAULTS
  size: int = 512
  seed: int = 0
  name = "strotss"

  def replace(self, **changes) -> "Strotss":
    return _replace(self, changes)

  def check_shape(self, shape: Tuple[int, int], what: str) -> None:
    """Refuses an image of ``shape`` that some level makes under 16 px on
    a side (content and style are resized to each level's long side)."""
    for size in self.sizes():
      if min(io.long_edge_shape(shape, size)) < 16:
        raise NSTError(f"{param('size')} {self.size} px makes a STROTSS "
                       f"level of {size} px too small for this {what}'s "
                       "aspect")

  def sizes(self) -> Tuple[int, ...]:
    """The long side of every level: ``size / 2^k`` for ``k = n−1 … 0``,
    the smallest at least 64 px (official: 64 · 2^k up to 512 px)."""
    count = 1
    while self.size / 2 ** count >= STROTSS_SMALLEST:
      count += 1
    return tuple(int(round(self.size / 2 ** (count - 1 - k)))
                 for k in range(count))

  def stages(self) -> Tuple[Tuple[int, int], ...]:
    """``(long side, iterations)`` of every level, in order (STROTSS and
    NNST list their stages; Gatys' levels are its ``config.schedule``'s,
    which the command resolves)."""
    return tuple((s, self.settings.iterations) for s in self.sizes())

  def paint(self, params, content, styles, *, guides=None, **hooks):
    """``paint_strotss`` (guided by ``guides``, when given)."""
    return paint_strotss(params, content, styles, self, guides=guides,
                         **hooks)


@dataclasses.dataclass(frozen=True)
class Nnst:
  """NNST with its settings (``nnst.Settings``: ``size``, ``alpha`` — the
  content preservation, 0.75 —, levels, iterations, final pass, colour
  transfer) and the ``seed`` of the final pass's sampling."""
  settings: nnst.Settings = nnst.DEFAULTS
  seed: int = 0
  name = "nnst"

  def replace(self, **changes) -> "Nnst":
    """As ``Strotss.replace``; ``size`` (as for STROTSS) goes to the
    settings."""
    if "size" in changes:
      settings = changes.setdefault("settings", {})
      if not isinstance(settings, dict):
        settings = dataclasses.asdict(settings)
        changes["settings"] = settings
      settings["size"] = changes.pop("size")
    return _replace(self, changes)

  @property
  def size(self) -> int:
    return self.settings.size

  def check_shape(self, shape: Tuple[int, int], what: str) -> None:
    """Refuses an image of ``shape`` whose first level is below the
    smallest side NNST's layers need (``nnst.smallest_side``)."""
    smallest = nnst.smallest_side(self.settings)
    first = io.long_edge_shape(shape, self.sizes()[0])
    if min(first) < smallest:
      raise NSTError(f"{param('size')} {self.size} px makes NNST's first "
                     f"level of the {what} {first[1]}x{first[0]} px, below "
                     f"the {smallest} px its layers need "
                     f"({self.settings.scales} levels, each half the "
                     "next): raise it")

  def sizes(self) -> Tuple[int, ...]:
    """The long side of every level: ``size / 2^k`` for ``k = scales−1 …
    0`` (official ``produce_stylization``: ``max_scls`` levels)."""
    n = self.settings.scales
    return tuple(self.settings.size // 2 ** (n - 1 - k) for k in range(n))

  def stages(self) -> Tuple[Tuple[int, int], ...]:
    """``(long side, iterations)`` of every stage, in order: the levels,
    then the final pass at the last level's size (when on)."""
    levels = tuple((s, self.settings.iterations) for s in self.sizes())
    return levels + (levels[-1:] if self.settings.final_pass else ())

  def paint(self, params, content, styles, *, guides=None, **hooks):
    """``paint_nnst``; ``guides`` are refused (NNST has no guidance)."""
    if guides is not None:
      raise NSTError(f"{self.name} takes no masks (guides): they are for "
                     "gatys and strotss")
    return paint_nnst(params, content, styles, self, **hooks)


METHODS = {"gatys": Gatys, "strotss": Strotss, "nnst": Nnst}


def method(name: str, **changes):
  """The method ``name`` (``METHODS``) with its defaults, parts changed by
  ``changes`` (a dict changes fields of a part: ``settings=dict(alpha=0.5)``).
  """
  if name not in METHODS:
    raise NSTError(f"{param('method')} must be one of "
                   f"{', '.join(METHODS)}, got {name!r}")
  return METHODS[name]().replace(**changes)


class MethodResult(NamedTuple):
  """The image ``(H, W, 3)`` in [0, 1]; every stage's records (each with a
  ``size`` key); iterations and evaluations over all stages; the last
  stage's stop reason; seconds."""
  image: np.ndarray
  loss_history: List[Dict[str, Any]]
  iterations: int
  function_evaluations: int
  status: str
  wall_seconds: float


@functools.lru_cache(maxsize=None)
def _pyramid_functions(fun, shapes: Tuple[Tuple[int, ...], ...],
                       align_corners: bool):
  """``(objective of the coefficients, image_of)`` for ``fun(image, *args)
  -> (value, terms)`` over the bands of a Laplacian pyramid of ``shapes``
  (finest first; ``parameterize.synthesize_pyramid`` with
  ``align_corners``), flattened to one vector (``ravel_pytree``). Made once
  per (``fun``, shapes, corners), so that a second run of a method reuses
  the compiled programs."""
  _, unravel = ravel_pytree(tuple(jnp.zeros(s) for s in shapes))
  image_of = lambda x: parameterize.synthesize_pyramid(
      unravel(x), align_corners=align_corners)

  def objective_of(x, *args):   # every record has a total
    value, terms = fun(image_of(x), *args)
    return value, {"total": value, **terms}
  return objective_of, image_of


def _pyramid_problem(fun, args, bands, *, align_corners: bool
                     ) -> _problem.Problem:
  """A ``Problem`` over the Laplacian pyramid coefficients ``bands``
  (finest first; they are the start) for ``fun(image, *args)``
  (``_pyramid_functions``); its ``image_of`` is the pyramid's image."""
  bands = tuple(jnp.asarray(b, jnp.float32) for b in bands)
  objective_of, image_of = _pyramid_functions(
      fun, tuple(b.shape for b in bands), align_corners)
  x0 = ravel_pytree(bands)[0]
  return _problem.Problem(
      objective_of, tuple(args), jnp.array(x0, copy=True), _NO_LAYERS,
      _problem.untiled(tuple(bands[0].shape[:2])), image_of=image_of)


def _bands(x, like) -> list:
  """The pyramid bands shaped as ``like`` (finest first) from a run's flat
  final parameters ``x`` (``RunResult.x`` of a ``_pyramid_problem``)."""
  unravel = ravel_pytree(tuple(jnp.zeros(b.shape) for b in like))[1]
  return [jnp.asarray(b, jnp.float32) for b in unravel(jnp.asarray(x))]


# Settings that only the schedule, the targets, the optimiser or the colour
# transfer read, never a loss: one compiled loss serves every value of them
# (a second run with other iterations or colours compiles nothing). The
# stages' compiled preparations are keyed the same way, less what each reads
# (``_STROTSS_TARGETS_READ``; NNST's targets take alpha as an array).
_OUTSIDE_STROTSS_LOSS = (
    "offset_every", "style_samples", "style_draws", "content_weight",
    "content_weight_decay", "base_size", "max_scales", "iterations",
    "learning_rate", "last_learning_rate", "rmsprop_decay", "rmsprop_eps",
    "pyramid_levels")
_OUTSIDE_NNST_LOSS = (
    "alpha", "size", "scales", "pyramid_levels", "zero_bands", "iterations",
    "learning_rate", "final_pass", "colorize", "official_blocks")


def _loss_key(settings, outside: Tuple[str, ...]):
  """``settings`` with the fields ``outside`` its losses set to their
  defaults: the key of the losses' cache (and, with fewer fields, of the
  compiled preparations')."""
  defaults = type(settings)()
  return dataclasses.replace(settings, **{n: getattr(defaults, n)
                                          for n in outside})


def _strotss_loss(settings: strotss.Settings, counts=None):
  """``loss(image, params, targets, key)``: ``strotss.objective``, one
  function per loss settings (``_loss_key``) and regions' position counts,
  so that its programs are compiled once."""
  return _strotss_loss_cached(_loss_key(settings, _OUTSIDE_STROTSS_LOSS),
                              counts)


@functools.lru_cache(maxsize=None)
def _strotss_loss_cached(settings: strotss.Settings, counts):
  level_loss = strotss.objective(settings, counts)
  return lambda image, prm, targets, key: level_loss(prm, image, targets, key)


def strotss_guides(guides, content_shape: Tuple[int, int],
                   style_shape: Tuple[int, int]
                   ) -> Tuple[np.ndarray, np.ndarray]:
  """The regions of a guided STROTSS level: ``guides`` (``guided.Guides``
  with one style, e.g. ``masks.load_guides``; any resolution) resized to
  the level's content and style shapes (``guided.resize_guides``) and made
  hard at one half: ``(K, H, W)`` and ``(K, H_s, W_s)`` bool (official
  ``st_helper``: the masks resized bilinearly, ``> 0.5``)."""
  content = np.asarray(guided.resize_guides(guides.content, content_shape))
  style = np.asarray(guided.resize_guides(guides.styles[0], style_shape))
  return content > 0.5, style > 0.5


def _check_strotss_guides(guides, content_shape: Tuple[int, int]) -> None:
  """Refuses (one line) guides a STROTSS run cannot use: not one style's,
  or a content mask that leaves pixels in no region (STROTSS has no loss
  there: every content colour needs a style region)."""
  if len(guides.styles) != 1:
    raise NSTError(f"STROTSS takes the guides of one style image, got "
                   f"{len(guides.styles)}")
  cover = np.asarray(guided.resize_guides(guides.content, content_shape)
                     ).sum(0)
  outside = float(np.mean(cover < 0.5))
  if outside > 0:
    raise NSTError(f"{100 * outside:.1f}% of the content mask is in no "
                   "region that the style mask provides; with STROTSS every "
                   "content colour needs the same colour in the style mask")


def _nnst_losses(settings: nnst.Settings):
  """``(level loss(image, params, targets), final loss(image, params,
  pool, key))`` of NNST, one pair per loss settings (``_loss_key``)."""
  return _nnst_losses_cached(_loss_key(settings, _OUTSIDE_NNST_LOSS))


@functools.lru_cache(maxsize=None)
def _nnst_losses_cached(settings: nnst.Settings):
  return (lambda image, prm, targets: nnst.loss(prm, image, targets,
                                                settings),
          lambda image, prm, pool, key: nnst.final_loss(prm, image, pool, key,
                                                        settings))


# The settings outside the losses that the unguided STROTSS targets read
# (content_weight is set after: an array) and NNST's targets read (alpha is
# passed as an array); a test traces them to check.
_STROTSS_TARGETS_READ = ("style_samples", "style_draws")
_NNST_TARGETS_READ = ("official_blocks",)

# Each stage's preparations (targets, style pools, start images, pyramids,
# the colour transfer) as one compiled program per shapes and the settings
# they read, instead of hundreds of operations compiled one by one: a
# STROTSS level's targets at 64 px compile in 3.5 s instead of 9.5 s of
# eager operations (2026-12-07, this CPU, one thread). Results are the
# same functions' (float sums may differ in order, ~1e-7).
_first_image = jax.jit(strotss.first_image)
_next_image = jax.jit(strotss.next_image, static_argnames=("add_detail",))
_pyramid = jax.jit(parameterize.laplacian_pyramid, static_argnums=(1,),
                   static_argnames=("align_corners",))
_synthesize = jax.jit(parameterize.synthesize_pyramid,
                      static_argnames=("align_corners",))
_color_transfer = jax.jit(oklab.color_transfer)


@functools.partial(jax.jit, static_argnums=(3,))
def _strotss_targets_jit(params, content, style, settings, key):
  return strotss.make_targets(params, content, style, settings, key)


def _strotss_targets(params, content, style, settings: strotss.Settings,
                     key, guides=None) -> strotss.Targets:
  """``strotss.make_targets``, compiled once per shapes and the settings it
  reads when unguided (its ``content_weight`` is an array: set after);
  guided, the masks' pixel counts are shapes, so it runs as it is (its VGG
  maps compiled: ``strotss.feature_maps``)."""
  if guides is not None:
    return strotss.make_targets(params, content, style, settings, key, guides)
  targets = _strotss_targets_jit(params, content, style, _loss_key(
      settings, tuple(n for n in _OUTSIDE_STROTSS_LOSS
                      if n not in _STROTSS_TARGETS_READ)), key)
  return targets._replace(content_weight=jnp.asarray(
      settings.content_weight, jnp.float32))


@functools.partial(jax.jit, static_argnums=(2,))
def _nnst_pool_jit(params, style, settings):
  return nnst.style_pool(params, style, settings)


@functools.partial(jax.jit, static_argnums=(2,))
def _nnst_layer_pool_jit(params, style, settings):
  return nnst.layer_pool(params, style, settings)


@functools.partial(jax.jit, static_argnums=(4,))
def _nnst_targets_jit(params, search, content, pool, settings, alpha):
  return nnst.make_targets(params, search, content, pool, settings,
                           alpha=alpha)


def _nnst_preparations(settings: nnst.Settings):
  """``(style_pool, make_targets, layer_pool)`` of NNST (the ``nnst``
  functions' arguments without ``settings``), each compiled once per shapes
  and the settings it reads (alpha an array: every alpha one program)."""
  pools = _loss_key(settings, _OUTSIDE_NNST_LOSS)
  targets = _loss_key(settings, tuple(
      n for n in _OUTSIDE_NNST_LOSS if n not in _NNST_TARGETS_READ))
  return (lambda prm, style: _nnst_pool_jit(prm, style, pools),
          lambda prm, search, content, pool: _nnst_targets_jit(
              prm, search, content, pool, targets,
              jnp.asarray(settings.alpha, jnp.float32)),
          lambda prm, style: _nnst_layer_pool_jit(prm, style, pools))


class _Stages:
  """What the stages of one method run share: the hooks of ``run_problem``
  with iterations counted over the whole run, and the records."""

  def __init__(self, hooks: Dict[str, Any], started: float):
    self.on_stage = hooks.pop("on_stage", None)
    self.hooks, self.started = dict(hooks), started
    self.history: List[Dict[str, Any]] = []
    self.iterations = self.evaluations = 0
    self.status = "max_iterations"

  def run(self, p: _problem.Problem, solver: solvers.SolverConfig,
          size: int, stage: str = "level") -> run.RunResult:
    before = self.iterations
    if self.on_stage is not None:
      self.on_stage(size, stage, solver.maxiter)
    label = {"size": size} if stage == "level" else {"size": size,
                                                     "stage": stage}
    hooks = dict(self.hooks)
    if hooks.get("on_snapshot") is not None:
      snap = hooks["on_snapshot"]
      hooks["on_snapshot"] = lambda i, x: snap(before + i, x)
    if hooks.get("on_log") is not None:
      log = hooks["on_log"]
      hooks["on_log"] = lambda r: log(dict(r, **label))
    result = run.run_problem(p, solver, started=self.started, **hooks)
    self.history.extend(dict(r, **label) for r in result.loss_history)
    self.iterations += result.iterations
    self.evaluations += result.function_evaluations
    self.status = result.status
    return result

  def result(self, image) -> MethodResult:
    return MethodResult(np.asarray(image, np.float32), self.history,
                        self.iterations, self.evaluations, self.status,
                        time.perf_counter() - self.started)


def check_shapes(m, content_shape: Tuple[int, int],
                 style_shape: Tuple[int, int] | None = None) -> None:
  """Refuses (``NSTError``, one line) a content of ``content_shape`` (and
  a style of ``style_shape``), ``(H, W)``, whose levels method ``m``
  cannot paint, before any work (``m.check_shape``: STROTSS's levels under
  16 px a side, NNST's first level below ``nnst.smallest_side``; Gatys
  checks its own in ``transfer.check_image_size``)."""
  shapes = [("content", content_shape)] + (
      [("style", style_shape)] if style_shape is not None else [])
  for what, shape in shapes:
    m.check_shape(tuple(shape), what)


def _inputs(content, styles: Sequence[np.ndarray], name: str):
  """The run's start (``time.perf_counter()``), the content and the one
  style image as float32 arrays; a blend is refused."""
  if len(styles) != 1:
    raise NSTError(f"{name} takes one style image, got {len(styles)} "
                   "(blends are a Gatys feature)")
  return (time.perf_counter(), np.asarray(content, np.float32),
          np.asarray(styles[0], np.float32))


def _level_images(content, style, size: int):
  shape = io.long_edge_shape(content.shape[:2], size)
  return (io.resize_to(content, shape),
          io.resize_long_edge(style, size), shape)


def paint_strotss(params, content: np.ndarray, styles: Sequence[np.ndarray],
                  m: Strotss = Strotss(), *, guides=None,
                  **hooks) -> MethodResult:
  """STROTSS (module docstring): ``content`` and one style at any size,
  resized per level; ``hooks`` go to ``run.run_problem``. ``guides``
  (``guided.Guides`` of the one style, e.g. ``masks.load_guides``: regions
  paired by colour) make it the official guided STROTSS: at every level
  each region is a ``strotss.Region`` (``strotss_guides``), its positions
  drawn inside its content mask and compared with its style region's
  hypercolumns; every content pixel must be in a region."""
  started, content, style = _inputs(content, styles, "strotss")
  if guides is not None:
    _check_strotss_guides(guides, content.shape[:2])
  settings = m.settings
  sizes = m.sizes()
  schedule = strotss.levels(dataclasses.replace(
      settings, max_scales=len(sizes) + 1))
  check_shapes(m, content.shape[:2], style.shape[:2])
  params = vgg.prepare_params(params, "auto", settings.layers)
  key = jax.random.key(m.seed)
  stages, image = _Stages(hooks, started), None
  for index, (size, level) in enumerate(zip(sizes, schedule)):
    c, s, shape = _level_images(content, style, size)
    c, s = jnp.asarray(c), jnp.asarray(s)
    start = (_first_image(c, s) if image is None else
             _next_image(jnp.asarray(image), c,
                         add_detail=level.add_content_detail))
    level_key, step_key = jax.random.split(jax.random.fold_in(key, index))
    regions = (None if guides is None else
               strotss_guides(guides, c.shape[:2], s.shape[:2]))
    targets = _strotss_targets(
        params, c, s, dataclasses.replace(
            settings, content_weight=level.content_weight), level_key,
        regions)
    loss = _strotss_loss(settings, None if guides is None else
                         strotss.region_counts(targets, settings))
    p = _pyramid_problem(loss, (params, targets, step_key),
                         _pyramid(start, settings.pyramid_levels,
                                  align_corners=True),
                         align_corners=True)
    solver = solvers.SolverConfig(
        method="rmsprop", maxiter=level.iterations,
        learning_rate=level.learning_rate, lower=-np.inf, upper=np.inf,
        step_key=True)
    result = stages.run(p, solver, size)
    if result.status == "interrupted" or index == len(sizes) - 1:
      return stages.result(result.image)   # clipped (official: clamp)
    image = p.image_of(result.x)   # the next level starts unclipped
  return stages.result(result.image)


def nnst_pyramid_levels(size: int, settings: nnst.Settings) -> int:
  """Bands of NNST's pyramid at output long side ``size``: the official
  ``pyr_levs`` (``produce_stylization``: 8 at 512 and 1024 px, where the
  coarsest band is 2 and 4 px), fewer where 8 halvings would leave less
  than 2 px (the official code then fails: 7 at 256 px)."""
  levels = settings.pyramid_levels
  while levels > 0 and size / 2 ** levels < 2:
    levels -= 1
  return levels


def nnst_zero_bands(size: int, settings: nnst.Settings) -> int:
  """The finest bands of the content's pyramid zeroed in the start image:
  ``settings.zero_bands`` below 1024 px, one fewer from 1024 px (official
  ``produce_stylization``: ``z_max`` 3, 2 from 1024 px)."""
  return settings.zero_bands - (1 if size >= 1024 else 0)


def paint_nnst(params, content: np.ndarray, styles: Sequence[np.ndarray],
               m: Nnst = Nnst(), **hooks) -> MethodResult:
  """NNST as the official ``utils/stylize.produce_stylization`` runs it.

  Content and style at ``settings.size`` (long side), each a Laplacian
  pyramid (``nnst_pyramid_levels`` bands, NNST's half-pixel corners); the
  output is one pyramid too, the content's with its ``nnst_zero_bands``
  finest bands zeroed. Level ``k`` of ``settings.scales`` (coarsest first)
  works at ``size / 2^k``: its style and content are their pyramids'
  bands from ``k`` on; the neighbour targets are searched from the content
  at the first level and from ``mix`` of the content and the output's
  coarser bands plus the content's band ``k`` later (``nnst.make_targets``);
  Adam then optimises the output's bands from ``k`` on
  (``settings.iterations`` steps, ``nnst.loss``), and they become the
  pyramid of the level's result. The final pass optimises every band with
  ``nnst.final_loss`` (re-matched every step, positions from ``m.seed``),
  then the OkLab colour transfer (``settings.colorize``). The bands pass
  from level to level as the optimiser left them and the image is clipped
  to [0, 1] only at the end, after the colour transfer (official: the
  pyramid tensors themselves carry over; ``np.clip`` on the output)."""
  started, content, style = _inputs(content, styles, "nnst")
  settings = m.settings
  sizes = m.sizes()
  check_shapes(m, content.shape[:2], style.shape[:2])
  params = vgg.prepare_params(params, "auto", settings.layers)
  loss, final = _nnst_losses(settings)
  adam = solvers.SolverConfig(method="adam", maxiter=settings.iterations,
                              learning_rate=settings.learning_rate,
                              lower=-np.inf, upper=np.inf)
  size = settings.size
  bands = nnst_pyramid_levels(size, settings)
  c = jnp.asarray(io.resize_to(content, io.long_edge_shape(
      content.shape[:2], size)))
  s = jnp.asarray(io.resize_long_edge(style, size))
  pyramid = lambda image, n: list(_pyramid(image, n, align_corners=False))
  image_of = lambda b: _synthesize(tuple(b), align_corners=False)
  style_pool, make_targets, layer_pool = _nnst_preparations(settings)
  c_pyr, style_pyr = pyramid(c, bands), pyramid(s, bands)
  out = list(c_pyr)
  for k in range(min(nnst_zero_bands(size, settings), bands)):
    out[k] = jnp.zeros_like(out[k])
  stages = _Stages(hooks, started)
  for index, k in enumerate(reversed(range(settings.scales))):
    style_k, content_k = image_of(style_pyr[k:]), image_of(c_pyr[k:])
    search = content_k if index == 0 else image_of([c_pyr[k]] + out[k + 1:])
    pool = style_pool(params, style_k)
    targets = make_targets(params, search, content_k, pool)
    p = _pyramid_problem(loss, (params, targets), out[k:],
                         align_corners=False)
    result = stages.run(p, adam, sizes[index])
    if result.status == "interrupted":
      return stages.result(result.image)
    out[k:] = _bands(result.x, out[k:])   # the coefficients, as they are
  if settings.final_pass:
    p = _pyramid_problem(final, (params, layer_pool(params, style_k),
                                 jax.random.key(m.seed)),
                         out, align_corners=False)
    result = stages.run(p, dataclasses.replace(adam, step_key=True),
                        sizes[-1], "final")
    if result.status == "interrupted":
      return stages.result(result.image)
    out = _bands(result.x, out)
  image = image_of(out)   # unclipped until the end (official)
  if settings.colorize:
    image = _color_transfer(c, s, image)
  return stages.result(np.clip(np.asarray(image), 0.0, 1.0))


def paint(params, content: np.ndarray, styles: Sequence[np.ndarray], m,
          *, guides=None, **hooks):
  """Runs method ``m`` (``Gatys``, ``Strotss``, ``Nnst``: its own
  ``paint``) on ``content`` and ``styles``; ``hooks`` (``log_every``,
  ``on_log``, ``snapshot_every``, ``on_snapshot`` — its iteration counted
  over the whole run —, ``on_progress``, ``should_stop``) go to every
  stage's ``run.run_problem``; STROTSS and NNST also call ``on_stage(long
  side, "level" or "final", iterations)`` before each stage. ``guides``
  (``guided.Guides``: masks) go to Gatys and STROTSS; NNST refuses them.
  Gatys returns ``transfer.paint``'s result, the others a
  ``MethodResult``."""
  if not isinstance(m, tuple(METHODS.values())):
    raise TypeError(f"not a method: {m!r}")
  return m.paint(params, content, styles, guides=guides, **hooks)
