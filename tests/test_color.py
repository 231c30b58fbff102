"""Tests of nst_jax.color (Gatys et al. 2016, "Preserving Color in Neural
Artistic Style Transfer").

References are float64 numpy/scipy written from the paper's formulas and the
standards' matrices (not from the library code); the jax path of the colour
conversions goes through ``jax.jit``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from nst_jax import color


def _rng(seed=0):
  return np.random.default_rng(seed)


def _image(seed, shape=(12, 9), lo=0.0, hi=1.0):
  return _rng(seed).uniform(lo, hi, size=(*shape, 3)).astype(np.float32)


def _mixed(seed, shape, mix):
  """Mid-range image with correlated channels: 0.5 + (u @ mix), u ~ U(-1, 1)."""
  u = _rng(seed).uniform(-1.0, 1.0, size=(shape[0] * shape[1], 3))
  return (0.5 + u @ np.asarray(mix)).reshape(*shape, 3).astype(np.float32)


def _mean_cov(image):
  x = np.asarray(image, np.float64).reshape(-1, 3)
  mu = x.mean(0)
  return mu, (x - mu).T @ (x - mu) / len(x)


# --- colour spaces -------------------------------------------------------------

# Hand-written from the defining equations (FCC YIQ; BT.601 full-range YCbCr).
_PRIMARIES = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [0, 0, 0]],
                      np.float32)
_EXPECTED = {
    "yiq": [[0.299, 0.596, 0.211], [0.587, -0.274, -0.523],
            [0.114, -0.322, 0.312], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
    "ycbcr": [[0.299, 0.331264, 1.0], [0.587, 0.168736, 0.081312],
              [0.114, 1.0, 0.418688], [1.0, 0.5, 0.5], [0.0, 0.5, 0.5]],
}


@pytest.mark.parametrize("space", color.COLOR_SPACES)
def test_primaries_against_hand_values(space):
  got = color.rgb_to_luma_chroma(_PRIMARIES.reshape(1, 5, 3), space)
  assert got.dtype == np.float32 and got.shape == (1, 5, 3)
  np.testing.assert_allclose(got[0], _EXPECTED[space], atol=1e-6)
  back = color.luma_chroma_to_rgb(np.asarray(_EXPECTED[space], np.float32), space)
  np.testing.assert_allclose(back, _PRIMARIES, atol=1e-6)


@pytest.mark.parametrize("space", color.COLOR_SPACES)
def test_round_trip(space):
  image = _image(1, (17, 11))
  ycc = color.rgb_to_luma_chroma(image, space)
  np.testing.assert_allclose(color.luma_chroma_to_rgb(ycc, space), image,
                             atol=1e-6)
  # And the other way: any triple (even outside the gamut) comes back.
  ycc = _rng(2).uniform(-0.5, 1.5, size=(5, 4, 3)).astype(np.float32)
  rgb = color.luma_chroma_to_rgb(ycc, space)
  assert rgb.min() < 0 or rgb.max() > 1  # not clipped
  np.testing.assert_allclose(color.rgb_to_luma_chroma(rgb, space), ycc,
                             atol=1e-6)


@pytest.mark.parametrize("space", color.COLOR_SPACES)
def test_jax_path_under_jit_matches_numpy(space):
  image = _image(3, (6, 7))
  fwd = jax.jit(lambda x: color.rgb_to_luma_chroma(x, space))
  got = fwd(jnp.asarray(image))
  assert isinstance(got, jax.Array) and got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got),
                             color.rgb_to_luma_chroma(image, space), atol=1e-6)
  back = jax.jit(lambda y: color.luma_chroma_to_rgb(y, space))(got)
  np.testing.assert_allclose(np.asarray(back), image, atol=1e-6)
  lum = jax.jit(color.luminance)(jnp.asarray(image))
  np.testing.assert_allclose(np.asarray(lum), color.luminance(image), atol=1e-6)


def test_luminance_of_grey_and_formula():
  grey = np.full((3, 4, 3), 0.37, np.float32)
  np.testing.assert_allclose(color.luminance(grey), np.full((3, 4), 0.37),
                             atol=1e-7)
  image = _image(4)
  x = image.astype(np.float64)
  want = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
  got = color.luminance(image)
  assert got.shape == image.shape[:2]
  np.testing.assert_allclose(got, want, atol=1e-7)


def test_unknown_space_raises():
  with pytest.raises(ValueError, match="yiq.*ycbcr"):
    color.rgb_to_luma_chroma(_image(0), "lab")
  with pytest.raises(ValueError, match="yiq.*ycbcr"):
    color.luma_chroma_to_rgb(_image(0), "hsv")
  with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
    color.rgb_to_luma_chroma(np.zeros((4, 4, 4), np.float32))


# --- luminance-only transfer ---------------------------------------------------


def test_match_luminance_moments_and_affine():
  style = _rng(5).uniform(0.0, 1.0, size=(20, 15)) ** 2
  content = _rng(6).uniform(0.2, 0.6, size=(11, 13))
  got = color.match_luminance(style.astype(np.float32), content)
  assert got.dtype == np.float32 and got.shape == style.shape
  np.testing.assert_allclose(got.mean(), content.mean(), atol=1e-5)
  np.testing.assert_allclose(got.std(), content.std(), atol=1e-5)
  # Affine and increasing: got = a·style + b with a > 0, to float32 rounding.
  a, b = np.polyfit(style.ravel(), got.ravel().astype(np.float64), 1)
  assert a > 0
  np.testing.assert_allclose(got, a * style + b, atol=1e-6)
  want = (content.std() / style.std()) * (style - style.mean()) + content.mean()
  np.testing.assert_allclose(got, want, atol=1e-6)


def test_match_luminance_constant_style():
  content = _rng(7).uniform(size=(5, 6))
  got = color.match_luminance(np.full((4, 4), 0.1, np.float32), content)
  assert np.all(np.isfinite(got))
  np.testing.assert_allclose(got, np.full((4, 4), content.mean()), atol=1e-7)


def test_luminance_images():
  content = _image(8, (10, 12), 0.3, 0.7)
  styles = [_image(9, (7, 5), 0.2, 0.8), _image(10, (9, 9), 0.4, 0.6)]
  grey_c, grey_s = color.luminance_images(content, styles, "yiq")
  y_c = color.luminance(content)
  assert grey_c.shape == content.shape and grey_c.dtype == np.float32
  for k in range(3):
    np.testing.assert_array_equal(grey_c[..., k], y_c)
  assert len(grey_s) == 2
  for style, grey in zip(styles, grey_s):
    assert grey.shape == style.shape and grey.dtype == np.float32
    np.testing.assert_array_equal(grey[..., 0], grey[..., 2])
    matched = color.match_luminance(color.luminance(style), y_c)
    assert matched.min() > 0 and matched.max() < 1  # no clipping happened
    np.testing.assert_allclose(grey[..., 0], matched, atol=1e-7)
    np.testing.assert_allclose(grey[..., 0].mean(), y_c.mean(), atol=1e-5)
    np.testing.assert_allclose(grey[..., 0].std(), y_c.std(), atol=1e-5)


@pytest.mark.parametrize("space", color.COLOR_SPACES)
def test_combine_luminance_keeps_content_chroma(space):
  content = _image(11, (13, 8), 0.35, 0.65)
  result = _image(12, (13, 8), 0.35, 0.65)
  got = color.combine_luminance(result, content, space)
  assert got.shape == content.shape and got.dtype == np.float32
  assert got.min() > 0 and got.max() < 1  # no clipping happened
  ycc_got = color.rgb_to_luma_chroma(got, space)
  ycc_c = color.rgb_to_luma_chroma(content, space)
  assert np.abs(ycc_got[..., 1] - ycc_c[..., 1]).mean() < 1e-6
  assert np.abs(ycc_got[..., 2] - ycc_c[..., 2]).mean() < 1e-6
  np.testing.assert_allclose(ycc_got[..., 0], color.luminance(result), atol=1e-6)
  # A grey content (zero chroma) gives back a grey image.
  grey = np.repeat(content[..., :1], 3, axis=-1)
  out = color.combine_luminance(result, grey, space)
  np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-6)


def test_combine_luminance_clips_and_checks_shapes():
  # White luma with saturated chroma lies outside the RGB gamut: clipped.
  content = np.tile(np.eye(3, dtype=np.float32), (2, 1, 1))    # (2, 3, 3)
  white = np.ones_like(content)
  ycc = color.rgb_to_luma_chroma(content, "yiq")
  ycc[..., 0] = 1.0
  unclipped = color.luma_chroma_to_rgb(ycc, "yiq")
  assert unclipped.max() > 1.1
  out = color.combine_luminance(white, content, "yiq")
  np.testing.assert_allclose(out, np.clip(unclipped, 0, 1), atol=1e-6)
  with pytest.raises(ValueError, match="same shape"):
    color.combine_luminance(_image(0, (4, 4)), _image(0, (4, 5)))


# --- colour histogram matching -------------------------------------------------

_MIX_S = [[0.10, 0.03, 0.00], [0.02, 0.08, 0.04], [0.00, -0.03, 0.12]]
_MIX_C = [[0.12, -0.04, 0.02], [0.05, 0.09, 0.00], [0.01, 0.04, 0.07]]


@pytest.mark.parametrize("transform", ["sqrt", "cholesky"])
def test_histogram_matches_mean_and_covariance(transform):
  style = _mixed(13, (30, 20), _MIX_S)
  content = _mixed(14, (17, 25), _MIX_C)
  got = color.match_color(style, content, mode="histogram", transform=transform)
  assert got.shape == style.shape and got.dtype == np.float32
  assert got.min() > 0 and got.max() < 1  # no clipping happened
  mu_g, cov_g = _mean_cov(got)
  mu_c, cov_c = _mean_cov(content)
  np.testing.assert_allclose(mu_g, mu_c, atol=1e-5)
  np.testing.assert_allclose(cov_g, cov_c, atol=1e-4)  # eps·I shrinks Σ a bit
  # Without the regulariser the match is exact up to rounding.
  exact = color.match_color(style, content, transform=transform, eps=1e-12)
  np.testing.assert_allclose(exact.mean((0, 1)), mu_c, atol=1e-6)
  np.testing.assert_allclose(_mean_cov(exact)[1], cov_c,
                             atol=1e-4 * np.abs(cov_c).max())
  # Against the paper's A and b computed with scipy (eps as the default).
  mu_s, cov_s = _mean_cov(style)
  cov_s = cov_s + 1e-5 * np.eye(3)
  if transform == "sqrt":
    a = scipy.linalg.sqrtm(cov_c).real @ np.linalg.inv(scipy.linalg.sqrtm(cov_s).real)
  else:
    a = (scipy.linalg.cholesky(cov_c + 1e-5 * np.eye(3), lower=True)
         @ np.linalg.inv(scipy.linalg.cholesky(cov_s, lower=True)))
  x = style.astype(np.float64).reshape(-1, 3)
  want = x @ a.T + (mu_c - a @ mu_s)
  np.testing.assert_allclose(got.reshape(-1, 3), want, atol=1e-6)


def test_histogram_variants_differ_and_self_match_is_identity():
  style = _mixed(15, (20, 20), _MIX_S)
  content = _mixed(16, (20, 20), _MIX_C)
  g1 = color.match_color(style, content, transform="sqrt")
  g2 = color.match_color(style, content, transform="cholesky")
  assert np.abs(g1 - g2).max() > 1e-3
  # Matching an image to itself is the identity (up to the eps shrinkage).
  np.testing.assert_allclose(color.match_color(content, content), content,
                             atol=1e-3)


@pytest.mark.parametrize("transform", ["sqrt", "cholesky"])
@pytest.mark.parametrize("mode", ["histogram", "cdf"])
def test_flat_images_do_not_produce_nan(mode, transform):
  flat = np.full((6, 5, 3), 0.4, np.float32)
  content = _image(17, (4, 7))
  got = color.match_color(flat, content, mode=mode, transform=transform)
  assert np.all(np.isfinite(got)) and got.min() >= 0 and got.max() <= 1
  if mode == "histogram":  # every pixel goes to the content's mean
    np.testing.assert_allclose(got, np.broadcast_to(content.mean((0, 1)), got.shape),
                               atol=1e-4)
  # A flat content: every output pixel is (nearly) its colour; Cholesky
  # regularises Σ_c by eps·I, which leaves a spread of order sqrt(eps).
  got = color.match_color(_image(18), flat, mode=mode, transform=transform)
  assert np.all(np.isfinite(got))
  atol = 1e-2 if (mode, transform) == ("histogram", "cholesky") else 1e-6
  np.testing.assert_allclose(got, np.full(got.shape, 0.4), atol=atol)


def test_cdf_same_size_is_a_permutation_of_the_content():
  style = _image(19, (14, 9)) ** 3
  content = _image(20, (9, 14), 0.2, 0.9)
  got = color.match_color(style, content, mode="cdf")
  assert got.shape == style.shape and got.dtype == np.float32
  for k in range(3):
    np.testing.assert_array_equal(np.sort(got[..., k].ravel()),
                                  np.sort(content[..., k].ravel()))
    # Order preserving: the style's ranking survives.
    np.testing.assert_array_equal(np.argsort(got[..., k].ravel()),
                                  np.argsort(style[..., k].ravel()))


def test_cdf_different_sizes_hits_content_quantiles():
  style = _image(21, (7, 6))
  content = _image(22, (13, 11)) ** 2
  got = color.match_color(style, content, mode="cdf")
  n = style.shape[0] * style.shape[1]
  for k in range(3):
    want = np.quantile(content[..., k].astype(np.float64), np.linspace(0, 1, n))
    np.testing.assert_allclose(np.sort(got[..., k].ravel()), want, atol=1e-7)


def test_cdf_ties_are_deterministic():
  style = np.round(_image(23, (10, 10)) * 4) / 4  # five levels: many ties
  content = _image(24, (8, 8))
  got = color.match_color(style, content, mode="cdf")
  np.testing.assert_array_equal(got, color.match_color(style, content, mode="cdf"))
  for k in range(3):
    s, g = style[..., k].ravel(), got[..., k].ravel()
    for level in np.unique(s):
      assert np.unique(g[s == level]).size == 1  # equal inputs, equal outputs
    assert np.all(np.diff(g[np.argsort(s, kind="stable")]) >= 0)
  # A tie group takes the content quantile at its mid-rank: 30 pixels at 0.2
  # (ranks 0..29) and 70 at 0.9 (ranks 30..99) of n = 100.
  two = np.where(np.arange(100) < 30, 0.2, 0.9).reshape(10, 10)
  got = color.match_color(np.stack([two] * 3, -1), content, mode="cdf")
  for k in range(3):
    q = np.quantile(content[..., k].astype(np.float64), [14.5 / 99, 64.5 / 99])
    np.testing.assert_allclose(got[..., k].ravel()[[0, 99]], q, atol=1e-7)


def test_none_returns_a_copy_of_the_style():
  style = _image(25)
  got = color.match_color(style, _image(26, (3, 3)), mode="none")
  np.testing.assert_array_equal(got, style)
  assert got.dtype == np.float32 and got is not style
  got[0, 0, 0] = -1.0
  assert style[0, 0, 0] != -1.0
  np.testing.assert_array_equal(
      color.match_color(style.astype(np.float64), style, mode="none"), style)


@pytest.mark.parametrize("shape", [(4, 4), (4, 4, 4), (0, 5, 3), (2, 4, 4, 3)])
def test_bad_shapes_raise(shape):
  bad = np.zeros(shape, np.float32)
  with pytest.raises(ValueError, match=r"\(H, W, 3\).*got shape"):
    color.match_color(bad, _image(0))
  with pytest.raises(ValueError, match=r"\(H, W, 3\).*got shape"):
    color.match_color(_image(0), bad, mode="cdf")
  with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
    color.luminance_images(_image(0), [bad])
  with pytest.raises(ValueError, match="sequence of images"):
    color.luminance_images(_image(0), _image(1))


def test_bad_modes_raise():
  with pytest.raises(ValueError, match="none.*histogram.*cdf"):
    color.match_color(_image(0), _image(1), mode="reinhard")
  with pytest.raises(ValueError, match="sqrt.*cholesky"):
    color.match_color(_image(0), _image(1), transform="svd")
  with pytest.raises(ValueError, match="at least one pixel"):
    color.match_luminance(np.zeros((0,)), np.ones(3))
