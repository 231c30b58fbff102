"""A command's run: one-line errors (``run_main``: every ``NSTError`` and
an interrupted run end as ``error: <message>`` on stderr with a non-zero
exit status, never a traceback), plain log lines, ``--help`` before absl
parses (``parse_flags``), the compilation cache, ``--deterministic``, the
device's description and defaults."""

import logging
import os
import platform
import sys
from typing import Callable

import jax
from absl import flags
from absl import logging as absl_logging

from nst_jax.cli._flags import (_asks_for_help, deprecation_notes,
                                flag_message, help_text)
from nst_jax.errors import NSTError


def device_description() -> str:
  """What the run ran on, for messages and records: the platform, how many
  devices of it JAX sees (over every process) and what they are, e.g.
  ``"gpu: 1 device (NVIDIA H100 80GB HBM3)"``. A CPU device's kind says
  only ``cpu``, so there the machine and its cores stand instead:
  ``"cpu: 1 device (x86_64, 2 cores)"``."""
  devices = jax.devices()
  d = devices[0]
  kinds = list(dict.fromkeys(str(getattr(x, "device_kind", "") or "")
                             for x in devices))
  kind = ", ".join(k for k in kinds if k)
  if d.platform == "cpu" or kind.lower() in ("", "cpu", d.platform):
    cores = os.cpu_count()
    kind = ", ".join([platform.machine() or "unknown machine",
                      *([f"{cores} cores"] if cores else [])])
  count = len(devices)
  return f"{d.platform}: {count} device{'' if count == 1 else 's'} ({kind})"


CACHE_DIR_ENV = "NST_JAX_CACHE_DIR"


def compilation_cache_dir() -> str | None:
  """``$NST_JAX_CACHE_DIR``, else ``~/.cache/nst_jax/jit``; ``None`` when the
  variable is set to ``""`` or ``"off"`` (caching disabled)."""
  path = os.environ.get(CACHE_DIR_ENV)
  if path is None:
    return os.path.join(os.path.expanduser("~"), ".cache", "nst_jax", "jit")
  return None if path.strip().lower() in ("", "off") else path


def enable_compilation_cache(path: str | None = None) -> str | None:
  """Turns on JAX's persistent compilation cache; returns its directory.

  ``path`` defaults to ``compilation_cache_dir()``. Every program is cached
  whatever its compile time, so a second run of a command with the same
  shapes and flags loads its programs from disk instead of compiling them.
  JAX does not write programs that contain host callbacks to the cache
  (``jax.debug.callback``); the solver keeps its progress, hooks and Ctrl-C
  on the host between compiled chunks so that its programs have none. A
  directory that cannot be created leaves the cache off (returns ``None``)
  rather than failing the run.
  """
  path = compilation_cache_dir() if path is None else path
  if path is None:
    return None
  try:
    os.makedirs(path, exist_ok=True)
  except OSError:
    return None
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path


# XLA's switch to run-to-run deterministic GPU programs: kernels without
# floating-point atomics (scatter among them) and no autotuning by timing, so
# every compilation picks the same kernels; XLA:CPU ignores it.
DETERMINISTIC_XLA_FLAG = "--xla_gpu_deterministic_ops=true"


def _backends_initialized() -> bool:
  """Whether JAX has created its backends (after which XLA has read
  ``$XLA_FLAGS``); JAX has no public query, so False when it cannot tell."""
  try:
    from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
    return bool(xla_bridge.backends_are_initialized())
  except (ImportError, AttributeError):
    return False


def apply_deterministic(requested: bool | None = None) -> bool:
  """Asks XLA for deterministic GPU kernels when ``--deterministic`` is on.

  ``requested`` defaults to the value of the shared ``--deterministic`` flag
  (False where the command does not define it). When on,
  ``DETERMINISTIC_XLA_FLAG`` is appended to ``$XLA_FLAGS`` (what is there is
  kept; a second call adds nothing) and the process's later runs, and the
  processes it starts, get the same image on the same device. Returns
  whether it is on.

  XLA reads ``$XLA_FLAGS`` once, when JAX creates its backends, so this must
  run before the first computation: ``run_main`` calls it before a command's
  ``main`` and ``nst-stylize`` again after reading a recorded run. Called
  later on a GPU or TPU it logs a warning that the flag came too late (the
  run is then not deterministic); on the CPU, where the flag changes
  nothing, it says nothing.
  """
  if requested is None:
    requested = ("deterministic" in flags.FLAGS and
                 bool(flags.FLAGS["deterministic"].value))
  if not requested:
    return False
  current = os.environ.get("XLA_FLAGS", "")
  if DETERMINISTIC_XLA_FLAG in current.split():
    return True
  os.environ["XLA_FLAGS"] = f"{current} {DETERMINISTIC_XLA_FLAG}".strip()
  if _backends_initialized() and jax.default_backend() != "cpu":
    logging.getLogger(__name__).warning(
        "--deterministic came after JAX had initialised its %s backend: XLA "
        "has read XLA_FLAGS already, so this run is not deterministic (set "
        "XLA_FLAGS=%s before starting Python)", jax.default_backend(),
        DETERMINISTIC_XLA_FLAG)
  return True


class PlainLogLines(logging.Formatter):
  """Log records as a command's user reads them: an info line is its
  message, a warning ``warning: <message>``; errors and worse keep absl's
  format (``E1207 10:00:00.000 file.py:12] …``), being a program's
  diagnostics rather than the one ``error:`` line of a failed command."""

  def __init__(self, fallback: logging.Formatter | None = None):
    super().__init__()
    self.fallback = fallback or logging.Formatter()

  def format(self, record):
    if record.levelno >= logging.ERROR:
      return self.fallback.format(record)
    text = record.getMessage()
    return f"warning: {text}" if record.levelno >= logging.WARNING else text


def plain_log_lines() -> None:
  """Makes the log lines of a command plain (``PlainLogLines``): absl's
  handler, which ``absl.app.run`` puts on the root logger, prints what the
  commands and the library log through ``absl.logging`` or ``logging``
  as ``say`` prints (``I1207 10:00:00.000 stylize.py:163] mask regions: …``
  became ``mask regions: …``)."""
  handler = absl_logging.get_absl_handler()
  current = handler.python_handler.formatter
  if not isinstance(current, PlainLogLines):
    handler.setFormatter(PlainLogLines(current))


def run_main(main: Callable[[list], None]) -> Callable[[list], None]:
  """Wraps an absl ``main`` so that user errors become one line and exit 1,
  log records plain lines (``plain_log_lines``), and applies
  ``--deterministic`` (``apply_deterministic``) before it."""
  def wrapped(argv):
    plain_log_lines()
    # jax reports at INFO that it found no TPU; that is not news to a user.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    apply_deterministic()
    try:
      main(argv)
    except NSTError as e:
      print(f"error: {flag_message(e)}", file=sys.stderr)
      sys.exit(1)
    except KeyboardInterrupt:
      print("error: interrupted", file=sys.stderr)
      sys.exit(130)
  return wrapped


def command_start(argv, quiet: bool) -> Callable[[str], None]:
  """The common start of a command's ``main``: refuses positional
  arguments (``NSTError``), silences absl's INFO logging under ``quiet``
  and returns ``say(text)``, which prints a line unless ``quiet``."""
  if len(argv) > 1:
    raise NSTError(f"unexpected arguments: {' '.join(argv[1:])}")
  if quiet:
    absl_logging.set_verbosity(absl_logging.WARNING)
    return lambda text: None
  return lambda text: print(text, flush=True)


def parse_flags(argv, *, about: str | None = None):
  """absl ``flags_parser`` that reports a bad flag as one ``error:`` line
  and a deprecated flag name as one ``warning:`` line. ``--help`` (or
  ``-h``, ``-?``, ``--helpshort``) prints ``help_text`` (``about``: the
  command's description) to stdout and exits 0."""
  if _asks_for_help(argv):
    print(help_text(os.path.basename(argv[0]) if argv else "command", about))
    sys.exit(0)
  try:
    rest = flags.FLAGS(argv)
  except flags.Error as e:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    sys.exit(2)
  for note in deprecation_notes():
    print(note, file=sys.stderr)
  return rest


def run(main: Callable[[list], None]) -> None:
  """``absl.app.run`` with one-line errors for flags and ``NSTError``s, and
  ``--help`` listing the command's own flags by topic (``help_text``, the
  command's description from the docstring of ``main``'s module)."""
  from absl import app  # pylint: disable=g-import-not-at-top
  module = sys.modules.get(getattr(main, "__module__", ""), None)
  about = getattr(module, "__doc__", None)
  app.run(run_main(main),
          flags_parser=lambda argv: parse_flags(argv, about=about))


# ---------------------------------------------------------------------------
# Defaults per device and reproducible runs.

# (long edge, iterations) when the user gives none: a GPU makes a 512 px,
# 500-iteration transfer in seconds; on a CPU (0.3 s per iteration at 256 px
# on 2 cores, docs/benchmarks.md) 256 px and 300 iterations take ~1.5 min.
DEVICE_DEFAULTS = {"gpu": (512, 500), "tpu": (512, 500), "cpu": (256, 300)}


def device_defaults(platform: str | None = None) -> tuple[int, int]:
  """``(size, iterations)`` for ``platform`` (default: JAX's default
  backend); an unknown accelerator is treated like a GPU."""
  platform = jax.default_backend() if platform is None else platform
  return DEVICE_DEFAULTS.get(platform, DEVICE_DEFAULTS["gpu"])


def resolve_device_defaults(*, size: bool = True) -> str | None:
  """Fills ``--size``/``--iterations`` the user left out with the device's
  defaults (``device_defaults``); returns the message saying so, or None."""
  f = flags.FLAGS
  default_size, default_iterations = device_defaults()
  chosen = []
  if size and "size" in f and f.size is None:
    f.size = default_size
    chosen.append(f"--size={default_size}")
  if "iterations" in f and f.iterations is None:
    f.iterations = default_iterations
    chosen.append(f"--iterations={default_iterations}")
  if not chosen:
    return None
  where = "a GPU/TPU" if jax.default_backend() != "cpu" else "no GPU: CPU"
  return (f"nst_jax: {where}, so {' '.join(chosen)} (give them to choose "
          "yourself)")
