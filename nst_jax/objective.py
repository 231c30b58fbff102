"""The style-transfer objective: targets computed once, one jit-able loss.

``L_total = α L_content + β Σ_s b_s Σ_l w_l E_l + γ L_tv``
(Gatys et al. 2016, eqs. 1, 4-7; ``b_s`` blends several styles as in
jcjohnson/neural-style's ``-style_blend_weights``; ``γ`` weighs total variation).

Three pieces of data, split by how they vary:

* ``Spec`` — static, hashable structure: layer names, pooling, the style
  representation of each style layer (``nst_jax.representations``: values
  with pure ``statistic``/``target``/``loss``; the objective only calls
  them), precision. Changing it recompiles.
* ``Weights`` — α, β, γ and the per-layer weights as arrays: a pytree that can
  be traced and ``vmap``-ed (style grids over α/β need no recompilation).
* ``Targets`` — content features and each style layer's target, computed once
  per run.

Array contract: the optimised ``image`` is ``(H, W, 3)`` float32 in [0, 1].
"""

import dataclasses
import functools
import math
from typing import Any, Dict, Mapping, NamedTuple, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import losses
from nst_jax import networks
from nst_jax import representations
from nst_jax import vgg
from nst_jax.errors import NSTError, check_choice, param


@dataclasses.dataclass(frozen=True)
class Spec:
  """Static structure of the objective (hashable; a jit static argument).

  ``style`` is the style representation (``nst_jax.representations``): one
  value for every style layer, or a mapping ``{layer: representation}``
  naming exactly the style layers (stored as a ``representations.PerLayer``
  so that the spec stays hashable). ``precision`` is the convolution precision policy of
  the optimised image's features (``vgg.PRECISIONS``) and ``remat`` gradient
  checkpointing per VGG block (``vgg.features(remat=True)``); targets are
  always computed in float32.

  ``size_invariant`` divides the content and total-variation terms by the
  optimised image's pixel count ``H·W`` (``size_scale``), making them
  per-pixel averages like the style term (a function of position-averaged
  statistics), so one α:β:γ gives the same balance at every ``--size``;
  ``False`` keeps the sums of Gatys et al. (2016) eq. 1, whose content term
  grows with the pixel count while the style term does not (style fades as
  the size grows).
  """
  content_layers: Tuple[str, ...] = networks.DEFAULT_CONTENT_LAYERS["vgg16"]
  style_layers: Tuple[str, ...] = networks.DEFAULT_STYLE_LAYERS["vgg16"]
  pooling: str = "max"
  style: Any = representations.Gram()
  precision: str = "float32"
  remat: bool = False
  size_invariant: bool = True

  def __post_init__(self):
    object.__setattr__(self, "content_layers", tuple(self.content_layers))
    object.__setattr__(self, "style_layers", tuple(self.style_layers))
    if isinstance(self.style, Mapping):
      object.__setattr__(self, "style", representations.PerLayer.of(self.style))
    for layer, rep in (self.style.pairs if isinstance(
        self.style, representations.PerLayer) else ((None, self.style),)):
      representations.check(rep, where="Spec.style" + (
          "" if layer is None else f"[{layer}]"))

  @property
  def layers(self) -> Tuple[str, ...]:
    """Every layer the objective reads, without repeats."""
    return tuple(dict.fromkeys(self.content_layers + self.style_layers))

  def style_by_layer(self) -> Tuple[Tuple[str, Any], ...]:
    """``((layer, representation), …)`` in the order of ``style_layers``."""
    return representations.per_layer(self.style, self.style_layers)

  def representations(self) -> Tuple[Any, ...]:
    """The distinct representations the spec uses."""
    return tuple(dict.fromkeys(r for _, r in self.style_by_layer()))

  def suggested_style_weight(self) -> float:
    """β for this spec when the user gives none: the largest β its
    representations' classes suggest (``representations.register``; the
    Gram's ``losses.DEFAULT_STYLE_WEIGHT`` for one not registered)."""
    default = losses.DEFAULT_STYLE_WEIGHT
    return max(representations.suggested_style_weight(r)
               for r in self.representations()) if self.style_layers else (
                   default)

  @property
  def same_size(self) -> bool:
    """Whether any style layer compares maps position by position."""
    return any(r.same_size for r in self.representations())


def check_spec(spec: Spec, network: str | None = None) -> None:
  """Raises ``NSTError`` for a spec no objective could use (unknown pooling
  or precision, layers the network lacks, a value that is not a style
  representation, representations naming other layers)."""
  check_choice("pooling", spec.pooling, vgg.POOLING)
  check_choice("precision", spec.precision, vgg.PRECISIONS)
  if network is not None:
    vgg.check_layers(network, spec.layers)
  if not spec.style_layers and not spec.content_layers:
    raise NSTError("no content and no style layers: nothing to optimise")
  spec.style_by_layer()   # the representations name the style layers (each
  # was checked when the spec was made: Spec.__post_init__)


class _WeightArrays(NamedTuple):
  content: jax.Array
  style: jax.Array
  tv: jax.Array
  style_layers: jax.Array  # (L,)


def _strong_float(value):
  """Python and numpy floats (and float sequences) as float32 arrays; other
  leaves (arrays, tracers, ``None``/ints of ``in_axes`` trees) unchanged."""
  if isinstance(value, (float, np.floating)) or (
      isinstance(value, (list, tuple)) and value and all(
          isinstance(v, (int, float, np.number)) for v in value)):
    return jnp.asarray(value, jnp.float32)
  if isinstance(value, np.ndarray) and value.dtype.kind == "f":
    return jnp.asarray(value, jnp.float32)
  return value


class Weights(_WeightArrays):
  """Loss weights as arrays: α (content), β (style), γ (tv), ``w_l`` per
  layer ``(L,)``. A pytree: traced, ``vmap``-ed over (grids), never a cause
  of recompilation. Python floats (and float lists) are stored as float32
  arrays, also through ``_replace``, so ``Weights(1.0, 1e7, 0.0, [0.2] * 5)``
  and ``make_weights`` give the same compiled program (a weakly typed Python
  float would not). Python ints are left as they are, because ``in_axes``
  trees such as ``Weights(None, 0, None, None)`` are Weights too: write
  weights as floats (``1.0``, not ``1``), or use ``make_weights``.
  """
  __slots__ = ()

  def __new__(cls, content, style, tv, style_layers):
    return super().__new__(cls, _strong_float(content), _strong_float(style),
                           _strong_float(tv), _strong_float(style_layers))

  @classmethod
  def _make(cls, iterable):
    return cls(*iterable)

  def _replace(self, **changes):
    return type(self)(**{**self._asdict(), **changes})


class Targets(NamedTuple):
  """Content features ``{layer: (H_l, W_l, C_l)}``; each style layer's
  target ``{layer: pytree}`` — ``representation.target`` of the ``S``
  styles' statistics (``(S, C, C)`` for ``Gram``); blend weights ``(S,)``.
  The style axis is also the blend axis: ``Σ_s b_s loss_s``. ``coarse``:
  at a finer level of a coarse-to-fine run, the first level's ``Targets``
  for the coarse view of the image (``coarse_view_loss``; None: none)."""
  content: Dict[str, jax.Array]
  style: Dict[str, Any]
  style_blend: jax.Array
  coarse: Any = None


@dataclasses.dataclass(frozen=True)
class LossWeights:
  """The loss weights as plain data (a part of ``TransferConfig``): α
  (``content``), β (``style``), γ (``tv``), one weight per style layer
  (``style_layers``; default ``1/L``) and one blend weight per style image
  (``style_blend``; default equal). ``arrays(spec)`` makes ``Weights``.

  ``normalize_style`` divides each style image's term by its own scale
  (``targets.style_scales``: the term's value at all-zero features), so
  that one β paints every painting about as strongly; the targets carry it
  in their blend weights (``targets.make_targets(normalize_style=True)``)."""
  content: float = 1.0
  style: float = losses.DEFAULT_STYLE_WEIGHT
  tv: float = 1.0
  style_layers: Tuple[float, ...] | None = None
  style_blend: Tuple[float, ...] | None = None
  normalize_style: bool = False

  def arrays(self, spec: "Spec") -> Weights:
    return make_weights(spec, content_weight=self.content,
                        style_weight=self.style, tv_weight=self.tv,
                        style_layer_weights=self.style_layers)


def make_weights(spec: Spec, *, content_weight: float, style_weight: float,
                 tv_weight: float = LossWeights.tv,
                 style_layer_weights: Sequence[float] | None = None) -> Weights:
  """Builds ``Weights``; per-layer weights default to ``1/L`` (Gatys §2).
  ``tv_weight`` defaults to ``LossWeights``'s γ (the one source of the
  defaults)."""
  n = len(spec.style_layers)
  if style_layer_weights is None:
    style_layer_weights = [1.0 / n] * n if n else []
  if len(style_layer_weights) != n:
    raise NSTError(
        f"got {len(style_layer_weights)} style layer weights for {n} style "
        f"layers ({', '.join(spec.style_layers)})")
  for name, value in (("content_weight", content_weight),
                      ("style_weight", style_weight), ("tv_weight", tv_weight),
                      *(("style_layer_weights", w) for w in style_layer_weights)):
    if not (value >= 0 and value < float("inf")):
      raise NSTError(f"{param(name)} must be a finite number >= 0, got "
                     f"{value}")
  f32 = lambda v: jnp.asarray(v, jnp.float32)
  return Weights(f32(content_weight), f32(style_weight), f32(tv_weight),
                 f32(style_layer_weights))


def _features(params, image, layers, pooling):
  return vgg.features(params, image[None], layers, pooling)


@jax.jit(static_argnums=(2, 3))
def _content_targets(params, image, layers, pooling):
  return {k: v[0] for k, v in _features(params, image, layers, pooling).items()}


@jax.jit(static_argnums=2)
def style_statistics(params, image: jax.Array, spec: Spec,
                     guides: Dict[str, Any] | None = None) -> Dict[str, Any]:
  """``{layer: representation.statistic(features)}`` of one style image
  ``(H, W, 3)`` at every style layer, compiled once per spec and shape.
  A guided representation (``nst_jax.guided``) gets the image's guides
  ``guides[layer]`` ``(K, H_g, W_g)`` brought to the layer by its
  ``layer_guides``: ``statistic(features, layer guides)``."""
  feats = _features(params, image, spec.style_layers, spec.pooling)
  guides = guides or {}
  return {l: (rep.statistic(feats[l][0], rep.layer_guides(
      guides[l], feats[l].shape[1:3])) if l in guides
              else rep.statistic(feats[l][0]))
          for l, rep in spec.style_by_layer()}


@jax.jit(static_argnums=1)
def style_targets_of(stacked: Dict[str, Any], spec: Spec,
                     guides: Dict[str, Any] | None = None) -> Dict[str, Any]:
  """``{layer: representation.target(statistics stacked over styles)}``;
  a guided layer's ``target(stacked, guides[layer])`` also gets the
  optimised image's guides at that layer ``(K, h, w)``."""
  guides = guides or {}
  return {l: (rep.target(stacked[l], guides[l]) if l in guides
              else rep.target(stacked[l]))
          for l, rep in spec.style_by_layer()}


def stack(trees: Sequence[Any]) -> Any:
  """Stacks pytrees of equal structure on a new leading axis."""
  return jax.tree_util.tree_map(lambda *x: jnp.stack(x), *trees)


def stack_targets(targets: Sequence["Targets"]) -> "Targets":
  """Several ``Targets`` (e.g. one per style image, for the same content)
  stacked on a new leading axis, for ``jax.vmap`` over runs: map the
  objective with ``in_axes=(0, None, 0, None)`` (image, params, targets,
  weights) to optimise one image per target at once."""
  return stack(list(targets))


def random_crops(image, *, count: int, size: int, seed: int) -> list:
  """``count`` random ``size × size`` crops of an ``(H, W, 3)`` image (a side
  shorter than ``size`` is taken whole), top-left corners drawn uniformly from
  ``jax.random.key(seed)``: the style patches of the thesis (seed 002, "Style
  image patches")."""
  if count < 1 or size < 1:
    raise NSTError(f"style patches need count >= 1 and size >= 1, got "
                   f"{count} and {size}")
  h, w = image.shape[:2]
  ch, cw = min(size, h), min(size, w)
  ky, kx = jax.random.split(jax.random.key(seed))
  ys = [int(v) for v in jax.random.randint(ky, (count,), 0, h - ch + 1)]
  xs = [int(v) for v in jax.random.randint(kx, (count,), 0, w - cw + 1)]
  return [image[y:y + ch, x:x + cw] for y, x in zip(ys, xs)]


PATCH_MODES = ("mean", "instances")


def redraw_targets(spec: Spec, targets: Targets,
                   iteration: int) -> Targets | None:
  """The targets at ``iteration`` of a run: each representation that
  re-draws (``redraw_every`` ``K > 0``, a ``redraw`` method) is re-drawn
  where ``iteration`` is a positive multiple of its own ``K``, for round
  ``iteration // K``. ``None`` when no layer is due."""
  style, changed = dict(targets.style), False
  for layer, rep in spec.style_by_layer():
    period = representations.redraw_every(rep)
    if period > 0 and iteration > 0 and iteration % period == 0:
      style[layer] = rep.redraw(style[layer], iteration // period)
      changed = True
  coarse = (None if targets.coarse is None else
            redraw_targets(spec, targets.coarse, iteration))
  if coarse is None and not changed:
    return None
  return targets._replace(style=style, coarse=(
      targets.coarse if coarse is None else coarse))


def redraw_every(spec: Spec) -> int:
  """Iterations between the points where some target of ``spec`` may be
  re-drawn: the greatest common divisor of its representations' periods
  (0: none re-draws)."""
  periods = [representations.redraw_every(r) for r in spec.representations()]
  return math.gcd(*[p for p in periods if p > 0]) if any(periods) else 0


def size_scale(spec: Spec, shape: Tuple[int, ...]) -> float:
  """The factor on the content and TV terms of an image of ``shape``
  ``(H, W, …)``: ``1/(H·W)`` when ``spec.size_invariant``, else 1.

  Why ``H·W``: every layer's position count ``M_l`` is ``H·W`` over a fixed
  power of four (its pooling), so ``Σ_p`` over any layer divided by ``H·W``
  is a per-position mean up to a layer constant; the style term's
  statistics are already averages over positions (``statistics.gram_matrix``
  returns ``G/M``), so its per-pixel gradient falls as ``1/M`` while the
  summed content term's does not — the fading the factor removes.
  """
  return 1.0 / (shape[0] * shape[1]) if spec.size_invariant else 1.0


def loss_terms(params, image: jax.Array, targets: Targets, weights: Weights,
               spec: Spec) -> Dict[str, jax.Array]:
  """Every term of the objective for one image ``(H, W, 3)``.

  Returns scalars ``total``, ``content``, ``style``, ``tv`` — each already
  multiplied by its weight, so ``total = content + style + tv`` — and
  ``style_layers`` ``(L,)``, the weighted style term of each layer.
  Each style layer's term is ``Σ_s b_s · representation.loss(F, target)_s``;
  the content and TV terms carry ``size_scale(spec, image.shape)``.
  """
  feats = vgg.features(params, image[None], spec.layers, spec.pooling,
                       precision=spec.precision, remat=spec.remat)
  content = sum((losses.content_loss(feats[l][0], targets.content[l])
                 for l in spec.content_layers), jnp.float32(0))
  per_layer = []
  for l, rep in spec.style_by_layer():
    per_style = rep.loss(feats[l][0], targets.style[l])  # (S,)
    per_layer.append(jnp.sum(targets.style_blend * per_style))
  return weighted_terms(image, content, per_layer, weights, spec)


def coarse_view(image: jax.Array, shape: Tuple[int, int]) -> jax.Array:
  """``image`` ``(H, W, 3)`` seen at ``shape`` ``(h, w)``: resized with an
  antialiased Lanczos-3 filter (``jax.image.resize``; the filter of
  ``io.resize_to``, PIL's Lanczos, without its clip to [0, 1], so that the
  gradient reaches every pixel), differentiable; ``(h, w, 3)``."""
  return jax.image.resize(image, (*shape, image.shape[-1]), "lanczos3",
                          antialias=True)


def coarse_view_loss(params, image: jax.Array, targets: Targets,
                     weights: Weights, spec: Spec,
                     shape: Tuple[int, int]) -> jax.Array:
  """The first level's whole objective at the image ``(H, W, 3)`` seen at
  that level's ``shape`` (``coarse_view``): ``loss_terms(params,
  coarse_view(image, shape), targets, weights, spec)["total"]`` with the
  first level's ``targets`` (content features and style targets at its
  size), a scalar.

  At a finer level of a coarse-to-fine run it keeps the picture, seen at
  the first level's size, the solution of the first level, while the
  level's own objective adds the detail of its size. Style losses on
  several downsamplings of the image are Snelgrove's multi-scale texture
  synthesis (2017, "High-resolution multi-scale neural texture synthesis",
  §3); the content term at the coarse view is ours. Without it the fine
  levels bring the photo's edges back and paint strokes finer than a
  small view keeps: a 512 or 1024 px result downsampled to 256 px is much
  less stylised than the 256 px result (docs/benchmarks/quality.md,
  issue 26, item 6)."""
  return loss_terms(params, coarse_view(image, shape), targets, weights,
                    spec)["total"]


def weighted_terms(image: jax.Array, content: jax.Array,
                   per_layer: Sequence[jax.Array], weights: Weights,
                   spec: Spec) -> Dict[str, jax.Array]:
  """The terms of ``loss_terms`` from the unweighted pieces: the content
  loss summed over content layers (a scalar), each style layer's blended
  loss ``per_layer`` (L scalars) and the image ``(H, W, 3)`` (for TV and
  ``size_scale``). Shared by the whole-image and the tiled objective."""
  per_layer = (jnp.stack(per_layer) if len(per_layer) else jnp.zeros((0,)))
  style_layers = weights.style * weights.style_layers * per_layer
  scale = jnp.float32(size_scale(spec, image.shape))
  terms = {
      "content": weights.content * scale * content,
      "style": jnp.sum(style_layers),
      "tv": weights.tv * scale * losses.total_variation_loss(image),
      "style_layers": style_layers,
  }
  terms["total"] = terms["content"] + terms["style"] + terms["tv"]
  return terms


@functools.lru_cache(maxsize=None)
def objective_function(spec: Spec):
  """``f(image, params, targets, weights) -> (total, terms)`` for ``spec``.

  The function a solver minimises (``solvers.minimize(f, x0, args=(params,
  targets, weights))``). The data are arguments, not constants, so one
  compiled program serves any weights, targets and images of the same shapes,
  and ``jax.vmap`` can batch over any of them. The same ``spec`` returns the
  same function object, so compiled programs are reused.
  """
  def objective(image, params, targets, weights):
    terms = loss_terms(params, image, targets, weights, spec)
    return terms["total"], terms
  return objective


def make_objective(params, targets: Targets, weights: Weights, spec: Spec, *,
                   conv: str = "auto"):
  """``f(image) -> (total, terms)``, jit-compiled, with the data bound.

  A convenience for research code. The parameters are prepared for the
  convolution algorithm ``conv`` first (``vgg.prepare_params``: Winograd
  kernels on the CPU, ~1.6× faster per evaluation), as ``transfer.stylize``
  does; the data are passed to the compiled function as arguments (not
  baked into it as constants).
  """
  params = vgg.prepare_params(params, conv, spec.layers)
  compiled = jax.jit(objective_function(spec))
  return lambda image: compiled(image, params, targets, weights)


def check_image_size(network: str, spec: Spec, shape: Tuple[int, int]) -> None:
  """Refuses an ``(H, W)`` image too small to reach the spec's deepest layer
  (from shapes alone): every layer read must keep at least one position, or
  its statistics would divide by zero."""
  for layer, s in vgg.feature_shapes(network, shape, spec.layers,
                                     spec.pooling).items():
    if s[0] < 1 or s[1] < 1:
      raise NSTError(
          f"a {shape[1]}x{shape[0]} image is too small for layer {layer} of "
          f"{network}: use a larger {param('size')}")
