"""The numbers the documentation quotes from the code, read from the code.

``values()`` maps a key (``style_weight``, ``style_weight.swd``,
``size.cpu``, ``nnst.alpha`` …) to the value the code holds today. The
docs' hook (``docs/hooks/nst_docs.py``) writes them into the pages where a
page says ``{{ value("key") }}``, and ``tests/test_docs.py`` checks the
numbers written by hand in README.md and docs/ against the same table, so
that neither can drift from the code.
"""

import dataclasses
import math


def values() -> dict:
  """``{key: value}`` of every default the documentation quotes."""
  from nst_jax import (config, losses, metrics, nnst, objective,
                       representations, solvers, strotss, video)
  from nst_jax import guided  # noqa: F401  (registers its representations)
  from nst_jax.cli import _runtime
  out = {"style_weight": losses.DEFAULT_STYLE_WEIGHT}
  weights = objective.LossWeights()
  out["content_weight"], out["tv_weight"] = weights.content, weights.tv
  for name in representations.names():
    try:
      rep = representations.from_name(name, ("relu1_1",))
    except Exception:   # a representation that needs more than its name
      continue
    out[f"style_weight.{name}"] = objective.Spec(
        style=rep).suggested_style_weight()
  for device, (size, iterations) in _runtime.DEVICE_DEFAULTS.items():
    out[f"size.{device}"], out[f"iterations.{device}"] = size, iterations
  schedule = config.Schedule()
  out["pyramid_base"] = schedule.pyramid_base
  out["style_scale"] = schedule.style_scale
  out["coarse_weight"] = schedule.coarse_weight
  solver = solvers.SolverConfig()
  for field in ("method", "learning_rate", "history_size"):
    out[f"solver.{field}"] = getattr(solver, field)
  out["temporal_weight"] = video.Temporal().weight
  out["score_size"] = metrics.SCORE_SIZE
  out["size_invariant"] = objective.Spec().size_invariant
  for prefix, settings in (("nnst", nnst.DEFAULTS),
                           ("strotss", strotss.DEFAULTS)):
    for field in dataclasses.fields(settings):
      out[f"{prefix}.{field.name}"] = getattr(settings, field.name)
  from nst_jax import methods
  out["strotss.size"] = methods.Strotss().size
  return out


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def format_value(value) -> str:
  """A value as the pages write it: 800.0 → ``800``, 1e6 → ``10⁶``,
  2e-3 → ``0.002``, a tuple as its items joined by commas."""
  if isinstance(value, bool):
    return "on" if value else "off"
  if isinstance(value, (tuple, list)):
    return ",".join(format_value(v) for v in value)
  if isinstance(value, float):
    if value.is_integer() and abs(value) < 1e5:
      return str(int(value))
    exponent = math.log10(abs(value)) if value else 0
    if value > 0 and exponent.is_integer() and abs(exponent) >= 5:
      return "10" + str(int(exponent)).translate(_SUPERSCRIPT)
    return f"{value:g}"
  return str(value)
