"""Textures from invented Gram matrices (Nikulin & Novak §6, Figs. 5-7).

  python scripts/generate_styles.py --output=docs/images/representations/synthetic.png

Draws a grid: one row per layer of textures whose only style constraint is a
Gram with a single non-zero entry (Fig. 5: random positions, magnitudes
``--single_magnitudes`` × the layer's scale), then rows of random sparse Grams
``|N(0, σ²)| ⊙ Bernoulli(p)`` on all ``--layers`` at once (Figs. 6-7: σ from
``--sigmas`` × each layer's scale by row, p from ``--densities`` by column),
then a row with the targets re-drawn every ``--redraw_every`` iterations. Every
picture descends from white noise with no content term
(``nst_jax.synthetic.synthesize``).
"""

import time

from absl import flags
import jax

from nst_jax import cli
from nst_jax import figures
from nst_jax import io
from nst_jax import solvers
from nst_jax import synthetic
from nst_jax import vgg
from nst_jax.errors import NSTError

flags.DEFINE_string("output", "out/synthetic_styles.png", "Output PNG (grid).")
flags.DEFINE_list("layers", ["relu1_1", "relu2_1", "relu3_1", "relu4_1"],
                  "Style layers: one Fig. 5 row each; all at once for the "
                  "sparse rows.")
flags.DEFINE_list("layer_scales", ["0.8", "7", "24", "22"], "Scale of each "
                  "layer's Gram entries: the mean Gram diagonal of The Starry "
                  "Night at 192 px, relu1_1..relu4_1 of VGG-16 (measured).")
flags.DEFINE_list("single_magnitudes", ["1", "2", "4"], "Fig. 5 columns: "
                  "magnitude of the single entry (× layer scale), each at its "
                  "own random position.")
flags.DEFINE_list("sigmas", ["0.3", "1"], "Sparse rows: σ × layer scale.")
flags.DEFINE_list("densities", ["0.01", "0.1", "0.5"], "Sparse "
                  "columns: Bernoulli p.")
flags.DEFINE_integer("redraw_every", 20, "Last row: targets re-drawn every N "
                     "iterations (0: no such row).", lower_bound=0)
cli.define_flags("size", "iterations", "seed", "network", "weights",
                 defaults={"size": 64, "iterations": 80})
flags.DEFINE_integer("cell_height", 64, "Height of each picture in the grid.",
                     lower_bound=16)
FLAGS = flags.FLAGS


def _floats(name):
  try:
    return [float(v) for v in getattr(FLAGS, name)]
  except ValueError:
    raise NSTError(f"--{name} must be comma-separated numbers") from None


def generate(params, layers, scales, magnitudes, sigmas, densities,
             redraw_every, size, iterations, seed, log=print):
  """All the grid's textures: (rows of images, rows of captions)."""
  channels = synthetic.layer_channels(params, layers)
  shape = (size, size)
  rows, labels = [], []
  run = lambda lays, draw, k, **kw: synthetic.synthesize(
      params, shape, lays, draw, iterations=iterations, seed=seed + k,
      solver=solvers.SolverConfig(maxiter=iterations), **kw)
  for layer, scale in zip(layers, scales):
    row, lab = [], []
    for k, m in enumerate(magnitudes):
      key = jax.random.fold_in(jax.random.key(seed), k)
      ki, kj = jax.random.split(key)
      i = int(jax.random.randint(ki, (), 0, channels[layer]))
      j = int(jax.random.randint(kj, (), 0, channels[layer]))
      g = synthetic.single_entry_gram(channels[layer], row=i, col=j,
                                      magnitude=m * scale)
      r = run((layer,), lambda _, g=g: {layer: g}, k)
      log(f"{layer} G[{i},{j}]={m:g}x: loss {r.initial_loss:.3g} -> "
          f"{r.final_loss:.3g}")
      row.append(r.image)
      lab.append(f"{layer} {m:g}x" if k == 0 else f"{m:g}x")
    rows.append(row)
    labels.append(lab)

  def sparse(sigma, p):
    return lambda key: {
        l: synthetic.sparse_random_gram(jax.random.fold_in(key, n), channels[l],
                                        sigma=sigma * s, density=p)
        for n, (l, s) in enumerate(zip(layers, scales))}

  for sigma in sigmas:
    row, lab = [], []
    for k, p in enumerate(densities):
      r = run(tuple(layers), sparse(sigma, p), k)
      log(f"sparse sigma={sigma:g}x p={p:g}: loss {r.initial_loss:.3g} -> "
          f"{r.final_loss:.3g}")
      row.append(r.image)
      lab.append(f"sd {sigma:g}x p {p:g}")
    rows.append(row)
    labels.append(lab)
  if redraw_every:
    row, lab = [], []
    for k, p in enumerate(densities):
      r = run(tuple(layers), sparse(sigmas[-1], p), k,
              redraw_every=redraw_every)
      log(f"sparse re-drawn every {redraw_every}, p={p:g}: {r.draws} draws")
      row.append(r.image)
      lab.append(f"p{p:g} new/{redraw_every}")
    rows.append(row)
    labels.append(lab)
  return rows, labels


def main(argv):
  if len(argv) > 1:
    raise NSTError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not FLAGS.output.lower().endswith(".png"):
    raise NSTError(f"--output must be a .png path, got {FLAGS.output}")
  scales = _floats("layer_scales")
  if len(scales) != len(FLAGS.layers):
    raise NSTError(f"got {len(scales)} layer scales for {len(FLAGS.layers)} "
                   "layers")
  params = vgg.load_params(FLAGS.weights or FLAGS.network)
  start = time.perf_counter()
  rows, labels = generate(params, tuple(FLAGS.layers), scales,
                          _floats("single_magnitudes"), _floats("sigmas"),
                          _floats("densities"), FLAGS.redraw_every, FLAGS.size,
                          FLAGS.iterations, cli.one("seed"))
  io.save_image(FLAGS.output, figures.stacked_rows(rows, labels,
                                                   height=FLAGS.cell_height))
  print(f"wrote {FLAGS.output}: {sum(len(r) for r in rows)} textures in "
        f"{time.perf_counter() - start:.0f} s on {cli.device_description()}")


if __name__ == "__main__":
  cli.run(main)
