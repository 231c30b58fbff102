"""Image and record I/O: the only library module that reads or writes images.

It reads and writes; the figures it writes are drawn by
:mod:`nst_jax.figures`.

Array contract: an image is a float32 numpy array of shape ``(H, W, 3)``, RGB,
with values in ``[0, 1]``. :func:`load_image` returns that and
:func:`save_image` accepts it (anything outside ``[0, 1]`` is clipped).

Every problem a person can cause (a missing, corrupt or absurdly large input
file, an output that would overwrite an input, an unwritable directory) is
raised as :class:`~nst_jax.errors.NSTError` with a one-line message naming the
file, and so are bad parameter values and non-finite pixels. Programming
errors (an array of the wrong shape or dtype) raise ``ValueError`` /
``TypeError`` (the package's rule: :mod:`nst_jax.errors`). Messages name
parameters as ```name``` (:func:`nst_jax.errors.param`), never command-line
flags.

Writes are atomic: the data goes to a temporary file in the destination
directory, is fsync'ed and then moved over the destination with
``os.replace``, so a crash or error never leaves a half-written file behind and
never destroys the previous content of the destination.
"""

import contextlib
import json
import math
import os
import tempfile
import warnings
from typing import Any, Callable, Iterable, Mapping

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from nst_jax.errors import NSTError, param

# Largest image load_image accepts by default: 100 megapixels.
DEFAULT_MAX_PIXELS = 10_000 * 10_000
# Largest edge length resize_long_edge / resize_to produce.
MAX_RESIZE_EDGE = 16384

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I;16S", "I;16BS")
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")


# ---------------------------------------------------------------------------
# Messages.


def _show(path) -> str:
  """``path`` as text for a one-line message (repr if it has odd characters)."""
  text = os.fspath(path)
  if isinstance(text, bytes):
    text = os.fsdecode(text)
  return text if text.isprintable() else repr(text)


def _reason(error: BaseException) -> str:
  """A one-line description of ``error``."""
  if isinstance(error, OSError) and error.strerror:
    text = error.strerror
  else:
    text = str(error) or type(error).__name__
  return " ".join(text.split())


def _read_error(path, reason: str) -> NSTError:
  reason = " ".join(reason.split())
  return NSTError(f"cannot read image {_show(path)}: {reason}")


def _write_error(path, reason: str) -> NSTError:
  reason = " ".join(reason.split())
  return NSTError(f"cannot write {_show(path)}: {reason}")


# ---------------------------------------------------------------------------
# Reading.


def _open_checks(path) -> None:
  """Raises NSTError for paths that cannot possibly hold an image."""
  if not os.path.exists(path):
    raise _read_error(path, "no such file")
  if os.path.isdir(path):
    raise _read_error(path, "it is a directory, not an image file")
  if os.path.getsize(path) == 0:
    raise _read_error(path, "the file is empty")


def _scale_integer(values: np.ndarray, low: float, high: float) -> np.ndarray:
  """Maps integers in ``[low, high]`` linearly onto ``[0, 1]`` as float32."""
  scaled = (values.astype(np.float64) - low) / (high - low)
  return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def _declared_bits(im: Image.Image) -> tuple[int | None, bool | None]:
  """(bits per sample, signed) from a TIFF header, or (None, None)."""
  tags = getattr(im, "tag_v2", None)
  if not tags:
    return None, None
  bits = tags.get(258)  # BitsPerSample
  if isinstance(bits, (tuple, list)):
    bits = bits[0] if bits else None
  fmt = tags.get(339)  # SampleFormat: 1 unsigned, 2 signed, 3 float
  if isinstance(fmt, (tuple, list)):
    fmt = fmt[0] if fmt else None
  signed = None if fmt is None else fmt == 2
  return (int(bits) if bits else None), signed


def _high_depth_gray(im: Image.Image) -> np.ndarray:
  """One-channel 16/32-bit integer or float image -> float32 (H, W) in [0, 1].

  Integers are scaled by the full range of their bit depth (65535 -> 1.0 for
  16-bit), never clipped. For 32-bit ``I`` images the depth and signedness come
  from the TIFF header when present; otherwise data in ``[0, 65535]`` is taken
  as 16-bit and anything else as signed 32-bit. Float (``F``) data already in
  ``[0, 1]`` is used as is; other float data is rescaled from its
  ``[min, max]`` onto ``[0, 1]``.
  """
  values = np.asarray(im)
  if im.mode == "F":
    values = values.astype(np.float32)
    if not np.all(np.isfinite(values)):
      raise ValueError("floating-point pixels contain NaN or infinity")
    low, high = float(values.min()), float(values.max())
    if low >= 0.0 and high <= 1.0:
      return values
    if high == low:
      return np.clip(values, 0.0, 1.0)
    return ((values - low) / (high - low)).astype(np.float32)
  if im.mode in _SIXTEEN_BIT_MODES:
    info = np.iinfo(values.dtype)
    return _scale_integer(values, info.min, info.max)
  # Mode "I": 32-bit signed storage of data of some declared depth.
  bits, signed = _declared_bits(im)
  values = values.astype(np.int64)
  if bits is None or bits > 32:
    fits_16 = values.size == 0 or (values.min() >= 0 and values.max() <= 65535)
    bits, signed = (16, False) if fits_16 else (32, True)
  if signed is None:
    signed = bool(values.size) and values.min() < 0
  if signed:
    return _scale_integer(values, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
  if bits == 32:
    values = values & 0xFFFFFFFF  # unsigned 32-bit data stored as int32
  return _scale_integer(values, 0, 2 ** bits - 1)


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
  """float (H, W, 4) RGBA in [0, 1] -> (H, W, 3) RGB over a white background."""
  alpha = rgba[..., 3:4]
  return rgba[..., :3] * alpha + (1.0 - alpha)


def _to_rgb_float(im: Image.Image) -> np.ndarray:
  """Any PIL image -> float32 (H, W, 3) RGB in [0, 1].

  Transparent images (alpha channel or palette/colour-key transparency) are
  composited onto a white background. High-bit-depth single-channel images
  keep their precision (see :func:`_high_depth_gray`). Every other mode
  (1, L, P, RGB, CMYK, YCbCr, LAB, HSV, ...) goes through Pillow's conversion
  to 8-bit RGB.
  """
  if im.mode in _SIXTEEN_BIT_MODES or im.mode in ("I", "F"):
    gray = _high_depth_gray(im)
    return np.repeat(gray[..., None], 3, axis=-1)
  if im.mode == "La":
    im = im.convert("LA")
  if im.mode in _ALPHA_MODES or im.has_transparency_data:
    rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
    return _composite_on_white(rgba).astype(np.float32)
  if im.mode != "RGB":
    im = im.convert("RGB")
  return np.asarray(im, dtype=np.float32) / 255.0


def _apply_exif_orientation(im: Image.Image) -> Image.Image:
  """Rotates/flips ``im`` as its EXIF Orientation tag says (pixels loaded).

  Malformed EXIF data is ignored: the pixels are already decoded at this point,
  so any failure here concerns only the metadata.
  """
  try:
    return ImageOps.exif_transpose(im)
  except Exception:  # pylint: disable=broad-except
    return im


def _decode(path, max_pixels: int) -> np.ndarray:
  """Opens, size-checks and decodes the first frame of ``path``."""
  with open(path, "rb") as f, Image.open(f) as im:
    width, height = im.size
    if width * height > max_pixels:
      raise _read_error(
          path, f"the image is {width}x{height} = {width * height} pixels, "
          f"more than the limit of {max_pixels} pixels")
    if width == 0 or height == 0:
      raise _read_error(path, f"the image has no pixels ({width}x{height})")
    im.seek(0)  # Multi-frame files (GIF, TIFF, APNG): the first frame.
    im.load()
    return _to_rgb_float(_apply_exif_orientation(im))


def load_image(path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
  """Reads an image file as float32 ``(H, W, 3)`` RGB in ``[0, 1]``.

  Any format and mode Pillow can read is accepted and converted to RGB:

  * 1, L: the gray value in all three channels (8-bit values / 255).
  * LA, La, PA, RGBA, RGBa, and P / L / RGB with a transparent colour:
    composited onto a WHITE background (``rgb * alpha + (1 - alpha)``).
  * I;16, I;16B, I;16L (16-bit): scaled by the full 16-bit range, so 65535
    -> 1.0 and 32768 -> 0.50001; the extra precision is kept.
  * I (32-bit integer): scaled by the bit depth the TIFF header declares
    (signed data from its minimum), else as 16-bit when the data fits.
  * F (float): used as is when within [0, 1], else rescaled from
    [min, max]; NaN or infinity makes the file unreadable.
  * P, CMYK, YCbCr, LAB, HSV, RGBX, ...: Pillow's conversion to RGB.

  The EXIF Orientation tag is honoured (``ImageOps.exif_transpose``). Of a
  multi-frame file (GIF, TIFF, APNG) the first frame is used. Pillow decodes
  16-bit-per-channel colour PNGs to 8 bits; their extra precision is lost.

  The header is read first and images with more than ``max_pixels`` pixels are
  refused before any pixel is decoded; Pillow's own decompression-bomb limit
  (``PIL.Image.MAX_IMAGE_PIXELS``, about 89.5 megapixels by default) applies
  as well.

  Raises:
    NSTError: the file is missing, a directory, empty, unreadable, truncated,
      not an image, or too large. The message names the file.
  """
  if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) \
      or max_pixels <= 0:
    raise NSTError(f"{param('max_pixels')} must be a positive int, got "
                   f"{max_pixels!r}")
  _open_checks(path)
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("error", Image.DecompressionBombWarning)
      image = _decode(path, max_pixels)
  except NSTError:
    raise
  except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
    raise _read_error(path, f"refusing a possible decompression bomb: "
                      f"{_reason(e)}") from e
  except UnidentifiedImageError as e:
    raise _read_error(path, "not a recognised image file (corrupt or in an "
                      "unsupported format)") from e
  except MemoryError as e:
    raise _read_error(path, "not enough memory to decode it") from e
  except Exception as e:  # pylint: disable=broad-except
    # Corrupt or truncated data surfaces from Pillow's decoders as all kinds
    # of exceptions (OSError, SyntaxError, ValueError, IndexError, ...).
    raise _read_error(path, _reason(e)) from e
  return np.ascontiguousarray(image, dtype=np.float32)


def read_png_metadata(path) -> dict[str, str]:
  """The text chunks (tEXt, zTXt, iTXt) of the PNG file ``path``.

  Raises:
    NSTError: the file is missing, unreadable or not a PNG.
  """
  _open_checks(path)
  try:
    with open(path, "rb") as f, Image.open(f) as im:
      if im.format != "PNG":
        raise _read_error(path, f"not a PNG file (it is {im.format})")
      return {str(k): str(v) for k, v in im.text.items()}
  except NSTError:
    raise
  except UnidentifiedImageError as e:
    raise _read_error(path, "not a recognised image file") from e
  except Exception as e:  # pylint: disable=broad-except
    raise _read_error(path, _reason(e)) from e


# ---------------------------------------------------------------------------
# Array helpers and resizing.


def _check_image(image, name: str = "image") -> np.ndarray:
  """``image`` as a float numpy array of shape (H, W, 3), or ValueError /
  TypeError naming parameter ``name``."""
  array = np.asarray(image)
  if array.ndim != 3 or array.shape[-1] != 3:
    raise ValueError(f"{param(name)} must have shape (H, W, 3), got "
                     f"{array.shape}")
  if not np.issubdtype(array.dtype, np.floating):
    raise TypeError(f"{param(name)} must be a float image with values in "
                    f"[0, 1], got dtype {array.dtype}")
  if array.shape[0] == 0 or array.shape[1] == 0:
    raise ValueError(f"{param(name)} must have pixels, got shape "
                     f"{array.shape}")
  return array


def image_to_uint8(image) -> np.ndarray:
  """float (H, W, 3) in [0, 1] -> uint8 (H, W, 3), clipped and rounded.

  Raises:
    ValueError: the image has the wrong shape.
    NSTError: it has non-finite values (a diverged optimisation).
  """
  array = _check_image(image)
  if not np.all(np.isfinite(array)):
    raise NSTError(f"{param('image')} contains non-finite values (NaN or "
                   "infinity)")
  return np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)


def _check_edge(value, what: str) -> int:
  """``value`` if it is an int in [1, MAX_RESIZE_EDGE], else NSTError whose
  message calls it ``what`` (e.g. ```size``` or ```shape`` height``)."""
  if isinstance(value, (bool, np.bool_)) or not isinstance(
      value, (int, np.integer)) or not 1 <= value <= MAX_RESIZE_EDGE:
    raise NSTError(f"invalid {what} {value!r}: expected a whole number of "
                   f"pixels from 1 to {MAX_RESIZE_EDGE}")
  return int(value)


def _resample(array: np.ndarray, height: int, width: int) -> np.ndarray:
  """Lanczos resampling of float (H, W, 3) to (height, width, 3), in float32."""
  channels = []
  for c in range(array.shape[-1]):
    plane = Image.fromarray(np.ascontiguousarray(array[..., c],
                                                 dtype=np.float32))
    plane = plane.resize((width, height), Image.Resampling.LANCZOS)
    channels.append(np.asarray(plane, dtype=np.float32))
  return np.clip(np.stack(channels, axis=-1), 0.0, 1.0).astype(np.float32)


def resize_to(image, shape: tuple[int, int]) -> np.ndarray:
  """Resizes float (H, W, 3) to ``shape = (height, width)`` with Lanczos.

  Resampling is done in float32 per channel (no 8-bit rounding). Returns
  float32 ``(height, width, 3)`` clipped to [0, 1].

  Raises:
    NSTError: height or width is not an int in [1, 16384].
  """
  array = _check_image(image)
  try:
    height, width = shape
  except (TypeError, ValueError) as e:
    raise NSTError(f"invalid {param('shape')} {shape!r}: expected (height, "
                   "width)") from e
  height = _check_edge(height, f"{param('shape')} height")
  width = _check_edge(width, f"{param('shape')} width")
  if (height, width) == array.shape[:2]:
    return np.clip(array, 0.0, 1.0).astype(np.float32)
  return _resample(array, height, width)


def resize_long_edge(image, size: int) -> np.ndarray:
  """Resizes float (H, W, 3) so that its longer edge is ``size`` pixels.

  The aspect ratio is kept (the short edge is rounded, at least 1 px).
  Returns float32 clipped to [0, 1].

  Raises:
    NSTError: ``size`` is not an int in [1, 16384].
  """
  array = _check_image(image)
  return resize_to(array, long_edge_shape(array.shape[:2], size))


def long_edge_shape(shape: tuple[int, int], size: int) -> tuple[int, int]:
  """``(height, width)`` after scaling ``shape`` so its long edge is ``size``
  (the short edge rounded, at least 1 px); nothing is allocated."""
  size = _check_edge(size, param("size"))
  height, width = shape
  scale = size / max(height, width)
  new_height = size if height >= width else max(1, round(height * scale))
  new_width = size if width >= height else max(1, round(width * scale))
  return new_height, new_width


# ---------------------------------------------------------------------------
# Writing.


def _same_file(a, b) -> bool:
  """Whether paths ``a`` and ``b`` name the same file (existing or not)."""
  try:
    if os.path.exists(a) and os.path.exists(b):
      return os.path.samefile(a, b)
  except OSError:
    pass
  resolve = lambda p: os.path.normcase(os.path.realpath(os.fspath(p)))
  return resolve(a) == resolve(b)


def _check_protected(path, protect: Iterable, what: str) -> None:
  if isinstance(protect, (str, bytes, os.PathLike)):
    protect = (protect,)
  for p in protect:
    if p is not None and _same_file(path, p):
      raise NSTError(f"refusing to overwrite input {what} {_show(path)}")


def _umask() -> int:
  """The process umask, read without changing it where possible."""
  try:
    with open("/proc/self/status", encoding="ascii") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except (OSError, ValueError, IndexError):
    pass
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def new_file_mode(path) -> int:
  """The permissions an atomic write gives ``path``: those of the file it
  replaces, else the process's default for a new file (``0o666`` less the
  umask), as ``open`` would have given it. A temporary file is created
  ``0o600``; every writer chmods it to this before the rename."""
  try:
    return os.stat(path).st_mode & 0o7777
  except OSError:
    return 0o666 & ~_umask()


def _fsync_directory(directory: str) -> None:
  """Makes a rename in ``directory`` durable (best effort)."""
  with contextlib.suppress(OSError, AttributeError):
    fd = os.open(directory, os.O_RDONLY)
    try:
      os.fsync(fd)
    finally:
      os.close(fd)


def _atomic_write(path, write: Callable[[Any], None], suffix: str) -> None:
  """Writes ``path`` atomically: ``write(file)`` to a temp file, fsync, rename.

  On any error the temporary file is removed and ``path`` is left as it was.
  OSErrors become NSTError; other exceptions propagate unchanged.
  """
  target = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(target))
  if os.path.isdir(target):
    raise _write_error(path, "it is a directory")
  try:
    os.makedirs(directory, exist_ok=True)
  except OSError as e:
    raise _write_error(path, f"cannot create directory {_show(directory)}: "
                       f"{_reason(e)}") from e
  prefix = "." + os.path.basename(target)[:64] + "."
  try:
    tmp = tempfile.NamedTemporaryFile(dir=directory, prefix=prefix,
                                      suffix=suffix, delete=False)
  except OSError as e:
    raise _write_error(path, _reason(e)) from e
  try:
    with tmp:
      write(tmp)
      tmp.flush()
      os.fsync(tmp.fileno())
    os.chmod(tmp.name, new_file_mode(target))
    os.replace(tmp.name, target)
  except BaseException as e:
    with contextlib.suppress(OSError):
      os.unlink(tmp.name)
    if isinstance(e, OSError):
      raise _write_error(path, _reason(e)) from e
    raise
  _fsync_directory(directory)


def _png_info(metadata: Mapping[str, str] | None) -> PngImagePlugin.PngInfo:
  """PNG text chunks for ``metadata`` (tEXt, or iTXt for non-Latin-1 text)."""
  info = PngImagePlugin.PngInfo()
  for key, value in (metadata or {}).items():
    if not isinstance(key, str) or not isinstance(value, str):
      raise TypeError(f"{param('metadata')} must map str to str, got "
                      f"{key!r}: {type(value).__name__}")
    try:
      key_bytes = key.encode("latin-1")
    except UnicodeEncodeError as e:
      raise ValueError(f"{param('metadata')} key {key!r} is not Latin-1 "
                       "(PNG text keys are)") from e
    if not 1 <= len(key_bytes) <= 79 or b"\0" in key_bytes:
      raise ValueError(f"{param('metadata')} key {key!r} must be 1 to 79 "
                       "characters without NUL (a PNG text key)")
    info.add_text(key, value, zip=len(value) > 1024)
  return info


def save_image(path, image, *, metadata: dict[str, str] | None = None,
               protect: Iterable = ()) -> None:
  """Writes float (H, W, 3) ``image`` as an 8-bit RGB PNG, atomically.

  Values are clipped to [0, 1] and rounded to 8 bits. ``metadata`` is stored as
  PNG text chunks (read back with :func:`read_png_metadata`). The parent
  directory is created if missing. ``path`` must end in ``.png``.

  Args:
    path: destination file.
    image: float array (H, W, 3), RGB in [0, 1].
    metadata: optional ``{key: text}`` stored as tEXt/iTXt chunks.
    protect: input paths that must not be overwritten (compared after
      resolving symlinks, or with ``os.path.samefile`` when both exist).

  Raises:
    NSTError: the image has non-finite values, ``path`` is a protected input,
      is not a ``.png`` name, or cannot be written.
  """
  array = _check_image(image)
  _check_protected(path, protect, "image")
  if not np.all(np.isfinite(array)):
    raise _write_error(path, "the image contains non-finite values (NaN or "
                       "infinity)")
  if not os.fspath(path).lower().endswith(".png"):
    raise _write_error(path, "images are written as PNG; use a file name "
                       "ending in .png")
  pil = Image.fromarray(image_to_uint8(array))
  info = _png_info(metadata)
  _atomic_write(path, lambda f: pil.save(f, format="PNG", pnginfo=info),
                ".png.tmp")


def to_jsonable(obj: Any) -> Any:
  """``obj`` as plain JSON-compatible Python, with non-finite floats as None.

  numpy scalars and arrays become Python numbers and (nested) lists; tuples
  become lists; path-like objects become strings; mapping keys become strings
  unless they are str, int, float, bool or None (which ``json`` handles).

  Raises:
    TypeError: an object of another type is found.
  """
  if isinstance(obj, np.ndarray):
    return to_jsonable(obj.tolist())
  if isinstance(obj, np.generic):
    return to_jsonable(obj.item())
  if isinstance(obj, float):
    return float(obj) if math.isfinite(obj) else None
  if obj is None or isinstance(obj, (bool, int, str)):
    return obj
  if isinstance(obj, Mapping):
    out = {}
    for key, value in obj.items():
      if isinstance(key, np.generic):
        key = key.item()
      if isinstance(key, float) and not math.isfinite(key):
        key = str(key)
      elif not (key is None or isinstance(key, (str, int, float, bool))):
        key = str(key)
      out[key] = to_jsonable(value)
    return out
  if isinstance(obj, (list, tuple)):
    return [to_jsonable(v) for v in obj]
  if isinstance(obj, os.PathLike):
    return os.fspath(obj)
  raise TypeError(f"cannot convert {type(obj).__name__} to JSON")


def save_json(path, obj: Any, *, protect: Iterable = ()) -> None:
  """Writes ``to_jsonable(obj)`` as indented JSON (UTF-8), atomically.

  Non-finite floats are written as ``null``; the output is strict JSON.

  Raises:
    NSTError: ``path`` is a protected input or cannot be written.
  """
  _check_protected(path, protect, "file")
  text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False,
                    ensure_ascii=False) + "\n"
  data = text.encode("utf-8")
  _atomic_write(path, lambda f: f.write(data), ".json.tmp")


# ---------------------------------------------------------------------------
# Arrays (a run's resumable state).

_META_KEY = "__meta__"


def save_arrays(path, arrays: Mapping[str, np.ndarray], *,
                meta: Mapping[str, Any] | None = None,
                protect: Iterable = ()) -> None:
  """Writes named numeric arrays and a JSON-able ``meta`` dict as one
  uncompressed ``.npz``, atomically (``_atomic_write``: a failed write leaves
  the previous file as it was).

  Nothing in the file can run code on reading: every array is numeric or
  boolean (object arrays are refused) and ``meta`` is stored as JSON text in
  a unicode array. Read it back with :func:`load_arrays`.

  Raises:
    NSTError: ``path`` is a protected input or cannot be written.
    TypeError: an array is not numeric or boolean, or ``meta`` is not JSON.
  """
  _check_protected(path, protect, "file")
  data = {}
  for name, value in arrays.items():
    value = np.asarray(value)
    if name == _META_KEY or value.dtype.kind not in "biuf":
      raise TypeError(f"array {name!r} of dtype {value.dtype} cannot be "
                      "stored (numeric or boolean arrays only)")
    data[name] = value
  data[_META_KEY] = np.asarray(json.dumps(to_jsonable(dict(meta or {})),
                                          allow_nan=False))
  _atomic_write(path, lambda f: np.savez(f, **data), ".npz.tmp")


def load_arrays(path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """``(arrays, meta)`` of a file :func:`save_arrays` wrote, read with
  ``allow_pickle=False`` (nothing in it can run code).

  Raises:
    NSTError: the file is missing, unreadable, or not such a file.
  """
  shown = _show(path)
  try:
    with np.load(path, allow_pickle=False) as npz:
      arrays = {name: npz[name] for name in npz.files}
  except FileNotFoundError:
    raise NSTError(f"cannot read {shown}: no such file") from None
  except OSError as e:
    raise NSTError(f"cannot read {shown}: {_reason(e)}") from None
  except (ValueError, EOFError, KeyError) as e:
    del e
    raise NSTError(f"cannot read {shown}: not an array file written by "
                   "nst_jax") from None
  text = arrays.pop(_META_KEY, None)
  try:
    meta = json.loads(str(text)) if text is not None else None
  except ValueError:
    meta = None
  if not isinstance(meta, dict):
    raise NSTError(f"cannot read {shown}: it holds no nst_jax record")
  return arrays, meta
