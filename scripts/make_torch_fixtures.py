"""Writes the tiny PyTorch checkpoints that tests/test_weights.py reads.

Run once, with torch installed, from the repository root::

  python scripts/make_torch_fixtures.py

It writes ``tests/data/tiny_zip.pth`` (the zip format of torch>=1.6),
``tests/data/tiny_legacy.pth`` (the older sequence-of-pickles format) and
``tests/data/tiny_expected.npz`` (the same tensors as numpy arrays). The state
dict exercises what a reader must honour: several dtypes, a transposed
(non-contiguous) tensor, views with a nonzero storage offset and a stride,
and two tensors that share one storage. The outputs are committed; the tests
themselves never import torch.
"""

import collections
import os
import sys

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "tests", "data")


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


def main() -> None:
  os.makedirs(DATA, exist_ok=True)
  sd = make_state_dict()
  torch.save(sd, os.path.join(DATA, "tiny_zip.pth"))
  torch.save(sd, os.path.join(DATA, "tiny_legacy.pth"),
             _use_new_zipfile_serialization=False)
  np.savez(os.path.join(DATA, "tiny_expected.npz"),
           **{k: v.numpy() for k, v in sd.items()})
  for name in ("tiny_zip.pth", "tiny_legacy.pth", "tiny_expected.npz"):
    path = os.path.join(DATA, name)
    size = os.path.getsize(path)
    print(f"wrote {os.path.relpath(path, REPO)} ({size} bytes)")


if __name__ == "__main__":
  sys.exit(main())
