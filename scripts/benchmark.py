"""Side-by-side benchmark: nst_jax against PyTorch on the identical objective.

  python scripts/benchmark.py                       # defaults for the device
  python scripts/benchmark.py --sizes=256 --iterations=100 --json=out/b.json

In ONE process and on the same device it runs this project (the compiled
solver loop: optax L-BFGS, the default, and jaxopt's L-BFGS) and a PyTorch
implementation of the same objective (``torch_reference.py``: same weights,
images, layers, loss formulas, α/β/γ, content init; neural-style-pt's
``torch.optim.LBFGS(lr=1, history_size=10, line_search_fn=None)``). Before
timing it checks that both objectives give the same value and gradient at the
initial image. Then, per size, one line per figure with the ratio
nst_jax/PyTorch: ms per loss evaluation (interleaved repeats, median), in-loop
ms per evaluation, evaluations per iteration, time for N iterations (and its
extrapolation to 500 when N < 500, labelled), final loss, time to reach the
loss PyTorch reaches after N iterations, compile time, peak memory, conv
TFLOP/s and the share of the device's peak.

torch is optional and benchmark-only (``pip install torch==2.13.0``).
"""

import dataclasses
import os
import sys
import time

# Both frameworks share one GPU: JAX must not preallocate 75 % of its memory.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from absl import flags

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import cli
from nst_jax import figures
from nst_jax import io
from nst_jax import networks
from nst_jax import objective
from nst_jax import solvers
from nst_jax import transfer
from nst_jax import vgg
from nst_jax.errors import NSTError
from nst_jax.targets import make_targets

import bench_common as bm  # siblings in scripts/
import torch_reference as tr

_SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), os.pardir, "shared", "images")
cli.define_flags("content", "style", "iterations", "compute", "loss",
                 defaults={"content": os.path.join(_SHARED, "tubingen.jpg"),
                           "style": [os.path.join(_SHARED,
                                                  "starry_night.jpg")]})
flags.DEFINE_list("sizes", None, "Long edges (default: 256,512,1024 on a GPU, "
                  "256,512 on the CPU).")
flags.DEFINE_list("solvers", ["optax_lbfgs", "lbfgs"], "nst_jax methods to "
                  "run (optax_lbfgs, lbfgs).")
flags.DEFINE_bool("torch", True, "Run the PyTorch side (--notorch: only "
                  "nst_jax; no ratios, no time-to-reference-loss).")
flags.DEFINE_float("peak_tflops", None, "Device peak for the policy in "
                   "TFLOP/s (default: a table for H100/H200, /proc/cpuinfo "
                   "for the CPU).")
flags.DEFINE_integer("eval_repeats", 5, "Interleaved repeats of one "
                     "evaluation per side.", lower_bound=1)
flags.DEFINE_float("check_rtol", 1e-4, "Largest relative difference of the "
                   "values of the two objectives at the (tie-free) init.")
flags.DEFINE_float("check_grad_rtol", 1e-3, "Largest relative difference "
                   "(2-norm) of their gradients there: two float32 "
                   "implementations round differently, and at 512 px each "
                   "is ~1e-4..5e-4 from a float64 reference.")
flags.DEFINE_enum("mode", "compare", ["compare", "memory", "precision",
                                      "layers", "representations", "quality"],
                  "compare: nst_jax against PyTorch; memory: nst_jax only, "
                  "per size the estimate (transfer.estimate_memory), XLA's "
                  "buffer assignment and the measured peak of a short run "
                  "(one size per process for a clean process peak); "
                  "precision: one transfer per --precisions policy, each "
                  "result scored with the float32 objective, images side by "
                  "side in --save_images; layers: each convolution alone, "
                  "forward and input gradient, direct against Winograd; "
                  "representations: one value-and-gradient of the default "
                  "objective per --style_stats representation, interleaved, "
                  "with its ratio to gram; quality: style distance and "
                  "LPIPS of the current image against seconds for nst_jax's "
                  "L-BFGS and Adam and the PyTorch loop, and the seconds "
                  "each needs to be as stylised as PyTorch's last image.")
flags.DEFINE_integer("quality_every", 10, "--mode=quality: evaluations "
                     "between scored images.", lower_bound=1)
flags.DEFINE_list("quality_runs", ["optax_lbfgs", "adam", "pyramid"],
                  "--mode=quality: nst_jax's runs: optax_lbfgs and adam at "
                  "the size (one level), pyramid: the default coarse to "
                  "fine run (transfer.pyramid; only where it has more than "
                  "one level).")
flags.DEFINE_string("plot", None, "--mode=quality: write the curves (one "
                    "row of panels per size) to this PNG.")
flags.DEFINE_list("style_stats", ["gram", "moments", "covariance", "swd", "cmd"],
                  "Representations timed by --mode=representations "
                  "(names of --style_stat, default parameters).")
flags.DEFINE_list("precisions", list(vgg.PRECISIONS), "Policies compared by "
                  "--mode=precision.")
flags.DEFINE_string("json", None, "Also write every figure to this JSON file.")
flags.DEFINE_string("save_images", None, "Directory for the final images of "
                    "each run (PNG).")

FLAGS = flags.FLAGS


def _config():
  """The runs' ``TransferConfig`` from the shared flags (iterations: this
  benchmark's per-device default when not given). PyTorch runs float32, or
  TF32 (cudnn/matmul allow_tf32) when --precision is not float32 on a GPU;
  FLOP/s are counted as direct convolutions' FLOPs whatever --conv says."""
  config = cli.transfer_config()
  if FLAGS.iterations is not None:
    config = config.replace(solver=dict(maxiter=FLAGS.iterations))
  return config


def _fmt(v, unit=""):
  if v is None:
    return "—"
  if isinstance(v, str):
    return v
  if abs(v) >= 1000 or (abs(v) < 0.01 and v != 0):
    return f"{v:.3g}{unit}"
  return f"{v:.3f}{unit}" if abs(v) < 10 else f"{v:.1f}{unit}"


def _ratio(a, b):
  if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or (
      not b):
    return None
  return a / b


def _print_row(name, cells, columns, ratio_columns, torch_col="torch"):
  values = [_fmt(cells.get(c)) for c in columns]
  ratios = [_fmt(_ratio(cells.get(c), cells.get(torch_col)))
            for c in ratio_columns]
  print(f"  {name:34s} " + " ".join(f"{v:>11s}" for v in values)
        + ("  | " + " ".join(f"{r:>9s}" for r in ratios) if ratio_columns
           else ""), flush=True)


def _jax_run(fun, method, iterations, x0, args):
  """Compiles and runs the solver loop once; every evaluation reports its
  value and a timestamp through a host callback (the trace)."""
  trace, start = [], [0.0]

  def record(value):
    trace.append((time.perf_counter() - start[0], float(value)))

  def traced(x, *a):
    total, terms = fun(x, *a)
    jax.debug.callback(record, total)
    return total, terms

  cfg = solvers.SolverConfig(method=method, maxiter=iterations)
  run = jax.jit(lambda x, a: solvers.minimize(traced, x, cfg, (), a))
  t = time.perf_counter()
  compiled = run.lower(x0, args).compile()
  compile_s = time.perf_counter() - t
  mem = compiled.memory_analysis()
  xla_bytes = None if mem is None else int(
      mem.temp_size_in_bytes + mem.argument_size_in_bytes +
      mem.output_size_in_bytes - mem.alias_size_in_bytes)
  with bm.PeakRSS() as peak:
    start[0] = time.perf_counter()
    result = jax.block_until_ready(compiled(x0, args))
    seconds = time.perf_counter() - start[0]
  return {
      "compile_s": compile_s, "seconds": seconds,
      "iterations": int(result.iterations),
      "evaluations": int(result.function_evaluations),
      "final_loss": float(result.value), "trace": trace,
      "traced_evaluations": len(trace),
      "xla_bytes": xla_bytes, "rss_peak_bytes": peak.delta,
      "image": np.asarray(jnp.clip(result.x, 0, 1)),
      "status": solvers.STATUS_NAMES[int(result.status)],
  }


def _jax_images(fun, method, iterations, x0, args, every):
  """Compiles (not timed) and runs the solver loop once; every ``every``-th
  evaluation's image reaches the host with its time: ``(trace, seconds)``,
  trace ``[(seconds, image)]`` (images clipped to [0, 1])."""
  trace, count, start = [], [0], [0.0]

  def record(x):
    if count[0] % every == 0:
      trace.append((time.perf_counter() - start[0],
                    np.clip(np.asarray(x), 0, 1)))
    count[0] += 1

  def traced(x, *a):
    out = fun(x, *a)
    jax.debug.callback(record, x)
    return out

  cfg = _config().solver
  cfg = dataclasses.replace(cfg, method=method, maxiter=iterations)
  run = jax.jit(lambda x, a: solvers.minimize(traced, x, cfg, (), a))
  compiled = run.lower(x0, args).compile()
  start[0] = time.perf_counter()
  result = jax.block_until_ready(compiled(x0, args))
  seconds = time.perf_counter() - start[0]
  trace.append((seconds, np.clip(np.asarray(result.x), 0, 1)))
  return trace, seconds


def _first_time(curve, target):
  """The first seconds at which ``curve`` ``[(seconds, value)]`` is at or
  below ``target``; None if never."""
  return next((t for t, v in curve if v <= target), None)


def _pyramid_images(scales, scale_iterations, params, content_full,
                    style_full, every):
  """nst_jax's default coarse-to-fine L-BFGS run (``transfer.pyramid``'s
  levels) as one ``(trace, seconds)`` like ``_jax_images``: each level starts
  from the previous level's result resized to its shape (``io.resize_to``,
  as ``transfer.stylize_multiscale`` does) and its times continue the
  previous level's. As for the one-level runs, compilation and the targets
  are not timed. Trace images have their level's size."""
  trace, offset, image = [], 0.0, None
  for level_size, level_iterations in zip(scales, scale_iterations):
    _, shape, _, _, _, _, fun, args, x0 = _setup(
        level_size, params, content_full, style_full)
    if image is not None:
      x0 = jnp.asarray(io.resize_to(image, shape))
    level_trace, seconds = _jax_images(fun, "optax_lbfgs", level_iterations,
                                       x0, args, every)
    trace += [(offset + t, im) for t, im in level_trace]
    offset += seconds
    image = level_trace[-1][1]
  return trace, offset


def quality_size(size, params, content_full, style_full, torch_mod, nets):
  """Quality against time at one long edge: the default transfer with
  nst_jax's L-BFGS (``--optimizer``'s default) and Adam at one level, its
  default coarse-to-fine run (``_pyramid_images``; ``--quality_runs`` picks
  among the three) and the PyTorch loop (same objective, one level), each
  current image scored by
  ``metrics.score`` (relative sliced Wasserstein distance to the style,
  LPIPS-VGG to the content, at ``metrics.SCORE_SIZE``)."""
  from nst_jax import metrics  # pylint: disable=g-import-not-at-top
  iterations, every = FLAGS.iterations, FLAGS.quality_every
  config, shape, content, style, spec, weights, fun, args, x0 = _setup(
      size, params, content_full, style_full)
  print(f"\n== quality, {size} px ({shape[1]}x{shape[0]}), {iterations} "
        f"iterations, β {config.weights.style:g}, size_invariant "
        f"{spec.size_invariant} ==", flush=True)
  runs = {}
  for method in ("optax_lbfgs", "adam"):
    if method in FLAGS.quality_runs:
      runs[method] = _jax_images(fun, method, iterations, x0, args, every)
  scales, scale_iterations = transfer.pyramid(size, iterations)
  if "pyramid" in FLAGS.quality_runs and len(scales) > 1:
    runs["pyramid"] = _pyramid_images(scales, scale_iterations, params,
                                      content_full, style_full, every)
  elif "pyramid" in FLAGS.quality_runs:
    print(f"  (no pyramid run: the default transfer at {size} px is one "
          f"level, below 2 x {transfer.PYRAMID_BASE} px)", flush=True)
  if torch_mod is not None:
    tobj = _torch_objective(params, content, style, config, spec, weights,
                            "cpu")
    trace, count = [], [0]

    def keep(seconds, img):
      if count[0] % every == 0:
        trace.append((seconds, np.clip(
            img[0].permute(1, 2, 0).cpu().numpy(), 0, 1)))
      count[0] += 1
    run = tr.torch_lbfgs(tobj, content, iterations, on_evaluation=keep)
    trace.append((run.seconds, np.clip(run.image, 0, 1)))
    runs["torch"] = (trace, run.seconds)
  curves = {}
  for name, (trace, seconds) in runs.items():
    scores = metrics.score(nets, content, style, [im for _, im in trace])
    curves[name] = {"seconds": [t for t, _ in trace], "run_seconds": seconds,
                    "swd": scores["swd"].tolist(),
                    "lpips_vgg": scores["lpips_vgg"].tolist(),
                    "gram": scores["gram"].tolist()}
  target = curves["torch"]["swd"][-1] if "torch" in curves else None
  print(f"  {'run':12s} {'seconds':>8s} {'SWD':>6s} {'LPIPS':>6s} "
        f"{'Gram':>6s}  seconds to PyTorch's final SWD"
        + (f" ({target:.3f})" if target is not None else ""), flush=True)
  for name, c in curves.items():
    reach = (None if target is None else
             _first_time(zip(c["seconds"], c["swd"]), target))
    c["seconds_to_torch_swd"] = reach
    print(f"  {name:12s} {c['run_seconds']:8.1f} {c['swd'][-1]:6.3f} "
          f"{c['lpips_vgg'][-1]:6.3f} {c['gram'][-1]:6.3f}  "
          + ("never" if reach is None and target is not None else
             _fmt(reach, " s")), flush=True)
  return {"size": size, "shape": list(shape), "iterations": iterations,
          "every": every, "style_weight": config.weights.style,
          "size_invariant": spec.size_invariant, "torch_final_swd": target,
          "curves": curves}


def quality_figure(results):
  """One row of panels (SWD and LPIPS against seconds) per size."""
  rows = []
  for r in results:
    panels = [figures.Panel(
        [figures.Series(name, c["seconds"], c[key])
         for name, c in r["curves"].items()], "seconds",
        f"{label}, {r['size']} px",
        hlines=([(r["torch_final_swd"], "PyTorch final")]
                if key == "swd" and r["torch_final_swd"] else ()))
              for key, label in (("swd", "style SWD (lower: more stylised)"),
                                 ("lpips_vgg", "LPIPS to the content"))]
    rows.append(figures.metric_panels(panels, height=340))
  return np.concatenate(rows, axis=0)


def _device_memory_peak():
  try:
    stats = jax.devices()[0].memory_stats() or {}
  except Exception:  # pylint: disable=broad-except
    stats = {}
  return stats.get("peak_bytes_in_use")


def _problem(size, params, content_full, style_full, config):
  """Images at ``size`` and the objective's targets and weights."""
  shape = io.long_edge_shape(content_full.shape[:2], size)
  content = io.resize_to(content_full, shape)
  style = io.resize_long_edge(style_full, size)
  spec = config.objective_spec()
  targets = make_targets(params, jnp.asarray(content),
                                   [jnp.asarray(style)], spec)
  weights = config.weights.arrays(spec)
  return shape, content, style, spec, targets, weights


def _setup(size, params, content_full, style_full):
  """``_problem`` for the flags' config, with the objective, its data and
  the content init: ``(config, shape, content, style, spec, weights, fun,
  args, x0)``."""
  config = _config()
  shape, content, style, spec, targets, weights = _problem(
      size, params, content_full, style_full, config)
  fun = objective.objective_function(spec)
  return (config, shape, content, style, spec, weights, fun,
          (params, targets, weights), jnp.asarray(content))


def _torch_objective(params, content, style, config, spec, weights, device):
  """``torch_reference``'s objective equal to nst_jax's for ``spec``: it
  writes the paper's sums, so α and γ are multiplied by
  ``objective.size_scale`` (``1/(H·W)`` when ``spec.size_invariant``), as
  nst_jax's content and TV terms are."""
  scale = objective.size_scale(spec, content.shape)
  return tr.torch_objective(
      params, content, [style], content_layers=spec.content_layers,
      style_layers=spec.style_layers,
      style_layer_weights=[float(v) for v in weights.style_layers],
      content_weight=config.weights.content * scale,
      style_weight=config.weights.style, tv_weight=config.weights.tv * scale,
      pooling=spec.pooling, device=device)


def bench_size(size, params, content_full, style_full, torch_mod, peak,
               platform):
  """Every figure at one long edge; returns them as a dict."""
  iterations = FLAGS.iterations
  config, shape, content, style, spec, weights, fun, args, x0 = _setup(
      size, params, content_full, style_full)
  flops = bm.evaluation_flops(config.network, shape, spec.layers)
  h, w = shape
  print(f"\n== {size} px ({w}x{h}), {iterations} iterations, conv work "
        f"{flops / 1e9:.1f} GFLOP per evaluation ==", flush=True)
  out = {"size": size, "shape": [h, w], "iterations_requested": iterations,
         "eval_gflop": flops / 1e9}

  vg = jax.jit(jax.value_and_grad(fun, has_aux=True))
  t = time.perf_counter()
  (value, _), grad = jax.block_until_ready(vg(x0, *args))
  out["eval_compile_s"] = time.perf_counter() - t

  tobj = None
  if torch_mod is not None:
    device = "cuda" if platform == "gpu" else "cpu"
    tobj = _torch_objective(params, content, style, config, spec, weights,
                            device)
    # The check compares the objectives themselves: float32 on both sides.
    spec32 = dataclasses.replace(spec, precision="float32", remat=False)
    vg32 = (vg if spec32 == spec else jax.jit(jax.value_and_grad(
        objective.objective_function(spec32), has_aux=True)))
    # At the init itself, flat (e.g. saturated) regions give max-pool
    # windows with tied maxima, where JAX and torch route the gradient to
    # different (equally valid) elements; the strict check is made at the
    # init shrunk into (0.001, 0.999) plus uniform noise of ±1e-3, where
    # there are no ties.
    noisy = (0.998 * content + 0.001 + np.random.default_rng(0).uniform(
        -1e-3, 1e-3, content.shape)).astype(np.float32)  # inside (0, 1)
    # And at an image far from the content (uniform noise), where the
    # content term weighs as much as the style term: a wrong α or γ (e.g.
    # the size-invariant factor) shows there, not at the init.
    far = np.random.default_rng(1).uniform(0.001, 0.999, content.shape
                                           ).astype(np.float32)
    for name, image in (("init", content), ("init+noise", noisy),
                        ("noise", far)):
      (v32, _), g32 = vg32(jnp.asarray(image), *args)
      tv, tg = tr.torch_value_and_grad(tobj, image)
      check = tr.compare_with_torch(float(v32), np.asarray(g32), tv, tg)
      out[f"check_{name}"] = check
      print(f"  check at the {name}: value {float(v32):.6g} (torch "
            f"{tv:.6g}), relative differences: value {check['value']:.1e}, "
            f"gradient {check['grad']:.1e} (2-norm), {check['grad_max']:.1e} "
            "(max)", flush=True)
    if (check["value"] > FLAGS.check_rtol or
        check["grad"] > FLAGS.check_grad_rtol):
      raise NSTError(f"the torch objective differs from nst_jax's by more "
                     f"than --check_rtol={FLAGS.check_rtol} (value) or "
                     f"--check_grad_rtol={FLAGS.check_grad_rtol} (gradient): "
                     f"{check}")

  # ms per evaluation, the two sides interleaved, after two warm-up calls
  # each (oneDNN builds its convolution primitives over the first calls).
  for _ in range(2):
    jax.block_until_ready(vg(x0, *args))
    if tobj is not None:
      tr.torch_value_and_grad(tobj, content)
  jax_ms, torch_ms = [], []
  for _ in range(FLAGS.eval_repeats):
    t = time.perf_counter()
    jax.block_until_ready(vg(x0, *args))
    jax_ms.append(1e3 * (time.perf_counter() - t))
    if tobj is not None:
      t = time.perf_counter()
      x = tr.torch_image(content, tobj.device).requires_grad_(True)
      tobj.loss(x).backward()
      float(x.grad.sum())  # synchronises
      torch_ms.append(1e3 * (time.perf_counter() - t))

  runs = {}
  torch_run = None
  # The long runs: PyTorch first (its final loss is the target), then each
  # nst_jax solver.
  if tobj is not None:
    with bm.PeakRSS() as peak_rss:
      if platform == "gpu":
        torch_mod.cuda.reset_peak_memory_stats()
      torch_run = tr.torch_lbfgs(tobj, content, iterations)
    torch_mem = (torch_mod.cuda.max_memory_allocated() if platform == "gpu"
                 else peak_rss.delta)
  for method in FLAGS.solvers:
    runs[method] = _jax_run(fun, method, iterations, x0, args)

  cols = list(runs) + (["torch"] if torch_run else [])
  ratio_cols = list(runs) if torch_run else []
  print(f"  {'':34s} " + " ".join(f"{c:>11s}" for c in cols)
        + ("  | " + " ".join(f"{c[:9]:>9s}" for c in ratio_cols)
           if ratio_cols else "") + ("   (ratio: nst_jax/torch)"
                                     if ratio_cols else ""), flush=True)
  rows = {}

  def row(name, **cells):
    rows[name] = cells
    _print_row(name, cells, cols, ratio_cols)

  per = lambda r: r["seconds"] / max(r["iterations"], 1)
  row("ms/evaluation (standalone)",
      **{m: bm.median(jax_ms) for m in runs},
      **({"torch": bm.median(torch_ms)} if torch_run else {}))
  row("ms/evaluation (in the loop)",
      **{m: 1e3 * r["seconds"] / r["evaluations"] for m, r in runs.items()},
      **({"torch": 1e3 * torch_run.seconds / torch_run.evaluations}
         if torch_run else {}))
  row("evaluations/iteration",
      **{m: r["evaluations"] / max(r["iterations"], 1)
         for m, r in runs.items()},
      **({"torch": torch_run.evaluations / max(torch_run.iterations, 1)}
         if torch_run else {}))
  row("evaluations (host-counted)",
      **{m: float(r["traced_evaluations"]) for m, r in runs.items()},
      **({"torch": float(len(torch_run.trace))} if torch_run else {}))
  row("ms/iteration",
      **{m: 1e3 * per(r) for m, r in runs.items()},
      **({"torch": 1e3 * torch_run.seconds / torch_run.iterations}
         if torch_run else {}))
  row(f"s for {iterations} iterations",
      **{m: r["seconds"] for m, r in runs.items()},
      **({"torch": torch_run.seconds} if torch_run else {}))
  if iterations < 500:
    row("s for 500 (EXTRAPOLATED)",
        **{m: 500 * per(r) for m, r in runs.items()},
        **({"torch": 500 * torch_run.seconds / torch_run.iterations}
           if torch_run else {}))
  row(f"final loss after {iterations}",
      **{m: r["final_loss"] for m, r in runs.items()},
      **({"torch": torch_run.final_loss} if torch_run else {}))
  if torch_run:
    target = torch_run.final_loss
    reach = {m: bm.time_to_reach(r["trace"], target) for m, r in runs.items()}
    row("s to reach torch's final loss",
        **{m: (v if v is not None else f">{runs[m]['seconds']:.1f}")
           for m, v in reach.items()},
        torch=torch_run.seconds)  # its final loss: at the end of its run
  row("compile s (cold, loop)", **{m: r["compile_s"] for m, r in runs.items()},
      **({"torch": None} if torch_run else {}))
  mem_label = ("peak MiB (process RSS rise)" if platform == "cpu"
               else "peak MiB (device allocator)")
  row("MiB (XLA buffers of the loop)",
      **{m: r["xla_bytes"] / 2**20 if r["xla_bytes"] else None
         for m, r in runs.items()},
      **({"torch": None} if torch_run else {}))
  row(mem_label,
      **{m: (r["rss_peak_bytes"] / 2**20 if platform == "cpu" and
             r["rss_peak_bytes"] is not None else None)
         for m, r in runs.items()},
      **({"torch": torch_mem / 2**20 if torch_mem is not None else None}
         if torch_run else {}))
  tflops = {m: flops * r["evaluations"] / r["seconds"] / 1e12
            for m, r in runs.items()}
  if torch_run:
    tflops["torch"] = flops * torch_run.evaluations / torch_run.seconds / 1e12
  row("conv TFLOP/s (in the loop)", **tflops)
  if peak:
    row("% of peak", **{k: 100 * v / peak for k, v in tflops.items()})
  out["rows"] = rows
  out["runs"] = {m: {k: v for k, v in r.items() if k not in ("trace", "image")}
                 for m, r in runs.items()}
  if torch_run:
    out["runs"]["torch"] = {"seconds": torch_run.seconds,
                            "iterations": torch_run.iterations,
                            "evaluations": torch_run.evaluations,
                            "final_loss": torch_run.final_loss,
                            "peak_bytes": torch_mem}
  if FLAGS.save_images:
    for m, r in runs.items():
      io.save_image(os.path.join(FLAGS.save_images,
                                 f"{size}_{m}_{FLAGS.precision}.png"),
                    r["image"])
    if torch_run:
      io.save_image(os.path.join(FLAGS.save_images, f"{size}_torch.png"),
                    np.clip(torch_run.image, 0, 1))
  return out


def memory_size(size, params, content_full, style_full, platform):
  """Estimated, assigned and measured memory of the solver loop at one size.
  """
  shape = io.long_edge_shape(content_full.shape[:2], size)
  content = io.resize_to(content_full, shape)
  style = io.resize_long_edge(style_full, size)
  config = _config()
  spec = config.objective_spec()
  estimate = transfer.estimate_memory(config, shape)
  with bm.PeakRSS() as total:
    targets = make_targets(params, jnp.asarray(content),
                                     [jnp.asarray(style)], spec)
    weights = config.weights.arrays(spec)
    fun = objective.objective_function(spec)
    args = (params, targets, weights)
    x0 = jnp.asarray(content)
    cfg = config.solver
    run = jax.jit(lambda x, a: solvers.minimize(fun, x, cfg, (), a))
    t = time.perf_counter()
    compiled = run.lower(x0, args).compile()
    compile_s = time.perf_counter() - t
    mem = compiled.memory_analysis()
    with bm.PeakRSS() as loop:
      t = time.perf_counter()
      result = jax.block_until_ready(compiled(x0, args))
      seconds = time.perf_counter() - t
  h, w = shape
  gib = lambda b: None if b is None else b / 2**30
  out = {"size": size, "shape": [h, w], "remat": FLAGS.checkpoint,
         "estimate_gib": gib(estimate),
         "xla_temp_gib": gib(mem.temp_size_in_bytes) if mem else None,
         "xla_total_gib": gib(mem.temp_size_in_bytes +
                              mem.argument_size_in_bytes +
                              mem.output_size_in_bytes -
                              mem.alias_size_in_bytes) if mem else None,
         "loop_rss_rise_gib": gib(loop.delta),
         "run_rss_rise_gib": gib(total.delta),
         "process_peak_gib": gib(bm.peak_rss_bytes()),
         "device_peak_gib": gib(_device_memory_peak()),
         "compile_s": compile_s,
         "s_per_iteration": seconds / max(int(result.iterations), 1),
         "iterations": int(result.iterations)}
  print(f"{size} px ({w}x{h}) checkpoint={FLAGS.checkpoint}: estimate "
        f"{_fmt(out['estimate_gib'])} GiB; XLA buffers {_fmt(out['xla_total_gib'])}"
        f" GiB (temp {_fmt(out['xla_temp_gib'])}); measured "
        + (f"RSS rise {_fmt(out['loop_rss_rise_gib'])} GiB in the loop, "
           f"{_fmt(out['run_rss_rise_gib'])} GiB with targets and compilation,"
           f" process peak {_fmt(out['process_peak_gib'])} GiB"
           if platform == "cpu" else
           f"device peak {_fmt(out['device_peak_gib'])} GiB")
        + f"; compile {compile_s:.1f} s, {out['s_per_iteration']:.2f} "
        f"s/iteration over {out['iterations']}", flush=True)
  return out


def layers_size(size, params, content_full):
  """Each convolution up to relu5_1 alone: direct against Winograd (every
  3×3 layer, also those below ``vgg.WINOGRAD_MIN_CHANNELS``)."""
  shape = io.long_edge_shape(content_full.shape[:2], size)
  prepared = vgg.prepare_params(params, "winograd", min_channels=1)
  deepest = max(transfer.TransferConfig().objective_spec().layers,
                key=networks.layer_names("vgg16").index)
  rows = bm.conv_layer_timings(params, prepared, shape, deepest,
                               FLAGS.eval_repeats)
  h, w = shape
  print(f"\n== {size} px ({w}x{h}): forward + input gradient of each "
        f"convolution, median of {FLAGS.eval_repeats}, interleaved ==",
        flush=True)
  print(f"  {'layer':8s} {'input HxWxC':>14s} {'out':>5s} {'GFLOP':>7s} "
        f"{'direct ms':>10s} {'winograd ms':>12s} {'ratio':>7s} "
        f"{'direct TFLOP/s':>15s}", flush=True)
  for r in rows:
    ratio = None if r.winograd_ms is None else r.winograd_ms / r.direct_ms
    print(f"  {r.layer:8s} {'x'.join(map(str, r.shape)):>14s} "
          f"{r.out_channels:5d} {r.gflop:7.2f} {r.direct_ms:10.1f} "
          f"{_fmt(r.winograd_ms):>12s} {_fmt(ratio):>7s} "
          f"{2 * r.gflop / r.direct_ms:15.3f}", flush=True)
  direct = sum(r.direct_ms for r in rows)
  best = sum(min(r.direct_ms, r.winograd_ms or r.direct_ms) for r in rows)
  used = sum(r.winograd_ms if r.winograd_ms is not None else r.direct_ms
             for r in rows)
  auto = set(vgg.winograd_layers("vgg16"))
  chosen = sum(r.winograd_ms if r.layer in auto else r.direct_ms
               for r in rows)
  print(f"  all layers: direct {direct:.1f} ms; Winograd on every 3x3 layer "
        f"{used:.1f} ms ({used / direct:.3f}x); Winograd on the layers with "
        f">= {vgg.WINOGRAD_MIN_CHANNELS} output channels (conv=winograd) "
        f"{chosen:.1f} ms ({chosen / direct:.3f}x); the faster of the two per "
        f"layer {best:.1f} ms ({best / direct:.3f}x)", flush=True)
  return {"size": size, "shape": [h, w],
          "layers": [r._asdict() for r in rows],
          "direct_ms": direct, "all_winograd_ms": used,
          "winograd_ms": chosen, "best_ms": best}


def precision_size(size, params, content_full, style_full):
  """One transfer per precision policy; every result scored in float32."""
  base = _config().replace(spec=dict(precision="float32"))
  shape, content, style, spec32, targets, weights = _problem(
      size, params, content_full, style_full, base)
  score = jax.jit(objective.objective_function(spec32))
  h, w = shape
  print(f"\n== {size} px ({w}x{h}), {FLAGS.iterations} iterations ==",
        flush=True)
  out, images = {"size": size, "shape": [h, w], "policies": {}}, {}
  for precision in FLAGS.precisions:
    config = base.replace(spec=dict(precision=precision))
    result = transfer.stylize(params, content, [style], config, log_every=0)
    loss32 = float(score(jnp.asarray(result.image), params, targets,
                         weights)[0])
    own = result.loss_history[-1]["total"]
    seconds = result.wall_seconds
    images[precision] = result.image
    out["policies"][precision] = {"float32_loss": loss32, "own_loss": own,
                                  "wall_seconds": seconds,
                                  "evaluations": result.function_evaluations}
    print(f"  {precision:8s} final loss {loss32:.5g} (float32 objective; "
          f"{own:.5g} under its own policy), {seconds:.1f} s with "
          f"compilation, {result.function_evaluations} evaluations",
          flush=True)
  ref = images.get("float32")
  if ref is not None:
    for precision, image in images.items():
      diff = np.abs(image - ref)
      out["policies"][precision]["max_abs_pixel_diff"] = float(diff.max())
      out["policies"][precision]["mean_abs_pixel_diff"] = float(diff.mean())
      print(f"  {precision:8s} vs float32: mean |Δpixel| {diff.mean():.4f}, "
            f"max {diff.max():.4f}", flush=True)
  if FLAGS.save_images:
    labels = [f"{p}: loss {out['policies'][p]['float32_loss']:.4g}"
              for p in images]
    io.save_image(os.path.join(FLAGS.save_images, f"precision_{size}.png"),
                  figures.side_by_side(list(images.values()), labels,
                                       height=min(h, 384)))
  return out


def representations_size(size, params, content_full, style_full):
  """Milliseconds of one value-and-gradient of the default objective with
  each representation of ``--style_stats``, timed interleaved
  (``--eval_repeats`` rounds, median), and each one's ratio to gram."""
  from nst_jax import representations  # pylint: disable=g-import-not-at-top
  config = _config()
  shape = io.long_edge_shape(content_full.shape[:2], size)
  content = io.resize_to(content_full, shape)
  style = io.resize_long_edge(style_full, size)
  base = config.objective_spec()
  runs = {}
  for name in FLAGS.style_stats:
    spec = dataclasses.replace(
        base, style=representations.from_name(name, base.style_layers))
    targets = make_targets(params, jnp.asarray(content),
                                     [jnp.asarray(style)], spec)
    vg = jax.jit(jax.value_and_grad(objective.objective_function(spec),
                                    has_aux=True))
    args = (jnp.asarray(content), params, targets, config.weights.arrays(spec))
    jax.block_until_ready(vg(*args))   # compile
    runs[name] = (vg, args)
  times = {name: [] for name in runs}
  for _ in range(FLAGS.eval_repeats):
    for name, (vg, args) in runs.items():
      t = time.perf_counter()
      jax.block_until_ready(vg(*args))
      times[name].append(time.perf_counter() - t)
  ms = {name: 1e3 * bm.median(t) for name, t in times.items()}
  h, w = shape
  print(f"\n== {size} px ({w}x{h}): one value-and-gradient, median of "
        f"{FLAGS.eval_repeats} interleaved ==", flush=True)
  for name, value in ms.items():
    ratio = value / ms["gram"] if "gram" in ms else float("nan")
    print(f"{name:12s} {value:9.1f} ms   {ratio:5.2f}x gram", flush=True)
  return {"size": size, "shape": [h, w], "eval_ms": ms}


def main(argv):
  if len(argv) > 1:
    raise NSTError(f"unexpected arguments: {' '.join(argv[1:])}")
  cli.enable_compilation_cache()
  platform = jax.devices()[0].platform
  on_gpu = platform == "gpu"
  if FLAGS.iterations is None:
    FLAGS.iterations = 500 if on_gpu else 100
  try:
    sizes = ([int(s) for s in FLAGS.sizes] if FLAGS.sizes else
             [256, 512, 1024] if on_gpu else [256, 512])
  except ValueError:
    raise NSTError(f"--sizes must be integers, got {FLAGS.sizes}") from None
  unknown = set(FLAGS.quality_runs) - {"optax_lbfgs", "adam", "pyramid"}
  if unknown:  # before anything is loaded or run
    raise NSTError(f"--quality_runs: unknown {sorted(unknown)}; known: "
                   "optax_lbfgs, adam, pyramid")
  for method in FLAGS.solvers:
    if method not in ("optax_lbfgs", "lbfgs"):
      raise NSTError(f"--solvers takes optax_lbfgs and lbfgs, got {method!r}")
  if "lbfgs" in FLAGS.solvers:
    try:
      import jaxopt  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      print("jaxopt is not installed: skipping --solvers=lbfgs", flush=True)
      FLAGS.solvers = [m for m in FLAGS.solvers if m != "lbfgs"]
  torch_mod = None
  if FLAGS.torch and FLAGS.mode in ("compare", "quality"):
    torch_mod = tr.import_torch()
    if on_gpu:
      if not torch_mod.cuda.is_available():
        raise NSTError("JAX runs on a GPU but this torch has no CUDA: the "
                       "sides must share the device (or pass --notorch)")
      tf32 = FLAGS.precision != "float32"
      torch_mod.backends.cudnn.allow_tf32 = tf32
      torch_mod.backends.cuda.matmul.allow_tf32 = tf32
  device = jax.devices()[0]
  kind = getattr(device, "device_kind", platform)
  peak, peak_source = ((FLAGS.peak_tflops, "--peak_tflops")
                       if FLAGS.peak_tflops else
                       bm.peak_tflops(platform, kind, FLAGS.precision))
  conv = vgg.resolve_conv(FLAGS.conv)
  raw_params = vgg.load_params("vgg16")
  params = vgg.prepare_params(raw_params, conv, transfer.TransferConfig().objective_spec().layers)
  content_full = io.load_image(FLAGS.content)
  style_full = io.load_image(FLAGS.style[0])
  described = (f"{bm.cpu_model()}, {len(os.sched_getaffinity(0))} cores"
               if platform == "cpu" else kind)
  print(f"nst_jax benchmark, {time.strftime('%Y-%m-%d')}, {platform}: "
        f"{described}; jax {jax.__version__}"
        + (f", torch {torch_mod.__version__} "
           f"({torch_mod.get_num_threads()} threads)" if torch_mod else "")
        + f"; precision {FLAGS.precision}; conv {conv}"
        + (", checkpointing" if FLAGS.checkpoint else ""), flush=True)
  print(f"peak: {_fmt(peak)} TFLOP/s ({peak_source}); memory: "
        + ("peak RSS rise of this process during each run (VmHWM reset "
           "through /proc/self/clear_refs), and XLA's buffer assignment"
           if platform == "cpu" else
           "torch.cuda.max_memory_allocated; XLA's buffer assignment"),
        flush=True)
  results = []
  for size in sizes:
    if FLAGS.mode == "precision":
      results.append(precision_size(size, params, content_full, style_full))
    elif FLAGS.mode == "layers":
      results.append(layers_size(size, raw_params, content_full))
    elif FLAGS.mode == "representations":
      results.append(representations_size(size, params, content_full,
                                          style_full))
    elif FLAGS.mode == "quality":
      from nst_jax import metrics  # pylint: disable=g-import-not-at-top
      nets = metrics.load_metric_networks()
      results.append(quality_size(size, params, content_full, style_full,
                                  torch_mod, nets))
    elif FLAGS.mode == "memory":
      results.append(memory_size(size, params, content_full, style_full,
                                 platform))
    else:
      results.append(bench_size(size, params, content_full, style_full,
                                torch_mod, peak, platform))
  if FLAGS.mode == "quality" and FLAGS.plot:
    io.save_image(FLAGS.plot, quality_figure(results))
    print(f"wrote {FLAGS.plot}")
  if FLAGS.json:
    record = {"date": time.strftime("%Y-%m-%d"), "platform": platform,
              "device": described, "jax": jax.__version__,
              "torch": torch_mod.__version__ if torch_mod else None,
              "precision": FLAGS.precision, "checkpoint": FLAGS.checkpoint,
              "conv": conv,
              "peak_tflops": peak, "peak_source": peak_source,
              "argv": sys.argv, "sizes": results}
    io.save_json(FLAGS.json, record)
    print(f"wrote {FLAGS.json}")


if __name__ == "__main__":
  cli.run(main)
