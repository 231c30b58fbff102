"""VGG (and AlexNet) features as pure functions of (params, images).

Array contract: ``images`` are float arrays of shape ``(N, H, W, 3)``, RGB,
values in [0, 1]. They are normalised here with the ImageNet mean and standard
deviation of the torchvision weights (``networks.IMAGENET_MEAN/STD``), so
callers never see the network's input convention. Feature maps come back NHWC.

Params are ``{conv_name: {"kernel": (kh, kw, in, out), "bias": (out,)}}``,
float32, as made by ``scripts/fetch_weights.py``; the network is recognised
from the keys, so ``features`` needs nothing but the pytree.
"""

import functools
import os
from typing import Dict, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import networks
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


def load_params(network: str | os.PathLike = "vgg16") -> Dict[str, Dict[str, jax.Array]]:
  """Loads converted weights for ``network`` ("vgg16", "vgg19", "alexnet").

  ``network`` may also be a path to a converted ``.npz``; its architecture is
  recognised from the layer names. Every key and shape is checked against the
  network spec, and a mismatch names the offending key (``NSTError``).
  """
  from nst_jax import weights as _weights  # the disk side, only when loading
  if str(network) in networks.NETWORKS:
    path, name = _weights.weights_path(str(network)), str(network)
  else:
    path = os.fspath(network)
    if not os.path.isfile(path):
      raise NSTError(
          f"unknown network {str(network)!r}: use one of "
          f"{', '.join(networks.NETWORKS)} or a path to a converted .npz")
    try:
      with np.load(path, allow_pickle=False) as f:
        name = network_of({k.split("/")[0]: None for k in f.files})
    except (OSError, ValueError, EOFError) as e:
      raise NSTError(f"cannot read weights {path}: not a converted .npz "
                     f"({' '.join(str(e).split())})") from None
  params = _weights.load_params_file(path, name)
  return jax.tree_util.tree_map(jnp.asarray, params)


def network_of(params) -> str:
  """Names the architecture whose convolution names ``params`` holds."""
  keys = set(params)
  for name in ("vgg19", "vgg16", "alexnet"):
    if keys == set(networks.param_shapes(name)):
      return name
  raise NSTError(
      "params match no known network: expected the convolution names of "
      f"vgg16, vgg19 or alexnet, got {sorted(keys)[:4]}...")


def normalize(images: jax.Array) -> jax.Array:
  """Maps RGB in [0, 1] to the network's input: ``(x - mean) / std``."""
  mean = jnp.asarray(networks.IMAGENET_MEAN, images.dtype).reshape(1, 1, 1, 3)
  std = jnp.asarray(networks.IMAGENET_STD, images.dtype).reshape(1, 1, 1, 3)
  return (images - mean) / std


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


def _conv(x, kernel, bias, stride, padding, precision="float32"):
  kernel = kernel.astype(x.dtype)
  if stride == 1 and kernel.shape[0] == kernel.shape[1]:
    y = _stride1_conv(x, kernel, padding, precision)
  else:
    y = _conv_raw(x, kernel, stride, padding, precision)
  return y + bias.astype(x.dtype).reshape(1, 1, 1, -1)


def _pool(x, window, stride, pooling):
  dims, strides = (1, window, window, 1), (1, stride, stride, 1)
  if pooling == "max":
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, dims, strides, "VALID")
  summed = jax.lax.reduce_window(x, 0.0, jax.lax.add, dims, strides, "VALID")
  return summed / (window * window)


def check_layers(network: str, layers: Iterable[str]) -> None:
  """Raises ``NSTError`` naming any layer that ``network`` does not have."""
  names = networks.layer_names(network)
  for layer in layers:
    if layer not in names:
      raise NSTError(
          f"{network} has no layer {layer!r}; its layers are "
          f"{', '.join(names)}")


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


def _run_block(x, params, block, wanted, pooling, precision):
  out = {}
  for layer in block:
    if isinstance(layer, networks.Conv):
      p = params[layer.name]
      x = _conv(x, p["kernel"], p["bias"], layer.stride, layer.padding,
                precision)
    elif isinstance(layer, networks.ReLU):
      x = jax.nn.relu(x)
    else:
      x = _pool(x, layer.window, layer.stride, pooling)
    if layer.name in wanted:
      out[layer.name] = x
  return x, out


def features(params, images: jax.Array, layers: Sequence[str],
             pooling: str = "max", *, precision: str = "float32",
             remat: bool = False) -> Dict[str, jax.Array]:
  """Feature maps of the named layers for a batch of images.

  Args:
    params: converted weights (``load_params``).
    images: ``(N, H, W, 3)`` float RGB in [0, 1].
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
      resolution first block; on XLA:CPU it measured 34 % more memory and
      1.8x the time per iteration (docs/benchmarks.md).

  Returns:
    ``{layer: (N, H_l, W_l, C_l)}``, computed only up to the deepest layer
    requested.
  """
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(
        f"features expects images of shape (N, H, W, 3), got {images.shape}")
  if pooling not in POOLING:
    raise NSTError(f"pooling must be one of {POOLING}, got {pooling!r}")
  if precision not in PRECISIONS:
    raise NSTError(f"precision must be one of {PRECISIONS}, got {precision!r}")
  network = network_of(params)
  layers = tuple(layers)
  check_layers(network, layers)
  if not layers:
    return {}
  names = networks.layer_names(network)
  deepest = max(layers, key=names.index)
  wanted, out = frozenset(layers), {}
  x = normalize(images)
  for block in blocks(network, deepest):
    run = functools.partial(_run_block, block=block, wanted=wanted,
                            pooling=pooling, precision=precision)
    if remat:
      run = jax.checkpoint(run)
    block_params = {l.name: params[l.name] for l in block
                    if isinstance(l, networks.Conv)}
    x, block_out = run(x, block_params)
    out.update(block_out)
  return {name: out[name] for name in layers}
