"""Architectures of the frozen recognition networks, as plain data.

Each network is a tuple of layer specs in execution order, named as in the
peers (jcjohnson/neural-style, pystiche): ``conv{block}_{depth}``,
``relu{block}_{depth}``, ``pool{block}`` for VGG; ``conv{i}``, ``relu{i}``,
``pool{i}`` for AlexNet. Convolution kernels are stored HWIO, i.e. shape
``(kh, kw, in_channels, out_channels)``, float32, and biases ``(out_channels,)``.

The torchvision index of each convolution in ``model.features`` is recorded so
that converters can map ``features.{index}.weight`` onto our names.

A :class:`Network` is one set of weights' architecture together with the
:class:`InputSpace` those weights were trained in, so that the network, not
the code that runs it, says how images are preprocessed: torchvision's
(``vgg16``, ``vgg19``, ``alexnet``: RGB in [0, 1], ImageNet mean and std) or
Caffe's (``vgg16_caffe``, ``vgg19_caffe``: the original VGG team weights in the
PyTorch conversion that neural-style-pt uses; BGR in [0, 255] minus the mean
pixel, no std). A Caffe VGG has the layers, names and shapes of its
torchvision twin (``Network.architecture``), so a params pytree cannot be told
apart by its convolutions alone: it carries one extra entry
``{"network=vgg19_caffe": {}}`` (:func:`marker`, :func:`with_marker`), which
has no leaves. torchvision networks carry none (every pytree and file made
before the Caffe networks keeps working).

Sources: Simonyan & Zisserman (2015), configurations D (VGG-16) and E (VGG-19);
torchvision ``vgg16``/``vgg19``/``alexnet``; Nikulin & Novak §3 for AlexNet;
the Caffe input convention from the VGG team's model page (ILSVRC-2014 models:
"the following BGR values should be subtracted: [103.939, 116.779, 123.68]")
and jcjohnson/pytorch-vgg's README (the converted ``.pth`` files: "BGR format
in the range [0, 255]").
"""

from typing import Dict, Mapping, NamedTuple, Optional, Tuple

from nst_jax import errors

# Input convention of the torchvision ImageNet weights: RGB in [0, 1], then
# (x - mean) / std per channel.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Input convention of the Caffe-trained VGG weights: BGR in [0, 255], minus
# the ImageNet mean pixel in BGR order, no division.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


class InputSpace(NamedTuple):
  """How RGB images in [0, 1] become a network's input.

  ``input[..., i] = (scale * rgb[..., channels[i]] - mean[i]) / std[i]``:
  ``channels`` picks the RGB channel that feeds input channel ``i``
  (``(2, 1, 0)``: BGR), ``mean`` and ``std`` are in the input's channel order
  and units (after ``scale``).
  """
  name: str
  channels: Tuple[int, int, int]
  scale: float
  mean: Tuple[float, float, float]
  std: Tuple[float, float, float]


# torchvision's ImageNet weights (``torchvision.transforms.Normalize``).
TORCHVISION = InputSpace("torchvision", (0, 1, 2), 1.0, IMAGENET_MEAN,
                         IMAGENET_STD)
# The original VGG team weights trained in Caffe. The scale is 255 as the
# converted files' README states (8-bit pixel values, the units of the mean
# pixel); jcjohnson/neural-style and neural-style-pt multiply by 256 instead,
# an input 0.4 % larger before the mean is subtracted.
CAFFE = InputSpace("caffe", (2, 1, 0), 255.0, CAFFE_MEAN_BGR,
                   (1.0, 1.0, 1.0))


class Conv(NamedTuple):
  name: str
  kernel_size: int
  in_channels: int
  out_channels: int
  stride: int
  padding: int
  torch_index: int  # index in torchvision's model.features


class ReLU(NamedTuple):
  name: str


class Pool(NamedTuple):
  name: str
  window: int
  stride: int


Layer = Conv | ReLU | Pool


def _vgg(blocks: Tuple[Tuple[int, int], ...]) -> Tuple[Layer, ...]:
  """Builds a VGG layer list from (depth, channels) per block."""
  layers = []
  in_ch, index = 3, 0
  for b, (depth, ch) in enumerate(blocks, start=1):
    for d in range(1, depth + 1):
      layers.append(Conv(f"conv{b}_{d}", 3, in_ch, ch, 1, 1, index))
      layers.append(ReLU(f"relu{b}_{d}"))
      in_ch, index = ch, index + 2
    layers.append(Pool(f"pool{b}", 2, 2))
    index += 1
  return tuple(layers)


VGG16 = _vgg(((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)))
VGG19 = _vgg(((2, 64), (2, 128), (4, 256), (4, 512), (4, 512)))
ALEXNET = (
    Conv("conv1", 11, 3, 64, 4, 2, 0), ReLU("relu1"), Pool("pool1", 3, 2),
    Conv("conv2", 5, 64, 192, 1, 2, 3), ReLU("relu2"), Pool("pool2", 3, 2),
    Conv("conv3", 3, 192, 384, 1, 1, 6), ReLU("relu3"),
    Conv("conv4", 3, 384, 256, 1, 1, 8), ReLU("relu4"),
    Conv("conv5", 3, 256, 256, 1, 1, 10), ReLU("relu5"), Pool("pool5", 3, 2),
)


class Network(NamedTuple):
  """One network: the layers its weights fill and how its input is made.

  ``architecture`` names the network whose convolution names and shapes the
  weights have: the network itself, or (``vgg19_caffe``) its torchvision
  twin; a params pytree of a network whose architecture is another's carries
  :func:`marker`.
  """
  name: str
  layers: Tuple[Layer, ...]
  input_space: InputSpace
  architecture: str


BY_NAME: Dict[str, Network] = {n.name: n for n in (
    Network("vgg16", VGG16, TORCHVISION, "vgg16"),
    Network("vgg19", VGG19, TORCHVISION, "vgg19"),
    Network("alexnet", ALEXNET, TORCHVISION, "alexnet"),
    Network("vgg16_caffe", VGG16, CAFFE, "vgg16"),
    Network("vgg19_caffe", VGG19, CAFFE, "vgg19"),
)}
NETWORKS = {name: n.layers for name, n in BY_NAME.items()}

# Defaults of Gatys et al. (2016) §2-3 for VGG; the analogous layers for
# AlexNet. A network has the defaults of its architecture (vgg19_caffe: those
# of vgg19).
_CONTENT_LAYERS = {
    "vgg16": ("relu4_2",), "vgg19": ("relu4_2",), "alexnet": ("relu4",)}
_STYLE_LAYERS = {
    "vgg16": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
    "vgg19": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
    "alexnet": ("relu1", "relu2", "relu3", "relu4", "relu5"),
}
DEFAULT_CONTENT_LAYERS = {name: _CONTENT_LAYERS[n.architecture]
                          for name, n in BY_NAME.items()}
DEFAULT_STYLE_LAYERS = {name: _STYLE_LAYERS[n.architecture]
                        for name, n in BY_NAME.items()}


# The layers whose features LPIPS compares (Zhang, Isola, Efros, Shechtman &
# Wang, "The Unreasonable Effectiveness of Deep Features as a Perceptual
# Metric", CVPR 2018, §3; the slices of the reference ``lpips`` package): the
# last ReLU of each VGG block, every ReLU of AlexNet.
LPIPS_LAYERS = {
    "vgg16": ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"),
    "alexnet": ("relu1", "relu2", "relu3", "relu4", "relu5"),
}


def conv_layers(network: str) -> Tuple[Conv, ...]:
  """The convolution specs of ``network`` in order."""
  return tuple(l for l in _layers(network) if isinstance(l, Conv))


def param_shapes(network: str) -> dict:
  """``{conv_name: {"kernel": (kh, kw, in, out), "bias": (out,)}}``."""
  return {
      c.name: {"kernel": (c.kernel_size, c.kernel_size, c.in_channels,
                          c.out_channels),
               "bias": (c.out_channels,)}
      for c in conv_layers(network)
  }


def layer_channels(network: str, layer: str) -> int:
  """Channels of ``layer``'s output: those of the last convolution at or
  before it (3 before the first)."""
  channels = 3
  for spec in _layers(network):
    if isinstance(spec, Conv):
      channels = spec.out_channels
    if spec.name == layer:
      return channels
  errors.check_choice("layer", layer, layer_names(network))
  raise AssertionError("unreachable")


def lpips_head_shapes(network: str) -> dict:
  """``{layer: {"weight": (C,)}}``: the LPIPS linear head of each of
  ``LPIPS_LAYERS[network]``, one non-negative weight per channel."""
  errors.check_choice("network", network, LPIPS_LAYERS)
  return {layer: {"weight": (layer_channels(network, layer),)}
          for layer in LPIPS_LAYERS[network]}


def layer_names(network: str) -> Tuple[str, ...]:
  """Every named layer of ``network`` in execution order."""
  return tuple(l.name for l in _layers(network))


def _layers(network: str) -> Tuple[Layer, ...]:
  """``NETWORKS[network]``; an unknown name is an ``NSTError``."""
  return get(network).layers


def get(network: str) -> Network:
  """``BY_NAME[network]``; an unknown name is an ``NSTError``."""
  errors.check_choice("network", network, BY_NAME)
  return BY_NAME[network]


# --- How a params pytree names its network -----------------------------------

MARKER_PREFIX = "network="


def marker(network: str) -> Optional[str]:
  """The key that names ``network`` in a params pytree, or None.

  ``"network=<name>"`` for a network whose architecture is another's (its
  convolutions alone would name the twin: ``"network=vgg19_caffe"``); None
  for a network recognised by its convolution names. The key's value is an
  empty dict: it adds no leaf, so ``jit``, ``grad`` and ``tree_map`` see the
  same arrays, and the name is part of the tree's structure (static under
  ``jit``).
  """
  n = get(network)
  return None if n.architecture == n.name else MARKER_PREFIX + n.name


def marked_network(key: str) -> Optional[str]:
  """The network that a params key ``"network=<name>"`` names; None for any
  other key (a layer's). The name is not checked here."""
  if isinstance(key, str) and key.startswith(MARKER_PREFIX):
    return key[len(MARKER_PREFIX):]
  return None


def with_marker(params: Mapping, network: str) -> dict:
  """``params`` (``{layer: {...}}``) marked as ``network``'s weights.

  Any marker present is dropped and ``{marker(network): {}}`` added where
  ``network`` needs one; a new dict, the layers' values shared, not copied.
  """
  key = marker(network)
  out = {k: v for k, v in params.items() if marked_network(k) is None}
  if key is not None:
    out[key] = {}
  return out
