"""``nst-grid``: runs a whole grid of style transfers as one batched, sharded program.

  nst-grid --content=photo.jpg --style=a.jpg,b.jpg \\
      --style_weight=1e6,1e7 --seed=0,1 --init=noise --output_dir=out/grid

(``python scripts/style_grid.py`` runs the same command from a checkout.)
The flags are nst-stylize's (one definition in ``nst_jax.cli``); a flag given
several values becomes an axis of the grid (the cells are the Cartesian
product): the style images, --style_layers sets, --style_layer_weights,
--content_weight, --style_weight, --tv_weight and --seed. Style
representation, colour control and style patches apply to every cell;
--style_blend_weights is refused (a cell has one style image). Layer sets are
separated by ';' (--style_layers="relu1_1;relu1_1,relu2_1"). --preset
gatys_fig3 reproduces Gatys et al. (2016) Fig. 3 for any content/style pair:
rows style from conv1_1 up to conv5_1, columns α/β = 1e-5 … 1e-2.

Writes --output_dir/sheet.png (labelled contact sheet with the content and
style images in the margin), cells/cell_NNN.png and manifest.json (each
cell's parameters, final loss terms, iterations and evaluations). All cells run
in one jit-compiled, vmap-batched loop sharded over every local device (and
over several hosts with --coordinator_address/--num_processes/--process_id).
--evaluate scores each cell into the manifest (nst_jax.metrics; per style,
the set's patch Fréchet distance too).
"""

import dataclasses
import pathlib
import sys
import time

import jax
import numpy as np
from absl import flags
from absl import logging

from nst_jax import cli
from nst_jax import figures
from nst_jax import grid
from nst_jax import io
from nst_jax import transfer
from nst_jax import vgg
from nst_jax.commands import _evaluation
from nst_jax.errors import NSTError

_SHARED = cli.define_flags("images", "model", "loss", "representation", "solver",
                           "init", "color", "compute", "output", "masks",
                           "evaluation", "schedule")
flags.DEFINE_string("output_dir", "out/grid", "Receives sheet.png, cells/, "
                    "manifest.json.")
flags.DEFINE_integer("log_every", 0, "Also log the range of the cells' "
                     "losses every N iterations (0: never).", lower_bound=0)
# Its name before --log_every (one meaning in every command: the loss log's
# period; nst-stylize's --print_every was already that alias).
cli.define_deprecated_alias("print_every", "log_every")
flags.DEFINE_enum("preset", None, ["gatys_fig3"], "A published grid.")
flags.DEFINE_integer("chunk_size", None, "Cells per compiled run (default: "
                     "what fits in 60% of the devices' memory).", lower_bound=1)
cli.define_flags("distributed")   # not recorded: a re-run joins no one
flags.DEFINE_bool("evaluate", False, "Score every cell into manifest.json "
                  "(nst_jax.metrics at --score_size: LPIPS and SSIM to the "
                  "content, "
                  "style distances to the cell's style; per style with 2 or "
                  "more cells, the set's patch Fréchet distance).")
FLAGS = flags.FLAGS
_RECORDED = _SHARED + ["output_dir", "log_every", "preset", "chunk_size",
                       "evaluate"]


# The axes a preset sets: giving them too would be silently ignored.
_PRESET_AXES = ("content_weight", "style_weight", "tv_weight", "style_layers",
                "style_layer_weights")


def _axes(config):
  if FLAGS.preset == "gatys_fig3":
    given = [f"--{n}" for n in _PRESET_AXES if FLAGS[n].present]
    if given:
      raise NSTError(f"--preset=gatys_fig3 sets its own axes: drop "
                     f"{', '.join(given)}")
    axes = grid.gatys_fig3_axes(config.network)
    return dataclasses.replace(axes, style=tuple(range(len(FLAGS.style))),
                               seed=FLAGS.seed)
  return cli.grid_axes(config, len(FLAGS.style))


def _label(name, value, styles):
  if name == "style":
    return pathlib.Path(styles[value]).stem
  if name == "style_weight" and FLAGS.preset == "gatys_fig3":
    from nst_jax import grid  # pylint: disable=g-import-not-at-top
    return f"a/b={grid.GATYS_SCALE / value:.0e} (beta {value:.0e})"
  return figures.cell_label(name, value)


def _sheet(axes, result, content, styles, style_paths, title):
  return figures.grid_sheet(
      result.images, dataclasses.asdict(axes),
      label=lambda name, value: _label(name, value, style_paths),
      title=title, margin_images=[content, *styles],
      margin_labels=["content", *(pathlib.Path(p).stem for p in style_paths)])


def _evaluate_cells(cells, images):
  """Adds each cell's ``"evaluation"`` (``_evaluation.result_records``
  against the original content and the cell's style image) and returns the
  grid's: the size and, per style with two or more cells, the set's
  patch Fréchet distance."""
  from nst_jax import metrics  # pylint: disable=g-import-not-at-top
  nets = metrics.load_metric_networks()
  content = io.load_image(FLAGS.content)
  sets = {}
  for index, path in enumerate(FLAGS.style):
    chosen = [k for k, cell in enumerate(cells) if cell["style"] == index]
    if not chosen:
      continue
    style = io.load_image(path)
    results = [np.asarray(images[k]) for k in chosen]
    records = _evaluation.result_records(nets, content, style, results,
                                         size=FLAGS.score_size)
    for k, record in zip(chosen, records):
      cells[k]["evaluation"] = record
    scored = _evaluation.set_record(nets, style, results,
                                    size=FLAGS.score_size)
    if scored:
      sets[path] = scored
  return {"size": FLAGS.score_size, "fields": _evaluation.FIELDS,
          "sets": sets}


def main(argv):
  if len(argv) > 1:
    raise NSTError(f"unexpected arguments: {' '.join(argv[1:])}")
  cli.join_processes()
  if not FLAGS.content or not FLAGS.style:
    raise NSTError("--content and --style are required")
  if FLAGS.preset == "gatys_fig3" and not FLAGS["init"].present:
    FLAGS.init = "noise"  # the paper's figure starts from white noise
  defaults_message = cli.resolve_device_defaults()
  config = cli.transfer_config(grid=True)
  axes = _axes(config)
  cells = axes.cells()
  out = pathlib.Path(FLAGS.output_dir)
  inputs = [FLAGS.content, *FLAGS.style,
            *[p for p in [FLAGS.content_mask, *(FLAGS.style_masks or [])]
              if p]]
  # nst-stylize's levels (config.schedule): one level takes the styles at
  # the output's style size, several resize them at every level
  # (grid.run_cells).
  levels = config.schedule.levels(FLAGS.size, FLAGS.iterations)
  size = levels[-1][0]
  content = io.load_image(FLAGS.content)
  shape = io.long_edge_shape(content.shape[:2], size)
  content = io.resize_to(content, shape)
  styles = [io.load_image(p) for p in FLAGS.style]
  if len(levels) == 1:
    styles = [io.resize_long_edge(s, transfer.style_size(
        size, config.schedule.style_scale)) for s in styles]
  # each cell: the regions of its style image
  guides = cli.load_masks(shape, [s.shape[:2] for s in styles])
  params = vgg.load_params(FLAGS.weights or FLAGS.network)
  say = (lambda *a, **k: None) if FLAGS.quiet else print
  if FLAGS.quiet:
    logging.set_verbosity(logging.WARNING)
  if defaults_message:
    say(defaults_message)
  say(f"nst_jax grid: {len(cells)} cells ({' x '.join(axes.varying()) or 'one'}"
        f"), {shape[1]}x{shape[0]}, "
        + ", ".join(f"{s} px: {n} iterations" for s, n in levels)
        + f", {FLAGS.optimizer}, on {cli.device_description()}", flush=True)

  def on_log(iteration, totals):
    logging.info("iteration %5d  loss per cell %.4g .. %.4g", iteration,
                 totals.min(), totals.max())

  def on_chunk(done, total):
    if done < total:
      logging.info("%d/%d cells done", done, total)

  bars = {}
  level = {"size": None}
  def on_level_start(index, size, iterations):
    del index, iterations
    for bar in bars.values():
      bar.close()
    bars.clear()
    level["size"] = size

  def on_progress(first, p):
    # One bar per level and chunk of cells (its Progress counts the
    # level's iterations, p.iterations of them).
    if first not in bars:
      for bar in bars.values():
        bar.close()
      bars.clear()
      label = (f"{len(cells)} cells" if first == 0 else
               f"cells {first + 1}…/{len(cells)}")
      if len(levels) > 1:
        label = f"{level['size']} px, {label}"
      bars[first] = cli.ProgressBar(p.iterations or FLAGS.iterations,
                                    label=label, quiet=FLAGS.quiet)
    values = np.asarray(p.value)
    bars[first].update(p.iteration, value=float(np.nanmin(values)))

  stopper = cli.StopOnInterrupt()
  with stopper:
    try:
      result = grid.style_grid(params, content, styles, axes, config,
                               chunk_size=FLAGS.chunk_size,
                               log_every=FLAGS.log_every, on_log=on_log,
                               on_chunk=on_chunk,
                               on_progress=None if FLAGS.quiet else on_progress,
                               should_stop=stopper.stop_requested,
                               guides=guides, on_level_start=on_level_start)
    finally:
      for bar in bars.values():
        bar.close()
  stopped = sum(s == "interrupted" for s in result.status)
  if jax.process_index() != 0:   # process 0 writes; the others agree on 130
    if stopped:
      sys.exit(130)
    return
  manifest = {
      "params": cli.flag_values(_RECORDED),
      "config": io.to_jsonable(dataclasses.asdict(config)),
      "style_representation": repr(config.objective_spec().style),
      "cells": [], "wall_seconds": result.wall_seconds,
      "devices": result.devices, "chunks": result.chunks,
      "device": cli.device_description(),
      "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
  }
  for k, cell in enumerate(result.cells):
    path = out / "cells" / f"cell_{k:03d}.png"
    io.save_image(path, result.images[k], protect=inputs)
    manifest["cells"].append({
        "file": str(path.relative_to(out)),
        "style_image": FLAGS.style[cell["style"]], **cell,
        "final": result.terms[k], "iterations": int(result.iterations[k]),
        "function_evaluations": int(result.function_evaluations[k]),
        "stop_reason": result.status[k]})
  if FLAGS.evaluate:
    manifest["evaluation"] = _evaluate_cells(manifest["cells"], result.images)
  title = ("Gatys et al. (2016) Fig. 3: rows style layers, columns a/b"
           if FLAGS.preset == "gatys_fig3" else None)
  io.save_image(out / "sheet.png",
                _sheet(axes, result, content, styles, FLAGS.style, title),
                protect=inputs)
  io.save_json(out / "manifest.json", manifest, protect=inputs)
  if stopped:
    say(f"interrupted: {stopped} of {len(cells)} cells stopped early "
        "(see stop_reason in manifest.json)")
  say(f"wrote {out}/sheet.png, {len(cells)} cells and manifest.json in "
        f"{result.wall_seconds:.1f} s ({result.devices} device(s), "
        f"{result.chunks} chunk(s))")
  if stopped:
    sys.exit(130)


def run():
  """The ``nst-grid`` console command."""
  cli.run(main)


if __name__ == "__main__":
  run()
