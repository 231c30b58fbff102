"""Writes the fixtures that tests compare with PyTorch, so that the tests
themselves never import torch.

Run with torch installed (``pip install torch==2.13.0``), from the repository
root::

  python scripts/make_torch_fixtures.py              # everything
  python scripts/make_torch_fixtures.py objective    # one group

Four groups:

``checkpoints`` — ``tests/data/tiny_zip.pth`` (the zip format of torch>=1.6),
``tests/data/tiny_legacy.pth`` (the older sequence-of-pickles format) and
``tests/data/tiny_expected.npz`` (the same tensors as numpy arrays), read by
tests/test_weights.py. The state dict exercises what a reader must honour:
several dtypes, a transposed (non-contiguous) tensor, views with a nonzero
storage offset and a stride, and two tensors that share one storage.

``objective`` — ``tests/data/objective_torch.npz``, read by
tests/test_torch_objective.py: the default objective (``TransferConfig()``:
content relu4_2, Gram style loss at relu1_1 … relu5_1 with the paper
normalisation and weight 1/5 each, total variation; α = 1, β = 1e7, γ = 1)
written out here a second time in torch, in float64, from
``weights/vgg16.npz`` and nothing of ``nst_jax``: its value, each term and
the gradient with respect to the image. The formulas, from the papers rather
than from the package:

* input ``(x − mean) / std`` with ImageNet's mean and std (torchvision);
* VGG-16 (Simonyan & Zisserman 2015, configuration D): 3×3 convolutions with
  padding 1, ReLU, 2×2 max pooling of stride 2 (``torch.max_pool2d``, whose
  gradient goes to the first maximum of each window);
* content ``½ Σ (F − P)²`` at relu4_2 (Gatys et al. 2016, eq. 1);
* style, per layer, ``Σ (Ĝ − Â)² / (4 C²)`` with ``Ĝ = FᵀF / (H·W)``, the
  Gram averaged over positions — eq. 4's ``1/(4 N² M²) Σ (G − A)²`` on raw
  Grams of equal ``M`` — weighted 1/5 and then by β (eq. 5);
* total variation ``Σ (x_{i+1,j} − x_ij)² + (x_{i,j+1} − x_ij)²``.

The images are deterministic: the content is examples/chelsea.png and the
style examples/style_brushwork.png, each cropped to the target's aspect ratio
and resized with Pillow's Lanczos filter to 48×64 and 64×48 (height ×
width: a landscape content and a portrait style, as Grams allow); the
evaluated image is the content plus seeded uniform noise of ±0.1, clipped to
[0, 1]. Non-square on purpose: the size-invariant objective divides by
``H·W``, which a square image cannot tell from ``H²``.

The seed is the first that keeps every ReLU and max-pool branch out of reach
of float32 rounding. A float32 network computes each pre-activation with a
small error; where one lies that close to 0 (or two values of a pooling
window that close to each other) the float32 program takes the other branch
and its gradient differs from the float64 one by ~1e-3 of its largest entry,
while the values still agree to 1e-7 (measured: seeds 0 and 2 of VGG-16 here,
in nst_jax's direct and Winograd programs; PyTorch's float32 happened to
agree). The objective is piecewise polynomial, so the second difference
``∇f(x+δ) + ∇f(x−δ) − 2∇f(x)`` is ~0 unless a branch changes within ``δ``:
a seed is kept when it is below 1e-9 of ``‖∇f‖`` for three random ``δ`` of
±3e-7 (five float32 steps of a pixel). Tests can then hold the float32
gradient to 1e-4 of the float64 one.
The three are stored in the fixture (``content_image``, ``style_image``
uint8; ``image`` float32; ``seed``), so the tests do not depend on Pillow's resampling;
beside them the weighted terms ``total``, ``content``, ``style``, ``tv``,
``style_layers`` (5,), the gradient ``grad`` of the total (float64) and
``grad_content``, ``grad_style``, ``grad_tv`` of each term (float32).

``lpips`` — ``tests/data/lpips_torch.npz``, read by tests/test_metrics.py:
LPIPS (Zhang et al., CVPR 2018, eq. 1) with the VGG-16 and AlexNet heads,
written out again in torch, in float64, from ``weights/vgg16.npz``,
``weights/alexnet.npz`` and the heads ``weights/lpips_<network>.npz`` (made
by ``nst-fetch-weights``), nothing of ``nst_jax``: the ``lpips`` package's
ScalingLayer on ``2u − 1`` (shift (−.030, −.088, −.188), scale (.458, .448,
.450)), torchvision's trunks cut at VGG-16 relu1_2, relu2_2, relu3_3,
relu4_3, relu5_3 and AlexNet relu1 … relu5, channels unit-normalised
(``x / (‖x‖ + 1e-10)``), squared difference, the 1×1 head, spatial mean,
sum over layers. Images: examples/chelsea.png and style_brushwork.png
cropped and Lanczos-resized to 64×96, and the content plus seeded uniform
noise of ±0.1, all stored as uint8, with the values per pair and per layer
and the sha256 of the four weight files.

``ssim`` — ``tests/data/ssim_skimage.npz``, read by tests/test_metrics.py:
scikit-image's ``structural_similarity`` (Gaussian window σ = 1.5,
data_range 1, with and without ``use_sample_covariance``) of the same
images' luminance. Needs ``pip install scikit-image`` (not a dependency of
the project).
"""

import argparse
import collections
import functools
import hashlib
import os
import sys

import numpy as np
import torch
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "tests", "data")
OBJECTIVE_FIXTURE = os.path.join(DATA, "objective_torch.npz")

# --- checkpoints ----------------------------------------------------------------


def make_state_dict() -> "collections.OrderedDict[str, torch.Tensor]":
  """A small, deterministic state dict shaped like torchvision's."""
  gen = torch.Generator().manual_seed(0)
  base = torch.arange(20, dtype=torch.float32)
  sd = collections.OrderedDict()
  sd["features.0.weight"] = torch.randn(4, 3, 3, 3, generator=gen)
  sd["features.0.bias"] = torch.randn(4, generator=gen)
  sd["transposed"] = torch.randn(3, 5, generator=gen).t()
  sd["offset_view"] = base[5:11].view(2, 3)
  sd["strided_view"] = base[1::4]
  sd["shared_base"] = base
  sd["int64"] = torch.arange(6, dtype=torch.int64).reshape(2, 3)
  sd["float64"] = torch.randn(2, 2, generator=gen, dtype=torch.float64)
  sd["float16"] = torch.randn(3, generator=gen).half()
  sd["scalar"] = torch.tensor(3.5)
  assert not sd["transposed"].is_contiguous()
  assert sd["offset_view"].storage_offset() == 5
  return sd


def write_checkpoints() -> list:
  sd = make_state_dict()
  torch.save(sd, os.path.join(DATA, "tiny_zip.pth"))
  torch.save(sd, os.path.join(DATA, "tiny_legacy.pth"),
             _use_new_zipfile_serialization=False)
  np.savez(os.path.join(DATA, "tiny_expected.npz"),
           **{k: v.numpy() for k, v in sd.items()})
  return [os.path.join(DATA, n)
          for n in ("tiny_zip.pth", "tiny_legacy.pth", "tiny_expected.npz")]


# --- the objective in torch -----------------------------------------------------

MEAN = (0.485, 0.456, 0.406)   # torchvision's ImageNet statistics
STD = (0.229, 0.224, 0.225)
# VGG-16, configuration D: output channels per convolution, "M" a max pool.
VGG16_CFG = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512),
             (512, 512, 512))
CONTENT_LAYER = "relu4_2"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
ALPHA, BETA, GAMMA = 1.0, 1e7, 1.0
LAYER_WEIGHT = 1.0 / len(STYLE_LAYERS)
CONTENT_SHAPE, STYLE_SHAPE = (48, 64), (64, 48)   # (H, W)
NOISE = 0.1
STABLE_STEP, STABLE_DIRECTIONS, STABLE_TOL = 3e-7, 3, 1e-9
DTYPE = torch.float64


def load_vgg16(path):
  """``[(name, weight OIHW, bias)]`` from a converted ``.npz`` (HWIO)."""
  out = []
  with np.load(path) as f:
    for b, widths in enumerate(VGG16_CFG, start=1):
      for d in range(1, len(widths) + 1):
        name = f"conv{b}_{d}"
        kernel = torch.from_numpy(f[f"{name}/kernel"].astype(np.float64))
        bias = torch.from_numpy(f[f"{name}/bias"].astype(np.float64))
        assert kernel.shape[:2] == (3, 3) and kernel.shape[3] == widths[d - 1]
        out.append((name, kernel.permute(3, 2, 0, 1).contiguous(), bias))
  return out


def vgg_features(convs, image, wanted):
  """``{relu name: (C, H, W)}`` of an ``(H, W, 3)`` image in [0, 1]."""
  mean = torch.tensor(MEAN, dtype=DTYPE).view(3, 1, 1)
  std = torch.tensor(STD, dtype=DTYPE).view(3, 1, 1)
  x = ((image.permute(2, 0, 1) - mean) / std)[None]
  return {k: v[0] for k, v in vgg_trunk(convs, x, wanted).items()}


def vgg_trunk(convs, x, wanted):
  """``{relu name: (N, C, H, W)}`` of the network input ``x`` (N, 3, H, W)."""
  deepest = max(wanted)  # "reluB_D" names sort in network order
  out = {}
  for name, weight, bias in convs:
    x = torch.relu(torch.nn.functional.conv2d(x, weight, bias, padding=1))
    relu = name.replace("conv", "relu")
    if relu in wanted:
      out[relu] = x
    if relu == deepest:
      break
    block, depth = relu[4:].split("_")
    if int(depth) == len(VGG16_CFG[int(block) - 1]):
      x = torch.nn.functional.max_pool2d(x, 2, 2)
  return out


def gram(features):
  """``FᵀF / (H·W)`` of ``(C, H, W)`` features: ``(C, C)``."""
  c, h, w = features.shape
  flat = features.reshape(c, h * w)
  return flat @ flat.T / (h * w)


def objective_terms(convs, image, content, style):
  """The weighted terms of the default objective at ``image``."""
  with torch.no_grad():
    content_target = vgg_features(convs, content, {CONTENT_LAYER})[CONTENT_LAYER]
    style_feats = vgg_features(convs, style, set(STYLE_LAYERS))
    style_targets = {l: gram(f) for l, f in style_feats.items()}
  feats = vgg_features(convs, image, {CONTENT_LAYER, *STYLE_LAYERS})
  content_term = ALPHA * 0.5 * torch.sum((feats[CONTENT_LAYER]
                                          - content_target) ** 2)
  style_layers = torch.stack([
      BETA * LAYER_WEIGHT * torch.sum((gram(feats[l]) - style_targets[l]) ** 2)
      / (4.0 * feats[l].shape[0] ** 2) for l in STYLE_LAYERS])
  tv = GAMMA * (torch.sum((image[1:] - image[:-1]) ** 2)
                + torch.sum((image[:, 1:] - image[:, :-1]) ** 2))
  terms = {"content": content_term, "style": style_layers.sum(), "tv": tv,
           "style_layers": style_layers}
  terms["total"] = terms["content"] + terms["style"] + terms["tv"]
  return terms


def _example(name, shape):
  """``examples/name`` center-cropped to ``shape``'s aspect, Lanczos-resized,
  as uint8 ``(H, W, 3)``."""
  image = Image.open(os.path.join(REPO, "examples", name)).convert("RGB")
  w, h = image.size
  th, tw = shape
  if w * th > h * tw:                       # too wide: crop the sides
    cw = round(h * tw / th)
    box = ((w - cw) // 2, 0, (w - cw) // 2 + cw, h)
  else:
    ch = round(w * th / tw)
    box = (0, (h - ch) // 2, w, (h - ch) // 2 + ch)
  image = image.crop(box).resize((tw, th), Image.Resampling.LANCZOS)
  return np.asarray(image, np.uint8)


def _noisy(content, seed):
  rng = np.random.default_rng(seed)
  return np.clip(content / 255.0 + rng.uniform(-NOISE, NOISE, content.shape),
                 0.0, 1.0).astype(np.float32)


def _term_grads(convs, image, content, style):
  """The weighted terms at ``image`` (float64) and the gradient of each."""
  x = torch.from_numpy(np.asarray(image, np.float64)).requires_grad_(True)
  terms = objective_terms(convs, x, content, style)
  grads = {name: torch.autograd.grad(terms[name], x, retain_graph=True)[0]
           for name in ("content", "style", "tv", "total")}
  return ({k: v.detach().numpy() for k, v in terms.items()},
          {k: v.numpy() for k, v in grads.items()})


def branch_change(convs, image, content, style, seed):
  """The largest ``‖∇f(x+δ) + ∇f(x−δ) − 2∇f(x)‖ / ‖∇f(x)‖`` of the content
  and style terms over ``STABLE_DIRECTIONS`` random ``δ`` (see above)."""
  _, g0 = _term_grads(convs, image, content, style)
  rng = np.random.default_rng([seed, 1])
  worst = 0.0
  for _ in range(STABLE_DIRECTIONS):
    delta = rng.uniform(-STABLE_STEP, STABLE_STEP, image.shape)
    _, plus = _term_grads(convs, image + delta, content, style)
    _, minus = _term_grads(convs, image - delta, content, style)
    for name in ("content", "style"):
      second = plus[name] + minus[name] - 2 * g0[name]
      worst = max(worst, np.linalg.norm(second) / np.linalg.norm(g0[name]))
      if worst > STABLE_TOL:
        return worst
  return worst


def write_objective() -> list:
  content = _example("chelsea.png", CONTENT_SHAPE)
  style = _example("style_brushwork.png", STYLE_SHAPE)
  convs = load_vgg16(os.path.join(REPO, "weights", "vgg16.npz"))
  content_t = torch.from_numpy(content / 255.0)
  style_t = torch.from_numpy(style / 255.0)
  for seed in range(100):
    image = _noisy(content, seed).astype(np.float64)
    change = branch_change(convs, image, content_t, style_t, seed)
    print(f"  seed {seed}: second difference {change:.1e}")
    if change <= STABLE_TOL:
      break
  else:
    raise RuntimeError("no seed below 100 keeps the branches stable")
  image = _noisy(content, seed)
  terms, grads = _term_grads(convs, image, content_t, style_t)
  np.savez_compressed(
      OBJECTIVE_FIXTURE, content_image=content, style_image=style, image=image,
      **terms, grad=grads["total"],
      **{f"grad_{n}": grads[n].astype(np.float32)
         for n in ("content", "style", "tv")},
      seed=np.asarray(seed), second_difference=np.asarray(change),
      torch_version=np.asarray(torch.__version__))
  for name, value in terms.items():
    print(f"  {name}: {value}")
  return [OBJECTIVE_FIXTURE]


# --- LPIPS in torch ---------------------------------------------------------------

LPIPS_FIXTURE = os.path.join(DATA, "lpips_torch.npz")
# The ``lpips`` package's ScalingLayer (v0.1) for inputs in [-1, 1].
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
LPIPS_LAYERS = {
    "vgg16": ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"),
    "alexnet": ("relu1", "relu2", "relu3", "relu4", "relu5"),
}
# torchvision's AlexNet ``features``: (name, kernel, stride, padding, pool
# after the ReLU); max pools of 3, stride 2.
ALEXNET_CFG = (("conv1", 11, 4, 2, True), ("conv2", 5, 1, 2, True),
               ("conv3", 3, 1, 1, False), ("conv4", 3, 1, 1, False),
               ("conv5", 3, 1, 1, True))
METRIC_SHAPE = (64, 96)


def load_alexnet(path):
  """``[(name, weight OIHW, bias, stride, padding, pool)]`` from a converted
  ``.npz`` (HWIO)."""
  out = []
  with np.load(path) as f:
    for name, k, stride, padding, pool in ALEXNET_CFG:
      kernel = torch.from_numpy(f[f"{name}/kernel"].astype(np.float64))
      bias = torch.from_numpy(f[f"{name}/bias"].astype(np.float64))
      assert kernel.shape[:2] == (k, k)
      out.append((name, kernel.permute(3, 2, 0, 1).contiguous(), bias, stride,
                  padding, pool))
  return out


def alexnet_trunk(convs, x, wanted):
  """``{relu name: (N, C, H, W)}`` of AlexNet's input ``x`` (N, 3, H, W)."""
  out = {}
  for name, weight, bias, stride, padding, pool in convs:
    x = torch.relu(torch.nn.functional.conv2d(x, weight, bias, stride=stride,
                                              padding=padding))
    out[name.replace("conv", "relu")] = x
    if pool:
      x = torch.nn.functional.max_pool2d(x, 3, 2)
  return {k: v for k, v in out.items() if k in wanted}


def load_heads(path, layers):
  """The LPIPS linear heads ``[(C,)]`` in ``layers`` order from
  ``weights/lpips_<network>.npz``."""
  with np.load(path) as f:
    return [torch.from_numpy(f[f"{l}/weight"].astype(np.float64))
            for l in layers]


def lpips_torch(trunk, heads, layers, a, b):
  """LPIPS (Zhang et al. 2018, eq. 1; the ``lpips`` package's forward):
  per-layer values ``(L,)`` of images ``a``, ``b`` ``(H, W, 3)`` in [0, 1]."""
  shift = torch.tensor(LPIPS_SHIFT, dtype=DTYPE).view(1, 3, 1, 1)
  scale = torch.tensor(LPIPS_SCALE, dtype=DTYPE).view(1, 3, 1, 1)
  def scaled(image):
    x = torch.from_numpy(np.asarray(image, np.float64)).permute(2, 0, 1)[None]
    return (2.0 * x - 1.0 - shift) / scale
  fa, fb = trunk(scaled(a), set(layers)), trunk(scaled(b), set(layers))
  values = []
  for layer, weight in zip(layers, heads):
    na = fa[layer] / (torch.sqrt(torch.sum(fa[layer] ** 2, 1, keepdim=True))
                      + 1e-10)
    nb = fb[layer] / (torch.sqrt(torch.sum(fb[layer] ** 2, 1, keepdim=True))
                      + 1e-10)
    lin = torch.nn.functional.conv2d((na - nb) ** 2, weight.view(1, -1, 1, 1))
    values.append(lin.mean(dim=(2, 3))[0, 0])
  return torch.stack(values).numpy()


def _metric_images():
  """Content, seeded noisy content (uint8) and style at ``METRIC_SHAPE``."""
  content = _example("chelsea.png", METRIC_SHAPE)
  noisy = np.round(_noisy(content, 0) * 255).astype(np.uint8)
  style = _example("style_brushwork.png", METRIC_SHAPE)
  return content, noisy, style


def write_lpips() -> list:
  """``tests/data/lpips_torch.npz``: LPIPS-VGG and LPIPS-AlexNet, float64,
  written here from ``weights/{vgg16,alexnet,lpips_vgg16,lpips_alexnet}.npz``
  and nothing of ``nst_jax``, for the pairs (content, noisy content),
  (content, style), (noisy content, style) of 64×96 uint8 images."""
  content, noisy, style = _metric_images()
  images = np.stack([content, noisy, style])
  pairs = np.array([[0, 1], [0, 2], [1, 2]])
  weights_dir = os.path.join(REPO, "weights")
  nets = {
      "vgg16": functools.partial(
          vgg_trunk, load_vgg16(os.path.join(weights_dir, "vgg16.npz"))),
      "alexnet": functools.partial(
          alexnet_trunk, load_alexnet(os.path.join(weights_dir,
                                                   "alexnet.npz"))),
  }
  out = {"images": images, "pairs": pairs,
         "torch_version": np.asarray(torch.__version__)}
  for name in ("vgg16", "alexnet", "lpips_vgg16", "lpips_alexnet"):
    with open(os.path.join(weights_dir, f"{name}.npz"), "rb") as f:
      out[f"{name}_sha256"] = np.asarray(hashlib.sha256(f.read()).hexdigest())
  for network, trunk in nets.items():
    layers = LPIPS_LAYERS[network]
    heads = load_heads(os.path.join(weights_dir, f"lpips_{network}.npz"),
                       layers)
    with torch.no_grad():
      per_layer = np.stack([lpips_torch(trunk, heads, layers,
                                        images[i] / 255.0, images[j] / 255.0)
                            for i, j in pairs])
    out[f"{network}_layers"] = per_layer
    out[network] = per_layer.sum(axis=1)
    print(f"  {network}: {out[network]}")
  np.savez_compressed(LPIPS_FIXTURE, **out)
  return [LPIPS_FIXTURE]


# --- SSIM with scikit-image ---------------------------------------------------------

SSIM_FIXTURE = os.path.join(DATA, "ssim_skimage.npz")


def write_ssim() -> list:
  """``tests/data/ssim_skimage.npz``: scikit-image's SSIM (float64) on the
  luminance ``0.299R + 0.587G + 0.114B`` of the LPIPS pairs' images, with
  ``gaussian_weights=True, sigma=1.5, data_range=1`` and both
  ``use_sample_covariance=False`` (Wang et al. 2004) and ``True``
  (scikit-image's default). Needs ``pip install scikit-image``."""
  import skimage  # pylint: disable=g-import-not-at-top
  from skimage.metrics import structural_similarity
  content, noisy, style = _metric_images()
  images = np.stack([content, noisy, style])
  pairs = np.array([[0, 1], [0, 2], [1, 2], [0, 0]])
  luma = images / 255.0 @ np.array([0.299, 0.587, 0.114])
  out = {"images": images, "pairs": pairs,
         "skimage_version": np.asarray(skimage.__version__)}
  for name, sample in (("paper", False), ("sample_covariance", True)):
    out[name] = np.array([structural_similarity(
        luma[i], luma[j], gaussian_weights=True, sigma=1.5, data_range=1.0,
        use_sample_covariance=sample) for i, j in pairs])
    print(f"  {name}: {out[name]}")
  np.savez_compressed(SSIM_FIXTURE, **out)
  return [SSIM_FIXTURE]


GROUPS = {"checkpoints": write_checkpoints, "objective": write_objective,
          "lpips": write_lpips, "ssim": write_ssim}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("groups", nargs="*", metavar="GROUP",
                      help=f"{' or '.join(GROUPS)} (default: all)")
  args = parser.parse_args()
  for group in args.groups:
    if group not in GROUPS:
      parser.error(f"unknown group {group!r}: use {', '.join(GROUPS)}")
  os.makedirs(DATA, exist_ok=True)
  torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
  for group in args.groups or list(GROUPS):
    for path in GROUPS[group]():
      size = os.path.getsize(path)
      print(f"wrote {os.path.relpath(path, REPO)} ({size} bytes)")


if __name__ == "__main__":
  sys.exit(main())
