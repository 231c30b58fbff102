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

GRAM_NORMALIZATIONS = ("paper", "notes")


def content_loss(features: jax.Array, target: jax.Array) -> jax.Array:
  """``L_content = ½ Σ_ij (F_ij − P_ij)²`` (Gatys et al. 2016, eq. 1).

  ``features`` and ``target`` are ``(..., H, W, C)``; returns ``(...)``.
  """
  if features.shape[-3:] != target.shape[-3:]:
    raise ValueError(
        f"content features {features.shape} and target {target.shape} differ")
  return 0.5 * jnp.sum(jnp.square(features - target), axis=(-3, -2, -1))


def gram_loss(gram: jax.Array, target: jax.Array, *,
              normalization: str = "paper") -> jax.Array:
  """Style loss of one layer between location-averaged Grams ``(..., C, C)``.

  ``normalization`` is ``"paper"`` (``Σ(Ĝ−Â)²/(4C²)``, Gatys et al. eq. 4) or
  ``"notes"`` (``Σ(Ĝ−Â)²/C²``, seed 000); see the module docstring.
  """
  if normalization not in GRAM_NORMALIZATIONS:
    raise ValueError(
        f"normalization must be one of {GRAM_NORMALIZATIONS}, got "
        f"{normalization!r}")
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
