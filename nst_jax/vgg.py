"""VGG (and AlexNet) features as pure functions of (params, images).

Array contract: ``images`` are float arrays of shape ``(N, H, W, 3)``, RGB,
values in [0, 1]. They are mapped here to the input space of the network the
params belong to (``networks.Network.input_space``: torchvision's ImageNet mean
and std for vgg16/vgg19/alexnet; Caffe's BGR, 0-255, mean pixel for
vgg16_caffe/vgg19_caffe), so callers never see the network's input convention
(``prescaled=True`` passes images already scaled another way, e.g. LPIPS's).
Feature maps come back NHWC.

Params are ``{conv_name: {"kernel": (kh, kw, in, out), "bias": (out,)}}``,
float32, as made by ``nst-fetch-weights``; the network is recognised from the
keys (``network_of``), so ``features`` needs nothing but the pytree. A Caffe
VGG has its torchvision twin's convolutions and one more key,
``"network=vgg19_caffe"`` with an empty dict (``networks.marker``: no leaf, part
of the tree's structure), which ``load_params`` adds from the converted file
and ``networks.with_marker`` adds to params made by hand. ``prepare_params``
adds Winograd-transformed kernels to the wide 3×3 layers
(``"winograd_forward"``, ``"winograd_backward"``); ``features`` uses them
where present (``nst_jax.winograd``; VGG-16 evaluations ~1.4× faster on the
CPU, docs/benchmarks.md).
"""

import functools
import os
from typing import Dict, Iterable, Sequence

import jax
import jax.numpy as jnp

from nst_jax import errors, networks, winograd
from nst_jax.errors import NSTError

POOLING = ("max", "avg")
# Precision policies of the convolutions (``features(..., precision=)``):
# "float32": float32 operands and arithmetic (``lax.Precision.HIGHEST``; on
#   GPUs with tensor cores this forbids TF32);
# "tf32": float32 operands, ``lax.Precision.DEFAULT`` — TF32 tensor cores on
#   NVIDIA Ampere or later, the same as "float32" on the CPU;
# "bf16": operands rounded to bfloat16, float32 accumulation and outputs.
# Activations between layers, Grams and losses stay float32 in every policy.
PRECISIONS = ("float32", "tf32", "bf16")
# Convolution algorithms (``prepare_params(params, conv=)``): "direct" is
# XLA's convolution; "winograd" runs the 3×3 stride-1 convolutions with at
# least ``WINOGRAD_MIN_CHANNELS`` output channels as F(4×4, 3×3)
# (``nst_jax.winograd``); "auto" is "winograd" on the CPU, where it measured
# faster (docs/benchmarks.md), and "direct" elsewhere (cuDNN picks its own
# algorithms).
CONV_ALGORITHMS = ("auto", "direct", "winograd")
# Below this many output channels the 36 matrix products are too narrow to
# beat XLA:CPU's direct convolution (``scripts/benchmark.py --mode=layers``,
# forward and input gradient at 256×192: conv2_2, 128 channels, 28.4 ms
# Winograd vs 27.9 ms direct; conv3_1, 256 channels, 12.0 vs 13.2 ms; the
# same split at 512 px; docs/benchmarks.md).
WINOGRAD_MIN_CHANNELS = 256


def load_params(network: str | os.PathLike = "vgg16") -> Dict[str, Dict[str, jax.Array]]:
  """Loads converted weights for ``network`` (one of ``networks.NETWORKS``).

  ``network`` may also be a path to a converted ``.npz``; its network is
  recognised from the layer names and, for a Caffe VGG, the name the file
  records (``network_of``). Every key and shape is checked against the
  network spec, and a mismatch names the offending key (``NSTError``). The
  params of a Caffe VGG carry their ``networks.marker``.
  """
  from nst_jax.weights import store  # the disk side, only when loading
  if str(network) in networks.NETWORKS:
    path, name = store.weights_path(str(network)), str(network)
  else:
    path = os.fspath(network)
    if not os.path.isfile(path):
      raise NSTError(
          f"unknown {errors.param('network')} {str(network)!r}: use one of "
          f"{', '.join(networks.NETWORKS)} or a path to a converted .npz")
    try:
      name = network_of(dict.fromkeys(store.stored_keys(path)))
    except (OSError, ValueError, EOFError) as e:
      raise NSTError(f"cannot read weights {path}: not a converted .npz "
                     f"({' '.join(str(e).split())})") from None
  params = store.load_params_file(path, name)
  return jax.tree_util.tree_map(jnp.asarray, params)


def network_of(params) -> str:
  """Names the network whose weights ``params`` holds.

  The convolution names give the architecture (vgg16, vgg19 or alexnet);
  a ``networks.marker`` key, when present, names the network of that
  architecture (``"network=vgg19_caffe"``). Only the keys are read, so this
  works on traced params inside ``jit``.
  """
  keys = set(params)
  marked = {networks.marked_network(k) for k in keys} - {None}
  convs = {k for k in keys if networks.marked_network(k) is None}
  architectures = dict.fromkeys(n.architecture
                                for n in networks.BY_NAME.values())
  found = [a for a in architectures if convs == set(networks.param_shapes(a))]
  if not found:
    raise NSTError(
        f"{errors.param('params')} match no known network: expected the "
        f"convolution names of {', '.join(architectures)}, got "
        f"{sorted(convs)[:4]}...")
  architecture = found[0]
  if not marked:
    return architecture
  name = sorted(marked)[0]
  if (len(marked) > 1 or name not in networks.BY_NAME
      or networks.marker(name) is None
      or networks.BY_NAME[name].architecture != architecture):
    twins = [n for n, spec in networks.BY_NAME.items()
             if spec.architecture == architecture and n != architecture]
    raise NSTError(
        f"{errors.param('params')} are marked as {', '.join(sorted(marked))}"
        f" but hold the convolutions of {architecture}: a marker names one "
        f"network with its layers ({', '.join(twins) or 'none has a marker'})")
  return name


def normalize(images: jax.Array,
              input_space: networks.InputSpace = networks.TORCHVISION
              ) -> jax.Array:
  """Maps RGB in [0, 1] to a network's input (``networks.InputSpace``).

  ``(scale * images[..., channels] - mean) / std`` per channel, each step
  only where it changes something: torchvision's (the default) is
  ``(x - mean) / std`` with the ImageNet mean and std; Caffe's
  (``networks.CAFFE``) is ``255 * x[..., ::-1] - (103.939, 116.779, 123.68)``
  (BGR, 0-255, mean pixel; no std). ``images``: ``(..., 3)``; returns the
  same shape and dtype.
  """
  per_channel = (1,) * (images.ndim - 1) + (3,)
  x = images
  if tuple(input_space.channels) != (0, 1, 2):
    x = jnp.stack([images[..., c] for c in input_space.channels], axis=-1)
  if input_space.scale != 1:
    x = x * jnp.asarray(input_space.scale, images.dtype)
  x = x - jnp.asarray(input_space.mean, images.dtype).reshape(per_channel)
  if any(s != 1 for s in input_space.std):
    x = x / jnp.asarray(input_space.std, images.dtype).reshape(per_channel)
  return x


def _conv_raw(x, kernel, stride, padding, precision="float32"):
  """One convolution under a precision policy (see ``PRECISIONS``)."""
  if precision == "bf16":
    x, kernel = x.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16)
    lax_precision, out_dtype = None, jnp.float32
  else:
    lax_precision = (jax.lax.Precision.HIGHEST if precision == "float32"
                     else jax.lax.Precision.DEFAULT)
    out_dtype = None
  return jax.lax.conv_general_dilated(
      x, kernel, (stride, stride), ((padding, padding), (padding, padding)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=lax_precision,
      preferred_element_type=out_dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _stride1_conv(x, kernel, padding, precision="float32"):
  """A stride-1 convolution whose input gradient is a plain convolution.

  The gradient with respect to the input is the convolution of the output
  cotangent with the spatially flipped kernel with in/out channels swapped,
  padded by ``k − 1 − padding``. Written out so, XLA:CPU runs it on its fast
  convolution path also inside the solver's ``while_loop``; the transposed
  convolution that autodiff emits runs 3.3× slower there (measured: VGG-16
  value-and-gradient at 256×192, 0.34 s as a program, 1.11 s per iteration
  inside a loop; jax-ml/jax#12868). Reverse mode only: ``jax.jvp`` through
  ``features`` is not supported. The input gradient uses the same precision
  policy as the forward convolution.
  """
  return _conv_raw(x, kernel, 1, padding, precision)


def _stride1_conv_fwd(x, kernel, padding, precision):
  return _conv_raw(x, kernel, 1, padding, precision), (x, kernel)


def _stride1_conv_bwd(padding, precision, residuals, g):
  x, kernel = residuals
  flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
  grad_x = _conv_raw(g, flipped, 1, kernel.shape[0] - 1 - padding, precision)
  # Unused (and removed by XLA) unless the caller differentiates the weights.
  grad_kernel = jax.vjp(lambda k: _conv_raw(x, k, 1, padding, precision),
                        kernel)[1](g)[0]
  return grad_x.astype(x.dtype), grad_kernel.astype(kernel.dtype)


_stride1_conv.defvjp(_stride1_conv_fwd, _stride1_conv_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _winograd_conv(x, forward, backward, precision="float32"):
  """``winograd.conv3x3(x, forward)`` whose input gradient is the same
  algorithm on the output cotangent with ``backward``, the transform of the
  flipped, channel-swapped kernel (as ``_stride1_conv``). The cotangent of
  ``forward`` is exact (removed by XLA unless the caller differentiates the
  weights); ``backward`` does not enter the value, so its cotangent is 0."""
  return winograd.conv3x3(x, forward, precision)


def _winograd_conv_fwd(x, forward, backward, precision):
  return winograd.conv3x3(x, forward, precision), (x, forward, backward)


def _winograd_conv_bwd(precision, residuals, g):
  x, forward, backward = residuals
  grad_x = winograd.conv3x3(g, backward, precision)
  grad_forward = jax.vjp(lambda u: winograd.conv3x3(x, u, precision),
                         forward)[1](g)[0]
  return grad_x, grad_forward, jnp.zeros_like(backward)


_winograd_conv.defvjp(_winograd_conv_fwd, _winograd_conv_bwd)


def winograd_layers(network: str,
                    min_channels: int = WINOGRAD_MIN_CHANNELS) -> tuple:
  """The convolutions of ``network`` that ``conv="winograd"`` transforms:
  3×3, stride 1, padding 1, at least ``min_channels`` output channels."""
  return tuple(l.name for l in networks.NETWORKS[network]
               if isinstance(l, networks.Conv) and l.kernel_size == 3
               and l.stride == 1 and l.padding == 1
               and l.out_channels >= min_channels)


def resolve_conv(conv: str) -> str:
  """``"auto"`` → ``"winograd"`` on the CPU, ``"direct"`` elsewhere; other
  names are checked and returned."""
  errors.check_choice("conv", conv, CONV_ALGORITHMS)
  if conv == "auto":
    return "winograd" if jax.default_backend() == "cpu" else "direct"
  return conv


@jax.jit
def _winograd_kernels(kernels):
  """``{layer: kernel}`` → ``{layer: (forward, backward)}`` transforms, all
  layers in one program (one compilation, one compilation-cache entry)."""
  def both(kernel):
    flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
    return (winograd.transform_kernel(kernel),
            winograd.transform_kernel(flipped))
  return {name: both(k) for name, k in kernels.items()}


def prepare_params(params, conv: str = "auto",
                   layers: Sequence[str] | None = None, *,
                   min_channels: int = WINOGRAD_MIN_CHANNELS):
  """Params for the chosen convolution algorithm (``CONV_ALGORITHMS``).

  ``"winograd"`` (``"auto"`` on the CPU) adds to each of
  ``winograd_layers(network, min_channels)`` (only those up to the deepest of
  ``layers`` when given) the transformed kernels ``"winograd_forward"``
  ``(6, 6, C_in, C_out)`` and ``"winograd_backward"`` ``(6, 6, C_out, C_in)``
  (for the input gradient), computed once here rather than in every
  evaluation; ``features`` then uses them for those layers. ``"direct"``
  returns params without them. The result is a new pytree: the input is not
  changed, and preparing prepared params again is cheap (the transforms are
  kept). The transforms hold 4× the weights of their layers, twice: for
  VGG-16 up to ``relu5_1``, conv3_1 … conv5_1, 0.32 GB of float32.

  Values and input gradients agree with the direct convolution to a relative
  ~5e-6. Gradients with respect to the weights flow to ``"kernel"`` only when
  ``prepare_params`` runs inside the differentiated function; with prepared
  params passed in, they flow to ``"winograd_forward"``.
  """
  algorithm = resolve_conv(conv)
  network = network_of(params)
  eligible = (set(winograd_layers(network, min_channels))
              if algorithm == "winograd" else set())
  if layers is not None:
    check_layers(network, layers)
    names = networks.layer_names(network)
    deepest = max((names.index(l) for l in layers), default=-1)
    eligible = {l for l in eligible if names.index(l) <= deepest}
  out = {name: {k: v for k, v in p.items() if k in ("kernel", "bias")
                or (name in eligible and k.startswith("winograd_"))}
         for name, p in params.items()}
  missing = {name: jnp.asarray(out[name]["kernel"], jnp.float32)
             for name in sorted(eligible) if "winograd_forward" not in out[name]}
  for name, (forward, backward) in (
      _winograd_kernels(missing).items() if missing else ()):
    out[name]["winograd_forward"] = forward
    out[name]["winograd_backward"] = backward
  return out


def _conv(x, p, stride, padding, precision="float32"):
  """One convolution layer with its bias: Winograd where ``p`` carries the
  transforms (``prepare_params``) and the policy is not bf16, else direct."""
  kernel = p["kernel"].astype(x.dtype)
  if "winograd_forward" in p and precision != "bf16":
    y = _winograd_conv(x, p["winograd_forward"].astype(x.dtype),
                       p["winograd_backward"].astype(x.dtype), precision)
  elif stride == 1 and kernel.shape[0] == kernel.shape[1]:
    y = _stride1_conv(x, kernel, padding, precision)
  else:
    y = _conv_raw(x, kernel, stride, padding, precision)
  return y + p["bias"].astype(x.dtype).reshape(1, 1, 1, -1)


@jax.custom_vjp
def _max_pool_2x2(x):
  """2×2, stride-2 max pooling of ``(N, H, W, C)`` (odd edges dropped, as
  ``VALID``), whose gradient goes to the first maximum of each window in
  row-major order, PyTorch's ``max_pool2d`` convention. Written as element-
  wise selects: XLA:CPU's ``select_and_scatter``, the gradient of
  ``reduce_window``, took 45 ms of a 290 ms VGG-16 evaluation at 256×192."""
  n, h, w, c = x.shape
  x = x[:, :h // 2 * 2, :w // 2 * 2]
  return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _max_pool_2x2_fwd(x):
  y = _max_pool_2x2(x)
  return y, (x, y)


def _max_pool_2x2_bwd(residuals, g):
  x, y = residuals
  n, h, w, c = x.shape
  h2, w2 = h // 2, w // 2
  tiles = x[:, :h2 * 2, :w2 * 2].reshape(n, h2, 2, w2, 2, c)
  taken = jnp.zeros(y.shape, bool)
  firsts = []
  for i, j in ((0, 0), (0, 1), (1, 0)):
    firsts.append((tiles[:, :, i, :, j] == y) & ~taken)
    taken = taken | firsts[-1]
  firsts.append(~taken)  # the last element takes what is left (NaN windows)
  parts = [jnp.where(first, g, jnp.zeros_like(g)) for first in firsts]
  top = jnp.stack(parts[:2], axis=3)
  bottom = jnp.stack(parts[2:], axis=3)                 # (N, h2, w2, 2, C)
  grad = jnp.stack([top, bottom], axis=2).reshape(n, h2 * 2, w2 * 2, c)
  return (jnp.pad(grad, ((0, 0), (0, h - h2 * 2), (0, w - w2 * 2), (0, 0))),)


_max_pool_2x2.defvjp(_max_pool_2x2_fwd, _max_pool_2x2_bwd)


def _pool(x, window, stride, pooling):
  dims, strides = (1, window, window, 1), (1, stride, stride, 1)
  if pooling == "max":
    if window == 2 and stride == 2:
      return _max_pool_2x2(x)
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, dims, strides, "VALID")
  summed = jax.lax.reduce_window(x, 0.0, jax.lax.add, dims, strides, "VALID")
  return summed / (window * window)


def check_layers(network: str, layers: Iterable[str],
                 name: str = "layers") -> None:
  """Raises ``NSTError`` naming any layer that ``network`` does not have;
  ``name`` is the parameter that held ``layers``."""
  names = networks.layer_names(network)
  for layer in layers:
    errors.check_choice(name, layer, names)


def _block(name: str) -> str:
  """The block a layer belongs to: ``"conv3_2"`` → ``"3"``, ``"pool3"`` →
  ``"3"`` (AlexNet: ``"relu4"`` → ``"4"``)."""
  return name.lstrip("convrelupool").split("_")[0]


def blocks(network: str, deepest: str):
  """The layers of ``network`` up to ``deepest``, grouped by block (the unit
  that ``features(..., remat=True)`` checkpoints)."""
  groups, last = [], None
  for layer in networks.NETWORKS[network]:
    if _block(layer.name) != last:
      groups.append([])
      last = _block(layer.name)
    groups[-1].append(layer)
    if layer.name == deepest:
      break
  return [tuple(g) for g in groups]


def _run_block(x, params, block, wanted, pooling, precision, on_layer=None):
  out = {}
  for layer in block:
    if isinstance(layer, networks.Conv):
      p = params[layer.name]
      x = _conv(x, p, layer.stride, layer.padding, precision)
    elif isinstance(layer, networks.ReLU):
      x = jax.nn.relu(x)
    else:
      x = _pool(x, layer.window, layer.stride, pooling)
    if on_layer is not None:
      x = on_layer(layer.name, x)
    if layer.name in wanted:
      out[layer.name] = x
  return x, out


def features(params, images: jax.Array, layers: Sequence[str],
             pooling: str = "max", *, precision: str = "float32",
             remat: bool = False,
             prescaled: bool = False,
             on_layer=None) -> Dict[str, jax.Array]:
  """Feature maps of the named layers for a batch of images.

  Args:
    params: converted weights (``load_params``).
    images: ``(N, H, W, 3)`` float RGB in [0, 1], mapped to the input space
      of ``network_of(params)`` (``normalize``).
    layers: names such as ``"relu4_2"``, ``"conv1_1"``, ``"pool3"``.
    pooling: ``"max"`` (the trained network) or ``"avg"`` (Gatys et al. 2016
      §2: average pooling "improves the gradient flow and one obtains slightly
      more appealing results").
    precision: the convolutions' precision policy, one of ``PRECISIONS``
      (``"float32"``, ``"tf32"``, ``"bf16"``); outputs are float32 in all.
    remat: gradient checkpointing: each block (``conv{b}_*`` … ``pool{b}``)
      runs under ``jax.checkpoint``, so reverse mode keeps only the blocks'
      inputs and the requested outputs and recomputes the rest (one more
      forward pass). Values and gradients are unchanged. It cannot lower the
      peak much for VGG, whose peak is the backward pass of the full-
      resolution first block; on XLA:CPU it measured no saving (XLA's
      buffer assignment, 2026-11-22) and 1.8x the time per iteration
      (docs/benchmarks.md).
    prescaled: ``images`` are already the network's input and go in as they
      are, not normalised here: for an input scaling of one's own, such as
      LPIPS's (``metrics.lpips_scaling``).
    on_layer: ``on_layer(name, x) -> x`` applied to the network's input
      (name ``"input"``, after the input scaling) and to every layer's output
      before the next layer reads it; ``None``: nothing. The tiled objective
      (``nst_jax.tiling``) zeroes there what lies outside the image, so a
      window of a zero-padded canvas has the whole image's features.

  Returns:
    ``{layer: (N, H_l, W_l, C_l)}``, computed only up to the deepest layer
    requested.
  """
  if images.ndim != 4 or images.shape[-1] != 3:
    raise NSTError(f"{errors.param('images')} must have shape (N, H, W, 3), "
                   f"got {images.shape}")
  errors.check_choice("pooling", pooling, POOLING)
  errors.check_choice("precision", precision, PRECISIONS)
  network = network_of(params)
  layers = tuple(layers)
  check_layers(network, layers)
  if not layers:
    return {}
  names = networks.layer_names(network)
  deepest = max(layers, key=names.index)
  wanted, out = frozenset(layers), {}
  space = networks.get(network).input_space
  x = images if prescaled else normalize(images, space)
  if on_layer is not None:
    x = on_layer("input", x)
  for block in blocks(network, deepest):
    run = functools.partial(_run_block, block=block, wanted=wanted,
                            pooling=pooling, precision=precision,
                            on_layer=on_layer)
    if remat:
      run = jax.checkpoint(run)
    block_params = {l.name: params[l.name] for l in block
                    if isinstance(l, networks.Conv)}
    x, block_out = run(x, block_params)
    out.update(block_out)
  return {name: out[name] for name in layers}


def feature_shapes(network: str, shape: Sequence[int], layers: Sequence[str],
                   pooling: str = "max") -> Dict[str, tuple]:
  """``{layer: (H_l, W_l, C_l)}`` of an ``(H, W)`` image, from shapes alone
  (``jax.eval_shape``: nothing is computed or allocated). A layer the image
  is too small to reach has a zero (or negative-size) extent: ``(0, 0, 1)``."""
  params = networks.with_marker(
      {k: {n: jax.ShapeDtypeStruct(s, jnp.float32) for n, s in v.items()}
       for k, v in networks.param_shapes(network).items()}, network)
  image = jax.ShapeDtypeStruct((1, *tuple(shape)[:2], 3), jnp.float32)
  layers = tuple(layers)
  try:
    out = jax.eval_shape(lambda p, x: features(p, x, layers, pooling),
                         params, image)
  except (TypeError, ValueError):  # a negative size inside the network
    return {layers[-1]: (0, 0, 1)}
  return {k: tuple(v.shape[1:]) for k, v in out.items()}
