"""Style grids: batched cells equal cells run alone; chunking and padding;
sharding over 4 virtual CPU devices; the script's sheet, cells and manifest.
Batched and single runs are different programs: on a GPU their images are
compared with ten times XLA:CPU's tolerances (``conftest.tol``)."""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import configs
from conftest import XLA_FLAGS_DEFAULTS, tol

from nst_jax import grid, io, objective, sharded, solvers, transfer
from nst_jax.errors import NSTError

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONTENT = ROOT / "examples" / "chelsea.png"
STYLE = ROOT / "examples" / "style_brushwork.png"
LIGHT = configs.config(content_layers=("relu2_1",), iterations=5)
SETS = (("relu1_1",), ("relu1_1", "relu2_1"))


@pytest.fixture(scope="module")
def images():
  content = io.resize_long_edge(io.load_image(CONTENT), 32)
  styles = [io.resize_long_edge(io.load_image(STYLE), 40),
            io.resize_long_edge(io.load_image(CONTENT), 24)]
  return content, styles


def test_axes_cells_are_the_cartesian_product():
  axes = grid.GridAxes(style=(0, 1), style_weight=(1.0, 2.0, 3.0), seed=(4,))
  cells = axes.cells()
  assert len(cells) == 6
  assert [c["style_weight"] for c in cells[:3]] == [1.0, 2.0, 3.0]
  assert [c["style"] for c in cells] == [0, 0, 0, 1, 1, 1]
  assert axes.varying() == ["style", "style_weight"]
  with pytest.raises(NSTError, match="seed"):
    grid.GridAxes(seed=()).cells()


def test_padding_and_chunk_sizes():
  assert sharded.padded_size(6, 4) == 8
  assert sharded.padded_size(8, 4) == 8
  assert sharded.padded_size(1, 1) == 1
  assert sharded.chunk_size_for(100, 4, None) is None
  assert sharded.chunk_size_for(100, 4, 1000, fraction=1.0) == 8
  assert sharded.chunk_size_for(10**9, 4, 1000) == 4  # one cell per device


@pytest.mark.xla_defaults
def test_grid_cells_equal_cells_run_alone(vgg16_params, images):
  content, styles = images
  axes = grid.GridAxes(style=(0, 1), style_layer_sets=SETS,
                       style_weight=(1e6, 1e7))
  result = grid.style_grid(vgg16_params, content, styles, axes, LIGHT)
  assert result.images.shape == (8, *content.shape)
  assert result.chunks == 1 and result.devices >= 1
  for k, cell in enumerate(result.cells):
    cfg = LIGHT.replace(spec=dict(style_layers=cell["style_layer_sets"]),
                        weights=dict(style=cell["style_weight"]))
    alone = transfer.stylize(vgg16_params, content, [styles[cell["style"]]],
                             cfg, log_every=0)
    np.testing.assert_allclose(result.images[k], alone.image,
                               atol=tol(1e-4, 1e-3))
    assert result.terms[k]["total"] == pytest.approx(
        alone.loss_history[-1]["total"], rel=tol(1e-4, 1e-3))
    assert int(result.function_evaluations[k]) == alone.function_evaluations
    assert int(result.iterations[k]) == alone.iterations == 5


def test_chunks_give_the_same_result(vgg16_params, images):
  content, styles = images
  axes = grid.GridAxes(style_weight=(1e5, 1e6, 1e7), style_layer_sets=SETS[1:])
  whole = grid.style_grid(vgg16_params, content, styles[:1], axes, LIGHT)
  chunked = grid.style_grid(vgg16_params, content, styles[:1], axes, LIGHT,
                            chunk_size=2)
  assert chunked.chunks == 2  # 2 cells, then 1 cell padded to 2
  np.testing.assert_allclose(chunked.images, whole.images,
                             atol=tol(1e-5, 1e-4))
  np.testing.assert_array_equal(chunked.function_evaluations,
                                whole.function_evaluations)


def test_minimize_cells_with_a_research_loss():
  """The generic entry point takes any loss: per-cell quadratics."""
  rng = np.random.default_rng(0)
  targets = rng.normal(size=(5, 3)).astype(np.float32)
  scales = np.float32([1.0, 2.0, 3.0])
  fun = lambda x, t, s: (0.5 * np.float32(1) * ((x - t) ** 2 * s).sum(), ())
  result = sharded.minimize_cells(
      fun, np.zeros((5, 3), np.float32), (targets, scales), (0, None),
      solvers.SolverConfig(maxiter=50), chunk_size=2)
  np.testing.assert_allclose(result.x, targets, atol=1e-4)
  assert result.x.shape == (5, 3) and result.iterations.shape == (5,)


def test_unknown_layer_in_a_set(vgg16_params, images):
  content, styles = images
  with pytest.raises(NSTError, match="relu9_9"):
    grid.style_grid(vgg16_params, content, styles,
                    grid.GridAxes(style_layer_sets=(("relu9_9",),)), LIGHT)


def test_gatys_preset_axes():
  axes = grid.gatys_fig3_axes()
  assert len(axes.style_layer_sets) == 5 and axes.style_layer_sets[0] == (
      "relu1_1",)
  default = objective.LossWeights().style   # the paper's 1e-3 look
  np.testing.assert_allclose(axes.style_weight,
                             (100 * default, 10 * default, default,
                              default / 10))


def _env(**extra):
  env = dict(os.environ, PYTHONUNBUFFERED="1", **extra)
  return env


@pytest.mark.slow
def test_sharded_over_four_devices_equals_unsharded(vgg16_params):
  del vgg16_params
  proc = subprocess.run(
      [sys.executable, str(ROOT / "tests" / "grid_sharded_check.py")],
      capture_output=True, text=True, timeout=600,
      # XLA's default optimisations (conftest.py): the equality to 1e-4
      # holds under their roundings (2.4e-3 apart at level 0).
      env=_env(XLA_FLAGS=" ".join((XLA_FLAGS_DEFAULTS,
                                   "--xla_force_host_platform_device_count=4"
                                   )).strip()))
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(proc.stdout.strip().splitlines()[-1])
  assert report["devices"] == 4 and report["grid_devices"] == 4
  assert report["cells"] == 6  # 2 x 3, padded to 8 on 4 devices
  assert report["sharded_vs_single"] < 1e-4
  assert report["sharded_vs_alone"] < 1e-4
  assert report["evaluations_equal"]
  assert report["seeds_differ"] > 0.01


@pytest.mark.slow
def test_minimize_cells_progress_and_stop():
  """A stop request ends the running chunk (interrupted, iterate kept) and
  leaves later chunks unstarted (x0, 0 iterations, interrupted)."""
  targets = np.arange(1, 13, dtype=np.float32).reshape(4, 3)
  fun = lambda x, t: (0.5 * ((x - t) ** 2).sum(), ())
  seen = []
  result = sharded.minimize_cells(
      fun, np.zeros((4, 3), np.float32), (targets,), (0,),
      solvers.SolverConfig(method="adam", maxiter=50, learning_rate=0.1,
                           lower=-100.0, upper=100.0),
      chunk_size=2, on_progress=lambda first, p: seen.append(
          (first, p.iteration)),
      should_stop=lambda: len(seen) >= 2, progress_seconds=1e-9)
  assert seen == [(0, 1), (0, 2)]
  assert [solvers.STATUS_NAMES[int(s)] for s in result.status] == [
      "interrupted"] * 4
  np.testing.assert_array_equal(result.iterations, [2, 2, 0, 0])
  np.testing.assert_array_equal(result.x[2:], 0.0)
  assert np.all(result.x[:2] != 0.0)
  # Without a stop request the same call runs to the end.
  full = sharded.minimize_cells(
      fun, np.zeros((4, 3), np.float32), (targets,), (0,),
      solvers.SolverConfig(method="adam", maxiter=50, learning_rate=0.1,
                           lower=-100.0, upper=100.0),
      chunk_size=2, on_progress=lambda first, p: None)
  np.testing.assert_array_equal(full.iterations, [50] * 4)


def test_script_writes_sheet_cells_and_manifest(tmp_path, vgg16_params):
  del vgg16_params
  out = tmp_path / "grid"
  proc = subprocess.run(
      [sys.executable, str(ROOT / "scripts" / "style_grid.py"),
       f"--content={CONTENT}", f"--style={STYLE},{CONTENT}", "--size=32",
       "--style_weight=1e6,1e7", "--style_layers=relu1_1;relu1_1,relu2_1",
       "--content_layers=relu2_1", "--iterations=4", "--log_every=2",
       f"--output_dir={out}"],
      capture_output=True, text=True, timeout=600, env=_env())
  assert proc.returncode == 0, proc.stderr[-3000:]
  bars = [l for l in proc.stderr.splitlines() if l.startswith("8 cells:")]
  assert bars and "100%" in bars[-1] and "4/4" in bars[-1], proc.stderr[-3000:]
  manifest = json.loads((out / "manifest.json").read_text())
  assert len(manifest["cells"]) == 8
  for cell in manifest["cells"]:
    image = io.load_image(out / cell["file"])
    assert max(image.shape[:2]) == 32
    assert cell["iterations"] == 4 and cell["function_evaluations"] >= 4
    assert set(cell["final"]) == {"total", "content", "style", "tv"}
  assert manifest["cells"][1]["style_weight"] == 1e7
  assert manifest["cells"][2]["style_layer_sets"] == ["relu1_1", "relu2_1"]
  sheet = io.load_image(out / "sheet.png")
  assert sheet.shape[0] > 4 * 100 and sheet.shape[1] > 2 * 100  # 4 rows, 2 cols
  bad = subprocess.run(
      [sys.executable, str(ROOT / "scripts" / "style_grid.py"),
       f"--content={CONTENT}", f"--style={STYLE}", "--size=32",
       "--style_layers=relu1_1;relu7_7", f"--output_dir={tmp_path / 'bad'}"],
      capture_output=True, text=True, timeout=600, env=_env())
  assert bad.returncode == 1 and "relu7_7" in bad.stderr
  assert "Traceback" not in bad.stderr
  assert not (tmp_path / "bad").exists()


def test_script_honours_or_refuses_options(tmp_path, vgg16_params):
  """Options a grid cannot honour are refused in one line (blend weights:
  a cell has one style); the others (here a style representation and colour
  control) reach every cell and the manifest."""
  del vgg16_params
  base = [sys.executable, str(ROOT / "scripts" / "style_grid.py"),
          f"--content={CONTENT}", f"--style={STYLE}", "--size=32",
          "--content_layers=relu2_1", "--style_layers=relu1_1",
          "--iterations=2", "--quiet"]
  proc = subprocess.run(base + ["--style_blend_weights=1",
                                f"--output_dir={tmp_path / 'a'}"],
                        capture_output=True, text=True, timeout=600,
                        env=_env())
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines() == [
      "error: a grid cell has one style image: --style_blend_weights cannot "
      "be honoured"]
  assert not (tmp_path / "a").exists()
  out = tmp_path / "b"
  proc = subprocess.run(base + ["--style_stat=cmd", "--original_colors",
                                "--style_weight=1e6,1e7",
                                f"--output_dir={out}"],
                        capture_output=True, text=True, timeout=600,
                        env=_env())
  assert proc.returncode == 0, proc.stderr[-3000:]
  manifest = json.loads((out / "manifest.json").read_text())
  assert manifest["params"]["style_stat"] == "cmd"
  assert manifest["config"]["color"]["original_colors"] is True
  assert manifest["config"]["spec"]["style"]["order"] == 5
  assert len(manifest["cells"]) == 2
