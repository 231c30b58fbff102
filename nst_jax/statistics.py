"""Style statistics of feature maps.

Array contract: ``features`` are float arrays ``(..., H, W, C)`` (NHWC with
any leading batch axes, as returned by ``nst_jax.vgg.features``). Statistics
keep the leading axes, so they work unchanged under ``jax.vmap``.

Notation of the seeds: a layer with ``N_l = C`` filters and ``M_l = H·W``
positions has the feature matrix ``F^l`` of shape ``M_l × N_l``.
"""

import math

import jax
import jax.numpy as jnp

from nst_jax.errors import NSTError, param


def gram_matrix(features: jax.Array, *, normalize: bool = True) -> jax.Array:
  """Gram matrix of channel correlations, ``(..., H, W, C) -> (..., C, C)``.

  ``G_ij = Σ_k F_ik F_jk`` (Gatys et al. 2016, eq. 3). With ``normalize`` the
  sum is divided by the number of positions ``H·W`` — ``G = XᵀX / (NM)`` of
  the notes on neural style transfer (seed 000, "Implementation") — so that
  Grams of images of different sizes are comparable; without it the raw Gram
  of the paper is returned.
  """
  *lead, h, w, c = features.shape
  flat = features.reshape(*lead, h * w, c)
  gram = jnp.einsum("...mi,...mj->...ij", flat, flat,
                    precision=jax.lax.Precision.HIGHEST)
  return gram / (h * w) if normalize else gram


# ---------------------------------------------------------------------------
# Other style representations (issue 3). Each takes features (..., H, W, C)
# and keeps the leading axes; the matching losses are in ``nst_jax.losses``.

_HIGHEST = jax.lax.Precision.HIGHEST


def spatial_autocorrelation(features: jax.Array) -> jax.Array:
  """Per-channel full 2-D autocorrelation, ``(..., H, W, C) -> (..., C, 2H−1, 2W−1)``.

  ``G_i(dy, dx) = 1/(H·W) Σ_{y,x} F_i(y, x) F_i(y + dy, x + dx)`` for every
  lag ``|dy| < H``, ``|dx| < W`` (zero outside the map), lag 0 at index
  ``(H−1, W−1)`` — the layout of ``scipy.signal.correlate2d(F_i, F_i,
  "full")``. Nikulin & Novak §7 (seed 001) write ``F_i * F_i`` ("full 2D
  convolution"); the autocorrelation is what keeps the spatial configuration
  (``G_i(0, 0)`` is the Gram diagonal), and it is point-symmetric, so both
  index conventions agree. Computed by FFT on maps zero-padded to
  ``(2H−1, 2W−1)``, so no lag wraps around: ``O(C·HW·log HW)`` time and
  ``~4·C·HW`` floats of memory. Normalised by the spatial size ``H·W`` like
  ``gram_matrix``.
  """
  h, w = features.shape[-3:-1]
  maps = jnp.moveaxis(features, -1, -3)                  # (..., C, H, W)
  size = (2 * h - 1, 2 * w - 1)
  spectrum = jnp.fft.rfft2(maps, s=size)
  power = spectrum.real ** 2 + spectrum.imag ** 2        # |F̂|²
  corr = jnp.fft.irfft2(power, s=size)                   # lag 0 at (0, 0)
  corr = jnp.roll(corr, (h - 1, w - 1), axis=(-2, -1))   # lag 0 at (H−1, W−1)
  return corr / (h * w)


def local_weights(window: int) -> jax.Array:
  """``w(dy, dx) = 1/(1 + dx² + dy²)`` on ``|dx|, |dy| ≤ s``, shape
  ``(2s+1, 2s+1)`` (Nikulin & Novak §9, seed 001)."""
  if window < 0:
    raise NSTError(f"{param('window')} must be >= 0, got {window}")
  d = jnp.arange(-window, window + 1, dtype=jnp.float32)
  return 1.0 / (1.0 + d[:, None] ** 2 + d[None, :] ** 2)


def local_gram(features: jax.Array, *, window: int) -> jax.Array:
  """Windowed Gram, ``(..., H, W, C) -> (..., H, W, C, C)``.

  ``G_ij(x, y) = Σ_{|dx|,|dy| ≤ s} w(dx, dy) F_i(x+dx, y+dy) F_j(x+dx, y+dy)``
  with ``w = 1/(1 + dx² + dy²)`` (Nikulin & Novak §9, seed 001), zero
  padding outside the map; ``s = 0`` is the pointwise ``F_i ⊙ F_j`` of the
  paper's experiment. Raw products, not divided by anything.

  This materialises ``H·W·C²`` floats (relu1_1 of a 256×256 image: 1 GiB), so
  it is for inspection and tests at small sizes; the loss
  ``losses.local_gram_loss`` never builds it.
  """
  *lead, h, w, _ = features.shape
  s = window
  kernel = local_weights(s)
  outer = jnp.einsum("...i,...j->...ij", features, features,
                     precision=_HIGHEST)                 # (..., H, W, C, C)
  pad = [(0, 0)] * len(lead) + [(s, s), (s, s), (0, 0), (0, 0)]
  padded = jnp.pad(outer, pad)
  out = jnp.zeros_like(outer)
  for dy in range(-s, s + 1):
    for dx in range(-s, s + 1):
      out = out + kernel[dy + s, dx + s] * padded[
          ..., s + dy:s + dy + h, s + dx:s + dx + w, :, :]
  return out


def each_matrix(decomposition, matrix: jax.Array):
  """``decomposition`` (``jnp.linalg.eigh``, ``eigvalsh`` …) of a stack of
  square matrices ``(..., C, C)``, one matrix per call (``lax.map`` over the
  flattened leading axes); the same outputs as one batched call.

  Why: on the CPU jaxlib splits a batched LAPACK decomposition over XLA's
  intra-op thread pool from inside one of that pool's workers and blocks
  the worker until the pieces are done. When two such decompositions run at
  once and block every worker (2 on a 2-core machine), the pieces never
  run and the program never ends: seen with jaxlib 0.10.2 in the tiled
  objective's backward pass with ``Covariance`` on two layers and two style
  images (docs/benchmarks.md, "Tiled objective"). A single matrix is not
  split. Under ``jax.vmap`` (a grid's cells) each call is batched over the
  vmapped axis again, so this does not cover that case."""
  lead = matrix.shape[:-2]
  if len(lead) == 0:
    return decomposition(matrix)
  flat = matrix.reshape((-1,) + matrix.shape[-2:])
  out = jax.lax.map(decomposition, flat)
  return jax.tree_util.tree_map(lambda a: a.reshape(lead + a.shape[1:]), out)


def gram_eigen(gram: jax.Array, *, rank: int | None = None):
  """Eigen-decomposition of a symmetric Gram ``(..., C, C)``, largest first.

  Returns ``(values (..., r), vectors (..., C, r))`` with ``G ≈ V diag(λ) Vᵀ``
  and ``r = rank`` (``None`` or 0: all ``C``; larger values are clipped to
  ``C``). ``numpy.linalg.eigh`` convention (columns are eigenvectors); the
  spectral study of the Gram in the thesis (seed 002, "Eigen
  decomposition").
  """
  c = gram.shape[-1]
  r = c if not rank else min(int(rank), c)
  values, vectors = each_matrix(jnp.linalg.eigh, gram)   # ascending
  values = values[..., ::-1][..., :r]
  vectors = vectors[..., :, ::-1][..., :, :r]
  return values, vectors


def low_rank_gram(gram: jax.Array, *, rank: int | None = None) -> jax.Array:
  """Reconstruction ``V_r diag(λ_r) V_rᵀ`` from the top-``rank`` eigenpairs,
  ``(..., C, C) -> (..., C, C)``; full rank gives the Gram back (up to
  rounding), the thesis's sanity check (seed 002)."""
  values, vectors = gram_eigen(gram, rank=rank)
  return jnp.einsum("...ir,...r,...jr->...ij", vectors, values, vectors,
                    precision=_HIGHEST)


def gram_spectrum(gram: jax.Array, *, rank: int | None = None) -> jax.Array:
  """The ``rank`` largest eigenvalues of a symmetric Gram, ``(..., C, C) ->
  (..., r)``, largest first (seed 002)."""
  c = gram.shape[-1]
  r = c if not rank else min(int(rank), c)
  return each_matrix(jnp.linalg.eigvalsh, gram)[..., ::-1][..., :r]


def project_features(features: jax.Array, basis: jax.Array) -> jax.Array:
  """Features in a reduced basis, ``(..., H, W, C), (..., C, r) ->
  (..., H, W, r)``: ``F V_r``, the reduced-dimension representation of the
  thesis (seed 002). ``gram_matrix(project_features(F, V))`` is ``VᵀGV``."""
  return jnp.einsum("...hwc,...cr->...hwr", features, basis, precision=_HIGHEST)


def moments_from_raw(mean: jax.Array, square: jax.Array, *,
                     eps: float = 1e-8) -> jax.Array:
  """Per-channel mean and standard deviation from the raw moments ``E[F]``
  and ``E[F²]`` ``(..., C)``: ``(..., 2, C)`` with ``σ = sqrt(max(E[F²] − μ²,
  0) + eps)``. The raw moments average over positions, so the moments of
  several crops' union come from the averages of theirs."""
  std = jnp.sqrt(jnp.maximum(square - jnp.square(mean), 0.0) + eps)
  return jnp.stack([mean, std], axis=-2)


def channel_moments(features: jax.Array, *, eps: float = 1e-8) -> jax.Array:
  """Per-channel mean and standard deviation, ``(..., H, W, C) -> (..., 2, C)``.

  ``μ_i = 1/M Σ F_i``, ``σ_i = sqrt(1/M Σ F_i² − μ_i² + eps)`` over the ``M``
  positions (population variance; ``eps`` keeps the gradient finite for a
  dead channel). The descriptive statistics of the thesis (seed 002).
  """
  return moments_from_raw(jnp.mean(features, axis=(-3, -2)),
                          jnp.mean(jnp.square(features), axis=(-3, -2)),
                          eps=eps)


def covariance_from_gram(mean: jax.Array, gram: jax.Array) -> jax.Array:
  """``Σ = Ĝ − μμᵀ`` ``(..., C, C)`` from the mean ``(..., C)`` and the
  location-averaged Gram: the covariance from two position averages."""
  return gram - mean[..., :, None] * mean[..., None, :]


def channel_mean_covariance(features: jax.Array):
  """Mean ``(..., C)`` and covariance ``(..., C, C)`` of the channel vectors
  over the positions: ``Σ = 1/M Σ_m (f_m − μ)(f_m − μ)ᵀ`` (population
  covariance; the Gram of the centred features). A Gaussian description of
  the style (seed 002, "Descriptive statistics")."""
  mean = jnp.mean(features, axis=(-3, -2))
  return mean, covariance_from_gram(mean, gram_matrix(features))


def raw_moments(features: jax.Array, order: int) -> jax.Array:
  """``E[F^k]`` per channel for ``k = 1 … order``, ``(..., H, W, C) ->
  (..., order, C)``: position averages, so they average over crops."""
  powers = [features]
  for _ in range(order - 1):
    powers.append(powers[-1] * features)
  return jnp.stack([jnp.mean(p, axis=(-3, -2)) for p in powers], axis=-2)


def central_from_raw(raw: jax.Array) -> jax.Array:
  """Mean and central moments from raw moments ``(..., K, C)``: row 0 is
  ``μ = E[F]``, row ``k−1`` (k ≥ 2) is ``c_k = E[(F−μ)^k] = Σ_{j=0}^{k}
  C(k, j) E[F^j] (−μ)^{k−j}`` (binomial expansion, ``E[F⁰] = 1``)."""
  order = raw.shape[-2]
  mean = raw[..., 0, :]
  rows = [mean]
  for k in range(2, order + 1):
    total = jnp.power(-mean, k)
    for j in range(1, k + 1):
      total = total + math.comb(k, j) * raw[..., j - 1, :] * jnp.power(
          -mean, k - j)
    rows.append(total)
  return jnp.stack(rows, axis=-2)


def central_moments(features: jax.Array, order: int) -> jax.Array:
  """Mean and central moments ``E[(F−μ)^k]``, ``k = 2 … order``, per channel,
  computed on the centred features: ``(..., H, W, C) -> (..., order, C)``
  (row 0 is the mean). Kalischek, Wegner & Schindler (CVPR 2021), §3."""
  mean = jnp.mean(features, axis=(-3, -2), keepdims=True)
  centred = features - mean
  rows = [mean[..., 0, 0, :]]
  power = centred
  for _ in range(2, order + 1):
    power = power * centred
    rows.append(jnp.mean(power, axis=(-3, -2)))
  return jnp.stack(rows, axis=-2)


def random_directions(key: jax.Array, channels: int, count: int) -> jax.Array:
  """``count`` unit vectors in ``R^channels``, ``(C, D)`` float32, uniform on
  the sphere (normalised Gaussian draws): the slicing directions of the
  sliced Wasserstein distance (Heitz et al., CVPR 2021, §3)."""
  v = jax.random.normal(key, (channels, count), jnp.float32)
  return v / jnp.linalg.norm(v, axis=0, keepdims=True)


def sorted_projections(points: jax.Array, directions: jax.Array) -> jax.Array:
  """``sort(P v_d)`` over the points for each direction: ``(..., M, C),
  (C, D) -> (..., D, M)``, ascending along the last axis (the empirical
  quantile function of each 1-D projection; sorting the contiguous axis is
  2× faster on XLA:CPU than sorting across rows)."""
  projected = jnp.einsum("...mc,cd->...dm", points, directions,
                         precision=_HIGHEST)
  return jnp.sort(projected, axis=-1)


def sqrtm_psd(matrix: jax.Array, *, eps: float = 1e-6) -> jax.Array:
  """Square root of a symmetric positive semi-definite ``(..., C, C)``.

  ``V diag(sqrt(max(λ, eps·λ_max))) Vᵀ`` from ``eigh``: eigenvalues below
  ``eps`` times the largest (rounding makes them slightly negative) are
  clamped. Used on style targets only (no gradient needed); the loss
  ``losses.gaussian_w2_loss`` differentiates ``tr sqrt(·)`` its own way.
  """
  values, vectors = each_matrix(jnp.linalg.eigh, matrix)
  floor = eps * jnp.maximum(values[..., -1:], 1e-30)
  root = jnp.sqrt(jnp.maximum(values, floor))
  return jnp.einsum("...ir,...r,...jr->...ij", vectors, root, vectors,
                    precision=_HIGHEST)
