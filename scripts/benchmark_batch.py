"""A folder of photos: one batched command vs a one-by-one loop, side by side.

  python scripts/benchmark_batch.py --images=6 --size=128 --iterations=50

Makes ``--images`` crops of examples/chelsea.png (two thirds landscape 4:3,
one third portrait 3:4: two shapes, two buckets) in a temporary folder and
stylises each with examples/style_brushwork.png four ways, in this one run:

* ``nst-stylize --output_dir`` over the folder (one process: the network
  loaded once, each shape compiled once, equal shapes batched);
* the bash loop the peers' maintainers suggest: one ``nst-stylize`` process
  per photo, without the compilation cache (each process compiles) and with
  it (a fresh cache directory: the first process per shape compiles, the
  others load the program);
* in this process, ``nst_jax.batch.stylize_batch`` against a loop of
  ``transfer.stylize`` (network loaded once), each run twice and the second
  (warm) run timed: the batching alone, without loading or compiling.

Prints images/s of each and the ratios.
"""

import os
import pathlib
import subprocess
import sys
import tempfile
import time

from absl import flags

from nst_jax import batch
from nst_jax import cli
from nst_jax import grid
from nst_jax import io
from nst_jax import transfer
from nst_jax import vgg
from nst_jax.errors import NSTError

ROOT = pathlib.Path(__file__).resolve().parents[1]
cli.define_flags("size", "iterations", defaults={"size": 128,
                                                 "iterations": 50})
flags.DEFINE_integer("images", 6, "Photos in the folder (two thirds "
                     "landscape, one third portrait).", lower_bound=1)
FLAGS = flags.FLAGS
STYLE = ROOT / "examples" / "style_brushwork.png"


def _photos(folder: pathlib.Path, count: int, size: int):
  """``count`` crops of chelsea.png at ``size`` px, landscape then
  portrait; returns their paths."""
  image = io.load_image(ROOT / "examples" / "chelsea.png")   # 300x451
  paths = []
  for k in range(count):
    if k < count - count // 3:   # landscape 4:3, sliding to the right
      x = (k * 37) % 51
      crop, shape = image[:300, x:x + 400], (size * 3 // 4, size)
    else:                        # portrait 3:4
      x = 40 + (k * 53) % 180
      crop, shape = image[:300, x:x + 225], (size, size * 3 // 4)
    path = folder / f"photo{k}.png"
    io.save_image(path, io.resize_to(crop, shape))
    paths.append(path)
  return paths


def _command(*args, cache: str) -> float:
  """Seconds one ``nst-stylize`` run takes (a new process)."""
  env = dict(os.environ, NST_JAX_CACHE_DIR=cache, PYTHONUNBUFFERED="1")
  t = time.perf_counter()
  proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "stylize.py"),
                         *map(str, args), "--quiet"], env=env,
                        capture_output=True, text=True)
  seconds = time.perf_counter() - t
  if proc.returncode != 0:
    raise NSTError(f"nst-stylize failed: {proc.stderr.strip()[-500:]}")
  return seconds


def main(argv):
  if len(argv) > 1:
    raise NSTError(f"unexpected arguments: {' '.join(argv[1:])}")
  n, size, iterations = FLAGS.images, FLAGS.size, FLAGS.iterations
  common = (f"--style={STYLE}", f"--size={size}",
            f"--iterations={iterations}")
  rows = {}
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    folder = tmp / "photos"
    folder.mkdir()
    paths = _photos(folder, n, size)

    cache = tmp / "cache_batch"
    rows["nst-stylize --output_dir (one process)"] = _command(
        f"--content={folder}", f"--output_dir={tmp / 'out_batch'}", *common,
        cache=str(cache))
    rows["loop of nst-stylize, cache off"] = sum(
        _command(f"--content={p}", f"--output={tmp / 'loop_off' / p.name}",
                 *common, cache="off") for p in paths)
    cache = tmp / "cache_loop"
    rows["loop of nst-stylize, cache on"] = sum(
        _command(f"--content={p}", f"--output={tmp / 'loop_on' / p.name}",
                 *common, cache=str(cache)) for p in paths)

    # In this process: the batching alone (warm runs).
    params = vgg.load_params("vgg16")
    contents = [io.load_image(p) for p in paths]
    style = io.resize_long_edge(io.load_image(STYLE), size)
    config = cli.transfer_config(grid=True)
    axes = grid.GridAxes(style_weight=(
        config.objective_spec().suggested_style_weight(),))
    single = config.replace(weights=dict(style=axes.style_weight[0]))

    def batched():
      return list(batch.stylize_batch(params, contents, [style], axes,
                                      config))

    def loop():
      return [transfer.stylize(params, c, [style], single, log_every=0)
              for c in contents]

    for name, run in (("stylize_batch, warm", batched),
                      ("loop of transfer.stylize, warm", loop)):
      run()
      t = time.perf_counter()
      run()
      rows[name] = time.perf_counter() - t

  shapes = sorted({c.shape[:2] for c in contents})
  print(f"{n} photos ({', '.join(f'{w}x{h}' for h, w in shapes)}), "
        f"{iterations} iterations, {cli.device_description()}, "
        f"{time.strftime('%Y-%m-%d')}")
  for name, seconds in rows.items():
    print(f"{name:40s} {seconds:8.1f} s  {n / seconds:6.3f} images/s")
  first = "nst-stylize --output_dir (one process)"
  for other in ("loop of nst-stylize, cache off",
                "loop of nst-stylize, cache on"):
    print(f"images/s, batch command / {other}: "
          f"{rows[other] / rows[first]:.2f}x")
  print("images/s, stylize_batch / loop of transfer.stylize (warm): "
        f"{rows['loop of transfer.stylize, warm'] / rows['stylize_batch, warm']:.2f}x")


if __name__ == "__main__":
  cli.run(main)
