"""Tests of nst_jax.metrics against independent references.

LPIPS against a float64 PyTorch implementation of the same checkpoints
(tests/data/lpips_torch.npz), SSIM against scikit-image
(tests/data/ssim_skimage.npz), both written once by
scripts/make_torch_fixtures.py and compared here without torch or
scikit-image; the style distances against numpy, the Fréchet distance
against scipy. Every comparison goes through ``jax.jit``.
"""

import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from conftest import require_file, tiny_vgg16_params, tol
from nst_jax import io, metrics, networks, vgg, weights
from nst_jax.errors import NSTError

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def nets(vgg16_params):
  """The real LPIPS networks (VGG-16 and AlexNet with their heads); missing
  files fail as the VGG-16 weights do (conftest.py)."""
  del vgg16_params  # the missing-weights policy of conftest.py
  for network in ("vgg16", "alexnet"):
    for path in (weights.weights_path(network),
                 weights.lpips_heads_path(network)):
      require_file(path)
  return metrics.load_metric_networks()


def _pairs(path):
  with np.load(path) as f:
    data = dict(f)
  images = data["images"].astype(np.float32) / np.float32(255)
  i, j = data["pairs"].T
  return jnp.asarray(images[i]), jnp.asarray(images[j]), data


# --- LPIPS -------------------------------------------------------------------


@pytest.mark.parametrize("network,field", [("vgg16", "vgg"),
                                           ("alexnet", "alex")])
def test_lpips_matches_torch(nets, network, field):
  a, b, data = _pairs(DATA / "lpips_torch.npz")
  net = getattr(nets, field)
  got = jax.jit(metrics.lpips)(net, a, b)
  np.testing.assert_allclose(np.asarray(got), data[network],
                             rtol=tol(2e-6, 1e-4))
  layers = jax.jit(metrics.lpips_layers)(net, a, b)
  assert tuple(layers) == networks.LPIPS_LAYERS[network]
  np.testing.assert_allclose(np.stack([np.asarray(v) for v in layers.values()],
                                      axis=1),
                             data[f"{network}_layers"], rtol=tol(1e-5, 1e-4),
                             atol=1e-9)


def test_lpips_of_an_image_with_itself_is_zero_and_symmetric(nets):
  a, b, _ = _pairs(DATA / "lpips_torch.npz")
  f = jax.jit(metrics.lpips)
  # Exactly the same features on the CPU; a GPU may pick another
  # convolution algorithm for a batch of another size.
  zero = tol(1e-12, 1e-7)
  np.testing.assert_allclose(np.asarray(f(nets.vgg, a, a)), 0.0, atol=zero)
  np.testing.assert_allclose(np.asarray(f(nets.alex, b, b)), 0.0, atol=zero)
  np.testing.assert_allclose(np.asarray(f(nets.vgg, b, a)),
                             np.asarray(f(nets.vgg, a, b)), rtol=1e-6)
  # One reference for a batch.
  np.testing.assert_allclose(np.asarray(f(nets.vgg, a, a[:1])),
                             np.asarray(f(nets.vgg, a, jnp.stack([a[0]] * 3))),
                             rtol=1e-6, atol=tol(1e-10, 1e-7))


def test_lpips_scaling_is_the_imagenet_normalisation():
  u = jnp.asarray(np.random.default_rng(0).uniform(size=(2, 5, 7, 3)),
                  jnp.float32)
  np.testing.assert_allclose(np.asarray(metrics.lpips_scaling(u)),
                             np.asarray(vgg.normalize(u)), atol=2e-6)
  shift = np.array(metrics.LPIPS_SHIFT)
  scale = np.array(metrics.LPIPS_SCALE)
  np.testing.assert_allclose((1 + shift) / 2, networks.IMAGENET_MEAN,
                             atol=1e-12)
  np.testing.assert_allclose(scale / 2, networks.IMAGENET_STD, atol=1e-12)


def test_prescaled_features_skip_the_normalisation():
  params = tiny_vgg16_params()
  u = jnp.asarray(np.random.default_rng(1).uniform(size=(1, 16, 16, 3)),
                  jnp.float32)
  plain = vgg.features(params, u, ["relu1_2"])["relu1_2"]
  prescaled = vgg.features(params, vgg.normalize(u), ["relu1_2"],
                           prescaled=True)["relu1_2"]
  np.testing.assert_array_equal(np.asarray(plain), np.asarray(prescaled))


def test_unit_normalize_is_lpips_normalize_tensor():
  x = np.random.default_rng(2).normal(size=(2, 3, 4, 5)).astype(np.float32)
  x[0, 0, 0] = 0.0
  want = x / (np.sqrt(np.sum(x.astype(np.float64) ** 2, -1, keepdims=True))
              + 1e-10)
  got = jax.jit(metrics.unit_normalize)(jnp.asarray(x))
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-7)
  grad = jax.grad(lambda v: jnp.sum(metrics.unit_normalize(v)))(jnp.asarray(x))
  assert np.all(np.isfinite(np.asarray(grad)))


# --- Style distances ---------------------------------------------------------


def _numpy_swd(x, s, directions):
  """Relative sliced W2 of ``x`` (N, H, W, C) to ``s`` (H', W', C), float64:
  the style's quantile function read at the image's mid-point quantiles
  with ``np.interp``."""
  n, h, w, c = x.shape
  px = np.sort(x.reshape(n, h * w, c) @ directions, axis=1)      # (N, M, D)
  ps = np.sort(s.reshape(-1, c) @ directions, axis=0)            # (P, D)
  m, p = h * w, ps.shape[0]
  t_image, t_style = (np.arange(m) + 0.5) / m, (np.arange(p) + 0.5) / p
  target = np.stack([np.interp(t_image, t_style, ps[:, d])
                     for d in range(ps.shape[1])], axis=1)       # (M, D)
  return np.sqrt(np.mean((px - target) ** 2, axis=(1, 2))
                 / np.mean(target ** 2))


def _numpy_gram_distance(x, s):
  def gram(f):
    flat = f.reshape(-1, f.shape[-1])
    return flat.T @ flat / flat.shape[0]
  target = gram(s)
  return np.array([np.linalg.norm(gram(f) - target) / np.linalg.norm(target)
                   for f in x])


@pytest.mark.parametrize("style_shape", [(6, 5), (4, 7), (9, 8)])
def test_sliced_wasserstein_distance_matches_numpy(style_shape):
  rng = np.random.default_rng(3)
  x = np.maximum(rng.normal(size=(2, 6, 5, 4)), 0).astype(np.float32)
  s = np.maximum(rng.normal(size=(*style_shape, 4)) + 0.3, 0).astype(
      np.float32)
  directions = metrics.swd_directions(4, 0, count=6)
  got = jax.jit(metrics.sliced_wasserstein_distance)(
      jnp.asarray(x), jnp.asarray(s), directions)
  want = _numpy_swd(x.astype(np.float64), s.astype(np.float64),
                    np.asarray(directions, np.float64))
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)


def test_sliced_wasserstein_distance_identity_and_zero():
  rng = np.random.default_rng(4)
  s = jnp.asarray(rng.uniform(size=(5, 6, 3)), jnp.float32)
  directions = metrics.swd_directions(3, 2)
  assert directions.shape == (3, 3)
  f = jax.jit(metrics.sliced_wasserstein_distance)
  np.testing.assert_allclose(np.asarray(f(s[None], s, directions)), 0.0,
                             atol=1e-6)
  # Positions in another order: the same distribution.
  shuffled = s.reshape(-1, 3)[rng.permutation(30)].reshape(1, 5, 6, 3)
  np.testing.assert_allclose(np.asarray(f(shuffled, s, directions)), 0.0,
                             atol=1e-6)
  np.testing.assert_allclose(
      np.asarray(f(jnp.zeros((1, 4, 4, 3)), s, directions)), 1.0, rtol=1e-6)


def test_swd_directions_are_fixed_and_apart_from_the_objective():
  a = metrics.swd_directions(64, 0)
  np.testing.assert_array_equal(np.asarray(a),
                                np.asarray(metrics.swd_directions(64, 0)))
  assert not np.allclose(np.asarray(a), np.asarray(metrics.swd_directions(64,
                                                                          1)))
  from nst_jax import representations  # the objective's own draws
  objective = representations.SlicedWasserstein()._directions(64)
  assert not np.allclose(np.asarray(a), np.asarray(objective))
  np.testing.assert_allclose(np.linalg.norm(np.asarray(a), axis=0), 1.0,
                             rtol=1e-6)


def test_gram_distance_matches_numpy():
  rng = np.random.default_rng(5)
  x = rng.normal(size=(3, 5, 6, 4)).astype(np.float32)
  s = rng.normal(size=(7, 3, 4)).astype(np.float32)
  got = jax.jit(metrics.gram_distance)(jnp.asarray(x), jnp.asarray(s))
  np.testing.assert_allclose(np.asarray(got),
                             _numpy_gram_distance(x.astype(np.float64),
                                                  s.astype(np.float64)),
                             rtol=1e-5)
  np.testing.assert_allclose(
      np.asarray(metrics.gram_distance(jnp.asarray(s)[None], jnp.asarray(s))),
      0.0, atol=1e-6)


def test_style_distances_average_the_layers():
  params = tiny_vgg16_params()
  rng = np.random.default_rng(6)
  images = jnp.asarray(rng.uniform(size=(2, 32, 40, 3)), jnp.float32)
  style = jnp.asarray(rng.uniform(size=(24, 36, 3)), jnp.float32)
  distances = jax.jit(metrics.style_distances)
  got = distances(params, images, style)
  layers = metrics.STYLE_LAYERS
  features = jax.jit(vgg.features, static_argnums=2)
  x = features(params, images, layers)
  s = features(params, style[None], layers)
  swd = np.mean([_numpy_swd(np.asarray(x[l], np.float64),
                            np.asarray(s[l][0], np.float64),
                            np.asarray(metrics.swd_directions(
                                x[l].shape[-1], i), np.float64))
                 for i, l in enumerate(layers)], axis=0)
  gram = np.mean([_numpy_gram_distance(np.asarray(x[l], np.float64),
                                       np.asarray(s[l][0], np.float64))
                  for l in layers], axis=0)
  np.testing.assert_allclose(np.asarray(got["swd"]), swd, rtol=1e-4)
  np.testing.assert_allclose(np.asarray(got["gram"]), gram, rtol=1e-4)
  same = distances(params, style[None], style)
  np.testing.assert_allclose(np.asarray(same["swd"]), 0.0, atol=1e-5)
  np.testing.assert_allclose(np.asarray(same["gram"]), 0.0, atol=1e-5)


# --- SSIM --------------------------------------------------------------------


@pytest.mark.parametrize("mode,sample", [("paper", False),
                                         ("sample_covariance", True)])
def test_ssim_matches_scikit_image(mode, sample):
  a, b, data = _pairs(DATA / "ssim_skimage.npz")
  got = jax.jit(metrics.ssim, static_argnames="sample_covariance")(
      a, b, sample_covariance=sample)
  np.testing.assert_allclose(np.asarray(got), data[mode], atol=1e-6)


def test_ssim_identity_window_and_errors():
  np.testing.assert_allclose(metrics.gaussian_window().sum(), 1.0)
  assert metrics.gaussian_window().shape == (11,)
  x = jnp.asarray(np.random.default_rng(7).uniform(size=(2, 12, 13, 3)),
                  jnp.float32)
  np.testing.assert_allclose(np.asarray(metrics.ssim(x, x)), 1.0, atol=1e-6)
  with pytest.raises(NSTError, match="smaller than the 11x11 SSIM window"):
    metrics.ssim(x[:, :10], x[:, :10])
  with pytest.raises(NSTError, match="`references` must be"):
    metrics.ssim(x, x[:, :11])
  with pytest.raises(NSTError, match=r"`images` must have shape \(N, H, W, 3\)"):
    metrics.ssim(x[0], x)


# --- Fréchet distance --------------------------------------------------------


def _scipy_frechet(a, b):
  """FID's reference formula (Heusel et al. 2017) with scipy's sqrtm."""
  mean_a, cov_a = a.mean(0), np.cov(a, rowvar=False)
  mean_b, cov_b = b.mean(0), np.cov(b, rowvar=False)
  with warnings.catch_warnings():  # singular products: still accurate here
    warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b)
  return (np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
          - 2 * np.trace(covmean).real)


@pytest.mark.parametrize("m,p,c", [(200, 300, 8), (40, 90, 16)])
def test_frechet_distance_matches_scipy(m, p, c):
  rng = np.random.default_rng([m, c])
  mix = rng.normal(size=(c, c))
  a = rng.normal(size=(m, c)) @ mix
  b = rng.normal(size=(p, c)) @ (mix + 0.5 * rng.normal(size=(c, c))) + 0.3
  mean_a, cov_a = jax.jit(metrics.mean_covariance)(jnp.asarray(a, jnp.float32))
  np.testing.assert_allclose(np.asarray(cov_a), np.cov(a, rowvar=False),
                             rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(np.asarray(mean_a), a.mean(0), rtol=1e-5,
                             atol=1e-5)
  got = jax.jit(metrics.frechet_distance)(
      mean_a, cov_a, *metrics.mean_covariance(jnp.asarray(b, jnp.float32)))
  want = _scipy_frechet(a, b)
  np.testing.assert_allclose(float(got), want, rtol=1e-4)


def test_frechet_distance_singular_covariances():
  """Fewer points than channels (a deep layer's patches): still scipy's."""
  rng = np.random.default_rng(8)
  a, b = rng.normal(size=(6, 10)), rng.normal(size=(7, 10)) + 0.2
  got = metrics.frechet_distance(
      *metrics.mean_covariance(jnp.asarray(a, jnp.float32)),
      *metrics.mean_covariance(jnp.asarray(b, jnp.float32)))
  # The square root magnifies float32 rounding where Σ is singular.
  np.testing.assert_allclose(float(got), _scipy_frechet(a, b), rtol=1e-3)
  same = metrics.frechet_distance(
      *metrics.mean_covariance(jnp.asarray(a, jnp.float32)),
      *metrics.mean_covariance(jnp.asarray(a, jnp.float32)))
  assert abs(float(same)) < 1e-4 * np.trace(np.cov(a, rowvar=False))


def test_patch_frechet_distance_matches_scipy():
  params = tiny_vgg16_params()
  rng = np.random.default_rng(9)
  images = jnp.asarray(rng.uniform(size=(2, 32, 32, 3)), jnp.float32)
  style = jnp.asarray(rng.uniform(size=(40, 32, 3)) ** 2, jnp.float32)
  layers = ("relu1_1", "relu2_1")
  got = jax.jit(metrics.patch_frechet_distance, static_argnames="layers")(
      params, images, style, layers=layers)
  x = vgg.features(params, images, layers)
  s = vgg.features(params, style[None], layers)
  for k, layer in enumerate(layers):
    c = x[layer].shape[-1]
    a = np.asarray(x[layer], np.float64).reshape(-1, c)
    b = np.asarray(s[layer], np.float64).reshape(-1, c)
    want = _scipy_frechet(a, b) / np.mean(np.sum(b ** 2, -1))
    np.testing.assert_allclose(float(got[k]), want, rtol=1e-3)


# --- Scoring -----------------------------------------------------------------


def test_score_an_image_against_itself(nets):
  rng = np.random.default_rng(10)
  content = rng.uniform(size=(48, 64, 3)).astype(np.float32)
  style = rng.uniform(size=(60, 80, 3)).astype(np.float32) ** 2
  big = np.kron(content, np.ones((2, 2, 1), np.float32))  # another size
  scores = metrics.score(nets, content, style, [content, big, style],
                         size=64)
  assert tuple(scores) == metrics.SCORE_FIELDS
  assert all(v.shape == (3,) for v in scores.values())
  np.testing.assert_allclose(scores["lpips_vgg"][0], 0.0, atol=tol(1e-7, 1e-5))
  np.testing.assert_allclose(scores["lpips_alex"][0], 0.0,
                             atol=tol(1e-7, 1e-5))
  np.testing.assert_allclose(scores["ssim"][0], 1.0, atol=1e-6)
  assert scores["lpips_vgg"][1] < 0.2 and scores["ssim"][1] > 0.5
  # The style scored against itself (resized to the content's shape).
  assert scores["swd"][2] < scores["swd"][0]
  with pytest.raises(NSTError, match=r"`results`\[1\] is 48x64, not the "
                     "content's aspect ratio"):
    metrics.score(nets, content, style, [content, content.transpose(1, 0, 2)])
  # One program per set of shapes: a second call does not compile again.
  before = metrics.score_arrays._cache_size()
  metrics.score(nets, content, style, [big, content, style], size=64)
  assert metrics.score_arrays._cache_size() == before
  with pytest.raises(NSTError, match="`results` is empty"):
    metrics.score(nets, content, style, [], size=64)


def test_scoring_through_a_larger_size(nets):
  """``via``: every result goes to the content's shape at that long edge
  first — a result made at the scoring size is scored as its upsampled copy
  is, one already that large as without ``via``; the scoring's own
  downsampling blurs the detail of a noise image (not an identity)."""
  rng = np.random.default_rng(12)
  content = rng.uniform(size=(48, 64, 3)).astype(np.float32)
  style = rng.uniform(size=(60, 80, 3)).astype(np.float32) ** 2
  result = rng.uniform(size=(48, 64, 3)).astype(np.float32)
  big = io.resize_to(result, (96, 128))
  _, _, through = metrics.scoring_images(content, style, [result, big], 64,
                                         via=128)
  _, _, straight = metrics.scoring_images(content, style, [big], 64)
  np.testing.assert_allclose(through[0], straight[0], atol=1e-6)
  np.testing.assert_allclose(through[1], straight[0], atol=1e-6)
  assert np.abs(straight[0] - result).mean() > 0.02
  scores = metrics.score(nets, content, style, [result], size=64, via=128)
  again = metrics.score(nets, content, style, [big], size=64)
  np.testing.assert_allclose(scores["swd"], again["swd"], rtol=1e-5)
  with pytest.raises(NSTError, match="`via` must be at least the scoring "
                     "size 64, got 32"):
    metrics.scoring_images(content, style, [result], 64, via=32)


def test_score_set_is_zero_for_the_style_itself(nets):
  rng = np.random.default_rng(11)
  style = rng.uniform(size=(40, 48, 3)).astype(np.float32)
  other = rng.uniform(size=(40, 48, 3)).astype(np.float32) ** 3
  same = metrics.score_set(nets, style, [style, style], size=48,
                           layers=("relu1_1", "relu2_1", "relu3_1"))
  assert abs(same["frechet"]) < 1e-3
  assert list(same["frechet_layers"]) == ["relu1_1", "relu2_1", "relu3_1"]
  far = metrics.score_set(nets, style, [other, other], size=48,
                          layers=("relu1_1", "relu2_1", "relu3_1"))
  assert far["frechet"] > 0.05
  with pytest.raises(NSTError, match="different shapes"):
    metrics.score_set(nets, style, [style, style[:, :20]], size=48)


def test_public_metrics_are_documented_and_exported():
  import nst_jax  # pylint: disable=g-import-not-at-top
  for name in ("lpips", "ssim", "frechet_distance", "sliced_wasserstein_distance",
               "gram_distance", "patch_frechet_distance", "style_distances",
               "load_metric_networks", "score", "score_set", "MetricNetworks",
               "Lpips", "metrics"):
    assert name in nst_jax.__all__, name
  for name, value in vars(metrics).items():
    if callable(value) and not name.startswith("_") and getattr(
        value, "__module__", "") == "nst_jax.metrics":
      assert (value.__doc__ or "").strip(), name
