"""Video I/O: decoding a clip or a folder of frames, encoding a clip.

Decoding and encoding go through ``imageio-ffmpeg`` (the ffmpeg binary
ships inside its wheel); folders of frames through ``nst_jax.io``. Frames
are float32 ``(H, W, 3)`` RGB in [0, 1] (``nst_jax.io``'s contract); a
decoded clip also reports its frame rate and whether it has an audio track.

Every problem a person can cause — an unreadable or empty video, a folder
with no images or with frames of different sizes, an output that would
overwrite an input — is an ``NSTError`` with a one-line message. Videos are
written atomically: ffmpeg encodes into a temporary file beside the
destination, which is renamed over it only when the encoder has finished,
with the mode an image written by ``nst_jax.io`` gets (the replaced file's,
else the umask's).
"""

import contextlib
import os
import tempfile
import warnings
from typing import Iterable, List, NamedTuple, Sequence

import numpy as np

from nst_jax import io
from nst_jax.errors import NSTError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff",
                    ".webp")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


@contextlib.contextmanager
def _quiet_fork():
  """JAX warns at every ``os.fork`` that forking a multithreaded process may
  deadlock; ``subprocess`` starts ffmpeg by fork + exec at once, which runs
  no Python in the child, so the warning is noise to a user."""
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called",
                            category=RuntimeWarning)
    yield


def _ffmpeg():
  try:
    import imageio_ffmpeg  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise NSTError("video needs imageio-ffmpeg: pip install "
                   "'nst_jax[video]'") from None
  return imageio_ffmpeg


class Clip(NamedTuple):
  """Decoded frames ``[(H, W, 3)]`` float32 in [0, 1], frames per second,
  the source (a video file or a folder) and whether it has an audio track
  (a folder never has)."""
  frames: List[np.ndarray]
  fps: float
  source: str
  has_audio: bool


def frame_files(directory: str) -> List[str]:
  """The image files of ``directory`` (by extension), sorted by name."""
  try:
    names = sorted(os.listdir(directory))
  except OSError as e:
    raise NSTError(f"cannot read frames folder {directory}: "
                   f"{e.strerror or e}") from None
  return [os.path.join(directory, n) for n in names
          if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith(".")]


def read_frames_dir(directory: str, *, fps: float = 25.0,
                    max_frames: int = 0) -> Clip:
  """The images of a folder as frames, in name order (``frame_0001.png``,
  …; at most ``max_frames``, 0: all). Refuses a folder with no images and
  frames of different sizes (naming the first that differs)."""
  paths = frame_files(directory)
  if not paths:
    raise NSTError(f"frames folder {directory} holds no images (looked for "
                   f"{', '.join(IMAGE_EXTENSIONS)})")
  if max_frames:
    paths = paths[:max_frames]
  frames = []
  for path in paths:
    frame = io.load_image(path)
    if frames and frame.shape != frames[0].shape:
      raise NSTError(
          f"frame {path} is {frame.shape[1]}x{frame.shape[0]}, but "
          f"{paths[0]} is {frames[0].shape[1]}x{frames[0].shape[0]}: every "
          "frame of a folder must have the same size")
    frames.append(frame)
  return Clip(frames, float(fps), directory, False)


def read_video(path: str, *, max_frames: int = 0) -> Clip:
  """Decodes a video file (any format ffmpeg reads) into RGB frames (at
  most ``max_frames``, 0: all)."""
  ffmpeg = _ffmpeg()
  if not os.path.isfile(path):
    raise NSTError(f"cannot read video {path}: no such file")
  try:
    reader = ffmpeg.read_frames(path)
    with _quiet_fork():
      meta = next(reader)
    w, h = meta["size"]
    frames = []
    for raw in reader:
      frame = np.frombuffer(raw, np.uint8)
      if frame.size != w * h * 3:
        break
      frames.append(frame.reshape(h, w, 3).astype(np.float32) / 255.0)
      if max_frames and len(frames) >= max_frames:
        break
    reader.close()
  except (OSError, RuntimeError, KeyError, ValueError, StopIteration) as e:
    reason = " ".join(str(e).split())[-200:] or type(e).__name__
    raise NSTError(f"cannot read video {path}: {reason}") from None
  if not frames:
    raise NSTError(f"cannot read video {path}: it has no frames")
  fps = float(meta.get("fps") or 25.0)
  return Clip(frames, fps, path, bool(meta.get("audio_codec")))


def still_image_format(path: str) -> str | None:
  """The format of ``path`` if it is a still image (a JPEG, a PNG, a
  one-frame GIF, …: what Pillow opens as a single frame), else ``None``
  (an animation, a video, an unreadable file)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(path) as im:
      # Pillow identifies an MPEG-1 video stream ("MPEG") without decoding it.
      if im.format == "MPEG" or getattr(im, "is_animated", False):
        return None
      return im.format or "image"
  except (OSError, ValueError, Image.DecompressionBombError):
    return None


def read_clip(path: str, *, fps: float = 25.0, max_frames: int = 0) -> Clip:
  """A folder of frames (``read_frames_dir``, at ``fps``) or a video file
  (``read_video``, at its own rate). A still image is refused (ffmpeg would
  read it as a one-frame clip)."""
  if os.path.isdir(path):
    return read_frames_dir(path, fps=fps, max_frames=max_frames)
  if os.path.isfile(path):
    kind = still_image_format(path)
    if kind is not None:
      raise NSTError(f"{path} is a still image ({kind}), not a video: give a "
                     "video file or a folder of frames (one image: "
                     "nst-stylize)")
  return read_video(path, max_frames=max_frames)


def even_shape(shape) -> tuple:
  """``(H, W)`` rounded down to even sides (at least 2): what H.264 in
  yuv420p can encode without rescaling."""
  return tuple(max(2, int(s) - int(s) % 2) for s in shape)


def write_video(path: str, frames: Sequence[np.ndarray], fps: float, *,
                audio_from: str | None = None, quality: float = 8.0,
                protect: Iterable[str] = ()) -> None:
  """Encodes ``frames`` ``[(H, W, 3)]`` in [0, 1] (even ``H`` and ``W``)
  into ``path`` (the container from its extension; H.264 for .mp4/.mov/
  .mkv), atomically. ``audio_from``: a file whose first audio track is
  copied in (re-encoded as AAC, cut to the video's duration). ``quality``
  0-10 is imageio-ffmpeg's (8: CRF 10, close to lossless).
  """
  ffmpeg = _ffmpeg()
  if not frames:
    raise NSTError(f"no frames to write to {path}")
  for p in protect:
    if os.path.exists(path) and os.path.exists(p) and os.path.samefile(
        path, p):
      raise NSTError(f"refusing to overwrite input {path}")
  h, w = np.shape(frames[0])[:2]
  if (h, w) != even_shape((h, w)):
    raise ValueError(f"frames must have even sides to be encoded, got {w}x{h}")
  ext = os.path.splitext(path)[1].lower()
  if ext not in VIDEO_EXTENSIONS:
    raise NSTError(f"cannot write {path}: use a video file name ending in "
                   f"{', '.join(VIDEO_EXTENSIONS)}")
  directory = os.path.dirname(os.path.abspath(path))
  try:
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory,
                               prefix="." + os.path.basename(path)[:64] + ".",
                               suffix=ext)
    os.close(fd)
  except OSError as e:
    raise NSTError(f"cannot write {path}: {e.strerror or e}") from None
  try:
    writer = ffmpeg.write_frames(
        tmp, (w, h), fps=fps, quality=quality, macro_block_size=2,
        audio_path=audio_from, audio_codec="aac" if audio_from else None,
        # The audio cut to the video's duration (ffmpeg's -shortest may drop
        # the last video frame where the audio ends a little early).
        output_params=["-t", f"{len(frames) / fps:.6f}"] if audio_from
        else None,
        ffmpeg_log_level="error")
    with _quiet_fork():
      writer.send(None)
    for frame in frames:
      writer.send(io.image_to_uint8(frame))
    writer.close()
    os.chmod(tmp, io.new_file_mode(path))   # mkstemp made it 0o600
    os.replace(tmp, path)
  except BaseException as e:
    with contextlib.suppress(OSError):
      os.unlink(tmp)
    if isinstance(e, (OSError, RuntimeError)):
      reason = " ".join(str(e).split())[-200:]
      raise NSTError(f"cannot write {path}: {reason}") from None
    raise
