"""Guided statistics (nst_jax.guided): guided Grams against a numpy loop,
one guide of ones is the plain Gram exactly, region weights, guide maps, and
the content-aware representation's guides. A tiny random VGG-16, 32-48 px."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax import guided
from nst_jax import objective
from nst_jax import representations
from nst_jax import statistics
from nst_jax import vgg
from nst_jax.errors import NSTError
from nst_jax.targets import make_targets
from conftest import tiny_vgg16_params
from conftest import random_image as _img

LAYERS = ("relu1_1", "relu2_1")


@pytest.fixture(scope="module")
def params():
  return tiny_vgg16_params()


def _spec(style):
  return objective.Spec(content_layers=("relu2_1",), style_layers=LAYERS,
                        pooling="avg", style=style)


def test_guided_gram_matches_numpy_loop():
  rng = np.random.default_rng(0)
  f = rng.normal(size=(5, 6, 4)).astype(np.float32)
  g = rng.uniform(size=(3, 5, 6)).astype(np.float32)
  g[2] = 0.0   # an empty region gives zeros
  want = np.zeros((3, 4, 4))
  for k in range(3):
    area = 0.0
    for y in range(5):
      for x in range(6):
        area += g[k, y, x]
        for i in range(4):
          for j in range(4):
            want[k, i, j] += g[k, y, x] * f[y, x, i] * f[y, x, j]
    if area > 0:
      want[k] /= area
  got = np.asarray(jax.jit(guided.guided_gram)(f, g))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_ones_guide_is_plain_gram_exactly(params):
  content, styles = _img(32, 32, 1), [_img(40, 24, 2), _img(24, 36, 3)]
  plain_spec = _spec(representations.Gram())
  guides = guided.Guides(np.ones((1, 32, 32), np.float32),
                         tuple(np.ones((1,) + s.shape[:2], np.float32)
                               for s in styles))
  image = _img(32, 32, 4)
  weights = objective.make_weights(plain_spec, content_weight=1.0,
                                   style_weight=1e3, tv_weight=0.0)
  for downsample in guided.DOWNSAMPLES:
    spec = _spec(guided.GuidedGram(downsample=downsample))
    plain = make_targets(params, content, styles, plain_spec)
    masked = make_targets(params, content, styles, spec,
                                    guides=guides)
    for l in LAYERS:
      np.testing.assert_array_equal(masked.style[l]["gram"][:, 0],
                                    plain.style[l])
    a = objective.loss_terms(params, image, plain, weights, plain_spec)
    b = objective.loss_terms(params, image, masked, weights, spec)
    np.testing.assert_array_equal(np.asarray(a["style_layers"]),
                                  np.asarray(b["style_layers"]))


def test_one_cluster_content_aware_is_plain_gram_exactly(params):
  content, styles = _img(32, 32, 1), [_img(40, 24, 2)]
  plain_spec = _spec(representations.Gram())
  image = _img(32, 32, 4)
  weights = objective.make_weights(plain_spec, content_weight=1.0,
                                   style_weight=1e3, tv_weight=0.0)
  plain = make_targets(params, content, styles, plain_spec)
  a = objective.loss_terms(params, image, plain, weights, plain_spec)
  for window in (0, 2):
    spec = _spec(guided.ContentAware(clusters=1, window=window,
                                     guide_layer="relu2_1"))
    ca = make_targets(params, content, styles, spec)
    b = objective.loss_terms(params, image, ca, weights, spec)
    np.testing.assert_array_equal(np.asarray(a["style_layers"]),
                                  np.asarray(b["style_layers"]))


def test_blur_is_section9_sum_of_windowed_grams():
  """Σ_x g(x) G_ij(x) with §9's windowed Grams (statistics.local_gram) equals
  Σ_p (g ⋆ w)(p) F_i F_j inside (a guide zero within s of the border, where
  blur_guides' normalisation does not act)."""
  rng = np.random.default_rng(1)
  s = 2
  f = rng.normal(size=(9, 10, 3)).astype(np.float32)
  g = np.zeros((1, 9, 10), np.float32)
  g[0, 2 * s:-2 * s, 2 * s:-2 * s] = rng.uniform(size=(9 - 4 * s, 10 - 4 * s))
  local = np.asarray(statistics.local_gram(jnp.asarray(f), window=s),
                     np.float64)
  want = np.einsum("yx,yxij->ij", g[0].astype(np.float64), local)
  blurred = np.asarray(guided.blur_guides(jnp.asarray(g), s), np.float64)
  norm = np.asarray(guided.blur_guides(jnp.ones_like(jnp.asarray(g)), s))
  assert np.all(norm == 1.0)   # a constant stays constant
  w = np.asarray(statistics.local_weights(s), np.float64)
  got = np.einsum("yx,yxi,yxj->ij", blurred[0] * w.sum(), f, f)
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_region_weights_share_regions_among_styles():
  area = jnp.asarray([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])   # (S=2, K=3)
  out = jnp.ones((3, 4, 4)).at[2].set(0.0)
  w = np.asarray(guided.region_weights(area, out))
  np.testing.assert_allclose(w, [[2.0, 1.0, 0.0], [0.0, 1.0, 0.0]])


def test_guide_maps():
  g = jnp.zeros((2, 16, 16)).at[0, :, :8].set(1.0).at[1, :, 8:].set(1.0)
  r = np.asarray(guided.resize_guides(g, (4, 4)))
  np.testing.assert_allclose(r.sum(0), 1.0, atol=1e-6)
  np.testing.assert_allclose(r[0, :, 0], 1.0, atol=1e-6)
  e = np.asarray(guided.erode_guides(jnp.asarray(r)))
  assert np.all(e <= r + 1e-7) and e[0, :, 1].max() < r[0, :, 1].max()
  tiny = jnp.zeros((1, 4, 4)).at[0, 1, 1].set(1.0)   # erosion empties it
  np.testing.assert_array_equal(guided.erode_guides(tiny), tiny)


def test_soft_assignments_partition_of_unity():
  rng = np.random.default_rng(2)
  f = np.abs(rng.normal(size=(6, 7, 8))).astype(np.float32)
  c = guided.kmeans_centroids(guided.unit_features(f).reshape(-1, 8), 3)
  g = guided.soft_assignments(f, c, 0.05)
  assert g.shape == (3, 6, 7) and g.dtype == np.float32
  np.testing.assert_allclose(g.sum(0), 1.0, rtol=1e-6)
  assert np.all(guided.soft_assignments(f, c[:1], 0.05) == 1.0)


def test_bad_guides_are_refused(params):
  content, styles = _img(32, 32, 1), [_img(32, 32, 2)]
  with pytest.raises(NSTError, match="does not take them"):
    make_targets(params, content, styles,
                           _spec(representations.Gram()),
                           guides=guided.Guides(np.ones((1, 32, 32)),
                                                (np.ones((1, 32, 32)),)))
  with pytest.raises(NSTError, match="needs guides"):
    make_targets(params, content, styles,
                           _spec(guided.GuidedGram()))
  with pytest.raises(NSTError, match="channels"):
    make_targets(params, content, styles,
                           _spec(guided.GuidedGram()),
                           guides=guided.Guides(np.ones((2, 32, 32)),
                                                (np.ones((1, 32, 32)),)))
  with pytest.raises(NSTError, match="not both"):
    make_targets(params, content, styles,
                           _spec(guided.ContentAware(guide_layer="relu2_1")),
                           guides=guided.Guides(np.ones((1, 32, 32)),
                                                (np.ones((1, 32, 32)),)))


def test_guided_version_for_masks():
  assert guided.guided_version(representations.Gram("notes"), "inside") == (
      guided.GuidedGram("notes", "inside"))
  assert guided.guided_version(representations.Moments()) == (
      guided.GuidedMoments())
  with pytest.raises(NSTError, match="use --style_stat=gram"):
    guided.guided_version(representations.SlicedWasserstein())
  with pytest.raises(NSTError, match="not both"):
    guided.guided_version(guided.ContentAware())


def test_guided_moments_ones_guide_is_moments(params):
  content, styles = _img(32, 32, 1), [_img(40, 24, 2), _img(24, 36, 3)]
  plain_spec = _spec(representations.Moments())
  spec = _spec(guided.GuidedMoments())
  guides = guided.Guides(np.ones((1, 32, 32), np.float32),
                         tuple(np.ones((1, 5, 5), np.float32) for _ in styles))
  image = _img(32, 32, 4)
  weights = objective.make_weights(plain_spec, content_weight=1.0,
                                   style_weight=1e3, tv_weight=0.0)
  plain = make_targets(params, content, styles, plain_spec)
  masked = make_targets(params, content, styles, spec,
                                  guides=guides)
  a = objective.loss_terms(params, image, plain, weights, plain_spec)
  b = objective.loss_terms(params, image, masked, weights, spec)
  np.testing.assert_allclose(np.asarray(b["style_layers"]),
                             np.asarray(a["style_layers"]), rtol=1e-5)
  # two regions: each region's moments against a numpy reference
  f = np.random.default_rng(3).normal(size=(4, 5, 3)).astype(np.float32)
  g = np.zeros((2, 4, 5), np.float32)
  g[0, :, :2], g[1, :, 2:] = 1.0, 0.5
  mean, square = guided.guided_raw_moments(jnp.asarray(f), jnp.asarray(g))
  np.testing.assert_allclose(mean[0], f[:, :2].reshape(-1, 3).mean(0),
                             rtol=1e-5)
  np.testing.assert_allclose(square[1], (f[:, 2:] ** 2).reshape(-1, 3).mean(0),
                             rtol=1e-5)


def _np_region_grams(f, g):
  """``Σ_p g_k F Fᵀ / Σ_p g_k`` per region, float64: ``(h, w, C), (K, h, w)
  → (K, C, C)``."""
  f, g = np.asarray(f, np.float64), np.asarray(g, np.float64)
  return np.einsum("kyx,yxi,yxj->kij", g, f, f) / g.sum(axis=(1, 2))[:, None,
                                                                       None]


def _np_region_moments(f, g):
  """Per region ``(mean, std)`` ``(K, 2, C)`` of the positions weighted by
  ``g_k``, float64 (``statistics.moments_from_raw``'s eps)."""
  f, g = np.asarray(f, np.float64), np.asarray(g, np.float64)
  area = g.sum(axis=(1, 2))[:, None]
  mean = np.einsum("kyx,yxi->ki", g, f) / area
  var = np.einsum("kyx,yxi->ki", g, f ** 2) / area - mean ** 2
  return np.stack([mean, np.sqrt(np.maximum(var, 0) + 1e-8)], axis=1)


def _quarter_split(h, w):
  """Two regions: the left quarter of the columns and the rest."""
  g = np.zeros((2, h, w), np.float32)
  g[0, :, :w // 4], g[1, :, w // 4:] = 1.0, 1.0
  return g


def _unequal_regions():
  """Two style images' features and guides whose regions have unequal
  areas: a hard 1/4 : 3/4 split, and soft guides (a ramp) of areas about
  0.3 and 0.7, with the features of each region on another scale; the
  optimised image's guides at the layer, a half/half split."""
  rng = np.random.default_rng(4)
  f1 = rng.normal(size=(6, 8, 5)).astype(np.float32)
  f1[:, 2:] *= 3.0
  g1 = _quarter_split(6, 8)
  f2 = rng.normal(size=(7, 5, 5)).astype(np.float32) + 1.0
  ramp = np.broadcast_to(np.linspace(0.0, 0.6, 5, dtype=np.float32), (7, 5))
  g2 = np.stack([ramp, 1.0 - ramp])
  out = np.zeros((2, 4, 4), np.float32)
  out[0, :, :2], out[1, :, 2:] = 1.0, 1.0
  return (f1, g1), (f2, g2), out


@pytest.mark.parametrize("rep", [guided.GuidedGram(), guided.GuidedMoments()],
                         ids=["gram", "moments"])
def test_style_regions_of_unequal_area_are_area_normalised(rep):
  """The style side of a guided statistic, ``target(stack of statistic)``,
  divides each region's sums by that region's own area (Gatys et al. 2017
  §4): against numpy per region for regions of 1/4 and 3/4 of a style
  image and for soft guides. (One region, or a one-colour style, has area
  1 and would not tell.)"""
  (f1, g1), (f2, g2), out = _unequal_regions()
  stats = [rep.statistic(jnp.asarray(f), jnp.asarray(g))
           for f, g in ((f1, g1), (f2, g2))]
  target = jax.jit(rep.target)(objective.stack(stats), jnp.asarray(out))
  if isinstance(rep, guided.GuidedGram):
    got, reference = target["gram"], _np_region_grams
  else:
    got, reference = target["moments"], _np_region_moments
  assert got.shape[:2] == (2, 2)
  for s, (f, g) in enumerate(((f1, g1), (f2, g2))):
    np.testing.assert_allclose(np.asarray(got[s]), reference(f, g),
                               rtol=1e-5, atol=1e-5, err_msg=f"style {s}")
  np.testing.assert_array_equal(np.asarray(target["weight"]), np.ones((2, 2)))
  # A region's target does not depend on how much of the image it covers:
  # the same features in a region twice as wide give the same statistics.
  wide = np.concatenate([f1[:, :2], f1[:, :2], f1[:, 2:]], axis=1)
  g_wide = np.zeros((2, 6, 10), np.float32)
  g_wide[0, :, :4], g_wide[1, :, 4:] = 1.0, 1.0
  again = jax.jit(rep.target)(
      objective.stack([rep.statistic(jnp.asarray(wide), jnp.asarray(g_wide))]),
      jnp.asarray(out))
  key = "gram" if isinstance(rep, guided.GuidedGram) else "moments"
  np.testing.assert_allclose(np.asarray(again[key][0]), np.asarray(got[0]),
                             rtol=1e-5, atol=1e-6)


def test_make_targets_style_regions_of_unequal_area(params):
  """The same through ``make_targets`` at relu1_1 (full resolution: the
  layer's guides are the mask itself): a style mask whose two colours cover
  1/4 and 3/4 of the style image gives each region the Gram of its own
  positions, ``Σ_p g F Fᵀ / Σ_p g``."""
  content, style = _img(16, 16, 1), _img(12, 16, 2)
  spec = objective.Spec(content_layers=("relu1_1",), style_layers=("relu1_1",),
                        pooling="avg", style=guided.GuidedGram())
  content_guides = _quarter_split(16, 16)[::-1].copy()
  style_guides = _quarter_split(12, 16)
  targets = make_targets(
      params, content, [style], spec,
      guides=guided.Guides(content_guides, (style_guides,)))
  f = np.asarray(vgg.features(params, style[None], ("relu1_1",),
                              "avg")["relu1_1"][0])
  want = _np_region_grams(f, style_guides)
  got = np.asarray(targets.style["relu1_1"]["gram"][0])
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
  np.testing.assert_array_equal(np.asarray(targets.style["relu1_1"]["guides"]),
                                content_guides)
