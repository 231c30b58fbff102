"""Hypercolumns: several feature maps read at the same image positions.

A hypercolumn is the concatenation, at one image position, of the features of
several layers whose maps have different resolutions (Hariharan et al. 2015;
STROTSS, Kolkin et al. CVPR 2019, the RGB image and nine VGG-16 layers;
NNST, Kolkin et al. ECCV 2022, relu1_1 … relu4_3).

Array contract:

* a *map* is ``(h, w, C)`` (one image's feature map, NHWC without the batch
  axis); the maps of one call may differ in ``h``, ``w`` and ``C``;
* *positions* are ``(N, 2)`` ``(row, col)`` in the coordinates of the image
  the maps were computed from: integer pixel ``(i, j)`` is position
  ``(i, j)``; fractional positions are allowed;
* each map has a *scale* ``(s_row, s_col)``: how far one image pixel moves in
  the map (``2^-k`` after ``k`` 2×2 poolings; ``h / H`` for a map resized
  from the image's size). A position ``p`` is read in the map at
  ``p * s`` (``half_pixel=False``, STROTSS's convention) or at
  ``(p + 0.5) * s - 0.5`` (``half_pixel=True``, pixel centres aligned, the
  convention of ``torch.nn.functional.interpolate(align_corners=False)`` and
  ``jax.image.resize``);
* results are ``(N, ΣC)`` float, in the order of the maps.

Everything here is a pure function of arrays and static Python values
(shapes, counts, scales), so it runs under ``jax.jit`` and ``jax.vmap``.
Gradients flow to the maps (not to the positions, which are data).
"""

import math
from typing import Callable, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.errors import NSTError, param

# STROTSS's sampling grid keeps about one position per 128² image pixels
# (``stylize_objectives.objective_class.init_inds``, ``const = 128**2``).
PIXELS_PER_GRID_POINT = 128 ** 2

Sampler = Callable[[jax.Array, jax.Array], jax.Array]


def grid_strides(shape: Tuple[int, int],
                 pixels_per_point: int = PIXELS_PER_GRID_POINT
                 ) -> Tuple[int, int]:
  """The row and column strides of STROTSS's sampling grid for an image of
  ``shape = (H, W)``.

  ``q = (H·W) // pixels_per_point``; rows step by ``max(⌊√q⌋, 1)``,
  columns by ``max(⌈√q⌉, 1)`` (official ``init_inds``: ``stride_x`` with
  ``floor`` on the first image axis, ``stride_y`` with ``ceil`` on the
  second). 256×192 → (1, 2); 512×384 → (3, 4); up to 128² pixels → (1, 1).
  """
  h, w = shape
  root = math.sqrt((h * w) // pixels_per_point)
  return max(math.floor(root), 1), max(math.ceil(root), 1)


def grid_capacity(shape: Tuple[int, int],
                  pixels_per_point: int = PIXELS_PER_GRID_POINT,
                  mask=None) -> int:
  """The fewest grid points any offset leaves: the largest ``count`` that
  ``sample_positions`` draws from. Without ``mask`` the offsets
  ``(s_r − 1, s_c − 1)`` leave the fewest; with ``mask`` (a concrete
  ``(H, W)`` boolean array, not a traced one) only the grid points inside it
  count, the minimum taken over all offsets."""
  h, w = shape
  sr, sc = grid_strides(shape, pixels_per_point)
  if mask is None:
    return (-(-(h - sr + 1) // sr)) * (-(-(w - sc + 1) // sc))
  inside = np.asarray(mask, bool)
  if inside.shape != (h, w):
    raise ValueError(f"mask must be {(h, w)}, got {inside.shape}")
  return int(min(inside[o::sr, p::sc].sum()
                 for o in range(sr) for p in range(sc)))


def _check_shape(shape, name="shape"):
  if (len(shape) != 2
      or not all(isinstance(s, (int, np.integer)) for s in shape)
      or min(shape) < 1):
    raise ValueError(f"{name} must be two positive ints (H, W), got {shape!r}")


def sample_positions(key: jax.Array, shape: Tuple[int, int], count: int, *,
                     pixels_per_point: int = PIXELS_PER_GRID_POINT,
                     offset_key: jax.Array | None = None,
                     mask: jax.Array | None = None) -> jax.Array:
  """``count`` positions of an ``(H, W)`` image drawn as STROTSS draws them.

  Source: official ``stylize_objectives.objective_class`` (``init_inds``,
  ``shuffle_feature_inds``, ``get_feature_inds``). A grid with strides
  ``grid_strides(shape)`` and a random offset ``o_r ∈ [0, s_r)``,
  ``o_c ∈ [0, s_c)`` keeps the points ``(o_r + s_r·i, o_c + s_c·j)`` inside
  the image. The official code lists the grid's row indices and column
  indices (one entry per grid point), shuffles the two lists *independently*
  and pairs their first ``count`` entries; so a drawn position is a random
  grid row with a random grid column, drawn without replacement from those
  multisets (pairs may repeat; all lie on the grid). Here the two shuffles
  are random priorities over a fixed-size grid (static shapes for ``jit``),
  points outside the image sorted last.

  The official loop redraws the offset every 10 steps and the shuffles every
  step; pass ``offset_key`` (e.g. ``fold_in(seed, step // 10)``) to keep the
  offset apart from ``key``; without it the offset is drawn from ``key``.

  With ``mask`` (``(H, W)`` bool, a region of a guided transfer) only the
  grid points inside it are listed, as the official ``init_inds`` filters
  them; the independent shuffles then pair a masked point's row with another
  masked point's column, so a position may fall outside the mask (the
  official code's behaviour, kept). ``count`` must not exceed
  ``grid_capacity(shape, pixels_per_point, mask)``, which the caller checks
  on the concrete mask (here it may be traced).

  Args:
    key: a PRNG key.
    shape: the image's ``(H, W)``, static.
    count: how many positions (official: ``32**2`` = 1024), at most
      ``grid_capacity(shape)``.
  Returns:
    ``(count, 2)`` int32 ``(row, col)``.
  """
  _check_shape(shape)
  capacity = grid_capacity(shape, pixels_per_point)
  if not 1 <= count <= capacity:
    raise NSTError(
        f"{param('count')} {count} is not between 1 and the {capacity} "
        f"positions of the sampling grid of a {shape[0]}×{shape[1]} image")
  h, w = shape
  sr, sc = grid_strides(shape, pixels_per_point)
  k_offset, k_rows, k_cols = jax.random.split(key, 3)
  if offset_key is not None:
    k_offset = offset_key
  offset = jax.random.randint(k_offset, (2,), 0, jnp.array([sr, sc]))
  rows = offset[0] + sr * jnp.arange(-(-h // sr))
  cols = offset[1] + sc * jnp.arange(-(-w // sc))
  rr, cc = (a.ravel() for a in jnp.meshgrid(rows, cols, indexing="ij"))
  inside = (rr < h) & (cc < w)
  if mask is not None:
    inside = inside & _mask_at(mask, shape, rr, cc)

  def draw(k, values):
    priority = jnp.where(inside, jax.random.uniform(k, values.shape), 2.0)
    return values[jnp.argsort(priority)[:count]]

  return jnp.stack([draw(k_rows, rr), draw(k_cols, cc)], -1).astype(jnp.int32)


def _mask_at(mask, shape, rows, cols):
  """``mask[rows, cols]`` with the indices clipped to the image (points
  outside it are excluded by the caller)."""
  if mask.shape != tuple(shape):
    raise ValueError(f"mask must be {tuple(shape)}, got {mask.shape}")
  return mask.astype(bool)[jnp.clip(rows, 0, shape[0] - 1),
                           jnp.clip(cols, 0, shape[1] - 1)]


def sample_pixels(key: jax.Array, shape: Tuple[int, int], count: int, *,
                  mask: jax.Array | None = None) -> jax.Array:
  """``count`` distinct pixels of an ``(H, W)`` image, uniformly without
  replacement (those inside ``mask``, ``(H, W)`` bool, when given), as
  ``(count, 2)`` int32 ``(row, col)``.

  Source: official ``vgg_pt.Vgg16_pt.forward_cat`` (the style image's
  features: the pixels in the region shuffled, the first ``min(samps, n)``
  kept). With a mask, ``count`` must not exceed the pixels inside it (the
  caller checks on the concrete mask).
  """
  _check_shape(shape)
  h, w = shape
  if not 1 <= count <= h * w:
    raise NSTError(f"{param('count')} {count} is not between 1 and the "
                   f"{h * w} pixels of a {h}×{w} image")
  flat = jnp.arange(h * w)
  priority = jax.random.uniform(key, (h * w,))
  if mask is not None:
    priority = jnp.where(_mask_at(mask, shape, flat // w, flat % w),
                         priority, 2.0)
  flat = jnp.argsort(priority)[:count]
  return jnp.stack([flat // w, flat % w], -1).astype(jnp.int32)


def dense_positions(grid_shape: Tuple[int, int],
                    image_shape: Tuple[int, int]) -> jax.Array:
  """The centres of a ``(gh, gw)`` grid laid over an ``(H, W)`` image, in
  image coordinates: ``(i + ½)·H/gh − ½`` by ``(j + ½)·W/gw − ½``, row-major,
  ``(gh·gw, 2)`` float32. With ``grid_shape == image_shape`` these are the
  pixels themselves; read with ``half_pixel=True`` they reproduce a bilinear
  resize of each map to ``grid_shape`` (``torch.nn.functional.interpolate(
  mode="bilinear", align_corners=False)`` without antialiasing).
  """
  _check_shape(grid_shape, "grid_shape")
  _check_shape(image_shape, "image_shape")
  (gh, gw), (h, w) = grid_shape, image_shape
  rows = (jnp.arange(gh, dtype=jnp.float32) + 0.5) * (h / gh) - 0.5
  cols = (jnp.arange(gw, dtype=jnp.float32) + 0.5) * (w / gw) - 0.5
  rr, cc = jnp.meshgrid(rows, cols, indexing="ij")
  return jnp.stack([rr.ravel(), cc.ravel()], -1)


def _corners(coords: jax.Array, h: int, w: int):
  """Floor corners, fractions, and clipped neighbour indices of map
  coordinates ``(N, 2)`` in an ``(h, w)`` map."""
  base = jnp.floor(coords)
  frac = coords - base
  base = base.astype(jnp.int32)
  r0 = jnp.clip(base[:, 0], 0, h - 1)
  c0 = jnp.clip(base[:, 1], 0, w - 1)
  r1 = jnp.clip(base[:, 0] + 1, 0, h - 1)
  c1 = jnp.clip(base[:, 1] + 1, 0, w - 1)
  return r0, c0, r1, c1, frac


def sample_bilinear(feature_map: jax.Array, coords: jax.Array) -> jax.Array:
  """Bilinear reading of ``feature_map`` ``(h, w, C)`` at map coordinates
  ``coords`` ``(N, 2)`` ``(row, col)``; returns ``(N, C)``.

  ``f(r, c) = Σ (1−a)(1−b) F[r0, c0] + (1−a) b F[r0, c1] + a (1−b) F[r1, c0]
  + a b F[r1, c1]`` with ``r0 = ⌊r⌋``, ``a = r − r0`` (likewise ``c``), the
  indices ``r0``, ``r1 = r0 + 1`` clipped to the map (edge replicated).
  Source: official ``stylize_objectives.objective_class
  .spatial_feature_extract`` (the same weights, indices clipped after the
  weights are taken).
  """
  h, w, _ = feature_map.shape
  r0, c0, r1, c1, frac = _corners(coords, h, w)
  a = frac[:, :1].astype(feature_map.dtype)
  b = frac[:, 1:].astype(feature_map.dtype)
  at = lambda r, c: feature_map[r, c]
  return ((1 - a) * (1 - b) * at(r0, c0) + (1 - a) * b * at(r0, c1)
          + a * (1 - b) * at(r1, c0) + a * b * at(r1, c1))


def sample_nearest(feature_map: jax.Array, coords: jax.Array) -> jax.Array:
  """``feature_map[⌊r⌋, ⌊c⌋]`` ``(N, C)`` at map coordinates ``coords``
  ``(N, 2)``, indices clipped to the map. Source: official
  ``vgg_pt.Vgg16_pt.forward_cat`` (the style features: positions halved per
  pooling and truncated to ints)."""
  h, w, _ = feature_map.shape
  r0, c0, _, _, _ = _corners(coords, h, w)
  return feature_map[r0, c0]


def _scale_pair(scale) -> Tuple[float, float]:
  pair = tuple(float(s)
               for s in np.broadcast_to(np.asarray(scale, float), (2,)))
  if min(pair) <= 0:
    raise ValueError(f"a map's scale must be positive, got {scale!r}")
  return pair


def hypercolumns(maps: Sequence[jax.Array], positions: jax.Array,
                 scales: Sequence, *, half_pixel: bool = False,
                 sample: Sampler = sample_bilinear) -> jax.Array:
  """The maps read at the same image ``positions`` and concatenated.

  Args:
    maps: ``(h_i, w_i, C_i)`` arrays of one image.
    positions: ``(N, 2)`` ``(row, col)`` in image coordinates (int or float).
    scales: one per map, a float or a ``(s_row, s_col)`` pair (static): map
      coordinate ``p·s`` (or ``(p + ½)·s − ½`` with ``half_pixel``).
    half_pixel: align pixel centres rather than pixel corners (see module).
    sample: ``sample_bilinear`` (default) or ``sample_nearest``, or any
      ``(map (h, w, C), coords (N, 2)) -> (N, C)``.
  Returns:
    ``(N, Σ C_i)``, the maps' features in order.

  Source: STROTSS's official ``spatial_feature_extract`` (each map
  read at the image positions halved once per pooling, ``scales = 2^-k``).
  """
  if len(maps) != len(scales) or not maps:
    raise ValueError(f"one scale per map: {len(maps)} maps, "
                     f"{len(scales)} scales")
  if positions.ndim != 2 or positions.shape[1] != 2:
    raise ValueError(f"positions must be (N, 2), got {positions.shape}")
  pos = positions.astype(jnp.float32)
  columns = []
  for feature_map, scale in zip(maps, scales):
    if feature_map.ndim != 3:
      raise ValueError(f"maps must be (h, w, C), got {feature_map.shape}")
    s = jnp.asarray(_scale_pair(scale), jnp.float32)[None, :]
    coords = (pos + 0.5) * s - 0.5 if half_pixel else pos * s
    columns.append(sample(feature_map, coords))
  return jnp.concatenate(columns, axis=-1)


def dense_hypercolumns(maps: Sequence[jax.Array],
                       grid_shape: Tuple[int, int],
                       image_shape: Tuple[int, int], scales: Sequence, *,
                       half_pixel: bool = True,
                       sample: Sampler = sample_bilinear) -> jax.Array:
  """The hypercolumns at every point of a ``(gh, gw)`` grid over an
  ``(H, W)`` image (``dense_positions``), ``(gh, gw, Σ C_i)``.

  With ``half_pixel=True`` (default) and ``scales = (h_i/H, w_i/W)`` this is
  each map resized bilinearly to ``grid_shape`` (align_corners=False, no
  antialiasing) and concatenated along channels, the form NNST uses
  (features of relu1_1 … relu4_3 at a quarter of the image's resolution).
  """
  positions = dense_positions(grid_shape, image_shape)
  columns = hypercolumns(maps, positions, scales, half_pixel=half_pixel,
                         sample=sample)
  return columns.reshape(*grid_shape, columns.shape[-1])
