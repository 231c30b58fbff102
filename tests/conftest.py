"""Shared test setup: the repository root on sys.path, silent broadcasting
turned into errors (equinox's habit), the real and the random weights, and a
compilation cache of the session's own.

Weights. A test that needs the trained VGG-16 (golden values, the objective
against PyTorch, the commands run as a user runs them) requests
``vgg16_params``; a test that needs only the architecture calls
``tiny_vgg16_params()`` (random weights of the same shapes), so that it runs
on any clone. Without ``weights/vgg16.npz`` a run fails loudly and once: the
first test that needs the weights fails with "run `make weights`" and the
others that need them are deselected (counted in the summary line), rather
than sixty silent skips. ``NST_JAX_SKIP_WEIGHTS=1`` is the explicit opt-out:
those tests are then skipped.

Tolerances. ``tol(cpu, gpu)`` (import it: ``from conftest import tol``) is a
comparison's tolerance for the backend the suite runs on; the ``cpu`` value
is the one the suite always had.

Compilation cache. ``NST_JAX_CACHE_DIR`` is set for the whole session to one
directory under pytest's temporary root before any test runs, so neither the
tests nor the commands they start (which inherit ``os.environ``) read or write
the user's ``~/.cache/nst_jax``. It is one directory for the whole run, shared
by the pytest-xdist workers: a program one command compiled is loaded by every
later one. JAX writes cache entries in place, so the run makes those writes
atomic in every process (``tests/cache_site``, on the children's
``PYTHONPATH``). A test that must compile (one that times a first run) passes
``NST_JAX_CACHE_DIR=off`` to its child (``scripting.run(..., cache=False)``).

Compiler. The suite compiles hundreds of small programs and runs each for a
moment, so XLA's CPU backend optimisations (LLVM's passes) cost it more than
they save: on the CPU (not where JAX's CUDA plugin may pick a GPU) the
suite sets ``--xla_backend_optimization_level=0`` in ``XLA_FLAGS`` before
JAX starts, for its workers and the commands they start
(test_methods.py with test_resume.py on one core: 310 s → 258 s,
2026-12-07); a test whose commands cost more running than compiling starts
them at XLA's defaults (``scripting.child_env``'s ``xla_defaults``). The
level changes how fast the compiled code runs and, at the last bit, some
roundings (no fast-math either way; a STROTSS loss moved by one ulp), never
the formulas; the commands, the benchmarks and the GPU report's
test run (``scripts/gpu_report.py``) keep XLA's defaults.
``NST_JAX_TEST_XLA_DEFAULTS=1`` runs the suite with them too. A test that
compares two programs to the last bits (a grid's cells against cells run
alone, tiled against untiled after several solver steps) holds only under
XLA's default roundings: it is marked ``xla_defaults`` and, in a worker
with the flag, runs in a pytest process of its own with the defaults
(:func:`pytest_pyfunc_call`); a child that must compare so passes
``XLA_FLAGS`` without the flag.
"""

import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"

_TEST_XLA_FLAG = "--xla_backend_optimization_level=0"
_LEVEL = "--xla_backend_optimization_level"
XLA_DEFAULTS_ENV = "NST_JAX_TEST_XLA_DEFAULTS"
# XLA_FLAGS as the suite was given them, recorded by the first process of
# the run (pytest's, or xdist's controller) for its workers, which inherit
# the flag already set.
_GIVEN_ENV = "NST_JAX_TEST_XLA_FLAGS_GIVEN"
XLA_FLAGS_GIVEN = os.environ.setdefault(_GIVEN_ENV,
                                        os.environ.get("XLA_FLAGS", ""))


def without_level(flags: str) -> str:
  """``flags`` (an ``XLA_FLAGS`` string) without any
  ``--xla_backend_optimization_level``: XLA's default level."""
  return " ".join(f for f in flags.split() if not f.startswith(_LEVEL))


def _cuda_expected() -> bool:
  """Whether JAX may pick a GPU here (its CUDA plugin installed and
  ``JAX_PLATFORMS`` not ``cpu``): the level is the CPU backend's choice
  for the CPU suite; a GPU run keeps XLA's defaults."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  if os.environ.get("JAX_PLATFORMS", "").strip().lower() == "cpu":
    return False
  return any(importlib.util.find_spec(name) is not None
             for name in ("jax_cuda12_plugin", "jax_cuda13_plugin"))


# What a child at XLA's defaults gets; then this process's flags: the
# suite's level added before JAX starts (unless the suite was given a level,
# runs at the defaults, or may run on a GPU), and whether it compiles at a
# level other than XLA's default (XLA_FLAG_SET).
XLA_FLAGS_DEFAULTS = without_level(XLA_FLAGS_GIVEN)
_current = os.environ.get("XLA_FLAGS", "")
if os.environ.get(XLA_DEFAULTS_ENV) == "1":
  os.environ["XLA_FLAGS"] = without_level(_current)
elif (_LEVEL not in XLA_FLAGS_GIVEN and _LEVEL not in _current
      and not _cuda_expected()):
  # Added to this process's own flags (a child on virtual devices imports
  # this file after its parent set its own, the device count among them).
  os.environ["XLA_FLAGS"] = " ".join(f for f in (_current, _TEST_XLA_FLAG)
                                     if f)
XLA_FLAG_SET = _LEVEL in os.environ.get("XLA_FLAGS", "")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

SKIP_WEIGHTS_ENV = "NST_JAX_SKIP_WEIGHTS"
CACHE_DIR_ENV = "NST_JAX_CACHE_DIR"  # nst_jax.cli.CACHE_DIR_ENV
# On the children's PYTHONPATH: atomic compilation cache writes.
CACHE_SITE = ROOT / "tests" / "cache_site"
_WEIGHTS_FIXTURE = "vgg16_params"
_DESELECTED = pytest.StashKey[int]()  # how many the hook deselected


def _weights_file() -> pathlib.Path:
  from nst_jax import weights  # pylint: disable=g-import-not-at-top
  return pathlib.Path(weights.weights_path("vgg16"))


def _skip_weights() -> bool:
  return os.environ.get(SKIP_WEIGHTS_ENV, "").strip().lower() in (
      "1", "true", "yes")


def require_file(path) -> None:
  """Fails the test (skips it with ``NST_JAX_SKIP_WEIGHTS=1``) when a file
  that ``make weights`` writes is missing: the weights policy of the suite
  for the files the ``vgg16_params`` fixture does not cover."""
  if not pathlib.Path(path).exists():
    message = f"{path} missing: run `make weights` (`nst-fetch-weights`)"
    if _skip_weights():
      pytest.skip(message)
    pytest.fail(message, pytrace=False)


def _missing_message(path, deselected=0) -> str:
  more = (f"; {deselected} more tests that need them were deselected"
          if deselected else "")
  return (f"{path} is missing: run `make weights` to fetch and convert the "
          f"VGG-16 weights{more} ({SKIP_WEIGHTS_ENV}=1 skips those tests "
          f"instead)")


def pytest_collection_modifyitems(config, items):
  """Without the weights: one failure, the other tests that need them
  deselected (none of this with ``NST_JAX_SKIP_WEIGHTS=1``)."""
  needing = [item for item in items
             if _WEIGHTS_FIXTURE in getattr(item, "fixturenames", ())]
  if not needing or _skip_weights() or _weights_file().exists():
    return
  rest = needing[1:]
  config.stash[_DESELECTED] = len(rest)
  if rest:
    dropped = set(map(id, rest))
    items[:] = [item for item in items if id(item) not in dropped]
    config.hook.pytest_deselected(items=rest)



def pytest_configure(config):
  config.addinivalue_line(
      "markers", "xla_defaults: compares programs to the last bits; runs "
      "under XLA's default optimisations (its own process where the suite "
      "turned them off)")


def pytest_pyfunc_call(pyfuncitem):
  """An ``xla_defaults`` test, in a process compiling with the suite's
  flag, runs instead in ``python -m pytest <its id>`` with
  ``NST_JAX_TEST_XLA_DEFAULTS=1`` and the ``XLA_FLAGS`` the suite was
  given, less any level; its failure is this test's failure, with the
  child's output."""
  if not (XLA_FLAG_SET and pyfuncitem.get_closest_marker("xla_defaults")):
    return None
  import subprocess  # pylint: disable=g-import-not-at-top
  # Not an xdist worker: its own temporary root, so its own fresh cache.
  env = {k: v for k, v in os.environ.items()
         if not k.startswith("PYTEST_XDIST_")}
  env.update(XLA_FLAGS=XLA_FLAGS_DEFAULTS, **{XLA_DEFAULTS_ENV: "1"})
  proc = subprocess.run(
      [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
       "-p", "no:xdist", pyfuncitem.nodeid], cwd=pyfuncitem.config.rootpath,
      env=env, capture_output=True, text=True, timeout=900)
  if proc.returncode != 0:
    pytest.fail(f"{pyfuncitem.nodeid} at XLA's defaults, in its own "
                f"process, failed:\n{(proc.stdout + proc.stderr)[-6000:]}",
                pytrace=False)
  if " passed" not in proc.stdout:
    pytest.fail(f"{pyfuncitem.nodeid} did not run in its own process:\n"
                f"{proc.stdout[-3000:]}", pytrace=False)
  return True


@pytest.fixture(scope="session")
def vgg16_params(request):
  """The real converted VGG-16 weights; a missing file fails the test
  (skips it with ``NST_JAX_SKIP_WEIGHTS=1``)."""
  from nst_jax import vgg  # pylint: disable=g-import-not-at-top
  path = _weights_file()
  if not path.exists():
    if _skip_weights():
      pytest.skip(f"{path} missing and {SKIP_WEIGHTS_ENV}=1")
    pytest.fail(_missing_message(
        path, request.config.stash.get(_DESELECTED, 0)), pytrace=False)
  return vgg.load_params("vgg16")


def session_cache_dir(tmp_path_factory) -> pathlib.Path:
  """The run's one compilation cache directory: ``compilation_cache`` in
  pytest's base temporary directory, or, in a pytest-xdist worker (whose
  base is ``<run's base>/popen-gwN``), in the run's base shared by all
  workers. Fresh for every run (pytest makes a new base each time)."""
  base = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    base = base.parent
  path = base / "compilation_cache"
  path.mkdir(exist_ok=True)
  return path


def _atomic_cache_writes() -> None:
  """JAX's cache writes made atomic in this process (``cache_site``)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(
      "nst_jax_tests_cache_site", CACHE_SITE / "sitecustomize.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)   # install()s itself


@pytest.fixture(scope="session", autouse=True)
def _session_compilation_cache(tmp_path_factory):
  """``NST_JAX_CACHE_DIR`` → the run's one directory (``session_cache_dir``)
  for the whole session, and ``tests/cache_site`` first on ``PYTHONPATH``:
  every process of the run, workers and children, writes the cache
  atomically (``cache_site/sitecustomize.py``: JAX writes in place)."""
  path = session_cache_dir(tmp_path_factory)
  _atomic_cache_writes()
  python_path = [str(CACHE_SITE)] + [
      p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv(CACHE_DIR_ENV, str(path))
    patch.setenv("PYTHONPATH", os.pathsep.join(python_path))
    yield path


@pytest.fixture(scope="session")
def shared_images():
  """Path to ../shared/images (classic test images); skipped if absent."""
  path = SHARED / "images"
  if not path.is_dir():
    pytest.skip("../shared/images is not present")
  return path


def tol(cpu, gpu):
  """``cpu`` on XLA:CPU, ``gpu`` on a GPU (or TPU): a tolerance that holds on
  the backend the tests run on.

  Why two. On XLA:CPU a float32 program computes each op with one fixed
  kernel, in one order, at every run, so the suite asks for bit-identical
  results where two programs compute the same thing (chunked and single
  solver loops, a stopped run and a shorter one, a re-run) and for CPU-tight
  agreement with float64 references (golden activations, the PyTorch
  objective, Winograd against direct convolutions). On a GPU the library's
  float32 convolutions are still float32 (``lax.Precision.HIGHEST`` keeps
  TF32 out unless ``--precision=tf32``), but XLA:GPU lets cuDNN choose each
  convolution's algorithm (implicit GEMM, FFT, Winograd) by timing, per
  program and per process, each with its own rounding, and some kernels
  (scatter, some cuDNN and cuBLAS algorithms) accumulate in another order
  from one run to the next; so results
  that are bit-identical on the CPU agree there to float32 rounding (grown
  by what follows it: a few solver iterations), and comparisons with float64
  references lose about a digit. ``gpu`` says how much, ``0`` for ``cpu``
  keeps a comparison exact (``assert_allclose(..., rtol=0, atol=0)`` is
  ``assert_array_equal``). On the CPU nothing changes.

  The ``gpu`` values are reasoned from the above, not yet measured: the
  suite has not run on a GPU (issue 16, GPU figures). A GPU re-run of a
  command can still be bit-identical: ``--deterministic``
  (``cli.apply_deterministic``), as ``test_cli`` checks.
  """
  return cpu if jax.default_backend() == "cpu" else gpu


def tiny_vgg16_params(seed=0):
  """Random VGG-16-shaped weights (He-scaled), for tests that need the
  architecture but not the trained weights."""
  from nst_jax import networks  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  params = {}
  for name, shapes in networks.param_shapes("vgg16").items():
    kh, kw, cin, _ = shapes["kernel"]
    params[name] = {
        "kernel": jnp.asarray(
            rng.normal(size=shapes["kernel"]) * np.sqrt(2.0 / (kh * kw * cin)),
            jnp.float32),
        "bias": jnp.asarray(rng.normal(size=shapes["bias"]) * 0.1, jnp.float32),
    }
  return params


def random_image(h, w, seed):
  """``(h, w, 3)`` float32 uniform in [0, 1), seeded."""
  return jnp.asarray(np.random.default_rng(seed).uniform(size=(h, w, 3)),
                     jnp.float32)


def relative_error(a, b):
  """‖a − b‖ / ‖b‖ (flattened)."""
  return float(jnp.linalg.norm((a - b).ravel()) / jnp.linalg.norm(b.ravel()))


def run_on_virtual_devices(code: str, count: int = 4) -> None:
  """Runs ``code`` in a fresh Python on ``count`` virtual CPU devices (its
  first argument: this tests directory, to import ``conftest``) and asserts
  that it exits 0 having printed ``ok`` last."""
  import subprocess  # pylint: disable=g-import-not-at-top
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=" ".join((os.environ.get("XLA_FLAGS", ""),
                                 "--xla_force_host_platform_device_count="
                                 f"{count}")).strip())
  here = os.path.dirname(os.path.abspath(__file__))
  out = subprocess.run([sys.executable, "-c", code, here], env=env,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0 and out.stdout.strip().endswith("ok"), (
      out.stdout + out.stderr[-3000:])
