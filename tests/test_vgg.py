"""Tests of nst_jax.vgg: shapes and names, work done, golden activations.

The shape tests use random parameters made from ``networks.param_shapes`` (no
weights needed). The golden test compares against activations that
``scripts/make_golden.py`` computed with an independent torch implementation
of torchvision's VGG-16 ``features`` in float64 (``tests/data/golden_vgg16.npz``).
Tolerances are XLA:CPU's; on a GPU ``tol`` gives the GPU's (conftest.tol).
"""

import hashlib
import pathlib

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tol
from nst_jax import networks
from nst_jax import vgg
from nst_jax.errors import NSTError

GOLDEN = pathlib.Path(__file__).parent / "data" / "golden_vgg16.npz"


def random_params(network, seed=0):
  """He-initialised random weights with the network's shapes (marked as
  ``network``'s where its layers are another network's:
  ``networks.with_marker``)."""
  rng = np.random.default_rng(seed)
  params = {}
  for name, shapes in networks.param_shapes(network).items():
    kh, kw, cin, _ = shapes["kernel"]
    std = np.sqrt(2.0 / (kh * kw * cin))
    params[name] = {
        "kernel": jnp.asarray(rng.normal(size=shapes["kernel"]) * std, jnp.float32),
        "bias": jnp.asarray(rng.normal(size=shapes["bias"]) * 0.01, jnp.float32),
    }
  return networks.with_marker(params, network)


@pytest.fixture(scope="module")
def params():
  return {n: random_params(n) for n in networks.NETWORKS}


_features = jax.jit(vgg.features, static_argnums=(2, 3))


def _image(h, w, n=1, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(size=(n, h, w, 3)),
                     jnp.float32)


def _expected_vgg_shapes(network, h, w):
  """Layer -> (H, W, C) by walking the spec: convs keep size, pools halve."""
  out = {}
  c = 3
  for layer in networks.NETWORKS[network]:
    if isinstance(layer, networks.Conv):
      c = layer.out_channels
    elif isinstance(layer, networks.Pool):
      h, w = h // 2, w // 2
    out[layer.name] = (h, w, c)
  return out


def _torch_alexnet_shapes(h, w):
  """torchvision alexnet().features sizes: floor((n + 2p − k)/s) + 1."""
  def conv(n, k, s, p):
    return (n + 2 * p - k) // s + 1
  sizes = {}
  for name, k, s, p, c in [("conv1", 11, 4, 2, 64), ("pool1", 3, 2, 0, 64),
                           ("conv2", 5, 1, 2, 192), ("pool2", 3, 2, 0, 192),
                           ("conv3", 3, 1, 1, 384), ("conv4", 3, 1, 1, 256),
                           ("conv5", 3, 1, 1, 256), ("pool5", 3, 2, 0, 256)]:
    h, w = conv(h, k, s, p), conv(w, k, s, p)
    sizes[name] = (h, w, c)
    if name.startswith("conv"):
      sizes["relu" + name[4:]] = (h, w, c)
  return sizes


# --- (a) shapes, names, work done, errors --------------------------------------


@pytest.mark.parametrize("network", ["vgg16", "vgg19"])
@pytest.mark.parametrize("hw", [(32, 48), (35, 33)])
def test_vgg_shapes_and_names(params, network, hw):
  layers = networks.layer_names(network)
  out = _features(params[network], _image(*hw, n=2), layers, "max")
  assert set(out) == set(layers)  # jit returns dicts with sorted keys
  want = _expected_vgg_shapes(network, *hw)
  for name in layers:
    assert out[name].shape == (2, *want[name]), name
    assert out[name].dtype == jnp.float32
  # Spot checks that the walk above is what we think: pools halve (floor).
  h, w = hw
  assert out["pool1"].shape[1:3] == (h // 2, w // 2)
  assert out["pool5"].shape[1:3] == (h // 32, w // 32)
  assert out["relu5_1"].shape[-1] == 512


@pytest.mark.parametrize("hw", [(224, 224), (100, 131)])
def test_alexnet_shapes_match_torch_formula(params, hw):
  layers = networks.layer_names("alexnet")
  out = _features(params["alexnet"], _image(*hw), layers, "max")
  assert set(out) == set(layers)
  want = _torch_alexnet_shapes(*hw)
  for name in layers:
    assert out[name].shape == (1, *want[name]), name
  if hw == (224, 224):
    assert out["pool5"].shape == (1, 6, 6, 256)  # torchvision's classifier input


def test_subset_and_order_of_layers(params):
  layers = ("relu3_1", "conv1_1", "pool2")
  # Without jit the dict keeps the requested order (jit sorts dict keys).
  eager = vgg.features(params["vgg16"], _image(16, 16), layers, "avg")
  assert tuple(eager) == layers
  out = _features(params["vgg16"], _image(16, 16), layers, "avg")
  assert set(out) == set(layers)
  full = _features(params["vgg16"], _image(16, 16),
                   networks.layer_names("vgg16")[:16], "avg")
  for name in layers:  # two programs: bit-identical on the CPU
    scale = float(np.abs(np.asarray(full[name])).max())
    np.testing.assert_allclose(np.asarray(out[name]), np.asarray(full[name]),
                               rtol=0, atol=tol(0, 1e-5 * scale))


def _count_primitives(jaxpr, prefix):
  n = 0
  for eqn in jaxpr.eqns:
    if eqn.primitive.name.startswith(prefix):
      n += 1
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      n += _count_primitives(sub, prefix)
  return n


@pytest.mark.parametrize("layers,convs,pools", [
    (("relu1_1",), 1, 0), (("conv1_2",), 2, 0), (("pool1",), 2, 1),
    (("relu4_2",), 9, 3), (("relu1_1", "relu3_1"), 5, 2), (("pool5",), 13, 5),
])
@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_computes_only_up_to_deepest_layer(params, layers, convs, pools, pooling):
  jaxpr = jax.make_jaxpr(
      lambda p, x: vgg.features(p, x, layers, pooling))(params["vgg16"],
                                                         _image(32, 32))
  assert _count_primitives(jaxpr.jaxpr, "conv_general_dilated") == convs
  # 2×2 max pools are reshaped maxima (vgg._max_pool_2x2), avg pools windows.
  pool_op = "reduce_max" if pooling == "max" else "reduce_window"
  assert _count_primitives(jaxpr.jaxpr, pool_op) == pools


def test_unknown_layer_raises_naming_it(params):
  with pytest.raises(NSTError, match="relu9_9"):
    vgg.features(params["vgg16"], _image(8, 8), ("relu1_1", "relu9_9"))
  with pytest.raises(NSTError, match="relu5_4"):  # a VGG-19 layer
    vgg.features(params["vgg16"], _image(8, 8), ("relu5_4",))
  with pytest.raises(NSTError, match="relu1_1"):  # a VGG layer for AlexNet
    vgg.features(params["alexnet"], _image(64, 64), ("relu1_1",))


@pytest.mark.parametrize("shape", [(8, 8, 3), (1, 8, 8, 4), (1, 8, 8, 1),
                                   (2, 1, 8, 8, 3)])
def test_bad_image_shape_raises_value_error(params, shape):
  with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
    vgg.features(params["vgg16"], jnp.zeros(shape), ("relu1_1",))


def test_bad_pooling_raises(params):
  with pytest.raises(NSTError, match="foo"):
    vgg.features(params["vgg16"], _image(8, 8), ("relu1_1",), pooling="foo")


def test_jit_second_call_does_not_recompile(params):
  traces = []

  def f(p, x):
    traces.append(1)
    return vgg.features(p, x, ("relu2_1",), "max")

  fn = jax.jit(f)
  a = fn(params["vgg16"], _image(16, 16, seed=1))
  b = fn(params["vgg16"], _image(16, 16, seed=2))
  assert fn._cache_size() == 1
  assert len(traces) == 1
  assert not np.allclose(np.asarray(a["relu2_1"]), np.asarray(b["relu2_1"]))


def test_avg_and_max_pooling_values(params):
  """Pooling of a known feature map: compare pool1 with numpy of relu1_2."""
  x = _image(8, 10)
  for pooling in ("max", "avg"):
    out = _features(params["vgg16"], x, ("relu1_2", "pool1"), pooling)
    r = np.asarray(out["relu1_2"])[0]
    blocks = r.reshape(4, 2, 5, 2, -1)
    want = blocks.max((1, 3)) if pooling == "max" else blocks.mean((1, 3))
    np.testing.assert_allclose(np.asarray(out["pool1"])[0], want, rtol=1e-6,
                               atol=1e-6)


# --- (b) golden activations from torch ------------------------------------------


def _sha256(path):
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


@pytest.fixture(scope="module")
def golden():
  from nst_jax import weights
  if not GOLDEN.exists():
    pytest.fail(f"{GOLDEN} missing: run scripts/make_golden.py")
  data = dict(np.load(GOLDEN, allow_pickle=False))
  path = weights.weights_path("vgg16")
  digest = _sha256(path) if path.exists() else None
  if digest is not None and digest != str(data["weights_sha256"]):
    # A mismatch is a failure, not a reason to skip: either the converter
    # changed (review it; test_weights pins the expected sha256) or the file
    # is stale (re-create it with `nst-fetch-weights --network=vgg16 --force`).
    pytest.fail(f"{path} has sha256 {digest[:12]}, but the golden "
                "activations were made with weights of sha256 "
                f"{str(data['weights_sha256'])[:12]}")
  return data


@pytest.mark.parametrize("conv", ["direct", "winograd"])
@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_golden_activations(vgg16_params, golden, pooling, conv):
  layers = tuple(str(l) for l in golden["layers"])
  assert layers == ("relu1_1", "relu2_2", "relu3_1", "relu4_2", "relu5_1",
                    "pool5")
  image = jnp.asarray(golden["image"])[None]
  assert image.shape == (1, 48, 64, 3)
  prepared = vgg.prepare_params(vgg16_params, conv)
  assert ("winograd_forward" in prepared["conv4_2"]) == (conv == "winograd")
  fn = jax.jit(lambda p, x: vgg.features(p, x, layers, pooling))
  out = fn(prepared, image)
  for layer in layers:
    got = np.asarray(out[layer])[0][..., golden[f"channels/{layer}"]]
    want = golden[f"{pooling}/{layer}"]
    assert got.shape == want.shape, layer
    scale = np.abs(want).max()
    assert scale > 1.0, layer  # not a degenerate all-zero map
    np.testing.assert_allclose(got, want, rtol=tol(1e-4, 1e-3),
                               atol=tol(1e-4, 1e-3) * scale,
                               err_msg=f"{pooling} {layer}")
  # A second image of the same shape reuses the compiled program.
  fn(prepared, image[:, ::-1])
  assert fn._cache_size() == 1


def test_golden_tolerance_distinguishes_poolings(vgg16_params, golden):
  """The tolerance above has teeth: max-pooled features are far from avg."""
  image = jnp.asarray(golden["image"])[None]
  out = _features(vgg16_params, image, ("relu3_1",), "max")
  got = np.asarray(out["relu3_1"])[0][..., golden["channels/relu3_1"]]
  want = golden["avg/relu3_1"]
  assert np.abs(got - want).max() > 1e-2 * np.abs(want).max()


# --- (c) vmap -------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_vmap_over_images_equals_separate_calls(params, pooling):
  layers = ("relu1_1", "relu3_1", "pool3")
  images = _image(20, 24, n=2, seed=3)
  p = params["vgg16"]
  batched = jax.jit(jax.vmap(
      lambda x: vgg.features(p, x[None], layers, pooling)))(images)
  as_batch = _features(p, images, layers, pooling)
  for i in range(2):
    single = _features(p, images[i:i + 1], layers, pooling)
    for name in layers:
      assert batched[name].shape == (2, 1, *single[name].shape[1:])
      np.testing.assert_allclose(np.asarray(batched[name][i]),
                                 np.asarray(single[name]),
                                 rtol=tol(1e-5, 1e-4), atol=tol(1e-5, 1e-4))
      np.testing.assert_allclose(np.asarray(as_batch[name][i:i + 1]),
                                 np.asarray(single[name]),
                                 rtol=tol(1e-5, 1e-4), atol=tol(1e-5, 1e-4))


# --- (d) loading, network_of ----------------------------------------------------


@pytest.mark.parametrize("network", list(networks.NETWORKS))
def test_network_of(params, network):
  assert vgg.network_of(params[network]) == network
  shapes = networks.with_marker(networks.param_shapes(network), network)
  assert vgg.network_of(shapes) == network  # only the keys matter


def test_network_of_unknown_raises(params):
  p = dict(params["vgg16"])
  del p["conv5_3"]
  with pytest.raises(NSTError, match="no known network"):
    vgg.network_of(p)
  with pytest.raises(NSTError):
    vgg.network_of({})
  with pytest.raises(NSTError):
    vgg.network_of({**params["vgg16"], "fc6": None})


def test_load_params_bogus_path_raises(tmp_path):
  with pytest.raises(NSTError, match="vgg17"):
    vgg.load_params("vgg17")
  with pytest.raises(NSTError, match="no_such.npz"):
    vgg.load_params(tmp_path / "no_such.npz")
  with pytest.raises(NSTError):
    vgg.load_params(tmp_path)  # a directory


def test_load_params_wrong_keys_raises(tmp_path):
  path = tmp_path / "other.npz"
  np.savez(path, **{"fc6/kernel": np.zeros((2, 2), np.float32)})
  with pytest.raises(NSTError, match="no known network"):
    vgg.load_params(path)


def test_load_params_corrupt_file_raises_nsterror(tmp_path):
  bad = tmp_path / "garbage.npz"
  bad.write_bytes(b"not a zip file")
  with pytest.raises(NSTError):
    vgg.load_params(bad)


def test_load_params_from_path_recognises_network(tmp_path, params):
  from nst_jax import weights
  path = tmp_path / "mine.npz"
  weights.save_params(path, jax.tree_util.tree_map(np.asarray, params["alexnet"]))
  loaded = vgg.load_params(path)
  assert vgg.network_of(loaded) == "alexnet"
  for name, leaves in params["alexnet"].items():
    for key, value in leaves.items():
      assert isinstance(loaded[name][key], jax.Array)
      np.testing.assert_array_equal(np.asarray(loaded[name][key]),
                                    np.asarray(value))


def test_load_params_real_vgg16(vgg16_params):
  assert vgg.network_of(vgg16_params) == "vgg16"
  for name, shapes in networks.param_shapes("vgg16").items():
    assert vgg16_params[name]["kernel"].shape == shapes["kernel"]
    assert vgg16_params[name]["kernel"].dtype == jnp.float32
    assert vgg16_params[name]["bias"].shape == shapes["bias"]


@pytest.mark.parametrize("padding,ksize", [(1, 3), (0, 3), (2, 5)])
def test_stride1_conv_gradients_match_autodiff(padding, ksize):
  """The hand-written input and kernel gradients of the stride-1 conv (fast
  inside while loops on XLA:CPU) equal those autodiff derives."""
  rng = np.random.default_rng(padding + ksize)
  x = jnp.asarray(rng.normal(size=(2, 9, 7, 3)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(ksize, ksize, 3, 4)), jnp.float32)
  out_shape = vgg._conv_raw(x, k, 1, padding).shape
  g = jnp.asarray(rng.normal(size=out_shape), jnp.float32)
  loss_fast = lambda x, k: jnp.sum(vgg._stride1_conv(x, k, padding) * g)
  loss_ref = lambda x, k: jnp.sum(vgg._conv_raw(x, k, 1, padding) * g)
  fast = jax.jit(jax.grad(loss_fast, argnums=(0, 1)))(x, k)
  ref = jax.jit(jax.grad(loss_ref, argnums=(0, 1)))(x, k)
  for a, b in zip(fast, ref):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4,
                               atol=1e-4)
  np.testing.assert_allclose(
      np.asarray(vgg._stride1_conv(x, k, padding)),
      np.asarray(vgg._conv_raw(x, k, 1, padding)), rtol=1e-6, atol=1e-6)
