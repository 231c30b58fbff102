"""Batched grid vs the same cells one after another, measured side by side.

  python scripts/benchmark_grid.py --cells=16 --size=128 --iterations=20

Both sides run the same cells (β at ¼, 1, 4 and 16 times the default,
seeds for the noise init), the same solver and iterations, on the same
device, in this one process. Each side runs twice and the second (warm) run
is timed, so compilation is reported apart (``--runs=1``: the first run is
timed, compilation included). Prints one line per side and the
ratio; with ``--score`` also each side's results scored by
``nst_jax.metrics`` (style SWD and LPIPS-VGG to the content at 256 px, mean
over the cells and the largest difference between the sides' cells): the
quality each side reaches in its time.
"""

import time

from absl import flags

from nst_jax import cli
from nst_jax import io
from nst_jax import transfer
from nst_jax import vgg
from nst_jax.errors import NSTError

cli.define_flags("content", "style", "size", "iterations", "init", "optimizer",
                 defaults={"content": "examples/chelsea.png",
                           "style": ["examples/style_brushwork.png"],
                           "size": 128, "iterations": 20, "init": "noise"})
flags.DEFINE_integer("cells", 16, "Number of grid cells.", lower_bound=1)
flags.DEFINE_integer("chunk_size", None, "Cells per compiled run.")
flags.DEFINE_bool("score", False, "Also score both sides' results.")
flags.DEFINE_integer("runs", 2, "Runs of each side: 2 times the second "
                     "(warm) run and reports compilation apart; 1 times the "
                     "first, compilation included (each side compiles once: "
                     "the sequential cells share one program).",
                     lower_bound=1, upper_bound=2)
FLAGS = flags.FLAGS


def _axes(cells: int):
  from nst_jax import grid  # pylint: disable=g-import-not-at-top
  from nst_jax import losses  # pylint: disable=g-import-not-at-top
  weights = tuple(losses.DEFAULT_STYLE_WEIGHT * 4.0 ** (k - 1)
                  for k in range(min(cells, 4)))
  seeds = tuple(range(-(-cells // len(weights))))
  axes = grid.GridAxes(style_weight=weights, seed=seeds)
  return axes, axes.cells()[:cells]


def main(argv):
  if len(argv) > 1:
    raise NSTError(f"unexpected arguments: {' '.join(argv[1:])}")
  from nst_jax import grid  # pylint: disable=g-import-not-at-top
  params = vgg.load_params("vgg16")
  if len(FLAGS.style) != 1:
    raise NSTError(f"--style takes one image here, got {len(FLAGS.style)}")
  content = io.resize_long_edge(io.load_image(FLAGS.content), FLAGS.size)
  style = io.resize_long_edge(io.load_image(FLAGS.style[0]), FLAGS.size)
  config = cli.transfer_config()
  axes, cells = _axes(FLAGS.cells)
  if len(axes.cells()) != FLAGS.cells:
    raise NSTError("--cells must be 1-4 or a multiple of 4")

  def batched():
    return grid.style_grid(params, content, [style], axes, config,
                           chunk_size=FLAGS.chunk_size)

  def sequential():
    total, images["sequential"] = 0, []
    for cell in cells:
      cfg = config.replace(weights=dict(style=cell["style_weight"]),
                           init=dict(seed=cell["seed"]))
      result = transfer.stylize(params, content, [style], cfg, log_every=0)
      total += result.function_evaluations
      images["sequential"].append(result.image)
    evaluations["sequential"] = total

  times, evaluations, images = {}, {}, {}
  for name, run in (("batched", batched), ("sequential", sequential)):
    t = time.perf_counter()
    out = run()
    cold = time.perf_counter() - t
    if out is not None:
      evaluations[name] = int(out.function_evaluations.sum())
      images[name] = list(out.images)
    if FLAGS.runs == 1:
      times[name] = (cold, cold)
      continue
    t = time.perf_counter()
    run()
    times[name] = (cold, time.perf_counter() - t)
  h, w = content.shape[:2]
  print(f"{FLAGS.cells} cells, {w}x{h}, {FLAGS.iterations} iterations, "
        f"{FLAGS.optimizer}, init {FLAGS.init}, "
        f"{cli.device_description()}, {time.strftime('%Y-%m-%d')}")
  for name, (cold, warm) in times.items():
    print(f"{name:10s}  warm {warm:8.2f} s  ({warm / FLAGS.cells:.3f} s/cell)  "
          f"first run {cold:8.2f} s (compile ~{cold - warm:.1f} s)"
          if FLAGS.runs == 2 else
          f"{name:10s}  first run {cold:8.2f} s, compilation included "
          f"({cold / FLAGS.cells:.3f} s/cell)")
  print(f"evaluations summed over cells: {evaluations}; a batch steps every "
        "cell through the longest line search of the batch")
  print(f"batched/sequential ({'warm' if FLAGS.runs == 2 else 'first run'}): "
        f"{times['batched'][1] / times['sequential'][1]:.2f}x")
  if FLAGS.score:
    _print_scores(content, style, images, times, cells)


def _print_scores(content, style, images, times, cells):
  """Each side's results scored (``metrics.score`` at 256 px): each cell's
  style SWD and LPIPS-VGG on both sides, their means over the cells, and
  the largest per-cell difference."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from nst_jax import metrics  # pylint: disable=g-import-not-at-top
  nets = metrics.load_metric_networks()
  scores = {name: metrics.score(nets, content, style, ims)
            for name, ims in images.items()}
  print(f"{'cell':22s} " + "  ".join(f"{n + ' SWD / LPIPS':>26s}"
                                      for n in scores))
  for i, cell in enumerate(cells):
    label = f"β {cell['style_weight']:g}, seed {cell['seed']}"
    print(f"{label:22s} " + "  ".join(
        f"{s['swd'][i]:>14.4f} / {s['lpips_vgg'][i]:.4f}"
        for s in scores.values()))
  for name, s in scores.items():
    print(f"{name:10s}  {times[name][1]:8.2f} s  style SWD "
          f"{np.mean(s['swd']):.4f}  LPIPS-VGG {np.mean(s['lpips_vgg']):.4f}"
          "  (means over the cells)")
  for key in ("swd", "lpips_vgg"):
    diff = np.abs(scores["batched"][key] - scores["sequential"][key])
    print(f"largest per-cell difference in {key}: {diff.max():.4f}")


if __name__ == "__main__":
  cli.run(main)
