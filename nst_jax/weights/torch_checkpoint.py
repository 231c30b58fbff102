"""PyTorch checkpoints (``torch.save`` output) read without torch.

:func:`read_torch_checkpoint` reads the zip format (torch>=1.6) and the legacy
sequence-of-pickles format into a flat ``{"a.b": np.ndarray}`` state dict.
The pickles are read with a restricted unpickler that admits only
``collections.OrderedDict``, ``torch.<Name>Storage`` and torch's tensor
rebuilding (``torch._utils._rebuild_tensor``, ``_rebuild_tensor_v2``,
``_rebuild_parameter``), each mapped onto a local stand-in, so a malicious
checkpoint cannot run code; every tensor is bounds-checked against its
storage before it is copied out.
"""

import collections
import os
import pickle
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Union

import numpy as np

from nst_jax.errors import NSTError
from nst_jax.weights import _text
from nst_jax.weights.unpickle import Malformed, Whitelisted, run_unpickler

PathLike = Union[str, os.PathLike]

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
    raise Malformed(f"attempt to set state on torch.{self.name}")


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
      raise Malformed(f"storage view exceeds storage {root.key}")
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
    raise Malformed("tensor without a storage")
  size, stride = tuple(size), tuple(stride)
  if (not _is_index(storage_offset) or len(size) != len(stride)
      or not all(map(_is_index, size + stride))):
    raise Malformed("invalid tensor offset, size or stride")
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
    raise Malformed("parameter without a tensor")
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
      return Whitelisted(qualified, _TORCH_GLOBALS[qualified])
    if module == "torch" and name in _TORCH_STORAGES:
      return _StorageType(name, _TORCH_STORAGES[name])
    raise NSTError(f"refusing to unpickle {qualified} from {self.source}: "
                   "PyTorch checkpoints may only contain tensors in dicts")

  def persistent_load(self, pid):
    if self.on_storage is None:
      raise Malformed("unexpected persistent id")
    return self.on_storage(pid)


def _parse_storage_pid(pid, legacy: bool):
  """Validates a storage persistent id; returns (type, key, numel, view)."""
  length = 6 if legacy else 5
  if (not isinstance(pid, tuple) or len(pid) != length
      or pid[0] != "storage" or not isinstance(pid[1], _StorageType)
      or not isinstance(pid[2], str) or not _is_index(pid[4])):
    raise Malformed("invalid storage record")
  view = pid[5] if legacy else None
  if view is not None and (
      not isinstance(view, tuple) or len(view) != 3
      or not _is_index(view[1]) or not _is_index(view[2])):
    raise Malformed("invalid storage view record")
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
    raise Malformed("a tensor's storage has no data")
  if 0 in tensor.size:
    return np.zeros(tensor.size, dtype=data.dtype)
  last = tensor.offset + sum((n - 1) * s
                             for n, s in zip(tensor.size, tensor.stride))
  if last >= data.size:
    raise Malformed(f"a tensor reaches element {last} of a storage of "
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
  if isinstance(obj, (_Storage, _StorageView, _StorageType, Whitelisted)):
    raise Malformed("a bare storage or global outside a tensor")
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
        raise Malformed(f"unknown byte order {order!r}")
      byteorder = "<" if order == "little" else ">"
    storages: Dict[str, _Storage] = {}

    def on_storage(pid):
      storage_type, key, numel, _ = _parse_storage_pid(pid, legacy=False)
      if key in storages:
        return storages[key]
      member = f"{prefix}data/{key}"
      if member not in names:
        raise Malformed(f"missing storage data/{key}")
      raw = zf.read(member)
      if len(raw) < numel * _element_size(storage_type.kind):
        raise Malformed(f"storage data/{key} is truncated")
      storage = _Storage(key, storage_type.kind, numel)
      storage.data = _decode_storage(raw, storage_type.kind, numel, byteorder)
      storages[key] = storage
      return storage

    with zf.open(pickles[0]) as f:
      obj = run_unpickler(_TorchUnpickler(f, source, on_storage), source,
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
      return run_unpickler(_TorchUnpickler(f, source, on_storage), source,
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
        raise Malformed(f"inconsistent records for storage {key}")
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
  source = _text.display(path)
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
  except Malformed as e:
    raise NSTError(f"{source} is not a valid PyTorch checkpoint ({e}): obtain "
                   "a fresh copy") from None
  except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise NSTError(f"cannot read {source} ({_text.one_line(e)}): it may be "
                   "truncated or corrupt; download it again") from None
  if not isinstance(obj, Mapping):
    raise NSTError(f"{source} holds a {type(obj).__name__}, not a state dict: "
                   "pass a file written by torch.save(model.state_dict())")
  flat = _flatten_tensors(obj)
  if not flat:
    raise NSTError(f"{source} contains no tensors: pass a file written by "
                   "torch.save(model.state_dict())")
  return flat

