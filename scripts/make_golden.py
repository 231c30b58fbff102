"""Writes tests/data/golden_vgg16.npz: reference VGG-16 activations from torch.

Run once, with torch installed, from the repository root::

  python scripts/make_golden.py

The reference is an independent implementation of torchvision's VGG-16
``features`` (built here by hand as a ``torch.nn.Sequential`` with the same
indices: convolutions at 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
loaded with the converted weights ``weights/vgg16.npz`` (HWIO transposed to
torch's OIHW) and evaluated in float64 for accuracy. The input is
``examples/chelsea.png``, centre-cropped to a 3:4 aspect and resized with
PIL's Lanczos filter to 48x64 (H x W), as float [0, 1], normalised with the
ImageNet mean and standard deviation.

Stored (float32 unless noted), for pooling ``p`` in {max, avg}:

* ``image``: the (48, 64, 3) input in [0, 1] (before normalisation).
* ``{p}/{layer}``: activations (H, W, C') of ``relu1_1, relu2_2, relu3_1,
  relu4_2, relu5_1, pool5`` restricted to channels ``channels/{layer}``
  (int32, a fixed random subset for the big shallow layers, every channel for
  the small deep ones) to keep the file small.
* ``weights_sha256``: the SHA-256 of the weights file the reference was
  computed with (checked against weights/MANIFEST.json), so that the test can
  refuse to compare against other weights.

The library and the tests never import torch; the output file is committed.
"""

import json
import os
import sys

import numpy as np
import torch
from PIL import Image

from nst_jax import weights  # only for sha256_file (installed: make install)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(REPO, "weights", "vgg16.npz")
MANIFEST = os.path.join(REPO, "weights", "MANIFEST.json")
IMAGE = os.path.join(REPO, "examples", "chelsea.png")
OUT = os.path.join(REPO, "tests", "data", "golden_vgg16.npz")

HEIGHT, WIDTH = 48, 64
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
LAYERS = ("relu1_1", "relu2_2", "relu3_1", "relu4_2", "relu5_1", "pool5")
# Channels kept per layer (None: all). The shallow layers are large.
KEEP = {"relu1_1": 16, "relu2_2": 32, "relu3_1": 64, "relu4_2": None,
        "relu5_1": None, "pool5": None}
MAX_BYTES = 1_500_000

# torchvision's vgg16 "D" configuration: channels, "M" for a pooling layer.
CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
       512, 512, 512, "M", 512, 512, 512, "M")


def build_features(pool_cls) -> tuple[torch.nn.Sequential, dict[str, int]]:
  """torchvision's ``vgg16().features`` and the index of every named layer."""
  modules, names = [], {}
  in_ch, block, depth = 3, 1, 1
  for v in CFG:
    if v == "M":
      names[f"pool{block}"] = len(modules)
      modules.append(pool_cls(kernel_size=2, stride=2))
      block, depth = block + 1, 1
    else:
      names[f"conv{block}_{depth}"] = len(modules)
      modules.append(torch.nn.Conv2d(in_ch, v, kernel_size=3, padding=1))
      names[f"relu{block}_{depth}"] = len(modules)
      modules.append(torch.nn.ReLU(inplace=False))
      in_ch, depth = v, depth + 1
  return torch.nn.Sequential(*modules), names


def load_weights(model: torch.nn.Sequential, names: dict[str, int]) -> None:
  conv_indices = [i for n, i in names.items() if n.startswith("conv")]
  assert conv_indices == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28], (
      conv_indices)
  with np.load(WEIGHTS, allow_pickle=False) as f:
    arrays = {k: f[k] for k in f.files}
  used = set()
  for name, index in names.items():
    if not name.startswith("conv"):
      continue
    kernel = arrays[f"{name}/kernel"]  # HWIO
    bias = arrays[f"{name}/bias"]
    used |= {f"{name}/kernel", f"{name}/bias"}
    conv = model[index]
    assert kernel.shape == (3, 3, conv.in_channels, conv.out_channels), (
        name, kernel.shape)
    with torch.no_grad():
      conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
      conv.bias.copy_(torch.from_numpy(bias))
  assert used == set(arrays), sorted(set(arrays) - used)


def load_input() -> np.ndarray:
  """Centre crop of chelsea.png to 3:4, Lanczos-resized to 48x64, in [0, 1]."""
  im = Image.open(IMAGE).convert("RGB")
  w, h = im.size
  target = WIDTH / HEIGHT
  if w / h > target:
    cw, ch = round(h * target), h
  else:
    cw, ch = w, round(w / target)
  left, top = (w - cw) // 2, (h - ch) // 2
  im = im.crop((left, top, left + cw, top + ch))
  im = im.resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS)
  return np.asarray(im, dtype=np.float32) / np.float32(255.0)


def activations(pool_cls, image: np.ndarray) -> dict[str, np.ndarray]:
  model, names = build_features(pool_cls)
  load_weights(model, names)
  model = model.double().eval()
  x = torch.from_numpy(image.astype(np.float64)).permute(2, 0, 1)[None]
  mean = torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)
  std = torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
  x = (x - mean) / std
  wanted = {names[l]: l for l in LAYERS}
  out = {}
  with torch.no_grad():
    for i, module in enumerate(model):
      x = module(x)
      if i in wanted:
        out[wanted[i]] = x[0].permute(1, 2, 0).numpy()  # HWC
  return out


def main() -> int:
  sha = weights.sha256_file(WEIGHTS)
  with open(MANIFEST) as f:
    expected = json.load(f)["vgg16"]["converted_sha256"]
  if sha != expected:
    print(f"error: {WEIGHTS} has sha256 {sha}, MANIFEST.json says {expected}",
          file=sys.stderr)
    return 1
  image = load_input()
  assert image.shape == (HEIGHT, WIDTH, 3), image.shape
  rng = np.random.default_rng(0)
  data = {"image": image, "weights_sha256": np.array(sha),
          "layers": np.array(LAYERS)}
  results = {"max": activations(torch.nn.MaxPool2d, image),
             "avg": activations(torch.nn.AvgPool2d, image)}
  for layer in LAYERS:
    c = results["max"][layer].shape[-1]
    keep = KEEP[layer]
    channels = (np.arange(c) if keep is None
                else np.sort(rng.choice(c, keep, replace=False)))
    data[f"channels/{layer}"] = channels.astype(np.int32)
    for pooling, acts in results.items():
      data[f"{pooling}/{layer}"] = acts[layer][..., channels].astype(np.float32)
  os.makedirs(os.path.dirname(OUT), exist_ok=True)
  np.savez_compressed(OUT, **data)
  size = os.path.getsize(OUT)
  for key, value in data.items():
    print(f"{key:20s} {value.shape} {value.dtype}")
  print(f"wrote {OUT} ({size} bytes)")
  if size > MAX_BYTES:
    print(f"error: {OUT} is larger than {MAX_BYTES} bytes", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
