"""The one run loop's clock (``run.run_problem``): seconds count from the
caller's start."""

import time

import numpy as np

from conftest import random_image as _img
from conftest import tiny_vgg16_params

from nst_jax import objective
from nst_jax import problem
from nst_jax import run
from nst_jax import solvers
from nst_jax import transfer


def test_run_problem_counts_seconds_from_the_callers_start():
  """``started`` is where the seconds of the records and ``wall_seconds``
  count from (the caller's targets and start image included); it was
  ignored."""
  params = tiny_vgg16_params()
  spec = objective.Spec(content_layers=("relu2_1",),
                        style_layers=("relu1_1", "relu2_1"))
  cfg = transfer.TransferConfig(spec=spec, tile_size=0).replace(
      solver=dict(maxiter=1))
  p = problem.make_problem(params, np.asarray(_img(24, 32, 0)),
                           [np.asarray(_img(32, 32, 1))], cfg)
  result = run.run_problem(p, cfg.solver,
                           started=time.perf_counter() - 1000.0)
  assert result.wall_seconds >= 1000.0
  assert result.loss_history[-1]["seconds"] >= 1000.0
  fresh = run.run_problem(
      problem.make_problem(params, np.asarray(_img(24, 32, 0)),
                           [np.asarray(_img(32, 32, 1))], cfg),
      solvers.SolverConfig(maxiter=1))
  assert fresh.wall_seconds < 1000.0
