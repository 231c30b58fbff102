"""The initialisation study of Nikulin & Novak §4 (Fig. 3) for any image pair.

  python scripts/init_study.py --content=photo.jpg --style=painting.jpg \
      --output=out/init_study.png --size=192 --iterations=150

Runs the same transfer three times, starting from the style image, the
content image and white noise, and writes [content, style, from style, from
content, from noise] side by side (``figures.side_by_side``) with a JSON record
beside the PNG (each run's final loss terms, iterations and seconds). Every
other setting is nst-stylize's default; the flags are its (``nst_jax.cli``).
"""

from absl import flags

from nst_jax import cli
from nst_jax import figures
from nst_jax import io
from nst_jax import transfer
from nst_jax import vgg
from nst_jax.errors import NSTError

_SHARED = cli.define_flags("content", "style", "size", "iterations", "network",
                           "weights", "loss", "seed",
                           defaults={"size": 192, "iterations": 150})
flags.DEFINE_string("output", "out/init_study.png", "Output PNG.")
flags.DEFINE_integer("height", 160, "Height of each picture in the figure.",
                     lower_bound=16)
FLAGS = flags.FLAGS


def init_study(params, content, style, config: transfer.TransferConfig):
  """``{init: TransferResult}`` for the three starting points of §4."""
  return {init: transfer.stylize(params, content, [style],
                                 config.replace(init=dict(kind=init)))
          for init in ("style", "content", "noise")}


def main(argv):
  if len(argv) > 1:
    raise NSTError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not FLAGS.content or not FLAGS.style or not FLAGS.output.endswith(".png"):
    raise NSTError("--content, --style and a .png --output are required")
  if len(FLAGS.style) != 1:
    raise NSTError(f"--style takes one image here, got {len(FLAGS.style)}")
  config = cli.transfer_config()
  content = io.load_image(FLAGS.content)
  content = io.resize_to(content, io.long_edge_shape(content.shape[:2],
                                                     FLAGS.size))
  style = io.resize_long_edge(io.load_image(FLAGS.style[0]), FLAGS.size)
  params = vgg.load_params(FLAGS.weights or FLAGS.network)
  results = init_study(params, content, style, config)
  for init, r in results.items():
    last = r.loss_history[-1]
    print(f"from {init:7s}: total {last['total']:.4g}  content "
          f"{last['content']:.4g}  style {last['style']:.4g}  "
          f"({r.iterations} iterations, {r.wall_seconds:.1f} s)", flush=True)
  sheet = figures.side_by_side(
      [content, style] + [r.image for r in results.values()],
      ["content", "style"] + [f"from {k}" for k in results], height=FLAGS.height)
  inputs = [FLAGS.content, *FLAGS.style]
  io.save_image(FLAGS.output, sheet, protect=inputs)
  io.save_json(FLAGS.output[:-4] + ".json", {
      "params": cli.flag_values(_SHARED + ["output", "height"]),
      "runs": {k: {"final": r.loss_history[-1], "iterations": r.iterations,
                   "wall_seconds": r.wall_seconds} for k, r in results.items()},
      "device": cli.device_description()}, protect=inputs)
  print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
  cli.run(main)
