"""scripts/benchmark.py refuses a bad ``--quality_runs`` in one line before
it loads anything (here before it would find the content missing)."""

from scripting import assert_one_line_error, run


def test_unknown_quality_run_is_refused_first(tmp_path):
  proc = run("benchmark.py", "--notorch", "--mode=quality",
             "--quality_runs=pyramid,bogus",
             f"--content={tmp_path / 'missing.jpg'}", timeout=120)
  assert_one_line_error(proc, "--quality_runs: unknown ['bogus']",
                        "optax_lbfgs, adam, pyramid")
