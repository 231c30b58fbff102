"""Tests of nst_jax.io: decoding every image mode, refusing bad inputs before
decoding, atomic and protected writes, PNG metadata and JSON records.

All inputs are made in ``tmp_path`` with Pillow; nothing needs a GPU.
"""

import json
import os
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from nst_jax import io as nio
from nst_jax.errors import NSTError


def _load_one(path, **kwargs):
  image = nio.load_image(path, **kwargs)
  assert image.dtype == np.float32
  assert image.ndim == 3 and image.shape[-1] == 3
  assert image.min() >= 0.0 and image.max() <= 1.0
  return image


def _assert_read_error(path, match=None, **kwargs):
  with pytest.raises(NSTError) as info:
    nio.load_image(path, **kwargs)
  message = str(info.value)
  assert message.startswith("cannot read image ")
  assert str(path) in message
  assert "\n" not in message and "\r" not in message
  if match is not None:
    assert match in message
  return message


def _entries(directory):
  return sorted(os.listdir(directory))


# ---------------------------------------------------------------------------
# Modes.


def test_rgb_png_exact(tmp_path):
  pixels = np.array([[[0, 128, 255], [10, 20, 30]]], dtype=np.uint8)
  path = tmp_path / "rgb.png"
  Image.fromarray(pixels).save(path)
  np.testing.assert_array_equal(_load_one(path), pixels / np.float32(255))


def test_grayscale_l(tmp_path):
  path = tmp_path / "l.png"
  Image.new("L", (3, 2), 128).save(path)
  image = _load_one(path)
  assert image.shape == (2, 3, 3)
  np.testing.assert_allclose(image, 128 / 255, atol=1e-7)


def test_bilevel_1(tmp_path):
  im = Image.new("1", (2, 1), 0)
  im.putpixel((1, 0), 1)
  path = tmp_path / "bw.png"
  im.save(path)
  image = _load_one(path)
  np.testing.assert_array_equal(image[0, 0], [0, 0, 0])
  np.testing.assert_array_equal(image[0, 1], [1, 1, 1])


def test_la_composited_onto_white(tmp_path):
  im = Image.new("LA", (3, 1))
  im.putpixel((0, 0), (100, 0))  # fully transparent -> white
  im.putpixel((1, 0), (100, 255))  # opaque -> its value
  im.putpixel((2, 0), (0, 51))  # black at alpha 0.2 -> 0.8
  path = tmp_path / "la.png"
  im.save(path)
  image = _load_one(path)
  np.testing.assert_allclose(image[0, 0], [1, 1, 1], atol=1e-6)
  np.testing.assert_allclose(image[0, 1], [100 / 255] * 3, atol=1e-6)
  np.testing.assert_allclose(image[0, 2], [0.8] * 3, atol=1e-6)


def test_rgba_composited_onto_white(tmp_path):
  im = Image.new("RGBA", (2, 1))
  im.putpixel((0, 0), (255, 0, 0, 255))
  im.putpixel((1, 0), (255, 0, 0, 102))  # alpha 0.4
  path = tmp_path / "rgba.png"
  im.save(path)
  image = _load_one(path)
  np.testing.assert_allclose(image[0, 0], [1, 0, 0], atol=1e-6)
  np.testing.assert_allclose(image[0, 1], [1, 0.6, 0.6], atol=1e-6)


def test_palette_colours(tmp_path):
  im = Image.new("P", (3, 1))
  im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
  for x in range(3):
    im.putpixel((x, 0), x)
  path = tmp_path / "p.png"
  im.save(path)
  image = _load_one(path)
  np.testing.assert_array_equal(image[0], np.eye(3, dtype=np.float32))


def test_palette_transparency_onto_white(tmp_path):
  im = Image.new("P", (2, 1))
  im.putpalette([0, 0, 255, 0, 0, 0])
  im.putpixel((1, 0), 1)
  path = tmp_path / "pt.png"
  im.save(path, transparency=1)
  image = _load_one(path)
  np.testing.assert_array_equal(image[0, 0], [0, 0, 1])
  np.testing.assert_array_equal(image[0, 1], [1, 1, 1])


def test_palette_alpha_pa_tiff(tmp_path):
  im = Image.new("PA", (2, 1))
  im.putpalette([0, 255, 0] * 256)
  im.putpixel((0, 0), (0, 255))
  im.putpixel((1, 0), (0, 0))
  path = tmp_path / "pa.tif"
  im.save(path)
  image = _load_one(path)
  np.testing.assert_allclose(image[0, 0], [0, 1, 0], atol=1e-6)
  np.testing.assert_allclose(image[0, 1], [1, 1, 1], atol=1e-6)


def test_16bit_png_scaled_by_bit_range(tmp_path):
  values = np.array([[0, 32768, 65535, 100]], dtype=np.uint16)
  path = tmp_path / "g16.png"
  Image.fromarray(values).save(path)
  assert Image.open(path).mode == "I;16"
  image = _load_one(path)
  np.testing.assert_allclose(
      image[0, :, 0], [0, 32768 / 65535, 1.0, 100 / 65535], atol=1e-7)
  assert image[0, 2, 0] == 1.0
  np.testing.assert_array_equal(image[..., 0], image[..., 2])
  # Precision beyond 8 bits is kept (an 8-bit detour would give 1/255).
  assert 0 < image[0, 3, 0] < 0.5 / 255


def test_16bit_big_endian_tiff(tmp_path):
  values = np.array([[0, 32768, 65535]], dtype=">u2")
  im = Image.frombytes("I;16B", (3, 1), values.tobytes())
  path = tmp_path / "g16b.tif"
  im.save(path)
  assert Image.open(path).mode == "I;16B"
  image = _load_one(path)
  np.testing.assert_allclose(image[0, :, 1], [0, 32768 / 65535, 1.0], atol=1e-7)


def test_32bit_signed_tiff_scaled_by_bit_range(tmp_path):
  values = np.array([[-2**31, 0, 2**31 - 1]], dtype=np.int32)
  path = tmp_path / "i32.tif"
  Image.frombytes("I", (3, 1), values.tobytes()).save(path)
  assert Image.open(path).mode == "I"
  image = _load_one(path)
  np.testing.assert_allclose(image[0, :, 0], [0, 0.5, 1.0], atol=1e-6)


def test_float_tiff(tmp_path):
  values = np.array([[0.0, 0.25, 1.0]], dtype=np.float32)
  path = tmp_path / "f.tif"
  Image.fromarray(values).save(path)
  assert Image.open(path).mode == "F"
  image = _load_one(path)
  np.testing.assert_allclose(image[0, :, 2], [0.0, 0.25, 1.0], atol=1e-7)


def test_float_tiff_out_of_range_rescaled(tmp_path):
  values = np.array([[0.0, 127.5, 255.0]], dtype=np.float32)
  path = tmp_path / "f255.tif"
  Image.fromarray(values).save(path)
  np.testing.assert_allclose(_load_one(path)[0, :, 0], [0, 0.5, 1], atol=1e-6)


def test_cmyk_pure_cyan(tmp_path):
  path = tmp_path / "cmyk.tif"
  Image.new("CMYK", (4, 4), (255, 0, 0, 0)).save(path)
  np.testing.assert_allclose(_load_one(path)[0, 0], [0, 1, 1], atol=0.02)


def test_cmyk_jpeg(tmp_path):
  path = tmp_path / "cmyk.jpg"
  Image.new("CMYK", (16, 16), (255, 0, 0, 0)).save(path, quality=95)
  np.testing.assert_allclose(_load_one(path)[8, 8], [0, 1, 1], atol=0.03)


def test_ycbcr_tiff(tmp_path):
  path = tmp_path / "ycbcr.tif"
  Image.new("YCbCr", (4, 4), (128, 128, 128)).save(path)
  np.testing.assert_allclose(_load_one(path)[0, 0], [128 / 255] * 3, atol=0.01)


def test_lab_tiff(tmp_path):
  path = tmp_path / "lab.tif"
  Image.new("LAB", (4, 4), (255, 128, 128)).save(path)  # L=100: white
  np.testing.assert_allclose(_load_one(path)[0, 0], [1, 1, 1], atol=0.02)


def test_gif_uses_first_frame(tmp_path):
  frames = [Image.new("RGB", (4, 4), (255, 0, 0)),
            Image.new("RGB", (4, 4), (0, 0, 255))]
  path = tmp_path / "anim.gif"
  frames[0].save(path, save_all=True, append_images=frames[1:])
  assert Image.open(path).n_frames == 2
  np.testing.assert_allclose(_load_one(path)[0, 0], [1, 0, 0], atol=0.01)


def test_multipage_tiff_uses_first_page(tmp_path):
  pages = [Image.new("L", (4, 4), 10), Image.new("L", (8, 8), 200)]
  path = tmp_path / "pages.tif"
  pages[0].save(path, save_all=True, append_images=pages[1:])
  image = _load_one(path)
  assert image.shape == (4, 4, 3)
  np.testing.assert_allclose(image, 10 / 255, atol=1e-7)


# ---------------------------------------------------------------------------
# EXIF orientation.


def _oriented_jpeg(path, orientation):
  """A 64x32 (W x H) JPEG: left half red, right half blue, with EXIF tag."""
  pixels = np.zeros((32, 64, 3), dtype=np.uint8)
  pixels[:, :32] = (255, 0, 0)
  pixels[:, 32:] = (0, 0, 255)
  exif = Image.Exif()
  exif[0x0112] = orientation
  Image.fromarray(pixels).save(path, quality=95, exif=exif.tobytes())


def _is_red(pixel):
  return pixel[0] > 0.8 and pixel[2] < 0.2


def _is_blue(pixel):
  return pixel[2] > 0.8 and pixel[0] < 0.2


def test_exif_orientation_1_unchanged(tmp_path):
  path = tmp_path / "o1.jpg"
  _oriented_jpeg(path, 1)
  image = _load_one(path)
  assert image.shape == (32, 64, 3)
  assert _is_red(image[16, 8]) and _is_blue(image[16, 56])


def test_exif_orientation_6_rotates_clockwise(tmp_path):
  path = tmp_path / "o6.jpg"
  _oriented_jpeg(path, 6)
  image = _load_one(path)
  assert image.shape == (64, 32, 3)
  # Rotated 90 degrees clockwise for display: the left (red) half is on top.
  assert _is_red(image[8, 16]) and _is_blue(image[56, 16])


def test_exif_orientation_8_rotates_counterclockwise(tmp_path):
  path = tmp_path / "o8.jpg"
  _oriented_jpeg(path, 8)
  image = _load_one(path)
  assert image.shape == (64, 32, 3)
  assert _is_blue(image[8, 16]) and _is_red(image[56, 16])


# ---------------------------------------------------------------------------
# Unreadable inputs.


def test_missing_file(tmp_path):
  _assert_read_error(tmp_path / "nope.png", "no such file")


def test_directory(tmp_path):
  _assert_read_error(tmp_path, "directory")


def test_empty_file(tmp_path):
  path = tmp_path / "empty.png"
  path.write_bytes(b"")
  _assert_read_error(path, "empty")


def test_text_file_named_png(tmp_path):
  path = tmp_path / "notes.png"
  path.write_text("this is not an image\nsecond line\n")
  _assert_read_error(path, "not a recognised image")


def test_truncated_jpeg(tmp_path):
  rng = np.random.default_rng(0)
  pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
  full = tmp_path / "full.jpg"
  Image.fromarray(pixels).save(full, quality=90)
  data = full.read_bytes()
  path = tmp_path / "truncated.jpg"
  path.write_bytes(data[:len(data) // 2])
  _assert_read_error(path)


def test_corrupt_png_data(tmp_path):
  full = tmp_path / "full.png"
  rng = np.random.default_rng(1)
  Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(full)
  data = bytearray(full.read_bytes())
  start = data.index(b"IDAT") + 8
  data[start:start + 64] = b"\xff" * 64  # garbage compressed stream
  path = tmp_path / "corrupt.png"
  path.write_bytes(bytes(data))
  _assert_read_error(path)


def test_message_is_one_line_for_odd_names(tmp_path):
  path = tmp_path / "line\nbreak.png"
  path.write_text("x")
  with pytest.raises(NSTError) as info:
    nio.load_image(path)
  assert "\n" not in str(info.value)


def _png_with_header_size(path, width, height):
  """A tiny valid PNG whose IHDR is patched to claim ``width`` x ``height``."""
  Image.new("RGB", (1, 1)).save(path)
  data = bytearray(path.read_bytes())
  assert data[12:16] == b"IHDR"
  data[16:24] = struct.pack(">II", width, height)
  crc = zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF
  data[29:33] = struct.pack(">I", crc)
  path.write_bytes(bytes(data))


def test_huge_header_refused_before_decoding(tmp_path):
  path = tmp_path / "bomb.png"
  _png_with_header_size(path, 50000, 50000)
  start = time.perf_counter()
  message = _assert_read_error(path)
  assert time.perf_counter() - start < 1.0
  assert "pixels" in message


def test_header_over_default_limit_refused(tmp_path):
  path = tmp_path / "big.png"
  _png_with_header_size(path, 12000, 9000)  # 108 megapixels
  start = time.perf_counter()
  _assert_read_error(path, "pixels")
  assert time.perf_counter() - start < 1.0


def test_max_pixels_checked_on_header(tmp_path, monkeypatch):
  path = tmp_path / "wide.png"
  _png_with_header_size(path, 3000, 2000)

  def no_decoding(self):
    raise AssertionError("pixels decoded before the size check")

  monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
  _assert_read_error(path, "3000x2000", max_pixels=1_000_000)


def test_max_pixels_allows_images_within_limit(tmp_path):
  path = tmp_path / "ok.png"
  Image.new("RGB", (10, 10)).save(path)
  assert _load_one(path, max_pixels=100).shape == (10, 10, 3)
  _assert_read_error(path, "10x10", max_pixels=99)


# ---------------------------------------------------------------------------
# Resizing.


def test_resize_long_edge_shapes():
  landscape = np.zeros((200, 300, 3), np.float32)
  assert nio.resize_long_edge(landscape, 150).shape == (100, 150, 3)
  portrait = np.zeros((300, 200, 3), np.float32)
  assert nio.resize_long_edge(portrait, 150).shape == (150, 100, 3)
  assert nio.resize_long_edge(landscape, 600).shape == (400, 600, 3)
  thin = np.zeros((1, 1000, 3), np.float32)
  assert nio.resize_long_edge(thin, 10).shape == (1, 10, 3)


def test_resize_range_dtype_and_precision():
  rng = np.random.default_rng(0)
  checker = (np.indices((64, 96)).sum(0) % 2).astype(np.float32)
  image = np.stack([checker, 1 - checker, rng.random((64, 96))], -1)
  for size in (40, 200):
    out = nio.resize_long_edge(image.astype(np.float32), size)
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0  # Lanczos ringing clipped.
  flat = np.full((50, 80, 3), 0.3012345, np.float32)
  out = nio.resize_long_edge(flat, 33)
  np.testing.assert_allclose(out, 0.3012345, atol=1e-5)  # not 8-bit rounded


def test_resize_to():
  image = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
  assert nio.resize_to(image, (7, 11)).shape == (7, 11, 3)
  same = nio.resize_to(image, (20, 30))
  np.testing.assert_array_equal(same, image)


@pytest.mark.parametrize("shape", [(20, 29), (61, 80), (40, 40), (37, 20)])
def test_resize_is_pillows_lanczos(shape):
  # Against Pillow's own 8-bit RGB Lanczos (another code path than ours,
  # which resamples float32 planes): an image whose channels differ (red a
  # horizontal ramp, green a vertical one, blue noise) and is not square, so
  # swapped channels or a transposed result fail, at down-, up- and square
  # sizes. Values stay in [0.2, 0.8] so that the 8-bit path's clipping of
  # Lanczos ringing between its two passes does not enter; its rounding to
  # 1/255 after each pass does (measured ≤ 1.1/255). Bicubic differs by
  # ≥ 8/255 here.
  h, w = 37, 53
  yy, xx = np.mgrid[0:h, 0:w]
  noise = np.random.default_rng(0).random((h, w))
  image = 0.2 + 0.6 * np.stack([xx / (w - 1), yy / (h - 1), noise], -1)
  pixels = np.rint(image * 255).astype(np.uint8)
  want = np.asarray(Image.fromarray(pixels).resize(
      (shape[1], shape[0]), Image.Resampling.LANCZOS), np.float32) / 255
  got = nio.resize_to(pixels / np.float32(255), shape)
  assert got.shape == (*shape, 3) and got.dtype == np.float32
  np.testing.assert_allclose(got, want, atol=1.5 / 255, rtol=0)


@pytest.mark.parametrize("size", [0, -1, 16385, 1.5, "100", True, None])
def test_resize_invalid_size(size):
  image = np.zeros((4, 4, 3), np.float32)
  with pytest.raises(NSTError) as info:
    nio.resize_long_edge(image, size)
  assert "\n" not in str(info.value)
  assert str(info.value).startswith("invalid `size` ")  # a parameter, no flag


def test_resize_to_invalid_shape():
  image = np.zeros((4, 4, 3), np.float32)
  for shape in [(0, 4), (4, 20000), (4,), "4x4"]:
    with pytest.raises(NSTError, match="^invalid `shape` "):
      nio.resize_to(image, shape)


def test_resize_max_edge_accepted():
  image = np.zeros((1, 2, 3), np.float32)
  assert nio.resize_to(image, (1, 16384)).shape == (1, 16384, 3)


# ---------------------------------------------------------------------------
# Writing images.


def test_image_to_uint8():
  image = np.array([[[-0.5, 0.0, 0.5], [1.0, 1.5, 0.998]]], np.float32)
  np.testing.assert_array_equal(nio.image_to_uint8(image),
                                [[[0, 0, 128], [255, 255, 254]]])
  assert nio.image_to_uint8(image).dtype == np.uint8


def test_save_load_roundtrip_and_creates_directory(tmp_path):
  image = np.random.default_rng(0).random((13, 17, 3)).astype(np.float32)
  path = tmp_path / "new" / "deeper" / "out.png"
  nio.save_image(path, image)
  loaded = nio.load_image(path)
  expected = nio.image_to_uint8(image) / np.float32(255)
  np.testing.assert_array_equal(loaded, expected)
  assert _entries(path.parent) == ["out.png"]
  assert Image.open(path).mode == "RGB"


def test_save_clips_out_of_range(tmp_path):
  image = np.array([[[-1.0, 0.5, 2.0]]], np.float32)
  path = tmp_path / "clip.png"
  nio.save_image(path, image)
  pixels = np.asarray(Image.open(path))
  np.testing.assert_array_equal(pixels[0, 0], [0, 128, 255])


def test_metadata_roundtrip(tmp_path):
  metadata = {"Software": "nst_jax", "nst:config": json.dumps({"a": 1}),
              "Comment": "non-Latin-1 text: \u6f22\u5b57 \u2713",
              "long": "x" * 5000}
  path = tmp_path / "meta.png"
  nio.save_image(path, np.zeros((2, 2, 3), np.float32), metadata=metadata)
  assert nio.read_png_metadata(path) == metadata


def test_read_png_metadata_errors(tmp_path):
  with pytest.raises(NSTError, match="cannot read image"):
    nio.read_png_metadata(tmp_path / "missing.png")
  jpeg = tmp_path / "x.jpg"
  Image.new("RGB", (2, 2)).save(jpeg)
  with pytest.raises(NSTError, match="not a PNG"):
    nio.read_png_metadata(jpeg)


def test_save_refuses_nan(tmp_path):
  image = np.zeros((4, 4, 3), np.float32)
  image[1, 2, 0] = np.nan
  path = tmp_path / "nan.png"
  with pytest.raises(NSTError, match="non-finite") as info:
    nio.save_image(path, image)
  assert str(path) in str(info.value)
  assert _entries(tmp_path) == []
  image[1, 2, 0] = np.inf
  with pytest.raises(NSTError):
    nio.save_image(path, image)


def test_save_refuses_non_png_name(tmp_path):
  with pytest.raises(NSTError, match=".png"):
    nio.save_image(tmp_path / "out.jpg", np.zeros((2, 2, 3), np.float32))


def test_save_rejects_wrong_arrays(tmp_path):
  with pytest.raises(ValueError, match="`image` must have shape"):
    nio.save_image(tmp_path / "a.png", np.zeros((4, 4), np.float32))
  with pytest.raises(TypeError, match="`image` must be a float image"):
    nio.save_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
  with pytest.raises(TypeError, match="`metadata` must map str to str"):
    nio.save_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.float32),
                   metadata={"k": 1})
  with pytest.raises(ValueError, match="`max_pixels`"):
    nio.load_image(tmp_path / "a.png", max_pixels=0)


def _write_previous(path):
  Image.new("RGB", (3, 3), (1, 2, 3)).save(path)
  return path.read_bytes()


def test_save_atomic_when_replace_fails(tmp_path, monkeypatch):
  path = tmp_path / "out.png"
  before = _write_previous(path)

  def failing_replace(src, dst):
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(nio.os, "replace", failing_replace)
  with pytest.raises(NSTError) as info:
    nio.save_image(path, np.ones((5, 5, 3), np.float32))
  assert str(path) in str(info.value) and "No space left" in str(info.value)
  assert path.read_bytes() == before
  assert _entries(tmp_path) == ["out.png"]


def test_save_atomic_when_encoder_fails(tmp_path, monkeypatch):
  path = tmp_path / "out.png"
  before = _write_previous(path)
  real_save = Image.Image.save

  def failing_save(self, fp, *args, **kwargs):
    fp.write(b"\x89PNG partial data")
    raise RuntimeError("encoder exploded")

  monkeypatch.setattr(Image.Image, "save", failing_save)
  with pytest.raises(RuntimeError, match="encoder exploded"):
    nio.save_image(path, np.ones((5, 5, 3), np.float32))
  monkeypatch.setattr(Image.Image, "save", real_save)
  assert path.read_bytes() == before
  assert _entries(tmp_path) == ["out.png"]


def test_save_replaces_existing_file(tmp_path):
  path = tmp_path / "out.png"
  _write_previous(path)
  nio.save_image(path, np.ones((5, 5, 3), np.float32))
  assert Image.open(path).size == (5, 5)
  assert _entries(tmp_path) == ["out.png"]


def test_save_refuses_protected_input(tmp_path):
  source = tmp_path / "content.png"
  before = _write_previous(source)
  image = np.zeros((2, 2, 3), np.float32)
  with pytest.raises(NSTError,
                     match="refusing to overwrite input image") as info:
    nio.save_image(source, image, protect=[tmp_path / "style.png", source])
  assert str(source) in str(info.value)
  # The same file reached through another spelling and through a symlink.
  other = tmp_path / "sub" / ".." / "content.png"
  (tmp_path / "sub").mkdir()
  with pytest.raises(NSTError, match="refusing to overwrite"):
    nio.save_image(other, image, protect=[str(source)])
  link = tmp_path / "link.png"
  link.symlink_to(source)
  with pytest.raises(NSTError, match="refusing to overwrite"):
    nio.save_image(link, image, protect=[source])
  assert source.read_bytes() == before
  nio.save_image(tmp_path / "out.png", image, protect=[source])


def test_save_onto_directory(tmp_path):
  target = tmp_path / "dir.png"
  target.mkdir()
  with pytest.raises(NSTError, match="directory"):
    nio.save_image(target, np.zeros((2, 2, 3), np.float32))


# ---------------------------------------------------------------------------
# JSON records.


def test_to_jsonable():
  obj = {"f": float("nan"), "g": np.float32(np.inf), "h": np.float64(1.5),
         "i": np.int64(3), "b": np.bool_(True), "t": (1, 2), "a": np.eye(2),
         "n": [None, "s"], np.int32(4): "key", "nested": {"x": (np.nan,)}}
  assert nio.to_jsonable(obj) == {
      "f": None, "g": None, "h": 1.5, "i": 3, "b": True, "t": [1, 2],
      "a": [[1.0, 0.0], [0.0, 1.0]], "n": [None, "s"], 4: "key",
      "nested": {"x": [None]}}
  with pytest.raises(TypeError):
    nio.to_jsonable({"x": object()})


def test_save_json_nan_is_null(tmp_path):
  path = tmp_path / "rec" / "record.json"
  nio.save_json(path, {"loss": [1.0, float("nan"), np.float32(2.5)],
                       "shape": (3, 4), "best": float("-inf")})
  text = path.read_text()
  assert "NaN" not in text and "Infinity" not in text
  assert json.loads(text) == {"loss": [1.0, None, 2.5], "shape": [3, 4],
                              "best": None}
  assert text.endswith("\n") and '\n  "loss"' in text  # indent 2
  assert _entries(path.parent) == ["record.json"]


def test_save_json_atomic_and_protected(tmp_path, monkeypatch):
  path = tmp_path / "record.json"
  path.write_text('{"old": true}\n')
  with pytest.raises(NSTError, match="refusing to overwrite input"):
    nio.save_json(path, {"new": 1}, protect=[path])
  monkeypatch.setattr(nio.os, "fsync", lambda fd: (_ for _ in ()).throw(
      OSError(5, "Input/output error")))
  with pytest.raises(NSTError, match="Input/output error"):
    nio.save_json(path, {"new": 1})
  assert path.read_text() == '{"old": true}\n'
  assert _entries(tmp_path) == ["record.json"]
