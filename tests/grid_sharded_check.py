"""Run by tests/test_grid.py in a subprocess with 4 virtual CPU devices
(XLA_FLAGS=--xla_force_host_platform_device_count=4 must be set before JAX
starts): a 2x3 grid sharded over 4 devices (padded to 8 cells) against the
same grid on one device and each cell run alone. Prints one JSON line."""

import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]

import jax  # noqa: E402
import numpy as np  # noqa: E402

from nst_jax import grid, io, objective, solvers, transfer, vgg  # noqa: E402
from nst_jax import sharded as sharding  # noqa: E402


def main():
  params = vgg.load_params("vgg16")
  content = io.resize_long_edge(io.load_image(ROOT / "examples/chelsea.png"), 32)
  style = io.resize_long_edge(
      io.load_image(ROOT / "examples/style_brushwork.png"), 40)
  config = transfer.TransferConfig(
      # The paper's sums: the β axis below is on their scale.
      spec=objective.Spec(content_layers=("relu2_1",), size_invariant=False),
      solver=solvers.SolverConfig(maxiter=6),
      init=transfer.Init("noise"))
  axes = grid.GridAxes(style_layer_sets=(("relu1_1", "relu2_1"),),
                       style_weight=(1e6, 1e7), seed=(0, 1, 2))
  sharded = grid.style_grid(params, content, [style], axes, config,
                            mesh=sharding.cell_mesh())
  single = grid.style_grid(params, content, [style], axes, config,
                           mesh=sharding.cell_mesh(jax.devices()[:1]))
  alone = []
  for cell in sharded.cells:
    cfg = config.replace(spec=dict(style_layers=cell["style_layer_sets"]),
                         weights=dict(style=cell["style_weight"]),
                         init=dict(seed=cell["seed"]))
    alone.append(transfer.stylize(params, content, [style], cfg,
                                  log_every=0).image)
  print(json.dumps({
      "devices": len(jax.devices()), "cells": len(sharded.cells),
      "grid_devices": sharded.devices,
      "sharded_vs_single": float(np.abs(sharded.images - single.images).max()),
      "sharded_vs_alone": float(np.abs(sharded.images - np.stack(alone)).max()),
      "evaluations_equal": bool(np.array_equal(
          sharded.function_evaluations, single.function_evaluations)),
      "seeds_differ": float(np.abs(sharded.images[0] - sharded.images[1]).max()),
  }))


if __name__ == "__main__":
  main()
