"""Tiled against untiled: peak memory and seconds per iteration of one
transfer, one size and one ``--tile_size`` per process (a clean peak RSS).

  flock /tmp/nst_heavy.lock python scripts/tiling_benchmark.py --size=1024 \
      --tile_size=0 --iterations=5 --json=out/tiling.jsonl
  sh scripts/tiling_benchmark.sh      # every row of docs/benchmarks.md

Runs ``transfer.stylize`` (VGG-16, Gram, optax L-BFGS, content init; the
content and style images resized to ``--size``) and appends one JSON line:
the shape, the tiling (``transfer.tiling_message``), the memory estimate,
the process's peak resident memory (``resource.getrusage``: everything the
process held, weights and JAX runtime included), seconds per iteration after
the first (from the progress callbacks between iterations; the first
includes compilation), the first iteration's seconds, and the final loss.
"""

import json
import os
import resource
import time

from absl import flags

from nst_jax import cli
from nst_jax import io
from nst_jax import transfer
from nst_jax import vgg
from nst_jax.errors import NSTError

_SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), os.pardir, "shared", "images")
cli.define_flags("content", "style", "size", "iterations", "history_size",
                 "tile_size", "image_devices", "conv",
                 defaults={"content": os.path.join(_SHARED, "tubingen.jpg"),
                           "style": [os.path.join(_SHARED,
                                                  "starry_night.jpg")],
                           "size": 1024, "iterations": 5})
flags.DEFINE_string("json", None, "Append the result as one JSON line here.")
flags.DEFINE_enum("mode", "run", ["run", "overhead", "buffers"],
                  "run: one transfer (peak memory, seconds per iteration); "
                  "overhead: in one process, value-and-gradient untiled and "
                  "tiled at --tile_size, interleaved --repeats times (median "
                  "ratio); buffers: XLA's buffer assignment of one value-and-"
                  "gradient untiled and tiled at each of --sizes (compiled "
                  "from shapes, nothing allocated).")
flags.DEFINE_list("sizes", ["1024", "2048", "4096", "8192"], "buffers: long "
                  "edges.")
flags.DEFINE_integer("repeats", 5, "overhead: interleaved repeats.")
FLAGS = flags.FLAGS


def overhead(config, params, content, style, shape):
  """Median seconds and XLA temporary bytes of one value-and-gradient,
  untiled and tiled — with pass 2 running every window again and with it
  reusing the last group's pass-1 activations (``Plan.reuse_last``) —
  measured alternately in this process (the ratios are the tiling's
  overhead)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  spec = config.objective_spec()
  params = vgg.prepare_params(params, config.conv, spec.layers)
  targets = transfer.style_targets(params, content, [style], config)
  weights = config.weights.arrays(spec)
  x = jax.numpy.asarray(content)
  programs, temp = {}, {}
  tile = transfer.tile_size_for(config, shape)
  if not tile:
    raise NSTError(f"--mode=overhead compares untiled with tiled: --tile_size="
                   f"{FLAGS.tile_size} leaves {shape[1]}x{shape[0]} untiled; "
                   "pass a tile size in pixels")
  for name, tile_size, reuse in (("untiled", 0, True),
                                 ("tiled_rerun", tile, False),
                                 ("tiled_reuse", tile, True)):
    fun, _ = transfer.objective_for(config.replace(tile_size=tile_size),
                                    shape, reuse_last=reuse)
    compiled = jax.jit(jax.value_and_grad(fun, has_aux=True)).lower(
        x, params, targets, weights).compile()
    temp[name] = compiled.memory_analysis().temp_size_in_bytes
    programs[name] = compiled
    jax.block_until_ready(compiled(x, params, targets, weights))
  times = {n: [] for n in programs}
  for _ in range(FLAGS.repeats):
    for name, program in programs.items():
      start = time.perf_counter()
      jax.block_until_ready(program(x, params, targets, weights))
      times[name].append(time.perf_counter() - start)
  med = {n: float(np.median(t)) for n, t in times.items()}
  out = {}
  for name in programs:
    out[f"{name}_seconds"] = round(med[name], 3)
    out[f"{name}_temp_gib"] = round(temp[name] / 2**30, 3)
    if name != "untiled":
      out[f"{name}_ratio"] = round(med[name] / med["untiled"], 3)
  return out


def buffers(config, params, content_shape):
  """Per long edge of ``--sizes``: XLA's bytes (arguments + temporaries) of
  one value-and-gradient, untiled and at ``--tile_size``, compiled from
  shapes alone."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from nst_jax import objective  # pylint: disable=g-import-not-at-top
  spec = config.objective_spec()
  params = vgg.prepare_params(params, config.conv, spec.layers)
  weights = config.weights.arrays(spec)
  f32 = lambda shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  rows = []
  for size in map(int, FLAGS.sizes):
    shape = io.long_edge_shape(content_shape, size)
    content = vgg.feature_shapes(config.network, shape, spec.content_layers,
                                 spec.pooling)
    channels = vgg.feature_shapes(config.network, (64, 64), spec.style_layers,
                                  spec.pooling)
    targets = objective.Targets(
        {l: f32(s) for l, s in content.items()},
        {l: f32((1, s[2], s[2])) for l, s in channels.items()}, f32((1,)))
    row = {"mode": "buffers", "size": size, "shape": list(shape),
           "tile_size": int(FLAGS.tile_size)}
    for name, tile in (("untiled", 0), ("tiled", int(FLAGS.tile_size))):
      fun, _ = transfer.objective_for(config.replace(tile_size=tile), shape)
      start = time.perf_counter()
      compiled = jax.jit(jax.value_and_grad(fun, has_aux=True)).lower(
          f32((*shape, 3)), params, targets, weights).compile()
      m = compiled.memory_analysis()
      row[f"{name}_gib"] = round((m.temp_size_in_bytes
                                  + m.argument_size_in_bytes) / 2**30, 2)
      row[f"{name}_compile_seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(row), flush=True)
    rows.append(row)
  return rows


def main(argv):
  del argv
  config = transfer.TransferConfig().replace(
      solver=dict(maxiter=FLAGS.iterations, history_size=FLAGS.history_size),
      tile_size=FLAGS.tile_size, image_devices=FLAGS.image_devices,
      conv=FLAGS.conv)
  content = io.load_image(FLAGS.content)
  shape = io.long_edge_shape(content.shape[:2], FLAGS.size)
  content = io.resize_to(content, shape)
  style = io.resize_long_edge(io.load_image(FLAGS.style[0]), FLAGS.size)
  how = transfer.tiling_message(config, shape)
  print(f"{shape[1]}x{shape[0]}: {how}", flush=True)
  params = vgg.load_params("vgg16")
  if FLAGS.mode == "buffers":
    rows = buffers(config, params, content.shape[:2])
    if FLAGS.json:
      with open(FLAGS.json, "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return
  if FLAGS.mode == "overhead":
    row = {"mode": "overhead", "size": FLAGS.size, "shape": list(shape),
           "tile_size": FLAGS.tile_size, "repeats": FLAGS.repeats,
           **overhead(config, params, content, style, shape),
           "device": cli.device_description()}
    print(json.dumps(row), flush=True)
    if FLAGS.json:
      with open(FLAGS.json, "a") as f:
        f.write(json.dumps(row) + "\n")
    return
  marks = []

  def on_progress(p):
    if p.iteration > 0:
      marks.append((p.iteration, p.seconds))
      print(f"  iteration {p.iteration}: {p.seconds:.1f} s", flush=True)

  start = time.perf_counter()
  result = transfer.stylize(params, content, [style], config,
                            log_every=10**9, on_progress=on_progress,
                            progress_seconds=0.01, terms_seconds=1e12)
  wall = time.perf_counter() - start
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  (i0, t0), (i1, t1) = marks[0], marks[-1]
  row = {"size": FLAGS.size, "shape": list(shape),
         "tile_size": transfer.tile_size_for(config, shape),
         "history_size": FLAGS.history_size, "tiling": how,
         "estimate_gib": round(transfer.estimate_memory(config, shape)
                               / 2**30, 2),
         "peak_rss_gib": round(peak / 2**30, 2),
         "seconds_per_iteration": (round((t1 - t0) / (i1 - i0), 2)
                                   if i1 > i0 else None),
         "first_iteration_seconds": round(t0, 1),
         "iterations": result.iterations, "status": result.status,
         "loss": result.loss_history[-1]["total"], "wall_seconds": round(
             wall, 1), "device": cli.device_description()}
  print(json.dumps(row), flush=True)
  if FLAGS.json:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.json)), exist_ok=True)
    with open(FLAGS.json, "a") as f:
      f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
  cli.run(main)
