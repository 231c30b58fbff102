"""scripts/gpu_report.py: the plan that keeps its time budget, the parsers
of each part's output, the note written from any set of figures, the
defaults' rules, and the dry run itself (CPU, tiny sizes, a short budget)
writing a complete note and a JSON file of every figure."""

import importlib.util
import json
import pathlib

import pytest

import scripting
from conftest import require_file

ROOT = scripting.ROOT


@pytest.fixture(scope="module")
def gr():
  spec = importlib.util.spec_from_file_location(
      "gpu_report", ROOT / "scripts" / "gpu_report.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)   # no flags defined: define_flags() is main's
  return module


# --- the plan -------------------------------------------------------------------


def test_plan_keeps_everything_that_fits(gr):
  total = sum(p.gpu_seconds for p in gr.PARTS)
  kept, dropped = gr.plan(gr.PARTS, total, False)
  assert kept == list(gr.PARTS) and not dropped


def test_plan_drops_the_longest_optional_parts_first(gr):
  kept, dropped = gr.plan(gr.PARTS, gr.DEFAULT_BUDGET, False)
  assert sum(p.gpu_seconds for p in kept) <= gr.DEFAULT_BUDGET
  assert all(p in kept for p in gr.PARTS if p.essential)
  # Dropped in order of expected time, longest first, each said why.
  times = [p.gpu_seconds for p, _ in dropped]
  assert times == sorted(times, reverse=True)
  assert all("over the budget" in why for _, why in dropped)
  # Nothing dropped was shorter than something kept that could go.
  optional = [p.gpu_seconds for p in kept if not p.essential]
  assert not optional or min(times) >= max(optional)
  assert [p.name for p in kept] == [p.name for p in gr.PARTS if p in kept]


def test_plan_never_drops_essential_parts_and_honours_only(gr):
  kept, dropped = gr.plan(gr.PARTS, 1, True)
  assert [p.name for p in kept] == [p.name for p in gr.PARTS if p.essential]
  kept, dropped = gr.plan(gr.PARTS, 1e6, True, only=["grid"])
  assert [p.name for p in kept] == ["install", "grid"]   # install always
  assert {why for _, why in dropped} == {"not in --parts"}


# --- parsing the parts' outputs ---------------------------------------------------


def test_pytest_counts(gr):
  assert gr.pytest_counts("3 failed, 290 passed, 5 skipped in 81.2s") == {
      "failed": 3, "passed": 290, "skipped": 5}
  assert gr.pytest_counts("298 tests collected in 2.14s") == {
      "collected": 298}
  assert gr.pytest_counts("1 passed, 2 errors in 1s") == {"passed": 1,
                                                          "errors": 2}


GRID_OUT = """16 cells, 256x192, 100 iterations, optax_lbfgs, init noise, gpu
batched     warm     4.20 s  (0.263 s/cell)  first run    9.10 s (compile ~4.9 s)
sequential  warm    21.00 s  (1.312 s/cell)  first run   30.00 s (compile ~9.0 s)
batched/sequential (warm): 0.20x
"""


def test_grid_figures(gr):
  assert gr.grid_figures(GRID_OUT) == {
      "batched_seconds": 4.2, "sequential_seconds": 21.0, "timed": "warm",
      "ratio": 0.2}
  first = ("batched     first run    18.20 s, compilation included (4.5 s/"
           "cell)\nsequential  first run    20.89 s, compilation included\n"
           "batched/sequential (first run): 0.87x\n")
  assert gr.grid_figures(first)["ratio"] == 0.87
  assert gr.grid_figures("nothing") == {}


def _compare_size(size, iterations, torch=True):
  runs = {"optax_lbfgs": {"seconds": 2.0, "iterations": iterations,
                          "final_loss": 100.0, "compile_s": 3.0}}
  rows = {"peak MiB (device allocator)": {"optax_lbfgs": 512.0}}
  if torch:
    runs["torch"] = {"seconds": 4.0, "iterations": iterations,
                     "final_loss": 101.0}
  return {"size": size, "shape": [size * 3 // 4, size],
          "iterations_requested": iterations, "runs": runs, "rows": rows}


def test_compare_row_seconds_ratios_and_extrapolation(gr):
  row = gr.compare_row(_compare_size(512, 100))
  jax_side = row["sides"]["optax_lbfgs"]
  assert jax_side["s_per_iteration"] == pytest.approx(0.02)
  assert jax_side["s_to_500"] == pytest.approx(10.0)
  assert jax_side["extrapolated"] is True
  assert jax_side["ratio_to_torch"] == pytest.approx(0.5)
  assert jax_side["peak_mib"] == 512.0
  full = gr.compare_row(_compare_size(512, 500, torch=False))
  assert full["sides"]["optax_lbfgs"]["s_to_500"] == 2.0
  assert full["sides"]["optax_lbfgs"]["extrapolated"] is False
  assert "ratio_to_torch" not in full["sides"]["optax_lbfgs"]


def test_memory_part_keeps_each_run_as_it_ends(gr, monkeypatch, tmp_path):
  """One child per run; each run's figures reach the report before the next
  starts (``Context.on_partial``), a failed run is kept with its reason and
  the largest size that ran is named."""
  def fake_child(argv, timeout, env=None):
    size = int(next(a for a in argv if a.startswith("--size="))[7:])
    row = {"size": size, "estimate_bytes": 1, "predicted_bytes": 2}
    if size > 2048:
      return gr.Outcome(1, json.dumps(row) + "\nerror: out of memory", 1.0)
    return gr.Outcome(0, json.dumps(row) + "\n" + json.dumps(
        {**row, "peak_bytes": 3}), 1.0)
  monkeypatch.setattr(gr, "run_child", fake_child)
  seen = []
  ctx = gr.Context(False, gr.GPU_SIZES, "c.png", "s.png", str(tmp_path), {},
                   gr.time.perf_counter() + 1e6,
                   on_partial=lambda f: seen.append(len(f["runs"])))
  out = gr.part_memory(ctx)
  assert seen == list(range(1, len(out["runs"]) + 1))
  assert out["largest_ok"] == 2048 and out["budget"] == "8GB"
  bad = [r for r in out["runs"] if r["size"] > 2048]
  assert bad and all(r["status"] == "failed: error: out of memory"
                     for r in bad)
  assert all(r["status"] == "ok" for r in out["runs"] if r["size"] <= 2048)
  # Untiled where it can fit, then under the budget with history 10 and 5.
  assert {(r["size"], r["memory_budget"]) for r in out["runs"]} >= {
      (1024, None), (4096, None), (4096, "8GB"), (16384, None)}


# --- the note -------------------------------------------------------------------


def _every_figure(gr):
  compare = lambda p: {"precision": p, "torch": "2.13.0", "sizes": [
      gr.compare_row(_compare_size(s, 500)) for s in (256, 512, 1024)]}
  figs = {
      "install": {"platform": "gpu", "device_kind": "NVIDIA H100 80GB HBM3",
                  "devices": ["cuda:0"], "jax": "0.10.2", "jaxlib": "0.10.2",
                  "plugins": {"jax-cuda12-plugin": "0.10.2"},
                  "driver": "580.1", "gpu_memory": "81559 MiB",
                  "torch": "2.13.0", "torch_cuda": True},
      "tests": {"files": ["tests/test_vgg.py"], "collect_only": False,
                "rc": 0, "passed": 290, "tail": "290 passed"},
      "conv": {"sizes": [{"size": 1024, "direct_ms": 10.0,
                          "winograd_ms": 8.0, "best_ms": 7.0,
                          "ratio": 0.8}]},
      "memory": {"runs": [{"size": 4096, "tile_size_flag": "auto",
                           "memory_budget": "8GB", "history_size": 5,
                           "tiling": "auto: tiled", "status": "ok",
                           "estimate_bytes": 6 * 2**30,
                           "predicted_bytes": 7 * 2**30,
                           "peak_bytes": 7.5 * 2**30,
                           "estimate_error": -0.07, "seconds": 12.0}],
                 "largest_ok": 16384, "budget": "8GB"},
      "grid": {"cells": 16, "size": 256, "iterations": 100,
               **gr.grid_figures(GRID_OUT)},
      "quality": {"size": 512, "iterations": 500, "torch_final_swd": 0.2,
                  "runs": {"optax_lbfgs": {"seconds": 3.0, "final_swd": 0.19,
                                           "final_lpips": 0.4,
                                           "seconds_to_torch_swd": 2.5}}},
      "tiling": {"size": 1024, "tile_size": "768", "untiled_seconds": 0.1,
                 "tiled_reuse_seconds": 0.13, "tiled_reuse_ratio": 1.3,
                 "tiled_rerun_ratio": 1.8},
  }
  for p in gr.PRECISIONS:
    figs[f"compare_{p}"] = compare(p)
  # bf16 ran 100 iterations: its seconds to 500 are extrapolated (marked).
  figs["compare_bf16"]["sizes"] = [gr.compare_row(_compare_size(1024, 100))]
  return figs


def _report(gr, figures, dry_run=False, parts=None):
  return {"dry_run": dry_run, "budget": 480.0, "date": "2026-12-07 10:00 UTC",
          "command": "python scripts/gpu_report.py", "elapsed": 400.0,
          "parts": parts or {p.name: {"status": "ok", "seconds": 10.0}
                             for p in gr.PARTS},
          "figures": figures}


def test_markdown_has_every_section_with_its_figures(gr):
  text = gr.markdown(_report(gr, _every_figure(gr)))
  assert text.startswith("# GPU report\n") and "DRY RUN" not in text
  for p in gr.PARTS:
    assert f"## {p.title}" in text
  assert "No figures" not in text
  for fragment in ("NVIDIA H100 80GB HBM3", "580.1", "jax-cuda12-plugin",
                   "| 1024 (1024x768) | optax_lbfgs | 0.0040 | 2.0 |",
                   "| 1024 (1024x768) | optax_lbfgs | 0.0200 | 10.0* |",
                   "| 4096 | auto | 8GB | 5 | auto: tiled | 6.00 | 7.00 | "
                   "7.50 | -7.0 % | 12.0 |", "Largest size that ran: 16384",
                   "batched/sequential 0.20x", "290 passed",
                   "## Defaults these figures would change",
                   "## The real run"):
    assert fragment in text, fragment


def test_markdown_calibration_section(gr):
  report = _report(gr, {})
  report["cpu_calibration"] = [{
      "shape": [3072, 4096], "tile_size": 512, "history_size": 5,
      "estimate_bytes": 5.5 * 2**30, "predicted_bytes": 7.0 * 2**30,
      "peak_bytes": 7.25 * 2**30, "note": "memory_run", "error": -0.0345}]
  text = gr.markdown(report)
  assert ("| 4096×3072 | 512 | 5 | 5.50 | 7.00 | 7.25 | -3.5 % | memory_run |"
          in text)


def test_markdown_says_why_a_part_has_no_figures(gr):
  parts = {"install": {"status": "ok", "seconds": 2.0},
           "memory": {"status": "cut at the budget", "seconds": 9.0,
                      "tail": "last words"},
           "grid": {"status": "skipped: over the budget (expected 60 s)"}}
  text = gr.markdown(_report(gr, {"install": {"platform": "cpu"}},
                             dry_run=True, parts=parts))
  assert text.startswith("# GPU report — CPU DRY RUN, NOT GPU FIGURES")
  assert "No figures: cut at the budget." in text and "last words" in text
  assert "No figures: skipped: over the budget (expected 60 s)." in text
  assert "No figures: not run." in text   # e.g. tests: no status at all
  assert "none: the parts that decide them did not run" in text


def test_expected_run_names_what_the_default_budget_drops(gr):
  line = " ".join(gr.expected_run_lines())
  _, dropped = gr.plan(gr.PARTS, gr.DEFAULT_BUDGET, False)
  assert dropped
  for p, _ in dropped:
    assert f"{p.name} ({p.gpu_seconds:.0f} s)" in line


def test_default_changes_rules(gr):
  figs = _every_figure(gr)
  lines = gr.default_changes(figs)
  # Winograd 0.8x direct on a GPU, where auto picks direct.
  assert "change auto to winograd" in lines[0]
  # TF32 as fast as float32 here: keep float32.
  assert all("keep float32" in l for l in lines if "--precision" in l)
  # 500 iterations at 1024 px take 2 s: a minute allows 1024 px.
  assert "(1024, 500)" in lines[-1]
  fast = gr.compare_row(_compare_size(1024, 500))
  fast["sides"]["optax_lbfgs"]["s_to_500"] = 1.0
  figs["compare_tf32"] = {"precision": "tf32", "sizes": [fast]}
  lines = gr.default_changes(figs)
  assert any("make tf32 the GPU default" in l for l in lines)
  figs["install"]["platform"] = "cpu"
  lines = gr.default_changes(figs)
  assert any("not decided by a CPU run" in l for l in lines)
  assert all(l.startswith("(CPU, not a decision) ") for l in lines)


# --- the dry run ------------------------------------------------------------------

BUDGET = 35   # seconds: the essential parts at tiny sizes on a loaded CPU


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
  from nst_jax import weights  # pylint: disable=g-import-not-at-top
  require_file(weights.weights_path("vgg16"))   # the parts load them
  out = tmp_path_factory.mktemp("gpu_report")
  proc = scripting.run("gpu_report.py", "--dry_run", f"--budget={BUDGET}",
                       f"--json={out / 'gpu.json'}",
                       f"--markdown={out / 'gpu.md'}",
                       f"--work_dir={out / 'parts'}", timeout=BUDGET + 60)
  return proc, out


def test_dry_run_writes_a_complete_note_and_every_figure(gr, dry_run):
  proc, out = dry_run
  scripting.assert_ok(proc)
  report = json.loads((out / "gpu.json").read_text())
  text = (out / "gpu.md").read_text()
  assert report["dry_run"] is True and report["budget"] == BUDGET
  assert report["elapsed"] <= BUDGET + 5
  assert set(report["parts"]) == {p.name for p in gr.PARTS}
  assert report["parts"]["install"]["status"] == "ok"
  assert report["figures"]["install"]["platform"] == "cpu"
  for name, state in report["parts"].items():
    # Each part ran, was cut at the budget or skipped, and says so; none
    # failed (a failure is a part that rotted).
    assert state["status"] == "ok" or state["status"].startswith(
        ("skipped", "cut at the budget")), (name, state)
  assert report["default_changes"]
  assert text.startswith("# GPU report — CPU DRY RUN, NOT GPU FIGURES")
  for p in gr.PARTS:
    assert f"## {p.title}" in text
  assert "[gpu_report] skipping" in proc.stdout   # the dropped parts named
  # The calibration the memory estimate rests on, each row within 10 %.
  assert "## Memory calibration on the CPU" in text
  assert len(report["cpu_calibration"]) >= 3
  assert all(abs(r["error"]) <= 0.10 for r in report["cpu_calibration"]
             if r["fitted"])
