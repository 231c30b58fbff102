"""NNST's parts (nst_jax.nnst) against float64 numpy references written here
from the official code (nkolkin13/NeuralNeighborStyleTransfer:
utils/featureExtract.py, utils/distance.py, utils/stylize.py, utils/misc.py),
on random VGG-16 weights and tiny images."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_image, tiny_vgg16_params
from nst_jax import nnst, vgg
from nst_jax.errors import NSTError

# Three layers keep the tests cheap; the defaults' ten are checked by shape.
SMALL = nnst.Settings(layers=("relu1_2", "relu2_1", "relu3_1"), chunk=7)


# VGG maps for the references and the functions under test, jitted once:
# one compilation per shape and settings, shared by the tests.
features = jax.jit(vgg.features, static_argnums=2)
hypercolumns = jax.jit(nnst.hypercolumns, static_argnums=2)
style_pool = jax.jit(nnst.style_pool, static_argnums=2)
make_targets = jax.jit(nnst.make_targets, static_argnums=4)
final_loss = jax.jit(nnst.final_loss, static_argnums=4)


@pytest.fixture(scope="module")
def params():
  return tiny_vgg16_params()


@pytest.fixture(scope="module")
def images():
  return {"content": random_image(24, 20, 1), "style": random_image(16, 24, 2),
          "current": random_image(24, 20, 3)}


def np_resize_aligned(x, h, w):
  """F.interpolate(x, (h, w), mode='bilinear', align_corners=True) on one
  (H, W, C) array, one output pixel at a time."""
  x = np.asarray(x, np.float64)
  hi, wi = x.shape[:2]
  out = np.zeros((h, w, x.shape[2]))

  def source(j, n_out, n_in):
    pos = j * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    lo = min(int(np.floor(pos)), n_in - 1)
    return lo, min(lo + 1, n_in - 1), pos - lo

  for i in range(h):
    r0, r1, fr = source(i, h, hi)
    for j in range(w):
      c0, c1, fc = source(j, w, wi)
      top = (1 - fc) * x[r0, c0] + fc * x[r0, c1]
      bottom = (1 - fc) * x[r1, c0] + fc * x[r1, c1]
      out[i, j] = (1 - fr) * top + fr * bottom
  return out


def np_hypercolumns(params, image, settings):
  """featureExtract.phi_cat: each layer / its channels, resized to H//4,
  concatenated (the VGG maps themselves from vgg.features, tested
  elsewhere)."""
  feats = features(params, jnp.asarray(image)[None], settings.layers)
  h, w = image.shape[0] // 4, image.shape[1] // 4
  return np.concatenate(
      [np_resize_aligned(np.asarray(feats[l][0], np.float64) / feats[l].shape[-1],
                         h, w) for l in settings.layers], axis=-1)


def np_centred_cosine(x, y):
  """distance.pairwise_distances_cos_center: rows of x against rows of y."""
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  x = x - x.mean(0)
  y = y - y.mean(0)
  x = x / np.sqrt((x ** 2).sum(1))[:, None]
  y = y / np.sqrt((y ** 2).sum(1))[:, None]
  return 1.0 - x @ y.T


def np_cosine_loss(f, t):
  """optimize_output_im's hypercolumn loss with get_feat_norms."""
  f = np.asarray(f, np.float64)
  t = np.asarray(t, np.float64)
  nf = np.sqrt(np.clip((f ** 2).sum(-1, keepdims=True), 1e-8, 1e8))
  nt = np.sqrt(np.clip((t ** 2).sum(-1, keepdims=True), 1e-8, 1e8))
  return np.mean(1.0 - ((f / nf) * (t / nt)).sum(-1))


@pytest.fixture(scope="module")
def pool(params, images):
  return style_pool(params, images["style"], SMALL)


def test_default_settings_are_the_official_ones():
  d = nnst.DEFAULTS
  assert (d.alpha, d.feature_scale, d.rotations, d.size, d.scales) == (
      0.75, 4, True, 512, 4)
  assert (d.iterations, d.learning_rate, d.pyramid_levels, d.zero_bands,
          d.sample_side, d.final_pass, d.colorize) == (
              200, 2e-3, 8, 3, 64, True, True)
  assert d.layers == ("relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1",
                      "relu3_2", "relu3_3", "relu4_1", "relu4_2", "relu4_3")
  shape = jax.eval_shape(
      lambda p, x: nnst.hypercolumns(p, x), tiny_vgg16_params(),
      jax.ShapeDtypeStruct((1, 64, 48, 3), jnp.float32)).shape
  assert shape == (1, 16, 12, 2688)   # 64+64+128+128+3*256+3*512


def test_hypercolumns_against_numpy(params, images):
  image = images["content"]
  got = hypercolumns(params, image[None], SMALL)
  want = np_hypercolumns(params, image, SMALL)
  assert got.shape == (1, 6, 5, 64 + 128 + 256)
  np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)


def test_style_pool_holds_the_rotations_in_official_order(params, images,
                                                          pool):
  style = np.asarray(images["style"])
  # extract_feats: flip(H) then transpose, flip(H, W), flip(W) then
  # transpose; the turned images' maps transposed back, stacked along H.
  turned = [style, np.flip(style, 0).transpose(1, 0, 2),
            np.flip(style, (0, 1)), np.flip(style, 1).transpose(1, 0, 2)]
  blocks = []
  for k, im in enumerate(turned):
    h = np_hypercolumns(params, np.ascontiguousarray(im), SMALL)
    blocks.append(h.transpose(1, 0, 2) if k % 2 else h)
  want = np.concatenate(blocks, axis=0).reshape(-1, blocks[0].shape[-1])
  assert pool.shape == (4 * 4 * 6, 448)
  np.testing.assert_allclose(pool, want, rtol=1e-5, atol=1e-6)
  plain = style_pool(params, images["style"],
                     nnst.Settings(layers=SMALL.layers, rotations=False))
  np.testing.assert_array_equal(plain, pool[:24])


@pytest.mark.parametrize("chunk", [1, 4, 7, 1000])
def test_nearest_indices_against_full_matrix(chunk):
  rng = np.random.default_rng(7)
  queries = rng.normal(size=(23, 6)) + 0.5
  rows = rng.normal(size=(40, 6)) - 0.3
  want = np.argmin(np_centred_cosine(queries, rows), axis=1)
  got = jax.jit(nnst.nearest_indices, static_argnames="chunk")(
      jnp.asarray(queries, jnp.float32), jnp.asarray(rows, jnp.float32),
      chunk=chunk)
  np.testing.assert_array_equal(got, want)
  np.testing.assert_allclose(
      nnst.centred_cosine_distances(jnp.asarray(queries, jnp.float32),
                                    jnp.asarray(rows, jnp.float32)),
      np_centred_cosine(queries, rows), atol=2e-6)
  # Centring matters: uncentred cosine picks other neighbours here.
  plain = queries @ rows.T / np.outer(np.linalg.norm(queries, axis=1),
                                      np.linalg.norm(rows, axis=1))
  assert (np.argmax(plain, axis=1) != want).any()
  batched = jax.vmap(lambda q: nnst.nearest_indices(q, jnp.asarray(
      rows, jnp.float32), chunk=chunk))(jnp.asarray(
          np.stack([queries, queries[::-1]]), jnp.float32))
  np.testing.assert_array_equal(batched[1], want[::-1])


def test_centre_block_centres_each_block_by_its_mean():
  """replace_features centres each block of query rows by the block's mean;
  its blocks are 128² // max(1, P // 128²) rows."""
  assert [nnst.official_block(p) for p in (12800, 16384, 51712, 65536)] == [
      16384, 16384, 5461, 4096]
  rng = np.random.default_rng(11)
  rows = rng.normal(size=(60, 4)) + 0.3
  queries = rng.normal(size=(13, 4)) * [1.0, 0.5, 2.0, 1.0]
  queries[:5] += 2.0                         # the first block's mean differs
  want = np.concatenate([
      np.argmin(np_centred_cosine(queries[i:i + 5], rows), axis=1)
      for i in (0, 5, 10)])
  q, r = jnp.asarray(queries, jnp.float32), jnp.asarray(rows, jnp.float32)
  got = jax.jit(nnst.nearest_indices, static_argnames=("chunk",
                                                       "centre_block"))(
      q, r, chunk=4, centre_block=5)
  np.testing.assert_array_equal(got, want)
  whole = nnst.nearest_indices(q, r, chunk=4)
  assert (np.asarray(whole) != want).any()
  np.testing.assert_array_equal(
      nnst.nearest_indices(q, r, chunk=4, centre_block=13), whole)


@pytest.mark.parametrize("alpha", [0.75, 1.0])
def test_make_targets_against_numpy(params, images, pool, alpha):
  settings = nnst.Settings(layers=SMALL.layers, chunk=SMALL.chunk,
                           alpha=alpha)
  content, current = images["content"], images["current"]
  for a in (alpha, 0.0):
    np.testing.assert_allclose(
        nnst.mix(current, content, a),
        a * np.asarray(content, np.float64)
        + (1 - a) * np.asarray(current, np.float64), atol=1e-7)
  got = make_targets(params, current, content, pool, settings)
  search = jnp.asarray(alpha * np.asarray(content) + (1 - alpha)
                       * np.asarray(current), jnp.float32)
  queries = np_hypercolumns(params, search, settings)
  index = np.argmin(np_centred_cosine(queries.reshape(-1, 448), pool), 1)
  np.testing.assert_array_equal(got.features,
                                np.asarray(pool)[index].reshape(6, 5, 448))


def test_cosine_loss_against_numpy_with_gradient():
  rng = np.random.default_rng(8)
  f = rng.normal(size=(3, 4, 5))
  t = rng.normal(size=(3, 4, 5))
  t[0, 0] = 1e-5                       # Σt² = 5e-10 < 1e-8: the clamp acts
  fj, tj = jnp.asarray(f, jnp.float32), jnp.asarray(t, jnp.float32)
  np.testing.assert_allclose(nnst.cosine_loss(fj, tj), np_cosine_loss(f, t),
                             rtol=1e-6)
  grad = jax.grad(nnst.cosine_loss)(fj, tj)
  h = 1e-6
  for index in [(0, 1, 2), (2, 3, 0), (1, 0, 4)]:
    e = np.zeros_like(f)
    e[index] = h
    fd = (np_cosine_loss(f + e, t) - np_cosine_loss(f - e, t)) / (2 * h)
    np.testing.assert_allclose(grad[index], fd, rtol=1e-4, atol=1e-7)
  with pytest.raises(ValueError, match="one shape"):
    nnst.cosine_loss(fj, tj[:2])


@pytest.fixture(scope="module")
def level_loss():
  return jax.jit(nnst.loss, static_argnums=3)


def test_loss_value_terms_vmap_and_gradient(params, images, pool, level_loss):
  content, current = images["content"], images["current"]
  targets = make_targets(params, current, content, pool, SMALL)
  value, terms = level_loss(params, current, targets, SMALL)
  want = np_cosine_loss(np_hypercolumns(params, current, SMALL),
                        targets.features)
  np.testing.assert_allclose(value, want, rtol=1e-5)
  assert set(terms) == {"nnst_cosine"} and terms["nnst_cosine"] == value
  # At its own hypercolumns the loss is 0.
  own = nnst.Targets(hypercolumns(params, current[None], SMALL)[0])
  assert abs(float(level_loss(params, current, own, SMALL)[0])) < 1e-6
  # vmap over images and their targets equals separate calls.
  batch = jnp.stack([current, content])
  both = nnst.Targets(jnp.stack([targets.features, own.features]))
  values, _ = jax.jit(jax.vmap(lambda x, t: nnst.loss(params, x, t, SMALL)))(
      batch, both)
  np.testing.assert_allclose(values[0], value, rtol=1e-5)
  np.testing.assert_allclose(values[1],
                             level_loss(params, content, own, SMALL)[0],
                             rtol=1e-5)
  # The gradient against central differences along a random direction, in
  # float64: in float32 the differences are rounding below a step of 1e-5
  # and cross the random weights' ReLU kinks above it (1e-3: 6 % off);
  # in float64 they agree to 1e-7 at a step of 1e-6.
  with jax.enable_x64(True):
    f64 = lambda tree: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64),
                                    tree)
    p64, x64, t64 = f64(params), f64(current), f64(targets)
    # Compiled (the loss once for both differences), not op by op.
    loss64 = jax.jit(lambda x: nnst.loss(p64, x, t64, SMALL)[0])
    grad = jax.jit(jax.grad(loss64))(x64)
    direction = jnp.asarray(
        np.random.default_rng(9).normal(size=current.shape), jnp.float64)
    eps = 1e-6
    fd = (loss64(x64 + eps * direction) - loss64(x64 - eps * direction)) \
        / (2 * eps)
    assert grad.dtype == jnp.float64
    np.testing.assert_allclose(jnp.vdot(grad, direction), fd, rtol=1e-5)
    assert float(jnp.vdot(grad, direction)) != 0.0


def test_sample_grid_against_slicing():
  x = np.arange(2 * 7 * 9 * 2).reshape(2, 7, 9, 2).astype(np.float32)
  for a, b in [(0, 0), (1, 2), (2, 1)]:
    got = nnst.sample_grid(jnp.asarray(x), jnp.array([a, b]), 3)
    np.testing.assert_array_equal(got, x[:, a::3, b::3][:, :2, :3])
  assert nnst.sample_stride(64, 48) == 1
  assert nnst.sample_stride(65, 10) == 1
  assert nnst.sample_stride(512, 384) == 8
  assert nnst.sample_stride(100, 200, 64) == 3


def _final_reference(params, image, style, settings, offsets=None):
  """optimize_output_im(final_pass=True), float64, one given offset pair
  per layer (stride 1 when offsets is None), every layer its own maps."""
  feats = features(params, jnp.asarray(image)[None], settings.layers)
  style = np.asarray(style)
  turned = [style, np.flip(style, 0).transpose(1, 0, 2),
            np.flip(style, (0, 1)), np.flip(style, 1).transpose(1, 0, 2)]
  maps = [features(params, jnp.asarray(np.ascontiguousarray(im))[None],
                   settings.layers) for im in turned]
  total = 0.0
  for i, layer in enumerate(settings.layers):
    cur = np.asarray(feats[layer][0], np.float64)
    pool = [np.asarray(m[layer][0], np.float64) for m in maps]
    pool = [p.transpose(1, 0, 2) if k % 2 else p for k, p in enumerate(pool)]
    s = nnst.sample_stride(*cur.shape[:2], settings.sample_side)
    a, b = (0, 0) if offsets is None else offsets[i]
    n_h, n_w = cur.shape[0] // s, cur.shape[1] // s
    q = cur[a::s, b::s][:n_h, :n_w].reshape(-1, cur.shape[-1])
    rows = np.concatenate([p[a::s, b::s][:p.shape[0] // s, :p.shape[1] // s]
                           .reshape(-1, cur.shape[-1]) for p in pool])
    total += np_centred_cosine(q, rows).min(axis=1).mean()
  return total


# relu1_2 (24x20) sampled every 3rd position, relu2_1 (12x10) every one.
FINAL = nnst.Settings(layers=("relu1_2", "relu2_1"), sample_side=8, chunk=5)


@pytest.fixture(scope="module")
def final_pool(params, images):
  return jax.jit(nnst.layer_pool, static_argnums=2)(params, images["style"],
                                                   FINAL)


@pytest.fixture(scope="module")
def final_value_and_grad(params, final_pool):
  return jax.jit(jax.value_and_grad(
      lambda x, key: nnst.final_loss(params, x, final_pool, key, FINAL),
      has_aux=True))


def test_final_loss_against_numpy(params, images, final_pool,
                                  final_value_and_grad):
  style, image = images["style"], images["current"]
  assert [p.shape for p in final_pool] == [(4, 16, 24, 64), (4, 8, 12, 128)]
  assert [nnst.sample_stride(24, 20, 8), nnst.sample_stride(12, 10, 8)] == [
      3, 1]
  key = jax.random.key(3)
  (value, terms), _ = final_value_and_grad(image, key)
  assert set(terms) == {"nnst_relu1_2", "nnst_relu2_1"}
  # The offsets are the documented draw: one split key per layer.
  offsets = [tuple(np.asarray(jax.random.randint(k, (2,), 0, s)))
             for k, s in zip(jax.random.split(key, 2), (3, 1))]
  np.testing.assert_allclose(
      value, _final_reference(params, image, style, FINAL, offsets),
      rtol=1e-5)
  # Another key, other positions at relu1_2: another value.
  other = final_value_and_grad(image, jax.random.key(4))[0][1]
  assert other["nnst_relu2_1"] == terms["nnst_relu2_1"]


def test_final_loss_gradient_is_the_gradient_of_the_minimum(
    params, images, final_pool, final_value_and_grad):
  image = images["current"]
  key = jax.random.key(1)

  def full_matrix(x):
    """The official form: the whole distance matrix, min over the pool."""
    feats = vgg.features(params, x[None], FINAL.layers)
    keys = jax.random.split(key, len(FINAL.layers))
    total = 0.0
    for layer, maps, k in zip(FINAL.layers, final_pool, keys):
      cur = feats[layer][0]
      s = nnst.sample_stride(*cur.shape[:2], FINAL.sample_side)
      offset = jax.random.randint(k, (2,), 0, s)
      q = nnst.sample_grid(cur, offset, s).reshape(-1, cur.shape[-1])
      rows = nnst.sample_grid(maps, offset, s).reshape(-1, cur.shape[-1])
      total = total + jnp.mean(
          jnp.min(nnst.centred_cosine_distances(q, rows), axis=1))
    return total

  (value, _), grad = final_value_and_grad(image, key)
  want_value, want_grad = jax.jit(jax.value_and_grad(full_matrix))(image)
  np.testing.assert_allclose(value, want_value, rtol=1e-5)
  np.testing.assert_allclose(grad, want_grad, rtol=1e-4,
                             atol=1e-4 * float(jnp.abs(want_grad).max()))
  assert float(jnp.abs(grad).max()) > 0


def test_final_loss_official_reuse_against_the_official_loop(
    params, images, final_pool):
  """optimize_output_im's final-pass loop as written: ``cs_tmp`` is set only
  for layers longer than sample_side, and every layer reads it through
  ``.view(1, chans, -1)`` of its NCHW memory. With sample_side 12, relu1_2
  (24x20) is sampled every 2nd position and relu2_1 (12x10) reads relu1_2's
  samples as 128 channels."""
  settings = nnst.Settings(layers=FINAL.layers, sample_side=12,
                           official_reuse=True)
  image, key = images["current"], jax.random.key(5)
  value, terms = final_loss(params, image, final_pool, key, settings)
  feats = features(params, image[None], settings.layers)
  offsets = [np.asarray(jax.random.randint(k, (2,), 0, s)) for k, s in
             zip(jax.random.split(key, 2), (2, 1))]
  total, cs_tmp = 0.0, None
  for i, layer in enumerate(settings.layers):
    cur = np.asarray(feats[layer][0], np.float64)
    s_tmp = np.asarray(final_pool[i], np.float64)
    chans = cur.shape[-1]
    if max(cur.shape[:2]) > 12:
      stride = max(cur.shape[:2]) // 12
      a, b = offsets[i]
      s_tmp = s_tmp[:, a::stride, b::stride]
      cs_tmp = cur[a::stride, b::stride]
    rows = s_tmp.reshape(-1, chans)
    columns = np.transpose(cs_tmp, (2, 0, 1)).reshape(chans, -1).T
    total += np_centred_cosine(columns, rows).min(axis=1).mean()
  np.testing.assert_allclose(value, total, rtol=1e-5)
  own = final_loss(params, image, final_pool, key,
                   nnst.Settings(layers=FINAL.layers, sample_side=12,
                                 official_reuse=False))[1]
  assert own["nnst_relu1_2"] == terms["nnst_relu1_2"]
  assert abs(float(own["nnst_relu2_1"] - terms["nnst_relu2_1"])) > 1e-3


def test_bad_inputs(params, images, pool):
  content, current = images["content"], images["current"]
  with pytest.raises(NSTError, match="`alpha` must be in"):
    nnst.Settings(alpha=1.5)
  with pytest.raises(NSTError, match="`layers`"):
    nnst.Settings(layers=("relu9_9",))
  with pytest.raises(NSTError, match="`layers`"):
    nnst.Settings(layers=())
  with pytest.raises(NSTError, match="`chunk`"):
    nnst.Settings(chunk=0)
  with pytest.raises(NSTError, match="`learning_rate`"):
    nnst.Settings(learning_rate=0.0)
  with pytest.raises(NSTError, match="`iterations`"):
    nnst.Settings(iterations=-1)
  # relu4_x: 3 poolings before; relu5_1: 4; relu1_1: none, but 1/4 size.
  assert nnst.smallest_side() == 8
  assert nnst.smallest_side(nnst.Settings(layers=("relu5_1",))) == 16
  assert nnst.smallest_side(nnst.Settings(layers=("relu1_1",))) == 4
  assert nnst.smallest_side(nnst.Settings(layers=("relu1_1",),
                                          feature_scale=1)) == 1
  with pytest.raises(NSTError, match="at least 8 px"):
    nnst.hypercolumns(params, jnp.zeros((1, 7, 32, 3)))
  with pytest.raises(NSTError, match="`images`"):
    nnst.hypercolumns(params, jnp.zeros((1, 32, 32, 4)))
  with pytest.raises(NSTError, match="`current_image`"):
    nnst.make_targets(params, current[:-4], content, pool, SMALL)
  with pytest.raises(NSTError, match="`pool`"):
    nnst.make_targets(params, current, content, pool[:, :10], SMALL)
  with pytest.raises(NSTError, match="`targets`"):
    nnst.loss(params, current[:-4], nnst.Targets(jnp.zeros((6, 5, 448))),
              SMALL)
  with pytest.raises(NSTError, match="`pool`"):
    nnst.final_loss(params, current, (jnp.zeros((4, 24, 20, 64)),),
                    jax.random.key(0), SMALL)
  with pytest.raises(ValueError, match="nearest_indices"):
    nnst.nearest_indices(jnp.zeros((3, 4)), jnp.zeros((5, 3)))
