"""Paints a content photo in the style of one or more paintings.

The ``nst-stylize`` command (:mod:`nst_jax.commands.stylize`), runnable from
a checkout once the package is installed (``make install``)::

  python scripts/stylize.py --content=photo.jpg --style=painting.jpg \\
      --output=out/result.png --size=512
"""

from nst_jax.commands.stylize import run

if __name__ == "__main__":
  run()
