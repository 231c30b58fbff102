"""STROTSS: style transfer by relaxed optimal transport and self-similarity.

Kolkin, Salavon & Shakhnarovich, CVPR 2019 ("Style Transfer by Relaxed
Optimal Transport and Self-Similarity"), and the official code
(github.com/nkolkin13/STROTSS: ``styleTransfer.py``, ``st_helper.py``,
``stylize_objectives.py``, ``contextual_loss.py``, ``vgg_pt.py``). Our own
code, written from the paper and that code's formulas.

Array contract. Images are ``(H, W, 3)`` float RGB in [0, 1] (``vgg``
normalises them with the ImageNet mean and std, as the official code does
since its 2020 fix). A *hypercolumn* set is ``(N, D)``: ``N`` image positions,
``D = 2179`` features (RGB 3 + relu1_1 64 + relu1_2 64 + relu2_1 128 +
relu2_2 128 + relu3_1 256 + relu3_2 256 + relu3_3 256 + relu4_3 512 +
relu5_3 512; ``nst_jax.hypercolumns``). The first three are the RGB values.

The loss (paper §2; official ``objective_class
.gen_remd_dp_objective_guided``), on hypercolumns ``X`` of the output,
``C`` of the content at the same positions and ``S`` of the style:

    L = (α ℓ_content(X, C) + ℓ_r(X, S) + μ (ℓ_m(X, S) + ℓ_p(X, S) / max(α, 1)))
        / (α + 1 + μ)

with α the content weight (16 at the first level, halved at every level), μ
the moment weight (1). Positions of ``X`` and ``C`` are redrawn every step
from a PRNG key (``hypercolumns.sample_positions``); ``S`` is drawn once per
level (``make_targets``). Guided (official ``-gr content_guidance
style_guidance``: regions paired by colour), each region has its own
positions inside its content mask and its own style hypercolumns from its
style mask, and ``L`` is the mean of the regions' losses.

Every function is pure and jit-able; ``objective(settings)`` gives
``loss(params, image, targets, key) -> (value, terms)``.
"""

import dataclasses
import functools
from typing import Dict, NamedTuple, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nst_jax import hypercolumns as hc
from nst_jax import networks, parameterize, vgg
from nst_jax.errors import NSTError, param

_HIGHEST = jax.lax.Precision.HIGHEST

# The official feature taps: ``vgg_pt.Vgg16_pt.forward_base`` keeps the input
# image and the outputs of torchvision ``vgg16().features`` modules
# 1, 3, 6, 8, 11, 13, 15, 22, 29 — these ReLUs.
LAYERS = ("relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2",
          "relu3_3", "relu4_3", "relu5_3")

# Official ``utils.C``: the "YUV" transform the palette term compares colours
# in (rows: luminance (1, 1, 1)/√3 and two chroma axes; orthonormal).
YUV = np.array([[0.577350, 0.577350, 0.577350],
                [-0.577350, 0.788675, -0.211325],
                [-0.577350, -0.211325, 0.788675]])


@dataclasses.dataclass(frozen=True)
class Settings:
  """The official STROTSS defaults, each with its source.

  Files are the official repository's; "paper" is Kolkin et al. 2019.
  """
  # vgg_pt.Vgg16_pt.forward_base: the image (RGB) and these VGG-16 layers.
  layers: Tuple[str, ...] = LAYERS
  # stylize_objectives.get_feature_inds: cnt = 32**2 output positions a step.
  samples: int = 1024
  # stylize_objectives.init_inds: const = 128**2 (the grid's stride).
  pixels_per_point: int = hc.PIXELS_PER_GRID_POINT
  # st_helper.style_transfer: the grid offset is redrawn every
  # RESAMPLE_FREQ * 10 = 10 steps, the positions shuffled every step.
  offset_every: int = 10
  # st_helper.style_transfer: load_style_folder(..., subsamps=1000, inner=5):
  # 5 draws of 1000 style pixels, pooled (5000 style hypercolumns a level).
  style_samples: int = 1000
  style_draws: int = 5
  # styleTransfer.py: content_weight = argv[3] * 16 (README: 1.0 is the
  # default; the README points to the paper's §2.5 for the factor 16).
  content_weight: float = 16.0
  # styleTransfer.run_st: content_weight /= 2 after every level.
  content_weight_decay: float = 0.5
  # st_helper.style_transfer: objective_wrapper.eval(..., moment_weight=1.0).
  moment_weight: float = 1.0
  # styleTransfer.run_st: smll_sz = 64, long side 64 · 2^(level) for levels
  # 0 … max_scl − 2; README: MAX_SCALES = 5 (4 levels, 64 → 512 px); 4 gives
  # 256 px (3 levels).
  base_size: int = 64
  max_scales: int = 5
  # st_helper.style_transfer: MAX_ITER = 250 RMSprop steps a level.
  iterations: int = 250
  # styleTransfer.run_st: lr = 2e-3, and 1e-3 at the last level.
  learning_rate: float = 2e-3
  last_learning_rate: float = 1e-3
  # torch.optim.RMSprop defaults (alpha, eps; eps added to √v, outside the
  # root; no momentum, not centred).
  rmsprop_decay: float = 0.99
  rmsprop_eps: float = 1e-8
  # st_helper.style_transfer: dec_lap_pyr(stylized_im, 5).
  pyramid_levels: int = parameterize.STROTSS_PYRAMID_LEVELS

  def __post_init__(self):
    values = dataclasses.asdict(self)
    for name in ("samples", "pixels_per_point", "offset_every",
                 "style_samples", "style_draws", "base_size", "iterations"):
      value = values[name]
      if not isinstance(value, int) or value < 1:
        raise NSTError(f"{param(name)} must be a positive int, got {value!r}")
    if not isinstance(self.max_scales, int) or self.max_scales < 2:
      raise NSTError(f"{param('max_scales')} must be an int of at least 2, "
                     f"got {self.max_scales!r}")
    for name in ("content_weight", "moment_weight", "learning_rate",
                 "last_learning_rate", "content_weight_decay"):
      value = values[name]
      if not np.isfinite(value) or value < 0:
        raise NSTError(f"{param(name)} must be a finite number of at least "
                       f"0, got {value!r}")
    if not isinstance(self.pyramid_levels, int) or self.pyramid_levels < 0:
      raise NSTError(f"{param('pyramid_levels')} must be an int of at least "
                     f"0, got {self.pyramid_levels!r}")
    vgg.check_layers("vgg16", self.layers)


DEFAULTS = Settings()


class Level(NamedTuple):
  """One level of the official coarse-to-fine schedule
  (``styleTransfer.run_st``)."""
  long_side: int          # 64 · 2^index
  content_weight: float   # α₀ · decay^index
  learning_rate: float    # 2e-3, the last level 1e-3
  iterations: int         # 250
  add_content_detail: bool  # start = previous (or the style's mean colour)
                            # + the content's finest Laplacian band; not at
                            # the last level


def levels(settings: Settings = DEFAULTS) -> Tuple[Level, ...]:
  """The official schedule: ``max_scales − 1`` levels, long sides
  ``base_size · 2^i``. Source: ``styleTransfer.run_st`` (``for scl in
  range(1, max_scl)``)."""
  count = settings.max_scales - 1
  return tuple(
      Level(settings.base_size * 2 ** i,
            settings.content_weight * settings.content_weight_decay ** i,
            settings.last_learning_rate if i == count - 1
            else settings.learning_rate,
            settings.iterations, i < count - 1)
      for i in range(count))


def optimizer(level: Level, settings: Settings = DEFAULTS
              ) -> optax.GradientTransformation:
  """The official optimiser of one level: ``torch.optim.RMSprop(lr=
  level.learning_rate)`` with torch's defaults (official
  ``st_helper.style_transfer``): ``v ← ρ v + (1 − ρ) g²`` from ``v = 0``,
  ``p ← p − lr · g / (√v + ε)`` (ε outside the root, no momentum, not
  centred), ``ρ = 0.99``, ``ε = 1e-8``. Apply it to the pyramid's
  coefficients (``parameterize.laplacian(settings.pyramid_levels)``)."""
  return optax.rmsprop(level.learning_rate, decay=settings.rmsprop_decay,
                       eps=settings.rmsprop_eps, eps_in_sqrt=False)


# --- distances and losses on hypercolumns ---------------------------------

def _unit_rows(x: jax.Array) -> jax.Array:
  return x / jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True) + 1e-30)


def cosine_distances(x: jax.Array, y: jax.Array) -> jax.Array:
  """``D_ij = 1 − x_i·y_j / (‖x_i‖ ‖y_j‖)`` for ``x`` ``(n, d)``, ``y``
  ``(m, d)``; returns ``(n, m)``. Source: official
  ``contextual_loss.pairwise_distances_cos``. A zero row has distance 1 to
  everything (the official code gives NaN)."""
  return 1.0 - jnp.matmul(_unit_rows(x), _unit_rows(y).T, precision=_HIGHEST)


def euclidean_distances(x: jax.Array, y: jax.Array) -> jax.Array:
  """``D_ij = √(clip(‖x_i − y_j‖², 1e-5, 1e5) / d)`` for ``x`` ``(n, d)``,
  ``y`` ``(m, d)``; ``(n, m)``. Source: official ``contextual_loss
  .get_DMat(cos_d=False)`` with ``pairwise_distances_sq_l2`` (the clip keeps
  the root's gradient finite)."""
  sq = (jnp.sum(x * x, -1)[:, None] + jnp.sum(y * y, -1)[None, :]
        - 2.0 * jnp.matmul(x, y.T, precision=_HIGHEST))
  return jnp.sqrt(jnp.clip(sq, 1e-5, 1e5) / x.shape[-1])


def relaxed_emd(cost: jax.Array) -> jax.Array:
  """``max(mean_i min_j C_ij, mean_j min_i C_ij)`` of a cost matrix ``(n,
  m)``: the relaxed earth mover's distance (paper §2: each of the
  two transport constraints dropped in turn, the larger bound kept).
  Source: official ``contextual_loss.remd_loss``."""
  return jnp.maximum(jnp.mean(jnp.min(cost, axis=1)),
                     jnp.mean(jnp.min(cost, axis=0)))


def remd_loss(x: jax.Array, y: jax.Array) -> jax.Array:
  """``ℓ_r``: relaxed EMD between feature sets ``x`` ``(n, d)`` and ``y``
  ``(m, d)`` under the cosine cost (paper §2; official
  ``remd_loss`` with ``cos_d=True``, one split over all ``d``)."""
  return relaxed_emd(cosine_distances(x, y))


def self_similarity_loss(x: jax.Array, c: jax.Array) -> jax.Array:
  """``ℓ_content``: self-similarity of the output ``x`` against the content
  ``c``, both ``(n, d)`` at the same positions.

  ``D^X = cosine_distances(x, x)``, each column divided by its sum
  (``D^X_ij / Σ_k D^X_kj``), likewise ``D^C``; the loss is
  ``n · mean |D^X − D^C| = (1/n) Σ_ij |…|``. Source: official
  ``contextual_loss.dp_loss`` (``.mean() * X.size(0)``).
  """
  def normalized(z):   # (a column of zeros, all positions alike: zeros)
    d = cosine_distances(z, z)
    return d / (jnp.sum(d, axis=0, keepdims=True) + 1e-30)
  n = x.shape[0]
  return jnp.mean(jnp.abs(normalized(x) - normalized(c))) * n


def moments(y: jax.Array) -> Tuple[jax.Array, jax.Array]:
  """``(μ, Σ)`` of a feature set ``y`` ``(m, d)``: the mean ``(d,)`` and the
  biased covariance ``(y − μ)ᵀ(y − μ) / m`` ``(d, d)``. Source: official
  ``contextual_loss.moment_loss``."""
  mu = jnp.mean(y, axis=0)
  centred = y - mu[None, :]
  return mu, jnp.matmul(centred.T, centred, precision=_HIGHEST) / y.shape[0]


def moment_loss(x: jax.Array, target: Tuple[jax.Array, jax.Array]
                ) -> jax.Array:
  """``ℓ_m = mean_k |μ^X_k − μ^S_k| + mean_kl |Σ^X_kl − Σ^S_kl|`` for ``x``
  ``(n, d)`` against ``target = moments(s)``. Source: official
  ``contextual_loss.moment_loss`` (``moments=[1, 2]``)."""
  mu, cov = moments(x)
  return (jnp.mean(jnp.abs(mu - target[0]))
          + jnp.mean(jnp.abs(cov - target[1])))


def palette_loss(x_rgb: jax.Array, y_rgb: jax.Array) -> jax.Array:
  """``ℓ_p``: relaxed EMD between colour sets ``x_rgb`` ``(n, 3)`` and
  ``y_rgb`` ``(m, 3)`` in ``YUV`` coordinates under the cost
  ``cosine + euclidean_distances``. Source: official
  ``contextual_loss.remd_loss`` with ``d == 3`` (``rgb_to_yuv_pc``, then
  ``get_DMat(cos_d=True) + get_DMat(cos_d=False)``)."""
  yuv = jnp.asarray(YUV, x_rgb.dtype)
  x = jnp.matmul(x_rgb, yuv.T, precision=_HIGHEST)
  y = jnp.matmul(y_rgb, yuv.T, precision=_HIGHEST)
  return relaxed_emd(cosine_distances(x, y) + euclidean_distances(x, y))


def strotss_loss(x: jax.Array, c: jax.Array, s: jax.Array,
                 s_moments: Tuple[jax.Array, jax.Array], *,
                 content_weight, moment_weight=DEFAULTS.moment_weight
                 ) -> Tuple[jax.Array, Dict[str, jax.Array]]:
  """The STROTSS objective on hypercolumns: ``x`` of the output and ``c`` of
  the content, ``(n, D)`` at the same positions, ``s`` ``(m, D)`` of the
  style with ``s_moments = moments(s)``; the first 3 features are RGB.

  ``style = ℓ_r(x, s) + μ (ℓ_m(x, s) + ℓ_p(x[:, :3], s[:, :3]) / max(α, 1))``
  and ``total = (α ℓ_content(x, c) + style) / (α + 1 + μ)``.
  Source: official ``gen_remd_dp_objective_guided`` (one region, no point
  guidance).

  Returns ``(total, terms)``, ``terms`` with ``content``, ``remd``,
  ``moment``, ``palette``, ``style`` and ``total`` (scalars).
  """
  if x.shape != c.shape or x.ndim != 2 or s.ndim != 2 \
      or s.shape[1] != x.shape[1] or x.shape[1] < 3:
    raise ValueError(f"x and c must be (n, D) alike and s (m, D), D ≥ 3: got "
                     f"{x.shape}, {c.shape}, {s.shape}")
  alpha = jnp.asarray(content_weight, x.dtype)
  mu_w = jnp.asarray(moment_weight, x.dtype)
  terms = {
      "content": self_similarity_loss(x, c),
      "remd": remd_loss(x, s),
      "moment": moment_loss(x, s_moments),
      "palette": palette_loss(x[:, :3], s[:, :3]),
  }
  terms["style"] = terms["remd"] + mu_w * (
      terms["moment"] + terms["palette"] / jnp.maximum(alpha, 1.0))
  terms["total"] = ((alpha * terms["content"] + terms["style"])
                    / (alpha + 1.0 + mu_w))
  return terms["total"], terms


# --- features ---------------------------------------------------------------

def _pools_before(layer: str, network: str = "vgg16") -> int:
  count = 0
  for spec in networks.NETWORKS[network]:
    if spec.name == layer:
      return count
    count += isinstance(spec, networks.Pool)
  raise ValueError(f"no layer {layer!r} in {network}")


def map_scales(settings: Settings = DEFAULTS) -> Tuple[float, ...]:
  """The scale of each of ``feature_maps``' maps: 1 for the image, ``2^-k``
  for a layer after ``k`` poolings (official ``spatial_feature_extract``
  halves the positions at every pooling)."""
  return (1.0,) + tuple(2.0 ** -_pools_before(l) for l in settings.layers)


def feature_maps(params, image: jax.Array, settings: Settings = DEFAULTS
                 ) -> Tuple[jax.Array, ...]:
  """``(image, relu1_1, …)``: the image ``(H, W, 3)`` in [0, 1] itself and
  its VGG-16 maps ``(h_i, w_i, C_i)`` at ``settings.layers`` (max pooling).
  Source: official ``vgg_pt.Vgg16_pt.forward_base`` (``l2 = [X]`` then the
  taps)."""
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"image must be (H, W, 3), got {image.shape}")
  return _feature_maps(params, image, tuple(settings.layers))


@functools.partial(jax.jit, static_argnums=(2,))
def _feature_maps(params, image, layers):
  """``feature_maps``' work, one compiled program per shape and layers
  (called eagerly by ``make_targets``; inlined under an outer ``jit``)."""
  feats = vgg.features(params, image[None], layers, "max")
  return (image,) + tuple(feats[l][0] for l in layers)


def channels(settings: Settings = DEFAULTS) -> int:
  """``D``: 3 + the channels of ``settings.layers`` (2179 by default)."""
  return 3 + sum(networks.layer_channels("vgg16", l) for l in settings.layers)


class Region(NamedTuple):
  """One region of a level (official ``st_helper.style_transfer``: one entry
  of ``regions``, a pair of masks of one colour): where the output's
  positions are drawn and the style hypercolumns they are compared with; a
  pytree of arrays."""
  mask: jax.Array | None    # (H, W) bool at the level's size; None: all
  style: jax.Array          # (style_draws · n, D) hypercolumns
  style_mean: jax.Array     # (D,)
  style_cov: jax.Array      # (D, D)


class Targets(NamedTuple):
  """What one level's loss compares against, computed once
  (``make_targets``); a pytree of arrays. Without guidance one region,
  the whole image."""
  content_maps: Tuple[jax.Array, ...]  # feature_maps(content)
  regions: Tuple[Region, ...]
  content_weight: jax.Array            # α, a float32 scalar


def _style_draws(maps: Tuple[jax.Array, ...], shape: Tuple[int, int],
                 key: jax.Array, count: int, settings: Settings,
                 mask: jax.Array | None = None) -> jax.Array:
  scales = map_scales(settings)

  def draw(k):
    positions = hc.sample_pixels(k, shape, count, mask=mask)
    return hc.hypercolumns(maps, positions, scales, sample=hc.sample_nearest)

  draws = jax.vmap(draw)(jax.random.split(key, settings.style_draws))
  return draws.reshape(-1, draws.shape[-1])


def style_hypercolumns(params, style: jax.Array, key: jax.Array,
                       settings: Settings = DEFAULTS) -> jax.Array:
  """``style_draws`` draws of ``min(style_samples, H·W)`` distinct style
  pixels each, read without interpolation (``hypercolumns.sample_nearest``
  at the positions halved per pooling), stacked:
  ``(style_draws · n, D)``. Source: official ``utils.load_style_folder``
  (``inner=5``, ``subsamps=1000``) and ``vgg_pt.Vgg16_pt.forward_cat``."""
  shape = style.shape[:2]
  return _style_draws(feature_maps(params, style, settings), shape, key,
                      min(settings.style_samples, shape[0] * shape[1]),
                      settings)


def _region(s: jax.Array, mask=None) -> Region:
  mean, cov = moments(s)
  return Region(mask, s, mean, cov)


def make_targets(params, content: jax.Array, style: jax.Array,
                 settings: Settings, key: jax.Array,
                 guides: Tuple[np.ndarray, np.ndarray] | None = None
                 ) -> Targets:
  """The targets of one level: the content's maps (read at each step's
  positions), the style's hypercolumns (drawn once from ``key``) with their
  moments, and ``settings.content_weight`` as an array (a level's α changes
  without recompiling). ``content`` and ``style`` are ``(H, W, 3)`` and
  ``(H', W', 3)`` in [0, 1], already at the level's size (official: both
  resized to the level's long side).

  ``guides = (content_masks, style_masks)``, concrete bool arrays ``(K, H,
  W)`` and ``(K, H', W')`` at the level's sizes, make ``K`` regions
  (``Region``): region ``k``'s style hypercolumns are drawn from the style
  pixels of ``style_masks[k]`` only (``min(style_samples, pixels)`` a draw)
  and its output positions from ``content_masks[k]``. A region empty in
  either mask at this level is left out (it has no positions or no style to
  compare them with). Source: official ``st_helper.style_transfer``
  (``load_style_folder(..., regions, ri)``, ``init_inds(..., r, ri)``).
  Without ``guides`` this is jit-able; with them the masks must be
  concrete (their pixel counts are shapes).
  """
  if style.ndim != 3 or style.shape[-1] != 3:
    raise ValueError(f"style must be (H, W, 3), got {style.shape}")
  alpha = jnp.asarray(settings.content_weight, jnp.float32)
  content_maps = feature_maps(params, content, settings)
  if guides is None:
    s = style_hypercolumns(params, style, key, settings)
    return Targets(content_maps, (_region(s),), alpha)
  content_masks, style_masks = (np.asarray(g, bool) for g in guides)
  if (content_masks.shape[1:] != content.shape[:2]
      or style_masks.shape[1:] != style.shape[:2]
      or len(content_masks) != len(style_masks)):
    raise ValueError(f"guides must be (K, H, W) and (K, H', W') at the "
                     f"images' sizes {content.shape[:2]}, {style.shape[:2]}; "
                     f"got {content_masks.shape}, {style_masks.shape}")
  style_maps = feature_maps(params, style, settings)
  regions = []
  for k, (c_mask, s_mask) in enumerate(zip(content_masks, style_masks)):
    pixels = int(s_mask.sum())
    if not c_mask.any() or not pixels:
      continue
    s = _style_draws(style_maps, style.shape[:2], jax.random.fold_in(key, k),
                     min(settings.style_samples, pixels), settings,
                     jnp.asarray(s_mask))
    regions.append(_region(s, jnp.asarray(c_mask)))
  if not regions:
    raise NSTError("no guidance region is in both the content and the style "
                   f"at {content.shape[1]}x{content.shape[0]} px")
  return Targets(content_maps, tuple(regions), alpha)


def region_counts(targets: Targets, settings: Settings = DEFAULTS
                  ) -> Tuple[int, ...]:
  """How many output positions each region draws a step: ``min(samples,
  grid points inside its mask)`` (``hypercolumns.grid_capacity`` with the
  mask: the fewest any grid offset leaves; official ``get_feature_inds``
  takes ``32**2`` of the region's points). The masks must be concrete;
  pass the result to ``objective``. Static: one program per level."""
  shape = tuple(targets.content_maps[0].shape[:2])
  return tuple(
      min(settings.samples,
          hc.grid_capacity(shape, settings.pixels_per_point,
                           None if r.mask is None else np.asarray(r.mask)))
      for r in targets.regions)


def positions(key: jax.Array, shape: Tuple[int, int],
              settings: Settings = DEFAULTS, *, mask: jax.Array | None = None,
              count: int | None = None) -> jax.Array:
  """The output positions of one step: ``count`` (default ``min(samples,
  grid_capacity)``) of ``hypercolumns.sample_positions`` for an image of
  ``shape``, offset and shuffles both drawn from ``key``; only the grid
  points inside ``mask`` (``(H, W)`` bool) when given."""
  if count is None:
    count = min(settings.samples,
                hc.grid_capacity(shape, settings.pixels_per_point))
  return hc.sample_positions(key, shape, count,
                             pixels_per_point=settings.pixels_per_point,
                             mask=mask)


def objective(settings: Settings = DEFAULTS,
              counts: Tuple[int, ...] | None = None):
  """``loss(params, image, targets, key) -> (value, terms)``: STROTSS at one
  level. ``image`` ``(H, W, 3)`` has the content's size; ``targets`` from
  ``make_targets``; ``key`` draws this step's positions (``positions``),
  the same for the output and the content. Pure; jit it once per level
  shape. ``terms`` as ``strotss_loss``'s.

  With several regions (guidance) each region ``k`` draws
  ``counts[k]`` positions inside its mask (``region_counts``; required when
  a region has a mask; a region of fewer than 2 is skipped: it has no
  self-similarity) from ``fold_in(key, k)``,
  and the value and every term are the mean over the regions of ``strotss_loss`` on the region's
  positions against its style (official ``gen_remd_dp_objective_guided``:
  ``final_loss / len(regions)``).

  The official loop keeps the grid offset for 10 steps and reshuffles every
  step; here both come from the step's key (the offset only chooses which of
  the ≤ 12 shifted grids the positions lie on).
  """
  scales = map_scales(settings)

  def region_loss(maps, targets, region, key, count):
    where = positions(key, maps[0].shape[:2], settings, mask=region.mask,
                      count=count)
    x = hc.hypercolumns(maps, where, scales)
    c = hc.hypercolumns(targets.content_maps, where, scales)
    return strotss_loss(x, c, region.style,
                        (region.style_mean, region.style_cov),
                        content_weight=targets.content_weight,
                        moment_weight=settings.moment_weight)

  def loss(params, image, targets: Targets, key):
    if image.shape != targets.content_maps[0].shape:
      raise ValueError(f"image {image.shape} and content "
                       f"{targets.content_maps[0].shape} differ in shape")
    regions = targets.regions
    n = counts if counts is not None else (None,) * len(regions)
    if len(n) != len(regions) or any(
        c is None and r.mask is not None for c, r in zip(n, regions)):
      raise ValueError(f"counts {counts} do not fit the {len(regions)} "
                       "regions: pass region_counts(targets, settings)")
    if not any(c is None or c > 1 for c in n):
      raise NSTError("no guidance region has two grid points at "
                     f"{image.shape[1]}x{image.shape[0]} px: the regions "
                     "are too small for this size")
    maps = feature_maps(params, image, settings)
    if len(regions) == 1:
      return region_loss(maps, targets, regions[0], key, n[0])
    results = [region_loss(maps, targets, r, jax.random.fold_in(key, k), c)
               for k, (r, c) in enumerate(zip(regions, n))
               if c is None or c > 1]
    terms = {name: sum(t[name] for _, t in results) / len(results)
             for name in results[0][1]}
    return terms["total"], terms

  return loss


# --- the images each level starts from ------------------------------------

def content_detail(content: jax.Array) -> jax.Array:
  """The content's finest Laplacian band ``c − up(down(c))`` ``(H, W, 3)``,
  down to ``(H//2, W//2)`` and back with ``resize_bilinear(align_corners=
  False)`` (official ``run_st``: ``F.upsample(..., mode='bilinear')``)."""
  h, w = content.shape[:2]
  small = parameterize.resize_bilinear(content, (h // 2, w // 2),
                                       align_corners=False)
  return content - parameterize.resize_bilinear(small, (h, w),
                                                align_corners=False)


def first_image(content: jax.Array, style: jax.Array) -> jax.Array:
  """The first level's start: the style's mean colour plus the content's
  finest band (official ``run_st``, ``scl == 1``: ``content_im_mean + lap``,
  where ``content_im_mean`` is the *style* image's mean)."""
  return (jnp.mean(style, axis=(0, 1), keepdims=True)
          + content_detail(content))


def next_image(previous: jax.Array, content: jax.Array, *,
               add_detail: bool) -> jax.Array:
  """A later level's start: the previous level's result resized to the
  content's size (``align_corners=False``), plus the content's finest band
  except at the last level (official ``run_st``; see ``Level``)."""
  up = parameterize.resize_bilinear(previous, content.shape[:2],
                                    align_corners=False)
  return up + content_detail(content) if add_detail else up
