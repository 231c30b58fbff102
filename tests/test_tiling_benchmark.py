"""scripts/tiling_benchmark.py --mode=overhead end to end at 48 px: the tile
size is resolved as nst-stylize resolves it (``transfer.tile_size_for``), a
tile size that leaves the image untiled is a one-line error, and the three
programs (untiled, tiled rerunning pass 2, tiled reusing the last window's
activations: ``tiling.Plan.reuse_last``) all run — in one 48 px window, to
stay cheap (tests/test_tiling_reuse.py checks the field reaches pass 2 with
several windows)."""

import json

import pytest

import scripting
from conftest import require_file
from nst_jax import weights


@pytest.mark.slow
def test_overhead_needs_tiles_and_runs_the_three_programs(tmp_path):
  require_file(weights.weights_path("vgg16"))
  common = ["--mode=overhead", "--size=48", "--repeats=1"]
  proc = scripting.run("tiling_benchmark.py", *common, timeout=300)
  scripting.assert_one_line_error(
      proc, "--mode=overhead compares untiled with tiled", "--tile_size=auto",
      "pass a tile size in pixels")
  out = tmp_path / "overhead.jsonl"
  proc = scripting.run("tiling_benchmark.py", *common, "--tile_size=48",
                       f"--json={out}", timeout=300)
  scripting.assert_ok(proc)
  row = json.loads(out.read_text())
  for name in ("untiled", "tiled_rerun", "tiled_reuse"):
    assert row[f"{name}_seconds"] > 0, row
  assert row["tiled_rerun_ratio"] > 0 and row["tiled_reuse_ratio"] > 0
