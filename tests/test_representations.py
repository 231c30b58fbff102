"""Tests of the style representations (nst_jax.representations, with their
statistics and losses, and their use in nst_jax.objective).

Every statistic is compared with a direct numpy/scipy computation written
from the formulas of the seeds (scipy.signal.correlate2d for the
autocorrelation, an explicit loop for the windowed Gram, numpy.linalg.eigh,
scipy.linalg.sqrtm); every library call goes through ``jax.jit``. The
objective-level tests use a tiny random VGG-16 on 32x32 images.
"""

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.signal

from nst_jax import losses
from nst_jax import networks
from nst_jax import objective
from nst_jax import representations as R
from nst_jax import solvers
from nst_jax import statistics
from nst_jax.errors import NSTError
from nst_jax.targets import make_targets
from conftest import tiny_vgg16_params


def _rng(seed=0):
  return np.random.default_rng(seed)


def _feats(shape, seed=0):
  return _rng(seed).normal(size=shape).astype(np.float32)


# --- spatial autocorrelation (Nikulin & Novak §7) -----------------------------


@pytest.mark.parametrize("shape", [(5, 7, 3), (1, 4, 2), (2, 6, 5, 4)])
def test_spatial_autocorrelation_matches_correlate2d(shape):
  f = _feats(shape, 1)
  got = np.asarray(jax.jit(statistics.spatial_autocorrelation)(f))
  *lead, h, w, c = shape
  assert got.shape == (*lead, c, 2 * h - 1, 2 * w - 1)
  flat = f.reshape(-1, h, w, c).astype(np.float64)
  want = np.stack([np.stack([scipy.signal.correlate2d(x[..., i], x[..., i],
                                                      "full")
                             for i in range(c)]) for x in flat]) / (h * w)
  np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-4,
                             atol=1e-5)
  # Lag 0 is the Gram diagonal.
  gram = np.asarray(statistics.gram_matrix(f))
  np.testing.assert_allclose(got[..., h - 1, w - 1],
                             np.diagonal(gram, axis1=-2, axis2=-1), rtol=1e-4)


def test_spatial_loss_formula():
  a, b = _feats((3, 9, 11), 2), _feats((3, 9, 11), 3)
  got = float(jax.jit(losses.spatial_loss)(a, b))
  want = np.sum((a.astype(np.float64) - b) ** 2) / (4 * 9)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  notes = float(jax.jit(functools.partial(losses.spatial_loss,
                                          normalization="notes"))(a, b))
  np.testing.assert_allclose(notes, 4 * got, rtol=1e-6)


# --- local (windowed) Gram (§9) -----------------------------------------------


def _np_local_gram(f, s):
  """The §9 formula, one position and one offset at a time."""
  h, w, c = f.shape
  f = f.astype(np.float64)
  out = np.zeros((h, w, c, c))
  for y in range(h):
    for x in range(w):
      for dy in range(-s, s + 1):
        for dx in range(-s, s + 1):
          if 0 <= y + dy < h and 0 <= x + dx < w:
            v = f[y + dy, x + dx]
            out[y, x] += np.outer(v, v) / (1.0 + dx * dx + dy * dy)
  return out


@pytest.mark.parametrize("window", [0, 1, 2])
def test_local_gram_matches_loop(window):
  f = _feats((4, 5, 3), 4)
  got = np.asarray(jax.jit(functools.partial(statistics.local_gram,
                                             window=window))(f))
  np.testing.assert_allclose(got, _np_local_gram(f, window), rtol=1e-5,
                             atol=1e-5)
  if window == 0:  # the pointwise F_i ⊙ F_j
    np.testing.assert_allclose(got, np.einsum("hwi,hwj->hwij", f, f),
                               rtol=1e-6)


@pytest.mark.parametrize("window", [0, 1, 2, 3])
@pytest.mark.parametrize("shape", [(5, 6, 3), (2, 3, 7, 2)])
def test_local_gram_loss_equals_materialised(window, shape):
  f, p = _feats(shape, 5), _feats(shape, 6)
  got = np.asarray(jax.jit(functools.partial(losses.local_gram_loss,
                                             window=window))(f, p))
  h, w, c = shape[-3:]
  flat_f, flat_p = f.reshape(-1, h, w, c), p.reshape(-1, h, w, c)
  want = [np.sum((_np_local_gram(a, window) - _np_local_gram(b, window)) ** 2)
          / (4 * c * c * h * w) for a, b in zip(flat_f, flat_p)]
  assert got.shape == shape[:-3]
  np.testing.assert_allclose(got.reshape(-1), want, rtol=1e-4)


# --- eigen-decomposition (thesis) ---------------------------------------------


def _np_gram(f):
  x = f.reshape(-1, f.shape[-1]).astype(np.float64)
  return x.T @ x / x.shape[0]


@pytest.mark.parametrize("rank", [0, 1, 3, 6, 99])
def test_gram_eigen_matches_numpy(rank):
  f = _feats((7, 5, 6), 7)
  g = _np_gram(f)
  values, vectors = jax.jit(functools.partial(statistics.gram_eigen,
                                              rank=rank))(g.astype(np.float32))
  w, v = np.linalg.eigh(g)
  w, v = w[::-1], v[:, ::-1]
  r = 6 if rank in (0, 99) else rank
  assert values.shape == (r,) and vectors.shape == (6, r)
  np.testing.assert_allclose(np.asarray(values), w[:r], rtol=1e-4, atol=1e-5)
  # Eigenvectors up to sign.
  dots = np.abs(np.sum(np.asarray(vectors) * v[:, :r], axis=0))
  np.testing.assert_allclose(dots, 1.0, atol=1e-3)
  recon = np.asarray(jax.jit(functools.partial(statistics.low_rank_gram,
                                               rank=rank))(g.astype(np.float32)))
  want = (v[:, :r] * w[:r]) @ v[:, :r].T
  np.testing.assert_allclose(recon, want, rtol=1e-4, atol=1e-4)
  spectrum = jax.jit(functools.partial(statistics.gram_spectrum, rank=rank))(
      g.astype(np.float32))
  np.testing.assert_allclose(np.asarray(spectrum), w[:r], rtol=1e-4, atol=1e-5)


def test_full_rank_reconstruction_is_the_gram():
  g = _np_gram(_feats((6, 6, 8), 8)).astype(np.float32)
  np.testing.assert_allclose(np.asarray(jax.jit(statistics.low_rank_gram)(g)),
                             g, rtol=1e-4, atol=1e-5)


def test_projected_features_gram_is_rotated_gram():
  f = _feats((5, 4, 6), 9)
  _, basis = statistics.gram_eigen(jnp.asarray(_np_gram(_feats((5, 5, 6), 10)),
                                               jnp.float32), rank=3)
  proj = jax.jit(statistics.project_features)(f, basis)
  assert proj.shape == (5, 4, 3)
  b = np.asarray(basis, np.float64)
  np.testing.assert_allclose(np.asarray(statistics.gram_matrix(proj)),
                             b.T @ _np_gram(f) @ b, rtol=1e-4, atol=1e-5)


def test_spectrum_loss_formula():
  a, b = _feats((2, 5), 11), _feats((2, 5), 12)
  got = np.asarray(jax.jit(losses.spectrum_loss)(a, b))
  np.testing.assert_allclose(got, np.sum((a - b.astype(np.float64)) ** 2, -1)
                             / (4 * 25), rtol=1e-5)


# --- moments and covariance (thesis) ------------------------------------------


def test_channel_moments_match_numpy():
  f = _feats((3, 6, 5, 4), 13)
  got = np.asarray(jax.jit(statistics.channel_moments)(f))
  x = f.astype(np.float64)
  assert got.shape == (3, 2, 4)
  np.testing.assert_allclose(got[:, 0], x.mean(axis=(1, 2)), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(got[:, 1], x.std(axis=(1, 2)), rtol=1e-4)
  t = _feats((2, 4), 14)
  np.testing.assert_allclose(
      float(jax.jit(losses.moments_loss)(got[0], t)),
      np.sum((got[0].astype(np.float64) - t) ** 2) / 4, rtol=1e-5)


def test_mean_covariance_and_sqrtm_match_numpy():
  f = _feats((6, 5, 4), 15) + 0.5
  mean, cov = jax.jit(statistics.channel_mean_covariance)(f)
  x = f.reshape(-1, 4).astype(np.float64)
  np.testing.assert_allclose(np.asarray(mean), x.mean(0), rtol=1e-5, atol=1e-6)
  want = np.cov(x, rowvar=False, bias=True)
  np.testing.assert_allclose(np.asarray(cov), want, rtol=1e-4, atol=1e-5)
  root = np.asarray(jax.jit(statistics.sqrtm_psd)(cov))
  np.testing.assert_allclose(root, np.real(scipy.linalg.sqrtm(want)),
                             rtol=1e-3, atol=1e-4)


def _np_w2(f, p):
  x, y = (a.reshape(-1, a.shape[-1]).astype(np.float64) for a in (f, p))
  m1, m2 = x.mean(0), y.mean(0)
  s1, s2 = np.cov(x, rowvar=False, bias=True), np.cov(y, rowvar=False, bias=True)
  r2 = np.real(scipy.linalg.sqrtm(s2))
  cross = np.real(scipy.linalg.sqrtm(r2 @ s1 @ r2))
  return (np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * cross)) / x.shape[1]


def _w2_of_features(f, p):
  mean, cov = statistics.channel_mean_covariance(f)
  tm, tc = statistics.channel_mean_covariance(p)
  return losses.gaussian_w2_loss(mean, cov, tm, statistics.sqrtm_psd(tc))


def test_gaussian_w2_matches_scipy():
  f, p = _feats((7, 6, 5), 16), 2.0 * _feats((6, 8, 5), 17) + 1.0
  got = float(jax.jit(_w2_of_features)(f, p))
  np.testing.assert_allclose(got, _np_w2(f, p), rtol=1e-3)
  assert abs(float(jax.jit(_w2_of_features)(p, p))) < 1e-3 * _np_w2(f, p)


# --- gradients, jit and vmap of every loss ------------------------------------


def _loss_cases():
  """name -> (loss of features (H, W, C), target features of another image)."""
  def on(stat, loss):
    return lambda f, p: loss(stat(f), stat(p))
  return {
      "spatial": on(statistics.spatial_autocorrelation, losses.spatial_loss),
      "local0": functools.partial(losses.local_gram_loss, window=0),
      "local2": functools.partial(losses.local_gram_loss, window=2),
      "eigen_reconstruction": lambda f, p: losses.gram_loss(
          statistics.gram_matrix(f),
          statistics.low_rank_gram(statistics.gram_matrix(p), rank=2)),
      "eigen_spectrum": on(lambda x: statistics.gram_spectrum(
          statistics.gram_matrix(x), rank=3), losses.spectrum_loss),
      "eigen_projected": lambda f, p: losses.gram_loss(
          statistics.gram_matrix(statistics.project_features(
              f, statistics.gram_eigen(statistics.gram_matrix(p), rank=2)[1])),
          jnp.diag(statistics.gram_eigen(statistics.gram_matrix(p), rank=2)[0])),
      "moments": on(statistics.channel_moments, losses.moments_loss),
      "covariance": _w2_of_features,
  }


@pytest.mark.parametrize("name", list(_loss_cases()))
def test_loss_gradients_finite_and_match_fd(name):
  fn = _loss_cases()[name]
  f, p = _feats((5, 6, 4), 18), _feats((5, 6, 4), 19)
  f[..., 3] = 0.0  # a dead channel: singular covariance, repeated eigenvalue
  with jax.enable_x64(True):
    x, t = jnp.asarray(f, jnp.float64), jnp.asarray(p, jnp.float64)
    loss = jax.jit(lambda x: fn(x, t))
    grad = jax.jit(jax.grad(lambda x: fn(x, t)))(x)
    assert np.all(np.isfinite(np.asarray(grad)))
    assert float(jnp.abs(grad).max()) > 0
    rng = _rng(20)
    for _ in range(2):
      v = jnp.asarray(rng.normal(size=x.shape))
      v = v.at[..., 3].set(0.0)  # stay on the dead channel's face
      eps = 1e-6
      fd = (float(loss(x + eps * v)) - float(loss(x - eps * v))) / (2 * eps)
      np.testing.assert_allclose(float(jnp.vdot(grad, v)), fd, rtol=1e-4,
                                 atol=1e-8)
  # float32 gradient finite too (what the objective uses).
  g32 = jax.jit(jax.grad(lambda x: fn(x, jnp.asarray(p))))(jnp.asarray(f))
  assert np.all(np.isfinite(np.asarray(g32)))


@pytest.mark.parametrize("name", list(_loss_cases()))
def test_losses_vmap_equal_loop(name):
  fn = jax.jit(_loss_cases()[name])
  f, p = _feats((3, 5, 6, 4), 21), _feats((3, 5, 6, 4), 22)
  batched = np.asarray(jax.jit(jax.vmap(_loss_cases()[name]))(f, p))
  loop = np.array([float(fn(f[i], p[i])) for i in range(3)])
  assert batched.shape == (3,)
  np.testing.assert_allclose(batched, loop, rtol=1e-4)


# --- the objective with each representation (tiny random VGG-16) -------------


@pytest.fixture(scope="module")
def params():
  return tiny_vgg16_params()


def _img(h, w, seed):
  return jnp.asarray(_rng(seed).uniform(size=(h, w, 3)), jnp.float32)


LAYERS = ("relu1_1", "relu2_1")


def _spec(style):
  return objective.Spec(content_layers=("relu2_1",), style_layers=LAYERS,
                        pooling="avg", style=style)


SPECS = {
    "gram": _spec(R.Gram()),
    "spatial": _spec(R.Spatial()),
    "local": _spec({"relu1_1": R.Local(1), "relu2_1": R.Local(0)}),
    "eigen_reconstruction": _spec(R.Eigen(8)),
    "eigen_spectrum": _spec(R.Eigen(8, "spectrum")),
    "eigen_projected": _spec(R.Eigen(8, "projected")),
    "moments": _spec(R.Moments()),
    "covariance": _spec(R.Covariance()),
    "swd": _spec(R.SlicedWasserstein(directions=16, samples=512)),
    "cmd": _spec(R.CentralMoments(order=4)),
}


def _target_shapes(name, h, w):
  """Expected shapes of one layer's target for 2 styles, (h, w) = layer size."""
  c = {"relu1_1": 64, "relu2_1": 128}
  return {
      "gram": lambda l: (2, c[l], c[l]),
      "spatial": lambda l: (2, c[l], 2 * h[l] - 1, 2 * w[l] - 1),
      "local": lambda l: (2, h[l], w[l], c[l]),
      "eigen_reconstruction": lambda l: (2, c[l], c[l]),
      "eigen_spectrum": lambda l: (2, 8),
      "eigen_projected": lambda l: {"basis": (2, c[l], 8), "gram": (2, 8, 8)},
      "moments": lambda l: (2, 2, c[l]),
      "covariance": lambda l: {"mean": (2, c[l]), "cov_sqrt": (2, c[l], c[l])},
      "swd": lambda l: {"directions": (c[l], 16), "sorted": (2, 16, 512)},
      "cmd": lambda l: (2, 4, c[l]),
  }[name]


@pytest.mark.parametrize("name", list(SPECS))
def test_targets_shapes_and_loss_matches_building_blocks(params, name):
  spec = SPECS[name]
  content = _img(16, 24, 1)
  styles = [_img(16, 24, 2), _img(16, 24, 3)]
  targets = make_targets(params, content, styles, spec,
                                   style_blend_weights=[3.0, 1.0])
  sizes_h = {"relu1_1": 16, "relu2_1": 8}
  sizes_w = {"relu1_1": 24, "relu2_1": 12}
  for layer in LAYERS:
    shapes = jax.tree_util.tree_map(lambda x: x.shape, targets.style[layer])
    assert shapes == _target_shapes(name, sizes_h, sizes_w)(layer), layer
  weights = objective.make_weights(spec, content_weight=0.0, style_weight=1.0)
  image = _img(16, 24, 4)
  terms = jax.jit(objective.loss_terms, static_argnums=4)(
      params, image, targets, weights, spec)
  # The same from the statistics and losses directly, one style at a time.
  from nst_jax import vgg
  feats = vgg.features(params, image[None], LAYERS, "avg")
  sfeats = [vgg.features(params, s[None], LAYERS, "avg") for s in styles]
  want = 0.0
  for i, l in enumerate(LAYERS):
    f = feats[l][0]
    per = []
    for s in range(2):
      p = sfeats[s][l][0]
      gf, gp = statistics.gram_matrix(f), statistics.gram_matrix(p)
      e = {
          "gram": lambda: losses.gram_loss(gf, gp),
          "spatial": lambda: losses.spatial_loss(
              statistics.spatial_autocorrelation(f),
              statistics.spatial_autocorrelation(p)),
          "local": lambda: losses.local_gram_loss(f, p, window=(1, 0)[i]),
          "eigen_reconstruction": lambda: losses.gram_loss(
              gf, statistics.low_rank_gram(gp, rank=8)),
          "eigen_spectrum": lambda: losses.spectrum_loss(
              statistics.gram_spectrum(gf, rank=8),
              statistics.gram_spectrum(gp, rank=8)),
          "eigen_projected": lambda: losses.gram_loss(
              statistics.gram_matrix(statistics.project_features(
                  f, statistics.gram_eigen(gp, rank=8)[1])),
              jnp.diag(statistics.gram_eigen(gp, rank=8)[0])),
          "moments": lambda: losses.moments_loss(
              statistics.channel_moments(f), statistics.channel_moments(p)),
          "covariance": lambda: _w2_of_features(f, p),
          "swd": lambda: _np_swd(f, p, targets.style[l]["directions"], 512),
          "cmd": lambda: _np_cmd(f, p, 4),
      }[name]()
      per.append(float(e))
    want += 0.5 * (0.75 * per[0] + 0.25 * per[1])
  np.testing.assert_allclose(float(terms["style"]), want, rtol=2e-3)
  assert float(terms["style"]) > 0


def _short_run(params, spec, iterations=15, method="optax_lbfgs"):
  content = _img(16, 16, 5)
  style = _img(16, 16, 6)
  targets = make_targets(params, content, [style], spec)
  weights = objective.make_weights(spec, content_weight=0.0, style_weight=1.0,
                                   tv_weight=0.0)
  fun = objective.objective_function(spec)
  x0 = _img(16, 16, 7)
  config = solvers.SolverConfig(method=method, maxiter=iterations)
  result = solvers.minimize(fun, x0, config, (), (params, targets, weights))
  f = jax.jit(fun)
  return (float(f(x0, params, targets, weights)[1]["style"]),
          float(f(result.x, params, targets, weights)[1]["style"]), result.x)


@pytest.mark.parametrize("name", [n for n in SPECS if n != "gram"])
def test_short_run_lowers_own_loss(params, name):
  style = dict(SPECS[name].style_by_layer())["relu1_1"]
  spec = dataclasses.replace(SPECS[name], content_layers=(),
                             style_layers=("relu1_1",), style=style)
  before, after, x = _short_run(params, spec)
  assert np.all(np.isfinite(np.asarray(x)))
  assert after < 0.5 * before, (before, after)


def test_full_rank_eigen_transfer_equals_gram_transfer(params):
  """The thesis's sanity check: with every eigenpair kept, the eigen style
  (reconstructed target, or features projected on the whole basis) is the
  Gram style — same losses at any image, same transfer result."""
  gram = dataclasses.replace(SPECS["gram"], content_layers=(),
                             style_layers=("relu1_1",))
  image = _img(16, 16, 8)
  results = {}
  for loss in ("reconstruction", "projected"):
    spec = dataclasses.replace(gram, style=R.Eigen(0, loss))
    t_e = make_targets(params, None, [_img(16, 16, 6)], spec)
    t_g = make_targets(params, None, [_img(16, 16, 6)], gram)
    w = objective.make_weights(spec, content_weight=0.0, style_weight=1.0)
    te = objective.loss_terms(params, image, t_e, w, spec)
    tg = objective.loss_terms(params, image, t_g, w, gram)
    np.testing.assert_allclose(np.asarray(te["style_layers"]),
                               np.asarray(tg["style_layers"]), rtol=1e-4)
    results[loss] = _short_run(params, spec, iterations=8)
  ref = _short_run(params, gram, iterations=8)
  # float32 rounding of the eigen-decomposition (~1e-7 relative) grows over
  # L-BFGS iterations; after 8 the images agree to ~1e-5 (measured 3e-6).
  for loss, (_, after, x) in results.items():
    np.testing.assert_allclose(after, ref[1], rtol=1e-2, err_msg=loss)
    np.testing.assert_allclose(np.asarray(x), np.asarray(ref[2]), atol=1e-4,
                               err_msg=loss)


def test_representations_vmap_over_targets(params):
  """Targets of any representation are pytrees that vmap like the Grams."""
  spec = SPECS["covariance"]
  content = _img(16, 16, 1)
  per_style = [make_targets(params, content, [_img(16, 16, s)], spec)
               for s in (2, 3)]
  stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *per_style)
  weights = objective.make_weights(spec, content_weight=1.0, style_weight=1.0)
  image = _img(16, 16, 4)
  batched = jax.jit(jax.vmap(lambda t: objective.loss_terms(
      params, image, t, weights, spec)["style"]))(stacked)
  for i, t in enumerate(per_style):
    np.testing.assert_allclose(
        float(batched[i]),
        float(objective.loss_terms(params, image, t, weights, spec)["style"]),
        rtol=1e-4)


# --- style patches --------------------------------------------------------------


def test_random_crops_are_seeded_and_inside():
  image = np.asarray(_img(20, 30, 9))
  a = objective.random_crops(image, count=4, size=8, seed=3)
  b = objective.random_crops(image, count=4, size=8, seed=3)
  c = objective.random_crops(image, count=4, size=8, seed=4)
  assert [x.shape for x in a] == [(8, 8, 3)] * 4
  assert all(np.array_equal(x, y) for x, y in zip(a, b))
  assert not all(np.array_equal(x, y) for x, y in zip(a, c))
  assert objective.random_crops(image, count=1, size=64, seed=0)[0].shape == (
      20, 30, 3)


def test_patch_modes(params):
  spec = dataclasses.replace(SPECS["gram"], content_layers=())
  crops = objective.random_crops(np.asarray(_img(24, 24, 10)), count=3,
                                 size=16, seed=0)
  crops += objective.random_crops(np.asarray(_img(24, 24, 11)), count=3,
                                  size=16, seed=1)
  crops = [jnp.asarray(c) for c in crops]
  mean = make_targets(params, None, crops, spec, [1.0, 3.0],
                                patches_per_style=3, patch_mode="mean")
  inst = make_targets(params, None, crops, spec, [1.0, 3.0],
                                patches_per_style=3, patch_mode="instances")
  assert mean.style["relu1_1"].shape == (2, 64, 64)
  assert inst.style["relu1_1"].shape == (6, 64, 64)
  np.testing.assert_allclose(np.asarray(inst.style_blend),
                             [1 / 12] * 3 + [3 / 12] * 3, rtol=1e-6)
  # The mean of the patches' Grams is the Gram of their union.
  np.testing.assert_allclose(np.asarray(mean.style["relu1_1"][1]),
                             np.asarray(inst.style["relu1_1"][3:]).mean(0),
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(NSTError, match="groups"):
    make_targets(params, None, crops[:5], spec, patches_per_style=3)
  for name in ("local", "swd"):   # statistics that are not averages
    with pytest.raises(NSTError, match="instances"):
      make_targets(
          params, None, crops, dataclasses.replace(SPECS[name],
                                                   content_layers=()),
          patches_per_style=3, patch_mode="mean")


def test_representation_errors(params):
  from nst_jax import cli
  for make, match, flag in [
      (lambda: R.Gram("fourier"), "`Gram.normalization`", "--gram_normalization"),
      (lambda: R.Eigen(0, "x"), "`Eigen.loss_kind`", "--eigen_loss"),
      (lambda: R.Eigen(-1), "`Eigen.rank`", "--style_rank"),
      (lambda: R.Local(-1), "`Local.window`", "--local_window"),
      (lambda: R.SlicedWasserstein(samples=0), "`SlicedWasserstein.samples`",
       "--swd_samples"),
      (lambda: R.CentralMoments(order=0), "`CentralMoments.order`",
       "--cmd_order")]:
    with pytest.raises(NSTError, match=match) as info:
      make()
    # The command line names the flag that sets the parameter.
    assert cli.flag_message(str(info.value)).startswith(
        f"unknown {flag}" if "unknown" in str(info.value) else flag)
  content = _img(16, 16, 1)
  with pytest.raises(NSTError, match="resized"):
    make_targets(params, content, [_img(16, 20, 2)], SPECS["spatial"])
  with pytest.raises(NSTError, match="not a style representation"):
    make_targets(params, content, [content],
                           dataclasses.replace(SPECS["gram"], style="gram"))
  with pytest.raises(NSTError, match="name layers"):
    make_targets(params, content, [content], dataclasses.replace(
        SPECS["gram"], style={"relu1_1": R.Gram()}))


class _NamedTupleRep(NamedTuple):
  """An optax-style representation: a NamedTuple (hashable)."""
  scale: float = 1.0
  same_size: bool = False

  def statistic(self, features):
    return statistics.gram_matrix(features)

  def target(self, stacked):
    return stacked

  def loss(self, features, target):
    return self.scale * losses.gram_loss(
        jnp.broadcast_to(statistics.gram_matrix(features), target.shape),
        target)


def test_spec_holds_any_hashable_representation():
  """A NamedTuple representation is one value (not mistaken for layer
  pairs), and a per-layer dict's order does not change the spec."""
  spec = objective.Spec(style=_NamedTupleRep())
  assert [r for _, r in spec.style_by_layer()] == [_NamedTupleRep()] * 5
  a = objective.Spec(style_layers=LAYERS, style={"relu1_1": R.Gram(),
                                                 "relu2_1": R.Moments()})
  b = objective.Spec(style_layers=LAYERS, style={"relu2_1": R.Moments(),
                                                 "relu1_1": R.Gram()})
  assert a == b and hash(a) == hash(b)
  assert dict(a.style_by_layer()) == {"relu1_1": R.Gram(),
                                      "relu2_1": R.Moments()}


def test_name_table():
  assert R.from_name("gram") == R.Gram()
  assert R.from_name("gram", gram_normalization="notes") == R.Gram("notes")
  assert R.from_name("eigen", style_rank=4, eigen_loss="spectrum") == R.Eigen(
      4, "spectrum")
  assert R.from_name("swd", swd_directions=8, seed=3) == R.SlicedWasserstein(
      8, seed=3)
  assert R.from_name("cmd", cmd_order=3) == R.CentralMoments(3)
  assert R.from_name("local", LAYERS, local_window=(2, 1)) == {
      "relu1_1": R.Local(2), "relu2_1": R.Local(1)}
  assert R.from_name("local", LAYERS, local_window=(2,)) == R.Local(2)
  # Every name of the table builds a valid representation with defaults.
  for name in R.NAMES:
    R.check(R.from_name(name))
  # A parameter the representation does not read is refused, not ignored.
  for name, kw in [("moments", dict(gram_normalization="notes")),
                   ("covariance", dict(gram_normalization="notes")),
                   ("gram", dict(style_rank=3)), ("gram", dict(cmd_order=3)),
                   ("gram", dict(local_window=(1,)))]:
    with pytest.raises(NSTError, match="does not apply"):
      R.from_name(name, LAYERS, **kw)
  with pytest.raises(NSTError, match="style_stat"):
    R.from_name("fourier")
  with pytest.raises(NSTError, match="one per style layer"):
    R.from_name("local", LAYERS, local_window=(1, 2, 3))


def test_no_module_tests_a_representation_name():
  """Only the name table (representations.py) and the command line turn
  representation names into values: no other library module compares a
  string with one of them."""
  import ast
  import pathlib
  package = pathlib.Path(R.__file__).parent
  allowed = {"representations.py"}
  names = set(R.NAMES) | {"eigen", "reconstruction", "spectrum", "projected"}
  found = []
  for path in sorted(package.rglob("*.py")):
    if path.name in allowed or "commands" in path.parts or path.name == "cli.py":
      continue
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Compare):
        for side in [node.left, *node.comparators]:
          if isinstance(side, ast.Constant) and side.value in names:
            found.append(f"{path.name}:{node.lineno} {side.value!r}")
  assert not found, found


# --- the protocol: a core, capabilities checked once, one registry -----------


class _Core:
  """The core without ``loss`` (``loss`` is added by subclasses)."""
  same_size = False

  def statistic(self, features):
    return jnp.mean(features, axis=(0, 1))

  def target(self, stacked):
    return stacked

  def __hash__(self):
    return 0

  def __eq__(self, other):
    return type(self) is type(other)


class _WithLoss(_Core):
  def loss(self, features, target):
    return jnp.sum(jnp.square(jnp.mean(features, (0, 1))[None] - target), -1)


def _sums(self, features, weights, maps=None):
  return jnp.sum(weights[..., None] * features, axis=(0, 1))


def _from_statistic(self, statistic, target):
  return jnp.sum(jnp.square(statistic[None] - target), axis=-1)


def test_check_once_refuses_incomplete_classes():
  """Where a representation enters (objective.Spec), a value without the
  core is an NSTError, and a class's programming errors are TypeErrors that
  name the missing member and the rule: part of the core missing, a
  capability inherited (or declared with ``register``, which Python's
  abstract classes do not check) without its members, a capability's
  methods without the capability, not hashable."""
  spec = lambda rep: objective.Spec(style_layers=LAYERS, style=rep)
  with pytest.raises(NSTError, match="not a style representation"):
    spec("gram")
  with pytest.raises(TypeError, match=r"it lacks loss \(every representation "
                     r"has statistic"):
    spec(_Core())
  with pytest.raises(TypeError, match="lacks loss"):   # one layer of a dict
    spec({"relu1_1": _Core(), "relu2_1": R.Gram()})
  with pytest.raises(TypeError, match="abstract method.*loss"):
    type("NoLoss", (_Core, R.Representation), {})()
  unhashable = type("Unhashable", (_WithLoss,), {"__hash__": None})
  with pytest.raises(TypeError, match="must be hashable"):
    spec(unhashable())
  # PositionAveraged without position_sums: the subclass cannot be made;
  # a class declared with register is refused by the check.
  with pytest.raises(TypeError, match="abstract method.*position_sums"):
    type("NoSums", (_WithLoss, R.PositionAveraged),
         {"loss_from_statistic": _from_statistic})()
  no_sums = type("NoSums", (_WithLoss,), {"loss_from_statistic":
                                          _from_statistic})
  R.PositionAveraged.register(no_sums)
  with pytest.raises(TypeError, match="NoSums inherits representations."
                     "PositionAveraged but lacks position_sums: a position-"
                     "averaged representation has position_sums"):
    spec(no_sums())
  # Guided without layer_guides.
  no_guides = type("NoLayerGuides", (_WithLoss,), {
      "position_maps": lambda self, target: None})
  R.Guided.register(no_guides)
  with pytest.raises(TypeError, match="NoLayerGuides inherits representations"
                     ".Guided but lacks layer_guides"):
    spec(no_guides())
  with pytest.raises(TypeError, match="abstract method.*layer_guides"):
    type("NoLayerGuides", (_WithLoss, R.Guided), {
        "position_maps": lambda self, target: None})()
  # Attributes an abstract class cannot require: guide_layer, redraw_every.
  makes = type("NoGuideLayer", (_WithLoss, R.MakesGuides), {
      "position_maps": lambda self, target: None,
      "layer_guides": lambda self, guides, shape: guides,
      "make_guides": lambda self, content, styles: None})
  with pytest.raises(TypeError, match="NoGuideLayer inherits representations."
                     "MakesGuides but lacks guide_layer"):
    spec(makes())
  redrawn = type("NoPeriod", (_WithLoss, R.Redrawn),
                 {"redraw": lambda self, target, round_: target})
  with pytest.raises(TypeError, match="NoPeriod inherits representations."
                     "Redrawn but lacks redraw_every"):
    spec(redrawn())
  # The capability's methods without the capability: declared, not probed.
  undeclared = type("Undeclared", (_Core,), {
      "position_sums": _sums, "loss_from_statistic": _from_statistic,
      "loss": lambda self, f, t: _from_statistic(
          self, jnp.mean(f, (0, 1)), t)})
  with pytest.raises(TypeError, match="Undeclared has position_sums and "
                     "loss_from_statistic but does not inherit "
                     "representations.PositionAveraged"):
    spec(undeclared())
  # Guides go to a Guided one only: its statistic must take them, an
  # unguided one's must not need them.
  no_guides_taken = type("StatisticTakesNoGuides", (_WithLoss, R.Guided), {
      "position_maps": lambda self, target: None,
      "layer_guides": lambda self, guides, shape: guides})
  with pytest.raises(TypeError, match="StatisticTakesNoGuides.statistic must "
                     "take 2 positional arguments"):
    spec(no_guides_taken())
  needs_guides = type("NeedsGuides", (_WithLoss,), {
      "statistic": lambda self, features, guides: features})
  with pytest.raises(TypeError, match="NeedsGuides.statistic must take 1 "
                     "positional argument .*only to a representations.Guided"):
    spec(needs_guides())
  # Complete ones pass, the researcher's NamedTuple among them.
  for rep in (_WithLoss(), _NamedTupleRep(), ChannelMeans(),
              TiledChannelMeans(), *[e.cls() for e in R.registered()]):
    spec(rep)


# What each position-averaged built-in's loss was before the loss was derived
# from position_sums and loss_from_statistic (nst_jax 0.1.0).
def _old_eigen_loss(rep, features, target):
  gram = statistics.gram_matrix(features)
  like = lambda v, t: jnp.broadcast_to(v, t.shape)
  if rep.loss_kind == "reconstruction":
    return losses.gram_loss(like(gram, target), target,
                            normalization=rep.normalization)
  if rep.loss_kind == "spectrum":
    values = statistics.gram_spectrum(gram, rank=int(rep.rank))
    return losses.spectrum_loss(like(values, target), target,
                                normalization=rep.normalization)
  reduced = jnp.einsum("sci,cd,sdj->sij", target["basis"], gram,
                       target["basis"], precision=jax.lax.Precision.HIGHEST)
  return losses.gram_loss(reduced, target["gram"],
                          normalization=rep.normalization)


def _old_losses():
  from nst_jax import guided
  like = lambda v, t: jnp.broadcast_to(v, t.shape)
  def w2(rep, f, t):
    mean, cov = statistics.channel_mean_covariance(f)
    tm, tc = t["mean"], t["cov_sqrt"]
    return losses.gaussian_w2_loss(like(mean, tm), like(cov, tc), tm, tc)
  def guided_moments(rep, f, t):
    moments = statistics.moments_from_raw(
        *guided.guided_raw_moments(f, t["guides"]))
    per = losses.moments_loss(like(moments, t["moments"]), t["moments"])
    return jnp.sum(t["weight"] * per, axis=-1)
  return {
      R.Gram: lambda rep, f, t: losses.gram_loss(
          like(statistics.gram_matrix(f), t), t,
          normalization=rep.normalization),
      R.Eigen: _old_eigen_loss,
      R.Moments: lambda rep, f, t: losses.moments_loss(
          like(statistics.channel_moments(f), t), t),
      R.Covariance: w2,
      R.CentralMoments: lambda rep, f, t: losses.central_moment_discrepancy(
          like(statistics.central_moments(rep._map(f), int(rep.order)), t),
          t),
      guided.GuidedGram: lambda rep, f, t: guided.guided_gram_loss(
          guided.guided_gram(f, t["guides"]), t, rep.normalization),
      guided.ContentAware: lambda rep, f, t: guided.guided_gram_loss(
          guided.guided_gram(f, t["guides"]), t, rep.normalization),
      guided.GuidedMoments: guided_moments,
  }


def _position_averaged_cases():
  cases = [e.cls() for e in R.registered()
           if issubclass(e.cls, R.PositionAveraged)]
  return cases + [R.Gram("notes"), R.Eigen(3), R.Eigen(3, "spectrum"),
                  R.Eigen(3, "projected"), R.CentralMoments(3, squash=False)]


@pytest.mark.parametrize("rep", _position_averaged_cases(), ids=repr)
def test_derived_loss_equals_the_old_loss(rep):
  """For every position-averaged built-in (all registered ones, and other
  parameters): the loss the objective calls is the old loss bit for bit,
  through jit, grad and vmap; the loss derived in PositionAveraged (sums
  over every position / H·W, then loss_from_statistic) is what it is for
  the classes that keep no loss of their own, and equal to float32
  rounding for those that do (CentralMoments, the guided ones)."""
  old = _old_losses()[type(rep)]
  rng = _rng(4)
  f = jnp.asarray(rng.normal(size=(7, 9, 6)), jnp.float32)
  styles = [jnp.asarray(rng.normal(size=(8, 5, 6)), jnp.float32)
            for _ in range(2)]
  if R.takes_position_maps(rep):
    g = jnp.asarray(rng.uniform(size=(3, 7, 9)), jnp.float32)
    gs = [jnp.asarray(rng.uniform(size=(3, 8, 5)), jnp.float32)] * 2
    stacked = objective.stack([rep.statistic(s, h) for s, h in zip(styles, gs)])
    target = rep.target(stacked, g)
  else:
    target = rep.target(objective.stack([rep.statistic(s) for s in styles]))
  for path in (lambda loss: lambda x: loss(x, target),
               lambda loss: jax.grad(lambda x: jnp.sum(loss(x, target))),
               lambda loss: lambda x: jax.vmap(loss, in_axes=(0, None))(
                   jnp.stack([x, 2 * x]), target)):
    np.testing.assert_array_equal(
        jax.jit(path(rep.loss))(f),
        jax.jit(path(lambda x, t: old(rep, x, t)))(f))
  derived = R.PositionAveraged.loss(rep, f, target)
  if type(rep).loss is R.PositionAveraged.loss:
    np.testing.assert_array_equal(derived, rep.loss(f, target))
  else:
    np.testing.assert_allclose(derived, rep.loss(f, target), rtol=1e-5)


# The command line's names for representation fields before the registry
# generated them (cli.PARAM_FLAGS, nst_jax 0.1.0), and what it adds.
_OLD_PARAM_FLAGS = {
    "Gram.normalization": "gram_normalization",
    "Spatial.normalization": "gram_normalization",
    "Local.normalization": "gram_normalization",
    "Eigen.normalization": "gram_normalization",
    "Local.window": "local_window", "Eigen.rank": "style_rank",
    "Eigen.loss_kind": "eigen_loss",
    "SlicedWasserstein.directions": "swd_directions",
    "SlicedWasserstein.samples": "swd_samples",
    "SlicedWasserstein.redraw_every": "swd_redraw_every",
    "CentralMoments.order": "cmd_order",
    "ContentAware.clusters": "ca_clusters",
    "ContentAware.window": "ca_window",
    "ContentAware.temperature": "ca_temperature",
    "ContentAware.guide_layer": "ca_layer",
    "GuidedGram.downsample": "mask_downsample",
}
_NEW_PARAM_FLAGS = {
    "SlicedWasserstein.seed": "seed", "ContentAware.seed": "seed",
    "ContentAware.normalization": "gram_normalization",
    "GuidedGram.normalization": "gram_normalization",
    "GuidedMoments.downsample": "mask_downsample",
}


def test_registry_round_trip():
  """Every name → its class → the same name; the defaults, flags, choices,
  suggested β and the tileable list all come from the registry and keep
  what the hand-written tables said."""
  from nst_jax import cli, guided
  assert R.names() == R.NAMES == (
      "gram", "spatial", "local", "eigen", "moments", "covariance", "swd",
      "cmd", "content_aware")
  by_class = {e.cls: e for e in R.registered()}
  for name in R.names():
    rep = R.from_name(name)
    assert by_class[type(rep)].name == name
    assert rep == type(rep)()            # the flags' defaults are the fields'
  assert R.defaults() == R.DEFAULTS == {
      "gram_normalization": "paper", "local_window": 0, "style_rank": 0,
      "eigen_loss": "reconstruction", "swd_directions": 0,
      "swd_samples": 16384, "swd_redraw_every": 0, "cmd_order": 5,
      "seed": 0, "ca_clusters": 8, "ca_window": 2, "ca_temperature": 0.05,
      "ca_layer": "relu4_2"}
  generated = R.param_flags()
  assert generated == {**_OLD_PARAM_FLAGS, **_NEW_PARAM_FLAGS}
  assert {k: cli.PARAM_FLAGS[k] for k in generated} == generated
  assert cli.flag_message("`SlicedWasserstein.seed` and `Eigen.rank`") == (
      "--seed and --style_rank")
  assert {type(R.from_name(n)).__name__: R.suggested_style_weight(
      R.from_name(n)) for n in R.names()} == {
          "Gram": 800.0, "Spatial": 800.0, "Local": 800.0, "Eigen": 800.0,
          "Moments": 800.0, "Covariance": 800.0, "SlicedWasserstein": 1200.0,
          "CentralMoments": 1440.0, "ContentAware": 800.0}
  # The masks versions suggest their unguided class's β (GuidedMoments was
  # 1e7, the Moments' β before the size-invariant objective).
  for plain in (R.Gram(), R.Moments()):
    masked = guided.guided_version(plain)
    assert by_class[type(masked)].masks_of is type(plain)
    assert R.suggested_style_weight(masked) == R.suggested_style_weight(plain)
  assert R.suggested_style_weight(ChannelMeans()) == R.STYLE_WEIGHT
  assert R.tileable_names() == ("gram, eigen, moments, covariance, cmd, "
                                "content_aware, or masks (guided gram or "
                                "moments)")


def test_register_a_researchers_class():
  """A class registered from outside gets a name, flags and β like the
  built-ins; clashes are refused."""
  @R.register(name="_test_means", style_weight=3.0,
              flags={"scale": "_test_scale"})
  @dataclasses.dataclass(frozen=True)
  class Means(TiledChannelMeans):
    pass
  try:
    assert "_test_means" in R.names() and R.defaults()["_test_scale"] == 1.0
    assert R.from_name("_test_means", _test_scale=2.0) == Means(2.0)
    assert R.suggested_style_weight(Means()) == 3.0
    assert objective.Spec(style=Means()).suggested_style_weight() == 3.0
    assert R.param_flags()["Means.scale"] == "_test_scale"
    assert "_test_means" in R.tileable_names()
    with pytest.raises(NSTError, match="does not apply"):
      R.from_name("gram", _test_scale=2.0)
    with pytest.raises(ValueError, match="'gram' is Gram's"):
      R.register(name="gram")(dataclasses.dataclass(frozen=True)(
          type("Other", (TiledChannelMeans,), {})))
    with pytest.raises(ValueError, match="gram_normalization has the default "
                       "'paper'"):
      R.register(flags={"normalization": "gram_normalization"})(
          dataclasses.make_dataclass("Notes", [("normalization", str,
                                                "notes")], frozen=True))
    with pytest.raises(TypeError, match="no dataclass field size"):
      R.register(flags={"size": "_test_size"})(Means)
  finally:
    R._REGISTRY.pop(Means)


def test_representations_does_not_import_guided():
  """The import goes one way, guided → representations (the registry is
  filled by guided when it is imported), not even inside a function."""
  import ast
  import pathlib
  tree = ast.parse(pathlib.Path(R.__file__).read_text())
  imported = [a.name for n in ast.walk(tree)
              if isinstance(n, (ast.Import, ast.ImportFrom))
              for a in n.names] + [n.module for n in ast.walk(tree)
                                   if isinstance(n, ast.ImportFrom)]
  assert not [m for m in imported if m and "guided" in m], imported


def test_no_module_probes_representation_members():
  """Capabilities are asked with isinstance: no module calls getattr or
  hasattr with the name of a representation member (representations.check
  is the one place that looks, through _has)."""
  import ast
  import pathlib
  members = {"statistic", "target", "loss", "same_size", "averageable",
             "suggested_style_weight", "redraw_every", "redraw",
             "position_sums", "loss_from_statistic", "position_maps",
             "guided", "layer_guides", "make_guides", "guide_layer"}
  found = []
  for path in sorted(pathlib.Path(R.__file__).parent.rglob("*.py")):
    for node in ast.walk(ast.parse(path.read_text())):
      if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
          and node.func.id in ("getattr", "hasattr") and len(node.args) > 1
          and isinstance(node.args[1], ast.Constant)
          and node.args[1].value in members):
        found.append(f"{path.name}:{node.lineno} {node.args[1].value}")
  assert not found, found


# --- the two representations written only against the protocol -------------


def _np_swd(f, p, directions, samples):
  """Heitz et al. 2021 eq. 6 in numpy: sorted projections, the style's
  ``samples`` positions (all of them, repeated evenly, when it has fewer)
  resampled to the generated image's count by linear interpolation."""
  f = np.asarray(f, np.float64).reshape(-1, f.shape[-1])
  p = np.asarray(p, np.float64).reshape(-1, p.shape[-1])
  v = np.asarray(directions, np.float64)
  m = p.shape[0]
  if m > samples:
    idx = np.asarray(jax.random.choice(jax.random.key(0), m, (samples,),
                                       replace=False))
  else:
    idx = np.arange(samples) * m // samples
  ps = np.sort(p[idx] @ v, axis=0)
  fs = np.sort(f @ v, axis=0)
  q_f = (np.arange(len(fs)) + 0.5) / len(fs)
  q_p = (np.arange(len(ps)) + 0.5) / len(ps)
  target = np.stack([np.interp(q_f, q_p, ps[:, d]) for d in range(v.shape[1])],
                    axis=1)
  return np.mean((fs - target) ** 2)


def _np_cmd(f, p, order):
  """Kalischek et al. 2021: Σ_k ‖c_k(σ(F)) − c_k(σ(S))‖₂, c_1 the mean."""
  def moments(x):
    x = 1 / (1 + np.exp(-np.asarray(x, np.float64).reshape(-1, x.shape[-1])))
    mu = x.mean(0)
    return [mu] + [((x - mu) ** k).mean(0) for k in range(2, order + 1)]
  return sum(np.linalg.norm(a - b) for a, b in zip(moments(f), moments(p)))


@pytest.mark.parametrize("m,samples", [(30, 30), (30, 12), (12, 30)])
def test_sliced_wasserstein_matches_numpy(m, samples):
  rng = _rng(m + samples)
  f = rng.normal(size=(5, 6, 4)).astype(np.float32)       # 30 positions
  p = rng.normal(size=(m // 6 or 2, 6, 4)).astype(np.float32)
  rep = R.SlicedWasserstein(directions=7, samples=samples)
  target = jax.jit(lambda x: rep.target(rep.statistic(x)[None]))(p)
  got = float(jax.jit(rep.loss)(f, target)[0])
  want = _np_swd(f, p, target["directions"], samples)
  np.testing.assert_allclose(got, want, rtol=1e-4)
  # Unit directions; the distance of a distribution to itself is zero.
  np.testing.assert_allclose(np.linalg.norm(target["directions"], axis=0), 1,
                             rtol=1e-5)
  same = rep.target(rep.statistic(jnp.asarray(f))[None])
  if samples == 30:
    assert float(rep.loss(f, same)[0]) < 1e-10


def test_sliced_wasserstein_redraw():
  p = _feats((6, 6, 5), 3)
  fixed = R.SlicedWasserstein(directions=4, samples=36)
  redraw = R.SlicedWasserstein(directions=4, samples=36, redraw_every=3)
  t0 = redraw.target(redraw.statistic(p)[None])
  t1 = redraw.redraw(t0, 1)
  assert "points" in t0 and "points" not in fixed.target(fixed.statistic(p)[None])
  np.testing.assert_array_equal(t0["directions"],
                                fixed.target(fixed.statistic(p)[None])["directions"])
  assert not np.allclose(t0["directions"], t1["directions"])
  np.testing.assert_allclose(
      t1["sorted"], np.swapaxes(np.sort(np.asarray(t0["points"]) @ np.asarray(
          t1["directions"]), axis=1), 1, 2), rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(redraw.redraw(t0, 1)["directions"],
                                t1["directions"])   # seeded by the round


@pytest.mark.parametrize("squash", [True, False])
def test_central_moments_match_numpy(squash):
  f, p = _feats((4, 5, 3), 1), _feats((6, 3, 3), 2)
  rep = R.CentralMoments(order=5, squash=squash)
  target = jax.jit(lambda x: rep.target(rep.statistic(x)[None]))(p)
  # Target from raw moments (binomial expansion) = central moments direct.
  mapped = (1 / (1 + np.exp(-p.astype(np.float64)))) if squash else p.astype(
      np.float64)
  x = mapped.reshape(-1, 3)
  want = [x.mean(0)] + [((x - x.mean(0)) ** k).mean(0) for k in range(2, 6)]
  np.testing.assert_allclose(np.asarray(target[0]), np.stack(want),
                             rtol=1e-4, atol=1e-6)
  if squash:
    got = float(jax.jit(rep.loss)(f, target)[0])
    np.testing.assert_allclose(got, _np_cmd(f, p, 5), rtol=1e-4)


# --- the protocol serves research code ------------------------------------


@dataclasses.dataclass(frozen=True)
class ChannelMeans:
  """A representation defined outside the package: per-channel means,
  squared difference. It uses nothing but the protocol."""
  scale: float = 1.0
  same_size = False

  def statistic(self, features):
    return jnp.mean(features, axis=(0, 1))

  def target(self, stacked):
    return stacked

  def loss(self, features, target):
    mean = jnp.mean(features, axis=(0, 1))[None]         # (1, C) vs (S, C)
    return self.scale * jnp.sum(jnp.square(mean - target), axis=-1)


def test_own_representation_runs_everywhere(params):
  """A representation written in this test file runs through stylize,
  stylize_multiscale, a 2-cell style_grid and synthesize, and mixed per
  layer with a built-in; each lowers its own loss."""
  from nst_jax import grid, synthetic, transfer
  content = np.asarray(_img(24, 24, 1))
  style = np.asarray(_img(20, 28, 2))
  spec = objective.Spec(content_layers=("relu2_1",), style_layers=LAYERS,
                        style=ChannelMeans())
  config = transfer.TransferConfig(spec=spec,
                                   weights=objective.LossWeights(style=1e3),
                                   solver=solvers.SolverConfig(maxiter=6))
  result = transfer.stylize(params, content, [style], config, log_every=3)
  first, last = result.loss_history[0], result.loss_history[-1]
  assert result.iterations == 6 and last["style"] < 0.5 * first["style"]
  # The objective's per-layer term is exactly this representation's loss.
  from nst_jax import vgg
  feats = vgg.features(params, jnp.asarray(result.image)[None], LAYERS)
  sfeats = vgg.features(params, jnp.asarray(style)[None], LAYERS)
  want = [1e3 * 0.5 * float(np.sum((np.mean(feats[l][0], (0, 1))
                                    - np.mean(sfeats[l][0], (0, 1))) ** 2))
          for l in LAYERS]
  targets = make_targets(params, jnp.asarray(content),
                                   [jnp.asarray(style)], spec)
  terms = objective.loss_terms(params, jnp.asarray(result.image), targets,
                               config.weights.arrays(spec), spec)
  np.testing.assert_allclose(np.asarray(terms["style_layers"]), want,
                             rtol=1e-4)
  multi = transfer.stylize_multiscale(params, content, [style], [16, 24],
                                      config)
  assert multi.iterations == 12 and [r["size"] for r in
                                     multi.loss_history][-1] == 24
  cells = grid.style_grid(params, content, [style, style[::-1]],
                          grid.GridAxes(style=(0, 1)), config)
  assert cells.images.shape == (2, 24, 24, 3)
  assert cells.terms[0]["style"] != cells.terms[1]["style"]
  synth = synthetic.synthesize(
      params, (16, 16), LAYERS,
      lambda key: {l: jnp.full((c,), 0.5) for l, c in
                   (("relu1_1", 64), ("relu2_1", 128))},
      iterations=6, style=ChannelMeans())
  assert synth.final_loss < 0.5 * synth.initial_loss
  # One representation per layer: the research one and a built-in.
  mixed = dataclasses.replace(spec, style={"relu1_1": ChannelMeans(),
                                           "relu2_1": R.Gram()})
  targets = make_targets(params, jnp.asarray(content),
                                   [jnp.asarray(style)], mixed)
  assert targets.style["relu1_1"].shape == (1, 64)
  assert targets.style["relu2_1"].shape == (1, 128, 128)
  mixed_run = transfer.stylize(params, content, [style],
                               config.replace(spec=mixed))
  assert mixed_run.loss_history[-1]["style"] < mixed_run.loss_history[0][
      "style"]


@dataclasses.dataclass(frozen=True)
class TiledChannelMeans(R.PositionAveraged):
  """ChannelMeans with the PositionAveraged capability, also written outside
  the package: its loss is derived from the two methods, and it is tiled."""
  scale: float = 1.0
  same_size = False

  def statistic(self, features):
    return jnp.mean(features, axis=(0, 1))

  def target(self, stacked):
    return stacked

  def position_sums(self, features, weights):
    return jnp.sum(weights[..., None] * features, axis=(0, 1))

  def loss_from_statistic(self, statistic, target):
    return self.scale * jnp.sum(jnp.square(statistic[None] - target), axis=-1)


def test_own_position_averaged_representation_runs_untiled_and_tiled(params):
  """A researcher's PositionAveraged class: its derived loss is
  ChannelMeans's; its tiled objective (a 40x36 image in 24 px tiles) and
  tiled targets equal the untiled ones; a tiled stylize lowers its loss; a
  class without the capability is refused in one line."""
  from nst_jax import tiling, transfer
  rng = _rng(3)
  f = jnp.asarray(rng.normal(size=(5, 6, 4)), jnp.float32)
  t = jnp.asarray(rng.normal(size=(2, 4)), jnp.float32)
  np.testing.assert_allclose(TiledChannelMeans(2.0).loss(f, t),
                             ChannelMeans(2.0).loss(f, t), rtol=1e-6)
  content, style = _img(40, 36, 1), _img(32, 28, 2)
  spec = objective.Spec(content_layers=("relu2_1",), style_layers=LAYERS,
                        style=TiledChannelMeans())
  targets = make_targets(params, content, [style], spec)
  tiled_targets = make_targets(params, content, [style], spec,
                                         tile_size=24)
  for a, b in zip(jax.tree_util.tree_leaves(tiled_targets),
                  jax.tree_util.tree_leaves(targets)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  weights = objective.make_weights(spec, content_weight=1.0,
                                   style_weight=1e3, tv_weight=0.0)
  p = tiling.plan("vgg16", spec.layers, (40, 36), 24)
  assert p.count > 1
  x = _img(40, 36, 3)
  grad = lambda fn: jax.jit(jax.value_and_grad(fn, has_aux=True))(
      x, params, targets, weights)
  (v0, t0), g0 = grad(objective.objective_function(spec))
  (v1, t1), g1 = grad(tiling.objective_function(spec, p))
  assert float(t0["style"]) > 0
  np.testing.assert_allclose(float(v1), float(v0), rtol=1e-5)
  np.testing.assert_allclose(t1["style_layers"], t0["style_layers"],
                             rtol=1e-4)
  np.testing.assert_allclose(g1, g0, rtol=1e-3, atol=1e-6 * float(
      jnp.abs(g0).max()))
  config = transfer.TransferConfig(
      spec=spec, weights=objective.LossWeights(style=1e3),
      solver=solvers.SolverConfig(maxiter=4), tile_size=24)
  run = transfer.stylize(params, np.asarray(content), [np.asarray(style)],
                         config, log_every=2)
  assert run.loss_history[-1]["style"] < run.loss_history[0]["style"]
  with pytest.raises(NSTError, match="ChannelMeans style representation at "
                     "relu1_1 is not a function of position averages"):
    tiling.check_tileable(dataclasses.replace(spec, style=ChannelMeans()))


def test_swd_redraw_runs_in_rounds(params):
  """With redraw_every = K the transfer re-draws the directions every K
  iterations: the records keep the run's iteration count, and the result
  differs from fixed directions."""
  from nst_jax import transfer
  content, style = np.asarray(_img(16, 16, 1)), np.asarray(_img(16, 16, 2))
  spec = objective.Spec(content_layers=(), style_layers=("relu1_1",),
                        style=R.SlicedWasserstein(8, 256, redraw_every=3))
  config = transfer.TransferConfig(spec=spec,
                                   solver=solvers.SolverConfig(maxiter=7))
  redrawn = transfer.stylize(params, content, [style], config, log_every=1)
  assert [r["iteration"] for r in redrawn.loss_history] == list(range(8))
  assert redrawn.iterations == 7
  fixed = transfer.stylize(params, content, [style], config.replace(
      spec=dict(style=R.SlicedWasserstein(8, 256))), log_every=1)
  assert not np.array_equal(fixed.image, redrawn.image)
  # Until the first re-draw the two runs are the same.
  np.testing.assert_allclose(fixed.loss_history[2]["style"],
                             redrawn.loss_history[2]["style"], rtol=1e-4)
  # Records keep their period across re-draws that do not divide it, and
  # evaluations are counted over the whole run.
  seen = []
  odd = transfer.stylize(
      params, content, [style], config.replace(solver=dict(maxiter=12)),
      log_every=5, on_progress=seen.append, progress_seconds=0.0)
  assert [r["iteration"] for r in odd.loss_history] == [0, 5, 10, 12]
  assert odd.iterations == 12 and odd.function_evaluations >= 12
  assert seen[-1].iteration == 12 and seen[-1].evaluations == (
      odd.function_evaluations)


def test_redraw_targets_per_layer_periods():
  """Each layer is re-drawn at the multiples of its own period."""
  spec = objective.Spec(content_layers=(), style_layers=LAYERS, style={
      "relu1_1": R.SlicedWasserstein(4, 16, redraw_every=2),
      "relu2_1": R.SlicedWasserstein(4, 16, redraw_every=3)})
  assert objective.redraw_every(spec) == 1
  p1, p2 = _feats((4, 4, 64), 1), _feats((4, 4, 128), 2)
  reps = dict(spec.style_by_layer())
  targets = objective.Targets({}, {
      "relu1_1": reps["relu1_1"].target(reps["relu1_1"].statistic(p1)[None]),
      "relu2_1": reps["relu2_1"].target(reps["relu2_1"].statistic(p2)[None])},
      jnp.ones((1,)))
  assert objective.redraw_targets(spec, targets, 1) is None
  changed = {}
  for it in (2, 3, 4, 6):
    t = objective.redraw_targets(spec, targets, it)
    changed[it] = [l for l in LAYERS if not np.array_equal(
        t.style[l]["directions"], targets.style[l]["directions"])]
  assert changed == {2: ["relu1_1"], 3: ["relu2_1"], 4: ["relu1_1"],
                     6: list(LAYERS)}


# --- synthetic styles (§6) --------------------------------------------------


def test_synthetic_grams():
  from nst_jax import synthetic
  g = np.asarray(synthetic.single_entry_gram(5, row=1, col=3, magnitude=2.0))
  assert g[1, 3] == g[3, 1] == 2.0 and np.count_nonzero(g) == 2
  r = np.asarray(jax.jit(functools.partial(
      synthetic.random_single_entry_gram, channels=6, magnitude=3.0))(
          jax.random.key(0)))
  assert np.count_nonzero(r) in (1, 2) and np.array_equal(r, r.T)
  s = np.asarray(synthetic.sparse_random_gram(jax.random.key(1), 200,
                                              sigma=2.0, density=0.1))
  assert np.array_equal(s, s.T) and s.min() >= 0
  upper = s[np.triu_indices(200)]
  assert abs(np.mean(upper > 0) - 0.1) < 0.01
  # |N(0, σ²)| has mean σ·sqrt(2/π).
  assert abs(upper[upper > 0].mean() - 2.0 * np.sqrt(2 / np.pi)) < 0.1


def test_synthesize_lowers_loss_and_redraws(params):
  from nst_jax import synthetic
  layers = ("relu1_1",)
  draw = lambda k: {"relu1_1": synthetic.sparse_random_gram(
      k, 64, sigma=0.5, density=0.1)}
  fixed = synthetic.synthesize(params, (16, 16), layers, draw, iterations=12)
  assert fixed.draws == 1 and fixed.final_loss < 0.5 * fixed.initial_loss
  redrawn = synthetic.synthesize(params, (16, 16), layers, draw, iterations=12,
                                 redraw_every=4)
  assert redrawn.draws == 3
  assert not np.array_equal(fixed.image, redrawn.image)
  assert np.all((redrawn.image >= 0) & (redrawn.image <= 1))


def test_central_moments_target_is_accurate_in_float32():
  """Order-5 central moments of squashed ReLU features from the shifted raw
  moments stay close to float64 (unshifted raw moments lost 5e-4)."""
  rng = _rng(11)
  f = np.maximum(rng.normal(scale=3.0, size=(64, 64, 8)), 0).astype(np.float32)
  rep = R.CentralMoments(order=5)
  target = np.asarray(jax.jit(lambda x: rep.target(rep.statistic(x)[None]))(f))
  x = 1 / (1 + np.exp(-f.astype(np.float64).reshape(-1, 8)))
  mu = x.mean(0)
  want = np.stack([mu] + [((x - mu) ** k).mean(0) for k in range(2, 6)])
  np.testing.assert_allclose(target[0], want, rtol=2e-5, atol=1e-9)
