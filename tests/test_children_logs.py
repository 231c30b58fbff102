"""The two-process tests' ``_Children`` (tests/test_distributed.py) reads a
running child's log without disturbing it: polling it while the child
writes (as the Ctrl-C test does) must leave every line in place."""

import sys

from test_distributed import _Children


def test_polling_a_running_childs_log_keeps_every_line(tmp_path):
  count = 2000
  script = ("import time\nfor i in range(%d):\n  print(f'line {i:05d}', "
            "flush=True)\n  time.sleep(0.0005)" % count)
  with _Children(tmp_path) as children:
    proc = children.start("writer", command=[sys.executable, "-c", script])
    polls = 0
    while proc.poll() is None:
      children.text(proc)
      polls += 1
    text = children.wait(proc)
  assert polls > 10   # it was read while it wrote
  assert text.splitlines() == [f"line {i:05d}" for i in range(count)]
