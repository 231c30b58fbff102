"""The objective's targets, computed once per run: the content features and
each style layer's target (Gatys et al. 2016, eqs. 1 and 5: ``P^l`` and
``A^l``, here each representation's ``target`` of the style images'
statistics), whole or tile by tile.

Above ``objective`` (the loss of one image) and ``tiling`` (the exact tiled
evaluation, which images larger than a tile are computed with), below the
problem layer (``nst_jax.problem``), which decides the tile size once and
passes it here.
"""

from typing import Sequence

import jax
import jax.numpy as jnp

from nst_jax import guided
from nst_jax import objective
from nst_jax import representations
from nst_jax import tiling
from nst_jax import vgg
from nst_jax.errors import NSTError, check_choice, param


def make_targets(params, content: jax.Array | None,
                 styles: Sequence[jax.Array], spec: objective.Spec,
                 style_blend_weights: Sequence[float] | None = None, *,
                 patches_per_style: int = 1,
                 patch_mode: str = "instances",
                 guides: "guided.Guides | None" = None,
                 tile_size: int = 0,
                 normalize_style: bool = False) -> objective.Targets:
  """Computes the content features and each style layer's target once.

  ``content`` is ``(H, W, 3)`` (or ``None`` for pure texture synthesis, with
  no content layers); each style image ``(H_s, W_s, 3)`` may have its own
  size unless a representation compares maps position by position
  (``same_size``; ``transfer.style_targets`` resizes them). Each style layer's
  target is ``representation.target`` of the styles' statistics stacked on a
  leading axis. Blend weights are normalised to sum to one (default: equal).

  Style patches: with ``patches_per_style = N > 1``, ``styles`` holds ``N``
  crops of each style image in turn (``random_crops``) and the blend weights
  are per style image; ``patch_mode="mean"`` averages the statistics of each
  image's crops into one target (the statistic of their union; only for
  representations whose statistics are position averages),
  ``"instances"`` keeps the ``N`` crops as ``N`` styles of weight ``b_s/N``.

  Guided representations (``nst_jax.guided``: masks, content-aware style)
  take ``guides`` (``guided.Guides``: the content's and each style's
  image-level guides) or make their own from the features at their
  ``guide_layer``; the optimised image's guides at each layer go into the
  target (``guided.image_guides``, ``guided.output_guides``).

  ``tile_size > 0`` computes the content features and the style statistics
  of images larger than a tile tile by tile (``nst_jax.tiling``: exact, in
  one tile's memory; position-averaged representations only, guided ones
  with each style's guides at the layer; a guide layer's features too).

  ``normalize_style`` divides each style's blend weight by its own scale
  ``n_s`` (``style_scales``: the style term's value at all-zero features,
  the loss of an image that has none of the painting), so that one β
  paints every painting about as strongly; the blend weights then sum to
  one before that division, and the targets' ``style_blend`` is
  ``b_s / n_s``.
  """
  network = vgg.network_of(params)
  def tiled(shape, layers):   # a plan when the image spans several tiles
    p = (tiling.plan(network, layers, tuple(shape[:2]), tile_size)
         if tile_size else None)
    return p if p is not None and p.count > 1 else None
  objective.check_spec(spec, network)
  if content is None:
    if spec.content_layers:
      raise NSTError("content layers were given but no content image")
    content_targets = {}
  else:
    p = tiled(content.shape, spec.layers)
    content_targets = (
        tiling.content_features(params, content, spec.content_layers,
                                spec.pooling, p) if p is not None
        else objective._content_targets(params, content, spec.content_layers,
                              spec.pooling))
  if spec.style_layers and not styles:
    raise NSTError("style layers were given but no style image")
  n = int(patches_per_style)
  check_choice("patch_mode", patch_mode, objective.PATCH_MODES)
  if n < 1 or len(styles) % n:
    raise NSTError(f"{len(styles)} style images cannot be split into groups "
                   f"of {n} patches")
  if n > 1 and patch_mode == "mean":
    for layer, rep in spec.style_by_layer():
      if not representations.averageable(rep):
        raise NSTError(
            f"patch mode 'mean' averages statistics over crops, which "
            f"{type(rep).__name__} at {layer} does not allow: use "
            "'instances'")
  if spec.same_size and content is not None:
    for s in styles:
      if tuple(s.shape[:2]) != tuple(content.shape[:2]):
        raise NSTError(
            f"the style representation compares maps position by position: "
            f"a {s.shape[1]}x{s.shape[0]} style image needs to be resized to "
            f"the content's {content.shape[1]}x{content.shape[0]}")
  style_targets = {}
  if spec.style_layers:
    def features_of(p, image, layer):   # a guide layer's, in tiles if big
      plan = tiled(image.shape, (layer,))
      return (objective._content_targets(p, image, (layer,), spec.pooling)[layer]
              if plan is None else tiling.content_features(
                  p, image, (layer,), spec.pooling, plan)[layer])
    per_image = guided.image_guides(params, content, styles, spec, guides,
                                    features_of)
    if per_image and n > 1:
      raise NSTError("style patches cannot be used with guided style "
                     "statistics (masks, content-aware style)")
    def statistics_of(i, s):
      own = {l: g.styles[i] for l, g in per_image.items()}
      plan = tiled(s.shape, spec.style_layers)
      if plan is None:
        return objective.style_statistics(params, s, spec, own)
      # Tiled; a guided layer's sums take the style's guides at that layer.
      return tiling.style_statistics(
          params, s, spec, plan, guided.guides_at_layers(
              spec, own, vgg.feature_shapes(network, s.shape[:2],
                                            spec.style_layers, spec.pooling)))
    stacked = objective.stack([statistics_of(i, s) for i, s in enumerate(styles)])
    if n > 1 and patch_mode == "mean":
      stacked = jax.tree_util.tree_map(
          lambda x: x.reshape(-1, n, *x.shape[1:]).mean(axis=1), stacked)
    out_guides = guided.output_guides(spec, per_image, vgg.feature_shapes(
        network, content.shape[:2], spec.style_layers, spec.pooling)
        ) if per_image else {}
    style_targets = objective.style_targets_of(stacked, spec, out_guides)
  n_images = len(styles) // n
  if style_blend_weights is None:
    style_blend_weights = [1.0] * n_images
  if len(style_blend_weights) != n_images:
    raise NSTError(
        f"got {len(style_blend_weights)} style blend weights for "
        f"{n_images} style images")
  if n > 1 and patch_mode == "instances":
    style_blend_weights = [b for b in style_blend_weights for _ in range(n)]
  blend = jnp.asarray(style_blend_weights, jnp.float32)
  if styles and (not bool(jnp.all(blend >= 0)) or float(blend.sum()) <= 0):
    raise NSTError("style blend weights must be >= 0 and not all zero")
  blend = blend / jnp.maximum(blend.sum(), 1e-30)
  if normalize_style and spec.style_layers:
    shape = (content if content is not None else styles[0]).shape[:2]
    if tiled(shape, spec.style_layers) is not None:
      check_scales_untiled(spec)
    blend = blend / style_scales(spec, style_targets, vgg.feature_shapes(
        network, shape, spec.style_layers, spec.pooling))
  return objective.Targets(content_targets, style_targets, blend)


# The positions of the zero feature map that ``style_scales`` evaluates a
# representation whose loss is a function of position averages or of the
# feature distribution (``scales_on_a_small_map``) at: its statistics of
# zeros do not depend on the count (Gram, moments, covariance, eigen,
# central moments) or converge with it (the sliced Wasserstein loss's
# quantiles: within 1 % at this size, tests/test_objective.py), so a map of
# at most this many rows and columns gives the value of the whole image's.
SCALE_EDGE = 64


def scales_on_a_small_map(representation) -> bool:
  """Whether ``style_scales`` may evaluate ``representation`` on a zero map
  of at most ``SCALE_EDGE`` rows and columns: a position-averaged or
  sampled (sliced Wasserstein) one without guides. Any other — guided,
  compared position by position, or a user's own whose loss may sum over
  positions — is evaluated at the optimised image's whole feature shape."""
  return (not representation.same_size and not guided.is_guided(
      representation) and (representations.position_averaged(representation)
                           or isinstance(representation,
                                         representations.Redrawn)))


def check_scales_untiled(spec: objective.Spec) -> None:
  """Refuses ``normalize_style`` for a tiled run whose style representation
  needs the whole image's zero feature map for its scale (not
  ``scales_on_a_small_map``): a tiled run never holds that map. Called
  before any work for every level (``problem.check_memory``)."""
  whole = [type(r).__name__ for _, r in spec.style_by_layer()
           if not scales_on_a_small_map(r)]
  if whole:
    raise NSTError(
        f"{param('normalize_style')} with {whole[0]} needs the whole image's "
        "features for each painting's scale, which a tiled run never holds: "
        f"use {param('tile_size')}=0 or a smaller {param('size')}")


def style_scales(spec: objective.Spec, style_targets, shapes, *,
                 layers=None, full: bool = False) -> jax.Array:
  """Each style's own scale ``n_s`` ``(S,)``: the mean over the style
  layers of ``representation.loss(0, A_s^l)``, the style term of an image
  whose features are all zero, ``n_s = (1/L) Σ_l ℓ_l(0; A_s^l)`` (for the
  Gram, ``Σ_ij (Â_ij)² / (4C²)``, Gatys et al. 2016 eq. 4 at ``G = 0``).

  ``style_targets`` are the targets' ``{layer: target}`` (``S`` styles on
  the leading axis); ``shapes`` ``{layer: (h, w, C)}`` the optimised
  image's feature shapes; ``layers`` the style layers averaged over
  (default all of the spec's: a grid cell passes its own set). A
  representation for which ``scales_on_a_small_map`` holds is evaluated on
  a zero map of at most ``SCALE_EDGE`` rows and columns (``full``: at the
  whole shape, as every other one is). The scale does not depend on the
  per-layer weights, so it is the painting's alone. A style whose scale is
  0 (a black painting) keeps scale 1.
  """
  layers = spec.style_layers if layers is None else tuple(layers)
  total = 0.0
  for layer, rep in spec.style_by_layer():
    if layer not in layers:
      continue
    h, w, c = shapes[layer]
    if not full and scales_on_a_small_map(rep):
      h, w = min(h, SCALE_EDGE), min(w, SCALE_EDGE)
    total = total + rep.loss(jnp.zeros((h, w, c), jnp.float32),
                             style_targets[layer])
  scale = total / len(layers)
  return jnp.where(scale > 0, scale, 1.0)
