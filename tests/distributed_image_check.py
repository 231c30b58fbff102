"""Run by tests/test_distributed.py: one transfer whose image rows are split
over the devices of all processes (``image_devices="all"``), or, without a
coordinator, the same transfer on one device. Arguments: output ``.npz``,
then optionally coordinator address, process count and index. Process 0
(or the single process) writes the image, final loss and evaluations."""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

import jax  # noqa: E402
import numpy as np  # noqa: E402


def main(out, address=None, processes=None, index=None):
  if address:
    jax.distributed.initialize(address, int(processes), int(index))
  from nst_jax import io, objective, solvers, transfer, vgg  # pylint: disable=g-import-not-at-top
  params = vgg.load_params("vgg16")
  content = io.resize_to(io.load_image(ROOT / "examples/chelsea.png"),
                         (32, 48))
  style = io.resize_long_edge(
      io.load_image(ROOT / "examples/style_brushwork.png"), 48)
  config = transfer.TransferConfig(
      spec=objective.Spec(content_layers=("relu2_1",),
                          style_layers=("relu1_1", "relu2_1")),
      solver=solvers.SolverConfig(maxiter=5), tile_size=0,
      image_devices="all" if address else 1)
  mesh = transfer.image_mesh(config)
  spanned = (sorted({d.process_index for d in mesh.devices.flat}) if mesh
             else [0])
  snapshots = []
  result = transfer.stylize(
      params, content, [style], config, log_every=2, snapshot_every=2,
      on_snapshot=lambda i, image: snapshots.append(i))
  if jax.process_index() == 0:
    np.savez(out, image=result.image,
             loss=result.loss_history[-1]["total"],
             evaluations=result.function_evaluations,
             devices=jax.device_count(), processes=spanned,
             snapshots=snapshots,
             status=result.status == "max_iterations")


if __name__ == "__main__":
  main(*sys.argv[1:])
