"""Image parameterisations: what the optimiser moves, and how it becomes an
image.

A :class:`Parameterization` is a pair of pure functions, ``encode(image) ->
params`` and ``decode(params) -> image``, with ``decode(encode(x)) == x``.
The optimiser updates ``params`` (a pytree); the objective sees
``decode(params)``. Images are ``(H, W, C)`` float (any range: STROTSS
optimises without clipping); ``decode`` reads the sizes it needs from the
params' shapes, so it runs under ``jax.jit``.

* :data:`PIXELS`: the image itself (Gatys et al.; our L-BFGS runs).
* :func:`laplacian`: the Laplacian pyramid that STROTSS optimises (Kolkin et
  al. CVPR 2019; official ``pyr_lap.py``, ``dec_lap_pyr`` / ``syn_lap_pyr``,
  with 5 levels in ``st_helper.style_transfer``). A gradient step on the
  coefficients moves every spatial frequency band, so coarse structure
  changes as readily as fine detail.

Resampling: ``resize_bilinear(x, size, align_corners=...)`` is a separable
bilinear resize written as two small matrices, with no antialiasing, as
``torch.nn.functional.interpolate(mode="bilinear")``: ``align_corners=True``
is ``F.upsample_bilinear`` (the pyramid's), ``False`` is ``F.upsample(...,
mode="bilinear")`` in torch ≥ 0.4 (the official level-to-level upsampling
and image loading).
"""

from typing import Any, Callable, NamedTuple, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.errors import NSTError, param

# Official ``st_helper.style_transfer``: ``dec_lap_pyr(stylized_im, 5)``.
STROTSS_PYRAMID_LEVELS = 5


class Parameterization(NamedTuple):
  """``encode: image (H, W, C) -> params`` and ``decode: params -> image``,
  both pure; ``decode(encode(x))`` reproduces ``x`` (to float rounding)."""
  encode: Callable[[jax.Array], Any]
  decode: Callable[[Any], jax.Array]


def _identity(x):
  return x


PIXELS = Parameterization(_identity, _identity)


def resize_matrix(n_in: int, n_out: int, *, align_corners: bool) -> np.ndarray:
  """The ``(n_out, n_in)`` float32 matrix of 1-D bilinear resampling.

  Output sample ``i`` reads the input at ``s = i·(n_in − 1)/(n_out − 1)``
  (``align_corners=True``; ``s = 0`` when ``n_out = 1``) or at
  ``s = max((i + ½)·n_in/n_out − ½, 0)`` (``False``), weights ``1 − a`` on
  ``⌊s⌋`` and ``a = s − ⌊s⌋`` on ``⌊s⌋ + 1`` (clipped to the last sample).
  Source: PyTorch ``upsample_bilinear2d`` (area_pixel_compute_source_index).
  """
  if n_in < 1 or n_out < 1:
    raise ValueError(f"sizes must be positive, got {n_in} -> {n_out}")
  i = np.arange(n_out, dtype=np.float64)
  if align_corners:
    s = i * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
  else:
    s = np.maximum((i + 0.5) * (n_in / n_out) - 0.5, 0.0)
  lo = np.minimum(np.floor(s).astype(int), n_in - 1)
  hi = np.minimum(lo + 1, n_in - 1)
  a = s - lo
  m = np.zeros((n_out, n_in))
  np.add.at(m, (np.arange(n_out), lo), 1 - a)
  np.add.at(m, (np.arange(n_out), hi), a)
  return m.astype(np.float32)


def resize_bilinear(x: jax.Array, size: Tuple[int, int], *,
                    align_corners: bool) -> jax.Array:
  """``x`` ``(H, W, C)`` resized to ``size = (h, w)`` bilinearly, without
  antialiasing (``resize_matrix`` along rows, then columns); ``(h, w, C)``.
  Linear in ``x``, so differentiable and exact to invert where a pyramid
  subtracts it."""
  if x.ndim != 3:
    raise ValueError(f"x must be (H, W, C), got {x.shape}")
  rows = jnp.asarray(resize_matrix(x.shape[0], size[0],
                                   align_corners=align_corners), x.dtype)
  cols = jnp.asarray(resize_matrix(x.shape[1], size[1],
                                   align_corners=align_corners), x.dtype)
  hi = jax.lax.Precision.HIGHEST
  return jnp.einsum("hH,wW,HWc->hwc", rows, cols, x, precision=hi)


def _half(shape):
  return max(shape[0] // 2, 1), max(shape[1] // 2, 1)


def laplacian_pyramid(image: jax.Array,
                      levels: int = STROTSS_PYRAMID_LEVELS, *,
                      align_corners: bool = True) -> tuple:
  """The Laplacian pyramid of ``image`` ``(H, W, C)``: ``levels`` band-pass
  images and one low-pass residual, finest first, ``levels + 1`` arrays.

  ``g_0 = image``; ``g_{k+1} = down(g_k)`` to ``(max(h//2, 1), max(w//2,
  1))``; ``L_k = g_k − up(g_{k+1})`` for ``k < levels``; the last entry is
  ``g_levels``. ``down`` and ``up`` are ``resize_bilinear(...,
  align_corners)``: True as STROTSS (official ``pyr_lap.dec_lap_pyr``,
  ``F.upsample_bilinear``), False as NNST (official
  ``utils/imagePyramid.dec_lap_pyr``, ``F.interpolate(mode='bilinear')``).
  """
  if levels < 0:
    raise NSTError(f"{param('levels')} must be at least 0, got {levels}")
  pyramid, current = [], image
  for _ in range(levels):
    small = resize_bilinear(current, _half(current.shape),
                            align_corners=align_corners)
    pyramid.append(current - resize_bilinear(small, current.shape[:2],
                                             align_corners=align_corners))
    current = small
  pyramid.append(current)
  return tuple(pyramid)


def synthesize_pyramid(pyramid, *, align_corners: bool = True) -> jax.Array:
  """The image of a Laplacian pyramid (``laplacian_pyramid``'s inverse, the
  same ``align_corners``): ``x = L_0 + up(L_1 + up(… + up(g_n)))``, each
  ``up`` to the next finer band's size. Source: official
  ``pyr_lap.syn_lap_pyr`` (STROTSS), ``imagePyramid.syn_lap_pyr`` (NNST)."""
  current = pyramid[-1]
  for band in reversed(tuple(pyramid)[:-1]):
    current = band + resize_bilinear(current, band.shape[:2],
                                     align_corners=align_corners)
  return current


def laplacian(levels: int = STROTSS_PYRAMID_LEVELS) -> Parameterization:
  """The Laplacian-pyramid parameterisation with ``levels`` bands
  (``laplacian_pyramid``, ``synthesize_pyramid``); the params are a tuple of
  ``levels + 1`` arrays. STROTSS's default is 5 (official
  ``st_helper.style_transfer``)."""
  if not isinstance(levels, int) or levels < 0:
    raise NSTError(f"{param('levels')} must be an int of at least 0, "
                   f"got {levels!r}")
  return Parameterization(lambda image: laplacian_pyramid(image, levels),
                          synthesize_pyramid)
