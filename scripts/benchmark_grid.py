"""Batched grid vs the same cells one after another, measured side by side.

  python scripts/benchmark_grid.py --cells=16 --size=128 --iterations=20

Both sides run the same cells (β spread over decades, seeds for the noise
init), the same solver and iterations, on the same device, in this one
process. Each side runs twice and the second (warm) run is timed, so
compilation is reported apart. Prints one line per side and the ratio.
"""

import dataclasses
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags

from nst_jax import cli
from nst_jax import io
from nst_jax import transfer
from nst_jax import vgg
from nst_jax.errors import NSTError

flags.DEFINE_integer("cells", 16, "Number of grid cells.", lower_bound=1)
flags.DEFINE_integer("size", 128, "Long edge in pixels.", lower_bound=16)
flags.DEFINE_integer("iterations", 20, "Iterations per cell.", lower_bound=1)
flags.DEFINE_string("content", "examples/chelsea.png", "Content image.")
flags.DEFINE_string("style", "examples/style_brushwork.png", "Style image.")
flags.DEFINE_integer("chunk_size", None, "Cells per compiled run.")
flags.DEFINE_enum("init", "noise", list(transfer.INITS), "Start image.")
flags.DEFINE_enum("optimizer", "optax_lbfgs", ["optax_lbfgs", "lbfgs", "adam"],
                  "Solver (every cell has its own state).")
FLAGS = flags.FLAGS


def _axes(cells: int):
  from nst_jax import grid  # pylint: disable=g-import-not-at-top
  weights = tuple(10.0 ** (5 + k % 4) for k in range(min(cells, 4)))
  seeds = tuple(range(-(-cells // len(weights))))
  axes = grid.GridAxes(style_weight=weights, seed=seeds)
  return axes, axes.cells()[:cells]


def main(argv):
  if len(argv) > 1:
    raise NSTError(f"unexpected arguments: {' '.join(argv[1:])}")
  from nst_jax import grid  # pylint: disable=g-import-not-at-top
  params = vgg.load_params("vgg16")
  content = io.resize_long_edge(io.load_image(FLAGS.content), FLAGS.size)
  style = io.resize_long_edge(io.load_image(FLAGS.style), FLAGS.size)
  config = transfer.TransferConfig(iterations=FLAGS.iterations,
                                   init=FLAGS.init, optimizer=FLAGS.optimizer)
  axes, cells = _axes(FLAGS.cells)
  if len(axes.cells()) != FLAGS.cells:
    raise NSTError("--cells must be 1-4 or a multiple of 4")

  def batched():
    return grid.style_grid(params, content, [style], axes, config,
                           chunk_size=FLAGS.chunk_size)

  def sequential():
    total = 0
    for cell in cells:
      cfg = dataclasses.replace(config, style_weight=cell["style_weight"],
                                seed=cell["seed"])
      total += transfer.stylize(params, content, [style], cfg,
                                log_every=0).function_evaluations
    evaluations["sequential"] = total

  times = {}
  evaluations = {}
  for name, run in (("batched", batched), ("sequential", sequential)):
    t = time.perf_counter()
    out = run()
    cold = time.perf_counter() - t
    if out is not None:
      evaluations[name] = int(out.function_evaluations.sum())
    t = time.perf_counter()
    run()
    times[name] = (cold, time.perf_counter() - t)
  h, w = content.shape[:2]
  print(f"{FLAGS.cells} cells, {w}x{h}, {FLAGS.iterations} iterations, "
        f"{FLAGS.optimizer}, init {FLAGS.init}, "
        f"{cli.device_description()}, {time.strftime('%Y-%m-%d')}")
  for name, (cold, warm) in times.items():
    print(f"{name:10s}  warm {warm:8.2f} s  ({warm / FLAGS.cells:.3f} s/cell)  "
          f"first run {cold:8.2f} s (compile ~{cold - warm:.1f} s)")
  print(f"evaluations summed over cells: {evaluations}; a batch steps every "
        "cell through the longest line search of the batch")
  print(f"batched/sequential (warm): "
        f"{times['batched'][1] / times['sequential'][1]:.2f}x")


if __name__ == "__main__":
  cli.run(main)
