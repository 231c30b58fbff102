"""Performance options: precision policies, gradient checkpointing, buffer
donation, the persistent compilation cache helper and coarse-to-fine
multi-scale transfer.

Each option is checked for what it does, not only for leaving results
unchanged: bf16 convolutions appear in the lowered program and move the
values, checkpoint equations appear in the gradient's jaxpr, a donated
buffer is deleted. Only the command-line test needs the trained weights; the
rest run on random weights of VGG-16's shapes.
"""

import collections

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax import cli
from nst_jax import io
from nst_jax import networks
from nst_jax import objective
from nst_jax import solvers
from nst_jax import transfer
from nst_jax import vgg
from nst_jax.errors import NSTError
from nst_jax.targets import make_targets
from conftest import tiny_vgg16_params, tol

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")


@pytest.fixture(scope="module")
def params():
  """Random VGG-16 weights: these tests need the architecture, not the
  training."""
  return tiny_vgg16_params()


def _image(shape=(1, 32, 48, 3), seed=0):
  return jax.random.uniform(jax.random.key(seed), shape, jnp.float32)


def _plain_features(params, images, layers):
  """The network written out with no precision argument, no custom VJP and
  no checkpointing: the results ``features`` gave before the policies. On a
  GPU, where no precision argument means TF32, it asks for float32
  (HIGHEST), the float32 policy's promise; XLA:CPU computes float32 either
  way, so there it is the network as it was."""
  precision = (None if jax.default_backend() == "cpu"
               else jax.lax.Precision.HIGHEST)
  x = vgg.normalize(images)
  out = {}
  for layer in networks.VGG16:
    if isinstance(layer, networks.Conv):
      p = params[layer.name]
      x = jax.lax.conv_general_dilated(
          x, p["kernel"], (1, 1), ((1, 1), (1, 1)),
          dimension_numbers=("NHWC", "HWIO", "NHWC"),
          precision=precision) + p["bias"].reshape(1, 1, 1, -1)
    elif isinstance(layer, networks.ReLU):
      x = jax.nn.relu(x)
    else:
      x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1),
                                (1, 2, 2, 1), "VALID")
    out[layer.name] = x
    if layer.name == layers[-1]:
      break
  return {l: out[l] for l in layers}


def _loss(features_fn, params):
  return lambda x: sum(jnp.sum(v ** 2) for v in
                       features_fn(params, x, LAYERS).values())


def _primitives(jaxpr, counts=None) -> collections.Counter:
  """How often each primitive occurs in ``jaxpr``, sub-jaxprs included."""
  counts = collections.Counter() if counts is None else counts
  for eqn in jaxpr.eqns:
    counts[eqn.primitive.name] += 1
    for value in eqn.params.values():
      for sub in value if isinstance(value, (list, tuple)) else (value,):
        if isinstance(sub, jax.extend.core.ClosedJaxpr):
          _primitives(sub.jaxpr, counts)
        elif isinstance(sub, jax.extend.core.Jaxpr):
          _primitives(sub, counts)
  return counts


# The name of jax.checkpoint's primitive has changed across JAX versions.
CHECKPOINT_PRIMITIVES = ("checkpoint", "remat", "remat2")


def _convolutions(fn, *args):
  """The lines of ``jax.jit(fn)``'s lowered program that convolve."""
  text = jax.jit(fn).lower(*args).as_text()
  return [l for l in text.splitlines() if "stablehlo.convolution" in l]


@pytest.mark.parametrize("precision", vgg.PRECISIONS)
def test_precision_policy_shapes_and_dtypes(params, precision):
  x = _image()
  got = jax.jit(lambda p, x: vgg.features(p, x, LAYERS,
                                          precision=precision))(params, x)
  ref = jax.jit(lambda p, x: vgg.features(p, x, LAYERS))(params, x)
  # tf32 is float32 on the CPU, TensorFloat-32 (10-bit mantissa) on GPUs.
  tol = {"float32": 1e-6, "tf32": 1e-2, "bf16": 0.05}[precision]
  for layer in LAYERS:
    assert got[layer].shape == ref[layer].shape
    assert got[layer].dtype == jnp.float32, (layer, got[layer].dtype)
    scale = float(jnp.max(jnp.abs(ref[layer])))
    np.testing.assert_allclose(got[layer], ref[layer], atol=tol * scale)
  if precision == "bf16":  # float32's gradient: the exactness test below
    grad = jax.jit(jax.grad(lambda x, p: _loss(lambda p, x, l: vgg.features(
        p, x, l, precision=precision), p)(x)))(x, params)   # not op by op
    assert grad.dtype == jnp.float32 and grad.shape == x.shape


@pytest.mark.parametrize("precision", vgg.PRECISIONS)
def test_precision_policy_reaches_every_convolution(params, precision):
  # The policy is in the program that XLA compiles, for the forward pass and
  # for the input gradient: bf16 operands (float32 results), or float32 at
  # HIGHEST precision, or float32 at the backend's default (tf32).
  x = _image()
  forward = _convolutions(lambda x: vgg.features(
      params, x, LAYERS, precision=precision), x)
  backward = _convolutions(jax.grad(_loss(lambda p, x, l: vgg.features(
      p, x, l, precision=precision), params)), x)
  assert len(forward) == 11 and len(backward) > len(forward)  # conv1_1..5_1
  for line in forward + backward:
    operands = line.rsplit(":", 1)[-1]
    assert ("xbf16>" in operands) == (precision == "bf16"), line
    assert ("HIGHEST" in line) == (precision == "float32"), line
    assert "xf32>" in operands.rsplit("->", 1)[-1], line  # float32 out


def test_bf16_changes_the_features(params):
  # A policy that did nothing would give float32's features exactly; bf16's
  # 8-bit mantissa moves them by ~0.4 % (measured ~1e-3 of each layer's
  # largest value, at least 1e-4 asserted).
  x = _image()
  got = jax.jit(lambda p, x: vgg.features(p, x, LAYERS,
                                          precision="bf16"))(params, x)
  ref = jax.jit(lambda p, x: vgg.features(p, x, LAYERS))(params, x)
  for layer in LAYERS:
    change = float(jnp.max(jnp.abs(got[layer] - ref[layer]))
                   / jnp.max(jnp.abs(ref[layer])))
    assert change > 1e-4, (layer, change)


def test_float32_policy_equals_the_plain_network_exactly(params):
  x = _image()
  new = jax.jit(lambda p, x: vgg.features(p, x, LAYERS,
                                          precision="float32"))(params, x)
  old = jax.jit(lambda p, x: _plain_features(p, x, LAYERS))(params, x)
  for layer in LAYERS:  # exactly on the CPU; a GPU's programs may differ
    scale = float(jnp.max(jnp.abs(old[layer])))
    np.testing.assert_allclose(new[layer], old[layer], rtol=0,
                               atol=tol(0, 1e-5 * scale))
  g_new = jax.jit(jax.grad(lambda x, p: _loss(vgg.features, p)(x)))(x,
                                                                     params)
  g_old = jax.jit(jax.grad(lambda x, p: _loss(_plain_features, p)(x)))(
      x, params)
  np.testing.assert_allclose(
      g_new, g_old, rtol=tol(1e-5, 1e-4),
      atol=tol(1e-6, 1e-5) * float(jnp.max(jnp.abs(g_old))))


def test_unknown_precision_is_refused(params):
  with pytest.raises(NSTError, match="precision"):
    vgg.features(params, _image(), LAYERS, precision="fp8")
  with pytest.raises(NSTError, match="precision"):
    transfer.check_config(transfer.TransferConfig().replace(
        spec=dict(precision="half")))


def test_remat_gives_the_same_value_and_gradient(params):
  x = _image(seed=1)
  plain = jax.jit(jax.value_and_grad(_loss(vgg.features, params)))
  remat = jax.jit(jax.value_and_grad(_loss(
      lambda p, x, l: vgg.features(p, x, l, remat=True), params)))
  (v0, g0), (v1, g1) = plain(x), remat(x)
  np.testing.assert_allclose(v1, v0, rtol=tol(1e-6, 1e-5))
  np.testing.assert_allclose(
      g1, g0, rtol=tol(1e-5, 1e-4),
      atol=tol(1e-6, 1e-5) * float(jnp.max(jnp.abs(g0))))


@pytest.mark.parametrize("remat", [False, True])
def test_remat_checkpoints_each_block(params, remat):
  # One checkpoint per VGG block up to relu5_1 in the gradient's program;
  # none without remat.
  x = _image()
  grad = jax.value_and_grad(_loss(
      lambda p, x, l: vgg.features(p, x, l, remat=remat), params))
  counts = _primitives(jax.make_jaxpr(grad)(x).jaxpr)
  checkpoints = sum(counts[name] for name in CHECKPOINT_PRIMITIVES)
  assert checkpoints == (len(vgg.blocks("vgg16", "relu5_1")) if remat
                         else 0), counts


def test_blocks_group_layers_by_vgg_block():
  groups = vgg.blocks("vgg16", "relu2_1")
  assert [[l.name for l in g] for g in groups] == [
      ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"],
      ["conv2_1", "relu2_1"]]
  assert [len(g) for g in vgg.blocks("alexnet", "relu5")] == [3, 3, 2, 2, 2]


def test_spec_and_config_thread_precision_and_remat(params):
  config = transfer.TransferConfig().replace(
      spec=dict(precision="bf16", remat=True))
  spec = config.objective_spec()
  assert (spec.precision, spec.remat) == ("bf16", True)
  assert hash(spec) != hash(transfer.TransferConfig().objective_spec())
  assert objective.Spec().precision == "float32" and not objective.Spec().remat
  content = np.asarray(_image((32, 32, 3), 2))
  style = np.asarray(_image((32, 32, 3), 3))
  targets = make_targets(params, content, [style], spec)
  weights = objective.make_weights(spec, content_weight=1.0, style_weight=1e7)
  f32 = objective.objective_function(
      transfer.TransferConfig().objective_spec())
  bf16 = objective.objective_function(spec)
  v32 = jax.jit(f32)(content, params, targets, weights)[0]
  v16 = jax.jit(bf16)(content, params, targets, weights)[0]
  assert np.isfinite(float(v16))
  np.testing.assert_allclose(v16, v32, rtol=0.05)
  # ... and the objective really is another program: bf16 convolutions that
  # move the value, one checkpoint per block in its gradient.
  assert abs(float(v16) / float(v32) - 1) > 1e-5, (v16, v32)
  assert all("xbf16>" in l for l in _convolutions(bf16, content, params,
                                                   targets, weights))
  counts = _primitives(jax.make_jaxpr(jax.grad(lambda x: bf16(
      x, params, targets, weights)[0]))(content).jaxpr)
  assert sum(counts[n] for n in CHECKPOINT_PRIMITIVES) == len(
      vgg.blocks("vgg16", "relu5_1")), counts


@pytest.mark.parametrize("conv", ["direct", "winograd"])
def test_estimate_memory_matches_xla_buffer_assignment(params, conv):
  # The estimate against XLA's buffer assignment of the compiled solver loop
  # (temporaries; the weights, transformed ones included, are arguments).
  shape = (192, 256)
  config = transfer.TransferConfig(conv=conv).replace(solver=dict(maxiter=1))
  spec = config.objective_spec()
  prepared = vgg.prepare_params(params, conv, spec.layers)
  image = jnp.zeros((*shape, 3), jnp.float32)
  targets = make_targets(prepared, image, [image], spec)
  weights = objective.make_weights(spec, content_weight=1.0, style_weight=1.0)
  fun = objective.objective_function(spec)
  run = jax.jit(lambda x, a: solvers.minimize(fun, x, config.solver, (), a))
  memory = run.lower(image, (prepared, targets, weights)).compile(
      ).memory_analysis()
  if memory is None:
    pytest.skip("this backend reports no memory analysis")
  transforms = sum(int(np.prod(v.shape)) * 4 for p in prepared.values()
                   for k, v in p.items() if k.startswith("winograd_"))
  assert (transforms > 0) == (conv == "winograd")
  estimate = transfer.estimate_memory(config, shape)
  assert abs(estimate - transforms - transfer.estimate_memory(
      dataclasses.replace(config, conv="direct"), shape)) <= 8
  ratio = (estimate - transforms) / memory.temp_size_in_bytes
  assert 0.8 < ratio < 1.5, ratio


@pytest.mark.parametrize("host_driven", [False, True])
def test_donated_minimize_gives_the_same_result(host_driven):
  # One compiled loop, or chunks driven from the host (a should_stop);
  # both donate x0 when asked, and only then.
  fun = lambda x: (jnp.sum((x - 0.25) ** 2), None)
  config = solvers.SolverConfig(maxiter=5)
  extra = {"should_stop": lambda: False} if host_driven else {}
  kept = jnp.full((4, 4, 3), 0.9)
  ref = solvers.minimize(fun, kept, config, **extra)
  x0 = jnp.full((4, 4, 3), 0.9)
  donated = solvers.minimize(fun, x0, config, donate=True, **extra)
  np.testing.assert_array_equal(donated.x, ref.x)
  assert x0.is_deleted()  # its buffer went to the compiled loop
  assert not kept.is_deleted() and float(kept.sum()) > 0


def test_compilation_cache_helper_sets_the_config(tmp_path, monkeypatch):
  from jax._src import compilation_cache  # pylint: disable=g-import-not-at-top
  names = ("jax_compilation_cache_dir",
           "jax_persistent_cache_min_compile_time_secs",
           "jax_persistent_cache_min_entry_size_bytes")
  saved = {n: getattr(jax.config, n) for n in names}
  try:
    path = str(tmp_path / "cache")
    assert cli.enable_compilation_cache(path) == path
    assert os.path.isdir(path)
    assert jax.config.jax_compilation_cache_dir == path
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0
    monkeypatch.setenv(cli.CACHE_DIR_ENV, str(tmp_path / "env"))
    assert cli.compilation_cache_dir() == str(tmp_path / "env")
    monkeypatch.setenv(cli.CACHE_DIR_ENV, "off")
    assert cli.compilation_cache_dir() is None
    assert cli.enable_compilation_cache() is None
    monkeypatch.delenv(cli.CACHE_DIR_ENV)
    # Its own directory: the user's weights live in ~/.cache/nst_jax/weights.
    assert cli.compilation_cache_dir().endswith(os.path.join(".cache",
                                                             "nst_jax", "jit"))
  finally:
    for n, v in saved.items():
      jax.config.update(n, v)
    compilation_cache.reset_cache()


def test_multiscale_runs_coarse_to_fine(params):
  content = np.asarray(_image((45, 60, 3), 4))
  style = np.asarray(_image((40, 40, 3), 5))
  # Shallow layers: the levels' bookkeeping, not the network, is tested.
  config = transfer.TransferConfig(spec=objective.Spec(
      content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"))
                                   ).replace(solver=dict(maxiter=2))
  levels = []
  result = transfer.stylize_multiscale(
      params, content, [style], (32, 48), config,
      scale_iterations=(3, 2), log_every=0,
      on_level=lambda size, r: levels.append((size, r.image.shape)))
  assert result.image.shape == (36, 48, 3)
  assert levels == [(32, (24, 32, 3)), (48, (36, 48, 3))]
  assert result.iterations == 5
  # log_every=0: the final record of each level only.
  assert [(r["size"], r["iteration"]) for r in result.loss_history] == [
      (32, 3), (48, 2)]
  assert np.all((result.image >= 0) & (result.image <= 1))


def test_multiscale_refuses_bad_scales(params):
  content = np.zeros((32, 32, 3), np.float32)
  with pytest.raises(NSTError, match="increase"):
    transfer.stylize_multiscale(params, content, [content], (64, 32))
  with pytest.raises(NSTError, match="iteration counts"):
    transfer.stylize_multiscale(params, content, [content], (32, 48),
                                scale_iterations=(1,))
  with pytest.raises(NSTError, match="too small"):
    transfer.stylize_multiscale(params, content, [content], (8, 32))


def test_stylize_command_with_scales(tmp_path, vgg16_params):
  del vgg16_params  # the command loads the trained weights
  out = tmp_path / "ms.png"
  env = dict(os.environ)   # the session's compilation cache (conftest)
  proc = subprocess.run(
      [sys.executable, str(ROOT / "scripts" / "stylize.py"),
       f"--content={ROOT / 'examples' / 'chelsea.png'}",
       f"--style={ROOT / 'examples' / 'style_brushwork.png'}",
       "--size=64", "--pyramid_base=32", "--iterations=3", "--checkpoint",
       "--log_every=0", f"--output={out}",
       # shallow layers: the schedule, not the network, is tested
       "--content_layers=relu2_1", "--style_layers=relu1_1,relu2_1"],
      capture_output=True, text=True, env=env, timeout=300)
  assert proc.returncode == 0, proc.stderr
  # The default pyramid: 64 px is painted over 32 and 64 px (3 + 1 its).
  assert max(io.load_image(out).shape[:2]) == 64
  assert "coarse to fine (32 px: 3 iterations, 64 px: 1 iterations)" in (
      proc.stdout)
  assert "level 32 px done" in proc.stdout
  record = json.loads(out.with_suffix(".json").read_text())
  assert sorted({r["size"] for r in record["loss_history"]}) == [32, 64]
  assert record["iterations"] == 4 and record["params"]["pyramid_base"] == 32
