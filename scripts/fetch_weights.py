"""Fetches, converts and records the pretrained weights of the networks.

The ``nst-fetch-weights`` command (:mod:`nst_jax.commands.fetch_weights`),
runnable from a checkout once the package is installed (``make install``)::

  python scripts/fetch_weights.py                    # vgg16 and alexnet
  python scripts/fetch_weights.py --network=all      # also vgg19, Caffe VGGs
  python scripts/fetch_weights.py --network=vgg19 \\
      --from_file=/path/to/vgg19-dcbb9e9d.pth         # offline
"""

from nst_jax.commands.fetch_weights import run

if __name__ == "__main__":
  run()
