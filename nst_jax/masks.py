"""Colour-coded region masks → guides (``guided.Guides``).

The convention of the masked forks of neural-style and of Deep Photo Style
Transfer: a mask is an image whose distinct colours are regions. The
content mask says where each region is in the output; each style image has
its own mask (or is one region of one colour). A content region takes the
style statistics of the style regions of the same colour (Gatys, Ecker,
Bethge, Hertzmann & Shechtman, CVPR 2017, §4 "Spatial control"); a content
colour that no style provides keeps only the content loss there.

Array contract: masks are read with ``io.load_image`` (float32 RGB in [0, 1],
8-bit colours recovered exactly as ``round(255·x)``); guides are float32
``(K, H, W)`` in [0, 1] that sum to one over the regions at every pixel the
mask covers with a region (before feathering, each pixel is in exactly one
region). Files are read by ``io``; nothing here touches the disk itself.
"""

from typing import List, NamedTuple, Sequence, Tuple

import numpy as np

from nst_jax import io
from nst_jax.errors import NSTError, param
from nst_jax.guided import Guides

# Colours covering less than this fraction of a mask are anti-aliasing or
# compression noise: their pixels join the nearest main colour.
MIN_FRACTION = 0.002
# The largest aspect-ratio difference (relative) between a mask and its image.
ASPECT_TOLERANCE = 0.03
# RGB distance within which a style colour matches a content colour (masks
# saved as JPEG shift colours a little).
COLOR_TOLERANCE = 24.0

Color = Tuple[int, int, int]


def parse_color(text: str) -> Color:
  """``"#ff8800"``, ``"ff8800"`` or ``"255,136,0"`` → ``(255, 136, 0)``."""
  t = str(text).strip()
  try:
    if "," in t or ";" in t:
      parts = [int(v) for v in t.replace(";", ",").split(",")]
    else:
      t = t.lstrip("#")
      if len(t) != 6:
        raise ValueError
      parts = [int(t[i:i + 2], 16) for i in (0, 2, 4)]
    if len(parts) != 3 or not all(0 <= v <= 255 for v in parts):
      raise ValueError
  except ValueError:
    raise NSTError(f"{param('style_colors')}: {text!r} is not a colour "
                   "(#rrggbb)") from None
  return tuple(parts)


def color_name(color: Color) -> str:
  return "#%02x%02x%02x" % tuple(color)


def mask_colors(mask: np.ndarray, *, min_fraction: float = MIN_FRACTION
                ) -> List[Color]:
  """The region colours of a uint8 mask ``(H, W, 3)``: every colour covering
  at least ``min_fraction`` of it (and at least one pixel), in the order of
  their first pixel in raster order (top-left first)."""
  flat = mask.reshape(-1, 3)
  codes = (flat[:, 0].astype(np.int64) << 16) | (flat[:, 1].astype(np.int64)
                                                 << 8) | flat[:, 2]
  values, first, counts = np.unique(codes, return_index=True,
                                    return_counts=True)
  keep = counts >= max(1, min_fraction * len(codes))
  order = np.argsort(first[keep])
  return [((int(v) >> 16) & 255, (int(v) >> 8) & 255, int(v) & 255)
          for v in values[keep][order]]


def nearest_labels(mask: np.ndarray, colors: Sequence[Color]) -> np.ndarray:
  """``(H, W)`` int: the index of the nearest of ``colors`` (RGB distance)
  of each pixel of a uint8 mask ``(H, W, 3)``."""
  palette = np.asarray(colors, np.float32)
  d = np.sum((mask[..., None, :].astype(np.float32) - palette) ** 2, axis=-1)
  return np.argmin(d, axis=-1)


def _gaussian_1d(radius: float) -> np.ndarray:
  half = max(1, int(np.ceil(3 * radius)))
  x = np.arange(-half, half + 1, dtype=np.float64)
  k = np.exp(-0.5 * (x / radius) ** 2)
  return k / k.sum()


def feather(guides: np.ndarray, radius: float) -> np.ndarray:
  """Soft edges: each guide ``(K, H, W)`` blurred by a Gaussian of standard
  deviation ``radius`` pixels (separable, edges reflected). Guides that sum
  to one keep summing to one. ``radius = 0`` returns them unchanged."""
  if radius <= 0:
    return guides
  k = _gaussian_1d(float(radius))
  half = len(k) // 2
  out = np.asarray(guides, np.float64)
  for axis in (1, 2):
    pad = [(0, 0)] * 3
    pad[axis] = (half, half)
    padded = np.pad(out, pad, mode="reflect" if out.shape[axis] > half
                    else "edge")
    out = sum(k[i] * np.take(padded, np.arange(i, i + out.shape[axis]),
                             axis=axis) for i in range(len(k)))
  return np.clip(out, 0.0, 1.0).astype(np.float32)


def _resize_nearest(mask: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
  h, w = mask.shape[:2]
  ys = np.minimum((np.arange(shape[0]) + 0.5) * h / shape[0], h - 1)
  xs = np.minimum((np.arange(shape[1]) + 0.5) * w / shape[1], w - 1)
  return mask[ys.astype(int)][:, xs.astype(int)]


def read_mask(path: str, shape: Tuple[int, int], what: str) -> np.ndarray:
  """A mask file as uint8 ``(H, W, 3)`` at ``shape`` (nearest neighbour, so
  no new colours). Raises ``NSTError`` (one line) when it cannot be read or
  its aspect ratio differs from ``shape``'s by more than
  ``ASPECT_TOLERANCE``."""
  image = io.load_image(path)
  h, w = image.shape[:2]
  want = shape[1] / shape[0]
  if abs(w / h - want) / want > ASPECT_TOLERANCE:
    raise NSTError(f"{what} {path} is {w}x{h} but its image is "
                   f"{shape[1]}x{shape[0]}: aspect ratios differ by "
                   f"{100 * abs(w / h - want) / want:.0f}% (more than "
                   f"{100 * ASPECT_TOLERANCE:.0f}%)")
  mask = np.rint(image * 255.0).astype(np.uint8)
  return _resize_nearest(mask, shape)


class MaskGuides(NamedTuple):
  """What ``load_guides`` found: the guides, the region colours (one per
  channel), the content colours without a style (content only there) and
  the messages to log."""
  guides: Guides
  colors: Tuple[Color, ...]
  unstyled: Tuple[Color, ...]
  notes: Tuple[str, ...]


def region_guides(content_mask: np.ndarray, style_masks: Sequence[
    np.ndarray | Color], *, blur: float = 0.0, names: Sequence[str] = ()
                  ) -> MaskGuides:
  """Guides from uint8 masks: ``content_mask`` ``(H, W, 3)``; for each style
  image a uint8 mask ``(H_s, W_s, 3)`` or one colour (the whole style image
  is that region).

  The regions are the content mask's colours (``mask_colors``); a style
  colour within ``COLOR_TOLERANCE`` of one is that region. Channel ``k`` of
  an image's guide is 1 where its mask has region ``k``'s colour, then
  feathered by ``blur`` pixels (``feather``). Content colours that no style
  provides are left out (no style there: the content loss alone) and
  noted; style colours the content lacks are ignored and noted. Raises
  ``NSTError`` when no content region has a style, or a style provides none
  of the content's colours.
  """
  names = list(names) or [f"style {i + 1}" for i in range(len(style_masks))]
  colors = mask_colors(content_mask)
  palette = np.asarray(colors, np.float32)
  content_labels = nearest_labels(content_mask, colors)
  notes, style_sets = [], []
  for name, m in zip(names, style_masks):
    own = [tuple(m)] if np.ndim(m) == 1 else mask_colors(m)
    matched = {}
    for c in own:
      d = np.sqrt(np.sum((palette - np.asarray(c, np.float32)) ** 2, axis=1))
      if d.min() <= COLOR_TOLERANCE:
        matched[c] = int(np.argmin(d))
      else:
        notes.append(f"{name}: colour {color_name(c)} is not in the content "
                     "mask: ignored")
    if not matched:
      raise NSTError(f"{name} provides none of the content mask's colours "
                     f"({', '.join(map(color_name, colors))}); it has "
                     f"{', '.join(map(color_name, own))}")
    style_sets.append((m, own, matched))
  used = sorted({k for _, _, matched in style_sets for k in matched.values()})
  unstyled = tuple(colors[k] for k in range(len(colors)) if k not in used)
  for c in unstyled:
    share = float(np.mean(content_labels == colors.index(c)))
    notes.append(f"content region {color_name(c)} ({100 * share:.0f}% of the "
                 "image) has no style: content loss only there")
  if not used:
    raise NSTError("no region of the content mask has a style")
  content = np.stack([(content_labels == k) for k in used]).astype(np.float32)
  styles = []
  for m, own, matched in style_sets:
    if np.ndim(m) == 1:
      k = matched.get(tuple(m))
      g = np.zeros((len(used), 1, 1), np.float32)
      g[used.index(k)] = 1.0
    else:
      labels = nearest_labels(m, own)
      g = np.zeros((len(used),) + m.shape[:2], np.float32)
      for i, c in enumerate(own):
        if c in matched:
          g[used.index(matched[c])] += (labels == i)
    styles.append(feather(g, blur) if g.shape[1] > 1 else g)
  return MaskGuides(Guides(feather(content, blur), tuple(styles)),
                    tuple(colors[k] for k in used), unstyled, tuple(notes))


def load_guides(content_mask: str, style_masks: Sequence[str] | None,
                style_colors: Sequence[str] | None,
                content_shape: Tuple[int, int],
                style_shapes: Sequence[Tuple[int, int]], *,
                blur: float = 0.0) -> MaskGuides:
  """``region_guides`` from files: the content mask at ``content_shape``,
  each style mask at its style image's shape. Without ``style_masks`` each
  style image is one region: of colour ``style_colors[i]`` (``#rrggbb``)
  or, without those, of the content mask's ``i``-th colour (raster order of
  first appearance). Raises ``NSTError`` (one line) for an unreadable
  mask, a wrong count, an aspect ratio off by more than 3 %, or colours
  that leave no region styled."""
  n = len(style_shapes)
  if blur < 0:
    raise NSTError(f"{param('mask_blur')} must be >= 0, got {blur}")
  content = read_mask(content_mask, content_shape, "content mask")
  if style_masks:
    if style_colors:
      raise NSTError(f"give {param('style_masks')} or "
                     f"{param('style_colors')}, not both")
    if len(style_masks) != n:
      raise NSTError(f"got {len(style_masks)} style masks for {n} style "
                     "images")
    styles = [read_mask(p, s, "style mask")
              for p, s in zip(style_masks, style_shapes)]
    names = [f"style mask {p}" for p in style_masks]
  else:
    if style_colors:
      if len(style_colors) != n:
        raise NSTError(f"got {len(style_colors)} style colours for {n} "
                       "style images")
      styles = [parse_color(c) for c in style_colors]
    else:
      colors = mask_colors(content)
      if len(colors) < n:
        raise NSTError(f"the content mask has {len(colors)} colours for {n} "
                       f"style images: give {param('style_colors')} or "
                       f"{param('style_masks')}")
      styles = colors[:n]
    names = [f"style {i + 1} ({color_name(c)})" for i, c in enumerate(styles)]
  return region_guides(content, styles, blur=blur, names=names)
