"""scripts/evaluate.py, ``nst-stylize --evaluate`` and ``nst-grid
--evaluate`` as a user runs them: the bundled examples, a folder of results,
a grid's folder, and bad input ending in one ``error:`` line."""

import json
import pathlib

import numpy as np
import pytest

from scripting import assert_ok, assert_one_line_error, run

from nst_jax import io, metrics
from nst_jax.commands import _evaluation

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONTENT = ROOT / "examples" / "chelsea.png"
STYLE = ROOT / "examples" / "style_brushwork.png"


@pytest.fixture(scope="module")
def weights(vgg16_params):
  """The weights policy of conftest.py (fail or skip when missing)."""
  del vgg16_params


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  """A folder of two "results" of chelsea.png: the photo itself and the
  photo with its colours mixed towards the style's mean."""
  folder = tmp_path_factory.mktemp("results")
  content = io.load_image(CONTENT)
  style_mean = io.load_image(STYLE).mean(axis=(0, 1))
  io.save_image(folder / "a_same.png", content)
  io.save_image(folder / "b_tinted.png", 0.6 * content + 0.4 * style_mean)
  (folder / "notes.txt").write_text("not an image")
  return folder


def test_evaluate_the_examples(weights, tmp_path):
  out = tmp_path / "scores.json"
  proc = run("evaluate.py", f"--content={CONTENT}", f"--style={STYLE}",
             f"--results={CONTENT},{STYLE.with_name('chelsea.png')}",
             f"--json={out}")
  assert_ok(proc)
  assert "scored at 256 px" in proc.stdout
  for header in _evaluation.HEADERS.values():
    assert header in proc.stdout
  assert "ArtFID" in proc.stdout and "cannot be fetched here" in proc.stdout
  record = json.loads(out.read_text())
  assert record["size"] == 256 and record["style"] == str(STYLE)
  assert record["via"] is None
  assert set(record["fields"]) == set(metrics.SCORE_FIELDS)
  assert len(record["results"]) == 2
  row = record["results"][0]
  assert row["image"] == str(CONTENT)
  assert set(row) == {"image", *metrics.SCORE_FIELDS}
  assert row["lpips_vgg"] == pytest.approx(0.0, abs=1e-7)
  assert row["lpips_alex"] == pytest.approx(0.0, abs=1e-7)
  assert row["ssim"] == pytest.approx(1.0, abs=1e-6)
  assert 0.2 < row["swd"] < 2.0 and 0.2 < row["gram"] < 3.0
  assert record["set"]["count"] == 2
  assert set(record["set"]["frechet_layers"]) == set(metrics.STYLE_LAYERS)
  assert "ArtFID" in record["set"]["note"]


def test_evaluate_a_folder(weights, results):
  proc = run("evaluate.py", f"--content={CONTENT}", f"--style={STYLE}",
             f"--results={results}", "--score_size=128", "--json=-")
  assert_ok(proc)
  assert proc.stderr == "", proc.stderr
  record = json.loads(proc.stdout)
  assert [pathlib.Path(r["image"]).name for r in record["results"]] == [
      "a_same.png", "b_tinted.png"]
  same, tinted = record["results"]
  assert record["size"] == 128
  assert same["lpips_vgg"] < 1e-6 < tinted["lpips_vgg"]
  assert tinted["ssim"] < same["ssim"]
  assert record["set"]["count"] == 2 and record["set"]["frechet"] > 0


def test_evaluate_a_grid_folder_takes_the_cells_of_its_style(weights, results,
                                                             tmp_path):
  grid = tmp_path / "grid"
  (grid / "cells").mkdir(parents=True)
  cells = []
  for k, (name, style) in enumerate([("a_same.png", STYLE),
                                     ("b_tinted.png", CONTENT),
                                     ("b_tinted.png", STYLE)]):
    image = io.load_image(results / name)
    io.save_image(grid / "cells" / f"cell_{k:03d}.png", image)
    cells.append({"file": f"cells/cell_{k:03d}.png",
                  "style_image": str(style)})
  (grid / "manifest.json").write_text(json.dumps({"cells": cells}))
  io.save_image(grid / "sheet.png", np.zeros((8, 8, 3), np.float32))
  # At test_evaluate_a_folder's size: the same two-image programs.
  proc = run("evaluate.py", f"--content={CONTENT}", f"--style={STYLE}",
             f"--results={grid}", "--score_size=128", "--json=-")
  assert_ok(proc)
  record = json.loads(proc.stdout)
  assert [pathlib.Path(r["image"]).name for r in record["results"]] == [
      "cell_000.png", "cell_002.png"]


@pytest.mark.parametrize("args,fragments", [
    (["--content={content}", "--style={style}", "--results={style}"],
     ["--results[0] is 512x384", "content's aspect"]),
    (["--content={content}", "--style={style}", "--results={missing}"],
     ["missing.png"]),
    (["--content={content}", "--style={style},{style}", "--results={content}"],
     ["--style takes one style image, got 2"]),
    (["--content={content}", "--style={style}"],
     ["--content, --style and --results are required"]),
    (["--content={content}", "--style={style}", "--results={empty}"],
     ["no images in"]),
    (["--content={content}", "--style={style}", "--results={content}",
      "--via=100"],
     ["--via must be at least the scoring size 256, got 100"]),
])
def test_evaluate_bad_input(weights, tmp_path, args, fragments):
  (tmp_path / "empty").mkdir()
  names = dict(content=CONTENT, style=STYLE, missing=tmp_path / "missing.png",
               empty=tmp_path / "empty")
  proc = run("evaluate.py", *[a.format(**names) for a in args])
  assert_one_line_error(proc, *fragments)


@pytest.mark.parametrize("score_size", [None, 128])
def test_stylize_evaluate_scores_as_nst_evaluate_does(weights, tmp_path,
                                                      score_size):
  """``nst-stylize --evaluate`` and ``nst-evaluate`` of the written PNG give
  the same scores, by default (one scoring size, ``--score_size``'s 256
  whatever ``--size``) and with ``--score_size`` given to both."""
  given = [] if score_size is None else [f"--score_size={score_size}"]
  want = score_size or metrics.SCORE_SIZE
  out = tmp_path / "result.png"
  proc = run("stylize.py", f"--content={CONTENT}", f"--style={STYLE}",
             "--size=48", "--iterations=2", "--content_layers=relu2_1",
             "--style_layers=relu1_1", "--evaluate", f"--output={out}", *given)
  assert_ok(proc)
  assert f"evaluation at {want} px" in proc.stdout
  record = json.loads(out.with_suffix(".json").read_text())
  evaluation = record["evaluation"]
  assert evaluation["size"] == want and evaluation["style_image"] == str(STYLE)
  assert set(evaluation) == {"size", "style_image", *metrics.SCORE_FIELDS}
  assert record["params"]["evaluate"] is True
  assert record["params"]["score_size"] == want
  proc = run("evaluate.py", f"--content={CONTENT}", f"--style={STYLE}",
             f"--results={out}", "--json=-", *given)
  assert_ok(proc)
  scored = json.loads(proc.stdout)
  assert scored["size"] == want
  for field in metrics.SCORE_FIELDS:
    assert evaluation[field] == pytest.approx(scored["results"][0][field],
                                              rel=1e-4, abs=1e-6), field


def test_nst_evaluate_size_is_the_deprecated_score_size(weights, tmp_path):
  proc = run("evaluate.py", f"--content={CONTENT}", f"--style={STYLE}",
             f"--results={tmp_path / 'missing.png'}", "--size=128",
             "--via=100")
  assert_one_line_error(proc, "--via must be at least the scoring size 128")
  assert "warning: --size is deprecated: use --score_size" in proc.stderr


@pytest.mark.slow
def test_grid_evaluate_scores_every_cell_and_each_style_set(weights,
                                                            tmp_path):
  out = tmp_path / "grid"
  proc = run("style_grid.py", f"--content={CONTENT}", f"--style={STYLE}",
             "--size=32", "--content_layers=relu2_1", "--style_layers=relu1_1",
             "--seed=0,1", "--init=noise", "--iterations=2", "--quiet",
             "--evaluate", f"--output_dir={out}")
  assert_ok(proc)
  manifest = json.loads((out / "manifest.json").read_text())
  assert len(manifest["cells"]) == 2
  for cell in manifest["cells"]:
    assert set(cell["evaluation"]) == set(metrics.SCORE_FIELDS)
  evaluation = manifest["evaluation"]
  assert evaluation["size"] == 256
  assert evaluation["sets"][str(STYLE)]["count"] == 2
  assert manifest["params"]["evaluate"] is True
