"""Chooses the default style weight β by measurement (issue 12, "size-independent
defaults").

Runs the default transfer (VGG-16, Gram, L-BFGS, content init) for every
``--pairs`` content:style pair at every ``--style_weights`` β and every
``--sizes`` size, scores each result with :mod:`nst_jax.metrics` at one size
(``--score_size``: relative sliced Wasserstein and Gram distances to the
style, LPIPS-VGG to the content), scores the published reference pictures the
same way, and writes ``calibration.json`` and the curve of both metrics
against β (``calibration.png``)::

  python scripts/calibrate.py --output_dir=out/calibrate \\
      --pairs=shared/images/tubingen.jpg:shared/images/starry_night.jpg \\
      --style_weights=100,200,400,800 --sizes=256 --iterations=300

Finished runs (their PNG present) are scored again, not re-run, so an
interrupted sweep continues where it stopped. Bad input: one line, exit 1.
"""

import json
import os
import time

from absl import flags
import jax.numpy as jnp
import numpy as np

from nst_jax import cli
from nst_jax import figures
from nst_jax import io
from nst_jax import metrics
from nst_jax import targets
from nst_jax import transfer
from nst_jax import vgg

import bench_common as bm  # siblings in scripts/

_PAIRS = flags.DEFINE_list(
    "pairs", None, "content:style image pairs, comma-separated "
    "(a style may carry a published reference picture as "
    "content:style:reference).")
_BETAS = flags.DEFINE_list("style_weights", ["100", "200", "400", "800"],
                           "β values of the sweep.")
_SIZES = flags.DEFINE_list("sizes", ["256"], "Output long edges.")
_ITERATIONS = flags.DEFINE_integer("iterations", 300, "L-BFGS iterations.")
_SCORE = flags.DEFINE_integer("score_size", metrics.SCORE_SIZE,
                              "Long edge every image is scored at.")
_OUT = flags.DEFINE_string("output_dir", "out/calibrate", "Where results, "
                           "calibration.json and calibration.png go.")
_INVARIANT = flags.DEFINE_bool("size_invariant", True, "Spec.size_invariant "
                               "of the runs.")
_CHOSEN = flags.DEFINE_float("chosen", None, "β to mark on the curve.")
_SCORE_ONLY = flags.DEFINE_bool("score_only", False, "Score the results "
                                "already in --output_dir; run nothing.")
_NORM_BETAS = flags.DEFINE_list(
    "normalized_style_weights", [], "β values run (besides --style_weights) "
    "with each painting's style term divided by its own scale "
    "(--normalize_style, LossWeights.normalize_style); their results' names "
    "end in _n.")
_SHEET = flags.DEFINE_string("sheet", None, "Also write a contact sheet of "
                             "every result (rows: pairs, columns: β and "
                             "size) to this path.")


def curve_figure(record, chosen=None):
  """Style distances and LPIPS against β, one series per pair, the
  reference pictures' scores as dashed lines: float32 ``(H, W, 3)``."""
  pairs = list(dict.fromkeys(r["pair"] for r in record["runs"]))
  panels = []
  for key, label in (("swd", "style SWD (lower: more stylised)"),
                     ("gram", "Gram distance"),
                     ("lpips_vgg", "LPIPS-VGG to the content")):
    series = []
    for pair in pairs:
      for size in sorted({r["size"] for r in record["runs"]}):
        runs = sorted((r for r in record["runs"]
                       if r["pair"] == pair and r["size"] == size),
                      key=lambda r: r["style_weight"])
        if runs:
          series.append(figures.Series(
              pair if size == record["runs"][0]["size"] else
              f"{pair} {size}px", [r["style_weight"] for r in runs],
              [r[key] for r in runs]))
    hlines = [(ref[key], "published (Lua)", ref["pair"])
              for ref in record["references"]]
    panels.append(figures.Panel(series, "style weight (beta)", label,
                                log_x=True, hlines=hlines,
                                marks=[(chosen, f"chosen {chosen:g}")]
                                if chosen else ()))
  return figures.metric_panels(panels, width=1200, height=420)


_stem = bm.stem


def parse_pairs(items):
  """``[(content, style, reference | None)]`` from ``content:style[:ref]``."""
  return bm.parse_pairs(items, extra="reference")


def run_one(params, content_path, style_path, beta, size, iterations,
            invariant, normalize=False):
  """The default transfer of one pair at ``size`` with style weight ``beta``
  (``normalize``: ``LossWeights.normalize_style``); ``(image, seconds)``."""
  content = io.resize_long_edge(io.load_image(content_path), size)
  style = io.resize_long_edge(io.load_image(style_path), size)
  config = transfer.TransferConfig().replace(
      weights=dict(style=float(beta), normalize_style=normalize),
      solver=dict(maxiter=iterations), spec=dict(size_invariant=invariant))
  start = time.perf_counter()
  result = transfer.stylize(params, content, [style], config, log_every=0)
  return np.asarray(result.image), time.perf_counter() - start


def style_scale(params, style, size) -> float:
  """The painting's own scale ``n_s`` (``targets.style_scales``) under the
  default spec, its long edge at ``size``: what ``--normalize_style``
  divides its style term by."""
  spec = transfer.TransferConfig().objective_spec()
  style = jnp.asarray(io.resize_long_edge(style, size))
  plain = targets.make_targets(params, style, [style], spec)
  scaled = targets.make_targets(params, style, [style], spec,
                                normalize_style=True)
  return float(plain.style_blend[0] / scaled.style_blend[0])


def _setting(row):
  return row["size"], row["style_weight"], row["normalize_style"]


def spread(rows):
  """For each setting (size, β, normalised or not): the largest over the
  smallest style distance (SWD and Gram) and LPIPS across the pairs — how
  unequally one β paints the paintings (issue 26, item 5: target at most
  1.5)."""
  out = []
  for setting in dict.fromkeys(map(_setting, rows)):
    group = [r for r in rows if _setting(r) == setting]
    entry = {"size": setting[0], "style_weight": setting[1],
             "normalize_style": setting[2], "pairs": len(group)}
    for key in ("swd", "gram", "lpips_vgg"):
      values = [r[key] for r in group]
      entry[key] = max(values) / min(values)
    out.append(entry)
  return out


def results_sheet(rows, pairs):
  """Every result, one row per pair with all its settings, one column per
  setting (size, β, normalised) and the style image last (drawn at the
  results' aspect ratio): float32 ``(H, W, 3)``."""
  columns = list(dict.fromkeys(map(_setting, rows)))
  cells, labels = [], []
  for content_path, style_path, _ in pairs:
    pair = f"{_stem(content_path)}+{_stem(style_path)}"
    by = {_setting(r): r for r in rows if r["pair"] == pair}
    if all(c in by for c in columns):
      cells.append([io.load_image(by[c]["image"]) for c in columns]
                   + [io.load_image(style_path)])
      labels.append(_stem(style_path))
  return figures.contact_sheet(
      cells, labels, [f"{s}px b={b:g}{' norm' if n else ''}"
                      for s, b, n in columns] + ["style"])


def main(argv):
  del argv
  pairs = parse_pairs(_PAIRS.value)
  settings = ([(float(b), False) for b in _BETAS.value]
              + [(float(b), True) for b in _NORM_BETAS.value])
  sizes = [int(s) for s in _SIZES.value]
  os.makedirs(_OUT.value, exist_ok=True)
  params = vgg.load_params("vgg16")
  nets = metrics.load_metric_networks()
  rows, references = [], []
  for content_path, style_path, reference in pairs:
    content, style = io.load_image(content_path), io.load_image(style_path)
    pair = f"{_stem(content_path)}+{_stem(style_path)}"
    if reference:
      scores = metrics.score(nets, content, style, [io.load_image(reference)],
                             size=_SCORE.value)
      references.append({"pair": pair, "image": reference,
                         **{k: float(v[0]) for k, v in scores.items()}})
    for size in sizes:
      for beta, normalize in settings:
        path = os.path.join(_OUT.value, f"{pair}_{size}_b{beta:g}"
                            f"{'_n' if normalize else ''}.png")
        seconds = None
        if os.path.exists(path):
          image = io.load_image(path)
        elif _SCORE_ONLY.value:
          continue
        else:
          image, seconds = run_one(params, content_path, style_path, beta,
                                   size, _ITERATIONS.value, _INVARIANT.value,
                                   normalize)
          io.save_image(path, image)
        scores = metrics.score(nets, content, style, [image],
                               size=_SCORE.value)
        row = {"pair": pair, "size": size, "style_weight": beta,
               "normalize_style": normalize, "seconds": seconds,
               "image": path,
               "style_scale": style_scale(params, style, size),
               **{k: float(v[0]) for k, v in scores.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
  record = {"iterations": _ITERATIONS.value, "score_size": _SCORE.value,
            "size_invariant": _INVARIANT.value, "runs": rows,
            "references": references, "spread": spread(rows)}
  print(json.dumps({"spread": record["spread"]}), flush=True)
  if _SHEET.value:
    io.save_image(_SHEET.value, results_sheet(rows, pairs))
  io.save_json(os.path.join(_OUT.value, "calibration.json"), record)
  plain = [r for r in rows if not r["normalize_style"]]
  if plain:
    io.save_image(os.path.join(_OUT.value, "calibration.png"), curve_figure(
        {**record, "runs": plain}, _CHOSEN.value))


if __name__ == "__main__":
  cli.run(main)
