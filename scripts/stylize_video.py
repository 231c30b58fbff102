"""Paints a video (a file or a folder of frames) in the style of a painting,
with temporal consistency (Ruder, Dosovitskiy & Brox, GCPR 2016).

The ``nst-stylize-video`` command (:mod:`nst_jax.commands.stylize_video`),
runnable from a checkout once the package is installed (``make install``)::

  python scripts/stylize_video.py --input=clip.mp4 --style=painting.jpg \\
      --output=out/clip.mp4
"""

from nst_jax.commands.stylize_video import run

if __name__ == "__main__":
  run()
