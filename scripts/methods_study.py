"""Gatys, STROTSS and NNST side by side, and beside the official code
(issue 26, items 3 and 4).

Runs every ``--methods`` method (``nst_jax.methods``, each with its defaults:
Gatys as ``nst-stylize`` runs it on this device, STROTSS and NNST with the
official settings) on every ``--pairs`` content:style pair at ``--size``,
once per ``--seeds`` seed (STROTSS and NNST draw positions from it; Gatys is
deterministic and runs once), and scores each result with ``nst_jax.metrics``
at ``--score_size``: the style distances (relative sliced Wasserstein and
Gram) and LPIPS-VGG to the content. Seconds are the process's CPU seconds
(all threads, compilation included) and wall seconds.

Results of the official implementations, run by hand (their code is never
part of nst_jax), are read from ``--official_dir``: ``{pair}_{method}_s{seed}
.png`` with an optional ``.json`` beside it (``{"cpu_seconds": …,
"wall_seconds": …, "command": …}``). For each pair and method the script
then measures how close our picture is to the official one — LPIPS between
the two pictures — against how far two seeds of one implementation land
from each other (ours, and the official's when two seeds are there): "the
same look" is ours-to-official no larger than seed-to-seed.

  python scripts/methods_study.py --output_dir=out/methods \\
      --pairs=../shared/images/tubingen.jpg:../shared/images/starry_night.jpg \\
      --methods=gatys,strotss,nnst --size=256 --seeds=0,1 \\
      --official_dir=out/official --sheet=out/methods/sheet.png

Finished results (their PNG present, with their size and iterations in the
JSON beside it) are scored again, not re-run, so an interrupted study
continues where it stopped; one made with another size or iterations is run
again. Writes ``study.json`` and
prints one JSON line per result and a Markdown table. Bad input: one line,
exit 1.
"""

import itertools
import json
import os
import time

from absl import flags
import jax.numpy as jnp
import numpy as np

from nst_jax import cli
from nst_jax import figures
from nst_jax import io
from nst_jax import methods
from nst_jax import metrics
from nst_jax import vgg
from nst_jax.errors import NSTError

import bench_common as bm  # siblings in scripts/

_PAIRS = flags.DEFINE_list("pairs", None, "content:style image pairs.")
_METHODS = flags.DEFINE_list("methods", ["gatys", "strotss", "nnst"],
                             "Methods to run (nst_jax.methods.METHODS).")
_SIZE = flags.DEFINE_integer("size", 256, "Output long edge.")
_SEEDS = flags.DEFINE_list("seeds", ["0"], "Seeds of STROTSS and NNST.")
_SCORE = flags.DEFINE_integer("score_size", metrics.SCORE_SIZE,
                              "Long edge every image is scored at.")
_OUT = flags.DEFINE_string("output_dir", "out/methods", "Where results and "
                           "study.json go.")
_OFFICIAL = flags.DEFINE_string("official_dir", None, "Folder of the "
                                "official implementations' results "
                                "({pair}_{method}_s{seed}.png [+ .json]).")
_SHEET = flags.DEFINE_string("sheet", None, "Also write a sheet: one row per "
                             "pair, the content, every result and the style.")
_ITERATIONS = flags.DEFINE_integer(
    "iterations", 0, "Iterations of each level (Gatys: in all); 0: each "
    "method's own (Gatys: the command's default on this device).")
_SCORE_ONLY = flags.DEFINE_bool("score_only", False, "Score what is in "
                                "--output_dir; run nothing.")


def parse_pairs(items):
  """``[(content, style)]`` from ``content:style`` items."""
  return bm.parse_pairs(items)


def pair_name(content_path: str, style_path: str) -> str:
  return f"{bm.stem(content_path)}+{bm.stem(style_path)}"


def method_for(name: str, size: int, seed: int, iterations: int,
               level_iterations: int = 0):
  """The method ``name`` with its defaults at ``size``: Gatys as the command
  runs it on this device (``iterations``: ``cli.device_defaults``), STROTSS
  and NNST with their official settings and ``seed``; ``level_iterations``
  (> 0) replaces every level's iterations (Gatys': all of them)."""
  if name == "gatys":
    return methods.method("gatys", config=dict(solver=dict(
        maxiter=level_iterations or iterations)))
  changes = ({"settings": dict(iterations=level_iterations)}
             if level_iterations else {})
  return methods.method(name, size=size, seed=seed, **changes)


def run_one(params, content, style, m, size: int):
  """``(image, cpu_seconds, wall_seconds)`` of method ``m`` (Gatys paints
  the content resized to ``size``; the others resize per level)."""
  if isinstance(m, methods.Gatys):
    content = io.resize_to(content, io.long_edge_shape(content.shape[:2],
                                                       size))
  cpu, wall = time.process_time(), time.perf_counter()
  result = methods.paint(params, content, [style], m, log_every=0)
  image = np.asarray(result.image)
  return (image, time.process_time() - cpu, time.perf_counter() - wall)


def _lpips(net, a, b, size):
  """LPIPS-VGG between two pictures, each resized to ``size`` (long edge;
  the second to the first's shape)."""
  a = io.resize_long_edge(a, size)
  b = io.resize_to(b, a.shape[:2])
  return float(metrics.lpips(net, jnp.asarray(a)[None],
                             jnp.asarray(b)[None])[0])


def closeness(net, rows, size):
  """Per pair and method: LPIPS of our first seed's picture to the
  official one (same seed index where there is one), and between two seeds
  of ours and of the official's — the spread of the method itself."""
  out = []
  key = lambda r: (r["pair"], r["method"])
  for (pair, name), group in itertools.groupby(sorted(rows, key=key), key):
    group = list(group)
    ours = sorted((r for r in group if r["implementation"] == "nst_jax"),
                  key=lambda r: r["seed"])
    theirs = sorted((r for r in group if r["implementation"] == "official"),
                    key=lambda r: r["seed"])
    load = lambda r: io.load_image(r["image"])
    entry = {"pair": pair, "method": name}
    if ours and theirs:
      entry["ours_to_official"] = _lpips(net, load(ours[0]), load(theirs[0]),
                                         size)
    if len(ours) > 1:
      entry["ours_seed_to_seed"] = _lpips(net, load(ours[0]), load(ours[1]),
                                          size)
    if len(theirs) > 1:
      entry["official_seed_to_seed"] = _lpips(net, load(theirs[0]),
                                              load(theirs[1]), size)
    if len(entry) > 2:
      out.append(entry)
  return out


def table(rows, close) -> str:
  """The Markdown table of the study: one line per result."""
  lines = ["| pair | method | implementation | seed | CPU s | wall s | "
           "SWD | Gram | LPIPS to content |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
  num = lambda v, f: "–" if v is None else format(v, f)
  for r in rows:
    lines.append(f"| {r['pair']} | {r['method']} | {r['implementation']} | "
                 f"{r['seed']} | {num(r['cpu_seconds'], '.0f')} | "
                 f"{num(r['wall_seconds'], '.0f')} | {r['swd']:.3f} | "
                 f"{r['gram']:.3f} | {r['lpips_vgg']:.3f} |")
  if close:
    lines += ["", "| pair | method | LPIPS ours–official | ours seed–seed | "
              "official seed–seed |", "| --- | --- | --- | --- | --- |"]
    for c in close:
      lines.append(f"| {c['pair']} | {c['method']} | "
                   f"{num(c.get('ours_to_official'), '.3f')} | "
                   f"{num(c.get('ours_seed_to_seed'), '.3f')} | "
                   f"{num(c.get('official_seed_to_seed'), '.3f')} |")
  return "\n".join(lines)


def sheet(rows, pairs):
  """One row per pair: the content, each result (first seed; white where
  a pair has none), the style."""
  columns = list(dict.fromkeys((r["method"], r["implementation"])
                               for r in rows))
  cells, labels = [], []
  for content_path, style_path in pairs:
    pair = pair_name(content_path, style_path)
    by = {}
    for r in rows:
      if r["pair"] == pair:
        by.setdefault((r["method"], r["implementation"]), r)
    if not by:
      continue
    content = io.load_image(content_path)
    blank = np.ones_like(io.resize_long_edge(content, _SIZE.value))
    cells.append([content] + [io.load_image(by[c]["image"]) if c in by
                              else blank for c in columns]
                 + [io.load_image(style_path)])
    labels.append(pair)
  return figures.contact_sheet(
      cells, labels, ["content"] + [
          m if impl == "nst_jax" else f"{m} (official)"
          for m, impl in columns] + ["style"])


def _read_json(path):
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise NSTError(f"cannot read {path}: {e}") from None


def _official_rows(pairs, names):
  """The official results found in ``--official_dir``."""
  found = []
  if not _OFFICIAL.value:
    return found
  for content_path, style_path in pairs:
    pair = pair_name(content_path, style_path)
    for name in names:
      for seed in _SEEDS.value:
        path = os.path.join(_OFFICIAL.value, f"{pair}_{name}_s{seed}.png")
        if not os.path.exists(path):
          continue
        side = path[:-4] + ".json"
        info = _read_json(side) if os.path.exists(side) else {}
        found.append((content_path, style_path, pair, name, int(seed), path,
                      info.get("cpu_seconds"), info.get("wall_seconds")))
  return found


def main(argv):
  del argv
  pairs = parse_pairs(_PAIRS.value)
  for name in _METHODS.value:
    if name not in methods.METHODS:
      raise NSTError(f"--methods: {name!r} is not one of "
                     f"{', '.join(methods.METHODS)}")
  try:
    seeds = [int(s) for s in _SEEDS.value]
  except ValueError:
    raise NSTError(f"--seeds: integers, got {','.join(_SEEDS.value)}"
                   ) from None
  if _SHEET.value and not _SHEET.value.endswith(".png"):
    raise NSTError(f"--sheet={_SHEET.value}: sheets are written as PNG")
  os.makedirs(_OUT.value, exist_ok=True)
  params = vgg.load_params("vgg16")
  nets = metrics.load_metric_networks()
  _, iterations = cli.device_defaults()
  jobs = []
  for (content_path, style_path), name in itertools.product(pairs,
                                                            _METHODS.value):
    for seed in (seeds[:1] if name == "gatys" else seeds):
      pair = pair_name(content_path, style_path)
      path = os.path.join(_OUT.value, f"{pair}_{name}_s{seed}.png")
      jobs.append((content_path, style_path, pair, name, seed, path))
  rows = []
  todo = [(*job, "nst_jax") for job in jobs] + [
      (*found[:6], "official", found[6:]) for found in
      _official_rows(pairs, _METHODS.value)]
  for item in todo:
    content_path, style_path, pair, name, seed, path, implementation = \
        item[:7]
    content, style = io.load_image(content_path), io.load_image(style_path)
    cpu = wall = None
    if implementation == "official":
      cpu, wall = item[7]
    else:
      side = path[:-4] + ".json"
      info = _read_json(side) if os.path.exists(side) else {}
      done = os.path.exists(path) and all(
          info.get(k, v) == v for k, v in (("size", _SIZE.value),
                                           ("iterations", _ITERATIONS.value)))
      if done:
        cpu, wall = info.get("cpu_seconds"), info.get("wall_seconds")
      elif _SCORE_ONLY.value:
        continue
      else:
        m = method_for(name, _SIZE.value, seed, iterations,
                       _ITERATIONS.value)
        image, cpu, wall = run_one(params, content, style, m, _SIZE.value)
        io.save_image(path, image)
        io.save_json(side, {"cpu_seconds": cpu, "wall_seconds": wall,
                            "size": _SIZE.value,
                            "iterations": _ITERATIONS.value})
    image = io.load_image(path)
    scores = metrics.score(nets, content, style, [image], size=_SCORE.value)
    row = {"pair": pair, "method": name, "implementation": implementation,
           "seed": seed, "image": path, "size": max(image.shape[:2]),
           "cpu_seconds": cpu, "wall_seconds": wall,
           **{k: float(v[0]) for k, v in scores.items()}}
    rows.append(row)
    print(json.dumps(row), flush=True)
  close = closeness(nets.vgg, rows, _SCORE.value)
  record = {"size": _SIZE.value, "score_size": _SCORE.value,
            "iterations": _ITERATIONS.value,
            "gatys_iterations": _ITERATIONS.value or iterations,
            "device": cli.device_description(),
            "runs": rows, "closeness": close}
  io.save_json(os.path.join(_OUT.value, "study.json"), record)
  if _SHEET.value:
    io.save_image(_SHEET.value, sheet(rows, pairs))
  print(table(rows, close), flush=True)


if __name__ == "__main__":
  cli.run(main)
