"""OkLab and NNST's colour transfer (nst_jax.oklab) against float64 numpy
references written here from the sources: Ottosson's blog post (matrices and
its table of XYZ → OkLab pairs), IEC 61966-2-1, and the official NNST
``utils/colorization.py`` / ``utils/zca.py``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax import oklab
from nst_jax.errors import NSTError

# Ottosson, "A perceptual color space for image processing": linear sRGB ->
# LMS, cube root, -> Lab; and the inverse pair.
M1 = np.array([[0.4122214708, 0.5363325363, 0.0514459929],
               [0.2119034982, 0.6806995451, 0.1073969566],
               [0.0883024619, 0.2817188376, 0.6299787005]])
M2 = np.array([[0.2104542553, 0.7936177850, -0.0040720468],
               [1.9779984951, -2.4285922050, 0.4505937099],
               [0.0259040371, 0.7827717662, -0.8086757660]])
# XYZ (D65) -> linear sRGB, from the sRGB primaries (IEC 61966-2-1), to ten
# digits; used only to feed the blog's XYZ table through linear sRGB.
XYZ_TO_RGB = np.array([[3.2409699419, -1.5373831776, -0.4986107603],
                       [-0.9692436363, 1.8759675015, 0.0415550574],
                       [0.0556300797, -0.2039769589, 1.0569715142]])
# The blog's table "XYZ -> OkLab" (three decimals).
PAIRS = [((0.950, 1.000, 1.089), (1.000, 0.000, 0.000)),
         ((1.000, 0.000, 0.000), (0.450, 1.236, -0.019)),
         ((0.000, 1.000, 0.000), (0.922, -0.671, 0.263)),
         ((0.000, 0.000, 1.000), (0.153, -1.415, -0.449))]


def np_to_oklab(rgb):
  return np.cbrt(rgb @ M1.T) @ M2.T


def np_from_oklab(lab):
  return (lab @ np.linalg.inv(M2).T) ** 3 @ np.linalg.inv(M1).T


def np_decode(x):
  return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def np_encode(x):
  return np.where(x <= 0.0031308, 12.92 * x,
                  1.055 * np.abs(x) ** (1 / 2.4) - 0.055)


def np_zca(x, y, eps=1e-4):
  """Official utils/zca.py zca, in float64 with SVD as it does it."""
  mx, my = x.mean(0), y.mean(0)
  cx = (x - mx).T @ (x - mx) / len(x)
  cy = (y - my).T @ (y - my) / len(y)
  uc, sc, _ = np.linalg.svd(cx + np.eye(len(cx)) * eps)
  us, ss, _ = np.linalg.svd(cy + np.eye(len(cy)) * eps)
  white = uc @ ((uc.T @ (x - mx).T) / np.sqrt(np.clip(sc, 1e-8, 1e8))[:, None])
  return (us @ ((us.T @ white) * np.sqrt(np.clip(ss, 1e-8, 1e8))[:, None])).T + my


def np_bilateral(values, guide, iterations=5):
  """Official utils/colorization.py filter, loops over the 3x3 window."""
  h, w = guide.shape
  g = np.pad(guide, 1, mode="edge")
  cur = values.copy()
  for _ in range(iterations):
    p = np.pad(cur, ((1, 1), (1, 1), (0, 0)), mode="edge")
    num, den = np.zeros_like(cur), np.zeros((h, w, 1))
    for i in range(3):
      for j in range(3):
        wt = np.exp(-np.abs(guide - g[i:i + h, j:j + w]) * 5.0) ** 2
        num += p[i:i + h, j:j + w] * wt[..., None]
        den += wt[..., None]
    cur = num / den
  return cur


def np_color_match(c, s, o, moment_only=False, decode=False):
  """Official utils/colorization.py color_match (float64, one image)."""
  c, s, o = (np.clip(np.asarray(v, np.float64), 0, 1) for v in (c, s, o))
  if decode:
    c, s, o = np_decode(c), np_decode(s), np_decode(o)
  x, y, o = np_to_oklab(c), np_to_oklab(s), np_to_oklab(o)
  yf = y.reshape(-1, 3)
  lo, hi = yf.min(0), yf.max(0)
  new = np.clip(o, lo, hi)
  cov_ab = np.cov(yf[:, 1:].T, bias=True)
  h, w, _ = x.shape
  if moment_only or np.abs(cov_ab).max() < 6e-5:
    new[..., 1:] = o[..., 1:]
    new = np_zca(new.reshape(-1, 3), yf).reshape(h, w, 3)
  else:
    ab = np_zca(x[..., 1:].reshape(-1, 2), yf[:, 1:]).reshape(h, w, 2)
    new[..., 1:] = np_bilateral(ab, new[..., 0])
  rgb = np_from_oklab(np.clip(new, lo, hi))
  if decode:
    rgb = np_encode(np.clip(rgb, 0, 1))
  return np.clip(rgb, 0, 1)


# One compilation per settings value and shape, shared by the tests.
color_transfer = jax.jit(oklab.color_transfer, static_argnums=3)
DEFAULT = oklab.ColorTransfer()


def _rgb(shape, seed, low=0.0, high=1.0):
  return np.random.default_rng(seed).uniform(low, high, size=shape)


@pytest.mark.parametrize("xyz,lab", PAIRS)
def test_published_pairs(xyz, lab):
  got = oklab.linear_srgb_to_oklab(XYZ_TO_RGB @ np.array(xyz))
  np.testing.assert_allclose(got, lab, atol=1e-3)


def test_white_and_black():
  np.testing.assert_allclose(oklab.srgb_to_oklab(np.ones(3)), [1, 0, 0],
                             atol=2e-7)
  np.testing.assert_allclose(oklab.srgb_to_oklab(np.zeros(3)), [0, 0, 0],
                             atol=0)


def test_conversions_against_numpy_and_round_trips():
  rgb = _rgb((5, 7, 3), 0, -0.2, 1.3)   # out of gamut too: no clamping
  np.testing.assert_allclose(oklab.linear_srgb_to_oklab(rgb),
                             np_to_oklab(rgb), rtol=1e-5, atol=1e-6)
  lab = np_to_oklab(rgb)
  np.testing.assert_allclose(oklab.oklab_to_linear_srgb(lab), rgb,
                             rtol=1e-5, atol=2e-6)
  np.testing.assert_allclose(np_from_oklab(lab), rgb, atol=1e-9)
  srgb = _rgb((4, 6, 3), 1)
  np.testing.assert_allclose(oklab.srgb_to_linear(srgb), np_decode(srgb),
                             rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(oklab.linear_to_srgb(np_decode(srgb)), srgb,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(oklab.oklab_to_srgb(oklab.srgb_to_oklab(srgb)),
                             srgb, atol=1e-5)
  # The two branches of the transfer function meet.
  edge = np.array([0.04045 - 1e-6, 0.04045 + 1e-6, 0.0031308])
  np.testing.assert_allclose(oklab.srgb_to_linear(edge[:2]),
                             np_decode(edge[:2]), rtol=1e-5)
  assert abs(float(oklab.srgb_to_linear(edge[1]) -
                   oklab.srgb_to_linear(edge[0]))) < 1e-6


def test_conversions_jit_vmap_and_gradient():
  rgb = jnp.asarray(_rgb((3, 4, 5, 3), 2, 0.05, 1.0), jnp.float32)
  eager = oklab.linear_srgb_to_oklab(rgb)
  np.testing.assert_array_equal(jax.jit(oklab.linear_srgb_to_oklab)(rgb),
                                eager)
  np.testing.assert_allclose(jax.vmap(oklab.linear_srgb_to_oklab)(rgb),
                             eager, rtol=1e-6, atol=1e-7)
  # d L / d rgb against central differences of the float64 reference.
  x = np.array([0.3, 0.5, 0.2])
  grad = jax.grad(lambda v: oklab.linear_srgb_to_oklab(v)[0])(
      jnp.asarray(x, jnp.float32))
  h = 1e-6
  fd = [(np_to_oklab(x + h * e)[0] - np_to_oklab(x - h * e)[0]) / (2 * h)
        for e in np.eye(3)]
  np.testing.assert_allclose(grad, fd, rtol=1e-4)


def test_zca_against_official_formula():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(200, 2)) @ np.array([[1.0, 0.3], [0.0, 0.2]]) + 0.5
  y = rng.normal(size=(150, 2)) @ np.array([[0.1, -0.05], [0.02, 0.3]]) - 1
  got = oklab.zca_transfer(jnp.asarray(x, jnp.float32),
                           jnp.asarray(y, jnp.float32))
  want = np_zca(x, y)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  # The result carries the style's moments (up to the 1e-4 regulariser).
  np.testing.assert_allclose(want.mean(0), y.mean(0), atol=1e-12)
  np.testing.assert_allclose(np.cov(want.T, bias=True),
                             np.cov(y.T, bias=True), atol=2e-4)
  with pytest.raises(ValueError, match="zca_transfer"):
    oklab.zca_transfer(jnp.zeros((4, 2)), jnp.zeros((4, 3)))


def test_cross_bilateral_against_official_loops():
  rng = np.random.default_rng(4)
  guide = rng.uniform(size=(6, 9)) * 0.05
  guide[:, 5:] += 1.0                     # an edge in the guide
  values = rng.normal(size=(6, 9, 2))
  got = oklab.cross_bilateral(jnp.asarray(values, jnp.float32),
                              jnp.asarray(guide, jnp.float32))
  np.testing.assert_allclose(got, np_bilateral(values, guide), rtol=1e-5,
                             atol=1e-6)
  # Across the edge (weight < e^-9) little leaks: a 0/1 step stays a step;
  # along it the values are averaged.
  step = np.zeros((6, 9, 1))
  step[:, 5:] = 1.0
  smoothed = np.asarray(oklab.cross_bilateral(
      jnp.asarray(step, jnp.float32), jnp.asarray(guide, jnp.float32)))
  assert smoothed[:, :4].max() < 0.01 and smoothed[:, 6:].min() > 0.99
  assert np.asarray(got).std() < 0.5 * values.std()
  with pytest.raises(ValueError, match="cross_bilateral"):
    oklab.cross_bilateral(jnp.zeros((4, 4, 2)), jnp.zeros((4, 5)))


@pytest.fixture(scope="module")
def images():
  rng = np.random.default_rng(5)
  content = rng.uniform(size=(12, 10, 3))
  style = np.clip(rng.uniform(size=(9, 11, 3)) * [1.0, 0.6, 0.3] + 0.1, 0, 1)
  output = np.clip(content * 0.7 + rng.uniform(size=(12, 10, 3)) * 0.3, 0, 1)
  return content, style, output


@pytest.mark.parametrize("settings", [
    DEFAULT,
    oklab.ColorTransfer(moment_only=True),
    oklab.ColorTransfer(decode_srgb=True)], ids=["official", "moment_only",
                                                 "decode_srgb"])
def test_color_transfer_against_official(images, settings):
  content, style, output = images
  got = color_transfer(*(jnp.asarray(v, jnp.float32) for v in images),
                       settings)
  want = np_color_match(content, style, output, settings.moment_only,
                        settings.decode_srgb)
  np.testing.assert_allclose(got, want, atol=2e-5)


def test_color_transfer_grey_style_takes_moment_path(images):
  content, _, output = images
  grey = np.repeat(_rgb((9, 11, 1), 6), 3, axis=-1)   # a/b covariance 0
  got = color_transfer(*(jnp.asarray(v, jnp.float32)
                         for v in (content, grey, output)), DEFAULT)
  want = np_color_match(content, grey, output)
  np.testing.assert_allclose(got, want, atol=2e-5)
  assert np.ptp(np.asarray(got), axis=-1).max() < 1e-3   # stays grey


def test_color_transfer_vmap_equals_separate_calls(images):
  content, style, output = (jnp.asarray(v, jnp.float32) for v in images)
  contents = jnp.stack([content, content[::-1]])
  outputs = jnp.stack([output, output[:, ::-1]])
  batched = jax.jit(jax.vmap(oklab.color_transfer, in_axes=(0, None, 0)))(
      contents, style, outputs)
  for i in range(2):
    np.testing.assert_allclose(
        batched[i], color_transfer(contents[i], style, outputs[i], DEFAULT),
        atol=1e-6)


def test_bad_inputs(images):
  content, style, output = images
  with pytest.raises(NSTError, match="`output`.*content's shape"):
    oklab.color_transfer(content, style, output[:-1])
  with pytest.raises(NSTError, match="`style`"):
    oklab.color_transfer(content, style[..., :2], output)
  with pytest.raises(NSTError, match="`rgb`"):
    oklab.linear_srgb_to_oklab(np.zeros((4, 2)))
  with pytest.raises(NSTError, match="`lab`"):
    oklab.oklab_to_linear_srgb(np.zeros((4, 4)))
  with pytest.raises(NSTError, match="`iterations`"):
    oklab.ColorTransfer(iterations=-1)
  with pytest.raises(NSTError, match="`eps`"):
    oklab.ColorTransfer(eps=0.0)
