"""Restricted unpickling of plain containers of numeric numpy arrays.

Pickles are only ever read with restricted unpicklers that admit a fixed
whitelist of globals, so a malicious weights file cannot run code. Here:
numpy's array reconstruction, mapped onto local stand-ins that build plain
numeric arrays from raw bytes (:class:`RestrictedUnpickler`,
:func:`load_numpy_pickle`). :class:`Malformed`, :class:`Whitelisted` and
:func:`run_unpickler` are shared with :mod:`nst_jax.weights.torch_checkpoint`,
whose unpickler maps torch's tensor rebuilding the same way.
"""

import io
import math
import pickle
import re
from typing import Any, Callable, Mapping

import numpy as np

from nst_jax.errors import NSTError
from nst_jax.weights import _text

class Malformed(Exception):
  """A structurally invalid pickle or checkpoint; callers add the file name."""


class Whitelisted:
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
    raise Malformed(f"attempt to set state on {self.name}")


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
      raise Malformed(f"dtype {code!r} is not a plain numeric dtype")
    self.dtype = dtype

  def __setstate__(self, state):
    if (not isinstance(state, tuple) or len(state) not in (8, 9)
        or state[0] not in (3, 4) or state[1] not in ("<", ">", "|", "=")
        or state[2:8] != (None, None, None, -1, -1, 0)
        or (len(state) == 9 and state[8] is not None)):
      raise Malformed("unexpected dtype state")
    if state[1] in "<>":
      self.dtype = self.dtype.newbyteorder(state[1])


def _real_dtype(dtype) -> np.dtype:
  if not isinstance(dtype, _DtypeProxy):
    raise Malformed("array without a dtype")
  return dtype.dtype


def _as_bytes(data) -> bytes:
  """Raw array data as pickled: bytes, or str from Python 2 pickles."""
  if isinstance(data, str):
    return data.encode("latin1")
  if isinstance(data, (bytes, bytearray, memoryview, pickle.PickleBuffer)):
    return bytes(data)
  raise Malformed("array data is not bytes")


def _array_from_bytes(data, dtype: np.dtype, shape,
                      fortran: bool) -> np.ndarray:
  """A native-endian, writable array from raw bytes; sizes checked."""
  shape = tuple(shape)
  if not all(isinstance(n, int) and n >= 0 for n in shape):
    raise Malformed("invalid array shape")
  raw = _as_bytes(data)
  if len(raw) != math.prod(shape) * dtype.itemsize:
    raise Malformed("array data does not match its shape")
  flat = np.frombuffer(raw, dtype=dtype)
  return flat.reshape(shape, order="F" if fortran else "C").astype(
      dtype.newbyteorder("="), order="C")


class _ArrayProxy:
  """Stands for ``_reconstruct(ndarray, ...)`` until its state is set."""
  __slots__ = ("array",)

  def __init__(self, cls, shape, typecode):
    del shape, typecode  # placeholders; the state carries the real ones
    if cls is not np.ndarray:
      raise Malformed("only plain ndarrays are allowed")
    self.array = None

  def __setstate__(self, state):
    if not isinstance(state, tuple) or len(state) not in (4, 5):
      raise Malformed("unexpected array state")
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
    raise Malformed("unexpected _codecs.encode call")
  return text.encode("latin1")


def _empty_bytes() -> bytes:
  """Local stand-in for ``bytes()`` (empty bytes in protocol-2 pickles)."""
  return b""


def _numpy_global(module: str, name: str):
  """What a numpy-array pickle may reference as ``module.name``, or None."""
  if module == "numpy" and name == "ndarray":
    return np.ndarray  # only ever compared against
  if module == "numpy" and name == "dtype":
    return Whitelisted("numpy.dtype", _DtypeProxy)
  if module == "_codecs" and name == "encode":
    return Whitelisted("_codecs.encode", _latin1_encode)
  if module in ("builtins", "__builtin__") and name == "bytes":
    return Whitelisted("bytes", _empty_bytes)
  match = re.fullmatch(r"numpy\.(?:_core|core)\.(multiarray|numeric)", module)
  local = {("multiarray", "_reconstruct"): _ArrayProxy,
           ("multiarray", "scalar"): _scalar,
           ("numeric", "_frombuffer"): _frombuffer}
  if match and (match.group(1), name) in local:
    return Whitelisted(f"{module}.{name}", local[match.group(1), name])
  return None


def _resolve_arrays(obj: Any) -> Any:
  """Replaces array proxies in nested dicts/lists/tuples by their arrays."""
  if isinstance(obj, _ArrayProxy):
    if obj.array is None:
      raise Malformed("array without data")
    return obj.array
  if isinstance(obj, Mapping):
    return {k: _resolve_arrays(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_resolve_arrays(v) for v in obj)
  if isinstance(obj, (_DtypeProxy, Whitelisted)) or obj is np.ndarray:
    raise Malformed("a bare dtype or global outside an array")
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
    obj = run_unpickler(super(), self.source, "numpy pickle")
    try:
      return _resolve_arrays(obj)
    except Malformed as e:
      raise NSTError(f"{self.source} is not a valid numpy pickle ({e}): "
                     "obtain a fresh copy from the original source") from None

  def find_class(self, module, name):
    found = _numpy_global(module, name)
    if found is None:
      raise NSTError(f"refusing to unpickle {module}.{name} from "
                     f"{self.source}: weights files may only contain numpy "
                     "arrays")
    return found


def run_unpickler(unpickler: pickle.Unpickler, source: str, what: str) -> Any:
  """``unpickler.load()`` with every failure turned into an NSTError."""
  try:
    return unpickler.load()
  except NSTError:
    raise
  except Malformed as e:
    raise NSTError(f"{source} is not a valid {what} ({e}): obtain a fresh copy "
                   "from the original source") from None
  except RecursionError:
    raise NSTError(f"{source} is not a valid {what} (nested too deeply): "
                   "obtain a fresh copy from the original source") from None
  except Exception as e:  # pylint: disable=broad-except
    raise NSTError(f"{source} is corrupt or truncated ({type(e).__name__}: "
                   f"{_text.one_line(e)}): obtain a fresh copy from the "
                   "original source") from None


def load_numpy_pickle(data: bytes, source: str) -> Any:
  """Unpickles ``data`` (containers of numpy arrays) with RestrictedUnpickler.

  Arrays come back native-endian, C-contiguous and writable, with a numeric
  (or bool) dtype. ``source`` names the data in error messages.
  """
  return RestrictedUnpickler(io.BytesIO(data), source).load()
