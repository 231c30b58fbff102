"""The commands' live display: a ``tqdm`` progress bar with rate, ETA and
the latest loss terms (``ProgressBar``; a notebook's widget in Jupyter),
and a clean Ctrl-C (``StopOnInterrupt``: the first stops after the current
step, the second aborts)."""

import signal
import sys
import threading
import time
from typing import Any, Dict, IO

import tqdm.auto
import tqdm.autonotebook
import tqdm.std


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
               width: int | None = None, unit: str = "it"):
    self.total, self.label, self.quiet = max(int(total), 0), label, quiet
    self.unit = unit  # what ``update`` counts (a batch: "img", fractions too)
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
        ascii=True, unit=self.unit,
        **self._frame(iteration, now, record, value))

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
            unit=self.unit,
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
