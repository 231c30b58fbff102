"""Guided statistics: where each style goes.

One mechanism serves two features. A *guide* is a non-negative map per
region, ``g_k(x, y)``; a guided Gram weighs the positions of a layer by it
and normalises by the region's area (Gatys, Ecker, Bethge, Hertzmann &
Shechtman, "Controlling Perceptual Factors in Neural Style Transfer", CVPR
2017, §4 "Spatial control", eq. 5 with area normalisation)::

    G_kij = Σ_p g_k(p) F_i(p) F_j(p) / Σ_p g_k(p)        (K, C, C)

* user masks (``nst_jax.masks``): ``g_k`` is the k-th colour region of a
  colour-coded mask, feathered, brought to each layer (``GuidedGram``);
* content-aware style (Nikulin & Novak, seed 001, §9): ``g_k`` is the
  images' own content-layer features projected onto a small shared basis
  (``ContentAware``), which makes §9's "global style–content covariation
  loss" a handful of Grams instead of the infeasible ``k × C × C`` tensor of
  all 512 content channels.

The capability (``representations.Guided``; every other representation is
unchanged): a guided representation has

* ``layer_guides(guides, shape)`` — image-level guides ``(K, H_g, W_g)`` of
  any resolution → ``(K, h, w)`` at a layer of spatial shape ``(h, w)``;
* ``statistic(features, guides)`` and ``target(stacked, guides)`` receive
  those layer guides as a second argument: the style image's for the
  statistic, the optimised image's (its content's) for the target. The
  optimised image's guides are fixed data, so they live in the target
  pytree (``position_maps(target)``) and ``loss(features, target)`` keeps
  its signature; the target's shape is fixed, so grids and batches still
  compile once;
* with ``representations.MakesGuides``, ``guide_layer`` and
  ``make_guides(content_features, style_features)``: the representation
  computes its own image-level guides from the features at ``guide_layer``
  (``ContentAware``); otherwise the caller passes ``Guides``
  (``targets.make_targets(guides=...)``).

The guided Grams and moments are quotients of position sums, so they are
tiled exactly (``nst_jax.tiling``; ``representations.PositionAveraged``):
their statistics are position averages (``Σ_p g_k F Fᵀ / M`` and ``Σ_p g_k
/ M``; the target divides one by the other), ``position_sums(features,
weights, guides)`` takes a window's guides and ``position_maps(target)``
names the optimised image's.

This module imports ``nst_jax.representations`` (never the reverse) and
registers its classes there (``representations.register``): ``GuidedGram``
and ``GuidedMoments`` as the masks versions of ``Gram`` and ``Moments``
(``guided_version``), ``ContentAware`` as ``--style_stat=content_aware``.

Array contract: features ``(h, w, C)`` float32; guides float32 ``>= 0``
(masks in [0, 1]).
"""

import dataclasses
from typing import Any, NamedTuple, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import losses
from nst_jax import representations
from nst_jax import statistics
from nst_jax.errors import NSTError, check_choice, param

_HIGHEST = jax.lax.Precision.HIGHEST
DOWNSAMPLES = ("resize", "inside")
# A region whose guide covers less than this fraction of a layer's positions
# is absent there (its Gram would be noise divided by almost nothing).
AREA_EPS = 1e-4


class Guides(NamedTuple):
  """Image-level guides: ``content`` ``(K, H, W)`` for the image being
  optimised (the content's regions), ``styles`` one ``(K, H_s, W_s)`` per
  style image, channel ``k`` the same region everywhere. Any resolution:
  each representation brings them to its layers (``layer_guides``)."""
  content: Any
  styles: Tuple[Any, ...]

  def select(self, index: int) -> "Guides":
    """The guides of a run with the one style image ``index``."""
    return Guides(self.content, (self.styles[index],))


# --- guide maps ----------------------------------------------------------------


def resize_guides(guides: jax.Array, shape: Sequence[int]) -> jax.Array:
  """``(K, H, W)`` → ``(K, h, w)`` by antialiased linear resampling
  (``jax.image.resize``), divided by the same resampling of a map of ones:
  a normalised filter, so a constant guide stays exactly that constant and
  guides that sum to one over ``k`` still do (up to rounding)."""
  guides = jnp.asarray(guides, jnp.float32)
  h, w = int(shape[0]), int(shape[1])
  if guides.shape[1:] == (h, w):
    return guides
  resize = lambda x: jax.image.resize(x, (x.shape[0], h, w), "linear",
                                      antialias=True)
  return resize(guides) / resize(jnp.ones((1,) + guides.shape[1:],
                                          jnp.float32))


def erode_guides(guides: jax.Array) -> jax.Array:
  """The "inside" guides of Gatys et al. 2017 §4.1 at one layer: each
  position keeps the smallest guide value of its 3×3 neighbourhood (edges
  replicated), so positions next to a region's border — whose receptive
  fields straddle it — drop out of the region. A channel that erosion
  empties keeps its un-eroded map (a small region at a deep layer). A
  3×3 neighbourhood at the layer's resolution stands in for the full
  receptive field, which at relu5_1 would empty most regions of a 256 px
  image. ``(K, h, w)`` → ``(K, h, w)``."""
  padded = jnp.pad(guides, ((0, 0), (1, 1), (1, 1)), mode="edge")
  eroded = jax.lax.reduce_window(padded, jnp.inf, jax.lax.min, (1, 3, 3),
                                 (1, 1, 1), "VALID")
  kept = jnp.sum(eroded, axis=(1, 2), keepdims=True) > 0
  return jnp.where(kept, eroded, guides)


def blur_guides(guides: jax.Array, window: int) -> jax.Array:
  """Guides smoothed by §9's window ``w(dx, dy) = 1/(1 + dx² + dy²)``,
  ``|dx|, |dy| ≤ s`` (Nikulin & Novak, seed 001), as a normalised
  convolution ``(g ⋆ w) / (1 ⋆ w)`` with zero padding. ``(K, h, w)`` →
  ``(K, h, w)``; ``s = 0`` returns the guides unchanged.

  Why this is §9's localised Gram: with ``G_ij(x) = Σ_d w(d) F_i(x+d)
  F_j(x+d)`` (the windowed Gram around ``x``),
  ``Σ_x g(x) G_ij(x) = Σ_p F_i(p) F_j(p) Σ_d w(d) g(p−d) = Σ_p (g ⋆ w)(p)
  F_i(p) F_j(p)`` (substituting ``p = x + d``; ``w`` is symmetric). So a
  guided Gram with guide ``g ⋆ w`` equals §9's sum of windowed Grams
  weighted by ``g``, and the k × C × C covariation tensor is never built.
  The division by ``1 ⋆ w`` only changes positions within ``s`` of the
  border (where part of the window falls outside the map): it makes a
  constant guide stay constant, so one constant guide gives exactly the
  plain Gram.
  """
  s = int(window)
  if s == 0:
    return guides
  kernel = statistics.local_weights(s)[None, None]       # (1, 1, 2s+1, 2s+1)
  conv = lambda x: jax.lax.conv_general_dilated(
      x[:, None], kernel, (1, 1), [(s, s), (s, s)],
      precision=_HIGHEST)[:, 0]
  ones = jnp.ones((1,) + guides.shape[1:], jnp.float32)
  return conv(guides) / conv(ones)


def guided_gram(features: jax.Array, guides: jax.Array) -> jax.Array:
  """Guided Grams ``(h, w, C), (K, h, w) → (K, C, C)``:
  ``G_kij = Σ_p g_k(p) F_i(p) F_j(p) / Σ_p g_k(p)`` (Gatys et al. 2017,
  §4; area-normalised, so a small region's Gram is as large as a big
  one's). A region with no area gives zeros. With one guide of ones it is
  ``statistics.gram_matrix`` bit for bit (the same products and divisor).

  The ``K`` Grams are computed one after another (``lax.map``), each one's
  weighted features ``g_k F`` recomputed in the backward pass
  (``jax.checkpoint``), so memory holds one ``(M, C)`` product at a time,
  not ``K`` of them (``guided_gram_sums``)."""
  h, w, _ = features.shape
  gram = guided_gram_sums(features, guides)                  # (K, C, C)
  area = jnp.sum(guides.reshape(guides.shape[0], h * w), axis=1)
  return per_area(gram, area)


def guided_gram_sums(features: jax.Array, guides: jax.Array) -> jax.Array:
  """The numerators of ``guided_gram``: ``(h, w, C), (K, h, w) → (K, C,
  C)``, ``Σ_p g_k(p) F_i(p) F_j(p)`` (Gatys et al. 2017, §4). A sum over
  positions, so the sums of the tiles of an image (each tile's guides
  multiplied by the 0/1 map of the positions it owns) add up to the whole
  image's (``nst_jax.tiling``). The ``K`` products go one after another
  (``lax.map``), each recomputed in the backward pass (``jax.checkpoint``):
  one ``(h·w, C)`` weighted copy of the features lives at a time."""
  h, w, c = features.shape
  flat = features.reshape(h * w, c)
  g = guides.reshape(guides.shape[0], h * w)

  @jax.checkpoint
  def one(gk):
    return jnp.einsum("mi,mj->ij", gk[:, None] * flat, flat,
                      precision=_HIGHEST)
  return jax.lax.map(one, g)


def per_area(sums: jax.Array, area: jax.Array) -> jax.Array:
  """Region sums ``(..., K, ...)`` divided by the regions' areas ``(...,
  K)`` (any common scale: sums of guides, or their means over positions); a
  region with no area (exactly 0) gives zeros, as ``guided_gram`` does."""
  area = jnp.where(area > 0, area, 1.0)
  return sums / area.reshape(area.shape + (1,) * (sums.ndim - area.ndim))


def guided_gram_loss(grams: jax.Array, target: dict,
                     normalization: str) -> jax.Array:
  """``(K, C, C)`` against the target ``{"gram": (S, K, C, C), "weight":
  (S, K)}`` → ``(S,)``: ``Σ_k weight_sk · Σ(G_k − A_sk)²/(4C²)`` (or
  ``/C²``, ``losses.gram_loss``). Each region's loss is area-normalised
  through its Grams, so a small region is not drowned by a large one."""
  per = losses.gram_loss(jnp.broadcast_to(grams, target["gram"].shape),
                         target["gram"], normalization=normalization)
  return jnp.sum(target["weight"] * per, axis=-1)


def region_weights(style_area: jax.Array, output_guides: jax.Array
                   ) -> jax.Array:
  """``(S, K)`` weights of each style's loss in each region: a region
  counts for a style only where the style provides it (area above
  ``AREA_EPS``) and the optimised image has it at this layer; each region's
  weight is shared among the styles that provide it
  (``present · S / n_k``), so with equal blend weights a region takes the
  mean loss of its styles and a region of one style has that style's full
  weight. One region everywhere gives weight 1 (the plain loss)."""
  present = (style_area > AREA_EPS).astype(jnp.float32)        # (S, K)
  s = style_area.shape[0]
  n = jnp.sum(present, axis=0)
  out_area = jnp.mean(output_guides, axis=(1, 2))               # (K,)
  here = (out_area > AREA_EPS).astype(jnp.float32)
  return present * here[None] * (s / jnp.maximum(n, 1.0))[None]


def _gram_statistic(features, guides):
  # Position averages (``Σ_p g_k F Fᵀ / M``, ``Σ_p g_k / M``): what the
  # tiles' sums give too (``position_sums`` / M); the target divides them.
  h, w, _ = features.shape
  return {"gram": guided_gram_sums(features, guides) / (h * w),
          "area": jnp.sum(guides, axis=(1, 2)) / (h * w)}


def _gram_target(stacked, guides):
  return {"gram": per_area(stacked["gram"], stacked["area"]),
          "weight": region_weights(stacked["area"], guides),
          "guides": guides}


class _GuidedGramMethods(representations.PositionAveraged,
                         representations.Guided):
  """``statistic``/``target``/``loss`` of a guided Gram (per-region Grams
  normalised by area, ``guided_gram_loss``), shared by ``GuidedGram`` (user
  masks) and ``ContentAware`` (§9's guides); each class supplies its
  ``layer_guides`` and ``normalization``."""

  def statistic(self, features, guides):
    return _gram_statistic(features, guides)

  def target(self, stacked, guides):
    return _gram_target(stacked, guides)

  def loss(self, features, target):
    # Overrides the derived loss (sums over M, then their quotient): the
    # per-region Grams ``guided_gram`` divides by the area directly (equal
    # to float32 rounding).
    return guided_gram_loss(guided_gram(features, target["guides"]), target,
                            self.normalization)

  # The exact tiled objective (``nst_jax.tiling``; protocol in
  # ``nst_jax.representations``): the guided Gram is a quotient of two
  # position sums, ``Σ_p g_k F Fᵀ / Σ_p g_k``, so it is tiled like the Gram,
  # each window with its slice of the optimised image's guides.

  def position_maps(self, target):
    """The per-position data of the sums: the optimised image's guides at
    this layer, ``(K, H_l, W_l)`` (``target["guides"]``)."""
    return target["guides"]

  def position_sums(self, features, weights, guides):
    """``{"gram": Σ_p w g_k F Fᵀ (K, C, C), "area": Σ_p w g_k (K,)}`` of
    features ``(h, w, C)``, owned-position weights ``(h, w)`` and the
    window's guides ``(K, h, w)`` (``guided_gram_sums``: one ``(h·w, C)``
    product at a time)."""
    owned = guides * weights[None]
    return {"gram": guided_gram_sums(features, owned),
            "area": jnp.sum(owned, axis=(1, 2))}

  def loss_from_statistic(self, statistic, target):
    """``guided_gram_loss`` of ``G_k = gram_k / area_k`` (the sums divided
    by the layer's position count ``H_l·W_l``: the position count cancels;
    a region with no area gives zeros, as ``guided_gram``)."""
    return guided_gram_loss(per_area(statistic["gram"], statistic["area"]),
                            target, self.normalization)


@representations.register(
    flags={"normalization": "gram_normalization",
           "downsample": "mask_downsample"},
    masks_of=representations.Gram)
@dataclasses.dataclass(frozen=True)
class GuidedGram(_GuidedGramMethods):
  """The Gram of Gatys et al. 2016 per region (Gatys et al. 2017, §4).

  ``downsample``: how the image-level guides reach a layer —
  ``"resize"`` (antialiased resampling, ``resize_guides``) or ``"inside"``
  (then eroded, ``erode_guides``: the guides Gatys et al. 2017 found to
  separate regions better). Default ``"resize"``: on small images the
  erosion removes a region's whole border band at every layer.

  Statistic: position averages ``{"gram": Σ_p g_k F Fᵀ / M (K, C, C),
  "area": Σ_p g_k / M (K,)}`` (``area``: the fraction of the style's
  positions in each region), so that tiles' sums give it too; target: the
  per-region Grams ``gram / area`` stacked over ``S`` styles ``(S, K, C,
  C)``, the ``(S, K)`` region weights (``region_weights``) and the
  optimised image's guides at this layer ``(K, h, w)``. Loss
  ``guided_gram_loss``. With one guide of ones it is ``Gram`` exactly.
  """
  normalization: str = "paper"
  downsample: str = "resize"
  same_size = False

  def __post_init__(self):
    check_choice("GuidedGram.normalization", self.normalization,
                 losses.GRAM_NORMALIZATIONS)
    check_choice("GuidedGram.downsample", self.downsample, DOWNSAMPLES)

  def layer_guides(self, guides, shape):
    resized = resize_guides(guides, shape)
    return erode_guides(resized) if self.downsample == "inside" else resized


def guided_raw_moments(features: jax.Array, guides: jax.Array):
  """Per-region raw moments ``(h, w, C), (K, h, w) → ((K, C), (K, C))``:
  ``E_k[F] = Σ_p g_k F / Σ_p g_k`` and ``E_k[F²]`` likewise (a region with
  no area gives zeros)."""
  h, w, _ = features.shape
  mean, square = guided_moment_sums(features, guides)
  area = jnp.sum(guides.reshape(guides.shape[0], h * w), axis=1)
  return per_area(mean, area), per_area(square, area)


def guided_moment_sums(features: jax.Array, guides: jax.Array):
  """The numerators of ``guided_raw_moments``: ``(h, w, C), (K, h, w) →
  ((K, C), (K, C))``, ``Σ_p g_k F`` and ``Σ_p g_k F²`` (sums over
  positions: the tiles' sums add up to the whole image's)."""
  h, w, c = features.shape
  flat = features.reshape(h * w, c)
  g = guides.reshape(guides.shape[0], h * w)
  return (jnp.einsum("km,mc->kc", g, flat, precision=_HIGHEST),
          jnp.einsum("km,mc->kc", g, jnp.square(flat), precision=_HIGHEST))


# The Moments' β (registered by default): each region's moments are averages
# over its area, so one region's loss has the scale of the Moments' loss (one
# guide of ones gives the Moments exactly) and the regions add up as the
# guided Gram's do (whose β is the Gram's). Its 1e7 was the Moments' β before
# the size-invariant objective.
@representations.register(flags={"downsample": "mask_downsample"},
                          masks_of=representations.Moments)
@dataclasses.dataclass(frozen=True)
class GuidedMoments(representations.PositionAveraged,
                    representations.Guided):
  """Per-channel mean and standard deviation per region (the thesis's
  moments, seed 002, weighted by guides as in Gatys et al. 2017 §4).

  Statistic: position averages ``Σ_p g_k F / M``, ``Σ_p g_k F² / M`` and
  ``Σ_p g_k / M`` (tiles' sums give them too); target:
  ``statistics.moments_from_raw`` of the per-region raw moments (averages
  over area, ``guided_raw_moments``) ``(S, K, 2, C)``, the
  region weights (``region_weights``) and the optimised image's guides.
  Loss: ``losses.moments_loss`` per region, ``Σ_k weight_sk · loss_sk``.
  With one guide of ones it is ``Moments`` (to rounding).
  """
  downsample: str = "resize"
  same_size = False

  def __post_init__(self):
    check_choice("GuidedMoments.downsample", self.downsample, DOWNSAMPLES)

  def layer_guides(self, guides, shape):
    resized = resize_guides(guides, shape)
    return erode_guides(resized) if self.downsample == "inside" else resized

  def statistic(self, features, guides):
    mean, square = guided_moment_sums(features, guides)
    h, w, _ = features.shape
    return {"mean": mean / (h * w), "square": square / (h * w),
            "area": jnp.sum(guides, axis=(1, 2)) / (h * w)}

  def target(self, stacked, guides):
    area = stacked["area"]
    return {"moments": statistics.moments_from_raw(
        per_area(stacked["mean"], area), per_area(stacked["square"], area)),
            "weight": region_weights(stacked["area"], guides),
            "guides": guides}

  def loss(self, features, target):
    # Overrides the derived loss: the per-region averages divided by the area
    # directly (``guided_raw_moments``; equal to float32 rounding).
    return self._loss_of_raw(
        guided_raw_moments(features, target["guides"]), target)

  def _loss_of_raw(self, raw, target):
    moments = statistics.moments_from_raw(*raw)
    per = losses.moments_loss(
        jnp.broadcast_to(moments, target["moments"].shape),
        target["moments"])
    return jnp.sum(target["weight"] * per, axis=-1)

  # The exact tiled objective, as the guided Gram's (``_GuidedGramMethods``).

  def position_maps(self, target):
    """The optimised image's guides at this layer ``(K, H_l, W_l)``."""
    return target["guides"]

  def position_sums(self, features, weights, guides):
    """``{"mean": Σ_p w g_k F, "square": Σ_p w g_k F², "area": Σ_p w g_k}``
    ``((K, C), (K, C), (K,))`` of features ``(h, w, C)``, owned-position
    weights ``(h, w)`` and the window's guides ``(K, h, w)``."""
    owned = guides * weights[None]
    mean, square = guided_moment_sums(features, owned)
    return {"mean": mean, "square": square,
            "area": jnp.sum(owned, axis=(1, 2))}

  def loss_from_statistic(self, statistic, target):
    """The loss from the per-region raw moments ``sum_k / area_k``."""
    area = statistic["area"]
    return self._loss_of_raw((per_area(statistic["mean"], area),
                              per_area(statistic["square"], area)), target)


# --- content-aware style (§9) --------------------------------------------------


def unit_features(features: jax.Array) -> np.ndarray:
  """``(..., C)`` → the same, each position scaled to unit length (float64
  numpy): the direction of a position's content features, not its
  strength, decides its region."""
  x = np.asarray(features, np.float64)
  return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-8)


def kmeans_centroids(points: np.ndarray, k: int, *, iterations: int = 20,
                     seed: int = 0) -> np.ndarray:
  """``k`` centroids ``(k, C)`` of ``points`` ``(N, C)`` by Lloyd's
  algorithm from a k-means++ start (Arthur & Vassilvitskii 2007), seeded
  (``numpy.random.default_rng(seed)``); float64. A centroid that loses all
  its points keeps its place."""
  points = np.asarray(points, np.float64)
  n = points.shape[0]
  k = min(int(k), n)
  rng = np.random.default_rng(seed)
  centroids = [points[rng.integers(n)]]
  d2 = np.sum((points - centroids[0]) ** 2, axis=1)
  for _ in range(1, k):
    total = d2.sum()
    pick = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
    centroids.append(points[pick])
    d2 = np.minimum(d2, np.sum((points - points[pick]) ** 2, axis=1))
  centroids = np.stack(centroids)
  for _ in range(int(iterations)):
    dist = _sq_distances(points, centroids)
    label = np.argmin(dist, axis=1)
    for j in range(k):
      members = points[label == j]
      if len(members):
        centroids[j] = members.mean(axis=0)
  return centroids


def _sq_distances(points, centroids):
  return (np.sum(points ** 2, axis=1)[:, None] - 2 * points @ centroids.T
          + np.sum(centroids ** 2, axis=1)[None, :])


def soft_assignments(features: jax.Array, centroids: np.ndarray,
                     temperature: float) -> np.ndarray:
  """Soft k-means guides ``(h, w, C)`` → ``(K, h, w)`` float32:
  ``g_k(p) = softmax_k(−‖f̂(p) − μ_k‖² / T)`` of the unit features
  ``f̂`` (``unit_features``); the guides sum to one at every position.
  One centroid gives a guide of exactly ones."""
  h, w, c = np.shape(features)
  x = unit_features(features).reshape(h * w, c)
  logits = -_sq_distances(x, np.asarray(centroids, np.float64)) / temperature
  logits -= logits.max(axis=1, keepdims=True)
  e = np.exp(logits)
  g = e / e.sum(axis=1, keepdims=True)
  return np.ascontiguousarray(g.T.reshape(-1, h, w), np.float32)


@representations.register(
    name="content_aware",
    flags={"clusters": "ca_clusters", "window": "ca_window",
           "temperature": "ca_temperature", "guide_layer": "ca_layer",
           "normalization": "gram_normalization", "seed": "seed"})
@dataclasses.dataclass(frozen=True)
class ContentAware(_GuidedGramMethods, representations.MakesGuides):
  """Content-aware style (Nikulin & Novak, seed 001, §9), made feasible.

  §9 proposes ``E_l ~ ‖Σ_{x,y} (F^c_k(x,y) G_ij(x,y) − P^c_k(x,y)
  A_ij(x,y))‖²`` over all content channels ``k`` — a ``512 × C × C``
  tensor per layer, which they judged infeasible. Here the content
  features are first reduced to ``clusters`` ``K`` soft regions: the
  content-layer (``guide_layer``) features of the content image and of the
  style images together are clustered (``kmeans_centroids`` on unit
  features, seeded by ``seed``) and every image's positions are softly
  assigned to the clusters (``soft_assignments``, ``temperature`` T). For
  the image being optimised the guides are the content image's (§9's
  ``F^c ≡ P^c`` for aligned content and result); for each style image, its
  own. Each guide is blurred at every layer by §9's window ``s =
  window`` (``blur_guides``, which shows why that is §9's sum of windowed
  Grams), and the loss is the guided Gram loss of ``GuidedGram``: a style
  region's statistics go to the content positions that look like it.

  One cluster gives a constant guide and the plain ``Gram`` exactly. Cost:
  ``K`` Grams per layer, ``K·M·C`` floats for the weighted features
  (docs/benchmarks.md, "Content-aware style").
  """
  clusters: int = 8
  window: int = 2
  temperature: float = 0.05
  guide_layer: str = "relu4_2"
  normalization: str = "paper"
  seed: int = 0
  samples: int = 8192
  same_size = False

  def __post_init__(self):
    check_choice("ContentAware.normalization", self.normalization,
                 losses.GRAM_NORMALIZATIONS)
    for name, value, low in (("clusters", self.clusters, 1),
                             ("window", self.window, 0),
                             ("samples", self.samples, 1)):
      if int(value) < low:
        raise NSTError(f"{param('ContentAware.' + name)} must be >= {low}, "
                       f"got {value}")
    if not float(self.temperature) > 0:
      raise NSTError(f"{param('ContentAware.temperature')} must be > 0, got "
                     f"{self.temperature}")

  def make_guides(self, content_features, style_features) -> Guides:
    """Image-level guides at the guide layer's resolution from its
    features: content ``(h, w, C)``, each style ``(h_s, w_s, C)``."""
    feats = [np.asarray(content_features)] + [np.asarray(f)
                                               for f in style_features]
    points = np.concatenate([unit_features(f).reshape(-1, f.shape[-1])
                             for f in feats])
    rng = np.random.default_rng(self.seed)
    if len(points) > int(self.samples):
      points = points[rng.choice(len(points), int(self.samples),
                                 replace=False)]
    centroids = kmeans_centroids(points, int(self.clusters), seed=self.seed)
    t = float(self.temperature)
    return Guides(soft_assignments(feats[0], centroids, t),
                  tuple(soft_assignments(f, centroids, t) for f in feats[1:]))

  def layer_guides(self, guides, shape):
    return blur_guides(resize_guides(guides, shape), int(self.window))


# --- what the objective calls ----------------------------------------------------


def is_guided(representation) -> bool:
  """Whether a representation takes guides (``representations.Guided``)."""
  return isinstance(representation, representations.Guided)


def image_guides(params, content, styles, spec, guides: Guides | None,
                 features_of) -> dict:
  """``{layer: Guides}`` for the guided style layers of ``spec``: the
  representation's own (``make_guides`` on the features at its
  ``guide_layer``, ``features_of(params, image, layer)``) or the caller's
  ``guides``. Raises ``NSTError`` for guides nobody uses, a guided
  representation without guides, both at once, or guides that do not match
  the images."""
  layers = [(l, r) for l, r in spec.style_by_layer() if is_guided(r)]
  if not layers:
    if guides is not None:
      raise NSTError("guides (masks) were given but the style "
                     "representation does not take them: use a guided one "
                     "(GuidedGram, --style_stat=gram with --content_mask)")
    return {}
  if content is None:
    raise NSTError("guided style statistics need a content image (the "
                   "optimised image's guides are the content's)")
  if guides is not None:
    if len(guides.styles) != len(styles):
      raise NSTError(f"got guides for {len(guides.styles)} style images, "
                     f"but {len(styles)} style images")
    k = np.shape(guides.content)[0]
    for g in guides.styles:
      if np.ndim(g) != 3 or np.shape(g)[0] != k:
        raise NSTError(f"every style guide needs the content's {k} "
                       f"channels, got shape {np.shape(g)}")
  out, made = {}, {}
  for layer, rep in layers:
    if not isinstance(rep, representations.MakesGuides):
      if guides is None:
        raise NSTError(f"{type(rep).__name__} at {layer} needs guides "
                       "(masks): none were given")
      out[layer] = guides
      continue
    if guides is not None:
      raise NSTError(f"{type(rep).__name__} makes its own guides: give "
                     "masks or content-aware style, not both")
    key = (rep, rep.guide_layer)
    if key not in made:
      made[key] = rep.make_guides(
          features_of(params, content, rep.guide_layer),
          [features_of(params, s, rep.guide_layer) for s in styles])
    out[layer] = made[key]
  return out


def guides_at_layers(spec, guides: dict, shapes: dict) -> dict:
  """``{layer: (K, h, w)}``: one image's image-level guides
  ``guides[layer]`` ``(K, H_g, W_g)`` brought to each guided layer of
  spatial shape ``shapes[layer][:2]`` by its representation's
  ``layer_guides``."""
  reps = dict(spec.style_by_layer())
  return {l: reps[l].layer_guides(jnp.asarray(g), shapes[l][:2])
          for l, g in guides.items()}


def output_guides(spec, image_guides_: dict, shapes: dict) -> dict:
  """``{layer: (K, h, w)}``: the optimised image's guides at each guided
  layer of spatial shape ``shapes[layer][:2]``."""
  return guides_at_layers(
      spec, {l: g.content for l, g in image_guides_.items()}, shapes)


def guided_version(representation, downsample: str = "resize"):
  """The guided version of ``representation`` for user masks: the class
  registered as its masks version (``representations.register(masks_of=)``:
  ``Gram`` → ``GuidedGram``, ``Moments`` → ``GuidedMoments``), built with
  the fields they share (the normalisation) and ``downsample``. A guided
  representation is returned as it is, unless it makes guides of its own
  (``ContentAware``), which cannot take masks too. Raises ``NSTError`` for
  the others (guided covariance, central moments and sliced Wasserstein
  are not implemented)."""
  if isinstance(representation, (representations.PerLayer, dict)):
    raise NSTError("masks take one style representation for every layer")
  if isinstance(representation, representations.MakesGuides):
    raise NSTError(f"{type(representation).__name__} makes its own guides: "
                   "give masks or content-aware style, not both")
  if isinstance(representation, representations.Guided):
    return representation
  cls = representations.masks_version(representation)
  if cls is None:
    by_class = {e.cls: e for e in representations.registered()}
    names = [by_class[e.masks_of].name for e in by_class.values()
             if e.masks_of in by_class]
    raise NSTError(f"masks need the {' or '.join(names)} style "
                   f"representation (guided versions of "
                   f"{type(representation).__name__} are not implemented): "
                   "use --style_stat=gram")
  own = {f.name for f in dataclasses.fields(cls)}
  shared = {f.name: getattr(representation, f.name)
            for f in dataclasses.fields(representation) if f.name in own}
  return cls(**{**shared, "downsample": downsample})
