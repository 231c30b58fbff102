"""nst_jax.hypercolumns against numpy float64 references written here: the
STROTSS sampling grid and its draws, bilinear and nearest reading, the
concatenation over maps of several resolutions, the dense grid (a bilinear
resize), jit and vmap paths, gradients to the maps, bad inputs."""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax import hypercolumns as hc
from nst_jax.errors import NSTError


# One compiled sampler for the tests that draw (static shape and count).
_positions = jax.jit(hc.sample_positions, static_argnums=(1, 2),
                     static_argnames="pixels_per_point")


def _map(h, w, c, seed):
  return np.random.default_rng(seed).normal(size=(h, w, c))


def _bilinear_reference(fmap, coords):
  """Float64 loops: floor corner, fractions, neighbours clipped to the map."""
  h, w, c = fmap.shape
  out = np.zeros((len(coords), c))
  for n, (r, col) in enumerate(np.asarray(coords, np.float64)):
    r0, c0 = int(np.floor(r)), int(np.floor(col))
    a, b = r - r0, col - c0
    for dr, wr in ((0, 1 - a), (1, a)):
      for dc, wc in ((0, 1 - b), (1, b)):
        rr = min(max(r0 + dr, 0), h - 1)
        cc = min(max(c0 + dc, 0), w - 1)
        out[n] += wr * wc * fmap[rr, cc]
  return out


def _nearest_reference(fmap, coords):
  h, w, _ = fmap.shape
  return np.stack([fmap[min(max(int(np.floor(r)), 0), h - 1),
                        min(max(int(np.floor(c)), 0), w - 1)]
                   for r, c in np.asarray(coords, np.float64)])


@pytest.mark.parametrize("shape, strides", [
    ((64, 48), (1, 1)), ((128, 128), (1, 1)), ((256, 192), (1, 2)),
    ((512, 384), (3, 4)), ((384, 512), (3, 4)), ((1024, 768), (6, 7))])
def test_grid_strides_as_the_official_init_inds(shape, strides):
  q = (shape[0] * shape[1]) // 128 ** 2
  assert strides == (max(int(np.floor(np.sqrt(q))), 1),
                     max(int(np.ceil(np.sqrt(q))), 1))
  assert hc.grid_strides(shape) == strides


def test_grid_capacity_is_the_smallest_grid_over_offsets():
  for shape, ppp in (((256, 192), 128 ** 2), ((37, 29), 100), ((10, 7), 1)):
    sr, sc = hc.grid_strides(shape, ppp)
    sizes = [len(range(o, shape[0], sr)) * len(range(p, shape[1], sc))
             for o in range(sr) for p in range(sc)]
    assert hc.grid_capacity(shape, ppp) == min(sizes)


def test_positions_lie_on_one_shifted_grid_inside_the_image():
  shape, ppp = (37, 29), 100          # strides (3, 4)
  sr, sc = hc.grid_strides(shape, ppp)
  assert (sr, sc) == (3, 4)
  draw = _positions
  offsets = set()
  for seed in range(12):
    p = np.asarray(draw(jax.random.key(seed), shape, 50,
                        pixels_per_point=ppp))
    assert p.shape == (50, 2) and p.dtype == np.int32
    assert (p >= 0).all() and (p[:, 0] < 37).all() and (p[:, 1] < 29).all()
    assert len(set(p[:, 0] % sr)) == 1 and len(set(p[:, 1] % sc)) == 1
    offsets.add((p[0, 0] % sr, p[0, 1] % sc))
  assert len(offsets) > 1             # the offset is drawn


def test_rows_and_columns_are_shuffled_independently_without_replacement():
  # Stride 1 and count = every grid point: the official lists hold each row
  # W times and each column H times; independent shuffles keep those counts
  # but pair them anew (so positions repeat).
  shape = (12, 9)
  p = np.asarray(_positions(jax.random.key(3), shape, 108))
  assert collections.Counter(p[:, 0]) == {r: 9 for r in range(12)}
  assert collections.Counter(p[:, 1]) == {c: 12 for c in range(9)}
  assert len(set(map(tuple, p))) < 108


def test_positions_are_reproducible_from_the_key_and_vmap_equals_a_loop():
  keys = jax.random.split(jax.random.key(0), 3)
  one = jax.jit(lambda k: hc.sample_positions(k, (20, 16), 64))
  batched = np.asarray(jax.jit(jax.vmap(one))(keys))
  for i, k in enumerate(keys):
    np.testing.assert_array_equal(batched[i], np.asarray(one(k)))
  np.testing.assert_array_equal(np.asarray(one(keys[0])),
                                np.asarray(one(keys[0])))
  assert not np.array_equal(batched[0], batched[1])


def test_offset_key_fixes_the_grid_offset():
  shape, ppp = (40, 40), 100          # strides (4, 4)
  fixed = jax.random.key(7)
  draw = jax.jit(lambda k: hc.sample_positions(
      k, shape, 20, pixels_per_point=ppp, offset_key=fixed))
  offs = {tuple(np.asarray(draw(jax.random.key(s)))[0] % 4)
          for s in range(6)}
  assert len(offs) == 1


def test_grid_capacity_with_a_mask_by_brute_force():
  shape, ppp = (23, 19), 50                  # strides (2, 3)
  mask = np.random.default_rng(4).uniform(size=shape) < 0.4
  sr, sc = hc.grid_strides(shape, ppp)
  counts = [sum(mask[r, c] for r in range(o, 23, sr) for c in range(p, 19, sc))
            for o in range(sr) for p in range(sc)]
  assert hc.grid_capacity(shape, ppp, mask) == min(counts)
  assert hc.grid_capacity(shape, ppp, np.ones(shape, bool)) \
      == hc.grid_capacity(shape, ppp)


def test_masked_positions_pair_rows_and_columns_of_masked_grid_points():
  # The official init_inds lists the grid points inside the region, then
  # shuffles their rows and columns independently: with count = all of
  # them, the drawn rows are exactly the masked points' rows (as a
  # multiset), likewise the columns.
  shape = (9, 7)
  mask = np.random.default_rng(5).uniform(size=shape) < 0.5
  n = int(mask.sum())
  p = np.asarray(jax.jit(lambda k, m: hc.sample_positions(k, shape, n,
                                                          mask=m))(
      jax.random.key(6), jnp.asarray(mask)))
  rows, cols = np.nonzero(mask)
  assert collections.Counter(p[:, 0]) == collections.Counter(rows)
  assert collections.Counter(p[:, 1]) == collections.Counter(cols)


def test_sample_pixels_in_a_mask():
  mask = np.zeros((10, 8), bool)
  mask[2:5, 3:8] = True                      # 15 pixels
  draw = jax.jit(lambda k, m: hc.sample_pixels(k, (10, 8), 15, mask=m))
  p = np.asarray(draw(jax.random.key(0), jnp.asarray(mask)))
  assert sorted(map(tuple, p)) == sorted(zip(*np.nonzero(mask)))
  everywhere = np.asarray(hc.sample_pixels(jax.random.key(0), (10, 8), 15))
  np.testing.assert_array_equal(
      everywhere, np.asarray(hc.sample_pixels(jax.random.key(0), (10, 8), 15,
                                              mask=jnp.ones((10, 8), bool))))


def test_sample_pixels_are_distinct_and_inside():
  p = np.asarray(hc.sample_pixels(jax.random.key(1), (7, 5), 35))
  assert sorted(map(tuple, p)) == [(r, c) for r in range(7) for c in range(5)]
  q = np.asarray(hc.sample_pixels(jax.random.key(2), (30, 20), 100))
  assert len(set(map(tuple, q))) == 100


@pytest.mark.parametrize("half_pixel", [False, True])
def test_hypercolumns_of_three_resolutions_against_numpy(half_pixel):
  maps = [_map(16, 12, 3, 0), _map(8, 6, 5, 1), _map(4, 3, 2, 2)]
  scales = [1.0, 0.5, (0.25, 0.25)]
  positions = np.array([[0, 0], [15, 11], [7.5, 3.25], [3, 10], [-1, 4],
                        [16.7, 2.1]])
  got = np.asarray(hc.hypercolumns([jnp.asarray(m, jnp.float32) for m in maps],
                                   jnp.asarray(positions), scales,
                                   half_pixel=half_pixel))
  want = []
  for m, s in zip(maps, (1.0, 0.5, 0.25)):
    coords = (positions + 0.5) * s - 0.5 if half_pixel else positions * s
    want.append(_bilinear_reference(m, coords))
  np.testing.assert_allclose(got, np.concatenate(want, 1), atol=1e-5)
  assert got.shape == (6, 10)


def test_sample_nearest_against_numpy():
  m = _map(8, 6, 4, 3)
  coords = np.array([[0, 0], [3.9, 2.5], [7.99, 5.0], [9.0, -2.0], [0.5, 5.9]])
  np.testing.assert_allclose(
      np.asarray(hc.sample_nearest(jnp.asarray(m, jnp.float32),
                                   jnp.asarray(coords, jnp.float32))),
      _nearest_reference(m, coords), atol=1e-6)


def test_official_halving_reads_integer_positions_of_pooled_maps():
  # STROTSS's content/output reading: positions halved per pooling, so an
  # odd position falls between two pooled rows with weights ½, ½.
  m = _map(4, 4, 2, 4)
  got = np.asarray(hc.hypercolumns([jnp.asarray(m, jnp.float32)],
                                   jnp.array([[3, 4]]), [0.5]))
  np.testing.assert_allclose(got[0], 0.5 * (m[1, 2] + m[2, 2]), atol=1e-6)


def test_dense_hypercolumns_are_a_bilinear_resize():
  maps = [_map(8, 6, 3, 5), _map(4, 3, 4, 6)]
  image = (8, 6)
  grid = (16, 12)                      # upsampling: jax.image.resize agrees
  scales = [(m.shape[0] / image[0], m.shape[1] / image[1]) for m in maps]
  got = np.asarray(hc.dense_hypercolumns(
      [jnp.asarray(m, jnp.float32) for m in maps], grid, image, scales))
  assert got.shape == (16, 12, 7)
  resize = jax.jit(lambda m: jax.image.resize(m, grid + (m.shape[2],),
                                              "bilinear"))
  want = np.concatenate([np.asarray(resize(jnp.asarray(m, jnp.float32)))
                         for m in maps], -1)
  np.testing.assert_allclose(got, want, atol=1e-5)
  # and a quarter-resolution grid (downsampling, no antialiasing) by loops
  small = np.asarray(hc.dense_hypercolumns(
      [jnp.asarray(maps[0], jnp.float32)], (2, 3), image, scales[:1]))
  rows = (np.arange(2) + 0.5) * 4 - 0.5
  cols = (np.arange(3) + 0.5) * 2 - 0.5
  coords = np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)
  np.testing.assert_allclose(small.reshape(6, 3),
                             _bilinear_reference(maps[0], coords), atol=1e-5)


def test_dense_positions_of_the_image_grid_are_its_pixels():
  p = np.asarray(hc.dense_positions((3, 2), (3, 2)))
  np.testing.assert_allclose(p, [[0, 0], [0, 1], [1, 0], [1, 1], [2, 0],
                                 [2, 1]], atol=1e-6)


def test_jit_and_vmap_over_a_batch_of_maps():
  batch = jnp.asarray(np.stack([_map(8, 6, 3, s) for s in range(3)]),
                      jnp.float32)
  pos = jnp.array([[1, 2], [7, 5], [4, 0]])
  f = jax.jit(lambda m: hc.hypercolumns([m, m[::2, ::2]], pos, [1.0, 0.5]))
  got = np.asarray(jax.vmap(f)(batch))
  for i in range(3):
    m = np.asarray(batch[i], np.float64)
    want = np.concatenate([_bilinear_reference(m, pos),
                           _bilinear_reference(m[::2, ::2], pos * 0.5)], 1)
    np.testing.assert_allclose(got[i], want, atol=1e-5)


def test_gradient_to_the_maps_matches_finite_differences():
  m = _map(4, 3, 2, 8)
  pos = jnp.array([[0.5, 1.25], [2.0, 2.75], [3.5, 0.0]])
  weights = _map(3, 2, 1, 9)[..., 0]

  def f(x):
    return jnp.sum(jnp.asarray(weights, jnp.float32)
                   * hc.hypercolumns([x], pos, [1.0]) ** 2)
  grad = np.asarray(jax.grad(f)(jnp.asarray(m, jnp.float32)))

  def f64(x):  # the same function in float64
    return np.sum(weights * _bilinear_reference(x, np.asarray(pos)) ** 2)
  eps, numeric = 1e-6, np.zeros_like(m)
  for idx in np.ndindex(m.shape):
    d = np.zeros_like(m)
    d[idx] = eps
    numeric[idx] = (f64(m + d) - f64(m - d)) / (2 * eps)
  np.testing.assert_allclose(grad, numeric, atol=1e-4)
  assert np.abs(numeric).max() > 0.1


def test_bad_inputs():
  key = jax.random.key(0)
  with pytest.raises(NSTError, match="`count`"):
    hc.sample_positions(key, (20, 20), 401)
  with pytest.raises(NSTError, match="`count`"):
    hc.sample_positions(key, (20, 20), 0)
  with pytest.raises(NSTError, match="`count`"):
    hc.sample_pixels(key, (4, 4), 17)
  with pytest.raises(ValueError, match="shape"):
    hc.sample_positions(key, (20,), 4)
  with pytest.raises(ValueError, match="mask must be"):
    hc.sample_pixels(key, (4, 4), 3, mask=jnp.ones((4, 5), bool))
  with pytest.raises(ValueError, match="mask must be"):
    hc.grid_capacity((4, 4), 1, np.ones((5, 4), bool))
  m = jnp.zeros((4, 4, 2))
  with pytest.raises(ValueError, match="one scale per map"):
    hc.hypercolumns([m, m], jnp.zeros((3, 2)), [1.0])
  with pytest.raises(ValueError, match=r"\(N, 2\)"):
    hc.hypercolumns([m], jnp.zeros((3, 3)), [1.0])
  with pytest.raises(ValueError, match=r"\(h, w, C\)"):
    hc.hypercolumns([m[None]], jnp.zeros((3, 2)), [1.0])
  with pytest.raises(ValueError, match="positive"):
    hc.hypercolumns([m], jnp.zeros((3, 2)), [0.0])
