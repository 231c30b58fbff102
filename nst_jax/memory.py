"""How much memory a run needs, and how much the device has.

Estimates come from shapes alone (``vgg.feature_shapes``; nothing is
allocated), so a run that cannot fit is refused before any work, and the
grid chooses how many cells to run at once.
"""

from typing import Sequence, Tuple

import jax
import numpy as np

from nst_jax import networks
from nst_jax import vgg
from nst_jax.errors import NSTError, param

# Copies of every activation the solver loop holds (calibrated below).
ACTIVATION_COPIES = 1.2


def estimate_bytes(network: str, layers: Sequence[str], shape: Tuple[int, int],
                   *, pooling: str = "max", history_size: int = 10,
                   conv: str = "auto") -> int:
  """Bytes one run needs for an ``(H, W)`` image reading ``layers``.

  1.2 float32 copies of every activation up to the deepest layer (what the
  backward pass keeps, and the cotangents as they are freed), and L-BFGS's
  ``2·history_size`` image-sized vectors besides a few working copies.
  Calibrated on XLA:CPU's buffer assignment of the whole solver loop (VGG-16,
  2026-11-22, since the 2×2 max pool has its own gradient): 1.02–1.36
  copies at 256x192, 1.01–1.08 at 512x384 and 1.01–1.06 at 1024x768 (1.90
  GiB; the estimate says 2.2), with direct or Winograd convolutions, with or
  without gradient checkpointing, which saves nothing on XLA:CPU: the peak
  is the backward pass of the full-resolution first block, which must be
  held (or recomputed) either way. Winograd convolutions (``conv``) add
  their transformed kernels, 8× the weights of the layers they cover
  (``vgg.prepare_params``).
  """
  names = networks.layer_names(network)
  deepest = max(layers, key=names.index)
  shapes = vgg.feature_shapes(network, shape, names[:names.index(deepest) + 1],
                              pooling)
  activations = sum(int(np.prod(s)) for s in shapes.values())
  image = shape[0] * shape[1] * 3
  kernels = 0
  if vgg.resolve_conv(conv) == "winograd":
    param_shapes = networks.param_shapes(network)
    kernels = sum(8 * int(np.prod(param_shapes[l]["kernel"]))
                  for l in vgg.winograd_layers(network)
                  if names.index(l) <= names.index(deepest))
  return int(4 * (ACTIVATION_COPIES * activations + kernels
                  + (2 * history_size + 8) * image))


def available_bytes() -> int | None:
  """Memory the default device can use, in bytes (None if unknown)."""
  device = jax.devices()[0]
  try:
    stats = device.memory_stats() or {}
  except Exception:  # pylint: disable=broad-except  # backends differ
    stats = {}
  if "bytes_limit" in stats:
    return int(stats["bytes_limit"])
  try:
    import os  # pylint: disable=g-import-not-at-top
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (ValueError, OSError, AttributeError):
    return None


def check_fits(need: int, shape: Tuple[int, int]) -> int:
  """Refuses a run of ``need`` bytes the device cannot hold; returns it."""
  have = available_bytes()
  if have is not None and need > have:
    raise NSTError(
        f"a {shape[1]}x{shape[0]} transfer needs about {need / 2**30:.1f} GiB "
        f"but the device has {have / 2**30:.1f} GiB: use a smaller "
        f"{param('size')}")
  return need
