"""Neural Neighbor Style Transfer's parts, as values and pure functions.

Kolkin, Kučera, Paris, Sýkora, Shechtman & Shakhnarovich, "Neural Neighbor
Style Transfer" (ECCV 2022), as the official code does it
(github.com/nkolkin13/NeuralNeighborStyleTransfer: ``styleTransfer.py``,
``utils/stylize.py``, ``utils/featureExtract.py``, ``utils/distance.py``).

Array contract: an image is float32 ``(H, W, 3)``, RGB in [0, 1] (our VGG
normalises it itself, ``vgg.features``); ``params`` are VGG-16 weights
(``vgg.load_params("vgg16")``, torchvision's, as the official
``pretrained/vgg.py``). Hypercolumns are ``(H // 4, W // 4, C)`` with
``C = Σ_l C_l`` (2688 for relu1_1…relu4_3); a style pool is ``(P, C)``.

The method, per level of a coarse-to-fine schedule (``stylize.py``
``produce_stylization``):

1. ``style_pool``: hypercolumns of the style and of its 90°, 180°, 270°
   rotations, as one set of rows;
2. ``make_targets``: hypercolumns of ``alpha · content + (1 − alpha) ·
   current``, each replaced by its nearest pool row under centred cosine
   distance (``replace_features``); computed once per level;
3. ``loss(params, image, targets)``: the mean cosine distance between the
   image's hypercolumns and the targets, minimised by Adam (the run loop);
4. after the last level, the final pass (``final_loss``): per layer at full
   resolution, each sampled feature's distance to its nearest style feature,
   re-matched at every step, on positions drawn from a PRNG key.
"""

import dataclasses
import functools
from typing import NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import errors, networks, parameterize, vgg
from nst_jax.errors import NSTError

# ``featureExtract.extract_feats``: ``layer_l = [22, 20, 18, 15, 13, 11, 8, 6,
# 3, 1]``, indices into torchvision's ``vgg16().features``, i.e. relu1_1 …
# relu4_3 ("dropping conv5 block increases speed without harming quality").
LAYERS = ("relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2",
          "relu3_3", "relu4_1", "relu4_2", "relu4_3")


@dataclasses.dataclass(frozen=True)
class Settings:
  """NNST's settings; the defaults are the official ones (each with its
  source in the official repository).

  * ``alpha = 0.75``: content preservation, in [0, 1] (``styleTransfer.py
    --alpha``; 1 keeps the most content). Targets are searched from
    ``alpha · content + (1 − alpha) · current`` (``produce_stylization``:
    ``content_weight = 1 − alpha``, ``c_tmp = output · content_weight +
    content · (1 − content_weight)``), from the content alone at the
    coarsest level.
  * ``layers``: relu1_1 … relu4_3 (``extract_feats``, ``layer_l``).
  * ``feature_scale = 4``: hypercolumns at ``(H // 4, W // 4)``
    (``phi_cat``).
  * ``rotations = True``: the style pool holds the 90/180/270° rotations
    (``styleTransfer.py``: ``flip_aug = not --no_flip``).
  * ``size = 512``: the output's long side (``sz``; 1024 with
    ``--high_res``).
  * ``scales = 4``: coarse-to-fine levels at size / 8, / 4, / 2, / 1
    (``max_scls``; 5 with ``--high_res``).
  * ``pyramid_levels = 8``: Laplacian pyramid bands optimised
    (``produce_stylization``: ``pyr_levs``).
  * ``zero_bands = 3``: the start image is the content's pyramid with its
    3 finest bands zeroed (``z_max``: 3 below 1024 px, else 2).
  * ``iterations = 200``: Adam steps per level and in the final pass
    (``styleTransfer.py``: ``max_iter=200``).
  * ``learning_rate = 2e-3``: Adam's, on the pyramid bands (``lr=2e-3``).
  * ``final_pass = True``: a last round at full size with per-layer,
    re-matched targets (``optimize_output_im(..., final_pass=True)``).
  * ``sample_side = 64``: in the final pass, a layer whose long side
    exceeds it is sampled every ``side // 64`` positions from a random
    offset, the same for output and style (``optimize_output_im``).
  * ``colorize = True``: ``oklab.color_transfer`` after the last pass
    (``--dont_colorize`` turns it off).
  * ``chunk = 256`` (ours, not the official's): query rows per block of the
    nearest-neighbour search; memory ``chunk × P`` floats per block, and
    the result does not depend on it (each row's nearest neighbour is its
    own). A block's scores that stay in the CPU's caches are faster to
    reduce: the final pass's step at 256 px took 2.00–2.05 s in one thread
    with 256 rows, 2.01 with 512, 2.17 with 1024, 2.46 with 4096
    (2026-12-07, the 2-core VM). The
    official code centres each block of content rows by the block's own
    mean (its blocks are ``128² / max(1, P // 128²)`` rows, so at 256 px
    one block, at 512 px three or four); here the query rows are centred by
    the mean of all of them, at every size; ``official_blocks = True``
    centres them by blocks as the official code does
    (:func:`nearest_indices`).
  * ``official_reuse = True``: the final pass as the official loop runs
    it, slip included (:func:`final_loss`): the look of the published
    pictures and of the user studies. ``False`` compares every layer's own
    features, which paints more of the painting's large forms (on
    Tübingen × The Starry Night, swirls in the sky and moons in the
    river: docs/methods.md).
  """
  alpha: float = 0.75
  layers: Tuple[str, ...] = LAYERS
  feature_scale: int = 4
  rotations: bool = True
  size: int = 512
  scales: int = 4
  pyramid_levels: int = 8
  zero_bands: int = 3
  iterations: int = 200
  learning_rate: float = 2e-3
  final_pass: bool = True
  sample_side: int = 64
  colorize: bool = True
  chunk: int = 256
  official_blocks: bool = False
  official_reuse: bool = True

  def __post_init__(self):
    if not 0.0 <= self.alpha <= 1.0:
      raise NSTError(f"{errors.param('alpha')} must be in [0, 1], got "
                     f"{self.alpha}")
    if not self.layers:
      raise NSTError(f"{errors.param('layers')} must name at least one layer")
    vgg.check_layers("vgg16", self.layers)
    counts = {"feature_scale": self.feature_scale, "scales": self.scales,
              "pyramid_levels": self.pyramid_levels,
              "sample_side": self.sample_side, "chunk": self.chunk}
    for name, value in counts.items():
      if value < 1:
        raise NSTError(f"{errors.param(name)} must be >= 1, got {value}")
    for name, value in (("iterations", self.iterations),
                        ("zero_bands", self.zero_bands)):
      if value < 0:
        raise NSTError(f"{errors.param(name)} must be >= 0, got {value}")
    if not self.learning_rate > 0:
      raise NSTError(f"{errors.param('learning_rate')} must be > 0, got "
                     f"{self.learning_rate}")


DEFAULTS = Settings()


class Targets(NamedTuple):
  """The neighbour targets of one level: ``features`` ``(H // 4, W // 4,
  C)``, the style pool rows that replace the search image's hypercolumns."""
  features: jax.Array


def channels(settings: Settings = DEFAULTS) -> int:
  """Channels ``C`` of the hypercolumns: ``Σ_l C_l`` over
  ``settings.layers`` (2688 for the defaults)."""
  return sum(networks.layer_channels("vgg16", l) for l in settings.layers)


def smallest_side(settings: Settings = DEFAULTS) -> int:
  """The least image side whose deepest layer keeps one position and whose
  hypercolumns keep one row: 2 to the number of poolings before the
  deepest layer, at least ``feature_scale``."""
  names = networks.layer_names("vgg16")
  deepest = max(names.index(l) for l in settings.layers)
  pools = sum(1 for n in names[:deepest] if n.startswith("pool"))
  return max(2 ** pools, settings.feature_scale)




def _check_image(images, name: str, settings: Settings):
  if images.ndim != 4 or images.shape[-1] != 3:
    raise NSTError(f"{errors.param(name)} must be images (N, H, W, 3), got "
                   f"shape {tuple(images.shape)}")
  smallest = smallest_side(settings)
  if min(images.shape[1:3]) < smallest:
    raise NSTError(f"{errors.param(name)} is {images.shape[1]}x"
                   f"{images.shape[2]} px: NNST with these layers needs at "
                   f"least {smallest} px a side")


def hypercolumns(params, images, settings: Settings = DEFAULTS):
  """NNST's hypercolumns of ``images`` ``(N, H, W, 3)``: ``(N, H // s,
  W // s, C)``, ``s = settings.feature_scale``.

  ``h(p) = concat_l [ resize(F_l) / C_l ](p)`` over ``settings.layers``
  in their order (the defaults' is the network's, as the official), each layer's ``F_l`` divided by its channel count
  ``C_l`` "so # of channels doesn't dominate cosine distance" and resized
  bilinearly with the corner samples aligned, no antialiasing
  (``parameterize.resize_bilinear(..., align_corners=True)``; official
  ``featureExtract.phi_cat`` through ``misc.scl_spatial``: shrinking by 4
  reads, mostly, single positions of relu1).
  """
  _check_image(images, "images", settings)
  h, w = images.shape[1] // settings.feature_scale, \
      images.shape[2] // settings.feature_scale
  feats = vgg.features(params, images, settings.layers)
  resize = jax.vmap(functools.partial(
      parameterize.resize_bilinear, size=(h, w), align_corners=True))
  return jnp.concatenate(
      [resize(feats[l] / feats[l].shape[-1]) for l in settings.layers],
      axis=-1)


def rotations(image):
  """``image`` ``(H, W, 3)`` turned by 90° (clockwise), 180° and 270°:
  three arrays, ``(W, H, 3)``, ``(H, W, 3)``, ``(W, H, 3)`` (official
  ``extract_feats``: ``flip(im, [2]).transpose(2, 3)``, ``flip(im, [2,
  3])``, ``flip(im, [3]).transpose(2, 3)``)."""
  return (jnp.rot90(image, -1), jnp.rot90(image, 2), jnp.rot90(image, 1))


def _rotated_back(maps, turns: int):
  """Feature maps ``(1, h, w, C)`` of an image turned ``turns`` quarter
  turns, transposed to the unturned image's ``(h, w)`` layout (not turned
  back: only the set of rows matters), as ``extract_feats`` lays them."""
  return maps if turns % 2 == 0 else jnp.swapaxes(maps, 1, 2)


def style_pool(params, style, settings: Settings = DEFAULTS):
  """The rows that neighbours are drawn from: ``(P, C)``, the hypercolumns
  of ``style`` ``(H, W, 3)`` and, with ``settings.rotations``, of its three
  rotations (:func:`rotations`), ``P = 4 (H // 4)(W // 4)`` (official
  ``extract_feats(style, phi, flip_aug=True)``; rows in its order: the
  style's, then each rotation's transposed to ``(H // 4, W // 4)``)."""
  images = (style,) + (rotations(style) if settings.rotations else ())
  blocks = [_rotated_back(hypercolumns(params, im[None], settings), turns)
            for turns, im in zip((0, 1, 2, 3), images)]
  return jnp.concatenate(blocks, axis=1).reshape(-1, blocks[0].shape[-1])


def mix(current, content, alpha):
  """The image the targets are searched from: ``alpha · content + (1 −
  alpha) · current`` (official ``produce_stylization``, ``c_tmp``). The
  official ``current`` is the iterate's coarser bands with the content's
  finest band of the level (``syn_pyr([c_pyr[scl]] + s_pyr[scl + 1:])``);
  at the coarsest level it searches from the content alone (pass
  ``current = content``)."""
  return alpha * content + (1.0 - alpha) * current


def _unit(x):
  """Rows of ``x`` divided by their L2 norm, as ``distance.
  pairwise_distances_cos`` (no clamp there; a floor of 1e-30 here keeps an
  all-zero row finite)."""
  norm = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))
  return x / jnp.maximum(norm, 1e-30)


def centred_unit(x):
  """Rows of ``x`` ``(N, C)`` centred by their mean row, then of unit norm:
  ``(x_i − x̄) / ‖x_i − x̄‖`` (official ``distance.center`` then
  ``pairwise_distances_cos``)."""
  return _unit(x - jnp.mean(x, axis=0, keepdims=True))


def centred_cosine_distances(x, y):
  """All ``(N, M)`` centred cosine distances between the rows of ``x``
  ``(N, C)`` and ``y`` ``(M, C)``: ``d_ij = 1 − ⟨x̂_i, ŷ_j⟩``, each set
  centred by its own mean (:func:`centred_unit`; official
  ``distance.pairwise_distances_cos_center``). For small sets and tests;
  :func:`nearest_indices` never holds the whole matrix."""
  return 1.0 - jnp.einsum("nc,mc->nm", centred_unit(x), centred_unit(y),
                          precision=jax.lax.Precision.HIGHEST)


def _nearest_unit(queries_unit, pool_unit, chunk: int):
  """Index of the largest ``⟨q_i, p_j⟩`` over ``j`` for each row ``i``,
  ``chunk`` query rows at a time (``lax.map``)."""
  n, c = queries_unit.shape
  chunk = min(chunk, n)
  blocks = -(-n // chunk)
  padded = jnp.pad(queries_unit, ((0, blocks * chunk - n), (0, 0)))

  def block(q):
    scores = jnp.einsum("qc,pc->qp", q, pool_unit,
                        precision=jax.lax.Precision.HIGHEST)
    return jnp.argmax(scores, axis=1).astype(jnp.int32)

  return jax.lax.map(block, padded.reshape(blocks, chunk, c)).reshape(-1)[:n]


def official_block(pool_rows: int) -> int:
  """Rows of the official search's blocks, ``128² // max(1, P // 128²)``
  for a pool of ``P`` rows (``stylize.replace_features``: ``stride``)."""
  return 128 ** 2 // max(1, pool_rows // 128 ** 2)


def nearest_indices(queries, pool, *, chunk: int = DEFAULTS.chunk,
                    centre_block: Optional[int] = None):
  """For each row of ``queries`` ``(N, C)`` the index ``(N,)`` int32 of its
  nearest row of ``pool`` ``(P, C)`` under centred cosine distance:
  ``argmin_j 1 − ⟨q̂_i, p̂_j⟩`` (:func:`centred_cosine_distances`; official
  ``stylize.replace_features``), the first on ties. Memory: ``chunk × P``
  scores at a time.

  The queries are centred by their mean (``centre_block=None``), or each
  run of ``centre_block`` rows by its own mean, as the official search
  centres its blocks of :func:`official_block` ``(P)`` rows (the same as
  the whole mean when one block holds every query: at 256 px, not at
  512 px).
  """
  if queries.ndim != 2 or pool.ndim != 2 or queries.shape[1] != pool.shape[1]:
    raise ValueError(f"nearest_indices takes (N, C) and (P, C), got "
                     f"{queries.shape} and {pool.shape}")
  if centre_block is None:
    unit = centred_unit(queries)
  else:
    unit = jnp.concatenate([centred_unit(queries[i:i + centre_block])
                            for i in range(0, queries.shape[0], centre_block)])
  return _nearest_unit(unit, centred_unit(pool), chunk)


def make_targets(params, current_image, content, pool,
                 settings: Settings = DEFAULTS, *, alpha=None) -> Targets:
  """One level's neighbour targets (official ``produce_stylization``, then
  ``replace_features``).

  ``current_image``, ``content``: ``(H, W, 3)`` at the level's size;
  ``pool``: :func:`style_pool` ``(P, C)`` of the style at the same level.
  The hypercolumns of :func:`mix` ``(current_image, content,
  settings.alpha)`` are each replaced by the pool row nearest under
  centred cosine distance (:func:`nearest_indices`). Returns
  :class:`Targets` with ``features`` ``(H // 4, W // 4, C)``; nothing of it
  is differentiated (the official code builds it under ``no_grad``).
  ``alpha`` (a scalar, may be traced) replaces ``settings.alpha``: one
  compiled program for every alpha.
  """
  if current_image.shape != content.shape:
    raise NSTError(f"{errors.param('current_image')} must have the content's "
                   f"shape {content.shape}, got {current_image.shape}")
  c = channels(settings)
  if pool.ndim != 2 or pool.shape[1] != c:
    raise NSTError(f"{errors.param('pool')} must be (P, {c}) hypercolumns of "
                   f"the style for these layers, got shape {pool.shape}")
  search = mix(current_image, content,
               settings.alpha if alpha is None else alpha)
  queries = hypercolumns(params, search[None], settings)[0]
  h, w, _ = queries.shape
  block = official_block(pool.shape[0]) if settings.official_blocks else None
  index = nearest_indices(queries.reshape(-1, c), pool, chunk=settings.chunk,
                          centre_block=block)
  return Targets(jax.lax.stop_gradient(pool[index].reshape(h, w, c)))


def feature_norms(x):
  """``sqrt(clip(Σ_c x², 1e-8, 1e8))`` over the last axis, kept
  (official ``featureExtract.get_feat_norms``)."""
  return jnp.sqrt(jnp.clip(jnp.sum(x * x, axis=-1, keepdims=True), 1e-8,
                           1e8))


def cosine_loss(features, targets):
  """Mean cosine distance between matching rows: ``mean_p (1 − ⟨f_p /
  ‖f_p‖, t_p / ‖t_p‖⟩)`` over all leading axes, norms by
  :func:`feature_norms`, not centred (official ``optimize_output_im``:
  ``(1. - (target_feats_n * cur_feats_n).sum(1)).mean()``). ``features``
  and ``targets`` ``(..., C)`` of one shape; returns a scalar."""
  if features.shape != targets.shape:
    raise ValueError(f"cosine_loss takes two arrays of one shape, got "
                     f"{features.shape} and {targets.shape}")
  f = features / feature_norms(features)
  t = targets / feature_norms(targets)
  return jnp.mean(1.0 - jnp.sum(f * t, axis=-1))


def loss(params, image, targets: Targets, settings: Settings = DEFAULTS):
  """The per-step objective of a level: ``(value, {"nnst_cosine":
  value})``, the :func:`cosine_loss` between the hypercolumns of ``image``
  ``(H, W, 3)`` and ``targets.features`` (official ``optimize_output_im``,
  ``final_pass=False``). ``settings`` is static under ``jax.jit``."""
  expected = (image.shape[0] // settings.feature_scale,
              image.shape[1] // settings.feature_scale, channels(settings))
  if targets.features.shape != expected:
    raise NSTError(f"{errors.param('targets')} are {targets.features.shape} "
                   f"but the image's hypercolumns are {expected}: make the "
                   f"targets at the image's size")
  feats = hypercolumns(params, image[None], settings)[0]
  value = cosine_loss(feats, targets.features)
  return value, {"nnst_cosine": value}


# The final pass ------------------------------------------------------------

def layer_pool(params, style, settings: Settings = DEFAULTS):
  """Per-layer style features for the final pass: a tuple, one
  ``(R, H_l, W_l, C_l)`` per layer of ``settings.layers`` (``R = 4`` with
  rotations, else 1), the style's maps at full resolution and each
  rotation's transposed to ``(H_l, W_l)`` (official ``optimize_output_im``,
  ``final_pass=True``: ``s_feat``)."""
  _check_image(style[None], "style", settings)
  images = (style,) + (rotations(style) if settings.rotations else ())
  per_image = [
      [_rotated_back(f, turns) for f in
       vgg.features(params, im[None], settings.layers).values()]
      for turns, im in zip((0, 1, 2, 3), images)]
  return tuple(jnp.concatenate(maps, axis=0) for maps in zip(*per_image))


def sample_stride(height: int, width: int, side: int = DEFAULTS.sample_side):
  """The final pass's sampling step of a ``height × width`` map: ``max //
  side`` when ``max(height, width) > side``, else 1 (official
  ``optimize_output_im``)."""
  longest = max(height, width)
  return longest // side if longest > side else 1


def sample_grid(maps, offset, stride: int):
  """Every ``stride``-th position of ``maps`` ``(..., H, W, C)`` from
  ``offset = (a, b)`` (traced ints in ``[0, stride)``): ``maps[..., a +
  stride·i, b + stride·j, :]`` for ``i < H // stride``, ``j < W //
  stride``. The official ``maps[:, :, a::stride, b::stride]`` takes one
  more row or column for small offsets when ``stride`` does not divide the
  side; a fixed count keeps shapes static."""
  h, w = maps.shape[-3:-1]
  rows = offset[0] + stride * jnp.arange(h // stride)
  cols = offset[1] + stride * jnp.arange(w // stride)
  return jnp.take(jnp.take(maps, rows, axis=-3), cols, axis=-2)


def nearest_distances(queries, pool, *, chunk: int = DEFAULTS.chunk):
  """``min_j`` of the centred cosine distance of each row of ``queries``
  ``(N, C)`` to the rows of ``pool`` ``(M, C)``: ``(N,)``. The index is
  found without gradient (:func:`nearest_indices`, chunked); the distance
  to it is differentiated through ``queries`` (their centring included),
  which is the gradient of the minimum (official ``optimize_output_im``:
  ``torch.min(d_mat, 0)``). ``pool`` receives no gradient."""
  q = centred_unit(queries)
  p = jax.lax.stop_gradient(centred_unit(pool))
  index = _nearest_unit(jax.lax.stop_gradient(q), p, chunk)
  return 1.0 - jnp.sum(q * p[index], axis=-1)


def _as_torch_view(maps, channels: int):
  """``maps`` ``(h, w, C)`` laid out as PyTorch's ``(1, C, h, w)`` and read
  as ``(channels, -1)`` (``.view(1, channels, -1)``), returned as rows
  ``(C h w / channels, channels)``."""
  if maps.size % channels:
    raise ValueError(f"cannot view {maps.shape} as {channels} channels")
  return jnp.transpose(maps, (2, 0, 1)).reshape(channels, -1).T


def final_loss(params, image, pool, key, settings: Settings = DEFAULTS):
  """The final pass's objective: ``(value, {"nnst_<layer>": term})``.

  For each layer ``l`` of ``settings.layers``: the image's map ``F_l``
  ``(H_l, W_l, C_l)`` and the style maps ``pool[l]`` (:func:`layer_pool`)
  sampled on one grid (:func:`sample_grid`, stride
  :func:`sample_stride`, offset drawn from ``key``, a new one per layer),
  and ``term_l = mean_i min_j d(F_i, S_j)``, the centred cosine distance
  (:func:`nearest_distances`, each set centred by its own sampled mean);
  ``value = Σ_l term_l`` (official ``optimize_output_im``,
  ``final_pass=True``; it draws offsets with Python's ``random`` at every
  step; here the run loop passes a new ``key`` each step).

  The official loop has a slip: for a layer of at most ``sample_side``
  positions a side it reuses the last sampled layer's output features
  (``cs_tmp`` is assigned only when sampling), their memory in PyTorch's
  NCHW order read as this layer's channel count (``.view(1, chans, -1)``),
  against this layer's whole style maps: at 512 px relu4_1…relu4_3 read
  relu3_3's samples, at 256 px relu3_1…relu4_3 read relu2_2's. The slip
  is the default (``settings.official_reuse=True``): it gives the official
  pictures their look (LPIPS to the official picture 0.25 with it, 0.40
  without, Tübingen × The Starry Night at 256 px); with ``False`` every
  layer compares its own features.
  """
  if len(pool) != len(settings.layers):
    raise NSTError(f"{errors.param('pool')} holds {len(pool)} layers, the "
                   f"settings name {len(settings.layers)}")
  feats = vgg.features(params, image[None], settings.layers)
  keys = jax.random.split(key, len(settings.layers))
  terms, last_sampled = {}, None
  for layer, style_maps, k in zip(settings.layers, pool, keys):
    current = feats[layer][0]
    h, w, c = current.shape
    stride = sample_stride(h, w, settings.sample_side)
    offset = jax.random.randint(k, (2,), 0, stride)
    rows = sample_grid(style_maps, offset, stride).reshape(-1, c)
    if (settings.official_reuse and max(h, w) <= settings.sample_side
        and last_sampled is not None):
      queries = _as_torch_view(last_sampled, c)
    else:
      last_sampled = sample_grid(current, offset, stride)
      queries = last_sampled.reshape(-1, c)
    terms[f"nnst_{layer}"] = jnp.mean(
        nearest_distances(queries, rows, chunk=settings.chunk))
  return sum(terms.values()), terms
