"""Content, style and total-variation losses.

Every loss reduces over the representation of one image and keeps any leading
batch axes: inputs ``(..., H, W, C)`` or ``(..., C, C)`` give ``(...)``. The
caller weighs and sums (``nst_jax.objective``).

Gram normalisations (both from the seeds, both expressed on the location-
averaged Gram ``Ĝ = G / M`` that ``statistics.gram_matrix`` returns, so that
style and content images may differ in size):

* ``"paper"``: Gatys et al. (2016) eq. 4, ``E_l = 1/(4 N_l² M_l²) Σ (G−A)²``
  on raw Grams of equal ``M_l``, which is exactly ``Σ (Ĝ−Â)² / (4 N_l²)``.
* ``"notes"``: seed 000, ``(1/K²) Σ (G̃ − G)²`` with ``G = XᵀX/(NM)``, i.e.
  ``Σ (Ĝ−Â)² / N_l²`` — four times the paper's value.
"""

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import statistics
from nst_jax.errors import NSTError, check_choice, param

GRAM_NORMALIZATIONS = ("paper", "notes")

# The default style weight β (at α = 1, γ = 1) of the Gram loss ("paper")
# with the size-invariant content and TV terms (``objective.Spec``): chosen
# by measurement (``scripts/calibrate.py``; docs/benchmarks.md, "The default
# style weight"): the smallest β of the sweep at which both of the Lua
# implementation's published pictures of ../shared/reference/ are matched
# in style distance, at a lower LPIPS to the photo. The β the other
# representations suggest (``representations.register``) are multiples of it.
DEFAULT_STYLE_WEIGHT = 800.0


def content_loss(features: jax.Array, target: jax.Array,
                 weights: jax.Array | None = None) -> jax.Array:
  """``L_content = ½ Σ_ij (F_ij − P_ij)²`` (Gatys et al. 2016, eq. 1).

  ``features`` and ``target`` are ``(..., H, W, C)``; returns ``(...)``.
  With ``weights`` ``(..., H, W)`` each position's term is weighted,
  ``½ Σ_p w_p Σ_c (F_pc − P_pc)²``: the share of the loss that a tile owns
  (``nst_jax.tiling``, weights 1 on its own positions, 0 elsewhere), so the
  tiles' losses add up to the whole image's.
  """
  if features.shape[-3:] != target.shape[-3:]:
    raise ValueError(
        f"content features {features.shape} and target {target.shape} differ")
  if weights is None:
    return 0.5 * jnp.sum(jnp.square(features - target), axis=(-3, -2, -1))
  per_position = jnp.sum(jnp.square(features - target), axis=-1)
  return 0.5 * jnp.sum(weights * per_position, axis=(-2, -1))


def gram_loss(gram: jax.Array, target: jax.Array, *,
              normalization: str = "paper") -> jax.Array:
  """Style loss of one layer between location-averaged Grams ``(..., C, C)``.

  ``normalization`` is ``"paper"`` (``Σ(Ĝ−Â)²/(4C²)``, Gatys et al. eq. 4) or
  ``"notes"`` (``Σ(Ĝ−Â)²/C²``, seed 000); see the module docstring.
  """
  check_choice("normalization", normalization, GRAM_NORMALIZATIONS)
  if gram.shape[-2:] != target.shape[-2:]:
    raise ValueError(f"Gram {gram.shape} and target {target.shape} differ")
  c = gram.shape[-1]
  factor = 4.0 if normalization == "paper" else 1.0
  return jnp.sum(jnp.square(gram - target), axis=(-2, -1)) / (factor * c * c)


def total_variation_loss(images: jax.Array) -> jax.Array:
  """Squared total variation ``Σ (x_{i+1,j} − x_ij)² + (x_{i,j+1} − x_ij)²``.

  The smoothness prior of the peers (jcjohnson/neural-style ``-tv_weight``);
  ``images`` are ``(..., H, W, C)``, returns ``(...)``.
  """
  dy = images[..., 1:, :, :] - images[..., :-1, :, :]
  dx = images[..., :, 1:, :] - images[..., :, :-1, :]
  return (jnp.sum(jnp.square(dy), axis=(-3, -2, -1))
          + jnp.sum(jnp.square(dx), axis=(-3, -2, -1)))


# ---------------------------------------------------------------------------
# Losses of the other style representations (issue 3). Each compares the
# statistic of the generated image with a target of the same shape and keeps
# the leading axes. Scales differ from the Gram loss: each representation
# needs its own style weight (docs/features/representations.md).


def _factor(normalization: str) -> float:
  check_choice("normalization", normalization, GRAM_NORMALIZATIONS)
  return 4.0 if normalization == "paper" else 1.0


def _same_shape(what, a, b, axes):
  if a.shape[-axes:] != b.shape[-axes:]:
    raise ValueError(f"{what} {a.shape} and target {b.shape} differ")


def spatial_loss(autocorrelation: jax.Array, target: jax.Array, *,
                 normalization: str = "paper") -> jax.Array:
  """``‖G − A‖² / (4 C²)`` between spatial autocorrelations ``(..., C, 2H−1,
  2W−1)`` (``statistics.spatial_autocorrelation``).

  Nikulin & Novak §7 (seed 001) keep eq. 4's constant — their gradient is
  ``1/(N²M²) [(G−A)_i ∘ F_i]`` on raw correlations, i.e. ``E = 1/(4N²M²)
  ‖G−A‖²`` — which on correlations divided by ``M = H·W`` is ``‖Ĝ−Â‖²/(4N²)``;
  ``"notes"`` drops the 4. Both maps must come from images of the same size.
  """
  factor = _factor(normalization)
  _same_shape("autocorrelation", autocorrelation, target, 3)
  c = autocorrelation.shape[-3]
  return (jnp.sum(jnp.square(autocorrelation - target), axis=(-3, -2, -1))
          / (factor * c * c))


def _shift(padded, dy, dx, h, w, pad):
  """``x[y + dy, x + dx]`` of a map zero-padded by ``pad`` (traced dy, dx)."""
  return jax.lax.dynamic_slice_in_dim(
      jax.lax.dynamic_slice_in_dim(padded, pad + dy, h, axis=-3),
      pad + dx, w, axis=-2)


def local_gram_loss(features: jax.Array, target_features: jax.Array, *,
                    window: int, normalization: str = "paper") -> jax.Array:
  """Windowed-Gram loss ``1/(4C²M) Σ_{x,y} Σ_ij (G_ij(x,y) − A_ij(x,y))²``
  without building the ``H·W·C²`` tensors.

  ``G`` is ``statistics.local_gram(features, window=s)`` and ``A`` the same
  of ``target_features`` (the style's features at the same size; Nikulin &
  Novak §9, seed 001). The paper writes only ``E ∼ ‖G − A‖²``; dividing by
  ``4C²M`` makes it the position average of eq. 4's per-layer loss.

  How: with ``D_ij(p) = F_i F_j(p) − P_i P_j(p)`` (``P`` the target),
  ``G − A = Σ_d w_d D(x + d)``, so ``‖G − A‖² = Σ_p Σ_e c_e(p) K(p, p + e)``
  with ``K(p, q) = Σ_ij D_ij(p) D_ij(q) = (F_p·F_q)² − (F_p·P_q)² −
  (P_p·F_q)² + (P_p·P_q)²`` and ``c_e(p) = Σ_d [p − d inside] w_d w_{d+e}``
  (a constant map per offset ``e``, ``|e| ≤ 2s``). A ``lax.scan`` over the
  ``(4s+1)²`` offsets computes four channel dot products per position each.
  Memory: the two feature maps zero-padded by ``2s`` plus ``(4s+1)²`` maps of
  ``H·W`` floats (the ``c_e``) plus ``O(H·W)`` per step — for relu1_1 of a
  256×192 image with ``s = 2``: 2·64·52k + 81·49k floats ≈ 42 MB, against
  256·192·64² floats = 805 MB for one materialised windowed Gram. Time:
  ``4·(4s+1)²·C·H·W`` multiply-adds. ``features`` and ``target_features`` are
  ``(..., H, W, C)``; returns ``(...)``.
  """
  factor = _factor(normalization)
  _same_shape("features", features, target_features, 3)
  h, w, c = features.shape[-3:]
  s = int(window)
  if s < 0:
    raise NSTError(f"{param('window')} must be >= 0, got {window}")
  d = np.arange(-s, s + 1)
  wk = 1.0 / (1.0 + d[:, None] ** 2 + d[None, :] ** 2)      # w_d, (2s+1)²
  inside = np.ones((h, w))
  offsets, maps = [], []
  for ey in range(-2 * s, 2 * s + 1):
    for ex in range(-2 * s, 2 * s + 1):
      cmap = np.zeros((h, w))
      for dy in range(-s, s + 1):
        for dx in range(-s, s + 1):
          if abs(dy + ey) > s or abs(dx + ex) > s:
            continue
          weight = wk[dy + s, dx + s] * wk[dy + ey + s, dx + ex + s]
          # c_e(p) += w_d w_{d+e} [p − d inside the map]
          shifted = np.zeros((h, w))
          y0, y1 = max(0, dy), min(h, h + dy)
          x0, x1 = max(0, dx), min(w, w + dx)
          if y0 < y1 and x0 < x1:
            shifted[y0:y1, x0:x1] = inside[y0 - dy:y1 - dy, x0 - dx:x1 - dx]
          cmap += weight * shifted
      if cmap.any():
        offsets.append((ey, ex))
        maps.append(cmap)
  offsets = jnp.asarray(np.array(offsets, np.int32))
  maps = jnp.asarray(np.stack(maps), features.dtype)       # (E, H, W)
  pad = 2 * s
  lead = features.ndim - 3
  widths = [(0, 0)] * lead + [(pad, pad), (pad, pad), (0, 0)]
  f_pad = jnp.pad(features, widths)
  p_pad = jnp.pad(target_features, widths)
  dot = lambda a, b: jnp.sum(a * b, axis=-1)                # (..., H, W)

  def step(total, inputs):
    (ey, ex), cmap = inputs
    fq = _shift(f_pad, ey, ex, h, w, pad)
    pq = _shift(p_pad, ey, ex, h, w, pad)
    k = (jnp.square(dot(features, fq)) - jnp.square(dot(features, pq))
         - jnp.square(dot(target_features, fq))
         + jnp.square(dot(target_features, pq)))
    return total + jnp.sum(jnp.broadcast_to(cmap, k.shape) * k,
                           axis=(-2, -1)), None

  total, _ = jax.lax.scan(step, jnp.zeros(features.shape[:-3], features.dtype),
                          ((offsets[:, 0], offsets[:, 1]), maps))
  return total / (factor * c * c * h * w)


def spectrum_loss(values: jax.Array, target: jax.Array, *,
                  normalization: str = "paper") -> jax.Array:
  """``Σ_k (λ_k − μ_k)² / (4 r²)`` between the ``r`` largest eigenvalues
  ``(..., r)`` of two Grams, largest first (``statistics.gram_spectrum``):
  eq. 4 applied to ``diag(λ)``. Matches the spectrum and ignores the
  eigenvectors (seed 002, thesis)."""
  factor = _factor(normalization)
  _same_shape("spectrum", values, target, 1)
  r = values.shape[-1]
  return jnp.sum(jnp.square(values - target), axis=-1) / (factor * r * r)


def moments_loss(moments: jax.Array, target: jax.Array) -> jax.Array:
  """``1/C Σ_i (μ_i − μ'_i)² + (σ_i − σ'_i)²`` between per-channel moments
  ``(..., 2, C)`` (``statistics.channel_moments``; seed 002, thesis)."""
  _same_shape("moments", moments, target, 2)
  c = moments.shape[-1]
  return jnp.sum(jnp.square(moments - target), axis=(-2, -1)) / c


@jax.custom_jvp
def _trace_sqrt(matrix, floor):
  """``Σ_k sqrt(max(λ_k, floor))`` of a symmetric ``(..., C, C)``; ``floor``
  ``(..., 1)`` is treated as a constant."""
  values = statistics.each_matrix(jnp.linalg.eigvalsh, matrix)
  return jnp.sum(jnp.sqrt(jnp.maximum(values, floor)), axis=-1)


@_trace_sqrt.defjvp
def _trace_sqrt_jvp(primals, tangents):
  (matrix, floor), (dmatrix, _) = primals, tangents
  values, vectors = statistics.each_matrix(jnp.linalg.eigh, matrix)
  clamped = jnp.maximum(values, floor)
  # d tr f(M) = tr(f'(M) dM), f'(λ) = 1/(2√λ) above the floor, 0 below.
  slope = jnp.where(values > floor, 0.5 / jnp.sqrt(clamped), 0.0)
  vdv = jnp.einsum("...ir,...ij,...jr->...r", vectors, dmatrix, vectors,
                   precision=jax.lax.Precision.HIGHEST)   # no TF32 on GPUs
  return jnp.sum(jnp.sqrt(clamped), axis=-1), jnp.sum(slope * vdv, axis=-1)


def gaussian_w2_loss(mean: jax.Array, cov: jax.Array, target_mean: jax.Array,
                     target_cov_sqrt: jax.Array, *,
                     eps: float = 1e-6) -> jax.Array:
  """Squared 2-Wasserstein distance between Gaussians, divided by ``C``.

  ``W² = ‖μ − μ'‖² + tr Σ + tr Σ' − 2 tr (Σ'^½ Σ Σ'^½)^½`` (Dowson & Landau
  1982) with ``(μ, Σ)`` from ``statistics.channel_mean_covariance`` of the
  generated features ``(..., C)``, ``(..., C, C)`` and the target given by its
  mean and the square root of its covariance (``statistics.sqrtm_psd``,
  computed once per style). The matrix square root inside the trace is
  taken through ``eigh``: eigenvalues are clamped at ``eps·(tr Σ'/C)²`` (a
  constant of the target, in the units of ``Σ'^½ Σ Σ'^½``) and the gradient
  is ``d tr √M = tr(½ M^{-½} dM)`` on the eigen-basis with a zero slope for
  clamped eigenvalues, so it stays finite when ``Σ`` is singular (dead ReLU
  channels) and never divides by eigenvalue gaps.
  """
  _same_shape("mean", mean, target_mean, 1)
  _same_shape("covariance", cov, target_cov_sqrt, 2)
  c = mean.shape[-1]
  cross = jnp.einsum("...ij,...jk,...kl->...il", target_cov_sqrt, cov,
                     target_cov_sqrt, precision=jax.lax.Precision.HIGHEST)
  cross = 0.5 * (cross + jnp.swapaxes(cross, -1, -2))
  target_trace = jnp.sum(jnp.square(target_cov_sqrt), axis=(-2, -1))
  floor = eps * jnp.square(target_trace / c)[..., None] + 1e-30
  w2 = (jnp.sum(jnp.square(mean - target_mean), axis=-1)
        + jnp.trace(cov, axis1=-2, axis2=-1) + target_trace
        - 2.0 * _trace_sqrt(cross, floor))
  return w2 / c


def _quantiles(sorted_values: jax.Array, count: int) -> jax.Array:
  """Linear interpolation of sorted samples ``(..., P)`` at the ``count``
  mid-point quantiles ``(m + ½)/count``: ``(..., count)``. Resamples a
  style's quantile function to the generated image's number of positions
  (Heitz et al. 2021 compare equal-size sorted sets)."""
  p = sorted_values.shape[-1]
  if p == count:
    return sorted_values
  where = (np.arange(count) + 0.5) * p / count - 0.5
  lo = np.clip(np.floor(where).astype(np.int32), 0, p - 1)
  hi = np.clip(lo + 1, 0, p - 1)
  t = np.clip(where - lo, 0.0, 1.0).astype(np.float32)
  t = t.reshape((1,) * (sorted_values.ndim - 1) + (count,))
  return (jnp.take(sorted_values, lo, axis=-1) * (1 - t)
          + jnp.take(sorted_values, hi, axis=-1) * t)


def sliced_wasserstein_loss(projections: jax.Array,
                            target_sorted: jax.Array) -> jax.Array:
  """Sliced Wasserstein loss ``1/(M D) Σ_d Σ_m (sort(F v_d)_m − T_{d,m})²``.

  ``projections`` are the generated features projected on ``D`` directions
  ``(..., D, M)`` (unsorted), ``target_sorted`` the style's sorted
  projections on the same directions ``(..., D, P)``, resampled to ``M``
  quantiles when ``P ≠ M``. Heitz, Vanhoey, Chambon & Belcour, "A Sliced
  Wasserstein Loss for Neural Texture Synthesis" (CVPR 2021), eq. 6; the
  gradient flows through the sort (a permutation). Returns ``(...)``.
  """
  m = projections.shape[-1]
  target = _quantiles(target_sorted, m)
  generated = jnp.sort(projections, axis=-1)
  return jnp.mean(jnp.square(generated - target), axis=(-2, -1))


def central_moment_discrepancy(moments: jax.Array, target: jax.Array, *,
                               order_weights: jax.Array | None = None,
                               eps: float = 1e-12) -> jax.Array:
  """``Σ_k a_k ‖c_k(F) − c_k(S)‖₂`` over the rows ``k`` of mean and central
  moments ``(..., K, C)`` (``statistics.central_moments``): the central moment
  discrepancy of Zellinger et al. (ICLR 2017) as a style loss (Kalischek,
  Wegner & Schindler, CVPR 2021, eq. 7). For features in ``[a, b] = [0, 1]``
  the paper's ``a_k = 1/|b−a|^k`` are 1 (default). ``eps`` inside the root
  keeps the gradient finite where a moment already matches. Returns
  ``(...)``."""
  _same_shape("moments", moments, target, 2)
  norms = jnp.sqrt(jnp.sum(jnp.square(moments - target), axis=-1) + eps)
  if order_weights is not None:
    norms = norms * order_weights
  return jnp.sum(norms, axis=-1)
