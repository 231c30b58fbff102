"""The figures of issue 13 (where each style goes), one command each.

  python scripts/figures_guided.py --figure=regions   # (a) masks
  python scripts/figures_guided.py --figure=halves    # (b) global vs content-aware
  python scripts/figures_guided.py --figure=night     # (c) day → night

(a) Two-region control: the sky of Tübingen (found by colour, column by
    column from the top: a script draws the mask, not a hand) in The Starry
    Night, the town in The Scream (``GuidedGram``, Gatys et al. 2017 §4).
(b) A style image with two clearly different halves — the top of The Starry
    Night over the bottom of The Scream — transferred globally (one Gram
    over the whole style) and content-aware (``ContentAware``, Nikulin &
    Novak §9: each style region goes to the content that looks like it).
(c) Illumination transfer, Nikulin & Novak §8: the daylight Tübingen photo
    in the "style" of Hoover Tower at night, global versus content-aware.

Each writes ``<output_dir>/<figure>.png`` (the inputs, the mask where there
is one, and the results side by side, as a 256-colour PNG) and, for (a), the mask it drew
(``tubingen_sky_mask.png``), which ``nst-stylize --content_mask`` reads the
same way. Every run is the library's ``transfer.stylize`` with the shared
flags' defaults unless given (``--size``, ``--iterations``, ``--style_weight``
…).
"""

import os

import numpy as np
from absl import flags
from PIL import Image
from absl import logging

from nst_jax import cli
from nst_jax import figures
from nst_jax import guided
from nst_jax import io
from nst_jax import masks
from nst_jax import transfer
from nst_jax import vgg
from nst_jax.errors import NSTError

_SHARED = cli.define_flags("model", "loss", "solver", "init", "compute",
                           "output", "size", "ca_clusters", "ca_window",
                           "ca_temperature", "ca_layer", "mask_blur",
                           defaults={"size": 256, "iterations": 150})
flags.DEFINE_enum("figure", "regions", ["regions", "halves", "night", "all"],
                  "Which figure.")
flags.DEFINE_string("images", os.path.join(os.path.dirname(
    os.path.abspath(__file__)), "..", "..", "shared", "images"),
                    "Folder with tubingen.jpg, starry_night.jpg, "
                    "the_scream.jpg and hoovertowernight.jpg.")
flags.DEFINE_string("output_dir", "docs/images/guided", "Where the figures "
                    "go.")
flags.DEFINE_integer("height", 192, "Height of each picture in a figure.",
                     lower_bound=16)
FLAGS = flags.FLAGS

SKY, TOWN = (0, 0, 255), (255, 0, 0)


def sky_mask(photo: np.ndarray) -> np.ndarray:
  """A two-colour uint8 mask of a photo ``(H, W, 3)`` in [0, 1]: in each
  column, the run of sky-like pixels (blue exceeding red by 0.1 and brighter
  than 0.55) from the top edge is ``SKY``, the rest ``TOWN``."""
  r, b = photo[..., 0], photo[..., 2]
  skyish = (b > r + 0.1) & (b > 0.55)
  top = np.argmin(np.vstack([skyish, np.zeros((1, skyish.shape[1]), bool)]),
                  axis=0)                       # first non-sky row per column
  rows = np.arange(photo.shape[0])[:, None]
  mask = np.empty(photo.shape[:2] + (3,), np.uint8)
  mask[:] = TOWN
  mask[rows < top[None, :]] = SKY
  return mask


def two_halves(top: np.ndarray, bottom: np.ndarray, size: int) -> np.ndarray:
  """A style image ``(size, size, 3)``: the top half of ``top`` over the
  bottom half of ``bottom`` (each centre-cropped to a square first)."""
  def square(a):
    h, w = a.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return io.resize_to(a[y:y + s, x:x + s], (size, size))
  half = size // 2
  return np.concatenate([square(top)[:half], square(bottom)[half:]], axis=0)


def _load(name: str, size: int) -> np.ndarray:
  return io.resize_long_edge(io.load_image(os.path.join(FLAGS.images, name)),
                             size)


def _content_aware(config):
  return config.replace(spec=dict(style=guided.ContentAware(
      clusters=FLAGS.ca_clusters, window=FLAGS.ca_window,
      temperature=FLAGS.ca_temperature, guide_layer=FLAGS.ca_layer)))


def _run(params, content, styles, config, guides=None):
  logging.info("stylize %s", type(config.objective_spec().style).__name__)
  return transfer.stylize(params, content, styles, config, log_every=0,
                          guides=guides).image


def figure_regions(params, config):
  content = _load("tubingen.jpg", FLAGS.size)
  styles = [_load("starry_night.jpg", FLAGS.size),
            _load("the_scream.jpg", FLAGS.size)]
  mask = sky_mask(content)
  io.save_image(os.path.join(FLAGS.output_dir, "tubingen_sky_mask.png"),
                mask.astype(np.float32) / 255.0)
  found = masks.region_guides(mask, [SKY, TOWN], blur=FLAGS.mask_blur)
  masked = config.replace(spec=dict(style=guided.GuidedGram()))
  both = _run(params, content, styles, config)
  result = _run(params, content, styles, masked, found.guides)
  return ([content, mask.astype(np.float32) / 255.0, *styles, both, result],
          ["content", "mask: blue sky, red town", "style: sky",
           "style: town", "no mask (50/50 blend)", "masks"])


def figure_halves(params, config):
  content = _load("tubingen.jpg", FLAGS.size)
  style = two_halves(_load("starry_night.jpg", FLAGS.size),
                     _load("the_scream.jpg", FLAGS.size), FLAGS.size)
  plain = _run(params, content, [style], config)
  aware = _run(params, content, [style], _content_aware(config))
  return ([content, style, plain, aware],
          ["content", "style: two halves", "global Gram",
           f"content-aware (K={FLAGS.ca_clusters}, s={FLAGS.ca_window})"])


def figure_night(params, config):
  content = _load("tubingen.jpg", FLAGS.size)
  style = _load("hoovertowernight.jpg", FLAGS.size)
  plain = _run(params, content, [style], config)
  aware = _run(params, content, [style], _content_aware(config))
  return ([content, style, plain, aware],
          ["content: day", "style: night", "global Gram",
           f"content-aware (K={FLAGS.ca_clusters}, s={FLAGS.ca_window})"])


def palette_image(sheet: np.ndarray) -> Image.Image:
  """A float ``(H, W, 3)`` figure in [0, 1] as a 256-colour palette image
  (Pillow's median cut, Floyd–Steinberg dithering): a third of the bytes of
  an RGB PNG of a photographic sheet, for the README's < 400 KB pictures."""
  rgb = Image.fromarray(io.image_to_uint8(sheet), "RGB")
  return rgb.quantize(256, method=Image.Quantize.MEDIANCUT,
                      dither=Image.Dither.FLOYDSTEINBERG)


def save_palette_png(path: str, sheet: np.ndarray) -> None:
  """``palette_image(sheet)`` written to ``path`` atomically (a temporary
  file beside it, then a rename)."""
  tmp = f"{path}.tmp-{os.getpid()}"
  try:
    palette_image(sheet).save(tmp, "PNG", optimize=True)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


FIGURES = {"regions": figure_regions, "halves": figure_halves,
           "night": figure_night}


def main(argv):
  if len(argv) > 1:
    raise NSTError(f"unexpected arguments: {' '.join(argv[1:])}")
  cli.enable_compilation_cache()
  config = cli.transfer_config()
  params = vgg.load_params(FLAGS.weights or FLAGS.network)
  os.makedirs(FLAGS.output_dir, exist_ok=True)
  names = list(FIGURES) if FLAGS.figure == "all" else [FLAGS.figure]
  for name in names:
    images, labels = FIGURES[name](params, config)
    path = os.path.join(FLAGS.output_dir, f"{name}.png")
    save_palette_png(path, figures.side_by_side(images, labels,
                                                height=FLAGS.height))
    if not FLAGS.quiet:
      print(f"wrote {path}", flush=True)


if __name__ == "__main__":
  cli.run(main)
