"""nst_jax.strotss against numpy float64 references written here from the
paper and the official code's formulas: cosine and clipped Euclidean costs,
the relaxed EMD, the self-similarity content loss, moments, the palette term
and the combined loss; the official defaults and schedule; the features
(RGB + nine VGG-16 taps), targets and the per-step objective on random
weights (jit, reproducible from the key, gradients); the level starts; bad
inputs."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_image, tiny_vgg16_params
from nst_jax import hypercolumns as hc
from nst_jax import strotss
from nst_jax.errors import NSTError

# The official utils.C (rgb_to_yuv_pc), restated.
_YUV = np.array([[0.577350, 0.577350, 0.577350],
                 [-0.577350, 0.788675, -0.211325],
                 [-0.577350, -0.211325, 0.788675]])


# --- float64 references --------------------------------------------------

def _cos(x, y):
  out = np.zeros((len(x), len(y)))
  for i, a in enumerate(x):
    for j, b in enumerate(y):
      out[i, j] = 1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
  return out


def _euclid(x, y):
  d = x.shape[1]
  sq = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
  return np.sqrt(np.clip(sq, 1e-5, 1e5) / d)


def _remd(cost):
  return max(cost.min(axis=1).mean(), cost.min(axis=0).mean())


def _self_similarity(x, c):
  dx, dc = _cos(x, x), _cos(c, c)
  n = len(x)
  total = 0.0
  for j in range(n):                      # column j normalised by its sum
    total += np.abs(dx[:, j] / dx[:, j].sum() - dc[:, j] / dc[:, j].sum()).sum()
  return total / n                        # = n · mean over the n² entries


def _moment(x, s):
  return (np.abs(x.mean(0) - s.mean(0)).mean()
          + np.abs(np.cov(x.T, bias=True) - np.cov(s.T, bias=True)).mean())


def _palette(x, s):
  xy, sy = x @ _YUV.T, s @ _YUV.T
  return _remd(_cos(xy, sy) + _euclid(xy, sy))


def _total(x, c, s, alpha, mu):
  style = _remd(_cos(x, s)) + mu * (_moment(x, s)
                                    + _palette(x[:, :3], s[:, :3])
                                    / max(alpha, 1.0))
  return (alpha * _self_similarity(x, c) + style) / (alpha + 1 + mu)


def _bilinear(fmap, coords):
  h, w, _ = fmap.shape
  base = np.floor(coords).astype(int)
  a, b = (coords - base)[:, :1], (coords - base)[:, 1:]
  r0, c0 = np.clip(base[:, 0], 0, h - 1), np.clip(base[:, 1], 0, w - 1)
  r1, c1 = np.clip(base[:, 0] + 1, 0, h - 1), np.clip(base[:, 1] + 1, 0, w - 1)
  return ((1 - a) * (1 - b) * fmap[r0, c0] + (1 - a) * b * fmap[r0, c1]
          + a * (1 - b) * fmap[r1, c0] + a * b * fmap[r1, c1])


# One compiled loss for the formula tests (weights traced: no recompiling).
_loss = jax.jit(strotss.strotss_loss)


def _features(seed, n, d):
  return np.random.default_rng(seed).uniform(-0.2, 1.0, size=(n, d))


def _f32(x):
  return jnp.asarray(x, jnp.float32)


# --- the formulas --------------------------------------------------------

def test_cosine_and_euclidean_costs_against_numpy():
  x, y = _features(0, 5, 7), _features(1, 4, 7)
  np.testing.assert_allclose(np.asarray(strotss.cosine_distances(_f32(x),
                                                                 _f32(y))),
                             _cos(x, y), atol=1e-6)
  np.testing.assert_allclose(np.asarray(strotss.euclidean_distances(
      _f32(x), _f32(y))), _euclid(x, y), atol=1e-5)
  same = np.asarray(strotss.euclidean_distances(_f32(x), _f32(x)))
  np.testing.assert_allclose(np.diag(same), np.sqrt(1e-5 / 7), rtol=1e-3)


def test_relaxed_emd_takes_the_larger_of_the_two_relaxations():
  cost = np.array([[0.0, 5.0, 5.0], [0.0, 5.0, 5.0]])  # every row's min is 0
  assert float(strotss.relaxed_emd(_f32(cost))) == pytest.approx(10 / 3)
  c = _features(2, 6, 9)
  assert float(strotss.relaxed_emd(_f32(c))) == pytest.approx(_remd(c),
                                                              rel=1e-6)
  x, y = _features(3, 8, 11), _features(4, 13, 11)
  assert float(strotss.remd_loss(_f32(x), _f32(y))) == pytest.approx(
      _remd(_cos(x, y)), rel=1e-5)


def test_self_similarity_against_numpy():
  x, c = _features(5, 9, 6), _features(6, 9, 6)
  got = float(strotss.self_similarity_loss(_f32(x), _f32(c)))
  assert got == pytest.approx(_self_similarity(x, c), rel=1e-5)
  assert float(strotss.self_similarity_loss(_f32(x), _f32(2 * x))) \
      == pytest.approx(0, abs=1e-6)        # cosine: scale-free


def test_moments_and_moment_loss_against_numpy():
  x, s = _features(7, 10, 5), _features(8, 14, 5)
  mu, cov = strotss.moments(_f32(s))
  np.testing.assert_allclose(np.asarray(mu), s.mean(0), atol=1e-6)
  np.testing.assert_allclose(np.asarray(cov), np.cov(s.T, bias=True),
                             atol=1e-6)
  assert float(strotss.moment_loss(_f32(x), (mu, cov))) == pytest.approx(
      _moment(x, s), rel=1e-5)


def test_palette_against_numpy():
  x, s = _features(9, 7, 3), _features(10, 12, 3)
  assert float(strotss.palette_loss(_f32(x), _f32(s))) == pytest.approx(
      _palette(x, s), rel=1e-5)
  np.testing.assert_allclose(strotss.YUV, _YUV)


@pytest.mark.parametrize("alpha, mu", [(16.0, 1.0), (0.5, 1.0), (2.0, 0.3)])
def test_strotss_loss_combines_as_the_official_objective(alpha, mu):
  x, c, s = _features(11, 9, 8), _features(12, 9, 8), _features(13, 15, 8)
  value, terms = _loss(_f32(x), _f32(c), _f32(s), strotss.moments(_f32(s)),
                       content_weight=alpha, moment_weight=mu)
  assert float(value) == pytest.approx(_total(x, c, s, alpha, mu), rel=1e-5)
  assert float(terms["total"]) == float(value)
  assert float(terms["content"]) == pytest.approx(_self_similarity(x, c),
                                                  rel=1e-5)
  assert float(terms["palette"]) == pytest.approx(
      _palette(x[:, :3], s[:, :3]), rel=1e-5)
  assert set(terms) == {"content", "remd", "moment", "palette", "style",
                        "total"}


def test_strotss_loss_jit_vmap_and_gradient():
  xs = np.stack([_features(20 + i, 6, 5) for i in range(2)])
  c, s = _features(30, 6, 5), _features(31, 8, 5)
  moments = strotss.moments(_f32(s))

  def f(x):
    return strotss.strotss_loss(x, _f32(c), _f32(s), moments,
                                content_weight=4.0)[0]
  batched = np.asarray(jax.jit(jax.vmap(f))(_f32(xs)))
  for i in range(2):
    assert batched[i] == pytest.approx(_total(xs[i], c, s, 4.0, 1.0),
                                       rel=1e-5)
  grad = np.asarray(jax.jit(jax.grad(f))(_f32(xs[0])))
  eps, numeric = 1e-6, np.zeros_like(xs[0])
  for idx in np.ndindex(numeric.shape):
    d = np.zeros_like(xs[0])
    d[idx] = eps
    numeric[idx] = (_total(xs[0] + d, c, s, 4.0, 1.0)
                    - _total(xs[0] - d, c, s, 4.0, 1.0)) / (2 * eps)
  np.testing.assert_allclose(grad, numeric, atol=2e-4, rtol=1e-3)
  assert np.abs(numeric).max() > 1e-2


# --- defaults ---------------------------------------------------------------

def test_official_defaults_and_schedule():
  d = strotss.DEFAULTS
  assert (d.samples, d.pixels_per_point, d.style_samples, d.style_draws) == (
      1024, 16384, 1000, 5)
  assert (d.content_weight, d.moment_weight, d.iterations) == (16.0, 1.0, 250)
  assert d.layers == ("relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1",
                      "relu3_2", "relu3_3", "relu4_3", "relu5_3")
  assert strotss.channels() == 2179       # official fm = 3+2*64+128*2+…
  assert strotss.map_scales() == (1, 1, 1, .5, .5, .25, .25, .25, .125,
                                  .0625)
  levels = strotss.levels()
  assert [l.long_side for l in levels] == [64, 128, 256, 512]
  assert [l.content_weight for l in levels] == [16, 8, 4, 2]
  assert [l.learning_rate for l in levels] == [2e-3, 2e-3, 2e-3, 1e-3]
  assert [l.add_content_detail for l in levels] == [True, True, True, False]
  at_256 = strotss.levels(dataclasses.replace(d, max_scales=4))
  assert [(l.long_side, l.learning_rate) for l in at_256] == [
      (64, 2e-3), (128, 2e-3), (256, 1e-3)]


def test_optimizer_is_torch_rmsprop():
  level = strotss.levels()[0]
  opt = strotss.optimizer(level)
  grads = [np.array([0.3, -2.0, 1e-6]), np.array([-0.1, 0.5, 0.0]),
           np.array([1.0, 1.0, -3.0])]
  p, state = jnp.zeros(3), opt.init(jnp.zeros(3))
  ref, v = np.zeros(3), np.zeros(3)
  step = jax.jit(opt.update)
  for g in grads:                      # torch.optim.RMSprop, written out
    v = 0.99 * v + 0.01 * g * g
    ref = ref - 2e-3 * g / (np.sqrt(v) + 1e-8)
    updates, state = step(_f32(g), state)
    p = p + updates
  np.testing.assert_allclose(np.asarray(p), ref, rtol=1e-5, atol=1e-8)


def test_settings_refuse_bad_values():
  for change, name in (({"samples": 0}, "samples"),
                       ({"style_draws": 2.5}, "style_draws"),
                       ({"content_weight": -1.0}, "content_weight"),
                       ({"moment_weight": float("nan")}, "moment_weight"),
                       ({"max_scales": 1}, "max_scales"),
                       ({"pyramid_levels": -1}, "pyramid_levels"),
                       ({"layers": ("relu9_9",)}, "layers")):
    with pytest.raises(NSTError, match=f"`{name}`"):
      strotss.Settings(**change)


# --- features, targets, the objective (random VGG-16 weights) ------------

SMALL = strotss.Settings(samples=96, style_samples=40, style_draws=2)


@pytest.fixture(scope="module")
def setup():
  params = tiny_vgg16_params()
  content, style = random_image(32, 24, 0), random_image(24, 36, 1)
  targets = jax.jit(strotss.make_targets, static_argnums=3)(
      params, content, style, SMALL, jax.random.key(5))
  step = jax.jit(jax.value_and_grad(strotss.objective(SMALL), argnums=1,
                                    has_aux=True))
  return params, content, style, targets, step


def test_feature_maps_are_the_image_and_the_nine_taps(setup):
  params, content, _, targets, _ = setup
  maps = targets.content_maps
  assert [m.shape for m in maps] == [
      (32, 24, 3), (32, 24, 64), (32, 24, 64), (16, 12, 128), (16, 12, 128),
      (8, 6, 256), (8, 6, 256), (8, 6, 256), (4, 3, 512), (2, 1, 512)]
  np.testing.assert_array_equal(np.asarray(maps[0]), np.asarray(content))


def test_style_targets_are_nearest_reads_of_distinct_style_pixels(setup):
  params, _, style, targets, _ = setup
  assert targets.regions[0].style.shape == (80, 2179)
  maps = [np.asarray(m, np.float64)
          for m in strotss.feature_maps(params, style, SMALL)]
  poolings = (0, 0, 0, 1, 1, 2, 2, 2, 3, 4)  # before each tap, RGB first
  rows = []
  for k in jax.random.split(jax.random.key(5), 2):
    pos = np.asarray(hc.sample_pixels(k, (24, 36), 40))
    assert len(set(map(tuple, pos))) == 40
    rows.append(np.concatenate(
        [m[np.minimum(pos[:, 0] // 2 ** k, m.shape[0] - 1),
           np.minimum(pos[:, 1] // 2 ** k, m.shape[1] - 1)]
         for m, k in zip(maps, poolings)], 1))
  want = np.concatenate(rows)
  np.testing.assert_allclose(np.asarray(targets.regions[0].style), want, rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(np.asarray(targets.regions[0].style_mean), want.mean(0),
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.asarray(targets.regions[0].style_cov),
                             np.cov(want.T, bias=True), rtol=1e-3, atol=1e-4)
  assert float(targets.content_weight) == 16.0


def test_objective_is_the_loss_of_the_sampled_hypercolumns(setup):
  params, content, _, targets, step = setup
  image = random_image(32, 24, 2)
  key = jax.random.key(11)
  (value, terms), grad = step(params, image, targets, key)
  pos = np.asarray(strotss.positions(key, (32, 24), SMALL))
  assert pos.shape == (96, 2)            # the grid of 768 has room for 96
  scales = strotss.map_scales(SMALL)

  def columns(maps):
    return np.concatenate([_bilinear(np.asarray(m, np.float64), pos * s)
                           for m, s in zip(maps, scales)], 1)
  maps = jax.jit(strotss.feature_maps, static_argnums=2)(params, image, SMALL)
  x = columns(maps)
  c = columns(targets.content_maps)
  s = np.asarray(targets.regions[0].style, np.float64)
  assert float(value) == pytest.approx(_total(x, c, s, 16.0, 1.0), rel=1e-4)
  assert float(terms["content"]) == pytest.approx(_self_similarity(x, c),
                                                  rel=1e-4)
  assert grad.shape == image.shape and np.isfinite(np.asarray(grad)).all()
  assert float(jnp.abs(grad).max()) > 0


def test_objective_reproducible_from_the_key_and_compiled_once(setup):
  params, content, _, targets, step = setup
  image = random_image(32, 24, 3)
  a = step(params, image, targets, jax.random.key(1))[0][0]
  b = step(params, image, targets, jax.random.key(1))[0][0]
  c = step(params, image, targets, jax.random.key(2))[0][0]
  assert float(a) == float(b) and float(a) != float(c)
  (value, terms), _ = step(params, content, targets, jax.random.key(4))
  assert float(terms["content"]) == pytest.approx(0.0, abs=1e-6)
  assert step._cache_size() == 1


def test_objective_gradient_matches_finite_differences(setup):
  # Along one random direction of the image: (L(x + εv) − L(x − εv)) / 2ε
  # against ⟨∇L, v⟩, the positions held by the key. The loss has kinks (min,
  # max, |·|, ReLU) ~1e-2 apart along v, so ε is small and the match ~5 %
  # (float32); the formulas' gradients are matched closely above.
  params, _, _, targets, step = setup
  image = random_image(32, 24, 6)
  v = jnp.asarray(np.random.default_rng(7).normal(size=image.shape),
                  jnp.float32)
  key = jax.random.key(8)
  (_, _), grad = step(params, image, targets, key)
  eps = 1e-3
  plus = step(params, image + eps * v, targets, key)[0][0]
  minus = step(params, image - eps * v, targets, key)[0][0]
  numeric = (float(plus) - float(minus)) / (2 * eps)
  assert float(jnp.vdot(grad, v)) == pytest.approx(numeric, rel=0.1)


def test_objective_refuses_an_image_of_another_shape(setup):
  params, _, _, targets, _ = setup
  with pytest.raises(ValueError, match="differ in shape"):
    strotss.objective(SMALL)(params, random_image(24, 32, 0), targets,
                             jax.random.key(0))
  with pytest.raises(ValueError, match=r"\(n, D\)"):
    strotss.strotss_loss(jnp.zeros((4, 5)), jnp.zeros((3, 5)),
                         jnp.zeros((6, 5)), strotss.moments(jnp.zeros((6, 5))),
                         content_weight=1.0)


# --- guidance: regions paired by colour ------------------------------------

def _guides():
  """Content 32x24: region 0 the left 10 columns, region 1 the rest, region
  2 nowhere; style 24x36: region 0 the top 8 rows, 1 the rest, 2 a corner."""
  content = np.zeros((3, 32, 24), bool)
  content[0, :, :10] = True
  content[1, :, 10:] = True
  style = np.zeros((3, 24, 36), bool)
  style[0, :8] = True
  style[1, 8:] = True
  style[2, :2, :2] = True
  return content, style


@pytest.fixture(scope="module")
def guided(setup):
  params, content, style, _, _ = setup
  content_masks, style_masks = _guides()
  targets = strotss.make_targets(params, content, style, SMALL,
                                 jax.random.key(5),
                                 (content_masks, style_masks))
  return targets, content_masks, style_masks


def test_guided_targets_draw_each_regions_style_from_its_style_mask(
    setup, guided):
  params, _, style, _, _ = setup
  targets, content_masks, style_masks = guided
  # region 2 has no content pixel: left out
  assert len(targets.regions) == 2
  maps = [np.asarray(m, np.float64)
          for m in strotss.feature_maps(params, style, SMALL)]
  poolings = (0, 0, 0, 1, 1, 2, 2, 2, 3, 4)
  for k, region in enumerate(targets.regions):
    np.testing.assert_array_equal(np.asarray(region.mask), content_masks[k])
    rows = []
    for d in jax.random.split(jax.random.fold_in(jax.random.key(5), k), 2):
      pos = np.asarray(hc.sample_pixels(d, (24, 36), 40,
                                        mask=jnp.asarray(style_masks[k])))
      assert style_masks[k][pos[:, 0], pos[:, 1]].all()
      rows.append(np.concatenate(
          [m[np.minimum(pos[:, 0] // 2 ** p, m.shape[0] - 1),
             np.minimum(pos[:, 1] // 2 ** p, m.shape[1] - 1)]
           for m, p in zip(maps, poolings)], 1))
    want = np.concatenate(rows)
    np.testing.assert_allclose(np.asarray(region.style), want, rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(np.asarray(region.style_mean), want.mean(0),
                               rtol=1e-4, atol=1e-5)
  # the top rows' colours are not the bottom rows'
  top = np.asarray(targets.regions[0].style[:, :3])
  assert set(map(tuple, top.round(6))) <= set(
      map(tuple, np.asarray(style)[:8].reshape(-1, 3).round(6)))


def test_guided_objective_is_the_mean_of_the_regions_losses(setup, guided):
  params, _, _, _, _ = setup
  targets, content_masks, _ = guided
  counts = strotss.region_counts(targets, SMALL)
  assert counts == tuple(min(96, hc.grid_capacity((32, 24), SMALL
                                                  .pixels_per_point, m))
                         for m in content_masks[:2]) == (96, 96)
  loss = jax.jit(strotss.objective(SMALL, counts))
  image = random_image(32, 24, 2)
  key = jax.random.key(11)
  value, terms = loss(params, image, targets, key)
  maps = strotss.feature_maps(params, image, SMALL)
  scales = strotss.map_scales(SMALL)
  totals = []
  for k, region in enumerate(targets.regions):
    pos = np.asarray(strotss.positions(jax.random.fold_in(key, k), (32, 24),
                                       SMALL, mask=region.mask,
                                       count=counts[k]))
    # rows and columns of the region's grid points (shuffled apart)
    assert (pos[:, 1] < 10).all() if k == 0 else (pos[:, 1] >= 10).all()

    def columns(ms):
      return np.concatenate([_bilinear(np.asarray(m, np.float64), pos * s)
                             for m, s in zip(ms, scales)], 1)
    totals.append(_total(columns(maps), columns(targets.content_maps),
                         np.asarray(region.style, np.float64), 16.0, 1.0))
  assert float(value) == pytest.approx(np.mean(totals), rel=1e-4)
  assert float(terms["total"]) == float(value)
  with pytest.raises(ValueError, match="region_counts"):
    strotss.objective(SMALL)(params, image, targets, key)


def test_self_similarity_of_positions_all_alike_is_zero_not_nan():
  # a small region's independent row and column draws can pick one
  # position twice: the official code's 0/0 there is NaN
  same = jnp.ones((3, 5))
  assert float(strotss.self_similarity_loss(same, same)) == 0.0
  grad = jax.grad(lambda x: strotss.self_similarity_loss(x, same))(same)
  assert np.isfinite(np.asarray(grad)).all()


def test_guided_targets_refuse_masks_of_other_shapes(setup):
  params, content, style, _, _ = setup
  content_masks, style_masks = _guides()
  with pytest.raises(ValueError, match="guides must be"):
    strotss.make_targets(params, content, style, SMALL, jax.random.key(0),
                         (content_masks[:, :16], style_masks))
  empty = np.zeros_like(content_masks)
  with pytest.raises(NSTError, match="no guidance region"):
    strotss.make_targets(params, content, style, SMALL, jax.random.key(0),
                         (empty, style_masks))


# --- the images each level starts from -------------------------------------

def _down_up_reference(x):
  """c − up(down(c)) with PyTorch's align_corners=False reads, float64."""
  def resize_axis0(a, n_out):
    n_in = a.shape[0]
    out = np.zeros((n_out,) + a.shape[1:])
    for i in range(n_out):
      s = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
      lo = min(int(s), n_in - 1)
      hi = min(lo + 1, n_in - 1)
      out[i] = (1 - (s - lo)) * a[lo] + (s - lo) * a[hi]
    return out

  def resize(a, size):
    a = resize_axis0(a, size[0])
    return np.swapaxes(resize_axis0(np.swapaxes(a, 0, 1), size[1]), 0, 1)
  h, w = x.shape[:2]
  return x - resize(resize(x, (h // 2, w // 2)), (h, w))


def test_level_starts_against_numpy():
  content = np.random.default_rng(0).uniform(size=(10, 7, 3))
  style = np.random.default_rng(1).uniform(size=(6, 9, 3))
  detail = _down_up_reference(content)
  np.testing.assert_allclose(np.asarray(strotss.content_detail(
      _f32(content))), detail, atol=1e-5)
  np.testing.assert_allclose(
      np.asarray(strotss.first_image(_f32(content), _f32(style))),
      style.mean((0, 1)) + detail, atol=1e-5)
  previous = np.random.default_rng(2).uniform(size=(5, 4, 3))
  up = np.asarray(strotss.next_image(_f32(previous), _f32(content),
                                     add_detail=False))
  assert up.shape == (10, 7, 3)
  np.testing.assert_allclose(
      np.asarray(strotss.next_image(_f32(previous), _f32(content),
                                    add_detail=True)), up + detail,
      atol=1e-5)
