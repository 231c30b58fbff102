"""Architectures of the frozen recognition networks, as plain data.

Each network is a tuple of layer specs in execution order, named as in the
peers (jcjohnson/neural-style, pystiche): ``conv{block}_{depth}``,
``relu{block}_{depth}``, ``pool{block}`` for VGG; ``conv{i}``, ``relu{i}``,
``pool{i}`` for AlexNet. Convolution kernels are stored HWIO, i.e. shape
``(kh, kw, in_channels, out_channels)``, float32, and biases ``(out_channels,)``.

The torchvision index of each convolution in ``model.features`` is recorded so
that converters can map ``features.{index}.weight`` onto our names.

Sources: Simonyan & Zisserman (2015), configurations D (VGG-16) and E (VGG-19);
torchvision ``vgg16``/``vgg19``/``alexnet``; Nikulin & Novak §3 for AlexNet.
"""

from typing import NamedTuple, Tuple

from nst_jax import errors

# Input convention of the torchvision ImageNet weights: RGB in [0, 1], then
# (x - mean) / std per channel.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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

NETWORKS = {"vgg16": VGG16, "vgg19": VGG19, "alexnet": ALEXNET}

# Defaults of Gatys et al. (2016) §2-3 for VGG; the analogous layers for AlexNet.
DEFAULT_CONTENT_LAYERS = {
    "vgg16": ("relu4_2",), "vgg19": ("relu4_2",), "alexnet": ("relu4",)}
DEFAULT_STYLE_LAYERS = {
    "vgg16": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
    "vgg19": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
    "alexnet": ("relu1", "relu2", "relu3", "relu4", "relu5"),
}


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
  errors.check_choice("network", network, NETWORKS)
  return NETWORKS[network]
