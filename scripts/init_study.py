"""The initialisation study of Nikulin & Novak §4 (Fig. 3) for any image pair.

  python scripts/init_study.py --content=photo.jpg --style=painting.jpg \
      --output=out/init_study.png --size=192 --iterations=150

Runs the same transfer three times, starting from the style image, the
content image and white noise, and writes [content, style, from style, from
content, from noise] side by side (``figures.side_by_side``) with a JSON record
beside the PNG (each run's final loss terms, iterations and seconds). Every
other setting is ``stylize.py``'s default (``transfer.TransferConfig``).
"""

import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags

from nst_jax import cli
from nst_jax import figures
from nst_jax import io
from nst_jax import transfer
from nst_jax import vgg
from nst_jax.errors import NSTError

_DEFAULT = transfer.TransferConfig()

flags.DEFINE_string("content", None, "Content image.")
flags.DEFINE_string("style", None, "Style image.")
flags.DEFINE_string("output", "out/init_study.png", "Output PNG.")
flags.DEFINE_integer("size", 192, "Long edge in pixels.", lower_bound=16,
                     upper_bound=io.MAX_RESIZE_EDGE)
flags.DEFINE_integer("iterations", 150, "Iterations of each run.",
                     lower_bound=0)
flags.DEFINE_float("content_weight", _DEFAULT.content_weight, "α.")
flags.DEFINE_float("style_weight", _DEFAULT.style_weight, "β.")
flags.DEFINE_float("tv_weight", _DEFAULT.tv_weight, "Total-variation weight.")
flags.DEFINE_integer("seed", 0, "Seed of the noise start.")
flags.DEFINE_string("network", _DEFAULT.network, "Network.")
flags.DEFINE_integer("height", 160, "Height of each picture in the figure.",
                     lower_bound=16)
FLAGS = flags.FLAGS


def init_study(params, content, style, config: transfer.TransferConfig):
  """``{init: TransferResult}`` for the three starting points of §4."""
  return {init: transfer.stylize(params, content, [style],
                                 dataclasses.replace(config, init=init))
          for init in ("style", "content", "noise")}


def main(argv):
  if len(argv) > 1:
    raise NSTError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not FLAGS.content or not FLAGS.style or not FLAGS.output.endswith(".png"):
    raise NSTError("--content, --style and a .png --output are required")
  config = transfer.TransferConfig(
      network=FLAGS.network, iterations=FLAGS.iterations,
      content_weight=FLAGS.content_weight, style_weight=FLAGS.style_weight,
      tv_weight=FLAGS.tv_weight, seed=FLAGS.seed)
  transfer.check_config(config)
  content = io.load_image(FLAGS.content)
  content = io.resize_to(content, io.long_edge_shape(content.shape[:2],
                                                     FLAGS.size))
  style = io.resize_long_edge(io.load_image(FLAGS.style), FLAGS.size)
  params = vgg.load_params(FLAGS.network)
  results = init_study(params, content, style, config)
  for init, r in results.items():
    last = r.loss_history[-1]
    print(f"from {init:7s}: total {last['total']:.4g}  content "
          f"{last['content']:.4g}  style {last['style']:.4g}  "
          f"({r.iterations} iterations, {r.wall_seconds:.1f} s)", flush=True)
  sheet = figures.side_by_side(
      [content, style] + [r.image for r in results.values()],
      ["content", "style"] + [f"from {k}" for k in results], height=FLAGS.height)
  inputs = [FLAGS.content, FLAGS.style]
  io.save_image(FLAGS.output, sheet, protect=inputs)
  io.save_json(FLAGS.output[:-4] + ".json", {
      "params": cli.module_flag_values(sys.modules[__name__].__name__),
      "runs": {k: {"final": r.loss_history[-1], "iterations": r.iterations,
                   "wall_seconds": r.wall_seconds} for k, r in results.items()},
      "device": cli.device_description()}, protect=inputs)
  print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
  cli.run(main)
