"""One exception family and one way of phrasing a bad value.

Every error a person can cause (a missing file, a corrupt image, absurd sizes,
missing or mismatched weights, a diverging optimisation) is raised as
:class:`NSTError` with a message that says what was wrong and what to do. It
is a ``ValueError``, so research code that catches ``ValueError`` around a
library call catches ours too. The scripts catch it, print ``error:
<message>`` on one line and exit non-zero.

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
