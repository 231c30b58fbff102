"""Shared plumbing for the absl scripts: one-line errors and run records.

Scripts stay thin: they parse flags, call library functions and use
``run_main`` so that every ``NSTError`` (and an interrupted run) ends as
``error: <message>`` on stderr with a non-zero exit status, never a traceback.
"""

import json
import logging
import os
import re
import signal
import sys
import threading
import time
from typing import Any, Callable, Dict, IO, Sequence

import jax
import tqdm.auto
import tqdm.autonotebook
import tqdm.std
from absl import flags

from nst_jax.errors import NSTError


def module_flag_values(module_name: str) -> dict:
  """``{name: value}`` of every flag the script module defined itself."""
  return {f.name: f.value
          for f in flags.FLAGS.get_key_flags_for_module(module_name)}


def device_description() -> str:
  """E.g. ``"cpu: cpu (2 devices)"`` or ``"gpu: NVIDIA H100 80GB HBM3"``."""
  devices = jax.devices()
  d = devices[0]
  kind = getattr(d, "device_kind", d.platform)
  extra = f" ({len(devices)} devices)" if len(devices) > 1 else ""
  return f"{d.platform}: {kind}{extra}"


CACHE_DIR_ENV = "NST_JAX_CACHE_DIR"


def compilation_cache_dir() -> str | None:
  """``$NST_JAX_CACHE_DIR``, else ``~/.cache/nst_jax``; ``None`` when the
  variable is set to ``""`` or ``"off"`` (caching disabled)."""
  path = os.environ.get(CACHE_DIR_ENV)
  if path is None:
    return os.path.join(os.path.expanduser("~"), ".cache", "nst_jax")
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


def flag_message(message: str) -> str:
  """``message`` for a script's user: each parameter that the library wrote
  as ```name``` (``errors.param``) becomes the flag ``--name``."""
  return re.sub(r"`([A-Za-z_]\w*)`", r"--\1", str(message))


def run_main(main: Callable[[list], None]) -> Callable[[list], None]:
  """Wraps an absl ``main`` so that user errors become one line and exit 1."""
  def wrapped(argv):
    # jax reports at INFO that it found no TPU; that is not news to a user.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    try:
      main(argv)
    except NSTError as e:
      print(f"error: {flag_message(e)}", file=sys.stderr)
      sys.exit(1)
    except KeyboardInterrupt:
      print("error: interrupted", file=sys.stderr)
      sys.exit(130)
  return wrapped


def parse_flags(argv):
  """absl ``flags_parser`` that reports a bad flag as one ``error:`` line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    sys.exit(2)


def run(main: Callable[[list], None]) -> None:
  """``absl.app.run`` with one-line errors for flags and ``NSTError``s."""
  from absl import app  # pylint: disable=g-import-not-at-top
  app.run(run_main(main), flags_parser=parse_flags)


def params_json(values: dict) -> str:
  """The flag values as compact JSON (for PNG text chunks)."""
  return json.dumps(values, sort_keys=True, default=str)


# ---------------------------------------------------------------------------
# Live progress and clean interruption.


def _terms_text(record: Dict[str, Any] | None, value=None) -> str:
  """``total=1.2e+05, content=…, style=…, tv=…`` (tqdm's postfix style);
  ``value`` (the solver's current objective) replaces the record's total
  when given."""
  shown = dict(record or {})
  if value is not None and value == value:  # not NaN
    shown["total"] = value
  return ", ".join(f"{k}={shown[k]:.3g}" for k in ("total", "content",
                                                    "style", "tv")
                   if k in shown)


class _Frame:
  """tqdm mixin: the bar shows ``self.frame`` (``n``, ``elapsed``, ``rate``,
  ``initial``, ``postfix``, set by ``ProgressBar``) instead of tqdm's own
  clock, and never redraws by itself (no monitor thread)."""
  monitor_interval = 0

  def __init__(self, *, frame: dict, **kwargs):
    self.frame = frame  # before tqdm's first draw in __init__
    super().__init__(**kwargs)

  @property
  def format_dict(self):
    return {**super().format_dict, **self.frame}


_TerminalBar = type("_TerminalBar", (_Frame, tqdm.std.tqdm), {})
_AutoBar = type("_AutoBar", (_Frame, tqdm.auto.tqdm), {})


def _in_notebook() -> bool:
  """Whether ``tqdm.auto`` picked Jupyter's widget (an IPython kernel with
  ipywidgets)."""
  return tqdm.autonotebook.tqdm is not tqdm.std.tqdm


class ProgressBar:
  """A tqdm bar: ``label:  24%|██▍       | 120/500 [00:40<01:58, 3.00it/s,
  total=1.2e+05, content=…, style=…, tv=…]``.

  On a terminal the line is redrawn in place (at most ``redraw_seconds``
  apart), and with ``stream=None`` in a notebook ``tqdm.auto`` shows a live
  widget; elsewhere (a log file, a pipe) a full line (``line()``) is
  written at every tenth of the run and at least every ``line_seconds``,
  never one per iteration. Elapsed time counts from the first ``update``,
  the rate (it/s, or s/it below 1 it/s) and ETA from the first update past
  iteration 0, so compilation does not distort them; before that the bar says
  ``compiling…``. ``quiet`` prints nothing. ``width`` fixes the terminal
  width (default: the terminal's, followed as it changes).
  """

  def __init__(self, total: int, *, label: str = "", stream: IO | None = None,
               quiet: bool = False, is_tty: bool | None = None,
               redraw_seconds: float = 0.1, line_seconds: float = 30.0,
               width: int | None = None):
    self.total, self.label, self.quiet = max(int(total), 0), label, quiet
    self._auto = stream is None
    self.stream = sys.stderr if stream is None else stream
    self.tty = (self.stream.isatty() if is_tty is None and
                hasattr(self.stream, "isatty") else bool(is_tty))
    self.live = self.tty or (self._auto and _in_notebook())
    self.redraw_seconds = redraw_seconds
    self.line_seconds = line_seconds
    self.width = width
    self._start = None      # time of the first update
    self._first = None      # (iteration, time) of the first update past 0
    self._drawn = -float("inf")
    self._tenth = -1
    self._bar = None        # the tqdm bar, made at the first live draw

  def _frame(self, iteration: int, now: float, record=None,
             value=None) -> dict:
    """tqdm's ``format_meter`` arguments for the bar at ``iteration``."""
    start = now if self._start is None else self._start
    rate = None
    if self._first is not None and iteration > self._first[0]:
      rate = (iteration - self._first[0]) / max(now - self._first[1], 1e-9)
    terms = _terms_text(record, value)
    if iteration == 0 and rate is None:
      terms = ", ".join(["compiling…"] + ([terms] if terms else []))
    # ``initial = n`` keeps tqdm from guessing a rate over the compilation.
    return {"n": iteration, "elapsed": max(now - start, 0.0), "rate": rate,
            "initial": iteration if rate is None else self._first[0],
            "postfix": terms or None}

  def line(self, iteration: int, now: float, record=None, value=None) -> str:
    """The text of the bar at ``iteration``, as written to a log (an ASCII
    bar, no terminal codes)."""
    return tqdm.std.tqdm.format_meter(
        total=self.total, prefix=f"{self.label}: " if self.label else "",
        ascii=True, **self._frame(iteration, now, record, value))

  def update(self, iteration: int, record=None, value=None, *,
             now: float | None = None):
    """Shows the bar at ``iteration`` with the loss terms of ``record`` and
    the current total ``value`` (both optional)."""
    if self.quiet:
      return
    now = time.perf_counter() if now is None else now
    if self._start is None:
      self._start = now
    if self._first is None and iteration > 0:  # after compilation
      self._first = (iteration, now)
    if self.live:
      if now - self._drawn < self.redraw_seconds and iteration < self.total:
        return
      self._drawn = now
      frame = self._frame(iteration, now, record, value)
      if self._bar is None:   # tqdm draws the first frame itself
        self._bar = (_AutoBar if self._auto else _TerminalBar)(
            frame=frame, total=self.total, initial=iteration,
            desc=self.label or None, file=None if self._auto else self.stream,
            ncols=self.width, dynamic_ncols=self.width is None, leave=True,
            disable=False)
      else:
        self._bar.frame, self._bar.n = frame, iteration
        self._bar.refresh()
    else:
      tenth = (10 * iteration) // max(self.total, 1)
      if tenth <= self._tenth and now - self._drawn < self.line_seconds:
        return
      self._tenth, self._drawn = tenth, now
      self.stream.write(self.line(iteration, now, record, value) + "\n")
      self.stream.flush()

  def close(self):
    """Ends the live bar (its last frame stays, then a newline)."""
    if self._bar is not None:
      self._bar.close()
      self._bar = None


class StopOnInterrupt:
  """Context manager: the first Ctrl-C (SIGINT) asks the run to stop — the
  solver finishes its current chunk and the script writes what it has —
  and a second one aborts at once (``KeyboardInterrupt``).

  ``stop_requested()`` is the ``should_stop`` to give ``transfer.stylize``.
  Outside the main thread (where signals cannot be caught) it does nothing.
  """

  def __init__(self, message: str = "stopping after the current step; "
               "Ctrl-C again to abort", stream: IO | None = None):
    self.message = message
    self.stream = sys.stderr if stream is None else stream
    self._event = threading.Event()
    self._previous = None

  def stop_requested(self) -> bool:
    return self._event.is_set()

  def _handle(self, signum, frame):
    del signum, frame
    if self._event.is_set():
      raise KeyboardInterrupt
    self._event.set()
    self.stream.write(f"\n{self.message}\n")
    self.stream.flush()

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGINT, self._handle)
    return self

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGINT, self._previous)
      self._previous = None
    return False


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


def load_run_params(path: str) -> dict:
  """The flag values a run recorded: ``params`` of its JSON record, or the
  ``nst_jax`` text chunk of a PNG it wrote. Raises ``NSTError`` otherwise."""
  from nst_jax import io  # pylint: disable=g-import-not-at-top
  try:
    with open(path, "rb") as f:
      head = f.read(8)
  except OSError as e:
    raise NSTError(f"cannot read run record {path}: "
                   f"{e.strerror or e}") from None
  if head == b"\x89PNG\r\n\x1a\n":
    text = io.read_png_metadata(path).get("nst_jax")
    if text is None:
      raise NSTError(f"{path} holds no nst_jax parameters (not written by "
                     "scripts/stylize.py?)")
    what = "PNG text chunk"
  else:
    try:
      with open(path, encoding="utf-8") as f:
        text = json.dumps(json.load(f).get("params"))
    except (ValueError, UnicodeDecodeError, AttributeError) as e:
      raise NSTError(f"{path} is not a JSON run record: "
                     f"{' '.join(str(e).split())}") from None
    what = "JSON record"
  try:
    values = json.loads(text)
  except ValueError:
    values = None
  if not isinstance(values, dict):
    raise NSTError(f"{path}: the {what} has no parameters")
  return values


def load_run_inputs(path: str) -> dict:
  """``{path: sha256}`` of the input images a JSON run record lists (``{}``
  for a PNG or an older record)."""
  try:
    with open(path, encoding="utf-8") as f:
      inputs = json.load(f).get("inputs")
  except (OSError, ValueError, UnicodeDecodeError, AttributeError):
    return {}
  return inputs if isinstance(inputs, dict) else {}


def apply_params(values: dict, *, skip: Sequence[str] = ()) -> list[str]:
  """Sets every flag named in ``values`` that the command line did not give
  (command-line flags win) and is not in ``skip``; returns the names of
  recorded parameters this script does not know (left alone). Values are
  parsed like command-line text, so a bad one is an ``NSTError``."""
  unknown = []
  for name, value in values.items():
    if name in skip:
      continue
    if name not in flags.FLAGS:
      unknown.append(name)
      continue
    flag = flags.FLAGS[name]
    if flag.present:
      continue
    try:
      if value is None:
        flag.value = None
      else:
        flag.parse(value if isinstance(value, (list, tuple, bool))
                   else str(value))
    except (flags.Error, ValueError) as e:
      raise NSTError(f"recorded --{name}={value!r} is not valid: "
                     f"{' '.join(str(e).split())}") from None
  return unknown
