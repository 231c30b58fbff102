"""Colour control: Gatys, Bethge, Hertzmann & Shechtman (2016), "Preserving
Color in Neural Artistic Style Transfer" (arXiv:1606.05897).

Array contract: an image is a float32 array ``(H, W, 3)``, RGB, in ``[0, 1]``.
Host-side numpy pre/post-processing (statistics in float64, results float32);
the colour-space conversions and :func:`luminance` also take jax arrays (under
``jax.jit`` too) and any ``(..., 3)`` shape.

Two ways to keep the content's colours (paper §2):
  * §2.1 colour histogram matching, :func:`match_color`: recolour the style
    image so that its pixel statistics equal the content's, then transfer;
  * §2.2 luminance-only transfer: transfer between the luma channels
    (:func:`luminance_images`), then put the content's chrominance back
    (:func:`combine_luminance`).
"""

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import errors
from nst_jax.errors import NSTError

COLOR_SPACES = ("yiq", "ycbcr")
COLOR_TRANSFERS = ("none", "histogram", "cdf")
MATRIX_TRANSFORMS = ("sqrt", "cholesky")

# Rows give (luma, chroma 1, chroma 2) from (R, G, B); ``ycc = M rgb + o``.
# YIQ: the NTSC 1953 (FCC) matrix. YCbCr: ITU-R BT.601 full range (JPEG/JFIF),
# chroma centred on 0.5 in [0, 1] units.
_FORWARD = {
    "yiq": (np.array([[0.299, 0.587, 0.114],
                      [0.596, -0.274, -0.322],
                      [0.211, -0.523, 0.312]]), np.zeros(3)),
    "ycbcr": (np.array([[0.299, 0.587, 0.114],
                        [-0.168736, -0.331264, 0.5],
                        [0.5, -0.418688, -0.081312]]),
              np.array([0.0, 0.5, 0.5])),
}


def _space(space: str):
  errors.check_choice("space", space, COLOR_SPACES)
  return _FORWARD[space]


def _affine(x, matrix: np.ndarray, offset: np.ndarray, name: str):
  """``matrix @ x + offset`` on the last axis (size 3) of numpy or jax ``x``
  (the parameter ``name``)."""
  if x.shape[-1:] != (3,):
    raise NSTError(f"{errors.param(name)} must be an array (..., 3), got "
                   f"shape {tuple(x.shape)}")
  shape = (1,) * (x.ndim - 1) + (3,)
  if isinstance(x, jax.Array):
    out = jnp.einsum("...j,ij->...i", x.astype(jnp.float32),
                     jnp.asarray(matrix, jnp.float32),
                     precision=jax.lax.Precision.HIGHEST)
    return out + jnp.asarray(offset, jnp.float32).reshape(shape)
  out = np.einsum("...j,ij->...i", np.asarray(x, np.float64), matrix)
  return (out + offset.reshape(shape)).astype(np.float32)


def rgb_to_luma_chroma(image, space: str = "yiq"):
  """RGB ``(..., 3)`` -> ``(..., 3)``: channel 0 luma ``Y``, 1–2 chrominance.

  ``Y = 0.299R + 0.587G + 0.114B`` in both spaces. ``"yiq"``: ``I = 0.596R −
  0.274G − 0.322B``, ``Q = 0.211R − 0.523G + 0.312B`` (NTSC 1953 / FCC).
  ``"ycbcr"``: ``Cb = 0.5 − 0.168736R − 0.331264G + 0.5B``, ``Cr = 0.5 + 0.5R
  − 0.418688G − 0.081312B`` (ITU-R BT.601 full range, JPEG/JFIF).
  """
  matrix, offset = _space(space)
  return _affine(image, matrix, offset, "image")


def luma_chroma_to_rgb(ycc, space: str = "yiq"):
  """Exact inverse of :func:`rgb_to_luma_chroma`: ``rgb = M⁻¹(ycc − o)`` with
  ``M⁻¹`` from ``np.linalg.inv``. Not clipped: a luma/chroma triple outside
  the RGB gamut gives values outside ``[0, 1]``."""
  matrix, offset = _space(space)
  inverse = np.linalg.inv(matrix)
  return _affine(ycc, inverse, -inverse @ offset, "ycc")


def luminance(image):
  """Luma ``Y = 0.299R + 0.587G + 0.114B``, ``(..., 3) -> (...)`` (the same
  in YIQ and YCbCr)."""
  return rgb_to_luma_chroma(image, "yiq")[..., 0]


def match_luminance(style_luma, content_luma) -> np.ndarray:
  """Style luma with the content's mean and standard deviation (paper §2.2).

  ``L_s' = (σ_c / σ_s)(L_s − μ_s) + μ_c``, means and (population) standard
  deviations over all pixels; any shapes with at least one pixel, the output
  has the style's shape. A constant style (``σ_s = 0``) maps to ``μ_c``
  everywhere. Not clipped.
  """
  s = np.asarray(style_luma, np.float64)
  c = np.asarray(content_luma, np.float64)
  if s.size == 0 or c.size == 0:
    raise NSTError(f"{errors.param('style_luma')} and "
                   f"{errors.param('content_luma')} must have at least one "
                   f"pixel, got shapes {s.shape} and {c.shape}")
  if np.ptp(s) == 0:
    return np.full(s.shape, c.mean(), np.float32)
  return ((c.std() / s.std()) * (s - s.mean()) + c.mean()).astype(np.float32)


def _check_image(image, name: str, index: str = "") -> np.ndarray:
  """``image`` as an array; ``NSTError`` naming the parameter ``name`` (and
  ``index``, e.g. ``"[2]"``) unless its shape is ``(H, W, 3)``, H, W >= 1."""
  x = np.asarray(image)
  if x.ndim != 3 or x.shape[-1] != 3 or x.shape[0] * x.shape[1] == 0:
    raise NSTError(f"{errors.param(name)}{index} must be an image (H, W, 3) "
                   f"with H, W >= 1, got shape {x.shape}")
  return x


def luminance_images(content, styles: Sequence, space: str = "yiq"):
  """The inputs of a luminance-only transfer (paper §2.2).

  Returns ``(content_grey, [style_grey, ...])``: the content's luma and each
  style's luma after :func:`match_luminance` to the content's, each
  replicated to three channels ``(H, W, 3)`` float32 (a grey RGB image whose
  luma is that channel) and clipped to ``[0, 1]`` to keep the image contract.
  ``space`` is validated only: luma is the same in both spaces.
  """
  _space(space)
  if isinstance(styles, (np.ndarray, jax.Array)):
    raise NSTError(f"{errors.param('styles')} must be a sequence of images, "
                   f"got an array of shape {styles.shape}")
  y_c = luminance(_check_image(content, "content"))
  matched = [
      match_luminance(luminance(_check_image(s, "styles", f"[{i}]")), y_c)
      for i, s in enumerate(styles)]
  def grey(y):
    return np.repeat(np.clip(y, 0.0, 1.0)[..., None], 3, axis=-1)
  return grey(y_c), [grey(y) for y in matched]


def combine_luminance(result, content, space: str = "yiq") -> np.ndarray:
  """Luma of ``result`` with the chrominance of ``content`` (paper §2.2).

  Both ``(H, W, 3)`` of the same size. Converts both to ``space``, takes
  ``Y`` of the result and the two chroma channels of the content, converts
  back to RGB and clips to ``[0, 1]``: the content's chrominance is kept
  exactly up to that clipping (and float32 rounding).
  """
  r = _check_image(result, "result")
  c = _check_image(content, "content")
  if r.shape != c.shape:
    raise NSTError(f"{errors.param('result')} and {errors.param('content')} "
                   f"must have the same shape, got {r.shape} and {c.shape}")
  ycc = rgb_to_luma_chroma(c, space)
  ycc[..., 0] = luminance(r)
  return np.clip(luma_chroma_to_rgb(ycc, space), 0.0, 1.0)


def _sym_power(matrix: np.ndarray, power: float) -> np.ndarray:
  """``V diag(λ^power) Vᵀ`` of a symmetric PSD matrix (``λ`` clamped at 0)."""
  values, vectors = np.linalg.eigh(matrix)
  values = np.maximum(values, 0.0)
  if power < 0:
    values = np.maximum(values, np.finfo(np.float64).tiny)
  return (vectors * values ** power) @ vectors.T


def _histogram(s: np.ndarray, c: np.ndarray, transform: str, eps: float):
  """``x' = A x + b`` with mean and covariance of ``c`` (paper §2.1)."""
  mu_s, mu_c = s.mean(0), c.mean(0)
  cov_s = np.cov(s, rowvar=False, bias=True).reshape(3, 3) + eps * np.eye(3)
  cov_c = np.cov(c, rowvar=False, bias=True).reshape(3, 3)
  if transform == "sqrt":
    a = _sym_power(cov_c, 0.5) @ _sym_power(cov_s, -0.5)
  else:  # Cholesky needs a definite Σ_c too: regularised like Σ_s.
    l_c = np.linalg.cholesky(cov_c + eps * np.eye(3))
    a = l_c @ np.linalg.inv(np.linalg.cholesky(cov_s))
  return (s - mu_s) @ a.T + mu_c  # = A x + b with b = μ_c − A μ_s


def _cdf(s: np.ndarray, c: np.ndarray) -> np.ndarray:
  """Per-channel exact histogram matching through the empirical CDFs."""
  n, m = len(s), len(c)
  out = np.empty_like(s)
  for k in range(3):
    _, inverse, counts = np.unique(s[:, k], return_inverse=True,
                                        return_counts=True)
    # Mid-rank of each distinct value (0-based): ties share one output.
    rank = np.cumsum(counts) - 0.5 * (counts + 1)
    pos = rank * (m - 1) / (n - 1) if n > 1 else np.full(counts.size, (m - 1) / 2)
    out[:, k] = np.interp(pos, np.arange(m), np.sort(c[:, k]))[inverse.ravel()]
  return out


def match_color(style, content, *, mode: str = "histogram",
                transform: str = "sqrt", eps: float = 1e-5) -> np.ndarray:
  """Recolour ``style`` to the colour statistics of ``content`` (paper §2.1).

  ``style`` and ``content`` are ``(H, W, 3)`` images of any sizes (only the
  pixel statistics of ``content`` matter); returns the style's shape, float32.

  * ``mode="histogram"``: the linear map ``x' = A x + b`` of the style's
    pixels whose output has the content's mean ``μ_c`` and covariance ``Σ_c``:
    ``A Σ_s Aᵀ = Σ_c``, ``b = μ_c − A μ_s``. ``transform="sqrt"`` (the image
    analogies variant): ``A = Σ_c^{1/2} Σ_s^{-1/2}``, symmetric square roots by
    eigen-decomposition; ``"cholesky"``: ``A = L_c L_s⁻¹``. ``Σ_s`` (and for
    Cholesky ``Σ_c``) gets ``eps·I`` added so a flat style maps to ``μ_c``
    instead of blowing up. Population covariances; output clipped to ``[0, 1]``.
  * ``mode="cdf"``: exact per-channel histogram matching: each style value
    goes through its channel's empirical CDF (mid-rank of ties, so equal
    values give equal outputs) to the linearly interpolated content quantile
    (``np.quantile``'s default); for equal sizes and no ties the output
    channels are permutations of the content's.
  * ``mode="none"``: the style unchanged (a float32 copy).
  """
  errors.check_choice("mode", mode, COLOR_TRANSFERS)
  errors.check_choice("transform", transform, MATRIX_TRANSFORMS)
  s = _check_image(style, "style")
  c = _check_image(content, "content").reshape(-1, 3).astype(np.float64)
  flat = s.reshape(-1, 3).astype(np.float64)
  if mode == "histogram":
    flat = np.clip(_histogram(flat, c, transform, eps), 0.0, 1.0)
  elif mode == "cdf":
    flat = _cdf(flat, c)
  return flat.reshape(s.shape).astype(np.float32)


# --- colour control of one transfer (a part of ``TransferConfig``) ----------


@dataclasses.dataclass(frozen=True)
class ColorControl:
  """Colour control of a transfer (Gatys, Bethge, Hertzmann & Shechtman
  2016, "Preserving Color in Neural Artistic Style Transfer").

  ``transfer`` recolours each style to the content's colour statistics
  before the transfer (``"histogram"``: mean and covariance, §2.1;
  ``"cdf"``: exact per-channel histograms; ``"none"``);
  ``original_colors`` transfers luminance only and puts the content's
  chrominance back afterwards (§2.2), in the luma/chroma ``space``.
  """
  transfer: str = "none"
  original_colors: bool = False
  space: str = "yiq"

  def check(self) -> None:
    errors.check_choice("color.transfer", self.transfer, COLOR_TRANSFERS)
    errors.check_choice("color.space", self.space, COLOR_SPACES)

  @property
  def active(self) -> bool:
    return self.transfer != "none" or bool(self.original_colors)

  def prepare(self, content, styles: Sequence):
    """The images a transfer optimises with: ``(content, styles)`` as
    float32 ``(H, W, 3)`` arrays, styles recoloured (``match_color``) and,
    under ``original_colors``, both replaced by their luma (styles' luma
    matched to the content's mean and spread), replicated to three
    channels. Unchanged without colour control."""
    self.check()
    content = np.asarray(content, np.float32)
    styles = [np.asarray(s, np.float32) for s in styles]
    if self.transfer != "none":
      styles = [match_color(s, content, mode=self.transfer) for s in styles]
    if self.original_colors:
      content, styles = luminance_images(content, styles, self.space)
    return content, styles

  def to_luma(self, image) -> np.ndarray:
    """A starting image in the space the transfer runs in (its luma under
    ``original_colors``, else itself)."""
    image = np.asarray(image, np.float32)
    if not self.original_colors:
      return image
    return luminance_images(image, [], self.space)[0]

  def finish(self, image, content) -> np.ndarray:
    """The result in the content's colours under ``original_colors`` (its
    luma with the content's chrominance, §2.2); else ``image`` itself."""
    if not self.original_colors:
      return image
    return combine_luminance(image, content, self.space)
