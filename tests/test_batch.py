"""Folders of photos (``nst_jax.batch``, ``nst-stylize --output_dir``):
buckets of equal shape compile once each and equal the same transfers run
one by one; a stopped batch yields its running chunk as interrupted; the
command writes one PNG and record per result and batch.json, skips finished
results when run again, lets a corrupt file fail alone, and refuses bad
input in one line. Images are 48-64 px and runs a few iterations."""

import collections
import json
import os
import pathlib

import jax
import numpy as np
import pytest

import configs
import scripting
from conftest import tiny_vgg16_params, tol

from nst_jax import batch, grid, io, transfer
from nst_jax.errors import NSTError

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONTENT = ROOT / "examples" / "chelsea.png"
STYLE = ROOT / "examples" / "style_brushwork.png"
# history_size 7: a solver configuration of this file alone, so the compiled
# programs counted below are not cached by another test of the session.
LIGHT = configs.config(content_layers=("relu2_1",),
                       style_layers=("relu1_1", "relu2_1"), iterations=4,
                       history_size=7)
AXES = grid.GridAxes(style_layer_sets=(("relu1_1", "relu2_1"),),
                     style_weight=(1e7,))


def _photos():
  """Three crops of chelsea.png: two 48x64 and one 64x48 (two shapes)."""
  image = io.load_image(CONTENT)
  return [io.resize_to(image[:300, :400], (48, 64)),
          io.resize_to(image[:400, :300], (64, 48)),
          io.resize_to(image[60:300, 130:451], (48, 64))]


# --- inputs and names -----------------------------------------------------------


def test_find_images_expands_folders_globs_and_lists(tmp_path):
  for name in ("b.png", "a.JPG", ".hidden.png", "notes.txt"):
    (tmp_path / name).write_bytes(b"x")
  (tmp_path / "sub").mkdir()
  folder = sorted(batch.find_images(str(tmp_path)))
  assert folder == [str(tmp_path / "a.JPG"), str(tmp_path / "b.png")]
  assert batch.find_images(str(tmp_path / "*.png")) == [str(tmp_path /
                                                            "b.png")]
  listed = batch.find_images(f"{tmp_path / 'notes.txt'},{tmp_path}")
  assert listed[0] == str(tmp_path / "notes.txt")   # named: kept as given
  assert len(listed) == 3
  assert batch.find_images([str(tmp_path), str(tmp_path / "b.png")]) == \
      batch.find_images(str(tmp_path))              # each once
  with pytest.raises(NSTError, match="no images in the folder .*sub"):
    batch.find_images(str(tmp_path / "sub"))
  with pytest.raises(NSTError, match="no images match"):
    batch.find_images(str(tmp_path / "*.webp"), what="style")


def test_output_names_and_collisions():
  axes = grid.GridAxes(style=(0, 1), style_weight=(1e6, 1e7), seed=(0,))
  jobs = batch.jobs(2, axes)
  names = batch.output_names(["in/cat.jpg", "in/dog.png"],
                             ["s/starry.jpg", "s/scream.jpg"], jobs, axes)
  assert names[:4] == ["cat_starry_style_weight-1e+06",
                       "cat_starry_style_weight-1e+07",
                       "cat_scream_style_weight-1e+06",
                       "cat_scream_style_weight-1e+07"]
  assert len(set(names)) == 8
  one = grid.GridAxes()
  assert batch.output_names(["a/x.png"], ["y.jpg"], batch.jobs(1, one),
                            one) == ["x_y"]
  with pytest.raises(NSTError, match="two .*content.* named 'cat'"):
    batch.output_names(["a/cat.jpg", "b/cat.png"], ["y.jpg"],
                       batch.jobs(2, one), one)


def test_buckets_group_equal_shapes_in_order():
  got = batch.buckets([(48, 64), (64, 48), (48, 64), (48, 64, 3)])
  assert got == [batch.Bucket((48, 64), (0, 2, 3)),
                 batch.Bucket((64, 48), (1,))]


# --- the batched run ------------------------------------------------------------


def test_two_shapes_two_programs_equal_to_one_by_one():
  """Three photos of two shapes: two compiled solver programs (counted by
  JAX's trace events of the chunk program), results equal to
  transfer.stylize run on each photo alone; then a stop request ends the
  batch after its first chunk, yielded as interrupted."""
  params = tiny_vgg16_params()
  photos = _photos()
  style = io.resize_long_edge(io.load_image(STYLE), 40)
  traced, lowered = collections.Counter(), collections.Counter()

  def listener(event, duration, **kw):
    del duration
    if event == "/jax/core/compile/jaxpr_trace_duration":
      traced[kw.get("fun_name")] += 1
    if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
      lowered[kw.get("fun_name")] += 1   # every program compiled

  def run(**kw):
    traced.clear()
    lowered.clear()
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
      return list(batch.stylize_batch(params, photos, [style], AXES, LIGHT,
                                      **kw))
    finally:
      jax.monitoring.unregister_event_duration_listener(listener)

  seen = []
  outputs = run(on_progress=lambda done, total: seen.append((done, total)))
  assert traced["_advance"] == 2 and traced["_start"] == 2
  # Bucket (48, 64) holds photos 0 and 2 in one chunk of two cells.
  assert [(o.index, o.bucket, o.cells) for o in outputs] == [
      (0, 0, 2), (2, 0, 2), (1, 1, 1)]
  assert seen[-1] == (3, 3) and all(t == 3 for _, t in seen)
  assert [d for d, _ in seen] == sorted(d for d, _ in seen)
  # The same batch again compiles nothing (targets, solver, final terms).
  repeated = run()
  assert not lowered, lowered
  for o, first in zip(repeated, outputs):
    np.testing.assert_array_equal(o.image, first.image)
  alone_config = LIGHT.replace(weights=dict(style=1e7))
  for o in outputs:
    alone = transfer.stylize(params, photos[o.job.content], [style],
                             alone_config, log_every=0)
    assert o.image.shape == photos[o.job.content].shape
    np.testing.assert_allclose(o.image, alone.image, atol=tol(1e-5, 1e-3))
    assert o.iterations == alone.iterations == 4
    assert o.terms["total"] == pytest.approx(
        alone.loss_history[-1]["total"], rel=tol(1e-4, 1e-3))
    assert o.status == "max_iterations"

  # Skipped jobs do not run, and chunks of one shape share one program: the
  # (48, 64) bucket in two chunks of one cell compiles once.
  again = run(skip=[1], chunk_size=1)
  assert [(o.index, o.chunk, o.cells) for o in again] == [(0, 0, 1),
                                                          (2, 1, 1)]
  assert traced["_advance"] == 1
  for o, first in zip(again, outputs):
    np.testing.assert_allclose(o.image, first.image, atol=tol(1e-5, 1e-3))
  # A stop request at the first progress report: the running chunk comes
  # back interrupted after one iteration, the next bucket never starts.
  asked = []
  stopped = run(on_progress=lambda done, total: asked.append(done),
                should_stop=lambda: bool(asked))
  assert [(o.index, o.status, o.iterations) for o in stopped] == [
      (0, "interrupted", 1), (2, "interrupted", 1)]


def test_library_refusals():
  params = tiny_vgg16_params()
  style = io.resize_long_edge(io.load_image(STYLE), 40)
  with pytest.raises(NSTError, match="at least one content"):
    batch.stylize_batch(params, [], [style], AXES, LIGHT)
  with pytest.raises(NSTError, match="style index 1"):
    batch.stylize_batch(params, _photos()[:1], [style],
                        grid.GridAxes(style=(1,)), LIGHT)
  tiny = np.zeros((1, 1, 3), np.float32)   # too small for relu2_1
  with pytest.raises(NSTError):
    batch.stylize_batch(params, [tiny], [style], AXES, LIGHT)


# --- the command ----------------------------------------------------------------

FLAGS = ("--size=64", "--iterations=3", "--content_layers=relu2_1",
         "--style_layers=relu1_1,relu2_1")


def _folder(tmp_path):
  photos = tmp_path / "photos"
  photos.mkdir()
  for k, image in enumerate(_photos()[::2]):   # two photos of one shape
    io.save_image(photos / f"cat{k}.png", image)
  (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
  return photos


def test_command_writes_resumes_and_fails_alone(tmp_path, vgg16_params):
  del vgg16_params  # the command loads the real weights
  photos, out = _folder(tmp_path), tmp_path / "out"
  args = (f"--content={photos}", f"--style={STYLE}", f"--output_dir={out}",
          *FLAGS)
  first = scripting.run("stylize.py", *args)
  # The corrupt file: one line, the others written, exit status 1 at the end.
  scripting.assert_one_line_error(first, "1 input image", "broken.jpg")
  failed = [l for l in first.stderr.splitlines() if l.startswith("failed:")]
  assert len(failed) == 1 and "broken.jpg" in failed[0], first.stderr
  names = ["cat0_style_brushwork", "cat1_style_brushwork"]
  for name in names:
    assert io.load_image(out / f"{name}.png").shape == (48, 64, 3)
    record = json.loads((out / f"{name}.json").read_text())
    assert record["params"]["output_dir"] is None
    assert record["params"]["style"] == [str(STYLE)]
    # The single command's levels (one at 64 px): --from_json of the record
    # paints the same picture.
    assert record["params"]["pyramid_base"] == 256
    assert record["iterations"] == 3
  summary = json.loads((out / "batch.json").read_text())
  assert summary["done"] == 2 and summary["skipped"] == 0
  assert [f["path"] for f in summary["failed_inputs"]] == [
      str(photos / "broken.jpg")]
  assert summary["buckets"] == [dict(summary["buckets"][0], shape=[48, 64],
                                     images=2, chunk_cells=2, chunks=1)]
  assert "img/s" in first.stderr or "s/img" in first.stderr

  # Again: both results are finished (the network is not even loaded); a
  # record whose parameters differ makes its result again, alone.
  stamps = {n: (out / f"{n}.png").stat().st_mtime_ns for n in names}
  again = scripting.run("stylize.py", *args)
  scripting.assert_one_line_error(again, "broken.jpg")
  assert "0 images to make" not in again.stdout
  assert "2 finished before" in again.stdout, again.stdout
  assert all((out / f"{n}.png").stat().st_mtime_ns == stamps[n]
             for n in names)
  record_path = out / f"{names[0]}.json"
  record = json.loads(record_path.read_text())
  record["params"]["iterations"] = 2
  record_path.write_text(json.dumps(record))
  # A record written before --pyramid_base and --coarse_weight (no such
  # keys) is still finished: one level, which has no coarse view.
  older = out / f"{names[1]}.json"
  record = json.loads(older.read_text())
  del record["params"]["pyramid_base"]
  del record["params"]["coarse_weight"]
  older.write_text(json.dumps(record))
  third = scripting.run("stylize.py", *args)
  scripting.assert_one_line_error(third, "broken.jpg")
  assert "1 images to make (1 finished before" in third.stdout, third.stdout
  assert (out / f"{names[0]}.png").stat().st_mtime_ns != stamps[names[0]]
  assert (out / f"{names[1]}.png").stat().st_mtime_ns == stamps[names[1]]
  assert json.loads(record_path.read_text())["params"]["iterations"] == 3


@pytest.mark.parametrize("case", ["empty", "overwrite", "output", "no_dir"])
def test_command_bad_input_is_one_line(tmp_path, case):
  photos = tmp_path / "photos"
  photos.mkdir()
  if case != "empty":
    io.save_image(photos / "cat.png", _photos()[0])
  args = {
      "empty": (f"--content={photos}", f"--style={STYLE}",
                f"--output_dir={tmp_path / 'out'}"),
      "overwrite": (f"--content={photos}", f"--style={STYLE}",
                    f"--output_dir={photos}"),
      "output": (f"--content={photos}", f"--style={STYLE}",
                 f"--output_dir={tmp_path / 'out'}",
                 f"--output={tmp_path / 'x.png'}"),
      "no_dir": (f"--content={photos}", f"--style={STYLE}",
                 f"--output={tmp_path / 'x.png'}"),
  }[case]
  fragment = {"empty": "no images in the folder", "overwrite": "holds the "
              "input image", "output": "--output cannot be used with "
              "--output_dir", "no_dir": "give --output_dir"}[case]
  before = sorted(os.listdir(tmp_path)) + sorted(os.listdir(photos))
  proc = scripting.run("stylize.py", *args, *FLAGS)
  scripting.assert_one_line_error(proc, fragment)
  assert sorted(os.listdir(tmp_path)) + sorted(os.listdir(photos)) == before


def test_a_records_coarse_weight_counts_only_with_several_levels():
  """A folder's finished result is compared with ``--coarse_weight`` only
  where the record's levels are several (one level has no coarse view); a
  record written before the option (no key) painted without one (0)."""
  from nst_jax.commands import _batch  # pylint: disable=g-import-not-at-top
  now = {"size": 512, "iterations": 10, "pyramid_base": 256,
         "coarse_weight": 1.0, "style": ["s.png"]}
  before = {k: v for k, v in now.items() if k != "coarse_weight"}
  assert _batch._comparable(before) != _batch._comparable(now)
  assert _batch._comparable(before) == _batch._comparable(
      dict(now, coarse_weight=0.0))
  one = dict(now, size=256)
  assert _batch._comparable({k: v for k, v in one.items()
                             if k != "coarse_weight"}) == _batch._comparable(
                                 one)
