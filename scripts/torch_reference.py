"""The objective of ``nst_jax.objective`` and neural-style-pt's loop in
PyTorch, the reference side of ``scripts/benchmark.py``.

Benchmark tooling beside the scripts, never imported by ``nst_jax`` (the
library does not import torch). torch is an optional, benchmark-only
dependency: every function here that needs it imports it through
``import_torch``, which raises ``NSTError`` with one line saying how to
install it when it is missing; ``compare_with_torch`` needs only numpy.

The PyTorch side is the loop of neural-style-pt (``torch.optim.LBFGS`` with
``lr=1``, ``history_size=10``, no line search, tolerances off) on the
objective of ``nst_jax.objective`` written out in torch: the same converted
weights (``weights/vgg16.npz``, HWIO transposed to OIHW), the same
normalisation of the input, the same layers and the same loss formulas
(content ``½Σ(F−P)²``; style ``Σ_l w_l Σ(Ĝ−Â)²/(4C²)`` with ``Ĝ = G/(HW)``;
squared total variation), float32, NCHW.
"""

import time
from typing import Callable, Dict, List, NamedTuple, Sequence, Tuple

import numpy as np

from nst_jax import networks
from nst_jax.errors import NSTError


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
                history_size: int = 10, on_evaluation=None) -> TorchRun:
  """neural-style-pt's optimisation: one ``LBFGS.step`` with ``max_iter =
  iterations``, ``lr=1``, no line search, tolerances disabled (-1).
  ``on_evaluation(seconds, image)``, if given, sees each evaluated image
  (``(1, 3, H, W)`` tensor; its time counts)."""
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
    if on_evaluation is not None:
      on_evaluation(trace[-1][0], img.detach())
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
