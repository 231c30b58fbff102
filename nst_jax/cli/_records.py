"""Run records: the flag values a PNG and its JSON record carry
(``params_json``), and reading them back to run again (``load_run_params``,
``load_run_inputs``; applying them is ``_flags.apply_params``)."""

import json

from nst_jax.errors import NSTError


def params_json(values: dict) -> str:
  """The flag values as compact JSON (for PNG text chunks)."""
  return json.dumps(values, sort_keys=True, default=str)


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
