"""``nst-evaluate --via`` below ``--size`` is refused before anything is read
(here before it would find the result missing), in one line."""

from scripting import assert_one_line_error, run
from conftest import ROOT


def test_via_below_the_size_is_refused_first(tmp_path):
  proc = run("evaluate.py", f"--content={ROOT / 'examples/chelsea.png'}",
             f"--style={ROOT / 'examples/style_brushwork.png'}",
             f"--results={tmp_path / 'missing.png'}", "--size=128",
             "--via=100", timeout=120)
  assert_one_line_error(proc, "--via must be at least the scoring size 128, "
                        "got 100")
