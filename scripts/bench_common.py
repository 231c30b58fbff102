"""What the benchmark scripts measure with, apart from PyTorch: analytic conv
FLOP counts, device peaks (NVIDIA data-sheet tables, /proc/cpuinfo), memory
probes (/proc/self), trace helpers, per-layer convolution timings, and the
content:style pairs the studies take.

Benchmark tooling, not library functionality: it lives beside
``scripts/benchmark.py`` and ``scripts/benchmark_grid.py``, which import it
as a sibling module (``import bench_common``); tests load it by path. It uses
JAX and ``nst_jax`` only, never torch (that is ``torch_reference.py``).
"""

import os
import time
from typing import List, NamedTuple, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import networks
from nst_jax import vgg
from nst_jax.errors import NSTError

# Dense peak throughput in TFLOP/s per precision policy, from NVIDIA's data
# sheets (H100 SXM5 / H200 SXM: FP32 67, TF32 494.7, BF16 989.4 without
# sparsity; H100 PCIe: 51.2, 378, 756). Matched on ``device_kind``.
GPU_PEAK_TFLOPS = {
    "H100 PCIe": {"float32": 51.2, "tf32": 378.0, "bf16": 756.0},
    "H100": {"float32": 67.0, "tf32": 494.7, "bf16": 989.4},
    "H200": {"float32": 67.0, "tf32": 494.7, "bf16": 989.4},
}


def conv_flops(network: str, shape: Tuple[int, int], layers: Sequence[str]
               ) -> int:
  """Forward FLOPs of the convolutions up to the deepest of ``layers`` for one
  ``(H, W)`` image: ``2·H_out·W_out·k²·C_in·C_out`` per convolution (a
  multiply-add counts 2), sizes walked through the pools analytically.

  One loss evaluation (value and input gradient, no weight gradients) costs
  about twice this (``evaluation_flops``).
  """
  names = networks.layer_names(network)
  deepest = max(names.index(l) for l in layers)
  h, w = shape
  total = 0
  for layer in networks.NETWORKS[network][:deepest + 1]:
    if isinstance(layer, networks.Conv):
      k, p, s = layer.kernel_size, layer.padding, layer.stride
      h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
      total += 2 * h * w * k * k * layer.in_channels * layer.out_channels
    elif isinstance(layer, networks.Pool):
      h = (h - layer.window) // layer.stride + 1
      w = (w - layer.window) // layer.stride + 1
  return total


def evaluation_flops(network: str, shape: Tuple[int, int],
                     layers: Sequence[str]) -> int:
  """Conv FLOPs of one value-and-input-gradient: forward plus the input
  gradient, each convolution's input gradient being a convolution of the
  same size (2× forward). Grams, pools and losses are not counted (< 2 %)."""
  return 2 * conv_flops(network, shape, layers)


def cpu_peak_tflops() -> Tuple[float | None, str]:
  """Nominal float32 peak of this machine's CPUs from /proc/cpuinfo: cores ×
  clock × FLOP/cycle (64 with AVX-512, 32 with AVX2+FMA: two FMA units of
  16 or 8 lanes). Returns (TFLOP/s or None, how it was derived)."""
  try:
    with open("/proc/cpuinfo") as f:
      text = f.read()
  except OSError:
    return None, "no /proc/cpuinfo"
  mhz = [float(l.split(":")[1]) for l in text.splitlines()
         if l.startswith("cpu MHz")]
  flags = next((l.split(":")[1].split() for l in text.splitlines()
                if l.startswith("flags")), [])
  per_cycle = 64 if "avx512f" in flags else 32 if "fma" in flags else 8
  cores = len(os.sched_getaffinity(0))
  if not mhz:
    return None, "no clock in /proc/cpuinfo"
  peak = cores * mhz[0] * 1e6 * per_cycle / 1e12
  return peak, (f"nominal: {cores} cores x {mhz[0] / 1e3:.2f} GHz x "
                f"{per_cycle} FLOP/cycle")


def cpu_model() -> str:
  """The CPU's model name from /proc/cpuinfo."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return "unknown CPU"


def peak_tflops(platform: str, device_kind: str, precision: str
                ) -> Tuple[float | None, str]:
  """The device's peak for ``precision`` (TFLOP/s) and where it came from;
  ``(None, reason)`` when unknown (then pass ``--peak_tflops``)."""
  if platform == "cpu":
    return cpu_peak_tflops()
  for name, table in GPU_PEAK_TFLOPS.items():
    if all(part in device_kind for part in name.split()):
      return table[precision], f"data sheet, {name} {precision} dense"
  return None, f"no table entry for {device_kind!r}"


# --- memory -----------------------------------------------------------------

def _status_kib(field: str) -> int | None:
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith(field + ":"):
          return int(line.split()[1])
  except OSError:
    pass
  return None


def rss_bytes() -> int | None:
  """Resident set size of this process (``VmRSS``)."""
  kib = _status_kib("VmRSS")
  return None if kib is None else kib * 1024


def peak_rss_bytes() -> int | None:
  """High-water mark of the resident set (``VmHWM``)."""
  kib = _status_kib("VmHWM")
  return None if kib is None else kib * 1024


def reset_peak_rss() -> bool:
  """Resets ``VmHWM`` to the current RSS (Linux ≥ 4.0: writing 5 to
  ``/proc/self/clear_refs``); False where that is not possible."""
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
    return True
  except OSError:
    return False


class PeakRSS:
  """Context manager: peak RSS above the RSS at entry, in bytes (``delta``),
  or None where ``VmHWM`` cannot be reset."""

  def __enter__(self):
    self.ok = reset_peak_rss()
    self.start = rss_bytes()
    self.delta = None
    return self

  def __exit__(self, *exc):
    peak = peak_rss_bytes()
    if self.ok and peak is not None and self.start is not None:
      self.delta = peak - self.start


# --- traces and per-layer timings -------------------------------------------

def time_to_reach(trace: Sequence[Tuple[float, float]], target: float
                  ) -> float | None:
  """Seconds until the best loss so far first reaches ``target`` (None:
  never)."""
  for seconds, loss in trace:
    if loss <= target:
      return seconds
  return None


def median(values: Sequence[float]) -> float:
  """The median of ``values`` (float64)."""
  return float(np.median(np.asarray(values, np.float64)))


class LayerTiming(NamedTuple):
  """One convolution layer at one input size: its input ``(H, W, C_in)``,
  output channels, forward FLOPs, and the median ms of forward plus input
  gradient with the direct and (where the layer has them) Winograd
  kernels."""
  layer: str
  shape: Tuple[int, int, int]
  out_channels: int
  gflop: float
  direct_ms: float
  winograd_ms: float | None


def conv_layer_timings(params, prepared, shape: Tuple[int, int],
                       deepest: str, repeats: int = 5, seed: int = 0
                       ) -> List[LayerTiming]:
  """Times each convolution of the network up to ``deepest`` alone at the
  size it sees for an ``(H, W)`` image: forward and input gradient (what an
  evaluation costs), direct (``params``) and Winograd (``prepared``, from
  ``vgg.prepare_params(params, "winograd")``) interleaved, after one warm-up
  call each; random inputs and cotangents."""

  def program(p, stride, padding):
    def fwd_bwd(x, g):
      y, vjp = jax.vjp(lambda x: vgg._conv(x, p, stride, padding), x)  # pylint: disable=protected-access
      return y, vjp(g)[0]
    return jax.jit(fwd_bwd)

  def timed(fn, *args):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return 1e3 * (time.perf_counter() - t)

  network = vgg.network_of(params)
  names = networks.layer_names(network)
  rng = np.random.default_rng(seed)
  h, w = shape
  rows = []
  for layer in networks.NETWORKS[network][:names.index(deepest) + 1]:
    if isinstance(layer, networks.Pool):
      h = (h - layer.window) // layer.stride + 1
      w = (w - layer.window) // layer.stride + 1
    if not isinstance(layer, networks.Conv):
      continue
    k, p, s = layer.kernel_size, layer.padding, layer.stride
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    x = jnp.asarray(rng.standard_normal((1, h, w, layer.in_channels)),
                    jnp.float32)
    g = jnp.asarray(rng.standard_normal((1, ho, wo, layer.out_channels)),
                    jnp.float32)
    sides = [program(params[layer.name], s, p)]
    if "winograd_forward" in prepared[layer.name]:
      sides.append(program(prepared[layer.name], s, p))
    times = [[] for _ in sides]
    for fn in sides:
      timed(fn, x, g)
    for _ in range(repeats):
      for fn, out in zip(sides, times):
        out.append(timed(fn, x, g))
    flops = 2 * ho * wo * k * k * layer.in_channels * layer.out_channels
    rows.append(LayerTiming(layer.name, (h, w, layer.in_channels),
                            layer.out_channels, flops / 1e9,
                            median(times[0]),
                            median(times[1]) if len(times) > 1 else None))
    h, w = ho, wo
  return rows


def stem(path: str) -> str:
  """A file's name without folder and extension."""
  return os.path.splitext(os.path.basename(path))[0]


def parse_pairs(items, *, extra: str | None = None) -> list:
  """Tuples ``(content, style)`` from ``content:style`` items — or, with
  ``extra`` (its name), ``(content, style, extra | None)`` from
  ``content:style[:extra]``. Raises ``NSTError`` (one line) for a bad
  item or none."""
  form = "content:style" + (f"[:{extra}]" if extra else "")
  pairs = []
  for item in items or ():
    parts = item.split(":")
    if len(parts) not in ((2, 3) if extra else (2,)):
      raise NSTError(f"--pairs: expected {form}, got {item!r}")
    pairs.append(tuple(parts) + ((None,) if extra and len(parts) == 2
                                 else ()))
  if not pairs:
    raise NSTError(f"--pairs: give at least one {form} pair")
  return pairs
