"""The composition matrix (issue 22): every driver × every feature is either
applied — and a named test shows it — or refused before any work with one
line that says why. A new driver or feature must add its row or column
here, or this test fails; a refusal that stops being one, or a named test
that disappears, fails it too.

Drivers: ``stylize`` (nst-stylize, ``transfer.paint``), ``folder``
(nst-stylize --output_dir, ``batch.stylize_batch``), ``grid`` (nst-grid,
``grid.style_grid``), ``video`` (nst-stylize-video, ``video.stylize_video``),
and the methods beyond Gatys, ``strotss`` and ``nnst`` (nst-stylize
--method, ``methods.paint``: their own coarse-to-fine schedules; folders,
grids and video refuse them, ``test_methods.py``; masks are STROTSS's
guidance).
"""

import dataclasses
import importlib

import numpy as np
import pytest

import scripting
from conftest import tiny_vgg16_params
from conftest import random_image as _img

from nst_jax import batch, config as C, grid, objective, transfer, video
from nst_jax.color import ColorControl
from nst_jax.errors import NSTError

DRIVERS = ("stylize", "folder", "grid", "video", "strotss", "nnst")
FEATURES = ("coarse_to_fine", "tiling", "row_devices", "masks", "color",
            "blends", "resume", "evaluate", "normalize_style", "coarse_view")
# The TransferConfig parts each feature is (a new part must be placed).
PARTS = {"schedule": "coarse_to_fine", "tile_size": "tiling",
         "memory_budget": "tiling",
         "image_devices": "row_devices", "color": "color",
         "weights": "blends"}
# Parts that are no feature of their own (every driver takes them).
COMMON = ("network", "spec", "solver", "init", "patches", "conv")

A = "applied"


def _library_refusal(driver, config):
  """Calls ``driver``'s library entry with ``config`` on tiny inputs; the
  refusal must come before any optimisation."""
  params = tiny_vgg16_params()
  content = np.asarray(_img(32, 40, 0))
  style = np.asarray(_img(32, 32, 1))
  if driver == "folder":
    list(batch.stylize_batch(params, [content], [style],
                             grid.GridAxes(style_layer_sets=(("relu1_1",),)),
                             config))
  elif driver == "grid":
    grid.style_grid(params, content, [style],
                    grid.GridAxes(style_layer_sets=(("relu1_1",),)), config)
  elif driver == "video":
    video.stylize_video(params, [content, content], [style, style], config)
  else:
    raise AssertionError(driver)


def _base():
  spec = objective.Spec(content_layers=("relu2_1",),
                        style_layers=("relu1_1",))
  return transfer.TransferConfig(spec=spec, tile_size=0).replace(
      solver=dict(maxiter=1))


REFUSED_IN_LIBRARY = {
    ("folder", "tiling"): (dict(tile_size=16), "tile_size"),
    ("folder", "row_devices"): (dict(image_devices="all"), "image_devices"),
    ("folder", "blends"): (dict(weights=dict(style_blend=(1.0,))),
                           "one style image"),
    ("grid", "tiling"): (dict(tile_size=16), "tile_size"),
    ("grid", "row_devices"): (dict(image_devices="all"), "image_devices"),
    ("grid", "blends"): (dict(weights=dict(style_blend=(1.0,))),
                         "one style image"),
    ("video", "color"): (dict(color=ColorControl(original_colors=True)),
                         "colour control"),
}

# Refused by the command in one line before any work (the flags a command
# does not offer are unknown flags, which absl refuses in one line).
REFUSED_BY_COMMAND = {
    ("folder", "masks"): ("stylize.py", "--output_dir={out}",
                          "--content_mask={content}", "--content_mask"),
    ("folder", "evaluate"): ("stylize.py", "--output_dir={out}",
                             "--evaluate", "--evaluate"),
    ("folder", "resume"): None,   # applied: finished results are skipped
    ("grid", "resume"): ("style_grid.py", "--output_dir={out}",
                         "--resume={content}", "resume"),
    ("video", "masks"): ("stylize_video.py", "--output={out}/v.mp4",
                         "--content_mask={content}", "content_mask"),
    ("video", "evaluate"): ("stylize_video.py", "--output={out}/v.mp4",
                            "--evaluate", "evaluate"),
}
for _method in ("strotss", "nnst"):
  _out = "--output={out}/m.png"
  REFUSED_BY_COMMAND.update({
      (_method, "tiling"): ("stylize.py", f"--method={_method}", _out,
                            "--tile_size=16", "does not use --tile_size"),
      (_method, "row_devices"): ("stylize.py", f"--method={_method}", _out,
                                 "--image_devices=2",
                                 "does not use --image_devices"),
      (_method, "masks"): None if _method == "strotss" else (
          "stylize.py", f"--method={_method}", _out,
          "--content_mask={content}", "does not use --content_mask"),
      (_method, "color"): ("stylize.py", f"--method={_method}", _out,
                           "--original_colors", "does not use "
                           "--original_colors"),
      (_method, "blends"): ("stylize.py", f"--method={_method}", _out,
                            "--style={content},{content}", "one --style"),
      (_method, "resume"): ("stylize.py", f"--method={_method}", _out,
                            "--resume={content}", "--resume is for"),
      (_method, "normalize_style"): ("stylize.py", f"--method={_method}",
                                     _out, "--normalize_style",
                                     "does not use --normalize_style"),
      (_method, "coarse_view"): ("stylize.py", f"--method={_method}", _out,
                                 "--coarse_weight=0.5",
                                 "does not use --coarse_weight"),
  })

APPLIED = {
    ("stylize", "coarse_to_fine"):
        "test_resume.py::test_a_killed_coarse_to_fine_command_resumes_at_its_level",
    ("stylize", "tiling"):
        "test_tiling.py::test_multiscale_adam_snapshots_and_stop_when_tiled",
    ("stylize", "row_devices"):
        "test_tiling.py::test_rows_sharded_over_four_devices_equal_one",
    ("stylize", "masks"): "test_masks.py::test_stylize_command_with_masks",
    ("stylize", "color"):
        "test_transfer.py::test_original_colors_keep_the_contents_chrominance",
    ("stylize", "blends"): "test_objective.py::test_make_targets_shapes_and_blend",
    ("stylize", "resume"):
        "test_resume.py::test_resume_after_kill_9_is_bit_identical",
    ("stylize", "evaluate"):
        "test_evaluate.py::test_stylize_evaluate_scores_as_nst_evaluate_does",
    ("folder", "coarse_to_fine"):
        "test_driver.py::test_a_folder_paints_coarse_to_fine_like_the_single_command",
    ("folder", "color"): "test_grid.py::test_script_honours_or_refuses_options",
    ("folder", "resume"):
        "test_resume.py::test_a_folder_killed_after_its_first_result_resumes_bit_identically",
    ("grid", "coarse_to_fine"):
        "test_driver.py::test_a_grid_paints_the_schedules_levels_like_one_transfer",
    ("grid", "masks"):
        "test_masks.py::test_style_grid_with_masks_matches_single_runs",
    ("grid", "color"): "test_grid.py::test_script_honours_or_refuses_options",
    ("grid", "evaluate"):
        "test_evaluate.py::test_grid_evaluate_scores_every_cell_and_each_style_set",
    ("video", "coarse_to_fine"):
        "test_driver.py::test_a_video_paints_the_schedules_levels",
    ("video", "tiling"): "test_driver.py::test_video_tiled_equals_untiled",
    ("video", "row_devices"):
        "test_driver.py::test_video_rows_over_two_devices_equal_one",
    ("video", "blends"): "test_driver.py::test_video_blends_its_styles",
    ("video", "resume"):
        "test_resume.py::test_a_video_killed_inside_a_frame_resumes_bit_identically",
    ("strotss", "coarse_to_fine"):
        "test_methods.py::test_strotss_runs_its_levels_and_is_reproducible_from_its_seed",
    ("nnst", "coarse_to_fine"):
        "test_methods.py::test_nnst_runs_levels_final_pass_and_colour_transfer",
    ("strotss", "evaluate"):
        "test_methods.py::test_the_command_paints_with_strotss_and_records_it",
    ("strotss", "masks"):   # its guidance; the same command run
        "test_methods.py::test_the_command_paints_with_strotss_and_records_it",
    ("nnst", "evaluate"):
        "test_methods.py::test_the_command_paints_with_strotss_and_records_it",
    **{(d, "normalize_style"):
       "test_composition.py::test_normalize_style_reaches_every_drivers_targets"
       for d in ("stylize", "folder", "grid", "video")},
    **{(d, "coarse_view"):
       "test_coarse_view.py::test_the_coarse_view_reaches_every_drivers_levels"
       for d in ("stylize", "folder", "grid", "video")},
}


def _cell(driver, feature):
  key = (driver, feature)
  if key in APPLIED:
    return "applied"
  if key in REFUSED_IN_LIBRARY:
    return "library"
  if REFUSED_BY_COMMAND.get(key):
    return "command"
  return None


def test_every_cell_is_applied_or_refused():
  missing = [(d, f) for d in DRIVERS for f in FEATURES if _cell(d, f) is None]
  assert not missing, f"cells neither applied nor refused: {missing}"
  both = set(APPLIED) & (set(REFUSED_IN_LIBRARY) | {
      k for k, v in REFUSED_BY_COMMAND.items() if v})
  assert not both, both


def test_every_config_part_is_placed():
  """A new part of TransferConfig is a feature of the matrix or common to
  every driver: adding one without deciding fails here."""
  names = {f.name for f in dataclasses.fields(transfer.TransferConfig)}
  assert names == set(PARTS) | set(COMMON), names ^ (set(PARTS) | set(COMMON))
  assert set(PARTS.values()) <= set(FEATURES)


@pytest.mark.parametrize("key", sorted(APPLIED), ids="-".join)
def test_applied_cells_name_a_test_that_exists(key):
  module, name = APPLIED[key].split("::")
  found = importlib.import_module(module[:-3])
  assert callable(getattr(found, name, None)), APPLIED[key]


@pytest.mark.parametrize("key", sorted(REFUSED_IN_LIBRARY), ids="-".join)
def test_library_refuses_before_any_work(key, monkeypatch):
  driver, _ = key
  changes, fragment = REFUSED_IN_LIBRARY[key]
  # Any optimisation would be work done before the refusal.
  from nst_jax import sharded, solvers  # pylint: disable=g-import-not-at-top
  def no_work(*args, **kwargs):
    raise AssertionError("optimised before refusing")
  monkeypatch.setattr(sharded, "minimize_cells", no_work)
  monkeypatch.setattr(solvers, "minimize", no_work)
  with pytest.raises(NSTError, match=fragment):
    _library_refusal(driver, _base().replace(**changes))


@pytest.mark.parametrize("key", sorted(
    k for k, v in REFUSED_BY_COMMAND.items() if v), ids="-".join)
def test_command_refuses_in_one_line(key, tmp_path):
  script, *args, fragment = REFUSED_BY_COMMAND[key]
  content = scripting.ROOT / "examples" / "chelsea.png"
  style = scripting.ROOT / "examples" / "style_brushwork.png"
  out = tmp_path / "out"
  source = "--input" if script == "stylize_video.py" else "--content"
  proc = scripting.run(script, f"{source}={content}", f"--style={style}",
                       "--size=32", "--iterations=1", "--quiet",
                       *(a.format(out=out, content=content) for a in args))
  scripting.assert_one_line_error(proc, fragment, status=None)
  assert not out.exists() or not any(out.iterdir())


def test_normalize_style_reaches_every_drivers_targets(monkeypatch):
  """``LossWeights.normalize_style`` (``--normalize_style``, issue 26 item
  5) reaches every Gatys driver's targets: each run once with it on divides
  its blend weights by the painting's scale (``targets.style_scales``,
  through ``problem.style_targets`` → ``targets.make_targets``, or per
  cell in ``grid.cell_data`` for grids and folders); the values are
  checked in ``test_objective.py`` and by the grid-cell test below."""
  from nst_jax import targets  # pylint: disable=g-import-not-at-top
  seen = []
  scales = targets.style_scales
  def recording(*args, **kwargs):
    seen.append(True)
    return scales(*args, **kwargs)
  monkeypatch.setattr(targets, "style_scales", recording)
  params = tiny_vgg16_params()
  content = np.asarray(_img(32, 40, 0))
  style = np.asarray(_img(32, 32, 1))
  config = _base().replace(weights=dict(normalize_style=True))
  runs = {
      "stylize": lambda: transfer.paint(params, content, [style], config),
      "folder": lambda: list(batch.stylize_batch(
          params, [content], [style],
          grid.GridAxes(style_layer_sets=(("relu1_1",),)), config)),
      "grid": lambda: grid.style_grid(
          params, content, [style],
          grid.GridAxes(style_layer_sets=(("relu1_1",),)), config),
      "video": lambda: video.stylize_video(params, [content, content],
                                           [style], config),
  }
  for driver, run in runs.items():
    seen.clear()
    run()
    assert seen, driver


def test_a_grid_cell_normalizes_over_its_own_layers_as_stylize_does():
  """With ``normalize_style`` a cell's blend weight is ``1/n_s`` over the
  cell's own style layers, as ``nst-stylize`` with that layer set has it
  (the grid's targets span the union of the cells' layers; a scale over
  the union would paint a one-layer cell ~35× weaker or stronger)."""
  params = tiny_vgg16_params()
  content = np.asarray(_img(32, 40, 0))
  style = np.asarray(_img(32, 32, 1))
  config = _base().replace(weights=dict(normalize_style=True))
  sets = (("relu1_1",), ("relu1_1", "relu2_1"))
  axes = grid.GridAxes(style_layer_sets=sets)
  cells = axes.cells()
  cfg = grid.cell_config(config, sets)
  _, got, _ = grid.cell_data(params, [content], [style], cells, cfg)
  for index, layers in enumerate(sets):
    single = config.replace(spec=dict(style_layers=layers))
    want = transfer.style_targets(params, content, [style], single)
    np.testing.assert_allclose(got.style_blend[index], want.style_blend,
                               rtol=1e-5)
