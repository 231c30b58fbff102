"""How much memory a run needs, and how much the device has.

Estimates come from shapes alone (``vgg.feature_shapes``; nothing is
allocated), so a run that cannot fit is refused before any work, and the
grid chooses how many cells to run at once.

The estimates count XLA's buffers (``estimate_bytes``,
``tiling.estimate_bytes``); the process around them (the JAX runtime, the
weights, the compiled programs, the images read from disk and their resized
copies) is ``process_overhead_bytes``, calibrated against measured peaks.
A memory budget (``budget_bytes``: a number of bytes, ``"8GB"``, or the
device's memory less ``BUDGET_MARGIN``) less that overhead is what
``--tile_size=auto``'s estimates may use (``buffer_budget``).
"""

import math
import re
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


# --- the memory budget and the process around XLA's buffers --------------------

# Binary units: "8GB" is 8 GiB (a GPU sold as "80 GB" reports about 79 GiB).
_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_BYTES = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmgt]?)(?:i?b)?\s*$",
                    re.IGNORECASE)

# Share of the device's memory the default budget leaves to everything else
# (other processes, the driver's and the allocator's own use).
BUDGET_MARGIN = 0.10

# The process beyond XLA's buffers (``process_overhead_bytes``), fitted to
# ``CPU_PEAKS``: untiled a constant (the JAX runtime, the weights, the
# compiled programs; the estimate's 1.2 copies of the activations cover the
# image-sized host copies); tiled a larger constant (the tile programs) and
# bytes per pixel of the content image that the tiled estimate does not
# count (the images' host copies, the solver's working copies of the whole
# image: about 4-5 float32 copies of an RGB image).
PROCESS_BASE_BYTES = int(0.45 * 2**30)
TILED_BASE_BYTES = int(0.80 * 2**30)
TILED_BYTES_PER_PIXEL = 56

# The peaks they were fitted to: whole runs of VGG-16 (Gram, optax L-BFGS,
# Tübingen / The Starry Night), one per process, the process's peak RSS
# (``getrusage``; /usr/bin/time agrees): ``((H, W), tile (0: untiled),
# history_size, peak GiB, how)``. 2-core CPU VM, jax 0.10.2, 2026-12-07.
CPU_PEAKS = (
    ((768, 1024), 0, 10, 2.93, "tiling_benchmark.py, 2 iterations"),
    ((1536, 2048), 0, 10, 9.02, "tiling_benchmark.py, 2 iterations"),
    ((1536, 2048), 1024, 10, 4.88, "tiling_benchmark.py, 2 iterations"),
    ((768, 1024), 512, 10, 2.18, "gpu_report.py memory_run, 1 iteration"),
    ((1536, 2048), 512, 5, 3.19, "gpu_report.py memory_run, 1 iteration"),
    ((3072, 4096), 512, 5, 7.00, "gpu_report.py memory_run, 1 iteration; "
     "what --memory_budget=8GB --history_size=5 chooses"),
    ((3072, 4096), 512, 5, 7.30, "nst-stylize --memory_budget=8GB "
     "--history_size=5 --pyramid_base=0, 1 iteration (auto chose the tiles)"),
)


def parse_bytes(value) -> int:
  """Bytes of a budget written as ``8GB``, ``8GiB``, ``8g``, ``512MB``,
  ``1.5TB`` or a plain number of bytes; units are binary (K = 2¹⁰, M = 2²⁰,
  G = 2³⁰, T = 2⁴⁰ bytes, with or without ``B``/``iB``). Raises
  ``NSTError`` naming ``memory_budget`` for anything else or for a value
  that is not positive."""
  if isinstance(value, (int, float)) and not isinstance(value, bool):
    number, unit = float(value), ""
  else:
    match = _BYTES.match(str(value))
    if match is None:
      raise NSTError(f"{param('memory_budget')} must be a size such as 8GB, "
                     f"512MB or a number of bytes, got {value!r}")
    number, unit = float(match.group(1)), match.group(2).lower()
  if not math.isfinite(number * _UNITS[unit]):
    raise NSTError(f"{param('memory_budget')} must be a finite size, got "
                   f"{value!r}")
  size = int(number * _UNITS[unit])
  if size <= 0:
    raise NSTError(f"{param('memory_budget')} must be positive, got {value!r}")
  return size


def default_budget(available: int | None) -> int | None:
  """The budget of a device with ``available`` bytes (``available_bytes``):
  ``(1 − BUDGET_MARGIN)·available``; None when unknown."""
  if available is None:
    return None
  return int((1.0 - BUDGET_MARGIN) * available)


def budget_bytes(budget=None) -> int | None:
  """``budget`` (``parse_bytes``) in bytes, or, for None, the device's
  (``default_budget(available_bytes())``; None when unknown)."""
  if budget is None:
    return default_budget(available_bytes())
  return parse_bytes(budget)


def process_overhead_bytes(shape: Tuple[int, int], *, tiled: bool) -> int:
  """Bytes a run's process holds beyond the XLA buffers the estimates count,
  for an ``(H, W)`` image: untiled ``PROCESS_BASE_BYTES``, tiled
  ``TILED_BASE_BYTES + TILED_BYTES_PER_PIXEL·H·W``. Fitted to the peak RSS
  of whole runs on XLA:CPU (``CPU_PEAKS``; within 7 % of each from 1024 to
  4096 px, docs/gpu.md); on a GPU the same figure is a margin for what the
  device holds beside the buffers until the GPU report measures it."""
  h, w = int(shape[0]), int(shape[1])
  if not tiled:
    return PROCESS_BASE_BYTES
  return int(TILED_BASE_BYTES + TILED_BYTES_PER_PIXEL * h * w)


def predicted_peak_bytes(estimate: int, shape: Tuple[int, int], *,
                         tiled: bool) -> int:
  """The predicted peak of a run whose buffers are estimated at
  ``estimate`` bytes: ``estimate + process_overhead_bytes(shape, tiled)``."""
  return int(estimate) + process_overhead_bytes(shape, tiled=tiled)


def buffer_budget(budget, shape: Tuple[int, int]) -> int | None:
  """Bytes the estimate of an ``(H, W)`` run may take of ``budget``
  (``budget_bytes``): the budget less ``process_overhead_bytes(shape,
  tiled=True)`` (the larger overhead, so an untiled run is held to it too),
  at least 0; None when the device's memory is unknown (anything fits).
  ``--tile_size=auto`` tiles when the untiled estimate exceeds it and picks
  the largest tile whose estimate does not (``problem.evaluation``)."""
  have = budget_bytes(budget)
  if have is None:
    return None
  return max(0, have - process_overhead_bytes(shape, tiled=True))
