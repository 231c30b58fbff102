"""Winograd's minimal filtering for 3×3 convolutions, F(4×4, 3×3).

Lavin & Gray (2016), "Fast Algorithms for Convolutional Neural Networks",
with its F(4×4, 3×3) matrices. A stride-1, ``SAME``-padded 3×3
convolution is computed tile by tile: each 4×4 output tile ``Y`` comes from
the 6×6 input tile ``d`` that covers it as

    Y = Aᵀ [ Σ_c (G g_co Gᵀ) ⊙ (Bᵀ d_c B) ] A,

so the ``k² = 9`` multiplications per output and channel pair of the direct
convolution become ``6² / 4² = 2.25``: 4× fewer FLOPs. The sum over input
channels ``c`` of the element-wise products is, for each of the 36
positions of the transformed tile, one matrix product
``(tiles × C_in) @ (C_in × C_out)``: batched ``dot``s that run near a CPU's
peak where ``C_out`` is large, unlike the direct convolution's kernels.

Array contract: images NHWC float32 ``(N, H, W, C_in)`` (any ``H, W ≥ 1``;
the last partial tiles are zero-padded and cropped); kernels HWIO
``(3, 3, C_in, C_out)``; transformed kernels ``(6, 6, C_in, C_out)``.

Accuracy: in float32 the result differs from the direct convolution by a
relative ~5e-6 (the transforms' constants reach 8 and 1/24), against ~1e-7
for two direct algorithms (tests/test_winograd.py); the VGG features it
gives match torchvision's golden activations to the same tolerance as the
direct ones (tests/test_vgg.py).

The kernel transform is done once, outside the solver's loop
(``vgg.prepare_params``): done in every evaluation it measured several times
a small layer's whole cost (conv5_1 at 12×16, forward and input gradient:
about 60 ms against 6 ms).
"""

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import errors
from nst_jax.errors import NSTError

OUTPUT_TILE = 4   # m: output tile edge
INPUT_TILE = 6    # m + r − 1 for the r = 3 kernel

# Lavin & Gray (2016), F(4×4, 3×3), interpolation points 0, ±1, ±2, ∞.
B_T = np.array([[4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1]], np.float64)
G = np.array([[1 / 4, 0, 0],
              [-1 / 6, -1 / 6, -1 / 6],
              [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6],
              [0, 0, 1]], np.float64)
A_T = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 2, -2, 0],
                [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], np.float64)


# Both sides of a tile at once: vec(Bᵀ d B) = (Bᵀ ⊗ Bᵀ) vec(d) for row-major
# vec; likewise Aᵀ.
_KRON_B = np.kron(B_T, B_T).astype(np.float32)   # (36, 36)
_KRON_A = np.kron(A_T, A_T).astype(np.float32)   # (16, 36)
_HIGHEST = jax.lax.Precision.HIGHEST


def transform_kernel(kernel: jax.Array) -> jax.Array:
  """``U = G g Gᵀ`` for every channel pair: ``(3, 3, C_in, C_out)`` HWIO →
  ``(6, 6, C_in, C_out)``, in the kernel's dtype."""
  if kernel.ndim != 4 or kernel.shape[:2] != (3, 3):
    raise NSTError(f"{errors.param('kernel')} must have shape (3, 3, C_in, "
                   f"C_out), got {kernel.shape}")
  # Two plain matrix products (G over i, then over j for each row): 5x
  # faster on XLA:CPU than the same einsum (0.17 s against 0.51 s for
  # VGG-16's conv3_1 … conv5_1, both directions).
  g = G.astype(np.float32)
  c, o = kernel.shape[2:]
  left = jnp.dot(g, kernel.reshape(3, -1), precision=_HIGHEST)
  left = left.reshape(6, 3, c * o)                        # (G g)[r, j]
  u = jnp.stack([jnp.dot(g, left[r], precision=_HIGHEST) for r in range(6)])
  return u.reshape(6, 6, c, o).astype(kernel.dtype)


def _precision(precision: str):
  return (jax.lax.Precision.HIGHEST if precision == "float32"
          else jax.lax.Precision.DEFAULT)


def conv3x3(x: jax.Array, u: jax.Array, precision: str = "float32"
            ) -> jax.Array:
  """The stride-1, padding-1 3×3 convolution (cross-correlation, as
  ``lax.conv_general_dilated``) of ``x`` ``(N, H, W, C_in)`` with the kernel
  whose transform is ``u = transform_kernel(kernel)`` ``(6, 6, C_in, C_out)``;
  returns ``(N, H, W, C_out)``, no bias.

  Three matrix products: the 36 elements of every input tile are transformed
  at once by ``Bᵀ ⊗ Bᵀ`` (36 × 36), the 36 channel contractions are one
  batched product, and ``Aᵀ ⊗ Aᵀ`` (16 × 36) maps back to output tiles; a few
  hundred HLO instructions per layer, where writing the transforms out as
  additions took ten times as many and as much longer to compile, for the
  same speed. ``precision`` ("float32" or "tf32") is that of the channel
  contraction; the transforms are always float32.
  """
  m, a = OUTPUT_TILE, INPUT_TILE
  n, h, w, c = x.shape
  if u.shape[:2] != (a, a) or u.shape[2] != c:
    raise NSTError(
        f"transformed kernel {errors.param('u')} {u.shape} does not fit "
        f"{errors.param('x')} with {c} channels (expected (6, 6, {c}, C_out))")
  o = u.shape[-1]
  th, tw = -(-h // m), -(-w // m)
  # 1 row/column of SAME padding before, enough after for whole tiles.
  xp = jnp.pad(x, ((0, 0), (1, th * m + 1 - h), (1, tw * m + 1 - w), (0, 0)))
  # d[i, j] = element (i, j) of every 6×6 tile (tiles overlap by 2).
  rows = jnp.stack([xp[:, i:i + th * m:m] for i in range(a)])
  d = jnp.stack([rows[:, :, :, j:j + tw * m:m] for j in range(a)], axis=1)
  v = jnp.dot(_KRON_B, d.reshape(a * a, -1), precision=_HIGHEST)
  v = v.reshape(a, a, n * th * tw, c)                    # Bᵀ d B per tile
  prod = jnp.einsum("ijtc,ijco->ijto", v, u.astype(v.dtype),
                    precision=_precision(precision))     # (6, 6, T, C_out)
  y = jnp.dot(_KRON_A, prod.reshape(a * a, -1), precision=_HIGHEST)
  y = y.reshape(m, m, n, th, tw, o).transpose(2, 3, 0, 4, 1, 5)
  return y.reshape(n, th * m, tw * m, o)[:, :h, :w]      # Aᵀ M A, untiled
