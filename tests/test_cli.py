"""scripts/stylize.py as a user runs it: a tiny real transfer, and bad input
that must end in one line on stderr, a non-zero exit and no output file; and
``--deterministic`` (``cli.apply_deterministic``), which re-runs on a GPU
need to give the same image."""

import json
import re
import os
import pathlib
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
from absl import flags
from PIL import Image

from nst_jax import cli
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
             "--log_every=4", "--save_every=6", "--plot", "--sheet",
             f"--output={out}")
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
  assert record["params"]["style_blend_weights"] == [1.0, 3.0]
  assert record["params"]["size"] == 48
  # The layers used (the network's defaults), not null; what ran it.
  assert record["params"]["content_layers"] == ["relu4_2"]
  assert record["params"]["style_layers"] == ["relu1_1", "relu2_1", "relu3_1",
                                              "relu4_1", "relu5_1"]
  assert record["device"] == cli.device_description()
  assert re.fullmatch(r"\w+: \d+ devices? \(.+\)", record["device"])
  history = record["loss_history"]
  assert [h["iteration"] for h in history] == [0, 4, 8, 12]
  for h in history:
    assert set(h) == {"iteration", "seconds", "total", "content", "style",
                      "tv", "style_layers"}
    assert h["total"] == pytest.approx(h["content"] + h["style"] + h["tv"],
                                       rel=1e-5)
    assert list(h["style_layers"]) == ["relu1_1", "relu2_1", "relu3_1",
                                       "relu4_1", "relu5_1"]
  assert history[-1]["style"] < history[0]["style"]
  assert record["function_evaluations"] / record["iterations"] <= 1.3
  assert record["stop_reason"] == "max_iterations"
  assert set(record["inputs"]) == {str(CONTENT), str(STYLE)}
  # Progress: a bar (not a terminal: one line per tenth), not per iteration.
  bars = [l for l in proc.stderr.splitlines() if re.search(r"\d+/12 \[", l)]
  assert 2 <= len(bars) <= 12, proc.stderr
  assert "100%" in bars[-1] and "12/12" in bars[-1]
  assert "it/s" in bars[-1] or "s/it" in bars[-1]
  assert "style=" in bars[-1] and "content=" in bars[-1]
  # Snapshots at 6 and 12, and the parameters in the PNG's text chunk.
  assert (out.parent / "result_0006.png").exists()
  assert json.loads(io.read_png_metadata(out)["nst_jax"])["iterations"] == 12
  # --plot and --sheet: valid PNGs of the expected layout.
  plot = io.load_image(out.parent / "result_loss.png")
  assert plot.shape[1] > plot.shape[0] > 200
  sheet = io.load_image(out.parent / "result_sheet.png")
  assert sheet.shape[1] > 3 * sheet.shape[0] > 600  # content | 2 styles | result
  assert "result_loss.png" in proc.stdout and "result_sheet.png" in proc.stdout


def test_commands_use_the_session_cache_not_the_users(smoke):
  # conftest points NST_JAX_CACHE_DIR (nst_jax.cli.CACHE_DIR_ENV) at a
  # temporary directory for the whole session; every command started here
  # inherits it, so none writes ~/.cache/nst_jax.
  del smoke  # a real run has compiled its programs by now
  cache = pathlib.Path(os.environ["NST_JAX_CACHE_DIR"])
  user = pathlib.Path.home() / ".cache" / "nst_jax"
  assert cache != user and user not in cache.parents, cache
  assert cache.is_dir() and any(p.is_file() for p in cache.rglob("*")), (
      f"the smoke run wrote nothing to {cache}")


def test_quiet_prints_nothing(tmp_path, vgg16_params):
  del vgg16_params
  out = tmp_path / "q.png"
  proc = run(f"--content={CONTENT}", f"--style={STYLE}", "--size=32",
             "--iterations=3", "--content_layers=relu2_1",
             "--style_layers=relu1_1", "--quiet", f"--output={out}")
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout == "" and proc.stderr == ""
  assert io.load_image(out).shape[:2] == (21, 32)


def test_defaults_follow_the_device(tmp_path, vgg16_params):
  del vgg16_params
  out = tmp_path / "d.png"
  proc = run(f"--content={CONTENT}", f"--style={STYLE}", "--iterations=1",
             "--content_layers=relu2_1", "--style_layers=relu1_1",
             f"--output={out}")
  assert proc.returncode == 0, proc.stderr
  import jax  # the test process sees the same devices as the child
  size = 256 if jax.default_backend() == "cpu" else 512
  assert f"--size={size}" in proc.stdout and "--iterations" not in proc.stdout
  assert max(io.load_image(out).shape[:2]) == size
  record = json.loads(out.with_suffix(".json").read_text())
  assert record["params"]["size"] == size   # the value used, recorded


def test_ctrl_c_writes_the_latest_image_and_record(tmp_path, vgg16_params):
  del vgg16_params
  out = tmp_path / "c.png"
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  child = subprocess.Popen(
      [sys.executable, str(SCRIPT), f"--content={CONTENT}", f"--style={STYLE}",
       "--size=48", "--iterations=100000", "--content_layers=relu2_1",
       "--style_layers=relu1_1,relu2_1", f"--output={out}"],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
  try:
    for line in child.stderr:     # wait until the loop is running
      if "/100000" in line and not line.startswith("[....................] 0/"):
        break
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=120)
  finally:
    child.kill()
  assert child.returncode == 130, stderr
  assert "Traceback" not in stderr
  assert "interrupted: wrote" in stdout
  image = io.load_image(out)
  assert max(image.shape[:2]) == 48
  record = json.loads(out.with_suffix(".json").read_text())
  assert record["stop_reason"] == "interrupted"
  assert 0 < record["iterations"] < 100000
  assert record["loss_history"][-1]["iteration"] == record["iterations"]
  assert not list(tmp_path.glob("*.tmp"))


def test_rerun_from_json_or_png_gives_the_identical_image(tmp_path,
                                                          vgg16_params):
  """What a re-run promises. On the CPU the same flags give the same image,
  bit for bit. On a GPU the same image, bit for bit, on the same device (and
  the same JAX, CUDA and cuDNN) with ``--deterministic``, which the record
  keeps so that re-runs inherit it: this test gives it there. Without it XLA
  picks each convolution's algorithm by timing and may reduce in another
  order, so a GPU re-run agrees only to float32 rounding grown over the
  iterations: after this 6-iteration run to one 8-bit level (1/255), which
  the GPU case checks too; longer runs drift further."""
  del vgg16_params
  gpu = jax.default_backend() != "cpu"
  out = tmp_path / "first.png"
  proc = run(f"--content={CONTENT}", f"--style={STYLE}", "--size=40",
             "--iterations=6", "--init=noise", "--seed=7",
             "--original_colors", "--color_transfer=histogram",
             "--style_scale=0.8", "--content_layers=relu2_1",
             "--style_layers=relu1_1,relu2_1", f"--output={out}",
             *(["--deterministic"] if gpu else []))
  assert proc.returncode == 0, proc.stderr
  first = json.loads(out.with_suffix(".json").read_text())["params"]
  assert first["deterministic"] is gpu   # recorded, so re-runs inherit it
  proc = run(f"--from_json={out.with_suffix('.json')}", "--quiet")
  assert proc.returncode == 0, proc.stderr
  again = tmp_path / "first_rerun.png"
  np.testing.assert_array_equal(io.load_image(again), io.load_image(out))
  if gpu:   # without --deterministic: the documented tolerance
    loose = tmp_path / "loose.png"
    proc = run(f"--from_json={out.with_suffix('.json')}", "--nodeterministic",
               f"--output={loose}", "--quiet")
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(io.load_image(loose), io.load_image(out),
                               rtol=0, atol=1 / 255 + 1e-6)
  # From the PNG's text chunk, to a chosen output; a flag given wins.
  proc = run(f"--from_png={out}", f"--output={tmp_path / 'third.png'}",
             "--quiet")
  assert proc.returncode == 0, proc.stderr
  np.testing.assert_array_equal(io.load_image(tmp_path / "third.png"),
                                io.load_image(out))
  third = json.loads((tmp_path / "third.json").read_text())["params"]
  differ = {k for k in first if first[k] != third.get(k)}
  assert differ == {"output", "from_json", "quiet"}
  # A changed input is reported (the re-run cannot match).
  changed = tmp_path / "style_copy.png"
  changed.write_bytes(STYLE.read_bytes())
  record = json.loads(out.with_suffix(".json").read_text())
  record["params"]["style"] = [str(changed)]
  record["inputs"][str(changed)] = "0" * 64
  io.save_json(tmp_path / "edited.json", record)
  proc = run(f"--from_json={tmp_path / 'edited.json'}", "--iterations=0",
             f"--output={tmp_path / 'fifth.png'}")
  assert proc.returncode == 0, proc.stderr
  assert "style_copy.png has changed since the recorded run" in proc.stderr
  proc = run(f"--from_json={out.with_suffix('.json')}", "--seed=8",
             f"--output={tmp_path / 'fourth.png'}", "--quiet")
  assert proc.returncode == 0, proc.stderr
  assert np.abs(io.load_image(tmp_path / "fourth.png") -
                io.load_image(out)).mean() > 0.01


@pytest.mark.parametrize("args, fragments", [
    (["--content=/nonexistent.jpg"], ["/nonexistent.jpg"]),
    (["--style_layers=relu9_9"], ["relu9_9"]),
    (["--style_blend_weights=1,2"], ["blend"]),
    (["--style_layer_weights=1,x"], ["style_layer_weights"]),
    (["--output=out.jpg"], [".png"]),
    (["--size=8"], ["too small", "--size"]),
    (["--size=16000", "--iterations=1"], ["GiB", "--size"]),
    (["--weights=/nonexistent.npz"], ["/nonexistent.npz"]),
    (["--from_json=/nonexistent.json"], ["/nonexistent.json"]),
    (["--style_scale=0.05", "--size=64"], ["too small", "--style_scale"]),
    (["--color_transfer=lab"], ["color_transfer"]),
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
  assert_one_line_error(proc, "nst-fetch-weights --network=vgg16")


# --- --deterministic ------------------------------------------------------------


@pytest.fixture
def deterministic_flag(monkeypatch):
  """A private FlagValues with the shared ``--deterministic`` flag, standing
  in for absl's global FLAGS, and ``XLA_FLAGS`` restored afterwards."""
  values = flags.FlagValues()
  flags.DEFINE_bool("deterministic", False, "", flag_values=values)
  monkeypatch.setattr(cli.flags, "FLAGS", values)
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  return values


def test_deterministic_is_a_shared_compute_flag():
  assert cli._group_of("deterministic") == "compute"  # pylint: disable=protected-access
  assert cli.DETERMINISTIC_XLA_FLAG == "--xla_gpu_deterministic_ops=true"


def test_deterministic_appends_the_xla_flag(deterministic_flag, monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/dump")
  assert cli.apply_deterministic() is False      # off: nothing changes
  assert os.environ["XLA_FLAGS"] == "--xla_dump_to=/tmp/dump"
  deterministic_flag(["prog", "--deterministic"])
  assert cli.apply_deterministic() is True
  assert os.environ["XLA_FLAGS"] == (
      "--xla_dump_to=/tmp/dump --xla_gpu_deterministic_ops=true")
  assert cli.apply_deterministic() is True       # once only
  assert os.environ["XLA_FLAGS"].count("xla_gpu_deterministic_ops") == 1


def test_deterministic_sets_xla_flags_when_unset(deterministic_flag):
  assert "XLA_FLAGS" not in os.environ
  assert cli.apply_deterministic(True) is True
  assert os.environ["XLA_FLAGS"] == "--xla_gpu_deterministic_ops=true"


def test_deterministic_is_applied_before_main(deterministic_flag):
  deterministic_flag(["prog", "--deterministic"])
  seen = []
  cli.run_main(lambda argv: seen.append(os.environ.get("XLA_FLAGS")))(["prog"])
  assert seen == ["--xla_gpu_deterministic_ops=true"]


def test_deterministic_after_the_backend_started_warns_on_a_gpu(
    deterministic_flag, monkeypatch, caplog):
  del deterministic_flag
  monkeypatch.setattr(cli._runtime, "_backends_initialized", lambda: True)
  monkeypatch.setattr(cli.jax, "default_backend", lambda: "cpu")
  cli.apply_deterministic(True)          # the CPU: the flag changes nothing
  assert not caplog.records
  monkeypatch.delenv("XLA_FLAGS")
  monkeypatch.setattr(cli.jax, "default_backend", lambda: "gpu")
  cli.apply_deterministic(True)
  assert "not deterministic" in caplog.text and "XLA_FLAGS" in caplog.text


def test_deterministic_xla_flag_is_one_xla_knows():
  # XLA aborts a process whose XLA_FLAGS name a flag it does not know, on any
  # backend: a misspelt flag would fail here, on the CPU.
  code = ("from nst_jax import cli; cli.apply_deterministic(True); "
          "import jax.numpy as jnp; print(float(jnp.ones(3).sum()))")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                        capture_output=True, text=True, env=env, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == "3.0"


# absl's log line prefix: severity, date, time, thread, file:line.
ABSL_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\]")


def test_messages_are_plain_lines_not_absl_log_lines(tmp_path, vgg16_params):
  """A masked run says what its masks do (an info line and a warning) as
  plain lines, as the rest of the command speaks, not in absl's format."""
  del vgg16_params
  mask = np.zeros((40, 60, 3), np.uint8)   # the content's aspect
  mask[:, :28], mask[:, 28:48], mask[:, 48:] = (0, 0, 255), (255, 0, 0), (
      0, 255, 0)   # green: a region no style image has
  Image.fromarray(mask).save(tmp_path / "mask.png")
  out = tmp_path / "m.png"
  proc = run(f"--content={CONTENT}", f"--style={STYLE},{STYLE}",
             f"--content_mask={tmp_path / 'mask.png'}",
             "--style_colors=#ff0000,#0000ff", "--size=32", "--iterations=2",
             "--content_layers=relu1_1", "--style_layers=relu1_1",
             "--pyramid_base=0", f"--output={out}")
  assert proc.returncode == 0, proc.stderr
  lines = proc.stderr.splitlines() + proc.stdout.splitlines()
  assert not [l for l in lines if ABSL_LINE.match(l)], proc.stderr
  assert "mask regions: #0000ff, #ff0000" in lines, proc.stderr
  assert any(l.startswith("warning: content region #00ff00") for l in lines), (
      proc.stderr)
