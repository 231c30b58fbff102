"""Paints a content photo in the style of one or more paintings.

  python scripts/stylize.py --content=photo.jpg --style=painting.jpg \
      --output=out/result.png --size=512

Writes the PNG and beside it a JSON record with the same name (out.png →
out.json): every flag value, the loss history, iterations, function
evaluations, seconds and device. The method is Gatys, Ecker & Bethge (2016);
see nst_jax.transfer for the library call this script wraps.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags

from nst_jax import cli
from nst_jax import io
from nst_jax import networks
from nst_jax import objective
from nst_jax import solvers
from nst_jax import transfer
from nst_jax import vgg
from nst_jax.errors import NSTError

_DEFAULT = transfer.TransferConfig()

flags.DEFINE_string("content", None, "Content image (any format Pillow reads).")
flags.DEFINE_list("style", None, "Style image(s), comma-separated.")
flags.DEFINE_list("style_blend_weights", None,
                  "One weight per style image (default: equal).")
flags.DEFINE_string("output", "out/stylized.png", "Output PNG; a JSON record "
                    "with the same name is written beside it.")
flags.DEFINE_integer("size", 512, "Long edge of the output in pixels; style "
                     "images are resized to the same long edge.", lower_bound=1,
                     upper_bound=io.MAX_RESIZE_EDGE)
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
flags.DEFINE_integer("iterations", _DEFAULT.iterations, "Iterations.",
                     lower_bound=0)
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
flags.DEFINE_integer("print_every", 50, "Print and record the loss terms every "
                     "N iterations (0: only first and last).", lower_bound=0)
flags.DEFINE_integer("save_every", 0, "Write an intermediate image every N "
                     "iterations (out_0100.png, ...; 0: never).", lower_bound=0)
flags.DEFINE_enum("precision", _DEFAULT.precision, list(vgg.PRECISIONS),
                  "Convolution precision: float32, tf32 (TF32 tensor cores on "
                  "GPUs) or bf16 (bfloat16 operands, float32 accumulation).")
flags.DEFINE_bool("checkpoint", _DEFAULT.remat, "Gradient checkpointing per "
                  "VGG block (one more forward pass; on the CPU it measured "
                  "more memory, not less: see docs/benchmarks.md).")
flags.DEFINE_list("scales", None, "Coarse-to-fine long edges, e.g. "
                  "256,512,1024: each level starts from the upsampled result "
                  "of the previous one; the last is the output size "
                  "(overrides --size).")
flags.DEFINE_list("scale_iterations", None, "Iterations of each --scales "
                  "level (default: --iterations at every level).")

FLAGS = flags.FLAGS


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
      remat=FLAGS.checkpoint, **_style_config())


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


def main(argv):
  if len(argv) > 1:
    raise NSTError(f"unexpected arguments: {' '.join(argv[1:])}")
  cli.enable_compilation_cache()
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

  content = io.load_image(FLAGS.content)
  shape = io.long_edge_shape(content.shape[:2], size)
  transfer.check_image_size(config, shape)   # both before any large array
  transfer.check_memory(config, shape)
  content = io.resize_to(content, shape)
  styles = [io.resize_long_edge(io.load_image(p), size)
            for p in FLAGS.style]
  params = vgg.load_params(FLAGS.weights or FLAGS.network)
  if vgg.network_of(params) != FLAGS.network:
    raise NSTError(f"--weights {FLAGS.weights} hold {vgg.network_of(params)}, "
                   f"not --network={FLAGS.network}")
  h, w = content.shape[:2]
  print(f"nst_jax: {w}x{h}, {FLAGS.network}, {FLAGS.optimizer}, "
        f"{FLAGS.iterations} iterations on {cli.device_description()}",
        flush=True)
  if FLAGS.style_stat in objective.SAME_SIZE_STATS:
    print(f"nst_jax: --style_stat={FLAGS.style_stat} compares feature maps "
          f"position by position: style images (or patches) resized to the "
          f"content's {w}x{h}", flush=True)

  def on_log(record):
    if FLAGS.print_every:
      print(f"iteration {record['iteration']:5d}  total {record['total']:.4g}  "
            f"content {record['content']:.4g}  style {record['style']:.4g}  "
            f"tv {record['tv']:.4g}", flush=True)

  stem = FLAGS.output[:-4]
  def on_snapshot(iteration, image):
    io.save_image(f"{stem}_{iteration:04d}.png", image, protect=inputs)

  logging = dict(log_every=FLAGS.print_every, on_log=on_log,
                 snapshot_every=FLAGS.save_every, on_snapshot=on_snapshot)
  if scales:
    result = transfer.stylize_multiscale(
        params, content, styles, scales, config,
        scale_iterations=scale_iterations,
        on_level=lambda s, r: print(f"level {s} px done: {r.iterations} "
                                    f"iterations, {r.wall_seconds:.1f} s",
                                    flush=True), **logging)
  else:
    result = transfer.stylize(params, content, styles, config, **logging)
  values = cli.module_flag_values(sys.modules[__name__].__name__)
  record = {
      "params": values,
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
  last = result.loss_history[-1]
  print(f"wrote {FLAGS.output} and {record_path}: {result.iterations} "
        f"iterations, {result.function_evaluations} evaluations "
        f"({record['evaluations_per_iteration']:.2f}/iteration), "
        f"{result.wall_seconds:.1f} s, final loss {last['total']:.4g}")


if __name__ == "__main__":
  cli.run(main)
