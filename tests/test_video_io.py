"""nst_jax.video_io as a user meets it: the written video gets the file mode
a PNG gets, and a still image given as a video is refused in one line."""

import os
import stat

import numpy as np
import pytest
from PIL import Image

import scripting
from scripting import assert_one_line_error

from nst_jax import io, video_io
from nst_jax.errors import NSTError

STYLE = scripting.ROOT / "examples" / "style_brushwork.png"


def _frames(n=2, shape=(16, 24)):
  rng = np.random.default_rng(0)
  return [rng.random((*shape, 3)).astype(np.float32) for _ in range(n)]


def _mode(path) -> int:
  return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
  """Sets the process umask for a test and puts the old one back."""
  old = os.umask(0o022)
  yield lambda mask: os.umask(mask)
  os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_video_gets_the_mode_of_a_png(tmp_path, umask, mask):
  umask(mask)
  png, mp4 = tmp_path / "a.png", tmp_path / "a.mp4"
  io.save_image(png, _frames(1)[0])
  video_io.write_video(str(mp4), _frames(), 8.0)
  assert _mode(png) == 0o666 & ~mask
  assert _mode(mp4) == _mode(png), oct(_mode(mp4))


def test_video_replacing_a_file_keeps_its_mode(tmp_path, umask):
  umask(0o022)
  mp4 = tmp_path / "a.mp4"
  mp4.write_bytes(b"old")
  os.chmod(mp4, 0o640)
  video_io.write_video(str(mp4), _frames(), 8.0)
  assert _mode(mp4) == 0o640 and mp4.stat().st_size > 3


@pytest.mark.parametrize("suffix,fmt", [(".jpg", "JPEG"), (".png", "PNG"),
                                        (".mp4", "JPEG")])
def test_a_still_image_is_not_a_video(tmp_path, suffix, fmt):
  # The last case: a JPEG named .mp4 is still a still image.
  path = tmp_path / f"photo{suffix}"
  Image.new("RGB", (24, 16), (200, 30, 30)).save(path, format=fmt)
  with pytest.raises(NSTError, match=f"still image \\({fmt}\\), not a video"):
    video_io.read_clip(str(path))


def test_a_video_is_not_a_still_image(tmp_path):
  mp4 = tmp_path / "clip.mp4"
  video_io.write_video(str(mp4), _frames(3), 8.0)
  assert video_io.still_image_format(str(mp4)) is None
  assert len(video_io.read_clip(str(mp4)).frames) == 3


def test_command_refuses_a_still_image(tmp_path):
  photo = tmp_path / "photo.jpg"
  Image.new("RGB", (48, 32), (20, 120, 30)).save(photo)
  out = tmp_path / "out.mp4"
  proc = scripting.run("stylize_video.py", f"--input={photo}",
                       f"--style={STYLE}", "--size=32", "--iterations=1",
                       f"--output={out}")
  assert_one_line_error(proc, "still image", "not a video", "nst-stylize")
  assert not out.exists()
