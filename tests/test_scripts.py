"""Every script that has no test file of its own, run as a user runs it: a
tiny real run in a temporary directory whose output must exist and make
sense, and one bad input that must end in one ``error:`` line on stderr and a
non-zero exit status.

scripts/stylize.py is tested in test_cli.py and scripts/style_grid.py in
test_grid.py. Every run uses the session's compilation cache (conftest: one
directory for the whole run, never the user's), so a program one script
compiled is loaded by the next. torch is not needed: the benchmark runs its
JAX-only side (``--notorch``). The runs that compile the whole VGG-16
objective are marked ``slow`` (tens of seconds on two cores); every bad-input
case takes a couple of seconds.
"""

import functools
import json
import pathlib

import numpy as np
import pytest

import scripting
from scripting import assert_ok, run

# A flag error exits 2, a bad value 1: either is a clean refusal here.
assert_one_line_error = functools.partial(scripting.assert_one_line_error,
                                          status=None)

from nst_jax import io

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONTENT = ROOT / "examples" / "chelsea.png"
STYLE = ROOT / "examples" / "style_brushwork.png"


@pytest.fixture
def weights(vgg16_params):
  """Skips the test when weights/vgg16.npz was not fetched."""
  del vgg16_params


# ---------------------------------------------------------------------------
# compose.py: images side by side.


def test_compose_writes_the_images_side_by_side(tmp_path):
  out = tmp_path / "figure.png"
  proc = run("compose.py", f"--images={CONTENT},{STYLE}",
             "--labels=content,style", "--height=32", f"--output={out}")
  assert_ok(proc)
  sheet = io.load_image(out)
  widths = [round(32 * w / h) for h, w in
            (io.load_image(p).shape[:2] for p in (CONTENT, STYLE))]
  assert sheet.shape == (32 + 22, sum(widths) + 6, 3)  # captions, one gap
  np.testing.assert_allclose(sheet[:32, widths[0]:widths[0] + 6], 1.0)


def test_compose_bad_input(tmp_path):
  out = tmp_path / "figure.png"
  proc = run("compose.py", f"--images={CONTENT},{STYLE}", "--labels=one",
             f"--output={out}")
  assert_one_line_error(proc, "1 labels for 2 images")
  assert not out.exists()


# ---------------------------------------------------------------------------
# paint_style.py: the procedural example style.


def test_paint_style_is_reproducible(tmp_path):
  a, b = tmp_path / "a.png", tmp_path / "b.png"
  for out in (a, b):
    assert_ok(run("paint_style.py", "--size=32", "--seed=3",
                  f"--output={out}"))
  image = io.load_image(a)
  assert image.shape == (24, 32, 3)                 # 3:4, long edge 32
  assert image.std() > 0.05                         # a picture, not a fill
  assert a.read_bytes() == b.read_bytes()


def test_paint_style_bad_output(tmp_path):
  out = tmp_path / "style.jpg"
  assert_one_line_error(run("paint_style.py", "--size=32", f"--output={out}"),
                        "style.jpg", ".png")
  assert not out.exists()


# ---------------------------------------------------------------------------
# generate_styles.py: textures from invented Gram matrices.


def test_generate_styles_draws_one_texture_per_cell(tmp_path, weights):
  out = tmp_path / "synthetic.png"
  proc = run("generate_styles.py", "--layers=relu1_1", "--layer_scales=0.8",
             "--single_magnitudes=1,2", "--sigmas=1", "--densities=0.1",
             "--redraw_every=0", "--size=16", "--iterations=2",
             "--cell_height=16", f"--output={out}")
  assert_ok(proc)
  # Two rows (the single-entry row, the sparse row), each 16 px of pictures
  # and a caption row, 6 px apart; two textures in the widest row.
  sheet = io.load_image(out)
  assert sheet.shape == (2 * (16 + 22) + 6, 16 + 6 + 16, 3)
  assert sheet[:16, :16].std() > 0.01               # a texture, not blank
  assert "3 textures" in proc.stdout


def test_generate_styles_bad_input(tmp_path):
  out = tmp_path / "synthetic.png"
  proc = run("generate_styles.py", "--layers=relu1_1",
             "--layer_scales=0.8,7", f"--output={out}")
  assert_one_line_error(proc, "2 layer scales for 1 layers")
  assert not out.exists()


# ---------------------------------------------------------------------------
# init_study.py: one transfer from three starting points.


@pytest.mark.slow
def test_init_study_writes_figure_and_record(tmp_path, weights):
  out = tmp_path / "init.png"
  proc = run("init_study.py", f"--content={CONTENT}", f"--style={STYLE}",
             "--size=32", "--iterations=2", "--height=16", f"--output={out}")
  assert_ok(proc)
  sheet = io.load_image(out)
  assert sheet.shape[0] == 16 + 22 and sheet.shape[1] > 5 * 16
  record = json.loads(out.with_suffix(".json").read_text())
  assert set(record["runs"]) == {"style", "content", "noise"}
  for run_record in record["runs"].values():
    assert 0 < run_record["iterations"] <= 2
    assert np.isfinite(run_record["final"]["total"])


def test_init_study_bad_input(tmp_path):
  out = tmp_path / "init.png"
  proc = run("init_study.py", f"--content={CONTENT}", f"--output={out}")
  assert_one_line_error(proc, "--style")
  assert not out.exists()


# ---------------------------------------------------------------------------
# benchmark.py (JAX side only) and benchmark_grid.py.


@pytest.mark.slow
def test_benchmark_jax_side(tmp_path, weights):
  record_path = tmp_path / "bench.json"
  proc = run("benchmark.py", "--notorch", "--solvers=optax_lbfgs",
             "--sizes=32", "--iterations=2", "--eval_repeats=1",
             f"--content={CONTENT}", f"--style={STYLE}",
             f"--json={record_path}")
  assert_ok(proc)
  record = json.loads(record_path.read_text())
  assert record["torch"] is None
  (size,) = record["sizes"]
  assert size["size"] == 32 and max(size["shape"]) == 32
  assert 0 < size["eval_gflop"] < 1
  run_record = size["runs"]["optax_lbfgs"]
  assert 0 < run_record["iterations"] <= 2 and run_record["evaluations"] > 0
  assert size["rows"]["ms/evaluation (standalone)"]["optax_lbfgs"] > 0
  assert "ms/iteration" in proc.stdout


def test_benchmark_bad_input(tmp_path):
  assert_one_line_error(run("benchmark.py", "--notorch", "--sizes=big"),
                        "sizes", "big")


@pytest.mark.slow
def test_benchmark_grid_compares_batched_and_sequential(weights):
  proc = run("benchmark_grid.py", "--cells=2", "--size=32", "--iterations=1",
             f"--content={CONTENT}", f"--style={STYLE}")
  assert_ok(proc)
  lines = proc.stdout.splitlines()
  assert lines[0].startswith("2 cells, 32x")
  assert any(l.startswith("batched ") for l in lines)
  assert any(l.startswith("sequential ") for l in lines)
  assert float(lines[-1].split()[-1].rstrip("x")) > 0


def test_benchmark_grid_bad_input(weights):
  proc = run("benchmark_grid.py", "--cells=5", "--size=32",
             f"--content={CONTENT}", f"--style={STYLE}")
  assert_one_line_error(proc, "cells", "multiple of 4")


@pytest.mark.parametrize("sizes, fragments", [
    ("abc", ("--sizes=abc", "integers")),
    ("48,64", ("pyramid of 48 px ([48])", "start of 64 px's ([32, 64])"))])
def test_sizes_figure_bad_input(tmp_path, sizes, fragments):
  out = tmp_path / "sizes"
  proc = run("sizes_figure.py", f"--content={CONTENT}", f"--style={STYLE}",
             f"--sizes={sizes}", "--pyramid_base=32", f"--output_dir={out}")
  assert_one_line_error(proc, *fragments)
  assert not out.exists()   # refused before anything is written


def test_sizes_figure_refuses_two_paintings_of_one_name(tmp_path):
  """Results are named by the painting's file name: two of one name would
  share them."""
  other = tmp_path / "elsewhere"
  other.mkdir()
  twin = other / STYLE.name
  twin.write_bytes(STYLE.read_bytes())
  out = tmp_path / "sizes"
  proc = run("sizes_figure.py", f"--content={CONTENT}",
             f"--style={STYLE},{twin}", f"--output_dir={out}")
  assert_one_line_error(proc, "--style", "style_brushwork", "twice")
  assert not out.exists()


@pytest.mark.slow
def test_sizes_figure_paints_scores_and_draws_each_painting(tmp_path, weights):
  """Two paintings at 32 and 64 px (one pyramid run each, base 32): every
  result saved, scored straight and through 64 px, each painting's spread
  the max / min of its distances at one size (both ways), one figure row
  per painting; a result already there is scored, not painted again."""
  out, figure = tmp_path / "sizes", tmp_path / "sizes.png"
  second = tmp_path / "second.png"
  io.save_image(second, io.load_image(STYLE)[:, ::-1] * 0.5)
  kept = out / "chelsea+second_32.png"   # a result from an earlier run
  out.mkdir()
  io.save_image(kept, np.full((21, 32, 3), 0.25, np.float32))
  stamp = kept.stat().st_mtime_ns
  proc = run("sizes_figure.py", f"--content={CONTENT}",
             f"--style={STYLE},{second}", "--sizes=32,64", "--pyramid_base=32",
             "--iterations=3", "--score_size=48", f"--output_dir={out}",
             f"--figure={figure}")
  assert_ok(proc)
  report = json.loads((out / "sizes.json").read_text())
  assert report["spread_scored_at"] == "48_via_64"
  assert report["coarse_weight"] == 1.0
  assert [p["style"] for p in report["paintings"]] == ["style_brushwork",
                                                        "second"]
  for painting in report["paintings"]:
    assert [r["size"] for r in painting["runs"]] == [32, 64]
    for r in painting["runs"]:
      assert max(io.load_image(r["image"]).shape[:2]) == r["size"]
    for field in ("swd", "gram"):
      values = [r["scored_at"]["48_via_64"][field] for r in painting["runs"]]
      assert painting["spread"][field] == pytest.approx(
          max(values) / min(values))
      straight = [r["scored_at"]["48"][field] for r in painting["runs"]]
      assert painting["spread_straight"][field] == pytest.approx(
          max(straight) / min(straight))
  assert kept.stat().st_mtime_ns == stamp        # kept as it was
  assert np.ptp(io.load_image(kept)) == 0
  assert report["paintings"][1]["runs"][0]["image"] == str(kept)
  sheet = io.load_image(figure)
  assert sheet.shape[0] > 2 * 160          # two rows of 160 px cells


# ---------------------------------------------------------------------------
# methods_study.py: the methods side by side and beside the official code.

def test_methods_study_scores_results_and_their_closeness(tmp_path, weights):
  """--score_only: the results already there are scored, the official one
  read with its seconds, and the closeness is LPIPS between the pictures
  (an official picture equal to ours: 0; our two seeds: more)."""
  out, official = tmp_path / "out", tmp_path / "official"
  out.mkdir()
  official.mkdir()
  image = io.resize_long_edge(io.load_image(CONTENT), 64)
  noisy = np.clip(image + np.random.default_rng(0).normal(
      0, 0.2, image.shape), 0, 1)
  pair = "chelsea+style_brushwork"
  io.save_image(str(out / f"{pair}_strotss_s0.png"), image)
  io.save_image(str(out / f"{pair}_strotss_s1.png"), noisy)
  io.save_image(str(official / f"{pair}_strotss_s0.png"), image)
  (official / f"{pair}_strotss_s0.json").write_text(
      json.dumps({"cpu_seconds": 1234.0, "wall_seconds": 1300.0}))
  io.save_image(str(out / f"{pair}_nnst_s0.png"), image)   # another size:
  (out / f"{pair}_nnst_s0.json").write_text(json.dumps({"size": 512}))
  proc = run("methods_study.py", f"--output_dir={out}",   # not this study's
             f"--official_dir={official}", f"--pairs={CONTENT}:{STYLE}",
             "--methods=strotss,nnst", "--seeds=0,1", "--score_only",
             "--score_size=64", f"--sheet={out / 'sheet.png'}")
  assert_ok(proc)
  study = json.loads((out / "study.json").read_text())
  rows = {(r["implementation"], r["seed"]): r for r in study["runs"]}
  assert set(rows) == {("nst_jax", 0), ("nst_jax", 1), ("official", 0)}
  assert rows["official", 0]["cpu_seconds"] == 1234.0
  assert rows["nst_jax", 0]["lpips_vgg"] < 0.01   # the content itself
  (close,) = study["closeness"]
  assert close["ours_to_official"] < 1e-3
  assert close["ours_seed_to_seed"] > 0.05
  assert "official_seed_to_seed" not in close
  assert "| 1234 | 1300 |" in proc.stdout
  assert (out / "sheet.png").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--methods=picasso"], "'picasso' is not one of"),
    (["--sheet=s.jpg"], "sheets are written as PNG"),
    (["--pairs=a.jpg"], "expected content:style")])
def test_methods_study_bad_input(tmp_path, args, fragment):
  proc = run("methods_study.py", f"--output_dir={tmp_path / 'o'}",
             f"--pairs={CONTENT}:{STYLE}", *args)
  assert_one_line_error(proc, fragment)
  assert not (tmp_path / "o").exists()
