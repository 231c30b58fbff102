"""Every figure the project draws, as pure functions: arrays in, an image out.

Array contract: images going in are float ``(H, W, 3)`` RGB in ``[0, 1]``
(:mod:`nst_jax.io`'s contract), and every function returns a new float32
``(H, W, 3)`` RGB image in ``[0, 1]``, drawn with Pillow alone (the project
avoids matplotlib). The same inputs always give the same pixels. Nothing here
touches the disk: :func:`nst_jax.io.save_image` or a script writes the result.

* :func:`side_by_side`: images in a row with captions (README figures).
* :func:`stacked_rows`: several such rows, one under another.
* :func:`contact_sheet`: a labelled grid of images with a margin strip.
* :func:`grid_sheet`: the contact sheet of a style grid, laid out from its
  axes (``nst_jax.grid``), one row per combination of the other axes.
* :func:`loss_curves`: the loss terms of one run against iterations and
  seconds.

Values a person brings (a malformed loss history, a figure size too small,
a log axis over values <= 0) raise ``NSTError``; arguments code built wrong
(an empty list, a label count that does not match) ``ValueError``; both
name the parameter (:mod:`nst_jax.errors`).
"""

import itertools
import math
from typing import Any, Callable, Mapping, NamedTuple, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from nst_jax import io
from nst_jax.errors import NSTError, param


# ---------------------------------------------------------------------------
# Images in rows and grids.


def _image(image, name: str) -> np.ndarray:
  """``image`` as a float array (H, W, 3) with pixels, or ValueError naming
  parameter ``name``."""
  array = np.asarray(image)
  if (array.ndim != 3 or array.shape[-1] != 3 or 0 in array.shape
      or not np.issubdtype(array.dtype, np.floating)):
    raise ValueError(f"{param(name)} must hold float images of shape "
                     f"(H, W, 3), got {array.dtype} {array.shape}")
  return array


def _to_height(image: np.ndarray, height: int) -> np.ndarray:
  """``image`` resized to ``height`` rows, its aspect ratio kept."""
  width = max(1, round(image.shape[1] * height / image.shape[0]))
  return io.resize_to(image, (height, width))


def crop_to_aspect(image, shape: Sequence[int]) -> np.ndarray:
  """The largest centred window of ``image``, a float ``(H, W, 3)`` array,
  with the aspect ratio of ``shape`` ``(h, w, ...)`` (a view of it, not a
  copy): a painting shown beside results of another aspect ratio without
  being stretched (``contact_sheet`` draws every cell at the first cell's
  aspect)."""
  array = _image(image, "image")
  h, w = array.shape[:2]
  aspect = shape[1] / shape[0]
  if w > h * aspect:      # too wide: keep the full height
    width = max(1, round(h * aspect))
    left = (w - width) // 2
    return array[:, left:left + width]
  height = max(1, round(w / aspect))
  top = (h - height) // 2
  return array[top:top + height]


def _paste(sheet: Image.Image, image: np.ndarray, xy) -> None:
  sheet.paste(Image.fromarray(io.image_to_uint8(image)), xy)


def _as_float(sheet: Image.Image) -> np.ndarray:
  return np.asarray(sheet, np.float32) / 255.0


def side_by_side(images, labels=None, *, height: int = 256, gap: int = 6,
                 label_height: int = 22) -> np.ndarray:
  """Images scaled to a common ``height`` and placed left to right on white,
  each with an optional caption underneath; returns float32 (H, W, 3).

  ``images`` are float (H, W, 3) in [0, 1]; ``labels`` one string per image
  (or None: no caption row). The result is ``height + label_height`` pixels
  high (``height`` without labels) and as wide as the scaled images plus
  ``gap`` between each two.
  """
  arrays = [_image(im, "images") for im in images]
  if not arrays:
    raise ValueError(f"{param('images')} must hold at least one image")
  if labels is not None and len(labels) != len(arrays):
    raise ValueError(f"{len(labels)} {param('labels')} for {len(arrays)} "
                     "images")
  scaled = [_to_height(a, height) for a in arrays]
  caption = label_height if labels else 0
  width = sum(a.shape[1] for a in scaled) + gap * (len(scaled) - 1)
  sheet = Image.new("RGB", (width, height + caption), "white")
  draw = ImageDraw.Draw(sheet)
  x = 0
  for i, a in enumerate(scaled):
    _paste(sheet, a, (x, 0))
    if labels:
      text = str(labels[i])
      tw = draw.textlength(text)
      draw.text((x + max(0, (a.shape[1] - tw) / 2), height + 5), text,
                fill=(40, 40, 40))
    x += a.shape[1] + gap
  return _as_float(sheet)


def stacked_rows(rows, labels, *, height: int = 64, gap: int = 6
                 ) -> np.ndarray:
  """Rows of images, one under another on white, left-aligned; returns
  float32 (H, W, 3).

  ``rows[i]`` is a list of float (H, W, 3) images drawn as
  ``side_by_side(rows[i], labels[i], height=height)``; the rows are ``gap``
  pixels apart and the narrower ones are padded with white on the right.
  """
  if not len(rows):
    raise ValueError(f"{param('rows')} must hold at least one row")
  if len(labels) != len(rows):
    raise ValueError(f"{len(labels)} {param('labels')} rows for {len(rows)} "
                     "rows of images")
  sheets = [side_by_side(r, l, height=height) for r, l in zip(rows, labels)]
  width = max(s.shape[1] for s in sheets)
  space = np.ones((gap, width, 3), np.float32)
  out = []
  for s in sheets:
    pad = np.ones((s.shape[0], width - s.shape[1], 3), np.float32)
    out += [np.concatenate([s, pad], axis=1), space]
  return np.concatenate(out[:-1], axis=0)


def contact_sheet(cells, row_labels, col_labels, *, margin_images=(),
                  margin_labels=(), cell_height: int = 160, gap: int = 4,
                  label_width: int = 150, label_height: int = 20,
                  title: str | None = None) -> np.ndarray:
  """A labelled grid of images; returns float32 (H, W, 3) in [0, 1].

  ``cells`` is a list of rows, each a list of float (H, W, 3) images; every
  cell is drawn ``cell_height`` pixels high with the aspect ratio of the
  first. Row labels (a newline starts another line) go left of each row,
  column labels above each column; ``margin_images`` (e.g. the content and
  style images) are shown with their ``margin_labels`` in a strip above the
  grid, under an optional ``title``.
  """
  rows, cols = len(cells), len(cells[0]) if len(cells) else 0
  if rows == 0 or cols == 0 or any(len(r) != cols for r in cells):
    raise ValueError(f"{param('cells')} must be a non-empty, rectangular "
                     "grid of images")
  if len(row_labels) != rows or len(col_labels) != cols:
    raise ValueError(f"{len(row_labels)} {param('row_labels')} and "
                     f"{len(col_labels)} {param('col_labels')} for a "
                     f"{rows}x{cols} grid")
  h0, w0 = _image(cells[0][0], "cells").shape[:2]
  cw = max(1, round(w0 * cell_height / h0))
  thumb = max(16, (cell_height * 2) // 3)
  margins = [_to_height(_image(im, "margin_images"), thumb)
             for im in margin_images]
  strip = thumb + label_height + gap if margins else 0
  head = (label_height + gap if title else 0) + strip + label_height
  width = max(label_width + cols * (cw + gap),
              label_width + sum(a.shape[1] + gap for a in margins))
  height = head + rows * (cell_height + gap)
  sheet = Image.new("RGB", (width, height), "white")
  draw = ImageDraw.Draw(sheet)
  y = 0
  if title:
    draw.text((gap, y + 4), title, fill=(0, 0, 0))
    y += label_height + gap
  x = label_width
  for a, text in zip(margins, margin_labels):
    _paste(sheet, a, (x, y))
    draw.text((x, y + thumb + 4), str(text), fill=(40, 40, 40))
    x += a.shape[1] + gap
  y += strip
  for j, text in enumerate(col_labels):
    draw.text((label_width + j * (cw + gap) + 2, y + 4), str(text),
              fill=(0, 0, 0))
  y += label_height
  for i, row in enumerate(cells):
    top = y + i * (cell_height + gap)
    for k, line in enumerate(str(row_labels[i]).split("\n")):
      draw.text((4, top + 4 + 14 * k), line, fill=(0, 0, 0))
    for j, im in enumerate(row):
      a = io.resize_to(_image(im, "cells"), (cell_height, cw))
      _paste(sheet, a, (label_width + j * (cw + gap), top))
  return _as_float(sheet)


# ---------------------------------------------------------------------------
# Style grids.


def cell_label(name: str, value: Any) -> str:
  """The default caption of one value of grid axis ``name``: ``"style 1e+07"``
  for a weight, ``"relu1_1..relu5_1"`` for a layer set, ``"0.2,0.8"`` for
  per-layer weights, ``"seed 3"`` otherwise."""
  if name == "style_layer_sets" and value:
    return value[0] if len(value) == 1 else f"{value[0]}..{value[-1]}"
  if isinstance(value, float):
    return f"{name.replace('_weight', '')} {value:.0e}"
  if isinstance(value, tuple):
    return ",".join(f"{v:g}" for v in value)
  return f"{name} {value}"


def grid_sheet(images, axes: Mapping[str, Sequence[Any]], *,
               label: Callable[[str, Any], str] = cell_label,
               margin_images=(), margin_labels=(), title: str | None = None,
               cell_height: int = 160) -> np.ndarray:
  """The contact sheet of a style grid; returns float32 (H, W, 3) in [0, 1].

  ``axes`` maps each axis name to its values in the grid's order (e.g.
  ``dataclasses.asdict(grid.GridAxes(...))``); ``images`` holds one float
  (H, W, 3) image per cell of their Cartesian product, the last axis varying
  fastest (``grid.GridResult.images``). The last axis with more than one
  value gives the columns; every combination of the other varying axes is a
  row, captioned one line per axis. ``label(name, value)`` writes each
  caption (default :func:`cell_label`). ``margin_images`` and their
  ``margin_labels`` (e.g. the content and style images) go in a strip above
  the grid, as in :func:`contact_sheet`.
  """
  names = list(axes)
  cells = [dict(zip(names, combo))
           for combo in itertools.product(*(axes[n] for n in names))]
  if len(images) != len(cells):
    raise ValueError(f"{param('images')} holds {len(images)} images for a "
                     f"grid of {len(cells)} cells")
  varying = [n for n in names if len(axes[n]) > 1]
  cols = len(axes[varying[-1]]) if varying else 1
  rows = len(cells) // cols
  grid = [[images[r * cols + c] for c in range(cols)] for r in range(rows)]
  col_labels = ([label(varying[-1], v) for v in axes[varying[-1]]]
                if varying else [""])
  row_labels = ["\n".join(label(a, cells[r * cols][a]) for a in varying[:-1])
                for r in range(rows)]
  return contact_sheet(grid, row_labels, col_labels, title=title,
                       margin_images=margin_images,
                       margin_labels=margin_labels, cell_height=cell_height)


# ---------------------------------------------------------------------------
# Loss curves.
#
# ``loss_curves`` takes a loss history, a list of dict records, one per logged
# iteration, each with ``"iteration"`` and ``"total"`` and optionally
# ``"content"``, ``"style"``, ``"tv"``, ``"style_layers"`` (layer name ->
# value), ``"seconds"`` (cumulative wall time) and ``"size"`` (the level of a
# coarse-to-fine run, whose iterations restart at 0 per level).

# (name, colour, line width) of the summed terms; style layers are dashed.
_TERMS = (("total", (0, 0, 0), 3), ("content", (31, 119, 180), 2),
          ("style", (214, 39, 40), 2), ("tv", (44, 160, 44), 2))
_LAYER_COLOURS = ((255, 127, 14), (148, 103, 189), (140, 86, 75),
                  (227, 119, 194), (23, 190, 207), (188, 189, 34),
                  (0, 128, 128), (128, 0, 128))
_TEXT, _FRAME, _GRID = (40, 40, 40), (120, 120, 120), (232, 232, 232)
_BOUNDARY, _BOUNDARY_TEXT = (160, 160, 215), (90, 90, 160)
_FONT_SIZE, _PAD = 13, 8


def _font(size: int):
  """Pillow's scalable default font (>= 10.1 with FreeType), else its bitmap
  font."""
  try:
    return ImageFont.load_default(size=size)
  except (TypeError, OSError, ImportError):
    return ImageFont.load_default()


def _text(draw, xy, text, font, anchor, fill=_TEXT):
  """``text`` placed by a two-letter anchor (l/m/r then t/m), measured by hand
  because Pillow's bitmap fallback font refuses ``anchor``."""
  left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
  x = xy[0] - {"l": left, "m": (left + right) / 2, "r": right}[anchor[0]]
  y = xy[1] - {"t": top, "m": (top + bottom) / 2, "b": bottom}[anchor[1]]
  draw.text((x, y), text, fill=fill, font=font)


def _number(value):
  """``value`` as a float, or None if it is missing or not finite."""
  try:
    value = float(value)
  except (TypeError, ValueError):
    return None
  return value if math.isfinite(value) else None


def _ticks_linear(lo: float, hi: float, n: int = 5) -> list:
  """The round-number ticks (steps 1, 2, 2.5 or 5 x 10^k) in [lo, hi] whose
  count is nearest ``n``."""
  if not hi > lo:
    return [lo]
  base = 10.0 ** math.floor(math.log10((hi - lo) / n))
  span = lambda s: range(math.ceil(lo / s - 1e-9), math.floor(hi / s + 1e-9) + 1)
  step = min((m * base for m in (1, 2, 2.5, 5, 10)),
             key=lambda s: (abs(len(span(s)) - n), s))
  return [float(f"{k * step:.12g}") for k in span(step)]


def _ticks_log(lo: float, hi: float) -> list:
  """Ticks for a log axis over positive [lo, hi]: decades (at most about
  seven), else 1-2-5 or 1..9 times decades, else round linear values, so that
  at least two ticks appear whenever the range allows."""
  e0, e1 = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
  decades = [10.0 ** e for e in range(e0, e1 + 1) if lo <= 10.0 ** e <= hi]
  if len(decades) >= 2:
    return decades[::math.ceil(len(decades) / 7)]
  for mantissas in ((1, 2, 5), range(1, 10)):
    ticks = [float(f"{m * 10.0 ** e:.12g}") for e in range(e0, e1 + 1)
             for m in mantissas]
    ticks = [t for t in ticks if lo <= t <= hi]
    if len(ticks) >= 2:
      return ticks
  return _ticks_linear(lo, hi, 4)


def _format_log(value: float) -> str:
  """A log-axis label: 1e3, 2e4, 1.5e-2."""
  exponent = math.floor(math.log10(value) + 1e-9)
  mantissa = f"{value / 10.0 ** exponent:.3g}"
  if mantissa == "10":
    mantissa, exponent = "1", exponent + 1
  return f"{mantissa}e{exponent}"


def _curves(history) -> list:
  """(name, colour, width, dashed, values) per term, ``values[i]`` None where
  record i has no positive finite value; terms never positive are omitted."""
  def layers_of(record):
    layers = record.get("style_layers")
    return layers if isinstance(layers, Mapping) else {}
  names = list(dict.fromkeys(k for r in history for k in layers_of(r)))
  specs = [(n, c, w, False, [r.get(n) for r in history]) for n, c, w in _TERMS]
  specs += [(n, _LAYER_COLOURS[i % len(_LAYER_COLOURS)], 2, True,
             [layers_of(r).get(n) for r in history]) for i, n in enumerate(names)]
  positive = lambda raw: [v if v and v > 0 else None for v in map(_number, raw)]
  curves = [(n, c, w, d, positive(raw)) for n, c, w, d, raw in specs]
  return [c for c in curves if any(v is not None for v in c[-1])]


def _levels(history):
  """(xs, levels, starts): each record's iteration, offset in a multi-scale
  run by the previous level's last x when iterations restart; each record's
  level index; and (record index, size) where each level starts."""
  xs, levels, starts = [], [], []
  multi = any("size" in r for r in history)
  offset, last_x, last_it = 0.0, None, None
  for i, record in enumerate(history):
    it = _number(record["iteration"])
    restarts = None not in (it, last_it) and it <= last_it
    new_size = i > 0 and record.get("size") != history[i - 1].get("size")
    if i == 0 or multi and (restarts or new_size):
      offset = last_x if restarts else offset
      starts.append((i, record.get("size")))
    xs.append(None if it is None else offset + it)
    levels.append(len(starts) - 1)
    last_x, last_it = (xs[-1], it) if it is not None else (last_x, last_it)
  return xs, levels, starts


def _polyline(draw, points, colour, width, dashed):
  """A solid or dashed polyline through ``points`` (pixel coordinates)."""
  if len(points) == 1:  # an isolated value: a dot
    (x, y), r = points[0], max(1, width - 1)
    draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
  elif not dashed:
    draw.line(points, fill=colour, width=width, joint="curve")
  else:
    _dashes(draw, points, colour, width)


def _dashes(draw, points, colour, width, on=7, off=5):
  """A dashed polyline whose pattern runs on across the vertices."""
  phase = 0.0
  for (x0, y0), (x1, y1) in zip(points, points[1:]):
    length, t = math.hypot(x1 - x0, y1 - y0), 0.0
    while t < length:
      step = min((on + off) - phase if phase >= on else on - phase, length - t)
      if phase < on:
        a, b = t / length, (t + step) / length
        draw.line([(x0 + a * (x1 - x0), y0 + a * (y1 - y0)),
                   (x0 + b * (x1 - x0), y0 + b * (y1 - y0))],
                  fill=colour, width=width)
      t, phase = t + step, (phase + step) % (on + off)


def _runs(xs, values, levels):
  """The unbroken stretches of (x, value) pairs: a missing x or value, or the
  start of a new multi-scale level, ends one."""
  runs, level = [[]], None
  for x, v, lv in zip(xs, values, levels):
    if x is None or v is None or lv != level:
      runs.append([])
    if x is not None and v is not None:
      runs[-1].append((x, v))
      level = lv
  return [r for r in runs if r]


def _panel(image, box, xs, levels, starts, curves, log_range, xlabel, font):
  """One framed plot of ``curves`` against ``xs`` (log10 y over ``log_range``)
  in pixel ``box`` = (left, top, right, bottom), with grid, tick labels, axis
  labels and a faint labelled line where each multi-scale level starts."""
  draw = ImageDraw.Draw(image)
  left, top, right, bottom = box
  valid = [x for x in xs if x is not None] or [0.0]
  x0, x1 = min(0.0, min(valid)), max(valid)
  x0, x1 = (x0 - 1, x1 + 1) if x1 == x0 else (x0, x1)
  y0, y1 = log_range
  px = lambda x: left + (x - x0) / (x1 - x0) * (right - left)
  py = lambda v: bottom - (min(max(math.log10(v), y0), y1) - y0) / (
      y1 - y0) * (bottom - top)   # values below the floor sit on the frame
  for t in _ticks_linear(x0, x1):
    draw.line([(px(t), top), (px(t), bottom)], fill=_GRID)
    _text(draw, (px(t), bottom + 4), f"{t:g}", font, "mt")
  for t in _ticks_log(10.0 ** y0, 10.0 ** y1):
    draw.line([(left, py(t)), (right, py(t))], fill=_GRID)
    _text(draw, (left - 5, py(t)), _format_log(t), font, "rm")
  for i, size in starts if len(starts) > 1 else ():
    if xs[i] is not None and i > 0:
      draw.line([(px(xs[i]), top), (px(xs[i]), bottom)], fill=_BOUNDARY)
    if xs[i] is not None and size is not None:
      _text(draw, (px(xs[i]) + 4, top + 4), f"{size} px", font, "lt",
            _BOUNDARY_TEXT)
  for _, colour, width, dashed, values in reversed(curves):  # total on top
    for run in _runs(xs, values, levels):
      _polyline(draw, [(px(x), py(v)) for x, v in run], colour, width, dashed)
  draw.rectangle(box, outline=_FRAME)
  _text(draw, ((left + right) / 2, bottom + 23), xlabel, font, "mt")
  ylabel = "loss (weighted)"
  label = Image.new("RGB", (round(draw.textlength(ylabel, font=font)) + 4,
                            _FONT_SIZE + 6), "white")
  ImageDraw.Draw(label).text((2, 2), ylabel, fill=_TEXT, font=font)
  label = label.transpose(Image.Transpose.ROTATE_90)
  image.paste(label, (left - 62, (top + bottom - label.height) // 2))


def _legend(draw, curves, left, top, right, font) -> int:
  """Each curve's swatch and name, in rows from (left, top) wrapped at
  ``right``; returns the bottom of the last row."""
  x, y, row = left, top, _FONT_SIZE + 7
  for name, colour, width, dashed, _ in curves:
    entry = 30 + draw.textlength(name, font=font) + 16
    if x + entry > right and x > left:
      x, y = left, y + row
    _polyline(draw, [(x, y + row / 2), (x + 24, y + row / 2)], colour, width,
              dashed)
    _text(draw, (x + 30, y + row / 2), name, font, "lm")
    x += entry
  return y + row


def _canvas(width: int, height: int, title: str | None):
  """A white ``width × height`` figure with ``title`` centred on top:
  ``(image, draw, top)``, ``top`` the first free pixel row."""
  image = Image.new("RGB", (width, height), "white")
  draw = ImageDraw.Draw(image)
  top = _PAD + 2
  if title:
    _text(draw, (width / 2, _PAD), title, _font(_FONT_SIZE + 3), "mt")
    top += _FONT_SIZE + 12
  return image, draw, top


MAX_DECADES = 8  # a term starting near 0 (content at a content init) would
                 # otherwise squeeze every other curve into a thin band


def _log_range(curves):
  """(lo, hi) in log10 units: the values' span plus 5% each side, at least
  0.2 and at most ``MAX_DECADES`` decades below the largest value; one decade
  from 1 when there is nothing to plot."""
  values = [v for c in curves for v in c[-1] if v is not None] or [1.0, 10.0]
  lo, hi = math.log10(min(values)), math.log10(max(values))
  lo = max(lo, hi - MAX_DECADES)
  lo, hi = lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)
  mid = (lo + hi) / 2
  return (lo, hi) if hi - lo >= 0.2 else (mid - 0.1, mid + 0.1)


def _check_history(history) -> None:
  """NSTError unless ``history`` is a non-empty list of records with
  ``"iteration"`` and ``"total"`` (a run record's, which a person brings)."""
  if history is None or len(history) == 0:
    raise NSTError(f"{param('history')} must be a non-empty loss history "
                   "(a list of dict records, one per logged iteration)")
  for i, record in enumerate(history):
    if not (isinstance(record, Mapping) and "iteration" in record
            and "total" in record):
      raise NSTError(f"{param('history')} record {i} needs 'iteration' and "
                     f"'total' keys, got {record!r:.80}")


def loss_curves(history, *, title: str | None = None, width: int = 900,
                height: int = 420) -> np.ndarray:
  """Loss curves of one run; returns float32 (height, width, 3) in [0, 1].

  Two panels side by side, loss against iteration and against seconds (the
  second only if a record has ``"seconds"``), each with a log10 loss axis:
  total in thick black, content, style and tv in colour, each style layer
  dashed. Multi-scale histories are plotted against a cumulative iteration,
  with a faint labelled line where each level starts. Values that are not
  finite and positive are skipped; a term never positive is omitted.
  Raises NSTError for an empty or malformed history or a figure too small
  for its legend.
  """
  _check_history(history)
  font = _font(_FONT_SIZE)
  curves = _curves(history)
  iterations, levels, starts = _levels(history)
  seconds = [_number(r.get("seconds")) for r in history]
  panels = [(iterations, "iteration")] + (
      [(seconds, "seconds")] if any(s is not None for s in seconds) else [])
  image, draw, top = _canvas(width, height, title)
  scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))  # measures the legend
  bottom = height - _PAD - 48 - _legend(scratch, curves, 0, 0,
                                        width - 72 - _PAD, font)
  slot = width / len(panels)
  if bottom - top < 60 or slot < 160:
    raise NSTError(f"{param('width')} {width} and {param('height')} "
                   f"{height} are too small for {len(panels)} panels and "
                   f"{len(curves)} curves")
  for k, (xs, xlabel) in enumerate(panels):
    box = (round(k * slot) + 72, top, round((k + 1) * slot) - 16, bottom)
    _panel(image, box, xs, levels, starts, curves, _log_range(curves), xlabel,
           font)
  _legend(draw, curves, 72, bottom + 48, width - _PAD, font)
  return np.asarray(image, np.float32) / 255.0


class Series(NamedTuple):
  """One curve of ``metric_panels``: a name, x and y values (equal length;
  None or non-finite values break the line), and an optional dashed look."""
  name: str
  xs: Sequence[float]
  ys: Sequence[float]
  dashed: bool = False


class Panel(NamedTuple):
  """One plot of ``metric_panels``: its curves, axis labels, a log10 x axis
  or not, dashed horizontal reference lines ``[(y, label)]`` or ``[(y,
  label, series_name)]`` (e.g. a peer's score; drawn in that series' colour)
  and vertical marks ``[(x, label)]`` (e.g. the chosen value)."""
  series: Sequence[Series]
  xlabel: str
  ylabel: str
  log_x: bool = False
  hlines: Sequence[Tuple[float, str]] = ()
  marks: Sequence[Tuple[float, str]] = ()


def _axis(lo: float, hi: float, log: bool):
  """(ticks, to_unit, label) of an axis over [lo, hi]: ``to_unit`` maps a
  value to [0, 1] along it (log10 when ``log``)."""
  if log:
    a, b = math.log10(lo), math.log10(hi)
    b = a + 1 if b <= a else b
    return (_ticks_log(10 ** a, 10 ** b),
            lambda v: (math.log10(v) - a) / (b - a), _format_log)
  lo, hi = (lo - 1, hi + 1) if hi <= lo else (lo, hi)
  return _ticks_linear(lo, hi), lambda v: (v - lo) / (hi - lo), (
      lambda v: f"{v:g}")


def metric_panels(panels: Sequence[Panel], *, title: str | None = None,
                  width: int = 900, height: int = 380) -> np.ndarray:
  """Metric curves in panels side by side (e.g. style distance and LPIPS
  against β, or against seconds); returns float32 ``(height, width, 3)`` in
  [0, 1]. Series share colours by position across panels and one legend;
  y axes are linear, padded by 5 %. Raises ValueError for no panels or a
  series whose xs and ys differ in length, NSTError for a log x axis with
  values <= 0 or a figure too small."""
  if not panels:
    raise ValueError(f"{param('panels')} is empty: nothing to plot")
  font = _font(_FONT_SIZE)
  image, draw, top = _canvas(width, height, title)
  names = list(dict.fromkeys(s.name for p in panels for s in p.series))
  colour = {n: _LAYER_COLOURS[i % len(_LAYER_COLOURS)]
            for i, n in enumerate(names)}
  legend = [(n, colour[n], 2, False, None) for n in names]
  scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
  bottom = height - _PAD - 48 - _legend(scratch, legend, 0, 0,
                                        width - 72 - _PAD, font)
  slot = width / len(panels)
  if bottom - top < 60 or slot < 200:
    raise NSTError(f"{param('width')} {width} and {param('height')} "
                   f"{height} are too small for {len(panels)} panels")
  for k, panel in enumerate(panels):
    points = []
    for s in panel.series:
      if len(s.xs) != len(s.ys):
        raise ValueError(f"series {s.name!r} has {len(s.xs)} xs and "
                         f"{len(s.ys)} ys")
      points += [(x, y) for x, y in zip(map(_number, s.xs), map(_number, s.ys))
                 if x is not None and y is not None]
    xs = [x for x, _ in points] + [x for x, _ in panel.marks]
    ys = [y for _, y in points] + [line[0] for line in panel.hlines]
    if panel.log_x and any(x <= 0 for x in xs):
      raise NSTError(f"a log x axis needs positive values ({panel.xlabel})")
    xs, ys = xs or [1.0], ys or [0.0]
    pad = 0.05 * (max(ys) - min(ys) or 1.0)
    xticks, xunit, xfmt = _axis(min(xs), max(xs), panel.log_x)
    yticks, yunit, yfmt = _axis(min(ys) - pad, max(ys) + pad, False)
    left, right = round(k * slot) + 72, round((k + 1) * slot) - 16
    px = lambda x: left + xunit(x) * (right - left)
    py = lambda y: bottom - yunit(y) * (bottom - top)
    for t in xticks:
      if 0 <= xunit(t) <= 1:
        draw.line([(px(t), top), (px(t), bottom)], fill=_GRID)
        _text(draw, (px(t), bottom + 4), xfmt(t), font, "mt")
    for t in yticks:
      if 0 <= yunit(t) <= 1:
        draw.line([(left, py(t)), (right, py(t))], fill=_GRID)
        _text(draw, (left - 5, py(t)), yfmt(t), font, "rm")
    for y, label, *name in panel.hlines:
      ink = colour.get(name[0], _BOUNDARY_TEXT) if name else _BOUNDARY_TEXT
      _dashes(draw, [(left, py(y)), (right, py(y))], ink, 1)
      _text(draw, (right - 4, py(y) - 3), label, font, "rb", ink)
    for x, label in panel.marks:
      draw.line([(px(x), top), (px(x), bottom)], fill=_BOUNDARY, width=2)
      right_half = px(x) > (left + right) / 2   # label inside the frame
      _text(draw, (px(x) + (-4 if right_half else 4), bottom - 4), label,
            font, "rb" if right_half else "lb", _BOUNDARY_TEXT)
    for s in panel.series:
      run = [(px(x), py(y)) for x, y in zip(map(_number, s.xs),
                                            map(_number, s.ys))
             if x is not None and y is not None]
      if run:
        _polyline(draw, run, colour[s.name], 2, s.dashed)
    draw.rectangle((left, top, right, bottom), outline=_FRAME)
    _text(draw, ((left + right) / 2, bottom + 23), panel.xlabel, font, "mt")
    _text(draw, (left + 4, top + 4), panel.ylabel, font, "lt")
  _legend(draw, legend, 72, bottom + 48, width - _PAD, font)
  return np.asarray(image, np.float32) / 255.0
