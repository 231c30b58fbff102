"""The benchmark tooling beside the scripts (scripts/bench_common.py,
scripts/torch_reference.py): the analytic conv FLOP count, the device peak
table, the memory probes, per-layer timings, and (only where torch is
installed) the PyTorch objective against ours. Also: the library itself never
imports torch."""

import importlib.util
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax import objective
from nst_jax.targets import make_targets

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_script_module(name: str):
  """``scripts/<name>.py`` as a module: the scripts directory is no package,
  and its modules import each other as siblings when a script runs."""
  spec = importlib.util.spec_from_file_location(
      name, ROOT / "scripts" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


bm = load_script_module("bench_common")
tr = load_script_module("torch_reference")


def test_conv_flops_against_a_hand_count():
  # conv1_1 on a 4x6 image: 3x3 kernel, 3 -> 64 channels, padding 1.
  conv1_1 = 2 * 4 * 6 * 3 * 3 * 3 * 64
  assert bm.conv_flops("vgg16", (4, 6), ["conv1_1"]) == conv1_1
  assert bm.conv_flops("vgg16", (4, 6), ["relu1_1"]) == conv1_1
  conv1_2 = 2 * 4 * 6 * 3 * 3 * 64 * 64
  # conv2_1 runs after pool1, on 2x3.
  conv2_1 = 2 * 2 * 3 * 3 * 3 * 64 * 128
  assert bm.conv_flops("vgg16", (4, 6), ["relu1_1", "conv2_1"]) == (
      conv1_1 + conv1_2 + conv2_1)
  assert bm.evaluation_flops("vgg16", (4, 6), ["conv1_1"]) == 2 * conv1_1


def test_conv_flops_of_the_issue():
  # Issue 5: "one evaluation (VGG-16 to conv5_1, forward and input-gradient)
  # at 512 px is about 0.3 TFLOP".
  flops = bm.evaluation_flops("vgg16", (512, 512), ["relu5_1"])
  assert 0.25e12 < flops < 0.35e12


def test_alexnet_strided_conv_is_counted():
  # conv1: 11x11, stride 4, padding 2: (64 + 4 - 11) // 4 + 1 = 15.
  assert bm.conv_flops("alexnet", (64, 64), ["conv1"]) == (
      2 * 15 * 15 * 11 * 11 * 3 * 64)


def test_peak_table():
  assert bm.peak_tflops("gpu", "NVIDIA H100 80GB HBM3", "tf32")[0] == 494.7
  assert bm.peak_tflops("gpu", "NVIDIA H100 PCIe", "bf16")[0] == 756.0
  assert bm.peak_tflops("gpu", "NVIDIA H200", "float32")[0] == 67.0
  assert bm.peak_tflops("gpu", "Tesla T4", "float32")[0] is None


def test_time_to_reach_and_errors():
  trace = [(0.1, 5.0), (0.2, 3.0), (0.3, 4.0), (0.4, 1.0)]
  assert bm.time_to_reach(trace, 3.0) == 0.2
  assert bm.time_to_reach(trace, 0.5) is None
  errors = tr.compare_with_torch(1.0, np.ones(3), 1.0, np.ones(3))
  assert errors == {"value": 0.0, "grad": 0.0, "grad_max": 0.0}


def test_peak_rss_probe():
  with bm.PeakRSS() as peak:
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    block += 1
  if peak.ok:
    assert peak.delta >= 48 * 2**20
  del block


def test_torch_objective_equals_ours(vgg16_params):
  pytest.importorskip("torch")
  rng = np.random.default_rng(0)
  content = rng.uniform(0, 1, (32, 40, 3)).astype(np.float32)
  style = rng.uniform(0, 1, (36, 36, 3)).astype(np.float32)
  x = np.clip(content + rng.uniform(-0.1, 0.1, content.shape), 0, 1).astype(
      np.float32)
  spec = objective.Spec()
  targets = make_targets(vgg16_params, content, [style], spec)
  weights = objective.make_weights(spec, content_weight=1.0, style_weight=1e7,
                                   tv_weight=1.0)
  f = objective.objective_function(spec)
  (value, _), grad = jax.jit(jax.value_and_grad(f, has_aux=True))(
      jnp.asarray(x), vgg16_params, targets, weights)
  tobj = tr.torch_objective(
      vgg16_params, content, [style], content_layers=spec.content_layers,
      style_layers=spec.style_layers, style_layer_weights=[0.2] * 5,
      content_weight=1.0 * 32 * 40, style_weight=1e7,
      tv_weight=1.0 * 32 * 40)  # the paper's sums: α, γ times H·W
  torch_value, torch_grad = tr.torch_value_and_grad(tobj, x)
  errors = tr.compare_with_torch(float(value), np.asarray(grad), torch_value,
                                 torch_grad)
  assert errors["value"] < 1e-4 and errors["grad"] < 1e-4, errors


def test_conv_layer_timings_walks_the_network():
  from nst_jax import vgg
  from test_vgg import random_params
  params = random_params("vgg16")
  prepared = vgg.prepare_params(params, "winograd")
  rows = bm.conv_layer_timings(params, prepared, (20, 18), "relu3_1",
                               repeats=1)
  assert [r.layer for r in rows] == ["conv1_1", "conv1_2", "conv2_1",
                                     "conv2_2", "conv3_1"]
  assert [r.shape for r in rows] == [(20, 18, 3), (20, 18, 64), (10, 9, 64),
                                     (10, 9, 128), (5, 4, 128)]
  # Only conv3_1 (256 output channels) has Winograd kernels.
  assert [r.winograd_ms is not None for r in rows] == [False] * 4 + [True]
  assert all(r.direct_ms > 0 for r in rows)
  assert rows[-1].gflop == pytest.approx(2 * 5 * 4 * 9 * 128 * 256 / 1e9)


def test_library_never_imports_torch():
  # The package and the modules it does not re-export, imported with torch
  # made unimportable.
  code = ("import sys; sys.modules['torch'] = None; "
          "import nst_jax, nst_jax.cli, nst_jax.grid, nst_jax.figures")
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  # And no module imports it anywhere, at import time or in a function.
  for path in (ROOT / "nst_jax").rglob("*.py"):
    text = path.read_text(encoding="utf-8")
    assert "import torch" not in text and "from torch" not in text, path
