"""nst-stylize-video and an earlier run: --resume takes the recorded flags
as nst-stylize's does (--deterministic included, before JAX starts), and a
fresh run where an earlier one left its state or its frames is refused in
one line that names what is there and what to do."""

import os
import subprocess
import sys

import scripting
from scripting import assert_one_line_error

from nst_jax import io
from nst_jax.commands import _resume


def _frames(tmp_path):
  clip = tmp_path / "clip"
  clip.mkdir()
  image = io.load_image(scripting.ROOT / "examples" / "chelsea.png")
  for i in range(2):
    io.save_image(clip / f"{i:03d}.png", io.resize_to(image, (32, 48)))
  return clip


def test_an_unfinished_runs_state_without_frames_is_named(tmp_path):
  """A run killed inside its first frame leaves its state and no frame: a
  fresh run is refused naming the state file (before, it named a work
  folder that did not exist, so removing it changed nothing)."""
  clip = _frames(tmp_path)
  out = tmp_path / "v.mp4"
  state = tmp_path / "v.resume.npz"
  _resume.save(str(state), None, params={}, inputs={}, stage={"frame": 0},
               command="nst-stylize-video")
  proc = scripting.run("stylize_video.py", f"--input={clip}", "--size=48",
                       f"--style={scripting.ROOT / 'examples' / 'style_brushwork.png'}",
                       f"--output={out}", "--quiet")
  assert_one_line_error(proc, str(state), f"--resume={out}")
  assert not (tmp_path / "v_frames").exists()


def test_a_finished_runs_frames_are_named(tmp_path):
  """A finished run's frames (its state removed) are refused naming the
  work folder, without suggesting a --resume that has nothing to resume."""
  clip = _frames(tmp_path)
  out = tmp_path / "v.mp4"
  work = tmp_path / "v_frames"
  work.mkdir()
  io.save_image(work / "frame_00000.png", io.load_image(clip / "000.png"))
  proc = scripting.run("stylize_video.py", f"--input={clip}", "--size=48",
                       f"--style={scripting.ROOT / 'examples' / 'style_brushwork.png'}",
                       f"--output={out}", "--quiet")
  assert_one_line_error(proc, f"work folder {work}", "--work_dir")
  lines = [l for l in proc.stderr.splitlines() if l.startswith("error: ")]
  assert "--resume" not in lines[0]


_RESUMED = r"""
import os, sys
from nst_jax import video_io
from nst_jax.commands import stylize_video
from nst_jax.errors import NSTError

def stop(*args, **kwargs):   # the flags are applied by now: no work
  print("XLA_FLAGS=" + os.environ.get("XLA_FLAGS", ""), flush=True)
  raise NSTError("stopped before reading the clip")

video_io.read_clip = stop
sys.argv = ["nst-stylize-video", "--resume=" + sys.argv[1]]
stylize_video.run()
"""


def test_a_resumed_video_applies_its_recorded_deterministic(tmp_path):
  """A run recorded with --deterministic resumes with XLA's deterministic
  GPU kernels, as nst-stylize --resume does (before, the video command
  applied the recorded flag after run_main had set XLA_FLAGS: a resumed GPU
  run was not deterministic, so not bit-identical)."""
  clip = _frames(tmp_path)
  out = tmp_path / "v.mp4"
  style = scripting.ROOT / "examples" / "style_brushwork.png"
  _resume.save(str(tmp_path / "v.resume.npz"), None,
               params={"input": str(clip), "style": [str(style)],
                       "output": str(out), "size": 48, "deterministic": True},
               inputs={}, stage={"frame": 0}, command="nst-stylize-video")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  proc = subprocess.run([sys.executable, "-c", _RESUMED, str(out)],
                        cwd=scripting.ROOT, capture_output=True, text=True,
                        env=dict(env, PYTHONPATH=os.pathsep.join(
                            [str(scripting.ROOT), env.get("PYTHONPATH", "")])),
                        timeout=300)
  assert_one_line_error(proc, "stopped before reading the clip")
  assert "--xla_gpu_deterministic_ops=true" in proc.stdout, proc.stdout


def test_an_odd_size_paints_the_even_frames_levels(tmp_path):
  """Frames have even sides (H.264): ``--size=65`` paints 64 px frames and
  says so (it said 65 px and sized the styles for 65), and an odd last
  ``--scales`` is refused in one line before any work."""
  clip = _frames(tmp_path)
  style = f"--style={scripting.ROOT / 'examples' / 'style_brushwork.png'}"
  common = (f"--input={clip}", style, "--network=alexnet", "--iterations=1",
            "--fps=8")
  proc = scripting.run("stylize_video.py", *common, "--size=65",
                       f"--output={tmp_path / 'v.mp4'}")
  scripting.assert_ok(proc)
  assert "64 px: 1 iterations" in proc.stdout, proc.stdout
  assert "65 px" not in proc.stdout
  assert io.load_image(tmp_path / "v_frames" / "frame_00000.png").shape == (
      42, 64, 3)
  proc = scripting.run("stylize_video.py", *common, "--scales=33,65",
                       f"--output={tmp_path / 'w.mp4'}")
  assert_one_line_error(proc, "--scales", "must be even")
  assert not (tmp_path / "w_frames").exists()
