"""Video frames through the levels of ``config.schedule``
(``video.stylize_video``): a frame without a warm start begins from
``config.init`` drawn at its first level, as ``transfer.paint`` does, and a
frame checkpoints and resumes at every level.

A tiny random VGG-16 (conftest.tiny_vgg16_params) on shallow layers, 24-48
px, a few iterations.
"""

import json

import numpy as np
import pytest

import scripting
from conftest import random_image as _img

from nst_jax import config as C
from nst_jax import io
from nst_jax import transfer
from nst_jax import video
from nst_jax.errors import NSTError

# The tiny network, its shallow configuration and clip of test_driver; the
# command helpers of test_resume.
from test_driver import _clip, _config, params  # noqa: F401  (a fixture)
from test_resume import _finish, _kill_9_when, _popen as _command
from test_resume import frames_folder


# --- video: the start image and checkpoints at every level -------------------------


def test_a_videos_first_frame_from_noise_equals_paint_through_levels(params):
  """Without a warm start a frame starts from ``config.init`` drawn at its
  first level, as ``transfer.paint`` does: noise at 24 px, not 48 px noise
  resized (a blur of it)."""
  clip = _clip(1, (36, 48))
  style = np.asarray(_img(40, 40, 3))
  cfg = _config(schedule=C.Schedule(scales=(24, 48), scale_iterations=(3, 1)),
                init=C.Init("noise", 3))
  result = video.stylize_video(params, clip, [style], cfg)
  alone = transfer.paint(params, clip[0], [style], cfg)
  np.testing.assert_allclose(result.results[0].image,
                             video.quantize(alone.image), atol=1.01 / 255)


def test_a_coarse_to_fine_video_checkpoints_and_resumes_at_its_level(params):
  """With several levels, ``checkpoint_every`` still hands out states (each
  with its ``level`` and the finished levels' counts), and a state of frame
  1 at either level resumes it to the frame an uninterrupted run paints,
  bit for bit, with the same counts (before, such a video wrote no state
  inside a frame and refused to resume one)."""
  clip = _clip(2, (24, 32))
  style = np.asarray(_img(40, 40, 3))
  cfg = _config(schedule=C.Schedule(scales=(16, 32), scale_iterations=(3, 2)))
  states = []
  full = video.stylize_video(params, clip, [style], cfg, checkpoint_every=1,
                             on_checkpoint=lambda i, s: states.append((i, s)))
  ours = [s for i, s in states if i == 1]
  first = [s for s in ours if s.level == 0]
  second = [s for s in ours if s.level == 1]
  assert first and second and len(first) + len(second) == len(ours)
  assert {s.before.iterations for s in first} == {0}
  assert {s.before.iterations for s in second} == {3}
  for state in (first[0], second[0]):
    again = video.stylize_video(params, clip, [style], cfg,
                                previous=full.frames[:1], resume=state)
    np.testing.assert_array_equal(again.frames[1], full.frames[1])
    assert again.results[0].iterations == full.results[1].iterations == 5
    assert (again.results[0].function_evaluations ==
            full.results[1].function_evaluations)
  with pytest.raises(NSTError, match="at level 2, but a frame has 2 levels"):
    video.stylize_video(params, clip, [style], cfg, previous=full.frames[:1],
                        resume=second[0]._replace(level=2))


def _popen(*args):
  """nst-stylize-video (AlexNet) at XLA's defaults (scripting.py)."""
  return _command("stylize_video.py", *args, xla_defaults=True)


def _at_level_1_of_frame_1(state):
  try:
    arrays, meta = io.load_arrays(state)
  except (OSError, ValueError, NSTError):
    return False
  return bool(arrays) and meta["stage"]["frame"] >= 1 and meta["level"] == 1


@pytest.mark.slow
def test_a_coarse_to_fine_video_killed_inside_a_level_resumes(tmp_path):
  """nst-stylize-video --scales=48,64 --save_every=1, killed with SIGKILL in
  the second level of its second frame, then --resume: the frames and
  counts equal an uninterrupted run's (before, --save_every wrote no state
  inside a coarse-to-fine frame)."""
  clip = frames_folder(tmp_path, _clip(3, (48, 64)))
  common = (f"--input={clip}", "--network=alexnet", "--scales=48,64",
            "--scale_iterations=4,3", "--iterations=4", "--save_every=1",
            "--quiet",
            f"--style={scripting.ROOT / 'examples' / 'style_brushwork.png'}")
  _finish(_popen(*common, f"--output={tmp_path}/full.mp4"))
  proc = _popen(*common, f"--output={tmp_path}/k.mp4")
  state = tmp_path / "k.resume.npz"
  _kill_9_when(proc, lambda: _at_level_1_of_frame_1(state))
  meta = io.load_arrays(state)[1]
  assert meta["level"] == 1 and meta["before"]["iterations"] == 4
  _finish(_popen(f"--resume={tmp_path}/k.mp4"))
  for i in range(3):
    np.testing.assert_array_equal(
        io.load_image(tmp_path / f"k_frames/frame_{i:05d}.png"),
        io.load_image(tmp_path / f"full_frames/frame_{i:05d}.png"))
  ours = json.loads((tmp_path / "k.json").read_text())["per_frame"]
  theirs = json.loads((tmp_path / "full.json").read_text())["per_frame"]
  assert [(r["iterations"], r["function_evaluations"]) for r in ours] == [
      (r["iterations"], r["function_evaluations"]) for r in theirs]
