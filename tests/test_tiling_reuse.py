"""``tiling.Plan.reuse_last`` reaches pass 2: the agreement test of
tests/test_tiling.py passes whichever way pass 2 runs, so here the two
plans must be different static arguments (distinct cache entries) and give
different programs (reusing the last group's pass-1 activations traces
that group apart from the scan, so the traced convolutions differ in
number) — and
``transfer.objective_for(..., reuse_last=)`` passes the field on."""

import dataclasses

import jax
import jax.extend.core

from conftest import random_image as _img
from conftest import tiny_vgg16_params
from nst_jax import objective
from nst_jax import tiling
from nst_jax import transfer
from nst_jax.targets import make_targets

SHALLOW = ("relu1_1", "relu2_1", "relu3_1")


def _convolutions(jaxpr) -> int:
  """Convolutions in ``jaxpr`` and every sub-jaxpr (scan bodies, vjp rules)."""
  count = 0
  for eqn in jaxpr.eqns:
    count += eqn.primitive.name == "conv_general_dilated"
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      count += _convolutions(sub)
  return count


def test_reuse_last_is_a_static_argument_that_changes_pass_2():
  spec = objective.Spec(("relu2_1",), SHALLOW, pooling="max")
  reuse = tiling.plan("vgg16", spec.layers, (56, 48), 16)
  rerun = tiling.plan("vgg16", spec.layers, (56, 48), 16, reuse_last=False)
  assert reuse.reuse_last and not rerun.reuse_last and reuse.count > 1
  assert rerun == dataclasses.replace(reuse, reuse_last=False)
  assert rerun != reuse and hash(rerun) != hash(reuse)
  assert (tiling.objective_function(spec, rerun)
          is not tiling.objective_function(spec, reuse))
  config = transfer.TransferConfig().replace(spec=spec, tile_size=16)
  for p in (reuse, rerun):
    fun, tile = transfer.objective_for(config, (56, 48),
                                       reuse_last=p.reuse_last)
    assert tile == 16 and fun is tiling.objective_function(
        spec, p, transfer.image_mesh(config))

  params = tiny_vgg16_params()
  targets = make_targets(params, _img(56, 48, 1), [_img(40, 40, 2)],
                                   spec)
  weights = objective.make_weights(spec, content_weight=1.0, style_weight=1.0,
                                   tv_weight=0.0)
  counts = {}
  for p in (reuse, rerun):
    grad = jax.value_and_grad(tiling.objective_function(spec, p),
                              has_aux=True)
    counts[p.reuse_last] = _convolutions(jax.make_jaxpr(grad)(
        _img(56, 48, 4), params, targets, weights).jaxpr)
  assert counts[False] != counts[True] and min(counts.values()) > 0, counts
