"""Shared test setup: the repository root on sys.path, silent broadcasting
turned into errors (equinox's habit), and fixtures for the real weights."""

import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session")
def vgg16_params():
  """The real converted VGG-16 weights; skipped if they were not fetched."""
  from nst_jax import vgg, weights
  if not weights.weights_path("vgg16").exists():
    pytest.skip("weights/vgg16.npz missing: run `make weights`")
  return vgg.load_params("vgg16")


@pytest.fixture(scope="session")
def shared_images():
  """Path to ../shared/images (classic test images); skipped if absent."""
  path = SHARED / "images"
  if not path.is_dir():
    pytest.skip("../shared/images is not present")
  return path


def tiny_vgg16_params(seed=0):
  """Random VGG-16-shaped weights (He-scaled), for tests that need the
  architecture but not the trained weights."""
  from nst_jax import networks
  rng = np.random.default_rng(seed)
  params = {}
  for name, shapes in networks.param_shapes("vgg16").items():
    kh, kw, cin, _ = shapes["kernel"]
    params[name] = {
        "kernel": jnp.asarray(
            rng.normal(size=shapes["kernel"]) * np.sqrt(2.0 / (kh * kw * cin)),
            jnp.float32),
        "bias": jnp.asarray(rng.normal(size=shapes["bias"]) * 0.1, jnp.float32),
    }
  return params
