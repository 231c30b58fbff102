"""Folders and grids through the levels of ``config.schedule``
(``grid.run_cells``): their progress level by level, and a level too small
for the layers refused before any work.

A tiny random VGG-16 (conftest.tiny_vgg16_params) on shallow layers, 24-48
px, a few iterations.
"""

import numpy as np
import pytest

import scripting
from conftest import random_image as _img

from nst_jax import batch
from nst_jax import config as C
from nst_jax import grid
from nst_jax import sharded
from nst_jax import transfer
from nst_jax.errors import NSTError

# The tiny network and shallow configuration of test_driver.
from test_driver import SHALLOW, _config, params  # noqa: F401  (a fixture)


# --- progress through the levels of folders and grids ------------------------------


def test_a_grids_progress_counts_each_levels_own_iterations(params):
  """``on_level_start`` announces each level and every ``Progress`` says how
  many iterations its level has (before, a batched run's Progress said 0,
  and nst-grid's bar took --iterations for every level)."""
  cfg = _config(schedule=C.Schedule(scales=(24, 32), scale_iterations=(3, 2)))
  starts, seen = [], []
  grid.style_grid(params, np.asarray(_img(24, 32, 0)),
                  [np.asarray(_img(32, 32, 1))],
                  grid.GridAxes(style_layer_sets=(SHALLOW,)), cfg,
                  on_level_start=lambda *a: starts.append(a),
                  on_progress=lambda first, p: seen.append(
                      (len(starts), p.iteration, p.iterations)))
  assert starts == [(0, 24, 3), (1, 32, 2)]
  assert {(level, total) for level, _, total in seen} == {(1, 3), (2, 2)}
  assert max(i for level, i, _ in seen if level == 2) == 2


def test_a_folders_progress_never_goes_back_across_levels(params):
  """``stylize_batch``'s ``on_progress(done, total)`` counts a running chunk
  by its share of the iterations of all its levels: it grows to the total
  (before, it counted each level's iterations against --iterations, so the
  bar fell back when the second level started)."""
  cfg = _config(schedule=C.Schedule(scales=(24, 32), scale_iterations=(3, 2)))
  reports = []
  outputs = list(batch.stylize_batch(
      params, [np.asarray(_img(24, 32, 0))], [np.asarray(_img(32, 32, 1))],
      grid.GridAxes(style_layer_sets=(SHALLOW,)), cfg,
      on_progress=lambda done, total: reports.append(done)))
  assert outputs[0].iterations == 5
  assert reports == sorted(reports), reports
  assert reports[-1] == 1
  assert any(0 < r < 1 for r in reports)


@pytest.mark.slow
def test_nst_grid_shows_a_bar_per_level(tmp_path):
  """nst-grid through two levels writes a bar of each level's own
  iterations, labelled with its size (in a log: a line per tenth)."""
  root = scripting.ROOT
  proc = scripting.run(
      "style_grid.py", f"--content={root / 'examples' / 'chelsea.png'}",
      f"--style={root / 'examples' / 'style_brushwork.png'}",
      "--network=alexnet", "--scales=48,64", "--scale_iterations=4,2",
      "--iterations=4", f"--output_dir={tmp_path / 'grid'}")
  scripting.assert_ok(proc)
  assert "48 px, 1 cells" in proc.stderr and "4/4" in proc.stderr
  assert "64 px, 1 cells" in proc.stderr and "2/2" in proc.stderr


# --- refused before any work: a level too small for the layers ---------------------


@pytest.mark.parametrize("driver", ["grid", "folder"])
def test_a_level_too_small_for_the_layers_is_refused_before_any_work(
    params, driver, monkeypatch):
  """A coarse level that cannot reach the deepest layer is refused in one
  line before any optimisation, as ``stylize_multiscale`` refuses it
  (before, only the output size was checked and the level ran)."""
  def no_work(*args, **kwargs):
    raise AssertionError("optimised before refusing")
  monkeypatch.setattr(sharded, "minimize_cells", no_work)
  cfg = _config(schedule=C.Schedule(scales=(2, 32)))
  content = np.asarray(_img(24, 32, 0))
  style = np.asarray(_img(32, 32, 1))
  axes = grid.GridAxes(style_layer_sets=(SHALLOW,))
  with pytest.raises(NSTError, match="too small for layer"):
    if driver == "grid":
      grid.style_grid(params, content, [style], axes, cfg)
    else:
      batch.stylize_batch(params, [content], [style], axes, cfg)
  with pytest.raises(NSTError, match="too small for layer"):
    transfer.paint(params, content, [style], cfg)
