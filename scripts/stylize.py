"""Paints a content photo in the style of one or more paintings.

  python scripts/stylize.py --content=photo.jpg --style=painting.jpg \
      --output=out/result.png --size=512

Writes the PNG and beside it a JSON record with the same name (out.png →
out.json): every flag value, the loss history, iterations, function
evaluations, seconds and device; the PNG carries the flag values too, in a
text chunk. ``--from_json=out.json`` (or ``=out.png``) runs the same transfer
again. A live progress bar shows the rate, ETA and loss terms (``--quiet``:
none); Ctrl-C stops cleanly and writes the image reached. ``--plot`` and
``--sheet`` write the loss curves and content | style | result. Without
``--size``/``--iterations`` the defaults suit the device (printed at start).
The method is Gatys, Ecker & Bethge (2016); see nst_jax.transfer for the
library call this script wraps.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
from absl import flags
from absl import logging

from nst_jax import cli
from nst_jax import color
from nst_jax import figures
from nst_jax import io
from nst_jax import networks
from nst_jax import objective
from nst_jax import solvers
from nst_jax import transfer
from nst_jax import vgg
from nst_jax import weights
from nst_jax.errors import NSTError

_DEFAULT = transfer.TransferConfig()

flags.DEFINE_string("content", None, "Content image (any format Pillow reads).")
flags.DEFINE_list("style", None, "Style image(s), comma-separated.")
flags.DEFINE_list("style_blend_weights", None,
                  "One weight per style image (default: equal).")
flags.DEFINE_string("output", "out/stylized.png", "Output PNG; a JSON record "
                    "with the same name is written beside it.")
flags.DEFINE_integer("size", None, "Long edge of the output in pixels; style "
                     "images are resized to --style_scale times it (default: "
                     "512 on a GPU/TPU, 256 on a CPU).", lower_bound=1,
                     upper_bound=io.MAX_RESIZE_EDGE)
flags.DEFINE_float("style_scale", 1.0, "Long edge of the style images relative "
                   "to --size: below 1 the style's strokes and motifs come out "
                   "larger, above 1 smaller.", lower_bound=1e-3)
flags.DEFINE_enum("network", _DEFAULT.network, list(networks.NETWORKS),
                  "Recognition network (weights from scripts/fetch_weights.py), "
                  "or see --weights.")
flags.DEFINE_string("weights", None, "Path to a converted .npz to use instead "
                    "of weights/<network>.npz.")
flags.DEFINE_enum("pooling", _DEFAULT.pooling, list(vgg.POOLING), "Pooling.")
flags.DEFINE_list("content_layers", None, "Content layers (default: relu4_2; "
                  "relu4 for alexnet).")
flags.DEFINE_list("style_layers", None, "Style layers (default: relu1_1, "
                  "relu2_1, relu3_1, relu4_1, relu5_1).")
flags.DEFINE_list("style_layer_weights", None, "One weight per style layer "
                  "(default: 1/number of layers).")
flags.DEFINE_float("content_weight", _DEFAULT.content_weight, "α.")
flags.DEFINE_float("style_weight", _DEFAULT.style_weight, "β.")
flags.DEFINE_float("tv_weight", _DEFAULT.tv_weight, "Total-variation weight.")
flags.DEFINE_enum("gram_normalization", _DEFAULT.gram_normalization,
                  ["paper", "notes"], "Style-loss normalisation: 'paper' "
                  "1/(4N²M²) or 'notes' 1/(NM) Gram with 1/K² loss.")
flags.DEFINE_enum("optimizer", _DEFAULT.optimizer, list(solvers.METHODS),
                  "optax_lbfgs (default, ~1 evaluation per iteration), lbfgs "
                  "(jaxopt, zoom line search) or adam.")
flags.DEFINE_integer("iterations", None, "Iterations (default: 500 on a "
                     "GPU/TPU, 300 on a CPU).", lower_bound=0)
flags.DEFINE_float("learning_rate", _DEFAULT.learning_rate, "Adam step size.")
flags.DEFINE_integer("history_size", _DEFAULT.history_size, "L-BFGS memory.",
                     lower_bound=1)
flags.DEFINE_enum("init", _DEFAULT.init, list(transfer.INITS),
                  "Starting image (Nikulin & Novak §4).")
flags.DEFINE_integer("seed", _DEFAULT.seed, "Seed of the noise init.")
flags.DEFINE_enum("style_stat", _DEFAULT.style_stat,
                  list(objective.STYLE_STATS),
                  "Style representation: gram (Gatys), spatial (per-channel "
                  "autocorrelation, Nikulin & Novak §7), local (windowed Gram, "
                  "§9), eigen (Gram spectrum, thesis), moments (mean and std) "
                  "or covariance (mean + covariance, Wasserstein-2).")
flags.DEFINE_integer("style_rank", _DEFAULT.style_rank, "eigen: keep the top-r "
                     "eigenpairs of each style Gram (0: full rank).",
                     lower_bound=0)
flags.DEFINE_enum("eigen_loss", _DEFAULT.eigen_loss,
                  list(objective.EIGEN_LOSSES), "eigen: 'reconstruction' "
                  "(Gram loss to the rank-r reconstruction), 'spectrum' (the r "
                  "largest eigenvalues) or 'projected' (Grams of the features "
                  "projected onto the style's top-r eigenvectors).")
flags.DEFINE_list("local_window", [str(s) for s in _DEFAULT.local_window],
                  "local: window s (0: pointwise), one for all style layers or "
                  "one per style layer.")
flags.DEFINE_integer("style_patches", _DEFAULT.style_patches, "Style targets "
                     "from N seeded random crops of each style image (0: the "
                     "whole image).", lower_bound=0)
flags.DEFINE_integer("patch_size", _DEFAULT.patch_size, "Side of the style "
                     "patches in pixels (after resizing to --size).",
                     lower_bound=1)
flags.DEFINE_enum("patch_mode", _DEFAULT.patch_mode,
                  list(objective.PATCH_MODES), "mean: one target averaged "
                  "over the patches; instances: N styles of weight 1/N.")
flags.DEFINE_integer("log_every", 20, "Record the loss terms every N "
                     "iterations in the JSON history and --plot (0: only first "
                     "and last; each record costs one forward pass).",
                     lower_bound=0)
flags.DEFINE_alias("print_every", "log_every")
flags.DEFINE_integer("save_every", 0, "Write an intermediate image every N "
                     "iterations (out_0100.png, ...; 0: never).", lower_bound=0)
flags.DEFINE_bool("quiet", False, "No progress bar or messages; errors only.")
flags.DEFINE_bool("original_colors", _DEFAULT.original_colors, "Keep the "
                  "content's colours: transfer on luminance only and put the "
                  "content's chrominance back (Gatys et al. 2016, 'Preserving "
                  "Color', §2.2).")
flags.DEFINE_enum("color_space", _DEFAULT.color_space, list(color.COLOR_SPACES),
                  "Luma/chroma space of --original_colors.")
flags.DEFINE_enum("color_transfer", _DEFAULT.color_transfer,
                  list(color.COLOR_TRANSFERS), "Recolour the style images to "
                  "the content's colours before the transfer: histogram "
                  "(mean and covariance, 'Preserving Color' §2.1) or cdf "
                  "(exact per-channel histograms).")
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
flags.DEFINE_enum("precision", _DEFAULT.precision, list(vgg.PRECISIONS),
                  "Convolution precision: float32, tf32 (TF32 tensor cores on "
                  "GPUs) or bf16 (bfloat16 operands, float32 accumulation).")
flags.DEFINE_enum("conv", _DEFAULT.conv, list(vgg.CONV_ALGORITHMS),
                  "Convolution algorithm: winograd (F(4x4,3x3) for the 3x3 "
                  "layers with >= 256 channels), direct, or auto (winograd on "
                  "the CPU, where it is faster; direct on GPUs).")
flags.DEFINE_bool("checkpoint", _DEFAULT.remat, "Gradient checkpointing per "
                  "VGG block (one more forward pass; on the CPU it measured "
                  "no memory saving: see docs/benchmarks.md).")
flags.DEFINE_list("scales", None, "Coarse-to-fine long edges, e.g. "
                  "256,512,1024: each level starts from the upsampled result "
                  "of the previous one; the last is the output size "
                  "(overrides --size).")
flags.DEFINE_list("scale_iterations", None, "Iterations of each --scales "
                  "level (default: --iterations at every level).")

FLAGS = flags.FLAGS
_ALIASES = ("print_every", "from_png")  # other names of log_every, from_json


def _floats(name, values):
  if values is None:
    return None
  try:
    return tuple(float(v) for v in values)
  except ValueError:
    raise NSTError(f"--{name} must be comma-separated numbers, got "
                   f"{','.join(values)}") from None


def _config() -> transfer.TransferConfig:
  tup = lambda v: None if v is None else tuple(v)
  return transfer.TransferConfig(
      network=FLAGS.network, pooling=FLAGS.pooling,
      content_layers=tup(FLAGS.content_layers),
      style_layers=tup(FLAGS.style_layers),
      style_layer_weights=_floats("style_layer_weights",
                                  FLAGS.style_layer_weights),
      style_blend_weights=_floats("style_blend_weights",
                                  FLAGS.style_blend_weights),
      content_weight=FLAGS.content_weight, style_weight=FLAGS.style_weight,
      tv_weight=FLAGS.tv_weight, gram_normalization=FLAGS.gram_normalization,
      optimizer=FLAGS.optimizer, iterations=FLAGS.iterations,
      learning_rate=FLAGS.learning_rate, history_size=FLAGS.history_size,
      init=FLAGS.init, seed=FLAGS.seed, precision=FLAGS.precision,
      remat=FLAGS.checkpoint, conv=FLAGS.conv,
      color_transfer=FLAGS.color_transfer,
      original_colors=FLAGS.original_colors, color_space=FLAGS.color_space,
      **_style_config())


def _style_config() -> dict:
  windows = FLAGS.local_window or ["0"]
  try:
    windows = tuple(int(v) for v in windows)
  except ValueError:
    raise NSTError("--local_window must be comma-separated integers, got "
                   f"{','.join(FLAGS.local_window)}") from None
  return dict(style_stat=FLAGS.style_stat, style_rank=FLAGS.style_rank,
              eigen_loss=FLAGS.eigen_loss, local_window=windows,
              style_patches=FLAGS.style_patches, patch_size=FLAGS.patch_size,
              patch_mode=FLAGS.patch_mode)


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


def _ints(name, values):
  if values is None:
    return None
  try:
    return [int(v) for v in values]
  except ValueError:
    raise NSTError(f"--{name} must be comma-separated integers, got "
                   f"{','.join(values)}") from None


def _reproduce() -> None:
  """Applies the parameters recorded by an earlier run (--from_json)."""
  values = cli.load_run_params(FLAGS.from_json)
  unknown = cli.apply_params(values, skip=("from_json", "output", "quiet"))
  if unknown:
    logging.warning("ignored recorded parameters this version does not "
                    "know: %s", ", ".join(sorted(unknown)))
  if not FLAGS["output"].present:
    recorded = values.get("output") or FLAGS.output
    FLAGS.output = recorded[:-4] + "_rerun.png" if recorded.lower().endswith(
        ".png") else recorded
  for path, digest in cli.load_run_inputs(FLAGS.from_json).items():
    if path in [FLAGS.content, *(FLAGS.style or [])] and os.path.isfile(
        path) and weights.sha256_file(path) != digest:
      logging.warning("%s has changed since the recorded run: the result "
                      "will differ", path)


def _resolve_device_defaults() -> str | None:
  """Fills --size/--iterations the user left out; returns the message."""
  size, iterations = cli.device_defaults()
  chosen = []
  if FLAGS.size is None and not FLAGS.scales:
    FLAGS.size = size
    chosen.append(f"--size={size}")
  if FLAGS.iterations is None:
    FLAGS.iterations = iterations
    chosen.append(f"--iterations={iterations}")
  if not chosen:
    return None
  where = "a GPU/TPU" if jax.default_backend() != "cpu" else "no GPU: CPU"
  return (f"nst_jax: {where}, so {' '.join(chosen)} (give them to choose "
          "yourself)")


def _side_paths(output: str) -> dict:
  stem = output[:-4]
  return {"json": stem + ".json", "plot": stem + "_loss.png",
          "sheet": stem + "_sheet.png"}


def main(argv):
  if len(argv) > 1:
    raise NSTError(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.quiet:
    logging.set_verbosity(logging.WARNING)
  say = (lambda *a: None) if FLAGS.quiet else (
      lambda text: print(text, flush=True))
  if FLAGS.from_json:
    _reproduce()
  cli.enable_compilation_cache()
  defaults_message = _resolve_device_defaults()
  scales = _ints("scales", FLAGS.scales)
  scale_iterations = _ints("scale_iterations", FLAGS.scale_iterations)
  if scale_iterations is not None and scales is None:
    raise NSTError("--scale_iterations needs --scales")
  size = scales[-1] if scales else FLAGS.size
  if not FLAGS.content or not FLAGS.style:
    raise NSTError("--content and --style are required")
  inputs = [FLAGS.content, *FLAGS.style]
  record_path = _check_output(FLAGS.output, inputs)
  config = _config()
  transfer.check_config(config)
  if config.style_blend_weights is not None and (
      len(config.style_blend_weights) != len(FLAGS.style)):
    raise NSTError(f"got {len(config.style_blend_weights)} style blend weights "
                   f"for {len(FLAGS.style)} style images")
  style_size = transfer.style_size(size, FLAGS.style_scale)

  original = content = io.load_image(FLAGS.content)
  shape = io.long_edge_shape(content.shape[:2], size)
  transfer.check_image_size(config, shape)   # both before any large array
  transfer.check_memory(config, shape)
  originals = [io.load_image(p) for p in FLAGS.style]
  for path, style in zip(FLAGS.style, originals):
    style_shape = io.long_edge_shape(style.shape[:2], style_size)
    try:
      transfer.check_image_size(config, style_shape)
    except NSTError:
      raise NSTError(f"style image {path} at {style_shape[1]}x"
                     f"{style_shape[0]} (--style_scale={FLAGS.style_scale}) is "
                     "too small for the style layers: raise --style_scale or "
                     "--size") from None
  content = io.resize_to(content, shape)
  styles = [io.resize_long_edge(s, style_size) for s in originals]
  params = vgg.load_params(FLAGS.weights or FLAGS.network)
  if vgg.network_of(params) != FLAGS.network:
    raise NSTError(f"--weights {FLAGS.weights} hold {vgg.network_of(params)}, "
                   f"not --network={FLAGS.network}")
  h, w = content.shape[:2]
  if defaults_message:
    say(defaults_message)
  say(f"nst_jax: {w}x{h}, {FLAGS.network}, {FLAGS.optimizer}, "
      f"{FLAGS.iterations} iterations on {cli.device_description()}")
  if FLAGS.style_stat in objective.SAME_SIZE_STATS:
    logging.info("--style_stat=%s compares feature maps position by position: "
                 "style images (or patches) resized to the content's %dx%d",
                 FLAGS.style_stat, w, h)

  stem = FLAGS.output[:-4]
  def on_snapshot(iteration, image):
    io.save_image(f"{stem}_{iteration:04d}.png", image, protect=inputs)
    logging.info("wrote snapshot %s_%04d.png", stem, iteration)

  bars, levels_done = [], []
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
             should_stop=stopper.stop_requested)
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
            scale_iterations=scale_iterations, style_scale=FLAGS.style_scale,
            on_level=on_level, **run)
      else:
        result = transfer.stylize(params, content, styles, config, **run)
    finally:
      for bar in bars:
        bar.close()
  values = {k: v for k, v in cli.module_flag_values(
      sys.modules[__name__].__name__).items() if k not in _ALIASES}
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
  io.save_image(FLAGS.output, result.image,
                metadata={"nst_jax": cli.params_json(values)}, protect=inputs)
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
        [f"content: {names[0]}", *(f"style: {n}" for n in names[1:]),
         "result"]), protect=inputs)
    written.append(side["sheet"])
  last = result.loss_history[-1]
  interrupted = result.status == "interrupted"
  say(f"{'interrupted: ' if interrupted else ''}wrote {', '.join(written)}: "
      f"{result.iterations} iterations, {result.function_evaluations} "
      f"evaluations ({record['evaluations_per_iteration']:.2f}/iteration), "
      f"{result.wall_seconds:.1f} s, final loss {last['total']:.4g}")
  if interrupted:
    sys.exit(130)


if __name__ == "__main__":
  cli.run(main)
