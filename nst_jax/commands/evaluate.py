"""``nst-evaluate``: scores stylised results: distance to the content
photo, to the painting, and, for a set, to the painting's patches.

  nst-evaluate --content=photo.jpg --style=painting.jpg \\
      --results=out/a.png,out/b.png [--json=scores.json]
  nst-evaluate --content=photo.jpg --style=painting.jpg \\
      --results=out/grid          # a grid's cells/ (or a folder of images)

(``python scripts/evaluate.py`` runs the same command from a checkout.)

Every image is scored at one size (``--score_size``, long edge, default
256, the same as ``nst-stylize --evaluate``'s; ``--size`` is its deprecated
former name), so results made at different sizes compare. One row per result: LPIPS (VGG-16
and AlexNet heads) and SSIM on luminance to the content, the relative sliced
Wasserstein and Gram distances to the style (VGG-16 relu1_1 … relu5_1); see
:mod:`nst_jax.metrics`. For two or more results, the set's patch Fréchet
distance to the style, a stand-in for ArtFID's FID term (whose art-trained
Inception network cannot be fetched here). ``--json`` writes the same as
JSON (``-``: to stdout instead of the table). Bad input prints one
``error:`` line and exits 1.
"""

import json
import os
import pathlib
import sys
import time

from absl import flags

from nst_jax import cli
from nst_jax import io
from nst_jax import metrics
from nst_jax.commands import _evaluation
from nst_jax.errors import NSTError

cli.define_flags("content", "style", "score_size")
cli.define_deprecated_alias("size", "score_size")   # its name until 2026-12
_RESULTS = flags.DEFINE_list(
    "results", None, "Result images to score, comma-separated; a folder "
    "stands for its images, a grid's output folder for its cells/ (only the "
    "cells of --style when its manifest.json says which).")
_VIA = flags.DEFINE_integer(
    "via", None, "Resize every result to this long edge (at least "
    "--score_size) before scoring it at --score_size, so that results made at different sizes "
    "pass through the same downsampling (nst_jax.metrics.scoring_images); "
    "default: each straight to --score_size. The set's Fréchet distance does not "
    "use it.", lower_bound=1)
_JSON = flags.DEFINE_string("json", None, "Also write the scores as JSON to "
                            "this path ('-': print the JSON instead of the "
                            "table).")
FLAGS = flags.FLAGS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def _same_file(a, b) -> bool:
  try:
    return os.path.samefile(a, b)
  except OSError:
    return os.path.abspath(a) == os.path.abspath(b)


def folder_results(folder: pathlib.Path, style: str) -> list:
  """The result images of ``folder``: a grid's ``cells/`` (those made with
  ``style`` when ``manifest.json`` records each cell's style image), else
  the images in ``folder`` itself, sorted by name."""
  manifest = folder / "manifest.json"
  if manifest.is_file() and (folder / "cells").is_dir():
    try:
      cells = json.loads(manifest.read_text(encoding="utf-8"))["cells"]
      files = [(folder / c["file"], c.get("style_image")) for c in cells]
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise NSTError(f"cannot read {manifest} ({' '.join(str(e).split())}): "
                     "pass the cell images instead") from None
    chosen = [path for path, used in files
              if used is None or _same_file(used, style)]
    if not chosen:
      raise NSTError(f"no cell of {folder} was made with --style {style}: its "
                     "manifest.json lists "
                     f"{', '.join(sorted({str(u) for _, u in files}))}")
    return chosen
  if (folder / "cells").is_dir():
    folder = folder / "cells"
  found = sorted(p for p in folder.iterdir()
                 if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
  if not found:
    raise NSTError(f"no images in {folder}: pass result images or a folder "
                   "that holds them")
  return found


def result_paths(items, style: str) -> list:
  """``--results`` expanded: files as given, folders by
  :func:`folder_results`."""
  paths = []
  for item in items:
    path = pathlib.Path(item)
    paths.extend(folder_results(path, style) if path.is_dir() else [path])
  return [str(p) for p in paths]


def format_table(rows, labels) -> str:
  """The scores as an aligned text table, one row per result."""
  fields = metrics.SCORE_FIELDS
  width = max([len("result"), *map(len, labels)])
  head = f"{'result':<{width}}  " + "  ".join(
      f"{_evaluation.HEADERS[f]:>10}" for f in fields)
  lines = [head, "-" * len(head)]
  for label, row in zip(labels, rows):
    lines.append(f"{label:<{width}}  " + "  ".join(
        f"{row[f]:>10.4f}" for f in fields))
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise NSTError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not FLAGS.content or not FLAGS.style or not _RESULTS.value:
    raise NSTError("--content, --style and --results are required")
  if len(FLAGS.style) != 1:
    raise NSTError(f"--style takes one style image, got {len(FLAGS.style)}: "
                   "score each style's results separately")
  size = FLAGS.score_size
  if _VIA.value is not None and _VIA.value < size:   # before loading
    raise NSTError(f"--via must be at least the scoring size {size}, "
                   f"got {_VIA.value}")
  style_path = FLAGS.style[0]
  paths = result_paths(_RESULTS.value, style_path)
  content = io.load_image(FLAGS.content)
  style = io.load_image(style_path)
  results = [io.load_image(p) for p in paths]
  cli.enable_compilation_cache()
  nets = metrics.load_metric_networks()
  rows = _evaluation.result_records(nets, content, style, results,
                                    size=size, via=_VIA.value)
  set_scores = _evaluation.set_record(nets, style, results, size=size)
  record = {
      "content": FLAGS.content, "style": style_path, "size": size,
      "via": _VIA.value, "fields": _evaluation.FIELDS,
      "results": [{"image": p, **row} for p, row in zip(paths, rows)],
      "set": set_scores, "device": cli.device_description(),
      "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
  }
  if _JSON.value == "-":
    json.dump(record, sys.stdout, indent=2)
    print()
    return
  print(f"scored at {size} px"
        + (f" (each result through {_VIA.value} px)" if _VIA.value else "")
        + f" against content {FLAGS.content} and "
        f"style {style_path}")
  print(format_table(rows, paths))
  for field, text in _evaluation.FIELDS.items():
    print(f"  {_evaluation.HEADERS[field]}: {text}")
  if set_scores:
    print(f"set of {set_scores['count']} results: patch Fréchet distance "
          f"{set_scores['frechet']:.4f}")
    print(f"  {_evaluation.SET_NOTE}")
  if _JSON.value:
    io.save_json(_JSON.value, record,
                 protect=[FLAGS.content, style_path, *paths])
    print(f"wrote {_JSON.value}")


def run():
  """The ``nst-evaluate`` console command (and ``scripts/evaluate.py``)."""
  cli.run(main)


if __name__ == "__main__":
  run()
