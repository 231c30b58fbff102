"""Shared plumbing for the absl scripts: one-line errors and run records.

Scripts stay thin: they parse flags, call library functions and use
``run_main`` so that every ``NSTError`` (and an interrupted run) ends as
``error: <message>`` on stderr with a non-zero exit status, never a traceback.
"""

import json
import logging
import sys
from typing import Callable

import jax
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


def run_main(main: Callable[[list], None]) -> Callable[[list], None]:
  """Wraps an absl ``main`` so that user errors become one line and exit 1."""
  def wrapped(argv):
    # jax reports at INFO that it found no TPU; that is not news to a user.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    try:
      main(argv)
    except NSTError as e:
      print(f"error: {e}", file=sys.stderr)
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
