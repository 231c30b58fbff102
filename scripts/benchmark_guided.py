"""Cost of guided statistics: one value-and-gradient of the default objective
(VGG-16, relu4_2; relu1_1 … relu5_1) with the plain Gram and with the
content-aware representation at several numbers of regions K and windows s.

  python scripts/benchmark_guided.py --sizes=256,512 --clusters=1,4,8,16,32

For each size and representation: XLA's buffer assignment of the compiled
value-and-gradient (temporaries + arguments + outputs − aliased, GiB), the
median milliseconds of ``--repeats`` evaluations timed interleaved (every
representation once per round), and both as ratios to the Gram's. Prints a
Markdown table (docs/benchmarks.md, "Content-aware style").
"""

import dataclasses
import os
import sys
import time

import jax
import jax.numpy as jnp
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common as bm  # pylint: disable=g-import-not-at-top,wrong-import-position

from nst_jax import cli
from nst_jax import guided
from nst_jax import io
from nst_jax import objective
from nst_jax import transfer
from nst_jax import vgg
from nst_jax.errors import NSTError
from nst_jax.targets import make_targets

_SHARED = cli.define_flags("content", "style", "compute")
cli.define_numbers("sizes", (256, 512), "Long edges to measure.", kind=int,
                   lower_bound=32)
cli.define_numbers("clusters", (1, 4, 8, 16, 32), "Numbers of regions K of "
                   "the content-aware representation.", kind=int,
                   lower_bound=1)
cli.define_numbers("windows", (2,), "Windows s of §9 (each with every K).",
                   kind=int, lower_bound=0)
flags.DEFINE_integer("repeats", 3, "Timed rounds (median).", lower_bound=1)
FLAGS = flags.FLAGS


def _gib(mem) -> float | None:
  if mem is None:
    return None
  return (mem.temp_size_in_bytes + mem.argument_size_in_bytes +
          mem.output_size_in_bytes - mem.alias_size_in_bytes) / 2**30


def measure(params, content, style, representations_, repeats: int) -> dict:
  """``{name: (GiB, ms)}`` for each ``(name, representation)``: XLA's
  buffers of one compiled value-and-gradient and its median time."""
  config = transfer.TransferConfig()
  base = config.objective_spec()
  runs = {}
  for name, rep in representations_:
    spec = dataclasses.replace(base, style=rep)
    targets = make_targets(params, jnp.asarray(content),
                                     [jnp.asarray(style)], spec)
    vg = jax.jit(jax.value_and_grad(objective.objective_function(spec),
                                    has_aux=True))
    args = (jnp.asarray(content), params, targets,
            config.weights.arrays(spec))
    compiled = vg.lower(*args).compile()
    jax.block_until_ready(compiled(*args))
    runs[name] = (compiled, args, _gib(compiled.memory_analysis()))
  times = {name: [] for name in runs}
  for _ in range(repeats):
    for name, (compiled, args, _) in runs.items():
      t = time.perf_counter()
      jax.block_until_ready(compiled(*args))
      times[name].append(time.perf_counter() - t)
  return {name: (runs[name][2], 1e3 * bm.median(times[name]))
          for name in runs}


def main(argv):
  if len(argv) > 1:
    raise NSTError(f"unexpected arguments: {' '.join(argv[1:])}")
  content_full = io.load_image(FLAGS.content or os.path.join(
      os.path.dirname(__file__), "..", "..", "shared", "images",
      "tubingen.jpg"))
  style_full = io.load_image(FLAGS.style[0] if FLAGS.style else os.path.join(
      os.path.dirname(__file__), "..", "..", "shared", "images",
      "starry_night.jpg"))
  params = vgg.prepare_params(vgg.load_params("vgg16"), FLAGS.conv)
  reps = [("gram", transfer.TransferConfig().objective_spec().style)]
  reps += [(f"content_aware K={k} s={s}",
            guided.ContentAware(clusters=k, window=s))
           for s in FLAGS.windows for k in FLAGS.clusters]
  print(f"device: {cli.device_description()}, jax {jax.__version__}, "
        f"{time.strftime('%Y-%m-%d')}", flush=True)
  for size in FLAGS.sizes:
    shape = io.long_edge_shape(content_full.shape[:2], size)
    content = io.resize_to(content_full, shape)
    style = io.resize_long_edge(style_full, size)
    out = measure(params, content, style, reps, FLAGS.repeats)
    g_mem, g_ms = out["gram"]
    print(f"\n{size} px ({shape[1]}x{shape[0]}), median of {FLAGS.repeats}",
          flush=True)
    print("| representation | XLA buffers (GiB) | more than gram (MiB) | "
          "ms / evaluation | × gram |\n| --- | --- | --- | --- | --- |")
    for name, (mem, ms) in out.items():
      print(f"| {name} | {mem:.3f} | {1024 * (mem - g_mem):.1f} | {ms:.0f} | "
            f"{ms / g_ms:.2f} |", flush=True)


if __name__ == "__main__":
  cli.run(main)
