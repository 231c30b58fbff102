"""The style-transfer objective: targets computed once, one jit-able loss.

``L_total = α L_content + β Σ_s b_s Σ_l w_l E_l + γ L_tv``
(Gatys et al. 2016, eqs. 1, 4-7; ``b_s`` blends several styles as in
jcjohnson/neural-style's ``-style_blend_weights``; ``γ`` weighs total variation).

Three pieces of data, split by how they vary:

* ``Spec`` — static, hashable structure (layer names, pooling, Gram
  normalisation). Changing it recompiles.
* ``Weights`` — α, β, γ and the per-layer weights as arrays: a pytree that can
  be traced and ``vmap``-ed (style grids over α/β need no recompilation).
* ``Targets`` — content features and style Grams, computed once per run.

Array contract: the optimised ``image`` is ``(H, W, 3)`` float32 in [0, 1].
"""

import dataclasses
import functools
from typing import Dict, NamedTuple, Sequence, Tuple

import jax
import jax.numpy as jnp

from nst_jax import losses
from nst_jax import networks
from nst_jax import statistics
from nst_jax import vgg
from nst_jax.errors import NSTError


@dataclasses.dataclass(frozen=True)
class Spec:
  """Static structure of the objective (hashable; a jit static argument)."""
  content_layers: Tuple[str, ...] = networks.DEFAULT_CONTENT_LAYERS["vgg16"]
  style_layers: Tuple[str, ...] = networks.DEFAULT_STYLE_LAYERS["vgg16"]
  pooling: str = "max"
  gram_normalization: str = "paper"

  @property
  def layers(self) -> Tuple[str, ...]:
    """Every layer the objective reads, without repeats."""
    return tuple(dict.fromkeys(self.content_layers + self.style_layers))


class Weights(NamedTuple):
  """Loss weights as arrays: α (content), β (style), γ (tv), w_l per layer."""
  content: jax.Array
  style: jax.Array
  tv: jax.Array
  style_layers: jax.Array  # (L,)


class Targets(NamedTuple):
  """Content features ``{layer: (H_l, W_l, C_l)}``; style Grams
  ``{layer: (S, C_l, C_l)}`` for ``S`` styles; blend weights ``(S,)``."""
  content: Dict[str, jax.Array]
  style: Dict[str, jax.Array]
  style_blend: jax.Array


def make_weights(spec: Spec, *, content_weight: float, style_weight: float,
                 tv_weight: float = 0.0,
                 style_layer_weights: Sequence[float] | None = None) -> Weights:
  """Builds ``Weights``; per-layer weights default to ``1/L`` (Gatys §2)."""
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
      raise NSTError(f"{name} must be a finite number >= 0, got {value}")
  f32 = lambda v: jnp.asarray(v, jnp.float32)
  return Weights(f32(content_weight), f32(style_weight), f32(tv_weight),
                 f32(style_layer_weights))


def _features(params, image, layers, pooling):
  return vgg.features(params, image[None], layers, pooling)


@jax.jit(static_argnums=(2, 3))
def _content_targets(params, image, layers, pooling):
  return {k: v[0] for k, v in _features(params, image, layers, pooling).items()}


@jax.jit(static_argnums=(2, 3))
def _style_grams(params, image, layers, pooling):
  feats = _features(params, image, layers, pooling)
  return {k: statistics.gram_matrix(v[0]) for k, v in feats.items()}


def make_targets(params, content: jax.Array | None,
                 styles: Sequence[jax.Array], spec: Spec,
                 style_blend_weights: Sequence[float] | None = None) -> Targets:
  """Computes content features and the Grams of each style image once.

  ``content`` is ``(H, W, 3)`` (or ``None`` for pure texture synthesis, with
  no content layers); each style image ``(H_s, W_s, 3)`` may have its own
  size, because Grams are ``C × C`` whatever the size. Blend weights are
  normalised to sum to one (default: equal).
  """
  network = vgg.network_of(params)
  vgg.check_layers(network, spec.layers)
  if spec.pooling not in vgg.POOLING:
    raise NSTError(f"pooling must be one of {vgg.POOLING}, got {spec.pooling!r}")
  if spec.gram_normalization not in losses.GRAM_NORMALIZATIONS:
    raise NSTError(
        f"gram normalization must be one of {losses.GRAM_NORMALIZATIONS}, got "
        f"{spec.gram_normalization!r}")
  if content is None:
    if spec.content_layers:
      raise NSTError("content layers were given but no content image")
    content_targets = {}
  else:
    content_targets = _content_targets(params, content, spec.content_layers,
                                       spec.pooling)
  if spec.style_layers and not styles:
    raise NSTError("style layers were given but no style image")
  grams = [_style_grams(params, s, spec.style_layers, spec.pooling)
           for s in styles]
  style_targets = {l: jnp.stack([g[l] for g in grams]) for l in spec.style_layers}
  if style_blend_weights is None:
    style_blend_weights = [1.0] * len(styles)
  if len(style_blend_weights) != len(styles):
    raise NSTError(
        f"got {len(style_blend_weights)} style blend weights for "
        f"{len(styles)} style images")
  blend = jnp.asarray(style_blend_weights, jnp.float32)
  if styles and (not bool(jnp.all(blend >= 0)) or float(blend.sum()) <= 0):
    raise NSTError("style blend weights must be >= 0 and not all zero")
  blend = blend / jnp.maximum(blend.sum(), 1e-30)
  return Targets(content_targets, style_targets, blend)


def loss_terms(params, image: jax.Array, targets: Targets, weights: Weights,
               spec: Spec) -> Dict[str, jax.Array]:
  """Every term of the objective for one image ``(H, W, 3)``.

  Returns scalars ``total``, ``content``, ``style``, ``tv`` — each already
  multiplied by its weight, so ``total = content + style + tv`` — and
  ``style_layers`` ``(L,)``, the weighted style term of each layer.
  """
  feats = _features(params, image, spec.layers, spec.pooling)
  content = sum((losses.content_loss(feats[l][0], targets.content[l])
                 for l in spec.content_layers), jnp.float32(0))
  per_layer = []
  for l in spec.style_layers:
    target = targets.style[l]                       # (S, C, C)
    gram = jnp.broadcast_to(statistics.gram_matrix(feats[l][0]), target.shape)
    per_style = losses.gram_loss(gram, target,
                                 normalization=spec.gram_normalization)
    per_layer.append(jnp.sum(targets.style_blend * per_style))
  per_layer = (jnp.stack(per_layer) if per_layer else jnp.zeros((0,)))
  style_layers = weights.style * weights.style_layers * per_layer
  terms = {
      "content": weights.content * content,
      "style": jnp.sum(style_layers),
      "tv": weights.tv * losses.total_variation_loss(image),
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


def make_objective(params, targets: Targets, weights: Weights, spec: Spec):
  """``f(image) -> (total, terms)``, jit-compiled, with the data bound.

  A convenience for research code; the data are passed to the compiled
  function as arguments (not baked into it as constants).
  """
  compiled = jax.jit(objective_function(spec))
  return lambda image: compiled(image, params, targets, weights)
