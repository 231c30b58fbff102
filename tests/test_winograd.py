"""Tests of nst_jax.winograd and of the fast paths of nst_jax.vgg that use it
(``prepare_params``, ``conv=``) and of the 2×2 max pool's gradient.

References: a float64 numpy 3×3 cross-correlation written out as a sum of
shifted products, and ``G g Gᵀ`` in float64; the VGG features and gradients
of the direct convolution (itself checked against torchvision's golden
activations in test_vgg.py). Against the direct convolution the tolerances
are XLA:CPU's; on a GPU the direct convolution is cuDNN's choice of algorithm
and ``tol`` gives ten times them (conftest.tol).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import configs

from conftest import tol
from nst_jax import networks
from nst_jax import transfer
from nst_jax import vgg
from nst_jax import winograd
from nst_jax.errors import NSTError

from test_vgg import random_params


def _conv_ref(x, k):
  """SAME, stride-1 3×3 cross-correlation in float64: Σ_{dy,dx} x_pad ⋅ k."""
  x, k = np.asarray(x, np.float64), np.asarray(k, np.float64)
  n, h, w, _ = x.shape
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = np.zeros((n, h, w, k.shape[-1]))
  for dy in range(3):
    for dx in range(3):
      out += xp[:, dy:dy + h, dx:dx + w] @ k[dy, dx]
  return out


def _rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("shape", [(1, 8, 8, 3, 5), (2, 7, 5, 4, 6),
                                   (1, 1, 1, 2, 3), (1, 13, 9, 16, 32),
                                   (3, 4, 12, 1, 1)])
def test_conv3x3_matches_float64_reference(shape):
  n, h, w, c, o = shape
  rng = np.random.default_rng(sum(shape))
  x = rng.standard_normal((n, h, w, c)).astype(np.float32)
  k = rng.standard_normal((3, 3, c, o)).astype(np.float32)
  got = jax.jit(winograd.conv3x3)(x, winograd.transform_kernel(jnp.asarray(k)))
  assert got.shape == (n, h, w, o) and got.dtype == jnp.float32
  # F(4×4, 3×3) in float32: ~1e-6 relative (direct float32: ~1e-7).
  assert _rel(got, _conv_ref(x, k)) < 1e-5


def test_conv3x3_error_is_small_but_not_zero():
  """The transforms round: the result is not bit-equal to a direct conv (so
  the comparison above is not trivially satisfied by a fallback)."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((1, 16, 16, 8)), jnp.float32)
  k = jnp.asarray(rng.standard_normal((3, 3, 8, 8)), jnp.float32)
  direct = jax.lax.conv_general_dilated(
      x, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"),
      precision=jax.lax.Precision.HIGHEST)
  got = winograd.conv3x3(x, winograd.transform_kernel(k))
  assert 0 < _rel(got, direct) < tol(1e-5, 1e-4)


def test_transform_kernel_matches_float64():
  k = np.random.default_rng(1).standard_normal((3, 3, 4, 5)).astype(np.float32)
  want = np.einsum("ri,ijco,sj->rsco", winograd.G, k.astype(np.float64),
                   winograd.G)
  got = winograd.transform_kernel(jnp.asarray(k))
  assert got.shape == (6, 6, 4, 5)
  assert _rel(got, want) < 1e-6


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match=r"\(3, 3, C_in, C_out\)"):
    winograd.transform_kernel(jnp.zeros((5, 5, 2, 2)))
  with pytest.raises(ValueError, match="3 channels"):
    winograd.conv3x3(jnp.zeros((1, 4, 4, 3)), jnp.zeros((6, 6, 2, 2)))


def test_conv3x3_vmap_equals_loop():
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.standard_normal((3, 1, 9, 10, 4)), jnp.float32)
  u = winograd.transform_kernel(
      jnp.asarray(rng.standard_normal((3, 3, 4, 6)), jnp.float32))
  batched = jax.jit(jax.vmap(winograd.conv3x3, in_axes=(0, None)))(x, u)
  for i in range(3):
    np.testing.assert_allclose(np.asarray(batched[i]),
                               np.asarray(winograd.conv3x3(x[i], u)),
                               rtol=1e-6, atol=1e-6)


# --- vgg.prepare_params and the Winograd layers --------------------------------


@pytest.fixture(scope="module")
def params():
  return random_params("vgg16")


def test_winograd_layers_are_the_wide_3x3_convs():
  assert vgg.winograd_layers("vgg16") == (
      "conv3_1", "conv3_2", "conv3_3", "conv4_1", "conv4_2", "conv4_3",
      "conv5_1", "conv5_2", "conv5_3")
  # AlexNet: conv1 (11×11, stride 4), conv2 (5×5) and 192 channels are out.
  assert vgg.winograd_layers("alexnet") == ("conv3", "conv4", "conv5")


def test_prepare_params_adds_only_what_is_used(params):
  prepared = vgg.prepare_params(params, "winograd", ("relu1_1", "relu4_2"))
  with_transforms = {n for n, p in prepared.items() if "winograd_forward" in p}
  assert with_transforms == {"conv3_1", "conv3_2", "conv3_3", "conv4_1",
                             "conv4_2"}
  p = prepared["conv4_1"]
  assert p["winograd_forward"].shape == (6, 6, 256, 512)
  assert p["winograd_backward"].shape == (6, 6, 512, 256)
  assert all(set(q) == {"kernel", "bias"} for q in params.values())  # unchanged
  again = vgg.prepare_params(prepared, "winograd", ("relu4_2",))
  assert again["conv4_1"]["winograd_forward"] is p["winograd_forward"]
  direct = vgg.prepare_params(prepared, "direct")
  assert all(set(q) == {"kernel", "bias"} for q in direct.values())


def test_auto_is_winograd_on_the_cpu_only():
  want = "winograd" if jax.default_backend() == "cpu" else "direct"
  assert vgg.resolve_conv("auto") == want


def test_prepare_params_bad_inputs(params):
  with pytest.raises(NSTError, match="unknown `conv` 'fft'"):
    vgg.prepare_params(params, "fft")
  with pytest.raises(NSTError, match="relu9_9"):
    vgg.prepare_params(params, "winograd", ("relu9_9",))


LAYERS = ("relu1_1", "relu3_1", "relu4_2", "relu5_1")


def _features(p, x, pooling="max", precision="float32"):
  return jax.jit(lambda p, x: vgg.features(p, x, LAYERS, pooling,
                                           precision=precision))(p, x)


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_features_match_direct(params, pooling):
  x = jnp.asarray(np.random.default_rng(3).uniform(size=(2, 37, 45, 3)),
                  jnp.float32)
  prepared = vgg.prepare_params(params, "winograd")
  direct = _features(params, x, pooling)
  fast = _features(prepared, x, pooling)
  for layer in LAYERS:
    assert _rel(fast[layer], direct[layer]) < tol(2e-5, 2e-4), layer
  # relu1_1 comes before the first Winograd layer: the same convolution, in
  # another program (bit-identical on the CPU).
  scale = float(np.abs(np.asarray(direct["relu1_1"])).max())
  np.testing.assert_allclose(np.asarray(fast["relu1_1"]),
                             np.asarray(direct["relu1_1"]), rtol=0,
                             atol=tol(0, 1e-5 * scale))


def test_bf16_policy_uses_the_direct_convolution(params):
  x = jnp.asarray(np.random.default_rng(4).uniform(size=(1, 32, 32, 3)),
                  jnp.float32)
  prepared = vgg.prepare_params(params, "winograd")
  a = _features(prepared, x, precision="bf16")
  b = _features(params, x, precision="bf16")
  for layer in LAYERS:  # bf16 products, float32 sums in a program's order
    scale = float(np.abs(np.asarray(b[layer])).max())
    np.testing.assert_allclose(np.asarray(a[layer]), np.asarray(b[layer]),
                               rtol=0, atol=tol(0, 1e-5 * scale))


def _loss(p, x):
  feats = vgg.features(p, x, LAYERS)
  return sum(jnp.sum(jnp.tanh(f) * jnp.cos(jnp.arange(f.shape[-1]) * 0.1)[None, None, None])
             for f in feats.values())


def test_input_gradient_matches_direct(params):
  x = jnp.asarray(np.random.default_rng(5).uniform(size=(1, 40, 36, 3)),
                  jnp.float32)
  prepared = vgg.prepare_params(params, "winograd")
  g_direct = jax.jit(jax.grad(_loss, argnums=1))(params, x)
  g_fast = jax.jit(jax.grad(_loss, argnums=1))(prepared, x)
  assert (np.linalg.norm(np.asarray(g_fast - g_direct))
          / np.linalg.norm(np.asarray(g_direct))) < tol(2e-5, 2e-4)


def test_weight_gradient_flows_through_prepare(params):
  """Preparing inside the differentiated function gives the kernel gradient
  of the direct convolution (the transforms are linear in the kernel)."""
  x = jnp.asarray(np.random.default_rng(6).uniform(size=(1, 24, 24, 3)),
                  jnp.float32)
  layers = ("relu3_2",)
  loss = lambda p, conv: jnp.sum(jnp.sin(vgg.features(
      vgg.prepare_params(p, conv, layers), x, layers)["relu3_2"]))
  sub = {k: params[k] for k in params}
  # Compiled (one program per algorithm), not op by op.
  grad = jax.jit(jax.grad(loss), static_argnums=1)
  g_direct = grad(sub, "direct")["conv3_2"]["kernel"]
  g_fast = grad(sub, "winograd")["conv3_2"]["kernel"]
  assert np.abs(np.asarray(g_direct)).max() > 0
  assert _rel(g_fast, g_direct) < tol(1e-4, 1e-3)


# --- the 2×2 max pool's gradient -------------------------------------------------


def _pool_ref(x):
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1),
                               (1, 2, 2, 1), "VALID")


@pytest.mark.parametrize("shape", [(1, 8, 6, 3), (2, 7, 9, 4), (1, 1, 5, 2)])
def test_max_pool_matches_reduce_window(shape):
  x = jnp.asarray(np.random.default_rng(7).standard_normal(shape), jnp.float32)
  g = jnp.asarray(np.random.default_rng(8).standard_normal(
      _pool_ref(x).shape), jnp.float32)
  np.testing.assert_array_equal(np.asarray(vgg._max_pool_2x2(x)),
                                np.asarray(_pool_ref(x)))
  ours = jax.vjp(vgg._max_pool_2x2, x)[1](g)[0]
  ref = jax.vjp(_pool_ref, x)[1](g)[0]
  assert ours.shape == x.shape
  np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))


def test_max_pool_ties_go_to_the_first_maximum():
  """PyTorch's convention (row-major first maximum): one window of four
  equal values and one with the maximum at (0, 1) and (1, 1)."""
  x = jnp.asarray([[[1.0, 1.0, 0.0, 5.0],
                    [1.0, 1.0, 2.0, 5.0]]])[..., None]     # (1, 2, 4, 1)
  grad = jax.grad(lambda x: jnp.sum(vgg._max_pool_2x2(x) * jnp.asarray(
      [[[[3.0], [7.0]]]])))(x)
  np.testing.assert_array_equal(np.asarray(grad[0, ..., 0]),
                                [[3.0, 0.0, 0.0, 7.0], [0.0, 0.0, 0.0, 0.0]])


# --- the transfer's choice ---------------------------------------------------------


def test_transfer_config_checks_conv():
  with pytest.raises(NSTError, match="conv"):
    transfer.check_config(transfer.TransferConfig(conv="fft"))


def test_memory_estimate_counts_the_transforms():
  base = transfer.TransferConfig(conv="direct")
  fast = base.replace(conv="winograd")
  shapes = networks.param_shapes("vgg16")
  kernels = sum(int(np.prod(shapes[l]["kernel"])) for l in
                ("conv3_1", "conv3_2", "conv3_3", "conv4_1", "conv4_2",
                 "conv4_3", "conv5_1"))
  diff = (transfer.estimate_memory(fast, (64, 64))
          - transfer.estimate_memory(base, (64, 64)))
  assert abs(diff - 4 * 8 * kernels) <= 4  # int() of the float total


def test_stylize_gives_the_same_result_with_either_algorithm(params):
  rng = np.random.default_rng(9)
  content = rng.uniform(size=(40, 48, 3)).astype(np.float32)
  style = rng.uniform(size=(40, 40, 3)).astype(np.float32)
  config = configs.config(iterations=5, conv="direct")
  a = transfer.stylize(params, content, [style], config, log_every=0)
  b = transfer.stylize(params, content, [style],
                       config.replace(conv="winograd"),
                       log_every=0)
  assert np.abs(a.image - b.image).max() < tol(1e-3, 1e-2)
  last = lambda r: r.loss_history[-1]["total"]
  assert abs(last(a) - last(b)) <= tol(1e-4, 1e-3) * abs(last(a))


def test_multiscale_transforms_the_kernels_once(params, monkeypatch):
  calls = []
  real = vgg._winograd_kernels  # pylint: disable=protected-access

  def counting(kernels):
    calls.append(sorted(kernels))
    return real(kernels)

  monkeypatch.setattr(vgg, "_winograd_kernels", counting)
  rng = np.random.default_rng(10)
  content = rng.uniform(size=(36, 48, 3)).astype(np.float32)
  result = transfer.stylize_multiscale(
      params, content, [content[::-1]], (32, 48),
      transfer.TransferConfig(conv="winograd"), scale_iterations=(2, 2),
      log_every=0)
  assert result.image.shape == (36, 48, 3)
  assert len(calls) == 1
  assert calls[0] == sorted(("conv3_1", "conv3_2", "conv3_3", "conv4_1",
                             "conv4_2", "conv4_3", "conv5_1"))
