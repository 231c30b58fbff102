"""A local web app to paint in the browser, with a JSON API.

The ``nst-serve`` command (:mod:`nst_jax.serve.command`), runnable from a
checkout once the package is installed (``make install``)::

  python scripts/serve.py --port=8000 --data_dir=out/serve
"""

from nst_jax.serve.command import run

if __name__ == "__main__":
  run()
