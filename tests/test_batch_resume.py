"""A folder of photos run again after a crash: its finished results are
skipped and every other one is the result an uninterrupted batch gives it,
bit for bit — also when it shared its compiled chunk with a finished one
(the kill -9 test of test_resume has one photo per shape, so one job per
chunk)."""

import json

import numpy as np

import scripting
from conftest import random_image as _img
from conftest import tiny_vgg16_params

from nst_jax import batch
from nst_jax import grid
from nst_jax import io
from nst_jax import objective
from nst_jax import transfer


def test_skipped_jobs_leave_the_others_their_chunk():
  """``stylize_batch(skip=...)`` cuts the chunks from all the bucket's jobs,
  so a remaining job runs in the chunk and place it had (before, a chunk of
  the remaining jobs only: another program, results ~1e-6 apart)."""
  params = tiny_vgg16_params()
  spec = objective.Spec(content_layers=("relu2_1",),
                        style_layers=("relu1_1", "relu2_1"))
  config = transfer.TransferConfig(spec=spec, tile_size=0).replace(
      solver=dict(maxiter=4))
  contents = [np.asarray(_img(32, 40, 0)), np.asarray(_img(32, 40, 5))]
  style = np.asarray(_img(40, 40, 1))
  axes = grid.GridAxes(style_layer_sets=(spec.style_layers,))
  full = list(batch.stylize_batch(params, contents, [style], axes, config))
  rest = list(batch.stylize_batch(params, contents, [style], axes, config,
                                  skip=[0]))
  assert [(o.index, o.chunk, o.cells) for o in rest] == [(1, 0, 2)]
  np.testing.assert_array_equal(rest[0].image, full[1].image)
  assert rest[0].terms == full[1].terms


def test_a_folder_run_again_makes_the_rest_bit_identical(tmp_path):
  """nst-stylize --output_dir run again where one of two photos of one
  shape is finished: the other's result and record equal an uninterrupted
  batch's (before, the command read only the inputs of pending results,
  so the finished photo's slot left the chunk and the program changed)."""
  photos = tmp_path / "photos"
  photos.mkdir()
  image = io.load_image(scripting.ROOT / "examples" / "chelsea.png")
  io.save_image(photos / "a.png", io.resize_to(image, (36, 48)))
  io.save_image(photos / "b.png", io.resize_to(image[:, ::-1], (36, 48)))
  common = (f"--content={photos}", "--network=alexnet", "--size=48",
            "--iterations=4", "--log_every=2", "--quiet",
            f"--style={scripting.ROOT / 'examples' / 'style_brushwork.png'}")
  full, out = tmp_path / "full", tmp_path / "out"
  # AlexNet: at XLA's defaults, both runs (scripting.py).
  scripting.assert_ok(scripting.run("stylize.py", *common,
                                    f"--output_dir={full}", xla_defaults=True))
  # a's result as a crash after it left it.
  out.mkdir()
  (out / "a_style_brushwork.png").write_bytes(
      (full / "a_style_brushwork.png").read_bytes())
  record = json.loads((full / "a_style_brushwork.json").read_text())
  record["params"]["output"] = str(out / "a_style_brushwork.png")
  (out / "a_style_brushwork.json").write_text(json.dumps(record))
  scripting.assert_ok(scripting.run("stylize.py", *common,
                                    f"--output_dir={out}", xla_defaults=True))
  summary = json.loads((out / "batch.json").read_text())
  assert (summary["done"], summary["skipped"]) == (1, 1), summary
  ours = json.loads((out / "b_style_brushwork.json").read_text())
  theirs = json.loads((full / "b_style_brushwork.json").read_text())
  # the records, but their wall seconds, are the uninterrupted run's
  timeless = lambda h: [{k: v for k, v in r.items() if k != "seconds"}
                        for r in h]
  assert len(ours["loss_history"]) > 1
  assert timeless(ours["loss_history"]) == timeless(theirs["loss_history"])
  assert ours["batch"]["chunk_cells"] == theirs["batch"]["chunk_cells"] == 2
  np.testing.assert_array_equal(
      io.load_image(out / "b_style_brushwork.png"),
      io.load_image(full / "b_style_brushwork.png"))
