"""OkLab colour and NNST's colour transfer, usable after any method.

Array contract: an image is a float array ``(H, W, 3)``, RGB; sRGB images are
in ``[0, 1]``. The conversions take any ``(..., 3)`` array (numpy or jax,
under ``jax.jit`` and ``jax.vmap`` too) and return float32 jax arrays; they
do not clamp (out-of-gamut colours convert and come back). The colour
transfer is a pure jax function of three images (jit-able, vmap-able over
images of one shape).

Sources:
  * OkLab: Björn Ottosson, "A perceptual color space for image processing"
    (bottosson.github.io/posts/oklab, 2020, matrices as revised on
    2021-01-25). The official NNST code (``utils/colorization.py``,
    ``linear_2_oklab`` / ``oklab_2_linear``) carries the matrices of the
    first revision (``0.4121656120, …``); they differ from these by < 3e-4
    in L, a, b, far below an 8-bit step (3.9e-3).
  * sRGB transfer function: IEC 61966-2-1 (1999).
  * Colour transfer: Kolkin et al., "Neural Neighbor Style Transfer"
    (ECCV 2022), its colour post-process, as the official
    ``utils/colorization.py`` ``color_match``, ``filter`` and
    ``utils/zca.py`` ``zca`` do it.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import errors
from nst_jax.errors import NSTError

# Linear sRGB -> cone-like LMS (Ottosson's M1 composed with sRGB -> XYZ).
_RGB_TO_LMS = np.array([[0.4122214708, 0.5363325363, 0.0514459929],
                        [0.2119034982, 0.6806995451, 0.1073969566],
                        [0.0883024619, 0.2817188376, 0.6299787005]])
# Cube-rooted LMS -> (L, a, b) (Ottosson's M2).
_LMS_TO_LAB = np.array([[0.2104542553, 0.7936177850, -0.0040720468],
                        [1.9779984951, -2.4285922050, 0.4505937099],
                        [0.0259040371, 0.7827717662, -0.8086757660]])
# The published inverses.
_LAB_TO_LMS = np.array([[1.0, 0.3963377774, 0.2158037573],
                        [1.0, -0.1055613458, -0.0638541728],
                        [1.0, -0.0894841775, -1.2914855480]])
_LMS_TO_RGB = np.array([[4.0767416621, -3.3077115913, 0.2309699292],
                        [-1.2684380046, 2.6097574011, -0.3413193965],
                        [-0.0041960863, -0.7034186147, 1.7076147010]])


def _check_rgb(x, name: str):
  if x.ndim < 1 or x.shape[-1] != 3:
    raise NSTError(f"{errors.param(name)} must be an array (..., 3), got "
                   f"shape {tuple(x.shape)}")


def _matmul3(x, matrix):
  """``matrix @ x`` on the last axis (size 3), float32, exact products."""
  return jnp.einsum("...j,ij->...i", x, jnp.asarray(matrix, jnp.float32),
                    precision=jax.lax.Precision.HIGHEST)


def srgb_to_linear(x):
  """sRGB-encoded values to linear light (IEC 61966-2-1).

  ``x / 12.92`` where ``x <= 0.04045``, else ``((x + 0.055) / 1.055)^2.4``.
  ``x``: ``(..., 3)`` (any shape works; the check is for images).
  """
  x = jnp.asarray(x, jnp.float32)
  curve = ((jnp.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4
  return jnp.where(x <= 0.04045, x / 12.92, curve)


def linear_to_srgb(x):
  """Linear light to sRGB-encoded values (IEC 61966-2-1), the inverse of
  :func:`srgb_to_linear`: ``12.92 x`` where ``x <= 0.0031308``, else
  ``1.055 x^(1/2.4) − 0.055``."""
  x = jnp.asarray(x, jnp.float32)
  curve = 1.055 * jnp.maximum(x, 0.0031308) ** (1 / 2.4) - 0.055
  return jnp.where(x <= 0.0031308, 12.92 * x, curve)


def linear_srgb_to_oklab(rgb):
  """Linear sRGB ``(..., 3)`` to OkLab ``(..., 3)`` (L, a, b).

  ``lms = M1 rgb``, ``lab = M2 cbrt(lms)`` (Ottosson 2020,
  ``linear_srgb_to_oklab``); the cube root keeps the sign, so colours
  outside the gamut convert too. White ``(1, 1, 1)`` → ``(1, 0, 0)``.
  """
  rgb = jnp.asarray(rgb, jnp.float32)
  _check_rgb(rgb, "rgb")
  return _matmul3(jnp.cbrt(_matmul3(rgb, _RGB_TO_LMS)), _LMS_TO_LAB)


def oklab_to_linear_srgb(lab):
  """OkLab ``(..., 3)`` to linear sRGB ``(..., 3)``, the inverse of
  :func:`linear_srgb_to_oklab`: ``rgb = M1⁻¹ (M2⁻¹ lab)³`` (Ottosson 2020,
  ``oklab_to_linear_srgb``). Not clamped."""
  lab = jnp.asarray(lab, jnp.float32)
  _check_rgb(lab, "lab")
  return _matmul3(_matmul3(lab, _LAB_TO_LMS) ** 3, _LMS_TO_RGB)


def srgb_to_oklab(rgb):
  """sRGB-encoded ``(..., 3)`` to OkLab: :func:`srgb_to_linear`, then
  :func:`linear_srgb_to_oklab`."""
  return linear_srgb_to_oklab(srgb_to_linear(rgb))


def oklab_to_srgb(lab):
  """OkLab ``(..., 3)`` to sRGB-encoded values (not clamped)."""
  return linear_to_srgb(oklab_to_linear_srgb(lab))


def covariance(x):
  """Mean ``(D,)`` and population covariance ``(D, D)`` of the rows of
  ``x`` ``(N, D)``: ``Σ = (x − μ)ᵀ(x − μ) / N`` (official ``utils/zca.py``
  ``zca``)."""
  mean = jnp.mean(x, axis=0)
  centred = x - mean[None]
  cov = jnp.einsum("nd,ne->de", centred, centred,
                   precision=jax.lax.Precision.HIGHEST) / x.shape[0]
  return mean, cov


def _matrix_power(cov, power, eps):
  """``(Σ + eps I)^power`` of a symmetric ``(D, D)``, eigenvalues clamped to
  ``[1e-8, 1e8]`` as the official ``zca`` clamps them."""
  d = cov.shape[0]
  values, vectors = jnp.linalg.eigh(cov + eps * jnp.eye(d, dtype=cov.dtype))
  values = jnp.clip(values, 1e-8, 1e8) ** power
  return jnp.einsum("ik,k,jk->ij", vectors, values, vectors,
                    precision=jax.lax.Precision.HIGHEST)


def zca_transfer(x, y, *, eps: float = 1e-4):
  """Rows of ``x`` ``(N, D)`` mapped to the mean and covariance of the rows
  of ``y`` ``(M, D)`` by whitening and colouring (ZCA):

  ``x' = (Σ_y + εI)^{1/2} (Σ_x + εI)^{-1/2} (x − μ_x) + μ_y``

  with population covariances and ``ε = 1e-4`` (official ``utils/zca.py``
  ``zca``: SVD of ``cov + 1e-4 I``, eigenvalues clamped to ``[1e-8, 1e8]``;
  Chiu et al. ICCV 2019 for whitening and colouring). The result's
  covariance is ``Σ_y`` up to the ``ε`` terms. Returns ``(N, D)``.
  """
  if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
    raise ValueError(f"zca_transfer takes (N, D) and (M, D), got "
                     f"{x.shape} and {y.shape}")
  mean_x, cov_x = covariance(x)
  mean_y, cov_y = covariance(y)
  matrix = (_matrix_power(cov_y, 0.5, eps)
            @ _matrix_power(cov_x, -0.5, eps))
  return jnp.einsum("ij,nj->ni", matrix, x - mean_x[None],
                    precision=jax.lax.Precision.HIGHEST) + mean_y[None]


def cross_bilateral(values, guide, *, iterations: int = 5,
                    falloff: float = 10.0):
  """Smooths ``values`` ``(H, W, K)`` along the edges of ``guide``
  ``(H, W)`` (a cross/joint bilateral filter, iterated).

  Each of ``iterations`` rounds replaces every pixel by the weighted mean
  over its 3×3 neighbourhood (itself included; edges replicated):

  ``v'_p = Σ_q w_pq v_q / Σ_q w_pq``, ``w_pq = exp(−falloff |g_p − g_q|)``

  with the weights from the fixed ``guide`` and ``v`` the previous round's
  result. Official ``utils/colorization.py`` ``filter``: 5 rounds, weight
  ``exp(−5 |ΔL|)²`` (``falloff = 10``), guided by OkLab's L, applied to a
  and b.
  """
  if values.ndim != 3 or guide.shape != values.shape[:2]:
    raise ValueError(f"cross_bilateral takes values (H, W, K) and a guide "
                     f"(H, W), got {values.shape} and {guide.shape}")
  h, w = guide.shape
  padded = jnp.pad(guide, 1, mode="edge")
  offsets = [(i, j) for i in range(3) for j in range(3)]
  weights = jnp.stack(
      [jnp.exp(-falloff * jnp.abs(guide - padded[i:i + h, j:j + w]))
       for i, j in offsets])                                 # (9, H, W)
  total = jnp.sum(weights, axis=0)[..., None]

  def one_round(v, _):
    p = jnp.pad(v, ((1, 1), (1, 1), (0, 0)), mode="edge")
    summed = sum(weights[k][..., None] * p[i:i + h, j:j + w]
                 for k, (i, j) in enumerate(offsets))
    return summed / total, None

  return jax.lax.scan(one_round, values, None, length=iterations)[0]


@dataclasses.dataclass(frozen=True)
class ColorTransfer:
  """Settings of :func:`color_transfer`, the official values by default.

  * ``decode_srgb``: ``False`` as the official code, which feeds the sRGB
    values themselves to its ``linear_2_oklab`` (no transfer function);
    ``True`` linearises them first and encodes the result again.
  * ``moment_only``: ``False``; ``True`` matches all three OkLab channels of
    the output to the style's moments instead (``color_match(...,
    moment_only=False)``).
  * ``grey_threshold``: ``6e-5``; a style whose a/b covariance has no entry
    above it in magnitude (a grey style) takes the moment-only path
    (``color_match``: ``cov_s[1:,1:].abs().max() < 6e-5``).
  * ``eps``: ``1e-4``, the covariance regulariser of ``zca``.
  * ``iterations``, ``falloff``: ``5`` and ``10`` of ``filter``.
  """
  decode_srgb: bool = False
  moment_only: bool = False
  grey_threshold: float = 6e-5
  eps: float = 1e-4
  iterations: int = 5
  falloff: float = 10.0

  def __post_init__(self):
    if self.iterations < 0:
      raise NSTError(f"{errors.param('iterations')} must be >= 0, got "
                     f"{self.iterations}")
    if not self.eps > 0:
      raise NSTError(f"{errors.param('eps')} must be > 0, got {self.eps}")


COLOR_TRANSFER = ColorTransfer()


def _clamp_to(x, reference):
  """Each channel of ``x`` ``(..., 3)`` clamped to the range of that
  channel in ``reference`` ``(N, 3)``."""
  shape = (1,) * (x.ndim - 1) + (3,)
  return jnp.clip(x, jnp.min(reference, axis=0).reshape(shape),
                  jnp.max(reference, axis=0).reshape(shape))


def color_transfer(content, style, output,
                   settings: ColorTransfer = COLOR_TRANSFER):
  """NNST's colour post-process: the output's lightness with the content's
  chroma, recoloured to the style's chroma statistics.

  ``content`` and ``output`` ``(H, W, 3)``, ``style`` ``(H_s, W_s, 3)``,
  RGB; all three are clamped to ``[0, 1]`` first. Returns ``(H, W, 3)`` in
  ``[0, 1]``. In OkLab (official ``utils/colorization.py``
  ``color_match``):

  1. ``L`` = the output's L clamped to the style's L range;
  2. ``(a, b)`` = the content's a, b mapped to the style's a, b mean and
     covariance (:func:`zca_transfer`), then smoothed along the edges of
     ``L`` (:func:`cross_bilateral`);
  3. every channel clamped to the style's range, back to RGB, clamped to
     ``[0, 1]``.

  With ``settings.moment_only``, or a grey style (its a/b covariance below
  ``settings.grey_threshold``), step 2 is instead: the output's own a, b
  with the L of step 1, all three channels mapped to the style's mean and
  covariance (no smoothing). The official code also builds Laplacian
  pyramids at the end of ``color_match`` and discards them; nothing of
  them reaches its result, so they are left out here.
  """
  for name, image in (("content", content), ("style", style),
                      ("output", output)):
    image = jnp.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
      raise NSTError(f"{errors.param(name)} must be an image (H, W, 3), got "
                     f"shape {tuple(image.shape)}")
  if jnp.shape(content) != jnp.shape(output):
    raise NSTError(f"{errors.param('output')} must have the content's "
                   f"shape {tuple(jnp.shape(content))}, got "
                   f"{tuple(jnp.shape(output))}")
  to_lab = srgb_to_oklab if settings.decode_srgb else linear_srgb_to_oklab
  c, s, o = (to_lab(jnp.clip(jnp.asarray(x, jnp.float32), 0.0, 1.0))
             for x in (content, style, output))
  h, w, _ = c.shape
  s_flat = s.reshape(-1, 3)
  lightness = _clamp_to(o, s_flat)[..., :1]

  grey = (jnp.max(jnp.abs(covariance(s_flat[:, 1:])[1]))
          < settings.grey_threshold)
  moments = jnp.concatenate([lightness, o[..., 1:]], axis=-1).reshape(-1, 3)
  moments = zca_transfer(moments, s_flat, eps=settings.eps).reshape(h, w, 3)
  if settings.moment_only:
    lab = moments
  else:
    chroma = zca_transfer(c[..., 1:].reshape(-1, 2), s_flat[:, 1:],
                          eps=settings.eps).reshape(h, w, 2)
    chroma = cross_bilateral(chroma, lightness[..., 0],
                             iterations=settings.iterations,
                             falloff=settings.falloff)
    lab = jnp.where(grey, moments,
                    jnp.concatenate([lightness, chroma], axis=-1))
  rgb = oklab_to_linear_srgb(_clamp_to(lab, s_flat))
  if settings.decode_srgb:
    rgb = linear_to_srgb(jnp.clip(rgb, 0.0, 1.0))
  return jnp.clip(rgb, 0.0, 1.0)
