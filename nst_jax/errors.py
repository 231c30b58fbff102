"""One exception family and one way of phrasing a bad value.

The rule, for the whole package: ``NSTError`` for what a user can cause,
``ValueError``/``TypeError`` for programming errors.

* A user is a person at the command line or code calling the library's
  high-level functions with values a person chose: every error such input
  can cause (a missing file, a corrupt image, an absurd size or parameter
  value, an unknown name, missing or mismatched weights, a diverging
  optimisation, a malformed run record or loss history) is raised as
  :class:`NSTError` with a message that says what was wrong and what to do.
* A programming error — code passing an array of the wrong shape or dtype, a
  mis-built structure, a broken internal invariant, a call of a lower-level
  function outside its contract, an argument parser's protocol (absl turns
  a parser's ``ValueError`` into its own flag error) — stays a plain
  ``ValueError`` or ``TypeError``: a traceback is then the right report.

``NSTError`` is a ``ValueError``, so research code that catches
``ValueError`` around a library call catches ours too. The commands catch
it, print ``error: <message>`` on one line and exit non-zero
(``cli.run_main``).

Library messages name *parameters* (``size``, ``learning_rate``), written
between backquotes, never command-line flags; ``nst_jax.cli`` turns
```name``` into ``--name`` for a script's user (``cli.flag_message``).
"""

from typing import Any, Iterable


class NSTError(ValueError):
  """A user-facing error whose message is one self-contained line."""


def param(name: str) -> str:
  """How a message names a parameter: ```name``` (``cli.flag_message``
  shows it as ``--name`` on the command line)."""
  return f"`{name}`"


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
  """Raises ``NSTError`` unless ``value`` is one of ``choices``.

  The message is the same everywhere: ``unknown `name` 'x': use one of a,
  b, c``.
  """
  choices = tuple(choices)
  if value not in choices:
    raise NSTError(f"unknown {param(name)} {value!r}: use one of "
                   f"{', '.join(map(str, choices))}")
