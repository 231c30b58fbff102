"""The same flags at several sizes (issue 12): one pair painted with the
default transfer at every ``--sizes`` long edge, each result scored at one
size (``--score_size``: straight, and through the largest size so that
every result passes through the same downsampling) and at its own, and
side by side in one figure.

Every size runs the command's default (``nst-stylize --size=S``): one level
below ``2·--pyramid_base``, else the coarse-to-fine pyramid of
``transfer.pyramid``. The pyramid of a smaller size is the start of a larger
one's (same levels, same iterations, the same computation), so a single run
of the largest size gives every result: each level's image is saved as it
finishes (``--nopyramid`` paints each size at one level instead, for the
comparison)::

  python scripts/sizes_figure.py --content=../shared/images/tubingen.jpg \\
      --style=../shared/images/the_scream.jpg --sizes=256,512,1024 \\
      --iterations=500 --output_dir=out/sizes \\
      --figure=docs/images/calibration/sizes_scream.jpg

Writes ``<output_dir>/<pair>_<size>.png`` (a finished one is scored, not run
again), ``sizes.json`` and the figure. Bad input: one line, exit 1.
"""

import json
import os

from absl import flags
import numpy as np

from nst_jax import cli
from nst_jax import figures
from nst_jax import io
from nst_jax import metrics
from nst_jax import transfer
from nst_jax import vgg
from nst_jax.errors import NSTError

cli.define_flags("content", "style")
cli.define_numbers("sizes", (256, 512, 1024), "Long edges.", kind=int,
                   lower_bound=1)
_ITERATIONS = flags.DEFINE_integer("iterations", 500, "--iterations of each "
                                   "run (the pyramid's first level).",
                                   lower_bound=0)
_BASE = flags.DEFINE_integer("pyramid_base", transfer.PYRAMID_BASE,
                             "As nst-stylize's.", lower_bound=0)
_PYRAMID = flags.DEFINE_bool("pyramid", True, "The command's default; "
                             "--nopyramid: each size at one level.")
_SCORE = flags.DEFINE_integer("score_size", metrics.SCORE_SIZE,
                              "Long edge every result is scored at.")
_OUT = flags.DEFINE_string("output_dir", "out/sizes", "Results and JSON.")
_FIGURE = flags.DEFINE_string("figure", None, "Also write the figure here.")


def check_nested(sizes, iterations, base):
  """The pyramid of the largest size, when every size's own pyramid is its
  start (then one run gives every result); raises ``NSTError`` otherwise."""
  scales, counts = transfer.pyramid(max(sizes), iterations, base)
  for size in sizes:
    own = transfer.pyramid(size, iterations, base)
    if list(zip(*own)) != list(zip(scales, counts))[:len(own[0])]:
      raise NSTError(f"--sizes: the pyramid of {size} px ({own[0]}) is not "
                     f"the start of {max(sizes)} px's ({scales}): choose "
                     "sizes that halve down to --pyramid_base")
  return scales, counts


def main(argv):
  del argv
  if not flags.FLAGS.content or not flags.FLAGS.style:
    raise NSTError("--content and --style are required")
  sizes = sorted(set(flags.FLAGS.sizes))
  if _PYRAMID.value:   # refused before anything is read or written
    scales, counts = check_nested(sizes, _ITERATIONS.value, _BASE.value)
  content = io.load_image(flags.FLAGS.content)
  style = io.load_image(flags.FLAGS.style[0])
  stem = lambda p: os.path.splitext(os.path.basename(p))[0]
  pair = f"{stem(flags.FLAGS.content)}+{stem(flags.FLAGS.style[0])}"
  kind = "" if _PYRAMID.value else "_single"
  path = lambda s: os.path.join(_OUT.value, f"{pair}_{s}{kind}.png")
  os.makedirs(_OUT.value, exist_ok=True)
  params = vgg.load_params("vgg16")
  config = transfer.TransferConfig().replace(
      solver=dict(maxiter=_ITERATIONS.value))
  seconds = {}
  todo = [s for s in sizes if not os.path.exists(path(s))]
  if todo and _PYRAMID.value:
    def on_level(size, result):
      seconds[size] = result.wall_seconds
      if size in todo:   # a finished result is kept as it is
        io.save_image(path(size), result.image)
        print(f"{size} px: {result.wall_seconds:.1f} s", flush=True)
    transfer.stylize_multiscale(params, content, [style], scales, config,
                                scale_iterations=counts, log_every=0,
                                on_level=on_level)
  for size in todo if not _PYRAMID.value else ():
    result = transfer.stylize(params, io.resize_long_edge(content, size),
                              [io.resize_long_edge(style, size)], config,
                              log_every=0)
    seconds[size] = result.wall_seconds
    io.save_image(path(size), result.image)
  nets = metrics.load_metric_networks()
  images = [io.load_image(path(s)) for s in sizes]
  # At one size straight, and through the largest size (every result then
  # passes through the same downsampling: metrics.scoring_images); through
  # --score_size itself when every result is smaller (via is at least it).
  through = max(max(sizes), _SCORE.value)
  via = f"{_SCORE.value}_via_{through}"
  at_one = {str(_SCORE.value): metrics.score(nets, content, style, images,
                                             size=_SCORE.value),
            via: metrics.score(nets, content, style, images,
                               size=_SCORE.value, via=through)}
  rows = []
  for i, (size, image) in enumerate(zip(sizes, images)):
    own = metrics.score(nets, content, style, [image], size=size)
    scored = {key: {k: float(v[i]) for k, v in scores.items()}
              for key, scores in at_one.items()}
    scored["own"] = {k: float(v[0]) for k, v in own.items()}
    rows.append({"size": size, "image": path(size),
                 "level_seconds": seconds.get(size), "scored_at": scored})
    print(json.dumps(rows[-1]), flush=True)
  io.save_json(os.path.join(_OUT.value, f"sizes{kind}.json"),
               {"pair": pair, "iterations": _ITERATIONS.value,
                "pyramid": _PYRAMID.value, "pyramid_base": _BASE.value,
                "score_size": _SCORE.value, "runs": rows})
  if _FIGURE.value:
    labels = ["content"] + [
        f"{r['size']} px - style SWD "
        f"{r['scored_at'][str(_SCORE.value)]['swd']:.3f}"
        for r in rows]
    save_figure(_FIGURE.value, figures.side_by_side(
        [io.resize_long_edge(content, 512)] + [np.asarray(im)
                                               for im in images],
        labels, height=300))


def save_figure(path: str, image) -> None:
  """A PNG (``io.save_image``), or for a ``.jpg`` path a JPEG of quality 88
  (a photo-like figure for the README at a fifth of the PNG's bytes),
  written to a temporary file and renamed."""
  if not path.lower().endswith((".jpg", ".jpeg")):
    io.save_image(path, image)
    return
  from PIL import Image  # pylint: disable=g-import-not-at-top
  pixels = np.round(np.clip(np.asarray(image), 0, 1) * 255).astype(np.uint8)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(pixels).save(path + ".tmp", format="JPEG", quality=88,
                               optimize=True)
  os.replace(path + ".tmp", path)


if __name__ == "__main__":
  cli.run(main)
