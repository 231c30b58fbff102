"""Benchmark helpers: conv FLOP counts, device peaks, memory probes, and a
PyTorch implementation of the same objective for ``scripts/benchmark.py``.

Not imported by ``nst_jax`` itself. torch is an optional, benchmark-only
dependency: only the ``torch_*`` functions import it, and they raise
``NSTError`` with one line saying how to install it when it is missing.

The PyTorch side is the loop of neural-style-pt (``torch.optim.LBFGS`` with
``lr=1``, ``history_size=10``, no line search, tolerances off) on the
objective of ``nst_jax.objective`` written out in torch: the same converted
weights (``weights/vgg16.npz``, HWIO transposed to OIHW), the same
normalisation of the input, the same layers and the same loss formulas
(content ``½Σ(F−P)²``; style ``Σ_l w_l Σ(Ĝ−Â)²/(4C²)`` with ``Ĝ = G/(HW)``;
squared total variation), float32, NCHW.
"""

import os
import time
from typing import Callable, Dict, List, NamedTuple, Sequence, Tuple

import numpy as np

from nst_jax import networks
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


# --- PyTorch ----------------------------------------------------------------

def import_torch():
  """``torch``, or ``NSTError`` with one line saying how to get it."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise NSTError("the PyTorch side of the benchmark needs torch: "
                   "pip install torch==2.13.0 (or pip install -e '.[torch]')"
                   ) from None
  return torch


class TorchObjective(NamedTuple):
  """``loss(image NCHW) -> scalar tensor`` and the pieces it closes over."""
  loss: Callable
  terms: Callable      # image -> {"content", "style", "tv", "total"} floats
  device: str
  dtype: object


def torch_objective(params, content: np.ndarray, styles: Sequence[np.ndarray],
                    *, content_layers: Sequence[str],
                    style_layers: Sequence[str], style_layer_weights,
                    content_weight: float, style_weight: float,
                    tv_weight: float, pooling: str = "max",
                    device: str = "cpu", style_blend_weights=None,
                    dtype: str = "float32") -> TorchObjective:
  """The objective of ``nst_jax.objective`` (paper normalisation) in torch.

  ``params`` are the converted weights (numpy or JAX arrays, HWIO); images
  are ``(H, W, 3)`` float in [0, 1]. VGG networks only. ``dtype``
  ``"float64"`` gives a reference for accuracy checks.
  """
  torch = import_torch()
  tdtype = getattr(torch, dtype)
  network = next(n for n in ("vgg19", "vgg16")
                 if set(params) == set(networks.param_shapes(n)))
  names = networks.layer_names(network)
  layers = tuple(dict.fromkeys(tuple(content_layers) + tuple(style_layers)))
  deepest = max(names.index(l) for l in layers)
  modules = []
  for layer in networks.NETWORKS[network][:deepest + 1]:
    if isinstance(layer, networks.Conv):
      conv = torch.nn.Conv2d(layer.in_channels, layer.out_channels,
                             layer.kernel_size, layer.stride, layer.padding)
      p = params[layer.name]
      with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(
            np.asarray(p["kernel"], np.float32).transpose(3, 2, 0, 1).copy()))
        conv.bias.copy_(torch.from_numpy(np.array(p["bias"], np.float32)))
      modules.append((layer.name, conv))
    elif isinstance(layer, networks.ReLU):
      # In place, as neural-style-pt's models: the next layer keeps the
      # output that ReLU's backward needs.
      modules.append((layer.name, torch.nn.ReLU(inplace=True)))
    else:
      pool = (torch.nn.MaxPool2d if pooling == "max" else torch.nn.AvgPool2d)
      modules.append((layer.name, pool(layer.window, layer.stride)))
  for _, m in modules:
    m.to(device, tdtype)
    for q in m.parameters():
      q.requires_grad_(False)
  mean = torch.tensor(networks.IMAGENET_MEAN, device=device,
                      dtype=tdtype).view(1, 3, 1, 1)
  std = torch.tensor(networks.IMAGENET_STD, device=device,
                     dtype=tdtype).view(1, 3, 1, 1)

  def feats(x):
    out, wanted = {}, set(layers)
    x = (x - mean) / std
    for name, m in modules:
      x = m(x)
      if name in wanted:
        # An in-place ReLU further on would not touch x (a conv comes first),
        # but a ReLU output that is also a conv's input is safe to keep.
        out[name] = x
    return out

  def gram(f):
    _, c, h, w = f.shape
    flat = f.reshape(c, h * w)
    return flat @ flat.t() / (h * w)

  nchw = lambda a: torch_image(a, device, tdtype)

  with torch.no_grad():
    content_targets = {l: v.clone() for l, v in
                       feats(nchw(content)).items() if l in content_layers}
    blend = np.ones(len(styles)) if style_blend_weights is None else np.asarray(
        style_blend_weights, np.float64)
    blend = blend / blend.sum()
    style_targets = []
    for s in styles:
      f = feats(nchw(s))
      style_targets.append({l: gram(f[l]) for l in style_layers})
  layer_weights = [float(w) for w in style_layer_weights]

  def terms(x):
    f = feats(x)
    content = sum(0.5 * torch.sum((f[l] - content_targets[l]) ** 2)
                  for l in content_layers)
    style = 0.0
    for w, l in zip(layer_weights, style_layers):
      g = gram(f[l])
      c = g.shape[0]
      per = sum(float(b) * torch.sum((g - t[l]) ** 2)
                for b, t in zip(blend, style_targets)) / (4.0 * c * c)
      style = style + w * per
    tv = (torch.sum((x[:, :, 1:, :] - x[:, :, :-1, :]) ** 2)
          + torch.sum((x[:, :, :, 1:] - x[:, :, :, :-1]) ** 2))
    out = {"content": content_weight * content, "style": style_weight * style,
           "tv": tv_weight * tv}
    out["total"] = out["content"] + out["style"] + out["tv"]
    return out

  return TorchObjective(lambda x: terms(x)["total"],
                        lambda x: {k: float(v) for k, v in terms(x).items()},
                        device, tdtype)


def torch_image(image: np.ndarray, device: str, dtype=None):
  """``(H, W, 3)`` → an NCHW tensor on ``device`` (float32 by default)."""
  torch = import_torch()
  return torch.from_numpy(np.ascontiguousarray(
      np.asarray(image).transpose(2, 0, 1)[None])).to(
          device, dtype or torch.float32)


def torch_value_and_grad(objective: TorchObjective, image: np.ndarray
                         ) -> Tuple[float, np.ndarray]:
  """The loss and its gradient ``(H, W, 3)`` at ``image``."""
  x = torch_image(image, objective.device,
                  objective.dtype).requires_grad_(True)
  loss = objective.loss(x)
  loss.backward()
  return float(loss.detach()), x.grad[0].permute(1, 2, 0).cpu().numpy()


class TorchRun(NamedTuple):
  """One ``torch.optim.LBFGS`` run: seconds, iterations, evaluations, final
  loss, and ``(seconds since start, loss)`` at every evaluation."""
  seconds: float
  iterations: int
  evaluations: int
  final_loss: float
  trace: List[Tuple[float, float]]
  image: np.ndarray


def torch_lbfgs(objective: TorchObjective, x0: np.ndarray, iterations: int,
                history_size: int = 10) -> TorchRun:
  """neural-style-pt's optimisation: one ``LBFGS.step`` with ``max_iter =
  iterations``, ``lr=1``, no line search, tolerances disabled (-1)."""
  torch = import_torch()
  img = torch_image(x0, objective.device).requires_grad_(True)
  opt = torch.optim.LBFGS([img], lr=1, max_iter=iterations,
                          history_size=history_size, tolerance_grad=-1,
                          tolerance_change=-1, line_search_fn=None)
  trace: List[Tuple[float, float]] = []

  def closure():
    opt.zero_grad()
    loss = objective.loss(img)
    loss.backward()
    trace.append((time.perf_counter() - start, float(loss.detach())))
    return loss

  _sync(torch, objective.device)
  start = time.perf_counter()
  opt.step(closure)
  _sync(torch, objective.device)
  seconds = time.perf_counter() - start
  state = opt.state[img]
  with torch.no_grad():
    final = float(objective.loss(img))
  image = img.detach()[0].permute(1, 2, 0).cpu().numpy()
  return TorchRun(seconds, int(state["n_iter"]), int(state["func_evals"]),
                  final, trace, image)


def _sync(torch, device):
  if str(device).startswith("cuda"):
    torch.cuda.synchronize()


def time_to_reach(trace: Sequence[Tuple[float, float]], target: float
                  ) -> float | None:
  """Seconds until the best loss so far first reaches ``target`` (None:
  never)."""
  for seconds, loss in trace:
    if loss <= target:
      return seconds
  return None


def median(values: Sequence[float]) -> float:
  return float(np.median(np.asarray(values, np.float64)))


def relative_error(a, b) -> float:
  """``‖a − b‖₂ / ‖b‖₂`` (float64)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def compare_with_torch(value: float, grad: np.ndarray, torch_value: float,
                       torch_grad: np.ndarray) -> Dict[str, float]:
  """Relative errors of value and gradient (2-norm and max-abs over max-abs)
  between this project's objective and the torch one at the same image."""
  g, t = np.asarray(grad, np.float64), np.asarray(torch_grad, np.float64)
  return {
      "value": abs(value - torch_value) / max(abs(torch_value), 1e-300),
      "grad": relative_error(g, t),
      "grad_max": float(np.max(np.abs(g - t)) / max(np.max(np.abs(t)),
                                                     1e-300)),
  }


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
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from nst_jax import vgg  # pylint: disable=g-import-not-at-top

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
