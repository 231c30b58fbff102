"""``nst-stylize``: paints a content photo in the style of one or more paintings.

  nst-stylize --content=photo.jpg --style=painting.jpg \\
      --output=out/result.png --size=512

(``python scripts/stylize.py`` runs the same command from a checkout.)

Writes the PNG and beside it a JSON record with the same name (out.png →
out.json): every flag value, the loss history, iterations, function
evaluations, seconds and device; the PNG carries the flag values too, in a
text chunk. ``--from_json=out.json`` (or ``=out.png``) runs the same transfer
again. A live progress bar shows the rate, ETA and loss terms (``--quiet``:
none); Ctrl-C stops cleanly and writes the image reached. ``--plot`` and
``--sheet`` write the loss curves and content | style | result;
``--evaluate`` adds the result's metrics to the record. Without
``--size``/``--iterations`` the defaults suit the device (printed at start).
The method is Gatys, Ecker & Bethge (2016) (see nst_jax.transfer for the
library call this script wraps), or with ``--method=strotss`` / ``nnst``
STROTSS (Kolkin et al. 2019) or NNST (Kolkin et al. 2022) with their
official settings (nst_jax.methods; nst_jax.commands._method).
"""

import os
import sys
import time

import jax
from absl import flags
from absl import logging

from nst_jax import cli
from nst_jax import config as config_module
from nst_jax import figures
from nst_jax import io
from nst_jax import transfer
from nst_jax import vgg
from nst_jax import weights
from nst_jax.commands import _batch
from nst_jax.commands import _evaluation
from nst_jax.commands import _method
from nst_jax.commands import _resume
from nst_jax.errors import NSTError

_SHARED = cli.define_flags("images", "method", "model", "loss",
                           "representation", "solver", "init", "color",
                           "compute", "output", "masks", "evaluation",
                           "schedule")
flags.DEFINE_string("output", "out/stylized.png", "Output PNG; a JSON record "
                    "with the same name is written beside it.")
flags.DEFINE_string("output_dir", None, "A batch: every --content image (a "
                    "folder, a glob or a comma list) with every --style image "
                    "(likewise), written as <output_dir>/<content>_<style>.png "
                    "with a JSON record each and batch.json; equal shapes run "
                    "as one batched program; finished results are skipped "
                    "when run again.")
flags.DEFINE_integer("log_every", 20, "Record the loss terms every N "
                     "iterations in the JSON history and --plot (0: only first "
                     "and last; each record costs one forward pass).",
                     lower_bound=0)
# Its other name (one meaning in every command: the loss log's period).
cli.define_deprecated_alias("print_every", "log_every")
flags.DEFINE_integer("save_every", 0, "Write an intermediate image every N "
                     "iterations (out_0100.png, ...; 0: never).", lower_bound=0)
flags.DEFINE_bool("plot", False, "Also write <output>_loss.png: loss curves "
                  "(total, content, each style layer, tv) against iterations "
                  "and seconds.")
flags.DEFINE_bool("sheet", False, "Also write <output>_sheet.png: content | "
                  "style(s) | result side by side.")
flags.DEFINE_string("from_json", None, "Run again the transfer recorded in "
                    "this JSON record or PNG written by this script (flags on "
                    "the command line override it; the output defaults to "
                    "<recorded output>_rerun.png).")
flags.DEFINE_alias("from_png", "from_json")
flags.DEFINE_string("resume", None, "Continue an interrupted run (crash, "
                    "kill, Ctrl-C) from its last snapshot: its output PNG or "
                    "JSON record (its state is <output>.resume.npz, written "
                    "at every --save_every snapshot and on Ctrl-C). Flags are "
                    "the recorded ones; a flag given must agree, except "
                    "--iterations (may grow; not in a coarse-to-fine run), "
                    "--quiet, --log_every, "
                    "--save_every, --plot, --sheet, --evaluate.")
flags.DEFINE_bool("evaluate", False, "Score the result into the record's "
                  "\"evaluation\" (nst_jax.metrics at --score_size: LPIPS "
                  "and SSIM to the content, sliced Wasserstein and Gram "
                  "distances to the style; as nst-evaluate scores the PNG).")
cli.define_flags("distributed")   # not recorded: a re-run joins no one
FLAGS = flags.FLAGS
# What a run records (and --from_json applies again): every flag of the
# command but the aliases.
_RECORDED = _SHARED + ["output", "output_dir", "log_every", "save_every",
                       "plot", "sheet", "from_json", "evaluate"]


def _check_output(output: str, inputs) -> str:
  if not output.lower().endswith(".png"):
    raise NSTError(f"--output must be a .png path, got {output}")
  parent = os.path.dirname(os.path.abspath(output))
  existing = parent
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing) or not os.access(existing, os.W_OK):
    raise NSTError(f"cannot write {output}: {existing} is not a writable "
                   "directory")
  for path in inputs:
    if os.path.exists(output) and os.path.samefile(output, path):
      raise NSTError(f"refusing to overwrite input image {output}")
  return output[:-4] + ".json"


def _reproduce() -> None:
  """Applies the parameters recorded by an earlier run (--from_json)."""
  values = cli.load_run_params(FLAGS.from_json)
  # Records written before --size_invariant existed ran the paper's sums,
  # before --pyramid_base one level, before --coarse_weight none.
  values.setdefault("size_invariant", False)
  values.setdefault("pyramid_base", 0)
  if values.get("method", "gatys") == "gatys":   # STROTSS and NNST have
    values.setdefault("coarse_weight", 0.0)      # no coarse view
  unknown = cli.apply_params(values, skip=("from_json", "output", "quiet"))
  if unknown:
    logging.warning("ignored recorded parameters this version does not "
                    "know: %s", ", ".join(sorted(unknown)))
  if not FLAGS["output"].present:
    recorded = values.get("output") or FLAGS.output
    FLAGS.output = recorded[:-4] + "_rerun.png" if recorded.lower().endswith(
        ".png") else recorded
  for path, digest in cli.load_run_inputs(FLAGS.from_json).items():
    if path in [FLAGS.content, *(FLAGS.style or []), *cli.mask_files()] and \
        os.path.isfile(
        path) and weights.sha256_file(path) != digest:
      logging.warning("%s has changed since the recorded run: the result "
                      "will differ", path)


def _side_paths(output: str) -> dict:
  stem = output[:-4]
  return {"json": stem + ".json", "plot": stem + "_loss.png",
          "sheet": stem + "_sheet.png"}


def run_record(values: dict, inputs, result: transfer.TransferResult,
               resumed: "transfer.RunState | None" = None) -> dict:
  """The JSON record of one run (what ``--from_json`` reads back): its flag
  ``values``, its ``inputs``' sha256, the ``result``'s loss history, counts,
  stop reason and seconds, the device, and where a ``resumed`` run went on
  (counted like ``iterations``: over the whole run). ``nst-serve`` writes
  the same record."""
  record = {
      "params": values,
      "inputs": {p: weights.sha256_file(p) for p in dict.fromkeys(inputs)},
      "loss_history": result.loss_history,
      "iterations": result.iterations,
      "function_evaluations": result.function_evaluations,
      "evaluations_per_iteration": (result.function_evaluations /
                                    max(result.iterations, 1)),
      "stop_reason": result.status,
      "wall_seconds": result.wall_seconds,
      "device": cli.device_description(),
      "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
  }
  if resumed is not None:
    record["resumed_at_iteration"] = resumed.iteration + (
        resumed.before.iterations if resumed.before is not None else 0)
  return record


def main(argv):
  say = cli.command_start(argv, FLAGS.quiet)
  if FLAGS.output_dir and (FLAGS.resume or FLAGS.coordinator_address):
    raise NSTError(f"--{'resume' if FLAGS.resume else 'coordinator_address'}"
                   " continues or spreads one run, not a batch (--output_dir)")
  if FLAGS.output_dir and FLAGS.method != "gatys":
    raise NSTError(f"--method={FLAGS.method} paints one content image: a "
                   "folder (--output_dir) is for --method=gatys")
  if FLAGS.output_dir:   # a batch: nst_jax.commands._batch
    _batch.main(_RECORDED)
    return
  if FLAGS.content and _batch.names_several(FLAGS.content):
    raise NSTError(f"--content={FLAGS.content} names several images (a "
                   "folder, a glob or a list): give --output_dir to stylize "
                   "them all")
  if FLAGS.from_json:
    _reproduce()
    cli.apply_deterministic()   # a recorded --deterministic, before any jax
  if FLAGS.method != "gatys":   # STROTSS or NNST: nst_jax.methods
    cli.enable_compilation_cache()
    cli.resolve_device_defaults()   # --size by the device; iterations: below
    _method.main(_RECORDED, say, run_record, _check_output)
    return
  _method.check_gatys()
  resumed, resumed_meta = None, None
  if FLAGS.resume:
    if FLAGS.from_json:
      raise NSTError("--resume and --from_json exclude each other")
    resumed, resumed_meta = _resume.load(_resume.state_path(FLAGS.resume))
    _resume.apply_recorded(resumed_meta, _RECORDED, resumed.iteration)
    cli.apply_deterministic()
  # Over several processes (--image_devices=all splits the image over all
  # their devices) every process runs the transfer; process 0 writes.
  lead = not cli.join_processes() or jax.process_index() == 0
  cli.enable_compilation_cache()
  defaults_message = cli.resolve_device_defaults(size=not FLAGS.scales)
  if FLAGS.scale_iterations is not None and FLAGS.scales is None:
    raise NSTError("--scale_iterations needs --scales")
  if not FLAGS.content or not FLAGS.style:
    raise NSTError("--content and --style are required")
  config = cli.transfer_config()
  # The levels of config.schedule (the default pyramid below 2·base is one
  # level; given --scales always run coarse to fine, even one of them).
  levels = config.schedule.levels(FLAGS.size, FLAGS.iterations)
  size = levels[-1][0]
  scales = scale_iterations = None
  if config.schedule.scales is not None or len(levels) > 1:
    scales = [s for s, _ in levels]
    scale_iterations = [n for _, n in levels]
  inputs = [FLAGS.content, *FLAGS.style, *cli.mask_files()]
  record_path = _check_output(FLAGS.output, inputs)
  if resumed is not None:
    _resume.check_inputs(resumed_meta, inputs)
    if (resumed.before is not None) != bool(scales):
      kind = lambda levels: "coarse-to-fine" if levels else "one-level"
      raise NSTError(f"--resume: {FLAGS.resume} is the state of a "
                     f"{kind(resumed.before is not None)} run, the flags now "
                     f"describe a {kind(scales)} one")
  if FLAGS.style_weight is None:   # recorded as the β the run used
    FLAGS.style_weight = (config.weights.style,)
  blend = config.weights.style_blend
  if blend is not None and len(blend) != len(FLAGS.style):
    raise NSTError(f"got {len(blend)} style blend weights for "
                   f"{len(FLAGS.style)} style images")
  style_size = transfer.style_size(size, config.schedule.style_scale)

  original = content = io.load_image(FLAGS.content)
  shape = io.long_edge_shape(content.shape[:2], size)
  transfer.check_image_size(config, shape)   # both before any large array
  transfer.check_memory(config, shape)
  originals = [io.load_image(p) for p in FLAGS.style]
  config_module.check_style_sizes(config, [s.shape for s in originals],
                                  style_size, FLAGS.style)
  content = io.resize_to(content, shape)
  styles = [io.resize_long_edge(s, style_size) for s in originals]
  guides = cli.load_masks(content.shape[:2], [s.shape[:2] for s in styles])
  params = vgg.load_params(FLAGS.weights or FLAGS.network)
  if vgg.network_of(params) != FLAGS.network:
    raise NSTError(f"--weights {FLAGS.weights} hold {vgg.network_of(params)}, "
                   f"not --network={FLAGS.network}")
  h, w = content.shape[:2]
  if defaults_message:
    say(defaults_message)
  if scales:
    say(f"nst_jax: {w}x{h} coarse to fine ("
        + ", ".join(f"{s} px: {n} iterations" for s, n in levels)
        + f"), {FLAGS.network}, {FLAGS.optimizer} on "
        f"{cli.device_description()}")
  else:
    say(f"nst_jax: {w}x{h}, {FLAGS.network}, {FLAGS.optimizer}, "
        f"{FLAGS.iterations} iterations on {cli.device_description()}")
  say(transfer.tiling_message(config, shape))
  if config.objective_spec().same_size:
    logging.info("--style_stat=%s compares feature maps position by position: "
                 "style images (or patches) resized to the content's %dx%d",
                 FLAGS.style_stat, w, h)

  stem = FLAGS.output[:-4]
  def on_snapshot(iteration, image):
    if not lead:
      return
    io.save_image(f"{stem}_{iteration:04d}.png", image, protect=inputs)
    logging.info("wrote snapshot %s_%04d.png", stem, iteration)

  state_file = _resume.state_path(FLAGS.output)
  digests = {p: weights.sha256_file(p) for p in dict.fromkeys(inputs)}
  def on_checkpoint(state):
    if not lead:
      return
    _resume.save(state_file, state, params=cli.flag_values(_RECORDED),
                 inputs=digests, stage={"level": state.level} if scales
                 else {}, protect=inputs)
    logging.info("wrote %s at iteration %d", state_file, state.iteration)

  bars = []
  levels_done = list(scales[:resumed.level]) if scales and resumed else []
  def on_progress(p):
    if not bars:
      label = f"{scales[len(levels_done)]} px" if scales else ""
      bars.append(cli.ProgressBar(p.iterations, quiet=FLAGS.quiet,
                                  label=label))
    bars[-1].update(p.iteration, p.record, p.value)

  stopper = cli.StopOnInterrupt()
  run = dict(log_every=FLAGS.log_every, snapshot_every=FLAGS.save_every,
             on_snapshot=on_snapshot,
             on_progress=None if FLAGS.quiet else on_progress,
             should_stop=stopper.stop_requested, guides=guides,
             checkpoint_every=FLAGS.save_every, on_checkpoint=on_checkpoint,
             resume=resumed)
  with stopper:
    try:
      if scales:
        def on_level(s, r):
          for bar in bars:
            bar.close()
          bars.clear()
          levels_done.append(s)
          say(f"level {s} px done: {r.iterations} iterations, "
              f"{r.wall_seconds:.1f} s")
        result = transfer.stylize_multiscale(
            params, content, originals, scales, config,
            scale_iterations=scale_iterations,
            style_scale=config.schedule.style_scale,
            on_level=on_level, **run)
      else:
        result = transfer.stylize(params, content, styles, config, **run)
    finally:
      for bar in bars:
        bar.close()
  if not lead:   # process 0 writes; the others agree on the exit status
    if result.status == "interrupted":
      sys.exit(130)
    return
  values = cli.flag_values(_RECORDED)
  record = run_record(values, inputs, result, resumed)
  io.save_image(FLAGS.output, result.image,
                metadata={"nst_jax": cli.params_json(values)}, protect=inputs)
  if FLAGS.evaluate:
    record["evaluation"] = _evaluation.evaluate_run(
        original, dict(zip(FLAGS.style, originals)), result.image,
        FLAGS.score_size, say)
  io.save_json(record_path, record, protect=inputs)
  written = [FLAGS.output, record_path]
  side = _side_paths(FLAGS.output)
  if FLAGS.plot:
    io.save_image(side["plot"], figures.loss_curves(
        result.loss_history, title=os.path.basename(FLAGS.output)),
        protect=inputs)
    written.append(side["plot"])
  if FLAGS.sheet:
    names = [os.path.basename(p) for p in inputs]
    io.save_image(side["sheet"], figures.side_by_side(
        [original, *originals, result.image],
        [f"content: {names[0]}",
         *(f"style: {n}" for n in names[1:1 + len(FLAGS.style)]),
         "result"]), protect=inputs)
    written.append(side["sheet"])
  last = result.loss_history[-1]
  interrupted = result.status == "interrupted"
  say(f"{'interrupted: ' if interrupted else ''}wrote {', '.join(written)}: "
      f"{result.iterations} iterations, {result.function_evaluations} "
      f"evaluations ({record['evaluations_per_iteration']:.2f}/iteration), "
      f"{result.wall_seconds:.1f} s, final loss {last['total']:.4g}")
  if interrupted:
    say(f"continue with: nst-stylize --resume={record_path}")
    sys.exit(130)
  _resume.remove(state_file)


def run():
  """The ``nst-stylize`` console command."""
  cli.run(main)


if __name__ == "__main__":
  run()
