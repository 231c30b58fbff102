"""The exact objective of a whole image, evaluated tile by tile.

Content and total-variation losses are sums over positions, and the style
losses of the position-averaged representations (``Gram``, ``Eigen``,
``Moments``, ``Covariance``, ``CentralMoments``, and the guided ``GuidedGram``,
``ContentAware``, ``GuidedMoments``: those with ``position_sums`` and
``loss_from_statistic``, see ``nst_jax.representations``) are functions of
averages over positions. So
the loss of an ``(H, W, 3)`` image and its gradient come out exactly, in the
memory of one tile, from two passes over equal windows of the image:

1. each window is run through the network; each layer's features are exact on
   the positions its tile *owns* (the window is the tile's interior plus a
   margin at least the receptive-field radius of the deepest layer, and it
   starts on the pooling grid); their weighted position sums are added up
   over the tiles (``position_sums``), and with the content loss's sum they
   give every term of the objective (``objective.loss_terms``'s formula);
2. the derivative of the loss with respect to each layer's sums is formed
   once (ordinary reverse mode from the terms), and each window is run again
   and back-propagated with it (``jax.vjp``; with ``Plan.reuse_last`` the last
   group of windows keeps its pass-1 activations instead); the windows'
   image gradients are added into the whole image's.

Guided statistics weigh positions by the optimised image's guides
(Gatys et al. 2017 §4: ``G_k = Σ_p g_k F Fᵀ / Σ_p g_k``, a quotient of two
position sums): a representation whose sums need such per-position data
names it (``position_maps(target)``, the guides ``(K, H_l, W_l)`` of the
whole layer), and each window gets its slice, zero past the image (owned
weights are 0 there), as a constant of the sums (zero cotangent).

Pass 2 is the backward rule of the sums (``jax.custom_vjp``), so
``jax.value_and_grad`` of ``objective_function(spec, plan)`` is the exact
value and gradient: the solvers (L-BFGS, Adam), snapshots and Ctrl-C use it
unchanged. A plain evaluation (progress records) runs pass 1 only.

Image borders: a window may reach past the image (the canvas is the image
zero-padded at the bottom and right); after the input scaling and after
every layer the positions outside the image at that layer are zeroed
(``vgg.features(on_layer=…)``), which is exactly the whole image's
per-layer zero padding and its "VALID" pooling. Nothing is approximated:
tiled and untiled agree to float32 rounding (tests: 1e-4 relative).

Sources: the objective is Gatys, Ecker & Bethge (2016) eqs. 1-7; the Gram is
an average over positions (eq. 3 divided by ``M``), which is what makes the
decomposition exact. Array contract as ``nst_jax.objective``: the image is
``(H, W, 3)`` float32 in [0, 1].
"""

import dataclasses
import functools
from typing import Any, Dict, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import losses
from nst_jax import memory
from nst_jax import networks
from nst_jax import objective
from nst_jax import representations
from nst_jax import vgg
from nst_jax.errors import NSTError, param

# Tile interiors ``choose_tile_size`` tries, largest first.
AUTO_TILE_SIZES = (4096, 2048, 1024, 512, 256)


def layer_geometry(network: str, layers: Sequence[str]
                   ) -> Dict[str, Tuple[int, int, int]]:
  """``{layer: (stride, before, after)}`` for every layer up to the deepest
  of ``layers`` (and ``"input"``): position ``p`` of the layer reads the
  input rows ``[stride·p − before, stride·p + after]`` (the same for
  columns). A convolution ``(k, s, pad)`` maps ``(S, b, a)`` to ``(S·s,
  b + S·pad, a + S·(k−1−pad))``; a pooling window ``(k, s)`` to ``(S·s, b,
  a + S·(k−1))``; a ReLU changes nothing."""
  names = networks.layer_names(network)
  deepest = max(layers, key=names.index)
  stride, before, after = 1, 0, 0
  out = {"input": (1, 0, 0)}
  for layer in networks.NETWORKS[network]:
    if isinstance(layer, networks.Conv):
      k, s, pad = layer.kernel_size, layer.stride, layer.padding
      before, after = before + stride * pad, after + stride * (k - 1 - pad)
      stride *= s
    elif isinstance(layer, networks.Pool):
      after += stride * (layer.window - 1)
      stride *= layer.stride
    out[layer.name] = (stride, before, after)
    if layer.name == deepest:
      break
  return out


def margin_and_alignment(network: str, layers: Sequence[str]
                         ) -> Tuple[int, int]:
  """``(margin, alignment)`` of tiles for ``layers``: windows start on
  multiples of ``alignment`` (the deepest layer's total stride, so every
  layer's pooling grid is the whole image's) and reach ``margin`` input
  pixels past the interior they own on each inner side, a multiple of
  ``alignment`` at least every layer's receptive-field reach (``before`` and
  ``after − stride + 1`` of ``layer_geometry``), so that the owned features
  never see the window's edge. VGG-16 to relu5_1: reach 58, margin 64,
  alignment 16."""
  geometry = layer_geometry(network, layers)
  align = max(s for s, _, _ in geometry.values())
  reach = max(max(b, a - s + 1) for s, b, a in geometry.values())
  return -(-reach // align) * align, align


@dataclasses.dataclass(frozen=True)
class Plan:
  """Where the windows of an ``(H, W)`` image lie (hashable: a static
  argument). ``window`` ``(h, w)`` is every window's shape; ``starts`` their
  top-left corners ``((y, x), …)`` on the ``alignment`` grid; ``owned`` the
  input rows and columns each tile owns, ``((y0, y1, x0, x1), …)``, a
  partition of the canvas (the image and its bottom/right padding) on the
  ``alignment`` grid; ``canvas`` ``(h, w)`` covers every window.

  ``reuse_last``: whether pass 2 (the backward rule) reuses the last group
  of windows' pass-1 activations (one window's forward less per evaluation)
  instead of running it again. On by default: measured at 1024×768 in 2
  windows (docs/benchmarks.md, "Tiled objective") it is 1.29× the untiled
  time instead of 1.81×, though XLA then holds more temporary memory (1.91
  GiB against 1.69 untiled, 1.23 rerunning). Both give the same value and
  gradient. (Rerunning every window once hung on the CPU with
  ``Covariance`` on two layers: two batched eigh blocking both workers of
  XLA's pool; ``statistics.each_matrix`` fixed it.)"""
  shape: Tuple[int, int]
  window: Tuple[int, int]
  starts: Tuple[Tuple[int, int], ...]
  owned: Tuple[Tuple[int, int, int, int], ...]
  canvas: Tuple[int, int]
  margin: int
  alignment: int
  reuse_last: bool = True

  @property
  def count(self) -> int:
    return len(self.starts)


def _axis(extent: int, tile: int, margin: int, align: int):
  """One axis of a plan: ``(window, starts, bounds, canvas)``. ``n =
  ⌈extent/tile⌉`` tiles; one tile is the whole extent (no margin); with
  ``n ≥ 2`` every window is ``w`` (a multiple of ``align``) and starts at
  ``i·(w − 2m)``, tile ``i`` owning from ``i·(w − 2m) + m`` (0 for the
  first) to the next tile's start, so the edge tiles own ``w − m`` and the
  inner ones ``w − 2m``: ``n·w − 2m(n−1) ≥ extent``."""
  n = -(-extent // tile)
  if n <= 1:
    return extent, (0,), ((0, extent),), extent
  w = -(-(extent + 2 * margin * (n - 1)) // n)
  w = max(-(-w // align) * align, 2 * margin + align)
  step = w - 2 * margin
  starts = tuple(i * step for i in range(n))
  canvas = starts[-1] + w
  edges = [0] + [s + margin for s in starts[1:]] + [canvas]
  return w, starts, tuple(zip(edges[:-1], edges[1:])), canvas


def plan(network: str, layers: Sequence[str], shape: Tuple[int, int],
         tile_size: int, *, reuse_last: bool = True) -> Plan:
  """The windows for an ``(H, W)`` image read at ``layers``, with tile
  interiors of about ``tile_size`` pixels on each side (the long edge of a
  tile's interior; at least the alignment); ``reuse_last`` as in
  :class:`Plan`."""
  margin, align = margin_and_alignment(network, layers)
  if int(tile_size) < align:
    raise NSTError(f"{param('tile_size')} must be at least {align} for "
                   f"{network} to its deepest layer, got {tile_size}")
  h, w = int(shape[0]), int(shape[1])
  wy, sy, by, cy = _axis(h, int(tile_size), margin, align)
  wx, sx, bx, cx = _axis(w, int(tile_size), margin, align)
  starts = tuple((y, x) for y in sy for x in sx)
  owned = tuple((a, b, c, d) for a, b in by for c, d in bx)
  return Plan((h, w), (wy, wx), starts, owned, (cy, cx), margin, align,
              bool(reuse_last))


def check_tileable(spec: objective.Spec) -> None:
  """Refuses, in one line, a spec whose style loss is not a function of
  position averages (``representations.position_averaged``)."""
  for layer, rep in spec.style_by_layer():
    if not representations.position_averaged(rep):
      raise NSTError(
          f"{param('tile_size')}: the {type(rep).__name__} style "
          f"representation at {layer} is not a function of position averages"
          " (not a representations.PositionAveraged), so it cannot be tiled "
          "exactly: use an untiled run or "
          f"{representations.tileable_names()}")


def _extents(network: str, spec: objective.Spec, shape: Tuple[int, int]):
  """``{layer: (stride, H_l, W_l)}`` of the whole image for every layer up to
  the deepest read (``"input"`` included)."""
  geometry = layer_geometry(network, spec.layers)
  names = [n for n in geometry if n != "input"]
  shapes = vgg.feature_shapes(network, shape, names, spec.pooling)
  out = {"input": (1, int(shape[0]), int(shape[1]))}
  for name in names:
    out[name] = (geometry[name][0], int(shapes[name][0]), int(shapes[name][1]))
  return out


def _rows_mask(count: int, first, low: int, high: int):
  """``(count,)`` float32: 1 where ``first + i`` lies in ``[low, high)``."""
  i = jnp.arange(count) + first
  return ((i >= low) & (i < high)).astype(jnp.float32)


def _weights(h, w, oy, ox, rows: Tuple[Any, Any], cols: Tuple[Any, Any]):
  """``(h, w)`` float32 outer product of a row and a column indicator."""
  return (_rows_mask(h, oy, *rows)[:, None]
          * _rows_mask(w, ox, *cols)[None, :])


def _border_mask(extents, p: Plan):
  """``start -> on_layer`` for ``vgg.features``: zeroes, after the input
  scaling and every layer, the rows (columns) outside the image at that
  layer — only along an axis whose windows reach past the image (canvas
  larger than the image); ``None`` when none does (every window then lies
  in the image and its edges are the image's or covered by margins)."""
  rows, cols = p.canvas[0] > p.shape[0], p.canvas[1] > p.shape[1]

  def at(start):
    if not (rows or cols):
      return None

    def mask(name, x):
      stride, h_l, w_l = extents[name]
      m = jnp.ones((1, 1), jnp.float32)
      if rows:
        m = m * _rows_mask(x.shape[1], start[0] // stride, 0, h_l)[:, None]
      if cols:
        m = m * _rows_mask(x.shape[2], start[1] // stride, 0, w_l)[None, :]
      return x * m[None, :, :, None]
    return mask
  return at


def _tile_function(network: str, spec: objective.Spec, p: Plan):
  """``q(window, params, content_windows, map_windows, start, owned) ->
  {"style": {layer: sums}, "content": scalar}`` for one window: the owned
  positions' weighted sums (``position_sums``; a layer in ``map_windows``
  also gets its window of the representation's ``position_maps``) and
  content loss ``½ Σ w (F − P)²``."""
  extents = _extents(network, spec, p.shape)
  on_layer = _border_mask(extents, p)

  def owned_weights(name, shape, start, owned):
    stride, h_l, w_l = extents[name]
    oy, ox = start[0] // stride, start[1] // stride
    return _weights(shape[0], shape[1], oy, ox,
                    (owned[0] // stride, jnp.minimum(owned[1] // stride, h_l)),
                    (owned[2] // stride, jnp.minimum(owned[3] // stride, w_l)))

  def q(window, params, content_windows, map_windows, start, owned):
    feats = vgg.features(params, window[None], spec.layers, spec.pooling,
                         precision=spec.precision, remat=spec.remat,
                         on_layer=on_layer(start))
    style = {}
    for layer, rep in spec.style_by_layer():
      f = feats[layer][0]
      maps = (map_windows[layer],) if layer in map_windows else ()
      style[layer] = rep.position_sums(
          f, owned_weights(layer, f.shape, start, owned), *maps)
    content = jnp.float32(0)
    for layer in spec.content_layers:
      f = feats[layer][0]
      w = owned_weights(layer, f.shape, start, owned)
      content = content + losses.content_loss(f, content_windows[layer], w)
    return {"style": style, "content": content}
  return q, extents


@functools.lru_cache(maxsize=None)
def _sums_function(network: str, spec: objective.Spec, p: Plan, mesh=None):
  """``sums(image, params, content_targets, maps)``: pass 1 over the tiles
  (as a ``lax.scan`` over windows of one shape: one tile program), with pass
  2 as its backward rule. ``maps`` ``{layer: pytree of (..., H_l, W_l)}``
  are the whole layers' ``position_maps`` (guides): each window gets its
  slice, zero past the image; constants (zero cotangent). With a ``mesh``
  of ``n`` devices the tiles go ``n`` at a time, one per device (the
  stacked windows sharded over the mesh's axis; tiles past the last own
  nothing)."""
  q, extents = _tile_function(network, spec, p)
  n = 1 if mesh is None else int(mesh.devices.size)
  groups = -(-p.count // n)
  extra = groups * n - p.count
  starts = np.asarray(p.starts + ((0, 0),) * extra, np.int32)
  owned = np.asarray(p.owned + ((0, 0, 0, 0),) * extra, np.int32)
  grouped = (starts.reshape(groups, n, 2), owned.reshape(groups, n, 4))

  def spread(tree):
    if mesh is None:
      return tree
    tiles = jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec(mesh.axis_names[0]))
    return jax.tree_util.tree_map(
        lambda x: jax.lax.with_sharding_constraint(x, tiles), tree)
  sizes = {l: tuple(s[:2]) for l, s in vgg.feature_shapes(
      network, p.window, spec.layers, spec.pooling).items()}

  def pad_image(image):
    h, w = p.shape
    return jnp.pad(image, ((0, p.canvas[0] - h), (0, p.canvas[1] - w),
                           (0, 0)))

  def pad_content(content):
    out = {}
    for l in spec.content_layers:
      stride = extents[l][0]
      h_l, w_l = sizes[l]
      need_y = int(starts[:, 0].max()) // stride + h_l
      need_x = int(starts[:, 1].max()) // stride + w_l
      c = content[l]
      out[l] = jnp.pad(c, ((0, max(0, need_y - c.shape[0])),
                           (0, max(0, need_x - c.shape[1])), (0, 0)))
    return out

  def pad_maps(maps):
    # Zeros past the image up to the last window's reach (the owned weights
    # are 0 there; a slice must not be clamped back into the layer).
    out = {}
    for l, m in maps.items():
      stride = extents[l][0]
      need = (int(starts[:, 0].max()) // stride + sizes[l][0],
              int(starts[:, 1].max()) // stride + sizes[l][1])
      out[l] = jax.tree_util.tree_map(
          lambda x, need=need: jnp.pad(
              x, ((0, 0),) * (x.ndim - 2)
              + tuple((0, max(0, n - e)) for n, e in zip(need,
                                                         x.shape[-2:]))), m)
    return out

  def cut(canvas, content, maps, start):
    window = jax.lax.dynamic_slice(canvas, (start[0], start[1], 0),
                                   (*p.window, 3))
    windows = {}
    for l in spec.content_layers:
      stride = extents[l][0]
      c = content[l]
      windows[l] = jax.lax.dynamic_slice(
          c, (start[0] // stride, start[1] // stride, 0),
          (*sizes[l], c.shape[-1]))
    map_windows = {}
    for l, m in maps.items():
      stride = extents[l][0]
      at = (start[0] // stride, start[1] // stride)
      map_windows[l] = jax.tree_util.tree_map(
          lambda x, at=at, l=l: jax.lax.dynamic_slice(
              x, (0,) * (x.ndim - 2) + at, x.shape[:-2] + sizes[l]), m)
    return window, windows, map_windows

  def cut_group(canvas, padded, pmaps, group_starts):
    return spread(jax.vmap(cut, in_axes=(None, None, None, 0))(
        canvas, padded, pmaps, group_starts))

  def group_sums(window, windows, mwindows, params, group_starts,
                 group_owned):
    out = jax.vmap(q, in_axes=(0, None, 0, 0, 0, 0))(
        window, params, windows, mwindows, group_starts, group_owned)
    return jax.tree_util.tree_map(lambda o: jnp.sum(o, axis=0), out)

  # Every group but the last is scanned; the last one is run apart, so that
  # the backward pass can reuse its forward activations (``jax.vjp`` in
  # ``fwd``; ``Plan.reuse_last``) instead of running it again: one
  # window's forward less per evaluation.
  head = (grouped[0][:-1], grouped[1][:-1])
  last = (grouped[0][-1], grouped[1][-1])

  def scan_head(canvas, padded, pmaps, params):
    def body(total, group):
      window, windows, mwindows = cut_group(canvas, padded, pmaps, group[0])
      out = group_sums(window, windows, mwindows, params, *group)
      return jax.tree_util.tree_map(jnp.add, total, out), None

    def first(c, pr, pc, pm):
      window, windows, mwindows = cut(c, pc, pm, starts[0])
      return q(window, pr, windows, mwindows, starts[0], owned[0])
    zero = jax.eval_shape(first, canvas, params, padded, pmaps)
    zero = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), zero)
    return jax.lax.scan(body, zero, head)[0]

  def forward(image, params, content, maps, keep_last: bool):
    canvas, padded = pad_image(image), pad_content(content)
    pmaps = pad_maps(maps)
    total = scan_head(canvas, padded, pmaps, params)
    # The last group after the others (its saved activations are then live
    # only from here to the backward pass, never beside another group's).
    if keep_last:
      total, canvas = jax.lax.optimization_barrier((total, canvas))
    window, windows, mwindows = cut_group(canvas, padded, pmaps, last[0])

    def run_last(wd, pr, wds):
      return group_sums(wd, wds, mwindows, pr, *last)
    if keep_last:
      out, pullback = jax.vjp(run_last, window, params, windows)
    else:
      out, pullback = run_last(window, params, windows), None
    return jax.tree_util.tree_map(jnp.add, total, out), pullback

  @jax.custom_vjp
  def sums(image, params, content, maps):
    return forward(image, params, content, maps, keep_last=False)[0]

  def fwd(image, params, content, maps):
    total, pullback = forward(image, params, content, maps,
                              keep_last=p.reuse_last)
    return total, (image, params, content, maps, pullback)

  def bwd(residuals, cotangent):
    image, params, content, maps, pullback = residuals
    canvas, padded = pad_image(image), pad_content(content)
    pmaps = pad_maps(maps)

    def one(window, windows, mwindows, start, own):
      return jax.vjp(lambda x, pr, cw: q(x, pr, cw, mwindows, start, own),
                     window, params, windows)[1](cotangent)

    def add(carry, starts_g, g_window, g_params, g_windows):
      grad_canvas, grad_params, grad_content = carry
      grad_content = dict(grad_content)
      for i in range(n):
        start = starts_g[i]
        old = jax.lax.dynamic_slice(grad_canvas, (start[0], start[1], 0),
                                    g_window.shape[1:])
        grad_canvas = jax.lax.dynamic_update_slice(
            grad_canvas, old + g_window[i], (start[0], start[1], 0))
        for l in spec.content_layers:
          stride = extents[l][0]
          at = (start[0] // stride, start[1] // stride, 0)
          old = jax.lax.dynamic_slice(grad_content[l], at,
                                      g_windows[l].shape[1:])
          grad_content[l] = jax.lax.dynamic_update_slice(
              grad_content[l], old + g_windows[l][i], at)
      grad_params = jax.tree_util.tree_map(jnp.add, grad_params, g_params)
      return grad_canvas, grad_params, grad_content

    def body(carry, group):
      starts_g, owned_g = group
      window, windows, mwindows = cut_group(canvas, padded, pmaps, starts_g)
      g_window, g_params, g_windows = jax.vmap(one)(window, windows,
                                                    mwindows, starts_g,
                                                    owned_g)
      g_params = jax.tree_util.tree_map(lambda g: jnp.sum(g, axis=0),
                                        g_params)
      return add(carry, starts_g, g_window, g_params, g_windows), None

    zeros = jax.tree_util.tree_map(jnp.zeros_like,
                                   (canvas, params, padded))
    # The last group from its saved activations first (freeing them), then
    # the others again forward and backward.
    if p.reuse_last:
      carry = add(zeros, last[0], *pullback(cotangent))
      (grad_canvas, grad_params, grad_content), _ = jax.lax.scan(
          body, carry, head)
    else:
      (grad_canvas, grad_params, grad_content), _ = jax.lax.scan(
          body, zeros, grouped)
    h, w = p.shape
    grad_content = {l: g[:content[l].shape[0], :content[l].shape[1]]
                    for l, g in grad_content.items()}
    # The maps (guides) are constants of the objective: zero cotangent.
    return (grad_canvas[:h, :w], grad_params, grad_content,
            jax.tree_util.tree_map(jnp.zeros_like, maps))

  sums.defvjp(fwd, bwd)
  return sums, extents


def loss_terms(params, image: jax.Array, targets: objective.Targets,
               weights: objective.Weights, spec: objective.Spec,
               p: Plan, mesh=None) -> Dict[str, jax.Array]:
  """``objective.loss_terms`` of the whole ``(H, W, 3)`` image, evaluated
  over the tiles of plan ``p`` (same keys, same values to float32
  rounding)."""
  network = vgg.network_of(params)
  if tuple(image.shape[:2]) != p.shape:
    raise NSTError(f"the tile plan is for a {p.shape[1]}x{p.shape[0]} image, "
                   f"got {image.shape[1]}x{image.shape[0]}")
  sums_of, extents = _sums_function(network, spec, p, mesh)
  maps = {}
  for layer, rep in spec.style_by_layer():
    m = representations.position_maps_of(rep, targets.style[layer])
    if m is not None:
      maps[layer] = m
  sums = sums_of(image, params, dict(targets.content), maps)
  per_layer = []
  for layer, rep in spec.style_by_layer():
    _, h_l, w_l = extents[layer]
    statistic = jax.tree_util.tree_map(lambda s: s / (h_l * w_l),
                                       sums["style"][layer])
    per_style = rep.loss_from_statistic(statistic, targets.style[layer])
    per_layer.append(jnp.sum(targets.style_blend * per_style))
  return objective.weighted_terms(image, sums["content"], per_layer, weights,
                                  spec)


@functools.lru_cache(maxsize=None)
def objective_function(spec: objective.Spec, p: Plan, mesh=None):
  """``f(image, params, targets, weights) -> (total, terms)`` evaluated over
  the tiles of ``p``: a drop-in for ``objective.objective_function(spec)``
  (same arguments, values, and gradient by ``jax.grad``), in one tile's
  memory. With a ``jax.sharding.Mesh`` the tiles are spread over its
  devices, one each at a time. Refuses a spec that cannot be tiled
  (``check_tileable``)."""
  check_tileable(spec)

  def tiled(image, params, targets, weights):
    terms = loss_terms(params, image, targets, weights, spec, p, mesh)
    return terms["total"], terms
  return tiled


def estimate_bytes(network: str, spec: objective.Spec, p: Plan, *,
                   history_size: int = 10, conv: str = "auto") -> int:
  """Bytes a tiled run needs: one window's network memory
  (``memory.estimate_bytes`` at the window's shape, no solver history), and
  the whole image's buffers — the solver's ``2·history_size + 8`` copies
  (``memory.estimate_bytes``'s) and 4 more for the tiles (canvas, gradient
  canvas and the two passes' windows) — and the content targets twice
  (padded copy and its cotangent)."""
  window = memory.estimate_bytes(network, spec.layers, p.window,
                                 pooling=spec.pooling, history_size=0,
                                 conv=conv)
  image = 4 * 3 * p.canvas[0] * p.canvas[1]
  content = 0
  shapes = vgg.feature_shapes(network, p.shape, spec.content_layers,
                              spec.pooling) if spec.content_layers else {}
  for s in shapes.values():
    content += 4 * int(np.prod(s))
  return int(window + (2 * history_size + 12) * image + 3 * content)


def choose_tile_size(network: str, spec: objective.Spec,
                     shape: Tuple[int, int], *, history_size: int = 10,
                     conv: str = "auto", available: int | None = None,
                     sizes: Sequence[int] = AUTO_TILE_SIZES) -> int:
  """``--tile_size=auto``: 0 (untiled) when the untiled estimate
  (``memory.estimate_bytes``) fits ``available`` bytes (default: the
  device's, ``memory.available_bytes``; unknown counts as fitting), else the
  largest of ``sizes`` below the long edge whose tiled estimate fits.
  Raises ``NSTError`` when even the smallest does not, or when the run does
  not fit and the spec cannot be tiled."""
  if available is None:
    available = memory.available_bytes()
  untiled = memory.estimate_bytes(network, spec.layers, shape,
                                  pooling=spec.pooling,
                                  history_size=history_size, conv=conv)
  if available is None or untiled <= available:
    return 0
  check_tileable(spec)
  need = untiled
  for size in sizes:
    if size >= max(shape):
      continue
    need = estimate_bytes(network, spec, plan(network, spec.layers, shape,
                                              size),
                          history_size=history_size, conv=conv)
    if need <= available:
      return int(size)
  raise NSTError(
      f"a {shape[1]}x{shape[0]} transfer needs about {need / 2**30:.1f} GiB "
      f"even in tiles but {available / 2**30:.1f} GiB are available to it "
      f"(the memory budget less the process around the buffers): use a "
      f"smaller {param('size')} or {param('history_size')}, or a larger "
      f"{param('memory_budget')}")


def parse_tile_size(value) -> int | str:
  """``"auto"``, or a tile interior in pixels (0: untiled); raises
  ``NSTError`` for anything else."""
  if isinstance(value, str) and value.strip().lower() == "auto":
    return "auto"
  try:
    size = int(value)
  except (TypeError, ValueError):
    raise NSTError(f"{param('tile_size')} must be 'auto' or a number of "
                   f"pixels (0: untiled), got {value!r}") from None
  if size < 0:
    raise NSTError(f"{param('tile_size')} must be >= 0, got {size}")
  return size


@functools.lru_cache(maxsize=None)
def _content_function(network: str, layers: Tuple[str, ...], pooling: str,
                      p: Plan):
  """``f(params, image) -> {layer: (H_l, W_l, C_l)}`` compiled: the features
  of the whole image, each tile writing the positions it owns."""
  spec = objective.Spec(content_layers=layers, style_layers=(),
                        pooling=pooling)
  extents = _extents(network, spec, p.shape)
  starts = np.asarray(p.starts, np.int32)
  owned = np.asarray(p.owned, np.int32)
  whole = vgg.feature_shapes(network, p.shape, layers, pooling)
  windows = vgg.feature_shapes(network, p.window, layers, pooling)
  canvas_shape = {}
  for l in layers:
    stride = extents[l][0]
    canvas_shape[l] = (
        max(whole[l][0], int(starts[:, 0].max()) // stride + windows[l][0]),
        max(whole[l][1], int(starts[:, 1].max()) // stride + windows[l][1]),
        whole[l][2])

  def f(params, image):
    canvas = jnp.pad(image, ((0, p.canvas[0] - p.shape[0]),
                             (0, p.canvas[1] - p.shape[1]), (0, 0)))

    def body(out, tile):
      start, own = tile
      window = jax.lax.dynamic_slice(canvas, (start[0], start[1], 0),
                                     (*p.window, 3))

      feats = vgg.features(params, window[None], layers, pooling,
                           on_layer=_border_mask(extents, p)(start))
      new = {}
      for l in layers:
        stride, h_l, w_l = extents[l]
        f_l = feats[l][0]
        oy, ox = start[0] // stride, start[1] // stride
        w = _weights(f_l.shape[0], f_l.shape[1], oy, ox,
                     (own[0] // stride, jnp.minimum(own[1] // stride, h_l)),
                     (own[2] // stride, jnp.minimum(own[3] // stride, w_l)))
        at = (oy, ox, 0)
        old = jax.lax.dynamic_slice(out[l], at, f_l.shape)
        new[l] = jax.lax.dynamic_update_slice(out[l], old + w[..., None] * f_l,
                                              at)
      return new, None

    zero = {l: jnp.zeros(canvas_shape[l], jnp.float32) for l in layers}
    out, _ = jax.lax.scan(body, zero, (starts, owned))
    return {l: out[l][:whole[l][0], :whole[l][1]] for l in layers}
  return jax.jit(f)


def content_features(params, image: jax.Array, layers: Sequence[str],
                     pooling: str, p: Plan) -> Dict[str, jax.Array]:
  """The features ``{layer: (H_l, W_l, C_l)}`` of a whole ``(H, W, 3)``
  image, computed tile by tile (plan ``p``): the content targets of a run
  too large for one pass (each tile adds the positions it owns, exact)."""
  return _content_function(vgg.network_of(params), tuple(layers), pooling,
                           p)(params, image)


def style_statistics(params, image: jax.Array, spec: objective.Spec,
                     p: Plan, maps: Dict[str, Any] | None = None
                     ) -> Dict[str, Any]:
  """``objective.style_statistics`` of one style image ``(H, W, 3)``
  computed tile by tile: each layer's ``position_sums`` over the tiles
  divided by its position count (float32 features, as targets are).
  A representation whose sums take per-position maps
  (``representations.takes_position_maps``: guided ones) needs this style
  image's maps of its whole layer in ``maps[layer]`` — for a guided one the
  style's guides at that layer ``(K, H_l, W_l)`` (``guided.layer_guides``);
  each window gets its slice. Raises ``NSTError`` (one line) when they are
  missing."""
  check_tileable(spec)
  maps = dict(maps or {})
  for layer, rep in spec.style_by_layer():
    if representations.takes_position_maps(rep) and layer not in maps:
      raise NSTError(
          f"the style statistics of {type(rep).__name__} at {layer} take "
          "per-position maps (the style image's guides at that layer) and "
          "none were given")
  style_spec = dataclasses.replace(spec, content_layers=(),
                                   precision="float32", remat=False)
  network = vgg.network_of(params)
  sums_of, extents = _sums_function(network, style_spec, p)
  maps = {l: maps[l] for l, rep in style_spec.style_by_layer()
          if representations.takes_position_maps(rep)}
  sums = jax.jit(sums_of)(image, params, {}, maps)["style"]
  return {l: jax.tree_util.tree_map(
      lambda s, m=extents[l][1] * extents[l][2]: s / m, sums[l])
          for l, _ in style_spec.style_by_layer()}
