"""scripts/sizes_figure.py end to end at 32 and 64 px, scored at 96 px
(larger than every result): both scorings (straight and through the larger
of the largest size and --score_size) and each result's own size land in
sizes.json, and the figure is written."""

import json

import pytest

from scripting import assert_ok, run
from conftest import ROOT, require_file
from nst_jax import weights


@pytest.mark.slow
def test_sizes_figure_scores_results_smaller_than_the_score_size(tmp_path):
  for network in ("vgg16", "alexnet"):
    require_file(weights.weights_path(network))
    require_file(weights.lpips_heads_path(network))
  out = tmp_path / "sizes"
  proc = run("sizes_figure.py", f"--content={ROOT / 'examples/chelsea.png'}",
             f"--style={ROOT / 'examples/style_brushwork.png'}",
             "--sizes=32,64", "--pyramid_base=32", "--iterations=2",
             "--score_size=96", f"--output_dir={out}",
             f"--figure={tmp_path / 'sizes.png'}", timeout=300)
  assert_ok(proc)
  record = json.loads((out / "sizes.json").read_text())
  assert [r["size"] for r in record["runs"]] == [32, 64]
  for row in record["runs"]:
    assert set(row["scored_at"]) == {"96", "96_via_96", "own"}, row
    assert row["scored_at"]["96_via_96"]["swd"] > 0
  assert (tmp_path / "sizes.png").stat().st_size > 0
