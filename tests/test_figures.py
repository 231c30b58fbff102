"""Tests of nst_jax.figures: the images in rows and grids (layout, captions,
the style grid's rows and columns), and the loss curves: the figure's array
contract, determinism, which panels and curves appear (found by their exact
colours in the pixels), bad values, multi-scale level lines, validation, and
the tick helpers.

Panels are located by their frame colour, so the tests read real pixels.
"""

import math

import numpy as np
import pytest
from PIL import ImageFont

from nst_jax import figures

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
BLACK = (0, 0, 0)


# ---------------------------------------------------------------------------
# Images in rows and grids.


def _flat(value, shape=(10, 10)):
  return np.full((*shape, 3), value, np.float32)


def test_side_by_side_layout_and_labels():
  a = _flat(0.0, (20, 40))
  b = _flat(1.0)
  sheet = figures.side_by_side([a, b], ["a", "b"], height=30, gap=4,
                               label_height=12)
  assert sheet.shape == (42, 60 + 4 + 30, 3)
  assert sheet.dtype == np.float32
  np.testing.assert_allclose(sheet[:30, :60], 0.0)          # a, scaled
  np.testing.assert_allclose(sheet[:30, 64:], 1.0)          # b, scaled
  assert sheet[30:, :60].min() < 0.5                        # a caption drawn
  assert figures.side_by_side([a, b], height=30, gap=4).shape == (30, 94, 3)
  with pytest.raises(ValueError, match="`labels`"):
    figures.side_by_side([a], ["x", "y"])
  with pytest.raises(ValueError, match="`images`"):
    figures.side_by_side([])
  with pytest.raises(ValueError, match="`images`"):
    figures.side_by_side([np.zeros((4, 4))])


def test_stacked_rows_pads_narrow_rows_with_white():
  rows = [[_flat(0.0), _flat(0.0)], [_flat(0.0)]]
  sheet = figures.stacked_rows(rows, [["a", "b"], ["c"]], height=20, gap=6)
  first = figures.side_by_side(rows[0], ["a", "b"], height=20)
  second = figures.side_by_side(rows[1], ["c"], height=20)
  assert sheet.shape == (first.shape[0] + 6 + second.shape[0],
                         first.shape[1], 3)
  np.testing.assert_array_equal(sheet[:first.shape[0]], first)
  np.testing.assert_allclose(sheet[first.shape[0]:first.shape[0] + 6], 1.0)
  below = sheet[first.shape[0] + 6:]
  np.testing.assert_array_equal(below[:, :second.shape[1]], second)
  np.testing.assert_allclose(below[:, second.shape[1]:], 1.0)
  with pytest.raises(ValueError, match="`labels`"):
    figures.stacked_rows(rows, [["a", "b"]])


def test_contact_sheet_places_each_cell():
  grey = lambda k: 40 * k / 255  # exact in 8 bits
  cells = [[_flat(grey(3 * i + j)) for j in range(3)] for i in range(2)]
  sheet = figures.contact_sheet(cells, ["r0", "r1"], ["c0", "c1", "c2"],
                                cell_height=20, gap=4, label_width=50,
                                label_height=16)
  assert sheet.shape == (16 + 2 * 24, 50 + 3 * 24, 3)
  for i in range(2):
    for j in range(3):
      top, left = 16 + 24 * i, 50 + 24 * j
      np.testing.assert_allclose(sheet[top:top + 20, left:left + 20],
                                 grey(3 * i + j), atol=1e-6)
  margin = figures.contact_sheet(cells, ["r0", "r1"], ["c0", "c1", "c2"],
                                 margin_images=[_flat(0.5, (10, 20))],
                                 margin_labels=["content"], title="t",
                                 cell_height=20)
  assert margin.shape[0] > sheet.shape[0]
  with pytest.raises(ValueError, match="rectangular"):
    figures.contact_sheet([cells[0], cells[1][:2]], ["a", "b"], ["x"] * 3)
  with pytest.raises(ValueError, match="`row_labels`"):
    figures.contact_sheet(cells, ["r0"], ["c0", "c1", "c2"])


def test_crop_to_aspect_keeps_the_centre_at_the_shape_aspect():
  image = np.arange(6 * 12 * 3, dtype=np.float32).reshape(6, 12, 3)
  wide = figures.crop_to_aspect(image, (3, 4, 3))      # 4:3 of a 2:1 image
  assert wide.shape == (6, 8, 3)
  np.testing.assert_array_equal(wide, image[:, 2:10])  # the centre columns
  tall = figures.crop_to_aspect(image, (4, 2))         # 1:2 of a 2:1 image
  assert tall.shape == (6, 3, 3)
  np.testing.assert_array_equal(tall, image[:, 4:7])
  flat = figures.crop_to_aspect(image[:2], (1, 1))
  assert flat.shape == (2, 2, 3)
  same = figures.crop_to_aspect(image, (60, 120))
  np.testing.assert_array_equal(same, image)
  high = figures.crop_to_aspect(image.transpose(1, 0, 2), (1, 1))
  assert high.shape == (6, 6, 3)
  np.testing.assert_array_equal(high, image.transpose(1, 0, 2)[3:9])
  with pytest.raises(ValueError, match="`image`"):
    figures.crop_to_aspect(np.zeros((4, 4)), (1, 1))


def test_cell_label():
  assert figures.cell_label("style_weight", 1e7) == "style 1e+07"
  assert figures.cell_label("style_layer_sets", ("relu1_1",)) == "relu1_1"
  assert figures.cell_label("style_layer_sets",
                            ("relu1_1", "relu2_1", "relu3_1")) == (
                                "relu1_1..relu3_1")
  assert figures.cell_label("style_layer_weights", (0.25, 0.75)) == (
      "0.25,0.75")
  assert figures.cell_label("seed", 3) == "seed 3"


def test_grid_sheet_rows_are_the_other_axes_and_columns_the_last():
  axes = {"style": (0,), "style_weight": (1e5, 1e6, 1e7), "tv_weight": (1.0,),
          "seed": (0, 1)}
  images = [_flat(0.1 * k) for k in range(6)]
  sheet = figures.grid_sheet(images, axes, cell_height=20)
  expected = figures.contact_sheet(
      [images[0:2], images[2:4], images[4:6]],
      ["style 1e+05", "style 1e+06", "style 1e+07"], ["seed 0", "seed 1"],
      cell_height=20)
  np.testing.assert_array_equal(sheet, expected)
  # The caption function is the caller's; one line per varying row axis.
  calls = []
  def label(name, value):
    calls.append(name)
    return f"{name}={value}"
  axes3 = dict(axes, style=(0, 1))
  figures.grid_sheet([_flat(0.0)] * 12, axes3, label=label, cell_height=20)
  assert set(calls) == {"style", "style_weight", "seed"}
  assert calls.count("seed") == 2       # one caption per column
  assert calls.count("style") == 6      # one per row (2 x 3 rows)
  with pytest.raises(ValueError, match="`images` holds 5 images for a grid "
                     "of 6 cells"):
    figures.grid_sheet(images[:5], axes)


def test_grid_sheet_of_one_cell():
  sheet = figures.grid_sheet([_flat(0.3)], {"seed": (0,)}, cell_height=20)
  assert sheet.shape[2] == 3 and sheet.dtype == np.float32


# ---------------------------------------------------------------------------
# Loss curves.


def _history(n=500, every=10, *, seconds=True, layers=True, sizes=(None,)):
  """A decaying synthetic history; with ``sizes`` iterations restart per level."""
  records, t = [], 0.0
  for size in sizes:
    for it in range(0, n + 1, every):
      decay = math.exp(-it / 80) + 0.02
      record = {"iteration": it, "total": 3e5 * decay + 3e4,
                "content": 3e4 * (1 - 0.8 * math.exp(-it / 50)),
                "style": 2.7e5 * decay, "tv": 120.0 + it / 10}
      if layers:
        record["style_layers"] = {l: 2e4 * (k + 1) * decay
                                  for k, l in enumerate(LAYERS)}
      t += 0.25
      if seconds:
        record["seconds"] = t
      if size is not None:
        record["size"] = size
      records.append(record)
  return records


def _mask(image, colour):
  """(H, W) bool: pixels exactly ``colour`` (0-255 RGB)."""
  return np.all(np.round(image * 255).astype(int) == np.array(colour), axis=-1)


def _panels(image):
  """(left, top, right, bottom) of the inside of each panel, found from the
  long straight lines of the frame colour."""
  frame = _mask(image, figures._FRAME)
  cols = np.flatnonzero(frame.sum(0) > 0.4 * image.shape[0])
  rows = np.flatnonzero(frame.sum(1) > 0.3 * image.shape[1])
  assert len(cols) % 2 == 0 and len(rows) == 2, (cols, rows)
  return [(l + 1, rows[0] + 1, r, rows[1]) for l, r in zip(cols[::2], cols[1::2])]


def _inside(image, box, colour):
  left, top, right, bottom = box
  return _mask(image[top:bottom, left:right], colour)


@pytest.mark.parametrize("size,title", [((900, 420), None), ((640, 300), "run")])
def test_array_contract(size, title):
  image = figures.loss_curves(_history(), title=title, width=size[0],
                              height=size[1])
  assert image.dtype == np.float32
  assert image.shape == (size[1], size[0], 3)
  assert image.min() >= 0.0 and image.max() <= 1.0


def test_same_history_same_pixels():
  history = _history(sizes=(256, 512))
  assert np.array_equal(figures.loss_curves(history, title="t"),
                        figures.loss_curves(history, title="t"))


def test_seconds_add_a_second_panel_with_the_total_curve():
  with_seconds = figures.loss_curves(_history())
  without = figures.loss_curves(_history(seconds=False))
  two, one = _panels(with_seconds), _panels(without)
  assert len(two) == 2 and len(one) == 1
  assert two[1][0] > with_seconds.shape[1] // 2
  for image, boxes in ((with_seconds, two), (without, one)):
    for box in boxes:
      assert _inside(image, box, BLACK).sum() > 100


def test_seconds_panel_when_only_some_records_have_seconds():
  history = _history(seconds=False)
  history[-1]["seconds"] = 9.0
  history[-2]["seconds"] = 8.0
  assert len(_panels(figures.loss_curves(history))) == 2


def test_decaying_total_runs_from_top_left_downwards():
  image = figures.loss_curves(_history(seconds=False))
  (box,) = _panels(image)
  black = _inside(image, box, BLACK)
  width = black.shape[1]
  rows_left = np.flatnonzero(black[:, : width // 10].any(1))
  rows_right = np.flatnonzero(black[:, -width // 10:].any(1))
  assert rows_left.mean() < rows_right.mean() - 20
  assert rows_left.min() < black.shape[0] * 0.15  # the maximum is near the top


def test_style_layer_curves_drawn_only_when_given():
  with_layers = figures.loss_curves(_history())
  box = _panels(with_layers)[0]
  for colour in figures._LAYER_COLOURS[:len(LAYERS)]:
    assert _inside(with_layers, box, colour).sum() > 50
  without = figures.loss_curves(_history(layers=False))
  for colour in figures._LAYER_COLOURS:
    assert not _mask(without, colour).any()
  for _, colour, _ in figures._TERMS:
    assert _inside(without, _panels(without)[0], colour).sum() > 50


def test_all_zero_term_is_omitted_and_bad_values_skipped():
  history = _history(seconds=False)
  for i, record in enumerate(history):
    record["content"] = 0.0
    record["style_layers"]["relu1_1"] = [-1.0, float("nan"), float("inf"),
                                         None, "x", 0.0][i % 6]
  image = figures.loss_curves(history)
  # content: no curve, no legend; relu1_1 never positive.
  assert not _mask(image, figures._TERMS[1][1]).any()
  assert not _mask(image, figures._LAYER_COLOURS[0]).any()
  assert _mask(image, figures._LAYER_COLOURS[1]).sum() > 50


@pytest.mark.parametrize("history", [
    [{"iteration": 0, "total": 0.0}],
    [{"iteration": 0, "total": float("nan")}, {"iteration": 1, "total": -3.0}],
    [{"iteration": 5, "total": 7.0, "seconds": float("nan")}],
    [{"iteration": float("nan"), "total": 1.0}, {"iteration": 2, "total": 1.0}],
    [{"iteration": i, "total": 1e4 * (1 + 0.001 * i), "style_layers": None}
     for i in range(20)],
    [{"iteration": i, "total": [1.0, float("inf"), 0.0, 2.0][i % 4],
      "size": 64 * (1 + i // 4), "seconds": None if i % 3 else i}
     for i in range(12)],
])
def test_degenerate_histories_draw(history):
  image = figures.loss_curves(history, title="degenerate")
  assert image.shape == (420, 900, 3) and np.isfinite(image).all()


def test_multiscale_levels_are_offset_and_marked():
  history = _history(100, 10, seconds=False, sizes=(256, 512, 1024))
  image = figures.loss_curves(history)
  (box,) = _panels(image)
  line = _inside(image, box, figures._BOUNDARY)
  columns = np.flatnonzero(line.sum(0) > 0.5 * line.shape[0])
  width = box[2] - box[0]
  assert len(columns) == 2
  np.testing.assert_allclose(columns, [width / 3, 2 * width / 3], atol=2)
  single = figures.loss_curves(_history(seconds=False))
  assert not _mask(single, figures._BOUNDARY).any()


def test_levels_offsets_and_starts():
  history = [{"iteration": i, "total": 1.0, "size": s}
             for s, its in ((256, (0, 50, 100)), (512, (0, 40))) for i in its]
  xs, levels, starts = figures._levels(history)
  assert xs == [0, 50, 100, 100, 140]
  assert levels == [0, 0, 0, 1, 1]
  assert starts == [(0, 256), (3, 512)]


def test_levels_without_restart_keep_the_iteration():
  history = [{"iteration": i, "total": 1.0, "size": 256 if i < 30 else 512}
             for i in range(0, 60, 10)]
  xs, levels, starts = figures._levels(history)
  assert xs == [0, 10, 20, 30, 40, 50] and levels == [0, 0, 0, 1, 1, 1]
  assert starts == [(0, 256), (3, 512)]


def test_runs_break_at_gaps_and_levels():
  xs = [0, 1, 2, None, 4, 5, 6, 7]
  values = [1.0, 2.0, None, 3.0, 4.0, 5.0, 6.0, 7.0]
  levels = [0, 0, 0, 0, 0, 1, 1, 1]
  assert figures._runs(xs, values, levels) == [
      [(0, 1.0), (1, 2.0)], [(4, 4.0)], [(5, 5.0), (6, 6.0), (7, 7.0)]]


@pytest.mark.parametrize("history,match", [
    ([], "non-empty"),
    (None, "non-empty"),
    ([{"iteration": 0}], "record 0 needs 'iteration' and 'total'"),
    ([{"iteration": 0, "total": 1.0}, {"total": 1.0}], "record 1"),
    ([3.0], "record 0"),
])
def test_invalid_history_raises(history, match):
  with pytest.raises(ValueError, match=match):
    figures.loss_curves(history)


def test_too_small_figure_raises():
  with pytest.raises(ValueError, match="too small"):
    figures.loss_curves(_history(), width=300, height=120)


def test_bitmap_font_fallback(monkeypatch):
  monkeypatch.setattr(figures, "_font",
                      lambda size: ImageFont.load_default_imagefont())
  image = figures.loss_curves(_history(sizes=(256, 512)), title="bitmap")
  assert len(_panels(image)) == 2


def test_ticks_linear():
  assert figures._ticks_linear(0, 500) == [0, 100, 200, 300, 400, 500]
  assert figures._ticks_linear(0.25, 12.75) == [2.5, 5, 7.5, 10, 12.5]
  assert figures._ticks_linear(0.3, 0.9) == [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
  assert figures._ticks_linear(3.0, 3.0) == [3.0]
  rng = np.random.default_rng(0)
  spans = 10.0 ** rng.uniform(-3, 5, 200)
  for lo, span in zip(rng.uniform(-1e3, 1e3, 200), spans):
    ticks = figures._ticks_linear(lo, lo + span)
    assert 3 <= len(ticks) <= 8
    assert all(lo <= t <= lo + span for t in ticks)


def test_ticks_log():
  assert figures._ticks_log(50, 2e5) == [1e2, 1e3, 1e4, 1e5]
  assert figures._ticks_log(3e3, 2e4) == [5e3, 1e4, 2e4]
  assert figures._ticks_log(1.2e4, 4e4) == [2e4, 3e4, 4e4]
  wide = figures._ticks_log(1e-12, 1e12)
  assert 2 <= len(wide) <= 8 and all(t in [10.0 ** e for e in range(-12, 13)]
                                     for t in wide)
  rng = np.random.default_rng(1)
  ratios = 10.0 ** rng.uniform(0.2, 6, 200)
  for lo, ratio in zip(10.0 ** rng.uniform(-8, 8, 200), ratios):
    ticks = figures._ticks_log(lo, lo * ratio)
    assert len(ticks) >= 2 and ticks == sorted(ticks)
    assert all(lo <= t <= lo * ratio for t in ticks)


def test_format_log():
  values = (1e3, 2e4, 0.015, 999.9999999999, 1.0)
  assert [figures._format_log(v) for v in values] == [
      "1e3", "2e4", "1.5e-2", "1e3", "1e0"]


def test_log_range_is_at_most_max_decades():
  """A content term starting at 1e-8 (content init) must not squeeze the
  other curves: the axis spans at most MAX_DECADES below the largest value,
  and smaller values are drawn on the frame."""
  curves = [("total", None, 1, False, [1e7, 1e6]),
            ("content", None, 1, False, [1e-8, 1e5])]
  lo, hi = figures._log_range(curves)
  assert hi - lo <= figures.MAX_DECADES * 1.1 + 1e-9
  assert lo > -2
  history = [{"iteration": 0, "total": 1e7, "content": 1e-8},
             {"iteration": 10, "total": 1e6, "content": 1e5}]
  image = figures.loss_curves(history)
  assert image.shape == (420, 900, 3)


def test_metric_panels_draw_each_series_and_refuse_bad_input():
  a = figures.Series("a", [50, 100, 200], [0.3, 0.2, 0.1])
  b = figures.Series("b", [50, 100, 200], [0.1, 0.15, 0.2], dashed=True)
  panel = figures.Panel([a, b], "beta", "distance", log_x=True,
                        hlines=[(0.25, "peer", "a")], marks=[(100, "chosen")])
  image = figures.metric_panels([panel, panel._replace(log_x=False)],
                                title="t", width=700, height=300)
  assert image.shape == (300, 700, 3) and image.dtype == np.float32
  pixels = (np.asarray(image) * 255).round().astype(int).reshape(-1, 3)
  for index in (0, 1):   # both series' colours are on the figure
    colour = np.asarray(figures._LAYER_COLOURS[index])
    assert (np.abs(pixels - colour).sum(axis=1) == 0).sum() > 50, index
  with pytest.raises(ValueError, match="empty"):
    figures.metric_panels([])
  with pytest.raises(ValueError, match="2 xs and 3 ys"):
    figures.metric_panels([figures.Panel(
        [figures.Series("c", [1, 2], [1, 2, 3])], "x", "y")])
  with pytest.raises(ValueError, match="log x axis"):
    figures.metric_panels([figures.Panel([a._replace(xs=[0, 1, 2])], "x",
                                         "y", log_x=True)])
