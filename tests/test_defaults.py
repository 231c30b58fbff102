"""One default per value: the library's calls agree with the dataclasses
that hold the defaults (``objective.LossWeights``)."""

import inspect

import numpy as np

from nst_jax import objective


def test_make_weights_defaults_are_loss_weights():
  default = objective.LossWeights()
  signature = inspect.signature(objective.make_weights)
  assert signature.parameters["tv_weight"].default == default.tv
  spec = objective.Spec()
  made = objective.make_weights(spec, content_weight=default.content,
                                style_weight=default.style)
  for got, want in zip(made, default.arrays(spec)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
