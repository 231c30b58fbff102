"""The one exception type that user-facing code turns into a one-line message.

Every error a person can cause (a missing file, a corrupt image, absurd sizes,
missing or mismatched weights, a diverging optimisation) is raised as
:class:`NSTError` with a message that says what was wrong and what to do. The
scripts catch it, print ``error: <message>`` on one line and exit non-zero.
"""


class NSTError(Exception):
  """A user-facing error whose message is one self-contained line."""
