"""Places images side by side with captions (README figures, comparisons).

  python scripts/compose.py --images=a.jpg,b.png --labels="content,result" \
      --height=256 --output=docs/images/figure.png
"""


from absl import flags

from nst_jax import cli
from nst_jax import figures
from nst_jax import io
from nst_jax.errors import NSTError

flags.DEFINE_list("images", None, "Images, comma-separated, left to right.")
flags.DEFINE_list("labels", None, "One caption per image (optional).")
flags.DEFINE_integer("height", 256, "Height of each image in pixels.",
                     lower_bound=16, upper_bound=4096)
flags.DEFINE_string("output", None, "Output PNG.")
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise NSTError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not FLAGS.images or not FLAGS.output:
    raise NSTError("--images and --output are required")
  if FLAGS.labels is not None and len(FLAGS.labels) != len(FLAGS.images):
    raise NSTError(f"got {len(FLAGS.labels)} labels for "
                   f"{len(FLAGS.images)} images")
  sheet = figures.side_by_side([io.load_image(p) for p in FLAGS.images],
                               FLAGS.labels, height=FLAGS.height)
  io.save_image(FLAGS.output, sheet, protect=FLAGS.images)
  print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
  cli.run(main)
