"""How the weights modules word their messages.

Shared by every module of :mod:`nst_jax.weights` and by nothing else: file
names as the user typed them, reasons squeezed onto one line, shapes without
spaces, the network check, and the command that makes the weights.
"""

import os
from pathlib import Path
from typing import Any, Iterable

from nst_jax import errors
from nst_jax import networks

# What a message tells the user to run; ``nst-fetch-weights`` is the console
# command of :mod:`nst_jax.commands.fetch_weights` (``pyproject.toml``).
FETCH_COMMAND = "nst-fetch-weights --network={network}"


def fetch_command(network: str) -> str:
  """``"nst-fetch-weights --network=<network>"``."""
  return FETCH_COMMAND.format(network=network)


def display(path: "os.PathLike | str") -> str:
  """``path`` relative to the working directory if inside it, else absolute."""
  absolute = Path(os.path.abspath(path))
  try:
    return str(absolute.relative_to(Path.cwd()))
  except ValueError:
    return str(absolute)


def one_line(text: Any, limit: int = 200) -> str:
  """Collapses whitespace so that ``text`` fits in a one-line message."""
  line = " ".join(str(text).split())
  return line if len(line) <= limit else line[:limit - 3] + "..."


def fmt_shape(shape) -> str:
  """``(3, 3, 64)`` -> ``"(3,3,64)"``; ``(64,)`` -> ``"(64,)"``."""
  shape = tuple(int(n) for n in shape)
  trailing = "," if len(shape) == 1 else ""
  return "(" + ",".join(map(str, shape)) + trailing + ")"


def check_network(network: str,
                  choices: Iterable[str] = tuple(networks.NETWORKS)) -> None:
  """Raises ``NSTError`` unless ``network`` is one of ``choices``."""
  errors.check_choice("network", network, choices)
