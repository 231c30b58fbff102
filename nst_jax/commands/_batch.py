"""``nst-stylize --output_dir``: folders of photos, every content × every style.

  nst-stylize --content=photos/ --style="paintings/*.jpg" --output_dir=out/

``--content`` and ``--style`` each take a folder, a glob or a comma list
(``nst_jax.batch.find_images``); a flag given several values (β, seeds, layer
sets, as for ``nst-grid``) multiplies the results. Writes
``out/<content>_<style>.png`` (with ``_<axis>-<value>`` for each such axis)
and beside each its JSON record — the record of the single ``nst-stylize``
run that makes it, so ``--from_json=out/a_b.json`` runs it again alone — and
``out/batch.json``: every result's status, the unreadable inputs, the
buckets (one compiled program per content shape) and the speed.

Thin layer over ``nst_jax.batch.stylize_batch``: the network is loaded once,
contents resized to ``--size`` are grouped by shape, each group runs as one
batched program, and results are written as their chunk finishes. Running
the same command again skips every result whose PNG and record exist with
the same parameters and input files (sha256), so an interrupted batch
resumes. An unreadable input is reported in one line and in batch.json, the
others still run, and the exit status is 1 at the end.
"""

import dataclasses
import json
import os
import pathlib
import sys
import time
from typing import Dict, List, Sequence

from absl import flags

from nst_jax import batch
from nst_jax import cli
from nst_jax import io
from nst_jax import transfer
from nst_jax import vgg
from nst_jax import weights
from nst_jax.errors import NSTError

FLAGS = flags.FLAGS

# Flags of a single run that a batch cannot honour (refused when given).
NOT_IN_BATCH = ("output", "save_every", "plot", "sheet", "from_json",
                "resume", "style_blend_weights", "evaluate", "score_size",
                "content_mask", "style_masks", "style_colors")
# Recorded flags that change nothing in a result: a record that differs only
# in them is still a finished result. (A batch paints coarse to fine like
# nst-stylize, so --pyramid_base, --scales and --style_scale are compared.)
NOT_COMPARED = ("quiet", "log_every", "output_dir")


def names_several(content: str) -> bool:
  """Whether ``--content`` names a folder, a glob or a comma list rather
  than one file."""
  if os.path.isfile(content):
    return False
  return os.path.isdir(content) or "," in content or any(
      ch in content for ch in "*?[")


def _check_output_dir(out: pathlib.Path, inputs: Sequence[str]) -> None:
  """Refuses an output folder that is a file, is not writable, or holds an
  input image (results would overwrite or join the inputs)."""
  if out.exists() and not out.is_dir():
    raise NSTError(f"--output_dir {out} is a file, not a folder")
  existing = out.absolute()
  while not existing.exists():
    existing = existing.parent
  if not existing.is_dir() or not os.access(existing, os.W_OK):
    raise NSTError(f"cannot write to --output_dir {out}: {existing} is not a "
                   "writable folder")
  if out.is_dir():
    for path in inputs:
      folder = os.path.dirname(os.path.abspath(path))
      if os.path.isdir(folder) and os.path.samefile(folder, out):
        raise NSTError(f"--output_dir {out} holds the input image {path}: "
                       "results would overwrite or join the inputs; choose "
                       "another folder")


def _cell_params(base: Dict, job: batch.Job, content: str, style: str,
                 output: str) -> Dict:
  """The flag values of the single nst-stylize run that makes ``job``."""
  cell = job.cell
  layer_weights = cell["style_layer_weights"]
  # The batch paints the single command's levels: --from_json of this
  # record paints the same picture.
  return {**base, "content": content, "style": [style], "output": output,
          "output_dir": None,
          "content_weight": cell["content_weight"],
          "style_weight": cell["style_weight"],
          "tv_weight": cell["tv_weight"], "seed": cell["seed"],
          "style_layers": list(cell["style_layer_sets"]),
          "style_layer_weights": (None if layer_weights is None
                                  else list(layer_weights))}


# Recorded flags compared through the levels they give (``_levels``), and
# --coarse_weight, which acts only where there are several (a record
# written before it painted without: 0).
_SCHEDULE = ("scales", "scale_iterations", "pyramid_base", "coarse_weight")


def _levels(params: Dict):
  """The ``(long edge, iterations)`` levels a record's flags paint; a record
  written before --pyramid_base (no key; batches then recorded 0) painted
  one level."""
  try:
    schedule = transfer.Schedule(
        scales=params.get("scales"),
        scale_iterations=params.get("scale_iterations"),
        pyramid_base=params.get("pyramid_base") or 0)
    return schedule.levels(params.get("size"), params.get("iterations"))
  except (NSTError, TypeError):
    return None


def _comparable(params: Dict) -> Dict:
  plain = io.to_jsonable(params)
  levels = _levels(plain)
  several = levels is None or len(levels) > 1
  return {**{k: v for k, v in plain.items()
             if k not in NOT_COMPARED + _SCHEDULE},
          "levels": levels,
          "coarse_weight": (float(plain.get("coarse_weight") or 0.0)
                            if several else None)}


def _finished(png: pathlib.Path, record_path: pathlib.Path, params: Dict,
              digests: Dict[str, str | None]) -> bool:
  """Whether an earlier run wrote this result (its PNG and record) with
  these parameters from these input files, and was not interrupted."""
  if not png.is_file() or not record_path.is_file():
    return False
  try:
    with open(record_path, encoding="utf-8") as f:
      record = json.load(f)
  except (OSError, ValueError, UnicodeDecodeError):
    return False
  if not isinstance(record, dict) or not isinstance(
      record.get("params"), dict) or not isinstance(record.get("inputs"),
                                                    dict):
    return False
  if _comparable(record["params"]) != _comparable(params):
    return False
  for path in (params["content"], *params["style"]):
    if digests.get(path) is None or record["inputs"].get(path) != digests[path]:
      return False
  return record.get("stop_reason") != "interrupted"


def _shown(done: float) -> float | int:
  """Results done as the progress line shows them: 2, 2.33."""
  return int(done) if done == int(done) else round(done, 2)


def _failure(what: str, path: str, error: NSTError) -> str:
  """One line saying why input ``path`` cannot be used."""
  message = cli.flag_message(error)
  return message if path in message else f"{what} image {path}: {message}"


def _digest(path: str) -> str | None:
  try:
    return weights.sha256_file(path)
  except OSError:
    return None


def main(recorded: Sequence[str]) -> None:
  """Runs the batch the flags describe (``nst-stylize`` with
  ``--output_dir``); ``recorded`` are the flags a record keeps."""
  given = [f"--{n}" for n in NOT_IN_BATCH if n in FLAGS and FLAGS[n].present]
  if given:
    raise NSTError(f"{', '.join(given)} cannot be used with --output_dir (a "
                   "batch writes one result per content and style)")
  if not FLAGS.content or not FLAGS.style:
    raise NSTError("--content and --style are required")
  say = (lambda *a: None) if FLAGS.quiet else (
      lambda text: print(text, flush=True))
  content_paths = batch.find_images(FLAGS.content, what="content")
  style_paths = batch.find_images(FLAGS.style, what="style")
  out = pathlib.Path(FLAGS.output_dir)
  inputs = content_paths + style_paths
  _check_output_dir(out, inputs)
  cli.enable_compilation_cache()
  defaults_message = cli.resolve_device_defaults()
  config = cli.transfer_config(grid=True)
  axes = cli.grid_axes(config, len(style_paths))
  jobs = batch.jobs(len(content_paths), axes)
  stems = batch.output_names(content_paths, style_paths, jobs, axes)
  start = time.perf_counter()

  base = cli.flag_values(recorded)
  digests = {p: _digest(p) for p in dict.fromkeys(inputs)}
  entries: List[Dict] = []
  for job, stem in zip(jobs, stems):
    content, style = content_paths[job.content], style_paths[job.cell["style"]]
    png, record = out / f"{stem}.png", out / f"{stem}.json"
    params = _cell_params(base, job, content, style, str(png))
    entries.append({"content": content, "style": style, "file": png.name,
                    "record": record.name, "params": params,
                    "status": ("skipped" if _finished(png, record, params,
                                                      digests) else "pending")})
  if defaults_message:
    say(defaults_message)

  # Read the inputs when a result is pending; an unreadable input fails
  # alone. Those of finished results are read too (not reported when
  # unreadable now), so that the batch's buckets and chunks are the ones an
  # uninterrupted run made: a result made after a crash is bit-identical to
  # that run's (batch.stylize_batch skips the finished ones).
  failed: Dict[str, str] = {}
  pending = [k for k, e in enumerate(entries) if e["status"] == "pending"]
  needed_styles = {jobs[k].cell["style"] for k in pending}
  needed_contents = {jobs[k].content for k in pending}
  # The levels nst-stylize paints (config.schedule): one level takes the
  # styles at the output's style size, several resize the originals at
  # every level (nst_jax.grid.run_cells), as the single command does.
  levels = config.schedule.levels(FLAGS.size, FLAGS.iterations)
  size = levels[-1][0]
  style_size = transfer.style_size(size, config.schedule.style_scale)
  styles, contents = {}, {}
  for i in range(len(style_paths) if pending else 0):
    path = style_paths[i]
    try:
      image = io.load_image(path)
      resized = io.resize_long_edge(image, style_size)
      transfer.check_image_size(config, resized.shape[:2])
      styles[i] = resized if len(levels) == 1 else image
    except NSTError as e:
      if i in needed_styles:
        failed[path] = _failure("style", path, e)
      styles.pop(i, None)
  for i in range(len(content_paths) if pending else 0):
    path = content_paths[i]
    try:
      image = io.load_image(path)
      contents[i] = io.resize_to(image, io.long_edge_shape(image.shape[:2],
                                                           size))
      transfer.check_image_size(config, contents[i].shape[:2])
    except NSTError as e:
      if i in needed_contents:
        failed[path] = _failure("content", path, e)
      contents.pop(i, None)
  for path, message in failed.items():
    print(f"failed: {message}", file=sys.stderr, flush=True)

  for k in pending:
    for path in (content_paths[jobs[k].content],
                 style_paths[jobs[k].cell["style"]]):
      if path in failed:
        entries[k].update(status="failed", error=failed[path])
  skipped = sum(e["status"] == "skipped" for e in entries)
  to_run = sum(e["status"] == "pending" for e in entries)

  buckets_run: Dict[int, Dict] = {}
  if to_run:
    # The library's jobs: the readable contents x the axes over the readable
    # styles; ``mapping`` takes each to its entry.
    content_index, style_index = sorted(contents), sorted(styles)
    lib_axes = dataclasses.replace(axes,
                                   style=tuple(range(len(style_index))))
    lib_jobs = batch.jobs(len(content_index), lib_axes)
    key = lambda ci, si, cell: (ci, si, tuple(
        (k, v) for k, v in sorted(cell.items()) if k != "style"))
    ours = {key(j.content, j.cell["style"], j.cell): k
            for k, j in enumerate(jobs)}
    mapping = [ours[key(content_index[j.content],
                        style_index[j.cell["style"]], j.cell)]
               for j in lib_jobs]
    skip = [n for n, k in enumerate(mapping)
            if entries[k]["status"] != "pending"]
    params = vgg.load_params(FLAGS.weights or FLAGS.network)
    if vgg.network_of(params) != FLAGS.network:
      raise NSTError(f"--weights {FLAGS.weights} hold "
                     f"{vgg.network_of(params)}, not --network="
                     f"{FLAGS.network}")
    images = [contents[i] for i in content_index]
    groups = batch.buckets([im.shape[:2] for im in images])
    say(f"nst_jax batch: {to_run} images to make ({skipped} finished before, "
        f"{len(failed)} inputs failed) in {len(groups)} shape(s) "
        + ", ".join(f"{g.shape[1]}x{g.shape[0]}" for g in groups)
        + f"; {FLAGS.network}, {FLAGS.optimizer}, {FLAGS.iterations} "
        f"iterations on {cli.device_description()}")
    bar = cli.ProgressBar(to_run, label="batch", quiet=FLAGS.quiet,
                          unit="img")
    stopper = cli.StopOnInterrupt()
    with stopper:
      try:
        outputs = batch.stylize_batch(
            params, images, [styles[i] for i in style_index], lib_axes,
            config, skip=skip,
            on_progress=lambda done, total: bar.update(_shown(done)),
            should_stop=stopper.stop_requested, log_every=FLAGS.log_every)
        bar.update(0)
        for o in outputs:
          entry = entries[mapping[o.index]]
          if o.status == "interrupted":
            entry["status"] = "interrupted"
            continue
          _write(out, entry, o, inputs, digests)
          info = buckets_run.setdefault(o.bucket, {
              "shape": list(groups[o.bucket].shape), "images": 0,
              "chunk_cells": o.cells, "chunks": {}})
          info["images"] += 1
          info["chunks"][o.chunk] = o.seconds
      finally:
        bar.close()
  for e in entries:
    if e["status"] == "pending":   # never started: the run was stopped
      e["status"] = "interrupted"
  wall = time.perf_counter() - start
  count = lambda status: sum(e["status"] == status for e in entries)
  made, interrupted = count("done"), count("interrupted")
  summary = {
      "params": base, "results": len(entries), "done": made,
      "skipped": skipped, "failed": count("failed"),
      "interrupted": interrupted,
      "failed_inputs": [{"path": p, "error": m} for p, m in failed.items()],
      "buckets": [{**{k: v for k, v in info.items() if k != "chunks"},
                   "chunks": len(info["chunks"]),
                   "seconds": sum(info["chunks"].values())}
                  for info in buckets_run.values()],
      "wall_seconds": wall,
      "images_per_second": made / wall if wall > 0 else None,
      "device": cli.device_description(),
      "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
      "outputs": [{k: v for k, v in e.items() if k != "params"}
                  for e in entries]}
  io.save_json(out / "batch.json", summary, protect=inputs)
  say(f"wrote {made} images to {out} in {wall:.1f} s "
      f"({made / wall if wall > 0 else 0:.3g} images/s); {skipped} finished "
      f"before, {summary['failed']} failed, {interrupted} interrupted "
      f"({out / 'batch.json'})")
  if interrupted:
    say("interrupted: run the same command again to make the rest")
    sys.exit(130)
  if failed:
    raise NSTError(f"{len(failed)} input image(s) could not be used ("
                   f"{', '.join(failed)}); the other results were written "
                   f"({out / 'batch.json'})")


def _write(out: pathlib.Path, entry: Dict, o: batch.Output, inputs,
           digests) -> None:
  """Writes one result's PNG and its record (both atomically)."""
  params = entry["params"]
  record = {
      "params": params,
      "inputs": {p: digests[p] for p in dict.fromkeys(
          [params["content"], *params["style"]])},
      "loss_history": o.loss_history,
      "iterations": o.iterations,
      "function_evaluations": o.function_evaluations,
      "evaluations_per_iteration": (o.function_evaluations /
                                    max(o.iterations, 1)),
      "stop_reason": o.status,
      "wall_seconds": o.seconds,
      "batch": {"shape": list(o.image.shape[:2]), "chunk_cells": o.cells,
                "note": "wall_seconds is the whole chunk's: its cells ran "
                        "together"},
      "device": cli.device_description(),
      "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
  }
  io.save_image(out / entry["file"], o.image,
                metadata={"nst_jax": cli.params_json(params)}, protect=inputs)
  io.save_json(out / entry["record"], record, protect=inputs)
  entry.update(status="done", stop_reason=o.status, final=o.terms,
               iterations=o.iterations)

