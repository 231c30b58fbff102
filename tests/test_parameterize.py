"""nst_jax.parameterize against numpy float64 references written here: the
bilinear resampling matrices (PyTorch's two corner conventions), the
Laplacian pyramid STROTSS optimises and its inverse, the parameterisation
values, jit and vmap paths, gradients through the pyramid, bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax import parameterize as pz
from nst_jax.errors import NSTError


def _resize_1d(x, n_out, align_corners):
  """Float64 loops along axis 0, as PyTorch's upsample_bilinear2d reads."""
  n_in = x.shape[0]
  out = np.zeros((n_out,) + x.shape[1:])
  for i in range(n_out):
    if align_corners:
      s = i * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    else:
      s = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
    lo = min(int(s), n_in - 1)
    hi = lo + 1 if lo < n_in - 1 else lo
    a = s - lo
    out[i] = (1 - a) * x[lo] + a * x[hi]
  return out


def _resize(x, size, align_corners):
  y = _resize_1d(x, size[0], align_corners)
  return np.swapaxes(_resize_1d(np.swapaxes(y, 0, 1), size[1],
                                align_corners), 0, 1)


def _pyramid_reference(x, levels, align_corners=True):
  out, cur = [], x
  for _ in range(levels):
    h, w = cur.shape[:2]
    small = _resize(cur, (max(h // 2, 1), max(w // 2, 1)), align_corners)
    out.append(cur - _resize(small, (h, w), align_corners))
    cur = small
  return out + [cur]


def _image(h, w, seed, c=3):
  return np.random.default_rng(seed).uniform(size=(h, w, c))


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("n_in, n_out", [(7, 3), (8, 4), (3, 7), (5, 1),
                                         (1, 4), (6, 6)])
def test_resize_matrix_against_pytorch_rules(n_in, n_out, align_corners):
  x = np.random.default_rng(n_in * 10 + n_out).normal(size=(n_in, 2))
  m = pz.resize_matrix(n_in, n_out, align_corners=align_corners)
  assert m.shape == (n_out, n_in)
  np.testing.assert_allclose(m.astype(np.float64) @ x,
                             _resize_1d(x, n_out, align_corners), atol=1e-6)


def test_resize_upsampling_equals_jax_image_resize():
  # An independent implementation: half-pixel centres, edge renormalised.
  x = jnp.asarray(_image(5, 4, 0), jnp.float32)
  np.testing.assert_allclose(
      np.asarray(pz.resize_bilinear(x, (10, 8), align_corners=False)),
      np.asarray(jax.image.resize(x, (10, 8, 3), "bilinear")), atol=1e-6)


def test_laplacian_pyramid_against_numpy_and_back():
  x = _image(37, 23, 1)
  pyramid = jax.jit(pz.laplacian_pyramid, static_argnums=1)(
      jnp.asarray(x, jnp.float32), 5)
  want = _pyramid_reference(x, 5)
  assert [p.shape for p in pyramid] == [w.shape for w in want] == [
      (37, 23, 3), (18, 11, 3), (9, 5, 3), (4, 2, 3), (2, 1, 3), (1, 1, 3)]
  for got, ref in zip(pyramid, want):
    np.testing.assert_allclose(np.asarray(got), ref, atol=2e-6)
  back = jax.jit(pz.synthesize_pyramid)(pyramid)
  np.testing.assert_allclose(np.asarray(back), x, atol=2e-6)


def test_nnst_pyramid_has_half_pixel_corners():
  """NNST's pyramid (official utils/imagePyramid.py: F.interpolate's
  default, align_corners=False) against the numpy reference, and back."""
  x = _image(24, 20, 2)
  pyramid = pz.laplacian_pyramid(jnp.asarray(x, jnp.float32), 3,
                                 align_corners=False)
  for got, ref in zip(pyramid, _pyramid_reference(x, 3, False)):
    np.testing.assert_allclose(np.asarray(got), ref, atol=2e-6)
  assert np.abs(np.asarray(pyramid[1]) - _pyramid_reference(x, 3)[1]).max() \
      > 1e-3   # the corners matter
  back = pz.synthesize_pyramid(pyramid, align_corners=False)
  np.testing.assert_allclose(np.asarray(back), x, atol=2e-6)


def test_parameterizations_round_trip_under_jit_and_vmap():
  images = jnp.asarray(np.stack([_image(16, 12, s) for s in range(3)]),
                       jnp.float32)
  for param in (pz.PIXELS, pz.laplacian(3), pz.laplacian(0)):
    codes = jax.jit(jax.vmap(param.encode))(images)
    back = jax.jit(jax.vmap(param.decode))(codes)
    np.testing.assert_allclose(np.asarray(back), np.asarray(images),
                               atol=2e-6)
  assert len(pz.laplacian(3).encode(images[0])) == 4
  assert pz.laplacian().encode(images[0])[-1].shape == (1, 1, 3)  # 5 levels
  first = images[0]
  assert pz.PIXELS.encode(first) is first and pz.PIXELS.decode(first) is first


def test_gradient_through_the_pyramid_matches_finite_differences():
  x = _image(6, 5, 2, c=1)
  weights = _image(6, 5, 3, c=1)
  codes64 = _pyramid_reference(x, 2)
  codes = tuple(jnp.asarray(c, jnp.float32) for c in codes64)

  def loss(cs):
    return jnp.sum(jnp.asarray(weights, jnp.float32)
                   * pz.synthesize_pyramid(cs) ** 2)
  grads = jax.grad(loss)(codes)

  def synth64(cs):  # float64 reference synthesis
    cur = cs[-1]
    for band in reversed(cs[:-1]):
      cur = band + _resize(cur, band.shape[:2], True)
    return cur
  eps = 1e-6
  for level in range(3):
    numeric = np.zeros_like(codes64[level])
    for idx in np.ndindex(numeric.shape):
      plus = [c.copy() for c in codes64]
      minus = [c.copy() for c in codes64]
      plus[level][idx] += eps
      minus[level][idx] -= eps
      numeric[idx] = (np.sum(weights * synth64(plus) ** 2)
                      - np.sum(weights * synth64(minus) ** 2)) / (2 * eps)
    np.testing.assert_allclose(np.asarray(grads[level]), numeric, atol=1e-4)


def test_bad_inputs():
  for levels in (-1, 1.5, "5"):
    with pytest.raises(NSTError, match="`levels`"):
      pz.laplacian(levels)
  with pytest.raises(NSTError, match="`levels`"):
    pz.laplacian_pyramid(jnp.zeros((4, 4, 3)), -2)
  with pytest.raises(ValueError, match=r"\(H, W, C\)"):
    pz.resize_bilinear(jnp.zeros((4, 4)), (2, 2), align_corners=True)
  with pytest.raises(ValueError, match="positive"):
    pz.resize_matrix(0, 3, align_corners=False)
