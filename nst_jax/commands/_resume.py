"""``--resume``: the one resumable state of every command (nst-stylize, its
coarse-to-fine levels, nst-stylize-video), where it lives, how it is
written and read back, and which flags a resumed run may change.

The state of ``out/result.png`` (or ``out/clip.mp4``) is
``out/result.resume.npz`` (``state_path``): the solver state
(``run.RunState.solver``: the iterate, L-BFGS memory or Adam moments,
counts, re-draw round) as named arrays — none between two stages — and as
JSON the run's flag values, its inputs' sha256 (a folder of frames: of its
files, ``digest``), the ``stage`` the state is at (``{"level": i}`` of a
coarse-to-fine run, ``{"frame": i}`` of a video), the loss history,
seconds and iteration (of a coarse-to-fine run: of its current level, with
the finished levels' ``Levels``). It is
written atomically (``io.save_arrays``) after every snapshot
(``--save_every``) and when Ctrl-C stops the run, read with
``allow_pickle=False`` (nothing in it can run code), restored against a
freshly initialised state (``checkpoint.unflatten``), and removed when the
run finishes.

A resumed run takes every flag from the record; a flag given on the command
line must have the recorded value, except those in ``CHANGEABLE``, which do
not change the iterates (``--iterations`` may grow: the run goes on; not
in a coarse-to-fine run, whose levels' iterations it sets).
No flags are defined here.
"""

import os
from typing import Any, Dict, Mapping, Sequence

from absl import flags

from nst_jax import cli
from nst_jax import io
from nst_jax import transfer
from nst_jax import weights
from nst_jax.errors import NSTError

# 2: the stage and the command are recorded (every command's state); 1:
# nst-stylize's before, read as a stage-less nst-stylize state.
FORMAT = 2
FORMATS = (1, 2)
SUFFIX = ".resume.npz"
# Flags a resumed run may change: none of them changes an iterate.
CHANGEABLE = ("iterations", "quiet", "log_every", "save_every", "plot",
              "sheet", "evaluate", "score_size")
# Recorded flags a resumed run never takes from the record.
_SKIPPED = ("from_json", "resume", "quiet")


def state_path(path: str, outputs: Sequence[str] = (".png",)) -> str:
  """The state file of a run named by its output (``outputs``: the
  command's output suffixes), JSON record or the state file itself
  (``out.png``, ``out.json`` → ``out.resume.npz``)."""
  for suffix in (SUFFIX, *outputs, ".json"):
    if path.lower().endswith(suffix):
      return path[:-len(suffix)] + SUFFIX
  raise NSTError(f"--resume must name the run's output "
                 f"({', '.join(outputs)}), its .json record or its {SUFFIX} "
                 f"state, got {path}")


def digest(path: str) -> str | None:
  """The sha256 of an input: a file's own, a folder's over its files' names
  and sha256 (a folder of frames); ``None`` for neither."""
  if os.path.isfile(path):
    return weights.sha256_file(path)
  if os.path.isdir(path):
    import hashlib  # pylint: disable=g-import-not-at-top
    h = hashlib.sha256()
    for name in sorted(os.listdir(path)):
      full = os.path.join(path, name)
      if os.path.isfile(full):
        h.update(f"{name}\0{weights.sha256_file(full)}\0".encode())
    return h.hexdigest()
  return None


def save(path: str, state: "transfer.RunState | None", *,
         params: Dict[str, Any], inputs: Dict[str, str],
         stage: Dict[str, int] | None = None, command: str = "nst-stylize",
         protect: Sequence[str] = ()) -> None:
  """Writes ``state`` (``None``: between two stages, no solver state), the
  ``stage`` it is at, the run's ``params`` (flag values) and ``inputs``
  (``{path: sha256}``) atomically to ``path``."""
  state = state or transfer.RunState({}, [], 0.0, 0)
  io.save_arrays(path, state.solver, meta={
      "format": FORMAT, "command": command, "params": params,
      "inputs": inputs, "stage": dict(stage or {}),
      "history": state.history, "seconds": state.seconds,
      "iteration": state.iteration, "level": state.level,
      "before": None if state.before is None else state.before._asdict()},
      protect=protect)


def load(path: str, command: str = "nst-stylize"
         ) -> tuple[transfer.RunState, Dict[str, Any]]:
  """The ``RunState`` in ``path`` and its record (``params``, ``inputs``,
  ``stage``, ...). Raises ``NSTError`` for a missing or foreign file, or
  the state of another command."""
  if not os.path.exists(path):
    raise NSTError(f"nothing to resume: {path} does not exist (a run writes "
                   "it at every --save_every snapshot and on Ctrl-C, and "
                   "removes it when it finishes)")
  arrays, meta = io.load_arrays(path)
  if meta.get("format") not in FORMATS or not isinstance(
      meta.get("params"), dict):
    raise NSTError(f"{path} is not a resumable state of this version of "
                   f"{command} (format {meta.get('format')!r}; this version "
                   f"reads {', '.join(map(str, FORMATS))})")
  if meta.get("command", "nst-stylize") != command:
    raise NSTError(f"{path} is the state of a {meta.get('command')} run, not "
                   f"of {command}")
  history = meta.get("history") or []
  before = meta.get("before")
  try:
    if before is not None:   # a coarse-to-fine run's finished levels
      before = transfer.Levels(list(before["history"]),
                               int(before["iterations"]),
                               int(before["evaluations"]),
                               float(before["seconds"]))
    return transfer.RunState(arrays, list(history), float(meta["seconds"]),
                             int(meta["iteration"]),
                             int(meta.get("level") or 0), before), meta
  except (KeyError, TypeError, ValueError) as e:
    raise NSTError(f"{path} is not a complete resumable state (bad or "
                   f"missing field: {e})") from None


def _same(given: Any, recorded: Any) -> bool:
  return io.to_jsonable(given) == io.to_jsonable(recorded)


def apply_recorded(meta: Mapping[str, Any], recorded_names: Sequence[str],
                   iteration: int, changeable: Sequence[str] = CHANGEABLE
                   ) -> None:
  """Sets every recorded flag the command line did not give; refuses (one
  line) a given flag whose value differs from the record's, unless it is in
  ``CHANGEABLE``, and ``--iterations`` below the state's ``iteration`` (or,
  in a coarse-to-fine run, other than the recorded one)."""
  values = dict(meta["params"])
  values.setdefault("pyramid_base", 0)   # states from before the option
  values.setdefault("normalize_style", False)   # (as this one)
  values.setdefault("coarse_weight", 0.0)   # (and this one)
  given = cli.flag_values([n for n in recorded_names
                           if n in flags.FLAGS and flags.FLAGS[n].present])
  levels = meta.get("before") is not None   # coarse to fine: --iterations
  for name, value in given.items():         # sets every level's iterations
    if name in _SKIPPED or name not in values or (
        name in changeable and not (levels and name == "iterations")):
      continue
    if not _same(value, values[name]):
      raise NSTError(f"--resume continues the recorded run: --{name}="
                     f"{value!r} differs from its {values[name]!r} (drop "
                     "the flag, or start a new run)")
  cli.apply_params(values, skip=_SKIPPED)
  # (A coarse-to-fine state's iteration is its level's, which --iterations
  # need not bound: --scale_iterations may give a level more.)
  if not levels and "iterations" in changeable and (
      flags.FLAGS.iterations is not None) and (
      flags.FLAGS.iterations < iteration):
    raise NSTError(f"--iterations={flags.FLAGS.iterations} is below the "
                   f"{iteration} iterations the resumed run has done")


def check_inputs(meta: Mapping[str, Any], paths: Sequence[str]) -> None:
  """Refuses (one line) an input image changed since the recorded run."""
  recorded = meta.get("inputs") or {}
  for path in dict.fromkeys(paths):
    wanted = recorded.get(path)
    if wanted is None or digest(path) != wanted:
      raise NSTError(f"--resume: input {path} is not the one the recorded "
                     "run read (changed or missing): the run cannot go on")


def remove(path: str) -> None:
  """Removes a finished run's state file (if any)."""
  try:
    os.remove(path)
  except FileNotFoundError:
    pass
  except OSError as e:
    raise NSTError(f"cannot remove {path}: {e.strerror or e}") from None
