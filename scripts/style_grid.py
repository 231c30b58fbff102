"""Runs a whole grid of style transfers as one batched, sharded program.

The ``nst-grid`` command (:mod:`nst_jax.commands.grid`), runnable from a
checkout once the package is installed (``make install``)::

  python scripts/style_grid.py --content=photo.jpg --style=a.jpg,b.jpg \\
      --style_weight=1e6,1e7 --seed=0,1 --init=noise --output_dir=out/grid
"""

from nst_jax.commands.grid import run

if __name__ == "__main__":
  run()
