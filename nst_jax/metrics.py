"""Quality metrics of a stylised image: how far from the photo, how near the
painting, and how a set of results compares with the painting.

Array contract: images are float RGB in [0, 1]. ``images`` are a batch
``(N, H, W, 3)``; a per-pixel reference (``references``) is ``(N, H, W, 3)``
or ``(1, H, W, 3)`` (one reference for every image) of the same ``H, W``;
a ``style`` image is one ``(H', W', 3)`` of any size. Every per-image metric
returns ``(N,)`` float32. All functions are pure and jit-able: networks are
pytrees of arrays (``Lpips``, ``MetricNetworks``), options are static
keyword arguments. Only :func:`load_lpips` and :func:`load_metric_networks`
read files (the converted weights, as ``vgg.load_params`` does), and
:func:`score` / :func:`score_set` resize with ``nst_jax.io`` before calling
the jitted metrics.

The metrics, each next to its source:

* :func:`lpips` — Learned Perceptual Image Patch Similarity (Zhang, Isola,
  Efros, Shechtman & Wang, CVPR 2018, eq. 1) with the VGG-16 or AlexNet
  linear heads of the ``lpips`` package v0.1; 0 for identical images, higher
  is more different. The distance to the content photo.
* :func:`gram_distance` and :func:`sliced_wasserstein_distance` — style
  distances to the painting over VGG-16 relu1_1 … relu5_1, both *relative*:
  0 when the image has the painting's statistics, 1 when its features are 0
  everywhere. The sliced Wasserstein distance (Heitz et al., CVPR 2021)
  compares whole 1-D marginals along fixed seeded directions (drawn apart
  from any that a ``SlicedWasserstein`` objective uses), so it does not
  reward matching one Gram: it is *not* the default objective.
* :func:`ssim` — structural similarity on luminance (Wang, Bovik, Sheikh &
  Simoncelli, IEEE TIP 2004), 11×11 Gaussian window of σ = 1.5, as
  scikit-image's ``structural_similarity(gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=1)``; 1 for identical
  images.
* :func:`frechet_distance` — between two Gaussians fitted to feature vectors
  (the FID of Heusel et al., NeurIPS 2017); :func:`patch_frechet_distance`
  applies it to the VGG-16 feature vectors (patches) of a set of results and
  of the painting, a stand-in for ArtFID's set-level term (Wright & Ommer,
  GCPR 2022), whose art-trained Inception network cannot be fetched here.
"""

import functools
from typing import Any, Dict, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import color, errors, io, losses, networks, statistics, vgg
from nst_jax.errors import NSTError

_HIGHEST = jax.lax.Precision.HIGHEST

# LPIPS's ScalingLayer (the ``lpips`` package, v0.1): images in [-1, 1] go
# into the network as ``(x − shift) / scale``. With ``x = 2u − 1`` for ``u``
# in [0, 1] this is ``(u − (1 + shift)/2) / (scale/2)``: torchvision's
# ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) exactly,
# so the network sees the input it was trained on.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
LPIPS_EPS = 1e-10  # ``lpips.normalize_tensor``: x / (‖x‖ + eps)

# The style layers every style distance averages over (Gatys et al. 2016).
STYLE_LAYERS = networks.DEFAULT_STYLE_LAYERS["vgg16"]
# Seed of the sliced Wasserstein directions (one fold per layer); the
# ``SlicedWasserstein`` representation draws from its own ``seed`` (0) folded
# with the re-draw round, so an objective never sees these directions.
SWD_SEED = 2021

# SSIM (Wang et al. 2004, §III-C): K1, K2 and the Gaussian window of
# σ = 1.5 truncated at 3.5 σ (scipy.ndimage's radius int(3.5·1.5 + 0.5) = 5:
# 11 taps), as scikit-image's ``gaussian_weights=True``.
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5


class Lpips(NamedTuple):
  """One LPIPS network: the backbone's converted ``params`` (VGG-16 or
  AlexNet, ``vgg.load_params``) and its linear ``heads`` ``{layer: (C,)}``
  for the layers of ``networks.LPIPS_LAYERS``. A pytree of arrays."""
  params: Any
  heads: Any


class MetricNetworks(NamedTuple):
  """The networks :func:`score` uses: LPIPS on VGG-16 (whose backbone also
  gives the style distances and the patches) and LPIPS on AlexNet."""
  vgg: Lpips
  alex: Lpips


def load_lpips(network: str = "vgg16") -> Lpips:
  """The converted backbone and LPIPS heads of ``network`` ("vgg16" or
  "alexnet"), as made by ``nst-fetch-weights`` (``lpips_<network>.npz``
  beside ``<network>.npz``); NSTError naming the command when missing."""
  from nst_jax import weights  # the disk side, only when loading
  errors.check_choice("network", network, networks.LPIPS_LAYERS)
  heads = weights.load_lpips_heads(network)
  return Lpips(vgg.load_params(network),
               {layer: jnp.asarray(heads[layer]["weight"])
                for layer in networks.LPIPS_LAYERS[network]})


def load_metric_networks() -> MetricNetworks:
  """:class:`MetricNetworks` from the weights directory."""
  return MetricNetworks(load_lpips("vgg16"), load_lpips("alexnet"))


def _check_images(name: str, images, ndim: int = 4) -> None:
  if images.ndim != ndim or images.shape[-1] != 3:
    shape = "(N, H, W, 3)" if ndim == 4 else "(H, W, 3)"
    raise NSTError(f"{errors.param(name)} must have shape {shape}, got "
                   f"{tuple(images.shape)}")


def _check_pair(images, references) -> None:
  _check_images("images", images)
  _check_images("references", references)
  if (images.shape[1:] != references.shape[1:]
      or references.shape[0] not in (1, images.shape[0])):
    raise NSTError(f"{errors.param('references')} must be (N, H, W, 3) or "
                   f"(1, H, W, 3) with the images' H, W: got "
                   f"{tuple(references.shape)} for images "
                   f"{tuple(images.shape)}")


# --- LPIPS -------------------------------------------------------------------


def lpips_scaling(images: jax.Array) -> jax.Array:
  """LPIPS's input scaling, ``(..., 3) -> (..., 3)``: ``x = 2u − 1`` of RGB
  ``u`` in [0, 1], then ``(x − shift) / scale`` per channel with
  ``LPIPS_SHIFT`` and ``LPIPS_SCALE`` (the ``lpips`` package's
  ScalingLayer). Equal, in exact arithmetic, to ``vgg.normalize(u)``."""
  shape = (1,) * (images.ndim - 1) + (3,)
  shift = jnp.asarray(LPIPS_SHIFT, images.dtype).reshape(shape)
  scale = jnp.asarray(LPIPS_SCALE, images.dtype).reshape(shape)
  return (2.0 * images - 1.0 - shift) / scale


def unit_normalize(features: jax.Array, *, eps: float = LPIPS_EPS) -> jax.Array:
  """Each position's channel vector over its length, ``(..., C) -> (..., C)``:
  ``f / (‖f‖₂ + eps)`` (LPIPS's ``normalize_tensor``; Zhang et al. 2018,
  eq. 1, "unit-normalize in the channel dimension"). The norm is taken of
  ``max(Σ f², 1e-30)`` so that the gradient stays finite where ``f = 0``
  (the value is unchanged: ``f`` is 0 there)."""
  square = jnp.sum(jnp.square(features), axis=-1, keepdims=True)
  return features / (jnp.sqrt(jnp.maximum(square, 1e-30)) + eps)


def lpips_layer(features: jax.Array, reference_features: jax.Array,
                weight: jax.Array) -> jax.Array:
  """One layer's term of LPIPS, ``(N, H, W, C), (N|1, H, W, C), (C,) ->
  (N,)``: ``1/(H·W) Σ_{h,w} Σ_c w_c (ŷ_hwc − ŷ⁰_hwc)²`` with ``ŷ`` the
  unit-normalised features: squared differences of the normalised channels,
  weighed by the 1×1 linear head ``w``, averaged over positions. This is
  the ``lpips`` package's computation, for which the heads were trained;
  Zhang et al. (2018) write it as eq. 1, ``‖w_l ⊙ (ŷ − ŷ⁰)‖₂²``, with
  their ``w_l`` the square root of these weights."""
  diff = jnp.square(unit_normalize(features)
                    - unit_normalize(reference_features))
  weighted = jnp.einsum("nhwc,c->nhw", diff, weight, precision=_HIGHEST)
  return jnp.mean(weighted, axis=(-2, -1))


def lpips_layers(net: Lpips, images: jax.Array,
                 references: jax.Array) -> Dict[str, jax.Array]:
  """``{layer: (N,)}``: each layer's term of :func:`lpips`."""
  _check_pair(images, references)
  layers = tuple(net.heads)
  x = vgg.features(net.params, lpips_scaling(images), layers, prescaled=True)
  y = vgg.features(net.params, lpips_scaling(references), layers,
                   prescaled=True)
  return {layer: lpips_layer(x[layer], y[layer], net.heads[layer])
          for layer in layers}


def lpips(net: Lpips, images: jax.Array, references: jax.Array) -> jax.Array:
  """LPIPS distance, ``(N, H, W, 3), (N|1, H, W, 3) -> (N,)``.

  ``d(x, x⁰) = Σ_l 1/(H_l W_l) Σ_{h,w} Σ_c w_{l,c} (ŷ^l_hwc − ŷ^{0,l}_hwc)²``
  (Zhang et al., CVPR 2018, eq. 1, as the ``lpips`` package computes it;
  :func:`lpips_layer`) over the layers of
  ``networks.LPIPS_LAYERS`` (VGG-16 relu1_2, relu2_2, relu3_3, relu4_3,
  relu5_3; AlexNet relu1 … relu5), inputs scaled by :func:`lpips_scaling`.
  0 for identical images. Both images must have the same size; LPIPS is
  usually read at 64–256 px, so compare images at one size.
  """
  return sum(lpips_layers(net, images, references).values())


# --- Style distances ---------------------------------------------------------


def gram_distance(features: jax.Array, style_features: jax.Array) -> jax.Array:
  """Relative Gram distance of one layer, ``(N, H, W, C), (H', W', C) ->
  (N,)``: ``‖G(x) − G(s)‖_F / ‖G(s)‖_F`` with location-averaged Grams
  (``statistics.gram_matrix``, Gatys et al. 2016, eq. 3 over ``H·W``), so
  that the sizes may differ."""
  gram = statistics.gram_matrix(features)
  target = statistics.gram_matrix(style_features)[None]
  diff = jnp.sqrt(jnp.sum(jnp.square(gram - target), axis=(-2, -1)))
  return diff / jnp.sqrt(jnp.sum(jnp.square(target), axis=(-2, -1)))


def swd_directions(channels: int, layer_index: int, *, count: int = 0,
                   seed: int = SWD_SEED) -> jax.Array:
  """The fixed directions ``(C, D)`` of :func:`sliced_wasserstein_distance`
  at the ``layer_index``-th style layer: ``statistics.random_directions``
  from ``fold_in(key(seed), layer_index)``; ``count`` 0 means ``D = C``
  (Heitz et al. 2021 use as many directions as channels)."""
  key = jax.random.fold_in(jax.random.key(seed), layer_index)
  return statistics.random_directions(key, channels, count or channels)


def sliced_wasserstein_distance(features: jax.Array, style_features: jax.Array,
                                directions: jax.Array) -> jax.Array:
  """Relative sliced Wasserstein distance of one layer, ``(N, H, W, C),
  (H', W', C), (C, D) -> (N,)``.

  With ``Q_d`` the sorted projections of the style's ``M'`` feature vectors
  on direction ``v_d`` resampled to the image's ``M = H·W`` mid-point
  quantiles, and ``q_d = sort(F v_d)`` the image's:
  ``sqrt( Σ_d Σ_m (q_{d,m} − Q_{d,m})² / Σ_d Σ_m Q_{d,m}² )`` — the sliced
  2-Wasserstein distance (Heitz, Vanhoey, Chambon & Belcour, CVPR 2021, eq.
  6; ``losses.sliced_wasserstein_loss``) over the style's own root mean
  square, so 0 for the style's distribution and 1 for features that are 0.
  Sizes may differ (the quantiles are resampled).
  """
  n, h, w, c = features.shape
  points = features.reshape(n, h * w, c)
  projections = jnp.einsum("nmc,cd->ndm", points, directions,
                           precision=_HIGHEST)
  style_points = style_features.reshape(1, -1, c)
  target = statistics.sorted_projections(style_points, directions)  # (1, D, P)
  squared = losses.sliced_wasserstein_loss(projections, target)
  scale = losses.sliced_wasserstein_loss(jnp.zeros_like(projections[:1]),
                                         target)
  return jnp.sqrt(squared / scale)


def style_distances(params, images: jax.Array, style: jax.Array, *,
                    layers: Sequence[str] = STYLE_LAYERS,
                    directions: int = 0,
                    seed: int = SWD_SEED) -> Dict[str, jax.Array]:
  """``{"swd": (N,), "gram": (N,)}``: :func:`sliced_wasserstein_distance`
  and :func:`gram_distance` of ``images`` ``(N, H, W, 3)`` to one ``style``
  ``(H', W', 3)``, each averaged over ``layers`` (default VGG-16 relu1_1 …
  relu5_1) of ``params`` (ImageNet-normalised input, ``vgg.features``).
  ``directions`` per layer (0: as many as channels) are drawn by
  :func:`swd_directions` from ``seed``."""
  _check_images("images", images)
  _check_images("style", style, ndim=3)
  layers = tuple(layers)
  x = vgg.features(params, images, layers)
  s = vgg.features(params, style[None], layers)
  swd, gram = [], []
  for index, layer in enumerate(layers):
    dirs = swd_directions(x[layer].shape[-1], index, count=directions,
                          seed=seed)
    swd.append(sliced_wasserstein_distance(x[layer], s[layer][0], dirs))
    gram.append(gram_distance(x[layer], s[layer][0]))
  return {"swd": sum(swd) / len(layers), "gram": sum(gram) / len(layers)}


# --- SSIM --------------------------------------------------------------------


def gaussian_window(sigma: float = SSIM_SIGMA,
                    truncate: float = SSIM_TRUNCATE) -> np.ndarray:
  """The normalised 1-D Gaussian taps ``exp(−x²/(2σ²)) / Σ``, ``x = −r … r``
  with ``r = int(truncate·σ + 0.5)`` (``scipy.ndimage.gaussian_filter``'s
  kernel): 11 taps for σ = 1.5. Float64 ``(2r + 1,)``."""
  radius = int(truncate * sigma + 0.5)
  x = np.arange(-radius, radius + 1, dtype=np.float64)
  taps = np.exp(-0.5 * np.square(x / sigma))
  return taps / taps.sum()


def _filter_valid(maps: jax.Array, taps: np.ndarray) -> jax.Array:
  """Separable filtering of ``(B, H, W)`` with ``taps`` along H then W,
  keeping only positions whose window lies inside: ``(B, H−K+1, W−K+1)``."""
  k = len(taps)
  x = maps[..., None]
  kernel = jnp.asarray(taps, maps.dtype)
  for shape in ((k, 1, 1, 1), (1, k, 1, 1)):
    x = jax.lax.conv_general_dilated(
        x, kernel.reshape(shape), (1, 1), "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=_HIGHEST)
  return x[..., 0]


def ssim_luminance(images: jax.Array, references: jax.Array, *,
                   data_range: float = 1.0, sigma: float = SSIM_SIGMA,
                   truncate: float = SSIM_TRUNCATE, k1: float = SSIM_K1,
                   k2: float = SSIM_K2,
                   sample_covariance: bool = False) -> jax.Array:
  """Mean SSIM of grey images, ``(N, H, W), (N|1, H, W) -> (N,)``.

  ``SSIM = (2 μ_x μ_y + C1)(2 σ_xy + C2) / ((μ_x² + μ_y² + C1)(σ_x² + σ_y² +
  C2))`` with ``C1 = (k1 L)²``, ``C2 = (k2 L)²``, ``L = data_range``, local
  means, variances and covariance under the Gaussian window of
  :func:`gaussian_window` (Wang et al., IEEE TIP 2004, eqs. 13–14 and §III-C),
  averaged over the positions whose window lies inside the image (scikit-
  image crops the same border). ``sample_covariance`` scales the variances
  by ``K²/(K²−1)`` as scikit-image's default ``use_sample_covariance=True``
  does; the default follows the paper.
  """
  taps = gaussian_window(sigma, truncate)
  k = len(taps)
  if min(images.shape[-2:]) < k:
    raise NSTError(f"{errors.param('images')} of {images.shape[-1]}x"
                   f"{images.shape[-2]} are smaller than the {k}x{k} SSIM "
                   "window")
  n = images.shape[0]
  references = jnp.broadcast_to(references, images.shape)
  stack = jnp.concatenate([images, references, images * images,
                           references * references, images * references])
  mu_x, mu_y, xx, yy, xy = jnp.split(_filter_valid(stack, taps), 5)
  norm = k * k / (k * k - 1.0) if sample_covariance else 1.0
  var_x = norm * (xx - mu_x * mu_x)
  var_y = norm * (yy - mu_y * mu_y)
  cov = norm * (xy - mu_x * mu_y)
  c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
  ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)
              / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)))
  return jnp.mean(ssim_map.reshape(n, -1), axis=-1)


def ssim(images: jax.Array, references: jax.Array, **options) -> jax.Array:
  """SSIM on luminance, ``(N, H, W, 3), (N|1, H, W, 3) -> (N,)``:
  :func:`ssim_luminance` of ``Y = 0.299R + 0.587G + 0.114B``
  (``color.luminance``); 1 for identical images. ``options`` are
  :func:`ssim_luminance`'s."""
  _check_pair(images, references)
  return ssim_luminance(color.luminance(images), color.luminance(references),
                        **options)


# --- Fréchet distance --------------------------------------------------------


def mean_covariance(points: jax.Array):
  """Mean ``(..., C)`` and unbiased covariance ``(..., C, C)`` of ``M``
  points ``(..., M, C)``: ``Σ = 1/(M−1) Σ_m (f_m − μ)(f_m − μ)ᵀ``
  (``numpy.cov(rowvar=False)``, as FID's reference code)."""
  mean = jnp.mean(points, axis=-2)
  centred = points - mean[..., None, :]
  cov = jnp.einsum("...mi,...mj->...ij", centred, centred,
                   precision=_HIGHEST) / (points.shape[-2] - 1)
  return mean, cov


def frechet_distance(mean_a: jax.Array, cov_a: jax.Array, mean_b: jax.Array,
                     cov_b: jax.Array) -> jax.Array:
  """Fréchet distance between ``N(μ_a, Σ_a)`` and ``N(μ_b, Σ_b)``,
  ``(..., C), (..., C, C) ×2 -> (...)``:

  ``‖μ_a − μ_b‖² + tr Σ_a + tr Σ_b − 2 tr (Σ_a Σ_b)^½`` (Dowson & Landau
  1982; the FID of Heusel et al., NeurIPS 2017, eq. 6). ``tr (Σ_a Σ_b)^½``
  is taken as ``tr (Σ_a^½ Σ_b Σ_a^½)^½``, the same number (similar
  matrices), from ``eigh`` of symmetric PSD matrices: ``Σ_a^½`` by
  ``statistics.sqrtm_psd`` without a floor, negative rounding eigenvalues
  clamped to 0. Exact for singular covariances (fewer points than
  channels), but the square root magnifies float32 rounding there: against
  float64 (scipy's ``sqrtm``) VGG-16 patches at 256 px agree to ~1e-4 of
  the result at relu4_1 and ~1e-3 at relu5_1 (fewer positions than
  channels). The result is clipped at 0, which a distance cannot go below."""
  root_a = statistics.sqrtm_psd(cov_a, eps=0.0)
  cross = jnp.einsum("...ij,...jk,...kl->...il", root_a, cov_b, root_a,
                     precision=_HIGHEST)
  cross = 0.5 * (cross + jnp.swapaxes(cross, -1, -2))
  values = statistics.each_matrix(jnp.linalg.eigvalsh, cross)
  trace_sqrt = jnp.sum(jnp.sqrt(jnp.maximum(values, 0.0)), axis=-1)
  distance = (jnp.sum(jnp.square(mean_a - mean_b), axis=-1)
              + jnp.trace(cov_a, axis1=-2, axis2=-1)
              + jnp.trace(cov_b, axis1=-2, axis2=-1) - 2.0 * trace_sqrt)
  return jnp.maximum(distance, 0.0)


def patch_frechet_distance(params, images: jax.Array, style: jax.Array, *,
                           layers: Sequence[str] = STYLE_LAYERS,
                           relative: bool = True) -> jax.Array:
  """Set-level distance of results to a painting, ``(N, H, W, 3), (H', W', 3)
  -> (L,)``, one value per layer.

  The feature vectors of every position of every image (``N·H_l·W_l``
  "patches", each a receptive field of the layer) and of the style's
  positions are fitted with Gaussians and compared by
  :func:`frechet_distance`, per layer of ``params`` (default VGG-16 relu1_1
  … relu5_1). With ``relative`` each is divided by the style's mean squared
  feature norm ``E‖f_s‖²`` (``= ‖μ_s‖² + tr Σ_s``, up to the M−1), so that
  layers of different scales average and features that are 0 score about 1.
  This is the FID of ArtFID (Wright & Ommer, GCPR 2022) with VGG patches of
  one painting in place of the Inception features of many, which cannot be
  fetched here; it ranks sets of results, not single images.
  """
  _check_images("images", images)
  _check_images("style", style, ndim=3)
  layers = tuple(layers)
  x = vgg.features(params, images, layers)
  s = vgg.features(params, style[None], layers)
  out = []
  for layer in layers:
    c = x[layer].shape[-1]
    points, style_points = x[layer].reshape(-1, c), s[layer].reshape(-1, c)
    distance = frechet_distance(*mean_covariance(points),
                                *mean_covariance(style_points))
    if relative:
      distance = distance / jnp.mean(jnp.sum(jnp.square(style_points), -1))
    out.append(distance)
  return jnp.stack(out)


# --- Scoring results at one size ---------------------------------------------

# The fields of :func:`score`, in the order a table shows them.
SCORE_FIELDS = ("lpips_vgg", "lpips_alex", "swd", "gram", "ssim")


@functools.partial(jax.jit, static_argnames=("layers", "directions", "seed"))
def score_arrays(nets: MetricNetworks, content: jax.Array, style: jax.Array,
                 results: jax.Array, *, layers: Sequence[str] = STYLE_LAYERS,
                 directions: int = 0,
                 seed: int = SWD_SEED) -> Dict[str, jax.Array]:
  """Every per-image metric of ``results`` ``(N, H, W, 3)`` against one
  ``content`` ``(H, W, 3)`` and one ``style`` ``(H', W', 3)``, as
  ``{field: (N,)}`` for the fields of ``SCORE_FIELDS``: LPIPS-VGG and
  LPIPS-AlexNet to the content, sliced Wasserstein and relative Gram
  distances to the style (:func:`style_distances`), SSIM to the content.
  Jit-compiled, one program per set of shapes."""
  reference = content[None]
  out = {"lpips_vgg": lpips(nets.vgg, results, reference),
         "lpips_alex": lpips(nets.alex, results, reference)}
  out.update(style_distances(nets.vgg.params, results, style, layers=layers,
                             directions=directions, seed=seed))
  out["ssim"] = ssim(results, reference)
  return {field: out[field] for field in SCORE_FIELDS}


# The size every result is scored at by default (long edge, pixels), so that
# results made at different sizes compare.
SCORE_SIZE = 256
# How far a result's aspect ratio may be from the content's (rounding of
# small images) before it is refused rather than stretched.
ASPECT_TOLERANCE = 0.05


def scoring_images(content, style, results, size: int = SCORE_SIZE,
                   via: int | None = None):
  """``(content, style, results)`` as :func:`score` compares them: the
  content and the style resized to a long edge of ``size`` (``io``'s
  Lanczos), each result ``(H_i, W_i, 3)`` resized to the content's shape and
  stacked ``(N, H, W, 3)``; float32 numpy. A result whose aspect ratio is
  more than ``ASPECT_TOLERANCE`` from the content's is an NSTError (it is
  not a result of this content).

  ``via`` (a long edge from ``size`` to ``io.MAX_RESIZE_EDGE``): every
  result is first resized to the content's shape at that long edge
  (``io.long_edge_shape`` of the content as given), so that results made at
  different sizes all pass through the same downsampling to ``size``.
  Without it a result made at ``size`` is scored as it is while larger ones
  lose the detail near their Nyquist frequency to the Lanczos filter, which
  the style distances weigh heavily (docs/benchmarks.md, "Scored at one
  size")."""
  if via is not None and int(via) < int(size):
    raise NSTError(f"{errors.param('via')} must be at least the scoring size "
                   f"{size}, got {via}")
  if via is not None and int(via) > io.MAX_RESIZE_EDGE:
    raise NSTError(f"{errors.param('via')} must be at most "
                   f"{io.MAX_RESIZE_EDGE} px, got {via}")
  content = np.asarray(content, np.float32)
  ratio = content.shape[1] / content.shape[0]
  for index, result in enumerate(results):
    h, w = np.shape(result)[:2]
    if abs((w / h) / ratio - 1.0) > ASPECT_TOLERANCE:
      raise NSTError(
          f"{errors.param('results')}[{index}] is {w}x{h}, not the content's "
          f"aspect ratio ({content.shape[1]}x{content.shape[0]}): score "
          "results of this content")
  # ``via``'s shape from the content's own (not from its ``size`` copy, whose
  # rounded short edge scaled up can miss a result made at ``via`` by a row).
  through = (None if via is None else
             io.long_edge_shape(content.shape[:2], int(via)))
  content = io.resize_long_edge(content, size)
  style = io.resize_long_edge(np.asarray(style, np.float32), size)
  shape = content.shape[:2]
  if through is not None:
    results = [io.resize_to(np.asarray(r, np.float32), through)
               for r in results]
  stacked = np.stack([io.resize_to(np.asarray(r, np.float32), shape)
                      for r in results])
  return content, style, stacked


def score(nets: MetricNetworks, content, style, results, *,
          size: int = SCORE_SIZE, via: int | None = None
          ) -> Dict[str, np.ndarray]:
  """:func:`score_arrays` of images of any sizes, all scored at one size
  (:func:`scoring_images`, with its ``via``), so that results of different
  sizes compare: ``{field: (N,) float64 numpy}``."""
  if not len(results):
    raise NSTError(f"{errors.param('results')} is empty: nothing to score")
  content, style, stacked = scoring_images(content, style, results, size,
                                            via)
  scores = score_arrays(nets, jnp.asarray(content), jnp.asarray(style),
                        jnp.asarray(stacked))
  return {k: np.asarray(scores[k], np.float64) for k in SCORE_FIELDS}


@functools.partial(jax.jit, static_argnames=("layers",))
def _set_distance(params, style, results, layers):
  return patch_frechet_distance(params, results, style, layers=layers)


def score_set(nets: MetricNetworks, style, results, *, size: int = SCORE_SIZE,
              layers: Sequence[str] = STYLE_LAYERS) -> Dict[str, Any]:
  """The set-level score of results of one style, all at one size:
  ``{"frechet": mean over layers, "frechet_layers": {layer: value}}`` of the
  relative :func:`patch_frechet_distance` (VGG-16, ``layers``). Results are
  resized to a long edge of ``size`` each (they may differ in shape only if
  they share one after resizing: ``NSTError`` otherwise)."""
  style = io.resize_long_edge(np.asarray(style, np.float32), size)
  resized = [io.resize_long_edge(np.asarray(r, np.float32), size)
             for r in results]
  shapes = {r.shape for r in resized}
  if len(shapes) != 1:
    raise NSTError(f"{errors.param('results')} have different shapes at "
                   f"{size} px ({', '.join(map(str, sorted(shapes)))}): a set "
                   "is results of one content")
  values = np.asarray(_set_distance(nets.vgg.params, jnp.asarray(style),
                                    jnp.asarray(np.stack(resized)),
                                    tuple(layers)), np.float64)
  return {"frechet": float(values.mean()),
          "frechet_layers": dict(zip(layers, map(float, values)))}
