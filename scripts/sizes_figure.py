"""The same flags at several sizes (issues 12 and 26): the content painted
with each ``--style`` painting by the default transfer at every ``--sizes``
long edge, each result scored at one size (``--score_size``: straight —
each result downsampled once, issue 26's measure — and through the largest
size, so that every result passes through the same downsampling) and at
its own, each painting's spread over the sizes (max / min of its style
distances at one size, both ways), and one figure: a row per painting, a
column per size. ``--coarse_weight`` is ``nst-stylize``'s (0 paints as
before the coarse view).

Every size runs the command's default (``nst-stylize --size=S``): one level
below ``2·--pyramid_base``, else the coarse-to-fine pyramid of
``transfer.pyramid``. The pyramid of a smaller size is the start of a larger
one's (same levels, same iterations, the same computation), so a single run
of the largest size gives every result: each level's image is saved as it
finishes (``--nopyramid`` paints each size at one level instead, for the
comparison)::

  python scripts/sizes_figure.py --content=../shared/images/tubingen.jpg \\
      --style=../shared/images/the_scream.jpg,../shared/images/starry_night.jpg \\
      --sizes=256,512,1024 --iterations=300 --output_dir=out/sizes \\
      --figure=docs/images/calibration/sizes_paintings.jpg

Writes ``<output_dir>/<pair>_<size>.png`` (a finished one is scored, not run
again: two processes given different paintings share the work, and a last
run with all of them only scores and draws), ``sizes.json`` and the figure.
Bad input: one line, exit 1.
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
_COARSE = flags.DEFINE_float("coarse_weight",
                             transfer.Schedule().coarse_weight,
                             "As nst-stylize's.", lower_bound=0.0)
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


def spreads(runs, key: str) -> dict:
  """Each style distance's spread over the sizes of one painting, scored
  at ``key`` (e.g. ``"256_via_1024"``): ``{"swd": max/min, "gram":
  max/min}`` (1 is the same distance at every size; the target of issue
  26, item 6, is at most 1.25)."""
  out = {}
  for field in ("swd", "gram"):
    values = [r["scored_at"][key][field] for r in runs]
    out[field] = max(values) / min(values)
  return out


def paint_sizes(params, content, style, sizes, path, pyramid) -> dict:
  """Paints the sizes of ``sizes`` whose ``path(size)`` is missing: one
  coarse-to-fine run of ``pyramid`` (``(scales, counts)`` of
  :func:`check_nested`), each level saved as it finishes, or with
  ``pyramid=None`` (``--nopyramid``) one run per size at one level; returns
  ``{size: seconds}`` of the levels that ran."""
  config = transfer.TransferConfig().replace(
      solver=dict(maxiter=_ITERATIONS.value),
      schedule=dict(coarse_weight=_COARSE.value))
  todo = [s for s in sizes if not os.path.exists(path(s))]
  seconds = {}
  if todo and pyramid is not None:
    scales, counts = pyramid

    def on_level(size, result):
      seconds[size] = result.wall_seconds
      if size in todo:   # a finished result is kept as it is
        io.save_image(path(size), result.image)
        print(f"{os.path.basename(path(size))}: {result.wall_seconds:.1f} s",
              flush=True)
    transfer.stylize_multiscale(params, content, [style], scales, config,
                                scale_iterations=counts, log_every=0,
                                on_level=on_level)
  for size in todo if pyramid is None else ():
    result = transfer.stylize(params, io.resize_long_edge(content, size),
                              [io.resize_long_edge(style, size)], config,
                              log_every=0)
    seconds[size] = result.wall_seconds
    io.save_image(path(size), result.image)
  return seconds


def through_size(sizes) -> tuple:
  """``(through, key)``: the size every result passes through before it is
  scored at ``--score_size`` (the largest, or ``--score_size`` itself when
  every result is smaller: via is at least the score size), and the
  scores' key, ``"<score>_via_<through>"``."""
  through = max(max(sizes), _SCORE.value)
  return through, f"{_SCORE.value}_via_{through}"


def score_sizes(nets, content, style, sizes, path, seconds) -> list:
  """One row per size: its image, seconds and scores at ``--score_size``
  straight, through one size (:func:`through_size`: every result then
  passes through the same downsampling, ``metrics.scoring_images``) and at
  its own size."""
  images = [io.load_image(path(s)) for s in sizes]
  through, via = through_size(sizes)
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
  return rows


def sizes_sheet(paintings, styles, content_shape, key: str):
  """One row per painting: its style (centre-cropped to the content's
  aspect ratio) and its results at every size, labelled with the Gram
  distance at each size scored at ``key`` (e.g. ``"256"``, straight) and
  its spread: float32 ``(H, W, 3)``."""
  cells, labels = [], []
  for entry, style in zip(paintings, styles):
    cells.append([figures.crop_to_aspect(style, content_shape)]
                 + [io.load_image(r["image"]) for r in entry["runs"]])
    grams = " / ".join(f"{r['scored_at'][key]['gram']:.3f}"
                       for r in entry["runs"])
    labels.append(f"{entry['style']}\nGram {grams}\n"
                  f"spread {spreads(entry['runs'], key)['gram']:.2f}x")
  sizes = [r["size"] for r in paintings[0]["runs"]]
  return figures.contact_sheet(
      cells, labels, ["style (centre)"] + [f"{s} px" for s in sizes],
      label_width=190)


def main(argv):
  del argv
  if not flags.FLAGS.content or not flags.FLAGS.style:
    raise NSTError("--content and --style are required")
  sizes = sorted(set(flags.FLAGS.sizes))
  # Refused before anything is read or written.
  pyramid = (check_nested(sizes, _ITERATIONS.value, _BASE.value)
             if _PYRAMID.value else None)
  stem = lambda p: os.path.splitext(os.path.basename(p))[0]
  names = [stem(p) for p in flags.FLAGS.style]
  twice = sorted({n for n in names if names.count(n) > 1})
  if twice:
    raise NSTError(f"--style names {', '.join(twice)} twice: results are "
                   "named by the painting's file name, so give each its own")
  content = io.load_image(flags.FLAGS.content)
  styles = [io.load_image(p) for p in flags.FLAGS.style]
  kind = "" if _PYRAMID.value else "_single"
  os.makedirs(_OUT.value, exist_ok=True)
  params = vgg.load_params("vgg16")
  nets = metrics.load_metric_networks()
  _, via = through_size(sizes)
  paintings = []
  for style_path, style in zip(flags.FLAGS.style, styles):
    pair = f"{stem(flags.FLAGS.content)}+{stem(style_path)}"
    path = lambda s, pair=pair: os.path.join(_OUT.value,
                                             f"{pair}_{s}{kind}.png")
    seconds = paint_sizes(params, content, style, sizes, path, pyramid)
    runs = score_sizes(nets, content, style, sizes, path, seconds)
    paintings.append({"pair": pair, "style": stem(style_path), "runs": runs,
                      "spread": spreads(runs, via),
                      "spread_straight": spreads(runs, str(_SCORE.value))})
    print(json.dumps(paintings[-1]), flush=True)
  io.save_json(os.path.join(_OUT.value, f"sizes{kind}.json"),
               {"content": flags.FLAGS.content,
                "iterations": _ITERATIONS.value,
                "pyramid": _PYRAMID.value, "pyramid_base": _BASE.value,
                "score_size": _SCORE.value, "spread_scored_at": via,
                "coarse_weight": _COARSE.value,
                "paintings": paintings})
  if _FIGURE.value:
    save_figure(_FIGURE.value,
                sizes_sheet(paintings, styles, content.shape,
                            str(_SCORE.value)))


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
