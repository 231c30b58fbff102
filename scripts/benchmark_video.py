"""Temporal consistency and speed of video stylisation, measured side by
side in one process: the same synthetic clip (a slow pan and zoom over
examples/chelsea.png, ``video.pan_zoom_clip``, exact motion known) stylised
with independent frames (``video.INDEPENDENT``) and with the temporal loss
and warm start (``video.Temporal()``), same style, iterations and device.

Reports, per mode, the temporal error (``video.temporal_error``: mean
absolute difference between consecutive stylised frames after warping,
outside the consistency mask) with the OpenCV flow the run used and with
the clip's exact flow, and seconds per frame (compilation included in the
first frame; the mean of the others without it), and per frame the
function evaluations and the style loss (a stalled solver shows as many
evaluations and a high style loss, issue 22). For a pure pan (``--zoom=1``)
also the strip of the last frame that the pan uncovered since the first:
its mean change along rows over its mean change along columns, against the
rest of the frame's (a strip smeared into streaks has a low ratio; issue
22). Writes ``--json`` and ``--strip``: consecutive frames, independent
above, temporally consistent below::

  flock /tmp/nst_heavy.lock python scripts/benchmark_video.py --size=256 \\
      --frames=8 --iterations=80 --first_iterations=150

Issue 22's pan, 8 px a frame at 96x64::

  python scripts/benchmark_video.py --size=96 --frames=5 --iterations=20 \\
      --first_iterations=20 --pan=0.04157,0 --zoom=1 --start_scale=0.5
"""

import json
import time

import numpy as np
from absl import app
from absl import flags

from nst_jax import cli
from nst_jax import figures
from nst_jax import io
from nst_jax import transfer
from nst_jax import vgg
from nst_jax import video
from nst_jax import video_io
from nst_jax.errors import NSTError

flags.DEFINE_string("content", "examples/chelsea.png", "Image to pan over.")
flags.DEFINE_string("style", "examples/style_brushwork.png", "Style image.")
flags.DEFINE_integer("size", 256, "Long edge of the frames.", lower_bound=16)
flags.DEFINE_integer("frames", 8, "Frames of the clip.", lower_bound=2)
flags.DEFINE_integer("iterations", 80, "Iterations per frame.", lower_bound=1)
flags.DEFINE_integer("first_iterations", 150, "Iterations of the first "
                     "frame.", lower_bound=0)
flags.DEFINE_float("temporal_weight", video.Temporal().weight, "λ.")
cli.define_numbers("pan", (0.008, 0.003), "Pan per frame, fractions of the "
                   "image's width and height (video.pan_zoom_clip).")
flags.DEFINE_float("zoom", 1.01, "Zoom factor per frame.", lower_bound=0.5)
flags.DEFINE_float("start_scale", 0.8, "The first frame's extent, a "
                   "fraction of the image's.", lower_bound=1e-3)
flags.DEFINE_string("json", "out/benchmark_video.json", "Results.")
flags.DEFINE_string("strip", "out/video_strip.png", "Picture of consecutive "
                    "frames, independent above, temporal below.")
flags.DEFINE_integer("strip_frames", 4, "Frames in the strip (the last ones).")
flags.DEFINE_integer("strip_height", 128, "Height of a frame in the strip.")
FLAGS = flags.FLAGS


def _along_rows(image) -> float:
  """Mean |change along a row| / mean |change along a column| of ``image``
  ``(H, W, 3)``: ~1 for stylised texture, low for horizontal streaks."""
  return float(np.abs(np.diff(image, axis=1)).mean() /
               max(np.abs(np.diff(image, axis=0)).mean(), 1e-12))


def _uncovered_columns(flows) -> int:
  """Columns of the last frame that a horizontal pan brought in since the
  first: the sum over the clip of the flows' mean |dx|, rounded."""
  return int(round(sum(float(np.abs(f[..., 0]).mean()) for f in flows)))


def main(argv):
  if len(argv) > 1:
    raise NSTError(f"unexpected arguments: {' '.join(argv[1:])}")
  image = io.load_image(FLAGS.content)
  shape = video_io.even_shape(io.long_edge_shape(image.shape[:2], FLAGS.size))
  if len(FLAGS.pan) != 2:
    raise NSTError(f"--pan takes two numbers (x, y), got {list(FLAGS.pan)}")
  frames, true_flows = video.pan_zoom_clip(
      image, frames=FLAGS.frames, shape=shape, pan=tuple(FLAGS.pan),
      zoom=FLAGS.zoom, start_scale=FLAGS.start_scale)
  style = io.resize_long_edge(io.load_image(FLAGS.style), FLAGS.size)
  params = vgg.load_params("vgg16")
  config = transfer.TransferConfig().replace(
      solver=dict(maxiter=FLAGS.iterations))
  modes = {"independent": video.INDEPENDENT,
           "temporal": video.Temporal(weight=FLAGS.temporal_weight)}
  true_masks = [np.asarray(video.in_frame(f)) for f in true_flows]
  results, stylised = {}, {}
  for name, temporal in modes.items():
    temporal = video.Temporal(temporal.weight, temporal.offsets,
                              temporal.warm_start, FLAGS.first_iterations)
    start = time.perf_counter()
    run = video.stylize_video(
        params, frames, [style], config, temporal,
        on_frame=lambda r, name=name: print(
            f"{name}: frame {r.index + 1}/{len(frames)} {r.seconds:.1f} s, "
            f"{r.function_evaluations} evaluations, style "
            f"{r.terms['style']:.4g}, error {r.temporal_error}", flush=True))
    wall = time.perf_counter() - start
    stylised[name] = run.frames
    opencv = [r.temporal_error for r in run.results[1:]]
    exact = video.temporal_errors(run.frames, true_flows, true_masks)
    seconds = [r.seconds for r in run.results]
    results[name] = {
        "temporal_error_opencv_flow": float(np.mean(opencv)),
        "temporal_error_exact_flow": float(np.mean(exact)),
        "per_pair_opencv_flow": opencv,
        "per_pair_exact_flow": exact.tolist(),
        "seconds_first_frame": seconds[0],
        "seconds_per_later_frame": float(np.mean(seconds[1:])),
        "seconds_per_frame": wall / len(frames),
        "iterations": [r.iterations for r in run.results],
        "function_evaluations": [r.function_evaluations
                                 for r in run.results],
        "style_per_frame": [r.terms["style"] for r in run.results],
        "final_terms": [r.terms for r in run.results],
    }
    uncovered = _uncovered_columns(true_flows)
    if FLAGS.zoom == 1.0 and 0 < uncovered < shape[1]:
      last = run.frames[-1]
      side = slice(-uncovered, None) if FLAGS.pan[0] > 0 else slice(
          0, uncovered)
      rest = slice(0, -uncovered) if FLAGS.pan[0] > 0 else slice(
          uncovered, None)
      results[name]["uncovered_strip"] = {
          "columns": uncovered,
          "along_rows_ratio": _along_rows(last[:, side]),
          "along_rows_ratio_rest": _along_rows(last[:, rest])}
  content_error = float(np.mean(video.temporal_errors(
      frames, true_flows, true_masks)))
  ratio = {k: results["temporal"][k] / results["independent"][k]
           for k in ("temporal_error_opencv_flow",
                     "temporal_error_exact_flow", "seconds_per_later_frame")}
  report = {"device": cli.device_description(), "size": list(shape[::-1]),
            "frames": FLAGS.frames, "iterations": FLAGS.iterations,
            "first_iterations": FLAGS.first_iterations,
            "temporal_weight": FLAGS.temporal_weight,
            "content_clip_error_exact_flow": content_error,
            "modes": results, "temporal_over_independent": ratio,
            "date": time.strftime("%Y-%m-%d")}
  io.save_json(FLAGS.json, report)
  n = FLAGS.strip_frames
  rows = [stylised["independent"][-n:], stylised["temporal"][-n:]]
  first = FLAGS.frames - n + 1
  labels = [[f"independent, frame {first + i}" for i in range(n)],
            [f"temporal loss, frame {first + i}" for i in range(n)]]
  io.save_image(FLAGS.strip, figures.stacked_rows(
      rows, labels, height=FLAGS.strip_height))
  for name, r in results.items():
    print(f"{name:12s} error {r['temporal_error_opencv_flow']:.4f} (OpenCV "
          f"flow) {r['temporal_error_exact_flow']:.4f} (exact flow), "
          f"{r['seconds_per_later_frame']:.1f} s per later frame, "
          f"{r['seconds_first_frame']:.1f} s first")
    print(f"{'':12s} evaluations per frame {r['function_evaluations']}, "
          "style per frame " + ", ".join(f"{v:.4g}"
                                         for v in r["style_per_frame"]))
    if "uncovered_strip" in r:
      u = r["uncovered_strip"]
      print(f"{'':12s} uncovered strip ({u['columns']} columns): change "
            f"along rows / along columns {u['along_rows_ratio']:.2f} "
            f"(rest of the frame {u['along_rows_ratio_rest']:.2f})")
  print(f"content clip error (exact flow) {content_error:.4f}; temporal / "
        f"independent: " + ", ".join(f"{k} {v:.3f}" for k, v in ratio.items()))
  print(f"wrote {FLAGS.json} and {FLAGS.strip}")


if __name__ == "__main__":
  app.run(cli.run_main(main), flags_parser=cli.parse_flags)
