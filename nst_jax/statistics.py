"""Style statistics of feature maps.

Array contract: ``features`` are float arrays ``(..., H, W, C)`` (NHWC with
any leading batch axes, as returned by ``nst_jax.vgg.features``). Statistics
keep the leading axes, so they work unchanged under ``jax.vmap``.

Notation of the seeds: a layer with ``N_l = C`` filters and ``M_l = H·W``
positions has the feature matrix ``F^l`` of shape ``M_l × N_l``.
"""

import jax
import jax.numpy as jnp


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
