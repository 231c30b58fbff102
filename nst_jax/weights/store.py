"""Converted weights on disk: the weights directory, ``.npz`` files, manifest.

Besides image I/O, this subpackage is the only library code that touches
disk, and this module is where converted weights are read and written. The
parameters of ``<network>`` are stored as ``<weights_dir>/<network>.npz`` with
flat keys ``"conv1_1/kernel"``, ``"conv1_1/bias"``, ..., written
deterministically so that the file's sha256 is reproducible and can be
recorded in ``<weights_dir>/MANIFEST.json``. A network whose params carry a
:func:`nst_jax.networks.marker` (the Caffe VGGs, whose layers are their
torchvision twins') is recorded by one more member, ``"network"``: a 0-d
unicode array holding its name (``np.load(path)["network"]`` ->
``'vgg19_caffe'``); files of the other networks have none and are unchanged.
The LPIPS linear heads of
``vgg16`` and ``alexnet`` are stored the same way, as
``<weights_dir>/lpips_<network>.npz`` with keys ``"relu1_2/weight"``, ....

The weights directory is resolved at call time by :func:`weights_dir`, never
at import time, so that setting ``$NST_JAX_WEIGHTS_DIR`` after importing
``nst_jax`` takes effect.
"""

import hashlib
import io
import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np

from nst_jax import networks
from nst_jax.errors import NSTError
from nst_jax.weights import _text
from nst_jax.weights.convert import (Params, validate_lpips_heads,
                                     validate_params)

PathLike = Union[str, os.PathLike]

WEIGHTS_DIR_ENV = "NST_JAX_WEIGHTS_DIR"
MANIFEST_NAME = "MANIFEST.json"
# The installed (or checked-out) ``nst_jax`` package directory.
PACKAGE_DIR = Path(__file__).resolve().parent.parent


def weights_dir(*, package_dir: Optional[PathLike] = None) -> Path:
  """The directory that holds converted weights, resolved now.

  In order of precedence:

  1. ``$NST_JAX_WEIGHTS_DIR``, when set and not empty (``~`` expanded);
  2. the repository's ``weights/`` when running from a checkout, i.e. when
     the package's parent directory holds both ``pyproject.toml`` and a
     ``weights/`` directory;
  3. the user cache: ``$XDG_CACHE_HOME/nst_jax/weights`` when
     ``XDG_CACHE_HOME`` is an absolute path, else
     ``~/.cache/nst_jax/weights``.

  ``package_dir`` is the ``nst_jax`` package directory (default: this one);
  tests pass another to stand for an installed or checked-out package. The
  directory is not created here: writers create it when they write.
  """
  env = os.environ.get(WEIGHTS_DIR_ENV)
  if env:
    return Path(env).expanduser()
  root = Path(package_dir if package_dir is not None else PACKAGE_DIR).parent
  if (root / "pyproject.toml").is_file() and (root / "weights").is_dir():
    return root / "weights"
  cache = os.environ.get("XDG_CACHE_HOME", "")
  if not os.path.isabs(cache):  # unset, empty or relative: ignored (XDG spec)
    cache = os.path.join(os.path.expanduser("~"), ".cache")
  return Path(cache) / "nst_jax" / "weights"


def _resolve(directory: Optional[PathLike]) -> Path:
  """``directory`` as a Path, or :func:`weights_dir` when it is None."""
  return Path(directory) if directory is not None else weights_dir()


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


def write_atomic(path: PathLike, data: bytes) -> None:
  """Writes ``data`` to ``path`` via a temp file in the same directory.

  Creates the parent directories; readers see the old file or the new one,
  never a partial one. Raises NSTError naming ``path`` on failure.
  """
  path = Path(path)
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                               suffix=".tmp")
  except OSError as e:
    raise NSTError(f"cannot write {_text.display(path)} ({_text.one_line(e)}):"
                   " check that its directory is writable") from None
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
    raise NSTError(f"cannot write {_text.display(path)} ({_text.one_line(e)}):"
                   " check the free disk space and permissions") from None


# --- Converted weights (.npz) ------------------------------------------------

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# The member that records a marked network's name (see the module docstring).
NETWORK_MEMBER = "network"


def params_to_npz_bytes(params: Mapping[str, Mapping[str, Any]]) -> bytes:
  """The deterministic ``.npz`` encoding of ``params``.

  Keys ``"<layer>/<name>"`` in sorted order, each an uncompressed ``.npy``
  member with a fixed timestamp and attributes, so equal params give equal
  bytes (``np.load`` reads it like any ``.npz``). A marker entry
  ``{"network=<name>": {}}`` becomes the member ``"network"`` holding
  ``<name>``.
  """
  flat = {}
  for layer, entries in params.items():
    name = networks.marked_network(layer)
    if name is not None:
      flat[NETWORK_MEMBER] = np.array(name)
      continue
    flat.update({f"{layer}/{key}": value for key, value in entries.items()})
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
    for key in sorted(flat):
      npy = io.BytesIO()
      np.lib.format.write_array(npy, np.asarray(flat[key], order="C"),
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
  write_atomic(path, params_to_npz_bytes(params))


def weights_path(network: str, weights_dir: Optional[PathLike] = None) -> Path:
  """``<weights_dir>/<network>.npz``.

  ``weights_dir`` defaults to :func:`weights_dir`, resolved at this call.
  """
  return _resolve(weights_dir) / f"{network}.npz"


def _read_npz_tree(path: PathLike, fetch_cmd: str) -> Params:
  """``{layer: {key: array}}`` from the flat ``"<layer>/<key>"`` members of
  the ``.npz`` at ``path``; NSTError saying to run ``fetch_cmd`` when it is
  missing or unreadable."""
  source = _text.display(path)
  if not Path(path).is_file():
    raise NSTError(f"no converted weights at {source}: run `{fetch_cmd}`")
  unreadable = (f"{source} is not a readable .npz of weights; re-create it "
                f"with `{fetch_cmd} --force`")
  try:
    npz = np.load(path, allow_pickle=False)
    if not isinstance(npz, np.lib.npyio.NpzFile):  # a bare .npy array
      raise NSTError(unreadable)
    with npz:
      flat = {key: npz[key] for key in npz.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise NSTError(f"{unreadable} ({_text.one_line(e)})") from None
  params: Params = {}
  for key, arr in flat.items():
    if key == NETWORK_MEMBER:
      name = _network_name(arr, source, fetch_cmd)
      params[networks.MARKER_PREFIX + name] = {}
      continue
    layer, sep, name = key.partition("/")
    if not sep:
      raise NSTError(f"{source}: unexpected key {key!r}; re-create it with "
                     f"`{fetch_cmd} --force`")
    params.setdefault(layer, {})[name] = arr
  return params


def _network_name(arr: np.ndarray, source: str, fetch_cmd: str) -> str:
  """The name in a ``"network"`` member: a 0-d unicode array."""
  if arr.ndim != 0 or arr.dtype.kind != "U":
    raise NSTError(f"{source}: its {NETWORK_MEMBER!r} member is not a network "
                   f"name; re-create it with `{fetch_cmd} --force`")
  return str(arr)


def stored_keys(path: PathLike) -> tuple:
  """The top-level keys of the params stored at ``path``: the layer names,
  and ``networks.marker`` of the network its ``"network"`` member names, if
  any; only that member's array is read. Raises what ``np.load`` raises for
  a file that is not an ``.npz``."""
  npz = np.load(path, allow_pickle=False)
  if not isinstance(npz, np.lib.npyio.NpzFile):
    raise ValueError("a single .npy array, not an .npz of layers")
  with npz:
    keys = dict.fromkeys(k.split("/")[0] for k in npz.files
                         if k != NETWORK_MEMBER)
    if NETWORK_MEMBER in npz.files:
      name = _network_name(npz[NETWORK_MEMBER], _text.display(path),
                           "nst-fetch-weights")
      keys[networks.MARKER_PREFIX + name] = None
  return tuple(keys)


def load_params_file(path: PathLike, network: str) -> Params:
  """Loads and validates converted weights for ``network`` from ``path``.

  Returns ``{conv_name: {"kernel": float32 HWIO, "bias": float32 (out,)}}``
  as numpy arrays, and ``{networks.marker(network): {}}`` for a marked
  network (whose file must record that name).
  """
  _text.check_network(network)
  fetch_cmd = _text.fetch_command(network)
  if not Path(path).is_file():
    raise NSTError(f"no converted weights for {network} at "
                   f"{_text.display(path)}: run `{fetch_cmd}`")
  params = _read_npz_tree(path, fetch_cmd)
  recorded = [n for n in map(networks.marked_network, params) if n]
  if recorded != ([network] if networks.marker(network) else []):
    held = (f"{' and '.join(recorded)} weights" if recorded else
            "weights that name no network (a torchvision network's)")
    raise NSTError(f"{_text.display(path)} holds {held}, not {network}'s: "
                   f"pass a file converted for {network} (`{fetch_cmd}`)")
  validate_params(params, network, _text.display(path))
  return params


def load_params(network: str, weights_dir: Optional[PathLike] = None) -> Params:
  """:func:`load_params_file` on :func:`weights_path`."""
  return load_params_file(weights_path(network, weights_dir), network)


# --- LPIPS linear heads ------------------------------------------------------

LPIPS_HEADS_PREFIX = "lpips_"


def lpips_heads_name(network: str) -> str:
  """``"lpips_<network>"``: the manifest key and file stem of the LPIPS
  heads of ``network`` ("vgg16" or "alexnet")."""
  return f"{LPIPS_HEADS_PREFIX}{network}"


def lpips_heads_path(network: str,
                     weights_dir: Optional[PathLike] = None) -> Path:
  """``<weights_dir>/lpips_<network>.npz``, written by the fetch of
  ``network``; ``weights_dir`` as in :func:`weights_path`."""
  return weights_path(lpips_heads_name(network), weights_dir)


def load_lpips_heads_file(path: PathLike, network: str) -> Params:
  """Loads and validates the LPIPS heads of ``network`` from ``path``:
  ``{layer: {"weight": float32 (C,)}}`` as numpy arrays (layers of
  :data:`nst_jax.networks.LPIPS_LAYERS`)."""
  fetch_cmd = _text.fetch_command(network)
  if not Path(path).is_file():
    raise NSTError(f"no LPIPS heads for {network} at {_text.display(path)}: "
                   f"run `{fetch_cmd}` (it converts them with the network)")
  heads = _read_npz_tree(path, fetch_cmd)
  validate_lpips_heads(heads, network, _text.display(path))
  return heads


def load_lpips_heads(network: str,
                     weights_dir: Optional[PathLike] = None) -> Params:
  """:func:`load_lpips_heads_file` on :func:`lpips_heads_path`."""
  return load_lpips_heads_file(lpips_heads_path(network, weights_dir), network)


# --- Manifest ----------------------------------------------------------------


def manifest_path(weights_dir: Optional[PathLike] = None) -> Path:
  """``<weights_dir>/MANIFEST.json``; ``weights_dir`` as in weights_path."""
  return _resolve(weights_dir) / MANIFEST_NAME


def read_manifest(weights_dir: Optional[PathLike] = None) -> Dict[str, dict]:
  """``{network: record}`` from MANIFEST.json; ``{}`` when there is none."""
  path = manifest_path(weights_dir)
  if not path.exists():
    return {}
  try:
    manifest = json.loads(path.read_text(encoding="utf-8"))
  except (OSError, ValueError) as e:
    raise NSTError(f"cannot read {_text.display(path)} ({_text.one_line(e)}):"
                   " restore it (with git, in a checkout) or delete it and "
                   "fetch again") from None
  if not isinstance(manifest, dict) or not all(
      isinstance(v, dict) for v in manifest.values()):
    raise NSTError(f"{_text.display(path)} is not a manifest of weights: "
                   "restore it (with git, in a checkout) or delete it and "
                   "fetch again")
  return manifest


def write_manifest(manifest: Mapping[str, dict],
                   weights_dir: Optional[PathLike] = None) -> None:
  """Writes MANIFEST.json atomically (sorted keys, indent 2)."""
  text = json.dumps(manifest, sort_keys=True, indent=2) + "\n"
  write_atomic(manifest_path(weights_dir), text.encode("utf-8"))
