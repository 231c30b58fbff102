"""One default per value: the library's calls agree with the dataclasses
that hold the defaults (``objective.LossWeights``), and the README's
examples and prose with the code's style weights."""

import inspect
import pathlib
import re

import numpy as np

from nst_jax import losses, objective, representations


def test_make_weights_defaults_are_loss_weights():
  default = objective.LossWeights()
  signature = inspect.signature(objective.make_weights)
  assert signature.parameters["tv_weight"].default == default.tv
  spec = objective.Spec()
  made = objective.make_weights(spec, content_weight=default.content,
                                style_weight=default.style)
  for got, want in zip(made, default.arrays(spec)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def _readme() -> str:
  """README.md and the documentation's pages (where the README's examples
  and prose moved: docs/library/, docs/features/)."""
  root = pathlib.Path(__file__).resolve().parents[1]
  pages = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
  return "\n".join(p.read_text(encoding="utf-8") for p in pages)


def test_readme_python_examples_use_the_default_style_weight():
  blocks = re.findall(r"```python\n(.*?)```", _readme(), re.S)
  found = [float(v) for b in blocks for v in re.findall(
      r"(?:style_weight|LossWeights\(style)=([\d.e+-]+)", b)]
  assert found, "no style weight in the README's Python examples"
  assert set(found) == {losses.DEFAULT_STYLE_WEIGHT}, found


def test_readme_states_the_default_style_weights():
  text = _readme()
  stated = re.search(r"The default \*\*β = ([\d.]+)\*\*", text)
  assert float(stated.group(1)) == losses.DEFAULT_STYLE_WEIGHT
  swd, cmd = re.search(r"β = (\d+) and (\d+)\. The pictures", text).groups()
  layers = ("relu1_1",)
  for name, value in (("swd", swd), ("cmd", cmd)):
    spec = objective.Spec(style=representations.from_name(name, layers))
    assert float(value) == spec.suggested_style_weight(), name
