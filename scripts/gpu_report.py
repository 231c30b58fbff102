"""Every GPU figure in one prepared run (issue 25), and its CPU dry run.

  python scripts/gpu_report.py                  # on the GPU: 8 minutes
  python scripts/gpu_report.py --budget=300     # what fits in 5 minutes
  python scripts/gpu_report.py --dry_run --json=/tmp/r/gpu.json \\
      --markdown=/tmp/r/gpu.md                  # CPU, tiny sizes, 1 minute

One command: each part runs the project's own benchmark scripts in a child
process (``scripts/benchmark.py``, ``benchmark_grid.py``,
``tiling_benchmark.py``, pytest), so that a crash, an out-of-memory or a
timeout of one part loses none of the others' figures. The parts, in order:

* ``install``: ``jax.devices()``, the JAX, jaxlib and CUDA plugin versions,
  the driver (``nvidia-smi``), torch and whether it sees CUDA;
* ``tests``: the GPU-relevant tests (``GPU_TESTS``: the ``tol(cpu, gpu)``
  tests, golden activations, the torch objective fixture, Winograd, the
  ``--deterministic`` re-run); the dry run only collects them;
* ``compare_<precision>``: seconds per L-BFGS iteration and to 500
  iterations at 256, 512 and 1024 px against the PyTorch reference loop
  (``benchmark.py --mode=compare``), in float32, TF32 and bf16;
* ``conv``: each convolution direct (cuDNN) against Winograd
  (``benchmark.py --mode=layers``): what ``--conv=auto`` should pick;
* ``memory``: per size the memory estimate, the predicted peak
  (``memory.predicted_peak_bytes``) and the measured peak (device allocator
  on a GPU, process RSS on the CPU) of a short run, untiled and tiled
  (``--tile_size=auto`` under ``--memory_budget``), one process per run,
  up to the largest size that runs;
* ``grid``: 16 cells batched against sequential (``benchmark_grid.py``);
* ``quality``: seconds to the PyTorch loop's look at 512 px
  (``benchmark.py --mode=quality``);
* ``tiling``: tiled against untiled seconds per evaluation at 1024 px
  (``tiling_benchmark.py --mode=overhead``).

The time budget (``--budget``, seconds) is kept by planning: parts expected
to take longer than what is left are dropped, the longest first (never the
essential ``install``, ``compare_float32`` and ``memory``), and each part runs
under the time that remains, killed at the end of it. Every dropped or cut
part is named in the output. The JSON (``--json``) is rewritten after every
part, and the markdown note (``--markdown``) with it, so a run that is killed
keeps what it measured.

On a lent device machine (no network there): carry ``weights/vgg16.npz``,
``weights/lpips_vgg16.npz`` and ``weights/MANIFEST.json`` (56 MiB, under the
64 MiB a run may carry; ``weights/`` whole is 66 MiB) and run it with the
device's Python and JAX; ``install`` says what it found, and a missing torch
leaves the PyTorch columns empty (``pip`` is tried once, briefly). Expected
on the GPU: about 16 minutes for every part (the ``Part`` guesses below);
the default 8-minute budget drops the GPU-relevant tests, TF32, bf16, the
quality curves and the grid, longest first; ``--parts=`` runs those in a
second session.

``--dry_run`` runs the same parts on the CPU at tiny sizes (the figures are
not GPU figures and the note says so in its first line), so that CI runs
this script and it cannot rot before a GPU appears.
"""

import dataclasses
import datetime
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, NamedTuple, Sequence

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")

def define_flags() -> None:
  """The command's flags, defined when it runs (a test imports the module's
  functions without them)."""
  flags.DEFINE_bool("dry_run", False, "CPU, tiny sizes, a one-minute budget: "
                    "every part's command runs, none of its figures is a GPU "
                    "figure.")
  flags.DEFINE_float("budget", None, "Seconds for the whole report (default: "
                     "480, 60 with --dry_run); parts that do not fit are "
                     "skipped, the longest first, and named.", lower_bound=1)
  flags.DEFINE_string("json", os.path.join(ROOT, "docs", "gpu.json"),
                      "Every figure, rewritten after each part.")
  flags.DEFINE_string("markdown", os.path.join(ROOT, "docs", "gpu.md"),
                      "The note: the device, its figures, what was skipped.")
  flags.DEFINE_string("work_dir", os.path.join(ROOT, "out", "gpu_report"),
                      "Each part's own output files.")
  flags.DEFINE_list("parts", None, "Run only these parts (default: all).")
  flags.DEFINE_bool("render", False, "Run nothing: write --markdown again "
                    "from --json (a killed run's figures, or the note after "
                    "the memory calibration changed).")
  flags.DEFINE_string("memory_budget", None, "--memory_budget of the memory "
                      "part's tiled runs (default: the issue's target, 8GB); "
                      "with --child, that run's.")
  flags.DEFINE_bool("install_torch", True, "On a GPU without torch, try `pip "
                    "install torch` first (the PyTorch side is skipped if it "
                    "fails).")
  # A child of the memory part: one run, its peaks as one JSON line.
  flags.DEFINE_enum("child", None, ["memory_run"], "Internal: run one part's "
                    "measurement in this process.")
  flags.DEFINE_integer("size", 1024, "memory_run: long edge.")
  flags.DEFINE_string("tile_size", "auto", "memory_run: --tile_size.")
  flags.DEFINE_integer("iterations", 1, "memory_run: L-BFGS iterations.")
  flags.DEFINE_integer("history_size", 10, "memory_run: L-BFGS memory.")
  flags.DEFINE_string("content", None, "Content image (default: "
                      "../shared/images/tubingen.jpg, else examples/chelsea.png).")
  flags.DEFINE_string("style", None, "Style image (default: "
                      "../shared/images/starry_night.jpg, else "
                      "examples/style_brushwork.png).")


FLAGS = flags.FLAGS

DEFAULT_BUDGET = 480.0
DRY_BUDGET = 60.0
# Seconds kept back at the end for writing the files.
RESERVE = 2.0

# The tests that read the backend: the tol(cpu, gpu) tests, golden
# activations, the torch objective fixture, Winograd and the deterministic
# re-run (tests/conftest.py:tol).
GPU_TESTS = ("tests/test_vgg.py", "tests/test_torch_objective.py",
             "tests/test_winograd.py", "tests/test_objective.py",
             "tests/test_solvers.py", "tests/test_performance.py",
             "tests/test_transfer.py", "tests/test_batch.py",
             "tests/test_grid.py", "tests/test_masks.py",
             "tests/test_metrics.py",
             "tests/test_cli.py::test_rerun_from_json_or_png_gives_the_"
             "identical_image")
PRECISIONS = ("float32", "tf32", "bf16")


# --- what runs: the plan --------------------------------------------------------


class Sizes(NamedTuple):
  """The sizes and lengths of one kind of run (GPU or dry run)."""
  compare: tuple       # long edges of benchmark.py --mode=compare
  iterations: int      # its L-BFGS iterations
  conv: tuple          # long edges of --mode=layers
  memory: tuple        # long edges of the memory part
  memory_iterations: int
  largest: tuple       # sizes tried beyond, tiled, until one fails
  grid_size: int
  grid_iterations: int
  grid_cells: int
  quality_size: int
  quality_iterations: int
  tiling_size: int
  tiling_tile: int


GPU_SIZES = Sizes(compare=(256, 512, 1024), iterations=500,
                  conv=(512, 1024), memory=(1024, 2048, 4096, 8192),
                  memory_iterations=1, largest=(11584, 16384),
                  grid_size=256, grid_iterations=100, grid_cells=16,
                  quality_size=512, quality_iterations=500,
                  tiling_size=1024, tiling_tile=768)
DRY_SIZES = Sizes(compare=(48,), iterations=3, conv=(32,), memory=(64,),
                  memory_iterations=1, largest=(), grid_size=32,
                  grid_iterations=2, grid_cells=4, quality_size=48,
                  quality_iterations=2, tiling_size=64, tiling_tile=32)


class Part(NamedTuple):
  """One part of the report: ``expected`` seconds on the GPU (a guess until
  a report measured it) and in the dry run; ``essential`` parts are never
  dropped by planning (they can still be cut by the budget)."""
  name: str
  title: str
  gpu_seconds: float
  dry_seconds: float
  essential: bool = False

  def expected(self, dry_run: bool) -> float:
    return self.dry_seconds if dry_run else self.gpu_seconds


# Expected seconds: on the GPU guessed (no GPU run yet; 500 iterations at
# 1024 px should take seconds on an H100), in the dry run measured on the
# 2-core CPU VM (2026-12-07, another heavy run beside it: about half that
# idle).
PARTS = (
    Part("install", "Install", 15, 3, essential=True),
    Part("compare_float32", "Speed against PyTorch, float32", 120, 20,
         essential=True),
    Part("memory", "Memory: estimate against measured peak", 240, 25,
         essential=True),
    Part("conv", "Winograd against direct (cuDNN)", 45, 25),
    Part("compare_tf32", "Speed against PyTorch, TF32", 90, 15),
    Part("compare_bf16", "Speed against PyTorch, bf16", 90, 15),
    Part("grid", "Grid: batched against sequential", 60, 25),
    Part("quality", "Seconds to the PyTorch loop's look", 90, 30),
    Part("tiling", "Tiling overhead", 40, 30),
    Part("tests", "GPU-relevant tests", 180, 6),
)


def plan(parts: Sequence[Part], budget: float, dry_run: bool,
         only: Sequence[str] | None = None):
  """``(kept, dropped)``: the parts to run in their order and those dropped
  ``[(part, reason)]``. Parts outside ``only`` are dropped as not asked
  for (but ``install``, which every part reads: the device, torch); then, while the kept parts' expected seconds exceed ``budget``, the
  non-essential part expected to take longest is dropped (longest first:
  fewest parts lost for the time)."""
  kept, dropped = [], []
  for p in parts:
    if only is not None and p.name not in only and p.name != "install":
      dropped.append((p, "not in --parts"))
    else:
      kept.append(p)
  while sum(p.expected(dry_run) for p in kept) > budget:
    optional = [p for p in kept if not p.essential]
    if not optional:
      break
    longest = max(optional, key=lambda p: p.expected(dry_run))
    kept.remove(longest)
    dropped.append((longest, f"over the budget (expected "
                    f"{longest.expected(dry_run):.0f} s)"))
  return kept, dropped


# --- running a child -----------------------------------------------------------


class Outcome(NamedTuple):
  """A child's exit status (None: killed at its time limit), its output
  and its seconds."""
  rc: int | None
  output: str
  seconds: float


def run_child(argv: Sequence[str], timeout: float, env=None) -> Outcome:
  """Runs ``argv`` in its own process group from the repository root, for at
  most ``timeout`` seconds (then the group is killed: rc None)."""
  start = time.perf_counter()
  proc = subprocess.Popen(list(argv), cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          start_new_session=True, env=env)
  try:
    out, _ = proc.communicate(timeout=max(timeout, 1.0))
    rc = proc.returncode
  except subprocess.TimeoutExpired:
    os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate()
    rc = None
  except BaseException:   # Ctrl-C, SIGTERM: the part dies with the report
    os.killpg(proc.pid, signal.SIGKILL)   # (its own group hears neither)
    proc.wait()
    raise
  return Outcome(rc, out or "", time.perf_counter() - start)


def child_env(dry_run: bool) -> Dict[str, str]:
  """The children's environment: JAX allocates what it uses (peaks are
  real, PyTorch shares the GPU); the tests keep XLA's optimisations
  (``tests/conftest.py`` turns them off otherwise); the dry run stays on
  the CPU."""
  env = dict(os.environ)
  env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
  env["PYTHONUNBUFFERED"] = "1"
  env["NST_JAX_TEST_XLA_DEFAULTS"] = "1"   # its tests: XLA's own defaults
  if dry_run:
    env["JAX_PLATFORMS"] = "cpu"
  return env


def tail(text: str, lines: int = 15) -> str:
  return "\n".join(text.strip().splitlines()[-lines:])


def read_json(path: str):
  """The JSON at ``path``, None when absent or unreadable."""
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def json_lines(text: str) -> List[dict]:
  """The JSON objects printed one per line in ``text``."""
  rows = []
  for line in text.splitlines():
    line = line.strip()
    if line.startswith("{") and line.endswith("}"):
      try:
        rows.append(json.loads(line))
      except ValueError:
        pass
  return rows


# --- the parts -------------------------------------------------------------------


@dataclasses.dataclass
class Context:
  """What every part reads: the mode, the sizes, the images, the place of
  the parts' files, the children's environment and a clock."""
  dry_run: bool
  sizes: Sizes
  content: str
  style: str
  work_dir: str
  env: Dict[str, str]
  deadline: float
  memory_budget: str = "8GB"
  install_torch: bool = True
  torch: bool = False
  # A part with several children hands its figures so far to this after
  # each (the report writes them: a killed run keeps them).
  on_partial: Callable[[dict], None] = lambda figures: None

  def left(self) -> float:
    return self.deadline - time.perf_counter() - RESERVE

  def python(self, script: str, *args: str) -> List[str]:
    return [sys.executable, os.path.join(SCRIPTS, script), *args]


def part_install(ctx: Context) -> dict:
  """Devices, versions, driver, torch: one child printing one JSON line."""
  code = (
      "import json, importlib.metadata as m\n"
      "import jax\n"
      "d = jax.devices()\n"
      "def v(n):\n"
      "  try:\n"
      "    return m.version(n)\n"
      "  except m.PackageNotFoundError:\n"
      "    return None\n"
      "plugins = {n: v(n) for n in ('jax-cuda12-plugin', 'jax-cuda12-pjrt',"
      " 'jax-cuda13-plugin', 'jax-cuda13-pjrt')}\n"
      "try:\n"
      "  stats = d[0].memory_stats() or {}\n"
      "except Exception:\n"
      "  stats = {}\n"
      "out = {'platform': d[0].platform, 'device_kind': d[0].device_kind,\n"
      "       'devices': [str(x) for x in d], 'jax': jax.__version__,\n"
      "       'jaxlib': v('jaxlib'), 'plugins': {k: x for k, x in\n"
      "       plugins.items() if x}, 'bytes_limit': stats.get('bytes_limit'),\n"
      "       'torch': v('torch')}\n"
      "print(json.dumps(out))\n")
  outcome = run_child([sys.executable, "-c", code], ctx.left(), ctx.env)
  rows = json_lines(outcome.output)
  if outcome.rc != 0 or not rows:
    raise PartError(outcome)
  out = rows[-1]
  smi = _nvidia_smi()
  out["driver"] = smi.get("driver_version")
  out["gpu_memory"] = smi.get("memory.total")
  if out["torch"] is None and out["platform"] == "gpu" and (
      ctx.install_torch and not ctx.dry_run):
    # One try, short timeouts: a device machine without a network must not
    # spend the budget on pip's retries.
    pip = run_child([sys.executable, "-m", "pip", "install", "--quiet",
                     "--no-input", "--retries=0", "--timeout=15", "torch"],
                    min(ctx.left() / 3, 180), ctx.env)
    out["torch_install"] = "ok" if pip.rc == 0 else tail(pip.output, 3)
    if pip.rc == 0:
      out["torch"] = "installed"
  if out["torch"] is not None:
    probe = run_child([sys.executable, "-c", "import torch; print("
                       "torch.__version__, torch.cuda.is_available())"],
                      min(ctx.left(), 60), ctx.env)
    words = probe.output.split()
    if probe.rc == 0 and len(words) >= 2:
      out["torch"], out["torch_cuda"] = words[-2], words[-1] == "True"
  # The PyTorch side runs where torch sees the device JAX uses.
  ctx.torch = out["torch"] is not None and (
      out["platform"] == "cpu" or bool(out.get("torch_cuda")))
  out["seconds"] = outcome.seconds
  return out


def _nvidia_smi() -> Dict[str, str]:
  """The first GPU's driver version and memory from ``nvidia-smi`` ({}
  without one)."""
  fields = ("name", "driver_version", "memory.total")
  try:
    out = subprocess.run(
        ["nvidia-smi", f"--query-gpu={','.join(fields)}",
         "--format=csv,noheader"], capture_output=True, text=True,
        timeout=20, check=True).stdout
  except (OSError, subprocess.SubprocessError):
    return {}
  values = [v.strip() for v in out.splitlines()[0].split(",")] if out else []
  return dict(zip(fields, values))


def part_tests(ctx: Context) -> dict:
  """The GPU-relevant tests (``GPU_TESTS``) in one pytest run; the dry run
  only collects them (the names still exist)."""
  argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
          "-n", "0", *GPU_TESTS]
  if ctx.dry_run:
    argv.append("--collect-only")
  outcome = run_child(argv, ctx.left(), ctx.env)
  counts = pytest_counts(outcome.output)
  if outcome.rc is None:
    raise PartError(outcome, counts)
  out = {"files": list(GPU_TESTS), "collect_only": ctx.dry_run,
         "rc": outcome.rc, **counts, "tail": tail(outcome.output, 8)}
  return out


def pytest_counts(text: str) -> Dict[str, int]:
  """``{"passed": n, "failed": n, ...}`` from pytest's summary line(s) (the
  ``N tests collected`` line of ``--collect-only`` as ``collected``)."""
  counts = {}
  for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|"
                            r"deselected|xfailed|xpassed|tests? collected)",
                            text):
    key = "collected" if "collected" in word else word.rstrip("s") + (
        "s" if word.startswith("error") else "")
    counts[key] = int(n)
  return counts


def part_compare(precision: str) -> Callable[[Context], dict]:
  """``benchmark.py --mode=compare`` in ``precision``: per size ms per
  iteration, seconds for the iterations and to 500, final losses, against
  PyTorch where it runs."""
  def compare(ctx: Context) -> dict:
    path = os.path.join(ctx.work_dir, f"compare_{precision}.json")
    s = ctx.sizes
    solvers = "optax_lbfgs,lbfgs" if precision == "float32" else "optax_lbfgs"
    argv = ctx.python(
        "benchmark.py", "--mode=compare", f"--precision={precision}",
        f"--sizes={','.join(map(str, s.compare))}",
        f"--iterations={s.iterations}", f"--solvers={solvers}",
        f"--content={ctx.content}", f"--style={ctx.style}", f"--json={path}",
        "--torch" if ctx.torch else "--notorch",
        *(["--eval_repeats=1"] if ctx.dry_run else []))
    outcome = run_child(argv, ctx.left(), ctx.env)
    record = read_json(path) if outcome.rc == 0 else None
    if record is None:
      raise PartError(outcome)
    return {"precision": precision, "torch": record.get("torch"),
            "device": record.get("device"),
            "sizes": [compare_row(r) for r in record["sizes"]]}
  return compare


def compare_row(size: dict) -> dict:
  """The figures of one size of a ``benchmark.py --mode=compare`` record:
  per side (optax_lbfgs, lbfgs, torch) ms per iteration, seconds for the
  run and for 500 iterations (extrapolated when the run was shorter),
  final loss, peak MiB; and nst_jax/PyTorch ratios."""
  rows = size.get("rows", {})
  n = size.get("iterations_requested")
  out = {"size": size["size"], "shape": size["shape"], "iterations": n,
         "sides": {}}
  for side, run in size.get("runs", {}).items():
    its = max(run.get("iterations") or 0, 1)
    per = run["seconds"] / its
    out["sides"][side] = {
        "s_per_iteration": per, "seconds": run["seconds"],
        "s_to_500": (run["seconds"] if n and n >= 500 else 500 * per),
        "extrapolated": not (n and n >= 500),
        "final_loss": run.get("final_loss"),
        "peak_mib": ((rows.get("peak MiB (device allocator)") or
                      rows.get("peak MiB (process RSS rise)") or {})
                     .get(side)),
        "compile_s": run.get("compile_s")}
  torch = out["sides"].get("torch")
  if torch:
    for side, fig in out["sides"].items():
      if side != "torch":
        fig["ratio_to_torch"] = fig["s_per_iteration"] / torch[
            "s_per_iteration"]
  return out


def part_conv(ctx: Context) -> dict:
  """``benchmark.py --mode=layers``: every convolution direct against
  Winograd; the sums over the layers ``--conv=winograd`` covers."""
  path = os.path.join(ctx.work_dir, "conv.json")
  argv = ctx.python("benchmark.py", "--mode=layers",
                    f"--sizes={','.join(map(str, ctx.sizes.conv))}",
                    f"--content={ctx.content}", f"--style={ctx.style}",
                    "--notorch", f"--json={path}",
                    *(["--eval_repeats=1"] if ctx.dry_run else []))
  outcome = run_child(argv, ctx.left(), ctx.env)
  record = read_json(path) if outcome.rc == 0 else None
  if record is None:
    raise PartError(outcome)
  return {"sizes": [{"size": r["size"], "direct_ms": r["direct_ms"],
                     "winograd_ms": r["winograd_ms"], "best_ms": r["best_ms"],
                     "ratio": r["winograd_ms"] / r["direct_ms"]}
                    for r in record["sizes"]]}


def part_memory(ctx: Context) -> dict:
  """One child per run (a clean peak): at each size untiled (when its
  estimate fits the device) and ``--tile_size=auto`` under
  ``--memory_budget``; then larger sizes, tiled, until one fails (the
  largest size that runs)."""
  s, runs, largest = ctx.sizes, [], None
  budget = ctx.memory_budget
  if ctx.dry_run:
    # One run, auto under a 1 GB budget (at 64 px the tiled estimate
    # exceeds the untiled one, Winograd's kernels dominate, so auto stays
    # untiled; a tiled run at 64 px compiles for 1-1.5 minutes here, the
    # tiling part runs one).
    plan_ = [(s.memory[0], "auto", "1GB", 10)]
  else:
    # Untiled where it can fit (8192 px untiled needs about 110 GiB), then
    # auto under the budget with the default L-BFGS memory (refused before
    # any work where nothing fits) and with 5 from 4096 px (there 20
    # image-sized vectors alone take 2.8 GiB), then the largest sizes, tiled
    # under the device's memory.
    plan_ = [(size, "0", None, 10) for size in s.memory if size <= 4096]
    plan_ += [(size, "auto", budget, 10) for size in s.memory]
    plan_ += [(size, "auto", budget, 5) for size in s.memory if size >= 4096]
    plan_ += [(size, "auto", None, 10) for size in s.largest]
  for size, tile, mb, history in plan_:
    if ctx.left() < 5:
      runs.append({"size": size, "tile_size_flag": tile,
                   "memory_budget": mb, "history_size": history,
                   "status": "skipped: out of time"})
      continue
    argv = ctx.python("gpu_report.py", "--child=memory_run", f"--size={size}",
                      f"--tile_size={tile}",
                      f"--iterations={s.memory_iterations}",
                      f"--history_size={history}",
                      f"--content={ctx.content}", f"--style={ctx.style}",
                      *([f"--memory_budget={mb}"] if mb else []))
    outcome = run_child(argv, ctx.left(), ctx.env)
    rows = json_lines(outcome.output)
    row = dict(rows[-1]) if rows else {"size": size, "tile_size_flag": tile,
                                        "history_size": history}
    row["memory_budget"] = mb
    if outcome.rc == 0 and "peak_bytes" in row:
      row["status"] = "ok"
      if size >= (largest or 0):
        largest = size
    else:
      row["status"] = ("cut at the budget" if outcome.rc is None else
                       "failed: " + tail(outcome.output, 1))
    runs.append(row)
    ctx.on_partial({"runs": runs, "largest_ok": largest, "budget": budget})
  return {"runs": runs, "largest_ok": largest, "budget": budget}


def part_grid(ctx: Context) -> dict:
  """``benchmark_grid.py``: the cells batched against one after another."""
  s = ctx.sizes
  argv = ctx.python("benchmark_grid.py", f"--cells={s.grid_cells}",
                    f"--size={s.grid_size}", f"--iterations={s.grid_iterations}",
                    f"--content={ctx.content}", f"--style={ctx.style}",
                    *(["--runs=1"] if ctx.dry_run else []))
  outcome = run_child(argv, ctx.left(), ctx.env)
  figures = grid_figures(outcome.output)
  if outcome.rc != 0 or "ratio" not in figures:
    raise PartError(outcome)
  return {"cells": s.grid_cells, "size": s.grid_size,
          "iterations": s.grid_iterations, **figures}


def grid_figures(text: str) -> dict:
  """Seconds per side and the batched/sequential ratio from
  ``benchmark_grid.py``'s output."""
  out = {}
  for side in ("batched", "sequential"):
    m = re.search(rf"^{side}\s+warm\s+([\d.]+) s", text, re.M) or re.search(
        rf"^{side}\s+first run\s+([\d.]+) s", text, re.M)
    if m:
      out[f"{side}_seconds"] = float(m.group(1))
  m = re.search(r"batched/sequential \((warm|first run)\): ([\d.]+)x", text)
  if m:
    out["timed"], out["ratio"] = m.group(1), float(m.group(2))
  return out


def part_quality(ctx: Context) -> dict:
  """``benchmark.py --mode=quality``: seconds each run needs to be as
  stylised as the PyTorch loop's last image (its final style SWD)."""
  path = os.path.join(ctx.work_dir, "quality.json")
  s = ctx.sizes
  argv = ctx.python("benchmark.py", "--mode=quality",
                    f"--sizes={s.quality_size}",
                    f"--iterations={s.quality_iterations}",
                    f"--content={ctx.content}", f"--style={ctx.style}",
                    "--torch" if ctx.torch else "--notorch", f"--json={path}",
                    *(["--quality_runs=optax_lbfgs", "--quality_every=1"]
                      if ctx.dry_run else []))
  outcome = run_child(argv, ctx.left(), ctx.env)
  record = read_json(path) if outcome.rc == 0 else None
  if record is None:
    raise PartError(outcome)
  r = record["sizes"][0]
  return {"size": r["size"], "iterations": r["iterations"],
          "torch_final_swd": r["torch_final_swd"],
          "runs": {name: {"seconds": c["run_seconds"], "final_swd": c["swd"][-1],
                          "final_lpips": c["lpips_vgg"][-1],
                          "seconds_to_torch_swd": c["seconds_to_torch_swd"]}
                   for name, c in r["curves"].items()}}


def part_tiling(ctx: Context) -> dict:
  """``tiling_benchmark.py --mode=overhead``: one value-and-gradient untiled
  and tiled, alternately (medians)."""
  path = os.path.join(ctx.work_dir, "tiling.jsonl")
  if os.path.exists(path):
    os.remove(path)
  s = ctx.sizes
  argv = ctx.python("tiling_benchmark.py", "--mode=overhead",
                    f"--size={s.tiling_size}", f"--tile_size={s.tiling_tile}",
                    f"--repeats={1 if ctx.dry_run else 3}",
                    f"--content={ctx.content}", f"--style={ctx.style}",
                    f"--json={path}")
  outcome = run_child(argv, ctx.left(), ctx.env)
  rows = json_lines(outcome.output)
  if outcome.rc != 0 or not rows:
    raise PartError(outcome)
  return rows[-1]


RUNNERS = {"install": part_install, "tests": part_tests,
           "conv": part_conv, "memory": part_memory, "grid": part_grid,
           "quality": part_quality, "tiling": part_tiling,
           **{f"compare_{p}": part_compare(p) for p in PRECISIONS}}


class PartError(Exception):
  """A part's child failed or was cut; its output's tail is kept."""

  def __init__(self, outcome: Outcome, figures: dict | None = None):
    super().__init__("cut at the budget" if outcome.rc is None else
                     f"exit status {outcome.rc}")
    self.outcome = outcome
    self.figures = figures or {}


# --- the memory child -------------------------------------------------------------


def memory_run() -> None:
  """One transfer of ``--size`` px at ``--tile_size`` under
  ``--memory_budget`` for ``--iterations``: prints the decision (tile,
  estimate, predicted peak) before running, then the same line with the
  measured peaks (process RSS: ``getrusage``; the device allocator's
  ``peak_bytes_in_use`` where it has one) and the estimate's error."""
  import jax  # pylint: disable=g-import-not-at-top
  from nst_jax import io, memory, problem, transfer, vgg  # pylint: disable=g-import-not-at-top
  config = transfer.TransferConfig().replace(
      solver=dict(maxiter=FLAGS.iterations, history_size=FLAGS.history_size),
      tile_size=FLAGS.tile_size,
      memory_budget=FLAGS.memory_budget)
  content = io.load_image(FLAGS.content)
  shape = io.long_edge_shape(content.shape[:2], FLAGS.size)
  content = io.resize_to(content, shape)
  style = io.resize_long_edge(io.load_image(FLAGS.style), FLAGS.size)
  ev = problem.evaluation(config, shape)
  predicted = memory.predicted_peak_bytes(ev.bytes, shape,
                                         tiled=bool(ev.tile))
  row = {"size": FLAGS.size, "shape": list(shape), "tile_size": ev.tile,
         "tile_size_flag": FLAGS.tile_size, "tiling": ev.message(),
         "estimate_bytes": ev.bytes, "predicted_bytes": predicted,
         "iterations": FLAGS.iterations, "history_size": FLAGS.history_size,
         "platform": jax.default_backend()}
  print(json.dumps(row), flush=True)
  params = vgg.load_params("vgg16")
  start = time.perf_counter()
  result = transfer.stylize(params, content, [style], config, log_every=0,
                            progress_seconds=1e12, terms_seconds=1e12)
  row["seconds"] = time.perf_counter() - start
  row["rss_peak_bytes"] = resource.getrusage(
      resource.RUSAGE_SELF).ru_maxrss * 1024
  try:
    stats = jax.devices()[0].memory_stats() or {}
  except Exception:  # pylint: disable=broad-except  # backends differ
    stats = {}
  row["device_peak_bytes"] = stats.get("peak_bytes_in_use")
  # The peak that matters: the device's where it has its own memory.
  row["peak_bytes"] = (row["device_peak_bytes"]
                       if row["platform"] != "cpu" and row["device_peak_bytes"]
                       else row["rss_peak_bytes"])
  row["estimate_error"] = predicted / row["peak_bytes"] - 1
  row["buffers_error"] = ev.bytes / row["peak_bytes"] - 1
  row["final_loss"] = result.loss_history[-1]["total"] if (
      result.loss_history) else None
  print(json.dumps(row), flush=True)


# --- the report --------------------------------------------------------------------


def default_changes(figures: Dict[str, Any]) -> List[str]:
  """Item 4 of the issue: the defaults these figures would change, one line
  each, by stated rules (nothing is changed here):

  * ``--conv=auto`` picks direct convolutions on GPUs and Winograd on the
    CPU; the layer sums say which is faster on the device measured;
  * the default precision (float32): TF32 or bf16 if it makes 500 iterations
    at the largest size at least 1.3× faster and its final loss (scored by
    its own policy) is within 1 % of float32's;
  * the default size and iterations on a GPU (``cli.DEVICE_DEFAULTS``:
    512 px, 500): the largest size whose 500 iterations (optax L-BFGS,
    float32) take at most a minute."""
  lines = []
  platform = figures.get("install", {}).get("platform", "?")
  conv = figures.get("conv", {}).get("sizes")
  if conv:
    r = conv[-1]
    faster = "winograd" if r["winograd_ms"] < r["direct_ms"] else "direct"
    auto = "winograd" if platform == "cpu" else "direct"
    lines.append(
        f"--conv=auto ({auto} on this {platform}): {faster} is faster at "
        f"{r['size']} px (Winograd {r['ratio']:.2f}x direct's time) — "
        + ("keep" if faster == auto else f"change auto to {faster} here"))
  base = _s_to_500(figures.get("compare_float32"))
  for p in PRECISIONS[1:]:
    other = _s_to_500(figures.get(f"compare_{p}"))
    if base and other:
      speed = base[0] / other[0]
      loss = abs(other[1] / base[1] - 1) if base[1] else float("inf")
      good = speed >= 1.3 and loss <= 0.01
      lines.append(
          f"--precision={p}: {speed:.2f}x float32's speed at {base[2]} px, "
          f"final loss {100 * loss:.2f} % apart — "
          + (f"make {p} the GPU default" if good else "keep float32"))
  sizes = (figures.get("compare_float32") or {}).get("sizes", [])
  fits = [r["size"] for r in sizes
          if r["sides"].get("optax_lbfgs", {}).get("s_to_500", 1e9) <= 60]
  if sizes and platform == "cpu":
    lines.append("default size and iterations on a GPU: not decided by a "
                 "CPU run (cli.DEVICE_DEFAULTS['gpu'] stays 512 px, 500)")
  elif sizes:
    size = max(fits) if fits else min(r["size"] for r in sizes)
    lines.append(
        f"default size on this {platform}: {size} px at 500 iterations "
        f"(the largest measured size whose 500 iterations take at most a "
        f"minute) — " + ("keep" if size == 512 else
                         "change cli.DEVICE_DEFAULTS['gpu'] to "
                         f"({size}, 500)"))
  if not lines:
    lines.append("none: the parts that decide them did not run")
  if platform == "cpu":   # a dry run's tiny sizes decide nothing
    lines = [f"(CPU, not a decision) {l}" for l in lines]
  return lines


def _s_to_500(part):
  """``(seconds to 500, final loss, size)`` of optax L-BFGS at the largest
  size of a compare part, or None."""
  if not part or not part.get("sizes"):
    return None
  r = part["sizes"][-1]
  side = r["sides"].get("optax_lbfgs")
  if not side:
    return None
  return side["s_to_500"], side["final_loss"], r["size"]


def _g(v, digits=2):
  if v is None:
    return "—"
  if isinstance(v, float):
    return f"{v:.{digits}f}" if abs(v) < 1e4 else f"{v:.3g}"
  return str(v)


def _gib(b):
  return "—" if b is None else f"{b / 2**30:.2f}"


def markdown(report: Dict[str, Any]) -> str:
  """The note: header, parts table, one section per part (its figures, or
  why there are none), the defaults the figures would change and the real
  run's expected time."""
  figs, status = report["figures"], report["parts"]
  inst = figs.get("install", {})
  lines = []
  if report["dry_run"]:
    lines += ["# GPU report — CPU DRY RUN, NOT GPU FIGURES", "",
              "> **This note was written by `scripts/gpu_report.py "
              "--dry_run` on the CPU at tiny sizes.** It shows what the real "
              "run writes; none of its numbers is a GPU measurement. No "
              "GPU has been lent to this project yet (issue 25).", ""]
  else:
    lines += ["# GPU report", ""]
  lines += [
      f"Written by `{report['command']}` on {report['date']}, "
      f"{report['elapsed']:.0f} s of a {report['budget']:.0f} s budget.", "",
      "| | |", "| --- | --- |",
      f"| device | {inst.get('device_kind', '—')} ({inst.get('platform', '—')}, "
      f"{len(inst.get('devices', []))} device(s)) |",
      f"| driver | {inst.get('driver') or '—'} |",
      f"| GPU memory | {inst.get('gpu_memory') or _gib(inst.get('bytes_limit'))} |",
      f"| JAX / jaxlib | {inst.get('jax', '—')} / {inst.get('jaxlib', '—')} |",
      f"| CUDA plugin | {', '.join(f'{k} {v}' for k, v in inst.get('plugins', {}).items()) or '—'} |",
      f"| torch | {inst.get('torch') or 'not installed'}"
      f"{' (CUDA)' if inst.get('torch_cuda') else ''} |",
      f"| date | {report['date']} |", "",
      "## Parts", "",
      "| part | status | seconds | expected |", "| --- | --- | --- | --- |"]
  for p in PARTS:
    st = status.get(p.name, {"status": "not run"})
    lines.append(f"| {p.name} | {st['status']} | {_g(st.get('seconds'), 0)} "
                 f"| {p.expected(report['dry_run']):.0f} |")
  for p in PARTS:
    lines += ["", f"## {p.title}", ""]
    st = status.get(p.name, {"status": "not run"})
    if p.name not in figs:
      lines.append(f"No figures: {st['status']}."
                   + (f"\n\n```\n{st['tail']}\n```" if st.get("tail") else ""))
      continue
    lines += SECTIONS[p.name](figs[p.name])
    if st["status"] != "ok":
      lines += ["", f"({st['status']})"]
  lines += _sec_calibration(report.get("cpu_calibration") or [])
  lines += ["", "## Defaults these figures would change", ""]
  lines += [f"* {l}" for l in default_changes(figs)]
  lines += ["", "## The real run", ""] + expected_run_lines()
  return "\n".join(lines) + "\n"


def expected_run_lines() -> List[str]:
  """What the GPU run is expected to take and what it drops first."""
  total = sum(p.gpu_seconds for p in PARTS)
  kept, dropped = plan(PARTS, DEFAULT_BUDGET, False)
  return [
      f"On a GPU the parts are expected to take {total:.0f} s in all "
      f"(guesses until a GPU run measures them: the table's last column); "
      f"with the default budget of {DEFAULT_BUDGET:.0f} s the plan drops, "
      f"longest first: "
      + ", ".join(f"{p.name} ({p.gpu_seconds:.0f} s)" for p, _ in dropped)
      + f", and runs {', '.join(p.name for p in kept)}. A session with 15 "
      "minutes of device time (start-up included) can give it "
      "`--budget=600`; `--parts=` picks parts for a second session."]


def _sec_install(f):
  return [f"`jax.devices()`: {', '.join(f.get('devices', []))}."]


def _sec_tests(f):
  counts = ", ".join(f"{v} {k}" for k, v in f.items()
                     if k in ("passed", "failed", "skipped", "errors",
                              "collected", "deselected"))
  what = "collected only (dry run)" if f.get("collect_only") else "run"
  return [f"{len(f['files'])} files, {what}: {counts or 'no summary'} "
          f"(exit status {f['rc']}).", "", "```", f.get("tail", ""), "```"]


def _sec_compare(f):
  lines = [f"{f['precision']}, torch {f.get('torch') or 'not run'}; seconds "
           "to 500 iterations marked * are extrapolated from the run's "
           "iterations.", "",
           "| size | side | s / iteration | s to 500 | final loss | "
           "× PyTorch's time | peak MiB |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
  for r in f["sizes"]:
    for side, s in r["sides"].items():
      lines.append(
          f"| {r['size']} ({r['shape'][1]}x{r['shape'][0]}) | {side} | "
          f"{s['s_per_iteration']:.4f} | {s['s_to_500']:.1f}"
          f"{'*' if s['extrapolated'] else ''} | {_g(s['final_loss'], 4)} | "
          f"{_g(s.get('ratio_to_torch'))} | {_g(s.get('peak_mib'), 0)} |")
  return lines


def _sec_conv(f):
  lines = ["| size | direct ms | Winograd ms | Winograd / direct |",
           "| --- | --- | --- | --- |"]
  lines += [f"| {r['size']} | {r['direct_ms']:.1f} | {r['winograd_ms']:.1f} "
            f"| {r['ratio']:.2f} |" for r in f["sizes"]]
  return lines


def _sec_memory(f):
  lines = ["Peak: the device allocator's on a GPU, the process's RSS on the "
           "CPU. Predicted: the estimate of XLA's buffers plus the process "
           "around them (`memory.predicted_peak_bytes`).", "",
           "| size | --tile_size | budget | history | tiling | estimate GiB "
           "| predicted GiB | peak GiB | predicted / peak − 1 | s |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
  for r in f["runs"]:
    err = r.get("estimate_error")
    lines.append(
        f"| {r['size']} | {r.get('tile_size_flag')} | "
        f"{r.get('memory_budget') or 'device'} | {r.get('history_size')} | "
        f"{r.get('tiling', '—') if r.get('status') == 'ok' else r.get('status')}"
        f" | {_gib(r.get('estimate_bytes'))} | {_gib(r.get('predicted_bytes'))}"
        f" | {_gib(r.get('peak_bytes'))} | "
        f"{'—' if err is None else f'{100 * err:+.1f} %'} | "
        f"{_g(r.get('seconds'), 1)} |")
  lines += ["", f"Largest size that ran: {f.get('largest_ok') or '—'} px."]
  return lines


def _sec_grid(f):
  return [f"{f['cells']} cells at {f['size']} px, {f['iterations']} "
          f"iterations ({f.get('timed', '?')} timed): batched "
          f"{_g(f.get('batched_seconds'))} s, sequential "
          f"{_g(f.get('sequential_seconds'))} s, batched/sequential "
          f"{_g(f.get('ratio'))}x."]


def _sec_quality(f):
  lines = [f"{f['size']} px, {f['iterations']} iterations; PyTorch's final "
           f"style SWD {_g(f.get('torch_final_swd'), 3)}.", "",
           "| run | seconds | final SWD | final LPIPS | s to PyTorch's SWD |",
           "| --- | --- | --- | --- | --- |"]
  lines += [f"| {n} | {_g(r['seconds'], 1)} | {_g(r['final_swd'], 3)} | "
            f"{_g(r['final_lpips'], 3)} | {_g(r['seconds_to_torch_swd'], 1)} |"
            for n, r in f["runs"].items()]
  return lines


def _sec_tiling(f):
  return [f"{f.get('size')} px, tiles of {f.get('tile_size')} px: untiled "
          f"{_g(f.get('untiled_seconds'), 3)} s per evaluation, tiled "
          f"{_g(f.get('tiled_reuse_seconds'), 3)} s "
          f"({_g(f.get('tiled_reuse_ratio'))}x; rerunning every window "
          f"{_g(f.get('tiled_rerun_ratio'))}x)."]


# Older CPU peaks, not fitted: measured with the tiled code before
# ``tiling.Plan.reuse_last`` (docs/benchmarks.md, 2026-11-30), 8192 px not
# measured again (two iterations took 84 minutes on this CPU).
OLDER_PEAKS = (
    ((6144, 8192), 768, 2, 15.61, "tiling_benchmark.py, 2026-11-30, 2 "
     "iterations (before reuse_last)"),
    ((3072, 4096), 512, 10, 9.26, "tiling_benchmark.py, 2026-11-30, 2 "
     "iterations (before reuse_last)"),
)


def cpu_calibration() -> List[dict]:
  """The peaks the memory estimate was calibrated on (``memory.CPU_PEAKS``,
  measured on the CPU) with today's estimate and predicted peak of each.
  Computed from shapes on JAX's CPU backend: this process must not take the
  GPU's memory from the parts' children."""
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_platforms", "cpu")
  from nst_jax import memory, problem, transfer  # pylint: disable=g-import-not-at-top
  rows = []
  for (shape, tile, history, peak_gib, note), fitted in (
      [(r, True) for r in memory.CPU_PEAKS]
      + [(r, False) for r in OLDER_PEAKS]):
    config = transfer.TransferConfig().replace(
        tile_size=tile, solver=dict(history_size=history))
    estimate = problem.evaluation(config, shape).bytes
    predicted = memory.predicted_peak_bytes(estimate, shape, tiled=tile > 0)
    rows.append({"shape": list(shape), "tile_size": tile,
                 "history_size": history, "estimate_bytes": estimate,
                 "predicted_bytes": predicted,
                 "peak_bytes": int(peak_gib * 2**30), "note": note,
                 "fitted": fitted,
                 "error": predicted / (peak_gib * 2**30) - 1})
  return rows


def _sec_calibration(rows):
  if not rows:
    return []
  lines = ["", "## Memory calibration on the CPU", "",
           "The process's peak RSS of whole runs (`memory.CPU_PEAKS`, one "
           "run per process, 1-2 L-BFGS iterations: the peak comes in the "
           "first) against the estimate of XLA's buffers and the predicted "
           "peak (`memory.predicted_peak_bytes`: the estimate plus "
           "`memory.process_overhead_bytes`), as the code estimates them "
           "today.", "",
           "| W×H | tile | history | estimate GiB | predicted GiB | peak GiB "
           "| predicted / peak − 1 | measured |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
  for r in rows:
    h, w = r["shape"]
    lines.append(
        f"| {w}×{h} | {r['tile_size'] or 'untiled'} | {r['history_size']} | "
        f"{_gib(r['estimate_bytes'])} | {_gib(r['predicted_bytes'])} | "
        f"{_gib(r['peak_bytes'])} | {100 * r['error']:+.1f} % | "
        f"{r['note']}{'' if r.get('fitted', True) else ' — not fitted'} |")
  lines += ["", "Rows marked *not fitted* were measured with older tiled code "
            "and are shown for comparison; 8192 px was not measured again on "
            "the CPU (a predicted peak above the measured one is the safe "
            "side: auto then picks smaller tiles). The GPU run's memory part "
            "measures 1024-16384 px on the device."]
  return lines


SECTIONS = {"install": _sec_install, "tests": _sec_tests,
            **{f"compare_{p}": _sec_compare for p in PRECISIONS},
            "conv": _sec_conv,
            "memory": _sec_memory, "grid": _sec_grid,
            "quality": _sec_quality, "tiling": _sec_tiling}


def write(report: Dict[str, Any]) -> None:
  """The JSON and the note, each replaced whole (a rename)."""
  for path, text in ((FLAGS.json, json.dumps(report, indent=1,
                                             default=str) + "\n"),
                     (FLAGS.markdown, markdown(report))):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      f.write(text)
    os.replace(tmp, path)


def images() -> tuple:
  """``(content, style)`` paths: the flags, else the shared Tübingen and
  Starry Night, else the repository's examples."""
  shared = os.path.join(ROOT, os.pardir, "shared", "images")
  content = FLAGS.content or (
      os.path.join(shared, "tubingen.jpg")
      if os.path.exists(os.path.join(shared, "tubingen.jpg"))
      else os.path.join(ROOT, "examples", "chelsea.png"))
  style = FLAGS.style or (
      os.path.join(shared, "starry_night.jpg")
      if os.path.exists(os.path.join(shared, "starry_night.jpg"))
      else os.path.join(ROOT, "examples", "style_brushwork.png"))
  return content, style


def report_main() -> None:
  """Plans the parts, runs each in turn under what is left of the budget,
  and rewrites the JSON and the note after each."""
  started = time.perf_counter()
  budget = FLAGS.budget or (DRY_BUDGET if FLAGS.dry_run else DEFAULT_BUDGET)
  unknown = set(FLAGS.parts or ()) - {p.name for p in PARTS}
  if unknown:
    raise app.UsageError(f"--parts: unknown {sorted(unknown)}; known: "
                         f"{', '.join(p.name for p in PARTS)}")
  kept, dropped = plan(PARTS, budget, FLAGS.dry_run, FLAGS.parts)
  content, style = images()
  work_dir = FLAGS.work_dir
  os.makedirs(work_dir, exist_ok=True)
  ctx = Context(FLAGS.dry_run, DRY_SIZES if FLAGS.dry_run else GPU_SIZES,
                content, style, work_dir, child_env(FLAGS.dry_run),
                started + budget, memory_budget=FLAGS.memory_budget or "8GB",
                install_torch=FLAGS.install_torch)
  report = {"dry_run": FLAGS.dry_run, "budget": budget,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%d %H:%M UTC"),
            "command": " ".join(["python scripts/gpu_report.py"]
                                + sys.argv[1:]),
            "elapsed": 0.0, "images": [content, style],
            "parts": {p.name: {"status": f"skipped: {why}"}
                      for p, why in dropped},
            "figures": {}, "cpu_calibration": cpu_calibration()}
  for p, why in dropped:
    print(f"[gpu_report] skipping {p.name}: {why}", flush=True)
  write(report)
  for p in kept:
    left = ctx.left()
    if left < min(p.expected(FLAGS.dry_run), 5):
      report["parts"][p.name] = {"status": f"skipped: {left:.0f} s left, "
                                 f"expected {p.expected(FLAGS.dry_run):.0f} s"}
      print(f"[gpu_report] skipping {p.name}: out of time", flush=True)
      continue
    print(f"[gpu_report] {p.name} ({left:.0f} s left)", flush=True)

    def partial(figures, name=p.name):
      report["figures"][name] = figures
      report["parts"][name] = {"status": "running (figures so far)"}
      write(report)
    ctx.on_partial = partial
    t = time.perf_counter()
    try:
      report["figures"][p.name] = RUNNERS[p.name](ctx)
      state = {"status": "ok"}
    except PartError as e:
      state = {"status": str(e), "tail": tail(e.outcome.output)}
      if e.figures:
        report["figures"][p.name] = e.figures
    except Exception as e:  # pylint: disable=broad-except  # keep the others
      state = {"status": f"failed: {type(e).__name__}: {e}"}
    state["seconds"] = time.perf_counter() - t
    report["parts"][p.name] = state
    report["elapsed"] = time.perf_counter() - started
    print(f"[gpu_report] {p.name}: {state['status']} in "
          f"{state['seconds']:.1f} s", flush=True)
    write(report)
  report["elapsed"] = time.perf_counter() - started
  report["default_changes"] = default_changes(report["figures"])
  write(report)
  for line in report["default_changes"]:
    print(f"[gpu_report] would change: {line}", flush=True)
  print(f"[gpu_report] wrote {FLAGS.json} and {FLAGS.markdown} in "
        f"{report['elapsed']:.0f} s", flush=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.child == "memory_run":
    content, style = images()
    FLAGS.content, FLAGS.style = content, style
    memory_run()
    return
  if FLAGS.render:
    report = read_json(FLAGS.json)
    if report is None:
      raise app.UsageError(f"--render: no report in {FLAGS.json}")
    report["cpu_calibration"] = cpu_calibration()
    report["default_changes"] = default_changes(report["figures"])
    write(report)
    print(f"[gpu_report] wrote {FLAGS.json} and {FLAGS.markdown}")
    return
  report_main()


if __name__ == "__main__":
  define_flags()
  app.run(main)
