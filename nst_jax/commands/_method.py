"""``nst-stylize --method=strotss|nnst``: one transfer by a method beyond
Gatys (``nst_jax.methods``), with the command's output, record, progress,
snapshots, Ctrl-C, ``--evaluate``, ``--sheet`` and ``--plot``.

The methods run with their official settings; the flags that change them
are ``--size``, ``--iterations`` (each level's; default the method's own),
``--seed``, ``--content_weight`` (STROTSS: times the official 16),
``--alpha`` (NNST) and, for STROTSS, the masks (``--content_mask`` and
``--style_masks``: its guidance). Any other flag of a Gatys transfer that is given (its
value not the default) is refused before any work, in one line: the method
does not use it.
"""

import os
import sys
from typing import Callable, Sequence

from absl import flags
from absl import logging

from nst_jax import cli
from nst_jax import figures
from nst_jax import io
from nst_jax import methods
from nst_jax import vgg
from nst_jax.commands import _evaluation
from nst_jax.errors import NSTError

FLAGS = flags.FLAGS

# What a STROTSS or NNST run reads of the command's flags; the rest of the
# recorded ones must keep their defaults.
USED = frozenset({
    "content", "style", "output", "size", "iterations", "seed",
    "content_weight", "alpha", "method", "log_every", "save_every", "quiet",
    "evaluate", "score_size", "sheet", "plot", "from_json", "weights",
    "deterministic", "output_dir", "content_mask", "style_masks"})
# Flags only some methods use: refused by the others when given.
ONLY = {"content_weight": ("gatys", "strotss"), "alpha": ("nnst",),
        "content_mask": ("gatys", "strotss"),
        "style_masks": ("gatys", "strotss")}


def refused(names: Sequence[str], name: str) -> list:
  """The flags of ``names`` that method ``name`` does not use but were
  changed from their defaults."""
  out = []
  for flag in names:
    f = FLAGS[flag]
    used = flag in USED and name in ONLY.get(flag, (name,))
    if not used and f.value != f.default:
      out.append(flag)
  return out


def gatys_refused() -> list:
  """The flags of the other methods (``ONLY``) given away from their
  defaults: a Gatys run does not use them."""
  return [f for f, owners in ONLY.items()
          if "gatys" not in owners and FLAGS[f].present
          and FLAGS[f].value != FLAGS[f].default]


def check_gatys() -> None:
  """Refuses (one line) a flag of another method given to a Gatys run."""
  given = gatys_refused()
  if given:
    raise NSTError(f"{', '.join('--' + g for g in given)} belongs to "
                   f"--method={' or '.join(ONLY[given[0]])}, not "
                   "--method=gatys")


def method_of_flags(name: str):
  """The ``methods`` value of ``--method=name`` from the flags it reads."""
  iterations = ({"iterations": FLAGS.iterations}
                if FLAGS["iterations"].present else {})
  if len(FLAGS.seed or (0,)) != 1:
    raise NSTError(f"--method={name} takes one --seed, got "
                   f"{len(FLAGS.seed)}")
  seed = int(FLAGS.seed[0]) if FLAGS.seed else 0
  if name == "strotss":
    from nst_jax import strotss  # pylint: disable=g-import-not-at-top
    weights = list(FLAGS.content_weight)
    if len(weights) != 1:
      raise NSTError(f"--method=strotss takes one --content_weight, got "
                     f"{len(weights)}")
    weight = float(weights[0]) * strotss.DEFAULTS.content_weight
    return methods.method("strotss", size=FLAGS.size, seed=seed, settings=dict(
        content_weight=weight, **iterations))
  return methods.method("nnst", seed=seed, settings=dict(
      size=FLAGS.size, alpha=FLAGS.alpha, **iterations))


def main(recorded: Sequence[str], say: Callable[[str], None],
         record_of: Callable, check_output: Callable[[str, list], str]):
  """Runs ``--method`` (not gatys) and writes the command's outputs;
  ``record_of(values, inputs, result)`` makes the JSON record (the
  command's ``run_record``), ``check_output`` checks ``--output``."""
  name = FLAGS.method
  if FLAGS.output_dir:
    raise NSTError(f"--method={name} paints one content image: a folder "
                   "(--output_dir) is for --method=gatys")
  if FLAGS.resume:
    raise NSTError(f"--resume is for --method=gatys; run --method={name} "
                   "again (its stages are short)")
  given = refused(recorded, name)
  if given:
    raise NSTError(f"--method={name} does not use "
                   f"{', '.join('--' + g for g in given)} (its settings are "
                   "the official ones; see nst_jax.methods)")
  if not FLAGS.content or not FLAGS.style:
    raise NSTError("--content and --style are required")
  if len(FLAGS.style) != 1:
    raise NSTError(f"--method={name} takes one --style image, got "
                   f"{len(FLAGS.style)}")
  inputs = [FLAGS.content, *FLAGS.style, *cli.mask_files()]
  record_path = check_output(FLAGS.output, inputs)
  m = method_of_flags(name)
  if not FLAGS["iterations"].present:   # recorded as the levels' count
    FLAGS.iterations = m.settings.iterations
  original = io.load_image(FLAGS.content)
  style = io.load_image(FLAGS.style[0])
  guides = cli.load_masks(original.shape[:2], [style.shape[:2]])
  params = vgg.load_params(FLAGS.weights or "vgg16")
  if vgg.network_of(params) != "vgg16":
    raise NSTError(f"--method={name} runs on VGG-16; --weights "
                   f"{FLAGS.weights} hold {vgg.network_of(params)}")
  sizes = m.sizes()
  say(f"nst_jax: {name} at {sizes[-1]} px, levels "
      + ", ".join(f"{s} px" for s in sizes) + f", on "
      f"{cli.device_description()}")

  stem = FLAGS.output[:-4]
  def on_snapshot(iteration, image):
    io.save_image(f"{stem}_{iteration:04d}.png", image, protect=inputs)
    logging.info("wrote snapshot %s_%04d.png", stem, iteration)

  bars = []
  def on_stage(size, stage, iterations):
    for bar in bars:
      bar.close()
    bars[:] = [cli.ProgressBar(iterations, quiet=FLAGS.quiet,
                               label=f"{size} px" + (
                                   f" {stage}" if stage != "level" else ""))]

  def on_progress(p):
    if bars:
      bars[-1].update(p.iteration, p.record, p.value)

  stopper = cli.StopOnInterrupt()
  with stopper:
    try:
      result = methods.paint(
          params, original, [style], m, guides=guides,
          log_every=FLAGS.log_every,
          snapshot_every=FLAGS.save_every, on_snapshot=on_snapshot,
          on_progress=None if FLAGS.quiet else on_progress,
          should_stop=stopper.stop_requested, on_stage=on_stage)
    finally:
      for bar in bars:
        bar.close()
  values = cli.flag_values(recorded)
  record = record_of(values, inputs, result)
  io.save_image(FLAGS.output, result.image,
                metadata={"nst_jax": cli.params_json(values)}, protect=inputs)
  if FLAGS.evaluate:
    record["evaluation"] = _evaluation.evaluate_run(
        original, {FLAGS.style[0]: style}, result.image, FLAGS.score_size,
        say)
  io.save_json(record_path, record, protect=inputs)
  written = [FLAGS.output, record_path]
  if FLAGS.plot:
    path = stem + "_loss.png"
    io.save_image(path, figures.loss_curves(
        result.loss_history, title=os.path.basename(FLAGS.output)),
        protect=inputs)
    written.append(path)
  if FLAGS.sheet:
    path = stem + "_sheet.png"
    io.save_image(path, figures.side_by_side(
        [original, style, result.image],
        [f"content: {os.path.basename(FLAGS.content)}",
         f"style: {os.path.basename(FLAGS.style[0])}", f"{name}"]),
        protect=inputs)
    written.append(path)
  interrupted = result.status == "interrupted"
  say(f"{'interrupted: ' if interrupted else ''}wrote {', '.join(written)}: "
      f"{result.iterations} iterations in {len(sizes)} levels, "
      f"{result.wall_seconds:.1f} s, final loss "
      f"{result.loss_history[-1]['total']:.4g}")
  if interrupted:
    sys.exit(130)
