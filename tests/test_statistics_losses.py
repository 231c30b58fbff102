"""Tests of nst_jax.statistics and nst_jax.losses against numpy references.

Every library call goes through ``jax.jit``; references are plain float64
numpy written from the formulas of the papers and seeds (not from the library
code), so a wrong factor or axis shows up as a mismatch.
"""

import functools

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest

from nst_jax import losses
from nst_jax import statistics


def _rng(seed=0):
  return np.random.default_rng(seed)


def _np_gram(f, normalize):
  """Gram over the positions of (..., H, W, C) in float64."""
  f = np.asarray(f, np.float64)
  *lead, h, w, c = f.shape
  x = f.reshape(*lead, h * w, c)
  g = np.einsum("...mi,...mj->...ij", x, x)
  return g / (h * w) if normalize else g


# --- gram_matrix ---------------------------------------------------------------


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("shape", [(5, 7, 4), (2, 5, 7, 4), (3, 2, 4, 6, 8)])
def test_gram_matrix_matches_numpy(shape, normalize):
  f = _rng(1).normal(size=shape).astype(np.float32)
  fn = jax.jit(functools.partial(statistics.gram_matrix, normalize=normalize))
  got = np.asarray(fn(f))
  want = _np_gram(f, normalize)
  assert got.shape == shape[:-3] + (shape[-1], shape[-1])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
  # Symmetric positive semi-definite.
  np.testing.assert_allclose(got, np.swapaxes(got, -1, -2), rtol=1e-6, atol=1e-6)
  assert np.linalg.eigvalsh(got.astype(np.float64)).min() > -1e-4


def test_gram_matrix_normalization_is_positions():
  """Normalised Gram = raw Gram / (H·W), and is invariant to tiling the map."""
  f = _rng(2).normal(size=(3, 4, 5)).astype(np.float32)
  raw = jax.jit(lambda x: statistics.gram_matrix(x, normalize=False))(f)
  norm = jax.jit(statistics.gram_matrix)(f)
  np.testing.assert_allclose(np.asarray(norm), np.asarray(raw) / 12, rtol=1e-6)
  tiled = np.tile(f, (2, 3, 1))  # same statistics on 6x more positions
  np.testing.assert_allclose(np.asarray(jax.jit(statistics.gram_matrix)(tiled)),
                             np.asarray(norm), rtol=1e-5, atol=1e-6)


def test_gram_matrix_vmap_equals_loop():
  f = _rng(3).normal(size=(4, 6, 5, 3)).astype(np.float32)
  fn = jax.jit(jax.vmap(statistics.gram_matrix))
  got = np.asarray(fn(f))
  for i in range(4):
    np.testing.assert_allclose(
        got[i], np.asarray(jax.jit(statistics.gram_matrix)(f[i])), rtol=1e-6,
        atol=1e-6)


# --- content_loss --------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 5, 3), (2, 4, 5, 3), (2, 3, 4, 5, 6)])
def test_content_loss_matches_numpy(shape):
  rng = _rng(4)
  f = rng.normal(size=shape).astype(np.float32)
  p = rng.normal(size=shape).astype(np.float32)
  got = np.asarray(jax.jit(losses.content_loss)(f, p))
  want = 0.5 * np.sum((f.astype(np.float64) - p) ** 2, axis=(-3, -2, -1))
  assert got.shape == shape[:-3]
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_content_loss_batch_against_one_target():
  """A (H, W, C) target against a batch of features (the leading axes)."""
  rng = _rng(5)
  f = rng.normal(size=(3, 4, 5, 2)).astype(np.float32)
  p = rng.normal(size=(4, 5, 2)).astype(np.float32)
  # rank promotion is "raise" in tests: the library must not rely on it, so
  # the caller broadcasts explicitly.
  got = np.asarray(jax.jit(losses.content_loss)(f, np.broadcast_to(p, f.shape)))
  want = [0.5 * np.sum((f[i].astype(np.float64) - p) ** 2) for i in range(3)]
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_content_loss_shape_mismatch_raises():
  with pytest.raises(ValueError, match="differ"):
    losses.content_loss(jnp.zeros((4, 5, 3)), jnp.zeros((4, 6, 3)))


# --- gram_loss -----------------------------------------------------------------


def _gram_loss_jit(normalization):
  return jax.jit(functools.partial(losses.gram_loss, normalization=normalization))


@pytest.mark.parametrize("hwc", [(6, 5, 4), (3, 8, 7), (1, 1, 16)])
def test_gram_loss_paper_is_eq4_on_raw_grams(hwc):
  """Gatys et al. (2016) eq. 4 on raw Grams of equal M_l = H·W:
  E_l = 1/(4 N² M²) Σ (G − A)², equal to gram_loss('paper') on G/M, A/M."""
  h, w, n = hwc
  m = h * w
  rng = _rng(6)
  x = rng.normal(size=hwc)     # generated image's features
  a_feat = rng.normal(size=hwc)  # style image's features, same size
  g_raw = x.reshape(m, n).T @ x.reshape(m, n)
  a_raw = a_feat.reshape(m, n).T @ a_feat.reshape(m, n)
  eq4 = np.sum((g_raw - a_raw) ** 2) / (4.0 * n**2 * m**2)
  got = _gram_loss_jit("paper")((g_raw / m).astype(np.float32),
                                (a_raw / m).astype(np.float32))
  np.testing.assert_allclose(float(got), eq4, rtol=1e-5)


@pytest.mark.parametrize("hwc", [(6, 5, 4), (3, 8, 7)])
def test_gram_loss_notes_is_seed000_formula_and_4x_paper(hwc):
  """Seed 000: G = XᵀX/(NM) (N×M spatial, K channels), loss (1/K²)Σ(G̃−G)²."""
  nn, mm, k = hwc
  rng = _rng(7)
  x = rng.normal(size=hwc).reshape(nn * mm, k)
  d = rng.normal(size=hwc).reshape(nn * mm, k)
  g = x.T @ x / (nn * mm)
  g_tilde = d.T @ d / (nn * mm)
  notes = np.sum((g_tilde - g) ** 2) / k**2
  g32, gt32 = g.astype(np.float32), g_tilde.astype(np.float32)
  got_notes = float(_gram_loss_jit("notes")(gt32, g32))
  got_paper = float(_gram_loss_jit("paper")(gt32, g32))
  np.testing.assert_allclose(got_notes, notes, rtol=1e-5)
  np.testing.assert_allclose(got_notes, 4.0 * got_paper, rtol=1e-6)


def test_gram_loss_with_library_grams_of_different_sizes():
  """Location-averaged Grams let style and generated maps differ in size."""
  rng = _rng(8)
  f = rng.normal(size=(6, 6, 5)).astype(np.float32)
  s = rng.normal(size=(10, 4, 5)).astype(np.float32)
  gram = jax.jit(statistics.gram_matrix)
  got = float(_gram_loss_jit("paper")(gram(f), gram(s)))
  want = np.sum((_np_gram(f, True) - _np_gram(s, True)) ** 2) / (4 * 25)
  np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("normalization", ["paper", "notes"])
def test_gram_loss_keeps_leading_axes(normalization):
  rng = _rng(9)
  g = rng.normal(size=(2, 3, 4, 4)).astype(np.float32)
  a = rng.normal(size=(2, 3, 4, 4)).astype(np.float32)
  got = np.asarray(_gram_loss_jit(normalization)(g, a))
  factor = 4.0 if normalization == "paper" else 1.0
  want = np.sum((g.astype(np.float64) - a) ** 2, axis=(-2, -1)) / (factor * 16)
  assert got.shape == (2, 3)
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_gram_loss_bad_normalization_raises():
  with pytest.raises(ValueError, match="normalization"):
    losses.gram_loss(jnp.zeros((3, 3)), jnp.zeros((3, 3)), normalization="l2")


@pytest.mark.parametrize("shapes", [((3, 3), (4, 4)), ((2, 3, 3), (2, 3, 4))])
def test_gram_loss_shape_mismatch_raises(shapes):
  with pytest.raises(ValueError, match="differ"):
    losses.gram_loss(jnp.zeros(shapes[0]), jnp.zeros(shapes[1]))


# --- total_variation_loss ------------------------------------------------------


def _np_tv(x):
  x = np.asarray(x, np.float64)
  h, w = x.shape[-3], x.shape[-2]
  out = np.zeros(x.shape[:-3])
  for i in range(h):
    for j in range(w):
      if i + 1 < h:
        out = out + np.sum((x[..., i + 1, j, :] - x[..., i, j, :]) ** 2, -1)
      if j + 1 < w:
        out = out + np.sum((x[..., i, j + 1, :] - x[..., i, j, :]) ** 2, -1)
  return out


@pytest.mark.parametrize("shape", [(5, 7, 3), (2, 4, 6, 3), (1, 1, 3), (1, 5, 3)])
def test_total_variation_matches_numpy(shape):
  x = _rng(10).uniform(size=shape).astype(np.float32)
  got = np.asarray(jax.jit(losses.total_variation_loss)(x))
  assert got.shape == shape[:-3]
  np.testing.assert_allclose(got, _np_tv(x), rtol=1e-5, atol=1e-7)


def test_total_variation_of_constant_and_checkerboard():
  tv = jax.jit(losses.total_variation_loss)
  assert float(tv(jnp.full((4, 5, 3), 0.3))) == 0.0
  board = (np.indices((4, 5)).sum(0) % 2).astype(np.float32)[..., None]
  board = np.repeat(board, 3, -1)
  # Every one of the 3·(4·4 + 3·5) neighbour pairs differs by exactly 1.
  assert float(tv(board)) == pytest.approx(3 * (4 * 4 + 3 * 5))


# --- vmap ----------------------------------------------------------------------


def test_losses_vmap_equals_loop():
  rng = _rng(11)
  f = rng.normal(size=(3, 4, 5, 6)).astype(np.float32)
  p = rng.normal(size=(3, 4, 5, 6)).astype(np.float32)
  g = rng.normal(size=(3, 6, 6)).astype(np.float32)
  a = rng.normal(size=(3, 6, 6)).astype(np.float32)
  cases = [
      (losses.content_loss, (f, p)),
      (functools.partial(losses.gram_loss, normalization="paper"), (g, a)),
      (functools.partial(losses.gram_loss, normalization="notes"), (g, a)),
      (losses.total_variation_loss, (f,)),
      (lambda x, t: losses.gram_loss(statistics.gram_matrix(x), t), (f, a)),
  ]
  for fn, args in cases:
    batched = np.asarray(jax.jit(jax.vmap(fn))(*args))
    single = jax.jit(fn)
    loop = np.array([float(single(*(x[i] for x in args))) for i in range(3)])
    assert batched.shape == (3,)
    np.testing.assert_allclose(batched, loop, rtol=1e-6)


# --- gradients -----------------------------------------------------------------


def _directional_fd(fn, x, v, eps):
  return (fn(x + eps * v) - fn(x - eps * v)) / (2 * eps)


@pytest.fixture
def x64():
  """float64 for this test only; the flag is restored afterwards."""
  with jax.enable_x64(True):
    yield


def _grad_cases(rng):
  f = rng.normal(size=(4, 5, 3))
  p = rng.normal(size=(4, 5, 3))
  a = statistics.gram_matrix(jnp.asarray(rng.normal(size=(6, 2, 3))))
  return {
      "content": (lambda x: losses.content_loss(x, jnp.asarray(p)), f),
      "gram_paper": (lambda x: losses.gram_loss(
          statistics.gram_matrix(x), a, normalization="paper"), f),
      "gram_notes": (lambda x: losses.gram_loss(
          statistics.gram_matrix(x), a, normalization="notes"), f),
      "gram_raw": (lambda x: losses.gram_loss(
          statistics.gram_matrix(x, normalize=False), a), f),
      "tv": (losses.total_variation_loss, f),
  }


@pytest.mark.parametrize(
    "name", ["content", "gram_paper", "gram_notes", "gram_raw", "tv"])
def test_gradients_match_finite_differences(x64, name):
  rng = _rng(12)
  fn, x = _grad_cases(rng)[name]
  x = jnp.asarray(x, jnp.float64)
  assert x.dtype == jnp.float64
  fn = jax.jit(fn)
  grad = jax.jit(jax.grad(fn))(x)
  assert grad.dtype == jnp.float64
  for k in range(3):
    v = jnp.asarray(rng.normal(size=x.shape))
    fd = float(_directional_fd(fn, x, v, 1e-5))
    an = float(jnp.vdot(grad, v))
    np.testing.assert_allclose(an, fd, rtol=1e-7, atol=1e-9)
  # And jax's own checker, both modes, second order.
  jax.test_util.check_grads(fn, (x,), order=2, modes=("fwd", "rev"))


def test_x64_fixture_restores_flag():
  assert jnp.zeros(1).dtype == jnp.float32


def test_content_loss_weighted_by_position_against_numpy():
  """``½ Σ_p w_p Σ_c (F − P)²`` (a tile's owned share, nst_jax.tiling):
  ones give the plain loss, a 0/1 split adds up to it."""
  rng = np.random.default_rng(3)
  f = rng.normal(size=(5, 7, 4)).astype(np.float32)
  p = rng.normal(size=(5, 7, 4)).astype(np.float32)
  w = rng.uniform(size=(5, 7)).astype(np.float32)
  want = 0.5 * np.sum(w[..., None] * (f - p) ** 2)
  got = jax.jit(losses.content_loss)(f, p, w)
  np.testing.assert_allclose(float(got), want, rtol=1e-5)
  plain = float(losses.content_loss(f, p))
  np.testing.assert_allclose(float(losses.content_loss(f, p, np.ones((5, 7),
                                                       np.float32))),
                             plain, rtol=1e-6)
  left = np.zeros((5, 7), np.float32)
  left[:, :3] = 1
  parts = (float(losses.content_loss(f, p, left))
           + float(losses.content_loss(f, p, 1 - left)))
  np.testing.assert_allclose(parts, plain, rtol=1e-5)
