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
  # Convolution precision policy of the optimised image's features
  # (``vgg.PRECISIONS``) and gradient checkpointing per VGG block
  # (``vgg.features(remat=True)``). Targets are always computed in float32.
  precision: str = "float32"
  remat: bool = False
  # The style representation (``STYLE_STATS``; issue 3) and its static
  # parameters: the eigen-decomposition's rank (0: full) and loss
  # (``EIGEN_LOSSES``), and the local window ``s`` — one value for every
  # style layer or one per style layer.
  style_stat: str = "gram"
  style_rank: int = 0
  eigen_loss: str = "reconstruction"
  local_window: Tuple[int, ...] = (0,)

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
  ``{layer: (S, C_l, C_l)}`` for ``S`` styles; blend weights ``(S,)``.

  With another ``Spec.style_stat`` each style layer holds that
  representation's target, stacked over the ``S`` styles: spatial ``(S, C,
  2H−1, 2W−1)``; local the style's features ``(S, H, W, C)``; eigen ``(S, C,
  C)`` (reconstruction), ``(S, r)`` (spectrum) or ``{"basis": (S, C, r),
  "gram": (S, r, r)}`` (projected); moments ``(S, 2, C)``; covariance
  ``{"mean": (S, C), "cov_sqrt": (S, C, C)}``."""
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


# --- style representations (issue 3) ----------------------------------------
#
# A style target is made in two steps: a *base* statistic of one style
# image's features, linear in the image's positions where it can be (so the
# bases of several patches average into the statistic of their union), then a
# *derived* target (eigen-decomposition, matrix square root) of the stacked
# bases. ``_style_losses`` compares the generated image's features with it.

STYLE_STATS = ("gram", "spatial", "local", "eigen", "moments", "covariance")
EIGEN_LOSSES = ("reconstruction", "spectrum", "projected")
PATCH_MODES = ("mean", "instances")
# Representations that compare maps position by position: the style image
# must have the content image's size.
SAME_SIZE_STATS = ("spatial", "local")


def check_style_spec(spec: Spec) -> None:
  """Raises ``NSTError`` for an unknown representation or bad parameters."""
  if spec.style_stat not in STYLE_STATS:
    raise NSTError(f"style statistic must be one of {', '.join(STYLE_STATS)}, "
                   f"got {spec.style_stat!r}")
  if spec.eigen_loss not in EIGEN_LOSSES:
    raise NSTError(f"eigen loss must be one of {', '.join(EIGEN_LOSSES)}, got "
                   f"{spec.eigen_loss!r}")
  if int(spec.style_rank) < 0:
    raise NSTError(f"style rank must be >= 0 (0: full), got {spec.style_rank}")
  windows = tuple(spec.local_window)
  if len(windows) not in (1, len(spec.style_layers)) or any(
      int(s) < 0 for s in windows):
    raise NSTError(
        f"local window must be one integer >= 0 or one per style layer "
        f"({len(spec.style_layers)}), got {','.join(map(str, windows))}")


def _local_window(spec: Spec, index: int) -> int:
  windows = tuple(spec.local_window)
  return int(windows[0] if len(windows) == 1 else windows[index])


def _base_statistic(spec: Spec, f: jax.Array):
  """The averageable statistic of one style image's features (H, W, C)."""
  stat = spec.style_stat
  if stat in ("gram", "eigen"):
    return statistics.gram_matrix(f)
  if stat == "spatial":
    return statistics.spatial_autocorrelation(f)
  if stat == "local":
    return f
  if stat == "moments":
    return {"mean": jnp.mean(f, axis=(0, 1)),
            "square": jnp.mean(jnp.square(f), axis=(0, 1))}
  return {"mean": jnp.mean(f, axis=(0, 1)),              # covariance
          "gram": statistics.gram_matrix(f)}


@jax.jit(static_argnums=2)
def _style_bases(params, image, spec):
  feats = _features(params, image, spec.style_layers, spec.pooling)
  return {k: _base_statistic(spec, v[0]) for k, v in feats.items()}


@jax.jit(static_argnums=1)
def _derive_targets(bases, spec):
  """Targets of stacked bases (leading axis: styles)."""
  stat, rank = spec.style_stat, spec.style_rank
  out = {}
  for layer, base in bases.items():
    if stat == "eigen" and spec.eigen_loss == "reconstruction":
      base = statistics.low_rank_gram(base, rank=rank)
    elif stat == "eigen" and spec.eigen_loss == "spectrum":
      base = statistics.gram_spectrum(base, rank=rank)
    elif stat == "eigen":                                # projected
      _, basis = statistics.gram_eigen(base, rank=rank)
      base = {"basis": basis, "gram": jnp.einsum(
          "...ci,...cd,...dj->...ij", basis, base, basis,
          precision=jax.lax.Precision.HIGHEST)}
    elif stat == "moments":
      mean, square = base["mean"], base["square"]
      std = jnp.sqrt(jnp.maximum(square - jnp.square(mean), 0.0) + 1e-8)
      base = jnp.stack([mean, std], axis=-2)             # channel_moments
    elif stat == "covariance":
      mean = base["mean"]
      cov = base["gram"] - mean[..., :, None] * mean[..., None, :]
      base = {"mean": mean, "cov_sqrt": statistics.sqrtm_psd(cov)}
    out[layer] = base
  return out


def _style_losses(spec: Spec, index: int, f: jax.Array, target) -> jax.Array:
  """The style loss of one layer against each style's target: ``(S,)``."""
  stat, norm = spec.style_stat, spec.gram_normalization
  if stat == "gram" or (stat == "eigen" and spec.eigen_loss == "reconstruction"):
    gram = jnp.broadcast_to(statistics.gram_matrix(f), target.shape)
    return losses.gram_loss(gram, target, normalization=norm)
  if stat == "eigen" and spec.eigen_loss == "spectrum":
    values = statistics.gram_spectrum(statistics.gram_matrix(f),
                                      rank=spec.style_rank)
    return losses.spectrum_loss(jnp.broadcast_to(values, target.shape), target,
                                normalization=norm)
  if stat == "eigen":                                    # projected
    basis = target["basis"]                              # (S, C, r)
    reduced = jnp.einsum("sci,cd,sdj->sij", basis, statistics.gram_matrix(f),
                         basis, precision=jax.lax.Precision.HIGHEST)
    return losses.gram_loss(reduced, target["gram"], normalization=norm)
  if stat == "spatial":
    corr = statistics.spatial_autocorrelation(f)
    return losses.spatial_loss(jnp.broadcast_to(corr, target.shape), target,
                               normalization=norm)
  if stat == "local":
    return losses.local_gram_loss(
        jnp.broadcast_to(f, target.shape), target,
        window=_local_window(spec, index), normalization=norm)
  if stat == "moments":
    moments = statistics.channel_moments(f)
    return losses.moments_loss(jnp.broadcast_to(moments, target.shape), target)
  mean, cov = statistics.channel_mean_covariance(f)     # covariance
  tm, tc = target["mean"], target["cov_sqrt"]
  return losses.gaussian_w2_loss(jnp.broadcast_to(mean, tm.shape),
                                 jnp.broadcast_to(cov, tc.shape), tm, tc)


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


def make_targets(params, content: jax.Array | None,
                 styles: Sequence[jax.Array], spec: Spec,
                 style_blend_weights: Sequence[float] | None = None, *,
                 patches_per_style: int = 1,
                 patch_mode: str = "instances") -> Targets:
  """Computes content features and the Grams of each style image once.

  ``content`` is ``(H, W, 3)`` (or ``None`` for pure texture synthesis, with
  no content layers); each style image ``(H_s, W_s, 3)`` may have its own
  size, because Grams are ``C × C`` whatever the size. Blend weights are
  normalised to sum to one (default: equal).

  Other representations (``spec.style_stat``): the target of each layer is
  that statistic of each style, stacked on a leading axis (a dict of stacked
  arrays where a target has several parts). ``"spatial"`` and ``"local"``
  compare maps position by position, so their style images must have the
  content image's size (``transfer.stylize`` resizes them).

  Style patches: with ``patches_per_style = N > 1``, ``styles`` holds ``N``
  crops of each style image in turn (``random_crops``) and the blend weights
  are per style image; ``patch_mode="mean"`` averages the base statistics of
  each image's crops into one target (the statistic of their union),
  ``"instances"`` keeps the ``N`` crops as ``N`` styles of weight ``b_s/N``.
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
  check_style_spec(spec)
  n = int(patches_per_style)
  if n < 1 or len(styles) % n or patch_mode not in PATCH_MODES:
    raise NSTError(f"{len(styles)} style images cannot be split into groups "
                   f"of {n} patches (mode {patch_mode!r}, one of "
                   f"{', '.join(PATCH_MODES)})")
  if n > 1 and patch_mode == "mean" and spec.style_stat == "local":
    raise NSTError("patch mode 'mean' is not defined for the local style "
                   "(its target is the style's features): use 'instances'")
  if spec.style_stat in SAME_SIZE_STATS and content is not None:
    for s in styles:
      if tuple(s.shape[:2]) != tuple(content.shape[:2]):
        raise NSTError(
            f"the {spec.style_stat} style compares maps position by position: "
            f"a {s.shape[1]}x{s.shape[0]} style image needs to be resized to "
            f"the content's {content.shape[1]}x{content.shape[0]}")
  if spec.style_stat == "gram" and n == 1:  # the original path, unchanged
    grams = [_style_grams(params, s, spec.style_layers, spec.pooling)
             for s in styles]
    style_targets = {l: jnp.stack([g[l] for g in grams])
                     for l in spec.style_layers}
  else:
    bases = [_style_bases(params, s, spec) for s in styles]
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *bases)
    if n > 1 and patch_mode == "mean":
      stacked = jax.tree_util.tree_map(
          lambda x: x.reshape(-1, n, *x.shape[1:]).mean(axis=1), stacked)
    style_targets = _derive_targets(stacked, spec)
  n_images = len(styles) // n
  if style_blend_weights is None:
    style_blend_weights = [1.0] * n_images
  if len(style_blend_weights) != n_images:
    raise NSTError(
        f"got {len(style_blend_weights)} style blend weights for "
        f"{n_images} style images")
  if n > 1 and patch_mode == "instances":
    style_blend_weights = [b for b in style_blend_weights for _ in range(n)]
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
  feats = vgg.features(params, image[None], spec.layers, spec.pooling,
                       precision=spec.precision, remat=spec.remat)
  content = sum((losses.content_loss(feats[l][0], targets.content[l])
                 for l in spec.content_layers), jnp.float32(0))
  per_layer = []
  for i, l in enumerate(spec.style_layers):
    per_style = _style_losses(spec, i, feats[l][0], targets.style[l])  # (S,)
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
