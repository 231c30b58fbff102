"""scripts/stylize.py as a user runs it: a tiny real transfer, and bad input
that must end in one line on stderr, a non-zero exit and no output file."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from nst_jax import io

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "stylize.py"
CONTENT = ROOT / "examples" / "chelsea.png"
STYLE = ROOT / "examples" / "style_brushwork.png"


def run(*args, cwd=None):
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd,
                        capture_output=True, text=True, env=env, timeout=300)


def assert_one_line_error(proc, *fragments):
  assert proc.returncode != 0, proc.stdout
  assert "Traceback" not in proc.stderr, proc.stderr
  lines = [l for l in proc.stderr.splitlines() if l.startswith("error: ")]
  assert len(lines) == 1, proc.stderr
  for fragment in fragments:
    assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, vgg16_params):
  del vgg16_params  # only to skip when the weights are missing
  out = tmp_path_factory.mktemp("smoke") / "result.png"
  proc = run(f"--content={CONTENT}", f"--style={STYLE},{STYLE}",
             "--style_blend_weights=1,3", "--size=48", "--iterations=12",
             "--print_every=4", "--save_every=6", f"--output={out}")
  assert proc.returncode == 0, proc.stderr
  return out, proc


def test_smoke_run_writes_png_and_record(smoke):
  out, proc = smoke
  image = io.load_image(out)
  assert max(image.shape[:2]) == 48 and image.shape[2] == 3
  record = json.loads(out.with_suffix(".json").read_text())
  assert set(record) >= {"params", "loss_history", "iterations",
                         "function_evaluations", "wall_seconds", "device"}
  assert record["iterations"] == 12
  assert record["params"]["style_blend_weights"] == ["1", "3"]
  assert record["params"]["size"] == 48
  history = record["loss_history"]
  assert [h["iteration"] for h in history] == [0, 4, 8, 12]
  for h in history:
    assert set(h) == {"iteration", "total", "content", "style", "tv"}
    assert h["total"] == pytest.approx(h["content"] + h["style"] + h["tv"],
                                       rel=1e-5)
  assert history[-1]["style"] < history[0]["style"]
  assert record["function_evaluations"] / record["iterations"] <= 1.3
  assert "iteration     4" in proc.stdout
  # Snapshots at 6 and 12, and the parameters in the PNG's text chunk.
  assert (out.parent / "result_0006.png").exists()
  assert json.loads(io.read_png_metadata(out)["nst_jax"])["iterations"] == 12


@pytest.mark.parametrize("args, fragments", [
    (["--content=/nonexistent.jpg"], ["/nonexistent.jpg"]),
    (["--style_layers=relu9_9"], ["relu9_9"]),
    (["--style_blend_weights=1,2"], ["blend"]),
    (["--style_layer_weights=1,x"], ["style_layer_weights"]),
    (["--output=out.jpg"], [".png"]),
    (["--size=8"], ["too small", "--size"]),
    (["--size=16000", "--iterations=1"], ["GiB", "--size"]),
    (["--weights=/nonexistent.npz"], ["/nonexistent.npz"]),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, fragments,
                                                  vgg16_params):
  del vgg16_params
  out = tmp_path / "o.png"
  base = {"--content": f"--content={CONTENT}", "--style": f"--style={STYLE}",
          "--output": f"--output={out}"}
  for a in args:
    base[a.split("=")[0]] = a
  proc = run(*base.values(), *[a for a in args if a.split("=")[0] not in base])
  assert_one_line_error(proc, *fragments)
  assert list(tmp_path.iterdir()) == []


def test_corrupt_and_missing_inputs(tmp_path):
  bad = tmp_path / "bad.jpg"
  bad.write_bytes(b"not an image at all")
  proc = run(f"--content={bad}", f"--style={STYLE}",
             f"--output={tmp_path / 'o.png'}")
  assert_one_line_error(proc, "bad.jpg")
  proc = run(f"--style={STYLE}", f"--output={tmp_path / 'o.png'}")
  assert_one_line_error(proc, "--content")
  assert not (tmp_path / "o.png").exists()


def test_input_is_never_overwritten(tmp_path):
  content = tmp_path / "photo.png"
  Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(content)
  before = content.read_bytes()
  proc = run(f"--content={content}", f"--style={STYLE}", f"--output={content}")
  assert_one_line_error(proc, "overwrite")
  assert content.read_bytes() == before


def test_missing_weights_say_what_to_do(tmp_path):
  env_dir = tmp_path / "empty_weights"
  env_dir.mkdir()
  env = dict(os.environ, NST_JAX_WEIGHTS_DIR=str(env_dir))
  proc = subprocess.run(
      [sys.executable, str(SCRIPT), f"--content={CONTENT}", f"--style={STYLE}",
       f"--output={tmp_path / 'o.png'}", "--size=32"],
      capture_output=True, text=True, env=env, timeout=300)
  assert_one_line_error(proc, "fetch_weights.py")
