"""Scores stylised results against their content photo and style image.

The command of :mod:`nst_jax.commands.evaluate`, runnable from a checkout
once the package is installed (``make install``)::

  python scripts/evaluate.py --content=photo.jpg --style=painting.jpg \\
      --results=out/a.png,out/b.png --json=out/scores.json
"""

from nst_jax.commands.evaluate import run

if __name__ == "__main__":
  run()
