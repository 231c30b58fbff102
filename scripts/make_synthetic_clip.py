"""Writes a licence-clean synthetic clip with known motion: a slow pan and
zoom over examples/chelsea.png (scikit-image's CC0 cat), for the video
tests, benchmark and README (``nst_jax.video.pan_zoom_clip``)::

  python scripts/make_synthetic_clip.py --output=out/pan.mp4 --frames=12
  python scripts/make_synthetic_clip.py --output=out/pan_frames/ --frames=12
  # Issue 22's pan: 8 px a frame at 96x64, flows beside the frames
  python scripts/make_synthetic_clip.py --output=out/pan8/ --frames=5 \\
      --size=96 --pan=0.04157,0 --zoom=1 --start_scale=0.5 --flows

A name ending in a video extension is encoded (imageio-ffmpeg); any other is
a folder of PNG frames (frame_00000.png, …). ``--flows`` also writes the
exact flow from each frame to the one before (flow_00001.npy, …) beside a
folder's frames.
"""

import os

import numpy as np
from absl import app
from absl import flags

from nst_jax import cli
from nst_jax import io
from nst_jax import video
from nst_jax import video_io
from nst_jax.errors import NSTError

flags.DEFINE_string("image", "examples/chelsea.png", "Image to pan over.")
flags.DEFINE_string("output", "out/pan.mp4", "A video file, or a folder for "
                    "PNG frames.")
flags.DEFINE_integer("frames", 12, "Number of frames.", lower_bound=2)
flags.DEFINE_integer("size", 256, "Long edge of the frames (made even).",
                     lower_bound=8)
flags.DEFINE_float("fps", 12.0, "Frame rate of a video.", lower_bound=1e-3)
cli.define_numbers("pan", (0.008, 0.003), "Pan per frame, fractions of the "
                   "image's width and height.")
flags.DEFINE_float("zoom", 1.01, "Zoom factor per frame.", lower_bound=0.5)
flags.DEFINE_float("start_scale", 0.8, "The first frame's extent, a "
                   "fraction of the image's (smaller leaves room for a "
                   "faster pan).", lower_bound=1e-3)
flags.DEFINE_bool("flows", False, "Also write the exact flows (folders only).")
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise NSTError(f"unexpected arguments: {' '.join(argv[1:])}")
  image = io.load_image(FLAGS.image)
  h, w = image.shape[:2]
  aspect = w / h
  shape = video_io.even_shape(io.long_edge_shape(
      (h, round(h * aspect)), FLAGS.size))
  if len(FLAGS.pan) != 2:
    raise NSTError(f"--pan takes two numbers (x, y), got {list(FLAGS.pan)}")
  frames, flows = video.pan_zoom_clip(image, frames=FLAGS.frames, shape=shape,
                                      pan=tuple(FLAGS.pan), zoom=FLAGS.zoom,
                                      start_scale=FLAGS.start_scale)
  ext = os.path.splitext(FLAGS.output)[1].lower()
  if ext in video_io.VIDEO_EXTENSIONS:
    video_io.write_video(FLAGS.output, frames, FLAGS.fps,
                         protect=[FLAGS.image])
  else:
    for i, frame in enumerate(frames):
      io.save_image(os.path.join(FLAGS.output, f"frame_{i:05d}.png"), frame,
                    protect=[FLAGS.image])
      if FLAGS.flows and i > 0:
        with open(os.path.join(FLAGS.output, f"flow_{i:05d}.npy"), "wb") as f:
          np.save(f, flows[i - 1])
  print(f"wrote {FLAGS.output}: {len(frames)} frames of "
        f"{shape[1]}x{shape[0]}")


if __name__ == "__main__":
  app.run(cli.run_main(main), flags_parser=cli.parse_flags)
