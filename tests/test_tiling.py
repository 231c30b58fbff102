"""The exact tiled objective (nst_jax.tiling) against the untiled one, and one
image's rows sharded over 4 virtual CPU devices (a subprocess).

A tiny random VGG-16 (conftest.tiny_vgg16_params). The images are small but
split into many tiles whose margins cross pooling boundaries, so a wrong
margin, alignment, border mask or ownership shows up as a difference far
above float32 rounding.
"""


import dataclasses
import os
import pathlib
import sys

import jax
import scripting
import numpy as np
import pytest

from nst_jax import objective
from nst_jax import representations as R
from nst_jax import tiling
from nst_jax import transfer
from nst_jax.targets import make_targets
from nst_jax.errors import NSTError
from conftest import tiny_vgg16_params
from conftest import random_image as _img, relative_error as _rel
from conftest import run_on_virtual_devices

DEEP = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
SHALLOW = ("relu1_1", "relu2_1", "relu3_1")


@pytest.fixture(scope="module")
def params():
  return tiny_vgg16_params()


def test_geometry_of_vgg16():
  # relu5_1 reads 58 px before/after (conv1: 2, conv2: 2·2, conv3: 3·4, conv4:
  # 3·8, conv5_1: 16) on a 16 px grid.
  assert tiling.margin_and_alignment("vgg16", DEEP) == (64, 16)
  assert tiling.margin_and_alignment("vgg16", ("relu2_1",)) == (4, 2)
  p = tiling.plan("vgg16", DEEP, (150, 130), 48)
  assert p.count == 4 * 3 and p.window == (144, 144)
  for (y, x), (y0, y1, x0, x1) in zip(p.starts, p.owned):
    assert y % 16 == 0 and x % 16 == 0
    assert (y0 == 0 or y0 - y >= 64) and (y1 >= p.canvas[0]
                                          or y + 144 - y1 >= 64)
  rows = sorted({(a, b) for a, b, _, _ in p.owned})
  assert rows[0][0] == 0 and rows[-1][1] >= 150
  assert all(a[1] == b[0] for a, b in zip(rows, rows[1:]))   # a partition
  single = tiling.plan("vgg16", DEEP, (150, 130), 512)
  assert single.count == 1 and single.window == (150, 130)


# The Gaussian W2 loss is ill-conditioned where the covariance is nearly
# singular: on this random network at relu3_1 the untiled loss itself moves by
# 0.4-2e-4 relative when the features are perturbed by 1e-7 (float32
# rounding), so Covariance is compared where positions outnumber channels.
@pytest.mark.parametrize("rep,layers,content", [
    (R.Gram(), DEEP, ("relu4_2",)),
    ({"relu1_1": R.Eigen(rank=6, loss_kind="projected"),
      "relu2_1": R.Eigen(rank=6, loss_kind="spectrum"),
      "relu3_1": R.Moments()}, SHALLOW, ("relu2_2",)),
    ({"relu1_1": R.Covariance(), "relu2_1": R.Covariance(),
      "relu3_1": R.CentralMoments(order=4)}, SHALLOW, ("relu3_2",)),
])
def test_tiled_equals_untiled(params, rep, layers, content):
  # DEEP: rows end with the image (no border mask), columns reach past it.
  h, w = (160, 136) if layers == DEEP else (88, 80)
  spec = objective.Spec(content, layers, pooling="max", style=rep)
  targets = make_targets(params, _img(h, w, 1) if content else None,
                                   [_img(80, 72, 2), _img(64, 70, 3)], spec,
                                   style_blend_weights=[2.0, 1.0])
  weights = objective.make_weights(spec, content_weight=3.0,
                                   style_weight=1e3, tv_weight=2.0)
  p = tiling.plan("vgg16", spec.layers, (h, w), 80 if layers == DEEP else 24)
  assert p.count >= (4 if layers == DEEP else 9)
  if layers == DEEP:
    assert p.canvas == (h, 160)
  x = _img(h, w, 4)
  grad = lambda f: jax.jit(jax.value_and_grad(f, has_aux=True))(
      x, params, targets, weights)
  (v0, t0), g0 = grad(objective.objective_function(spec))
  (v1, t1), g1 = grad(tiling.objective_function(spec, p))
  assert abs(float(v1 - v0)) <= 1e-4 * abs(float(v0))
  for k in ("content", "style", "tv"):
    assert abs(float(t1[k] - t0[k])) <= 1e-4 * abs(float(t0["total"])), k
  assert _rel(t1["style_layers"], t0["style_layers"]) < 1e-4
  assert _rel(g1, g0) < 1e-4
  # A plain evaluation (pass 1 only) gives the same terms.
  t2 = jax.jit(tiling.objective_function(spec, p))(x, params, targets,
                                                   weights)[1]
  assert abs(float(t2["total"] - v0)) <= 1e-4 * abs(float(v0))


def test_pass_2_rerunning_or_reusing_the_last_group_agree(params):
  """``Plan.reuse_last`` off (pass 2 runs every window again) and on (the
  last group's pass-1 activations are reused): the same value and gradient
  as untiled."""
  spec = objective.Spec(("relu2_2",), SHALLOW, pooling="max")
  targets = make_targets(params, _img(56, 48, 1), [_img(40, 40, 2)],
                                   spec)
  weights = objective.make_weights(spec, content_weight=1.0, style_weight=1e3,
                                   tv_weight=1.0)
  p = tiling.plan("vgg16", spec.layers, (56, 48), 16)
  x = _img(56, 48, 4)
  grad = lambda f: jax.jit(jax.value_and_grad(f, has_aux=True))(
      x, params, targets, weights)
  (v0, _), g0 = grad(objective.objective_function(spec))
  for reuse in (False, True):
    (v1, _), g1 = grad(tiling.objective_function(
        spec, dataclasses.replace(p, reuse_last=reuse)))
    assert abs(float(v1 - v0)) <= 1e-4 * abs(float(v0)), reuse
    assert _rel(g1, g0) < 1e-4, reuse


def test_lbfgs_tiled_matches_untiled(params):
  spec = objective.Spec(("relu2_2",), SHALLOW, pooling="avg")
  config = transfer.TransferConfig(
      spec=spec, weights=objective.LossWeights(style=1e3), conv="direct",
      tile_size=0)
  config = config.replace(solver=dict(maxiter=5))
  content, style = np.asarray(_img(88, 72, 5)), np.asarray(_img(64, 64, 6))
  untiled = transfer.stylize(params, content, [style], config)
  tiled = transfer.stylize(params, content, [style],
                           config.replace(tile_size=16), log_every=2)
  assert tiled.iterations == untiled.iterations == 5
  assert abs(tiled.loss_history[-1]["total"]
             - untiled.loss_history[-1]["total"]) <= 1e-4 * abs(
                 untiled.loss_history[-1]["total"])
  assert np.max(np.abs(tiled.image - untiled.image)) < 1e-3


@pytest.mark.parametrize("rep", [R.Spatial(), R.Local(window=1),
                                 R.SlicedWasserstein(samples=64)])
def test_refuses_non_averaged_representations(rep):
  spec = objective.Spec(("relu2_2",), SHALLOW, style=rep)
  with pytest.raises(NSTError, match=type(rep).__name__ +
                     r" style representation at relu1_1 is not a function "
                     "of position averages") as e:
    tiling.objective_function(spec, tiling.plan("vgg16", spec.layers,
                                                (64, 64), 32))
  assert "\n" not in str(e.value)
  with pytest.raises(NSTError, match="position averages"):
    transfer.check_config(transfer.TransferConfig(spec=spec, tile_size=32))
  transfer.check_config(transfer.TransferConfig(spec=spec, tile_size="auto"))


def test_tile_size_values_and_auto():
  assert tiling.parse_tile_size("auto") == "auto"
  assert tiling.parse_tile_size("512") == 512
  for bad in ("-1", "big"):
    with pytest.raises(NSTError, match="tile_size"):
      tiling.parse_tile_size(bad)
  with pytest.raises(NSTError, match="at least 16"):
    tiling.plan("vgg16", DEEP, (100, 100), 8)
  spec = objective.Spec()
  shape = (3072, 4096)
  untiled = transfer.memory.estimate_bytes("vgg16", spec.layers, shape)
  assert tiling.choose_tile_size("vgg16", spec, shape,
                                 available=untiled) == 0
  size = tiling.choose_tile_size("vgg16", spec, shape, available=8 * 2**30)
  need = tiling.estimate_bytes("vgg16", spec,
                               tiling.plan("vgg16", spec.layers, shape, size))
  assert 0 < size < 4096 and need <= 8 * 2**30 < untiled
  with pytest.raises(NSTError, match="even in tiles"):
    tiling.choose_tile_size("vgg16", spec, shape, available=2**30)
  swd = objective.Spec(style=R.SlicedWasserstein())
  with pytest.raises(NSTError, match="position averages"):
    tiling.choose_tile_size("vgg16", swd, shape, available=8 * 2**30)


_SHARDED = r"""
import sys
sys.path.insert(0, sys.argv[1])
import jax, jax.numpy as jnp, numpy as np
from nst_jax import objective, tiling, transfer
from nst_jax.targets import make_targets
from conftest import tiny_vgg16_params
assert jax.local_device_count() == 4
params = tiny_vgg16_params()
rng = np.random.default_rng(0)
img = lambda h, w: jnp.asarray(rng.uniform(size=(h, w, 3)), jnp.float32)
spec = objective.Spec(("relu2_2",), ("relu1_1", "relu2_1", "relu3_1"))
targets = make_targets(params, img(96, 80), [img(64, 64)], spec)
weights = objective.make_weights(spec, content_weight=1.0, style_weight=1e3,
                                 tv_weight=1.0)
x = img(96, 80)
base = transfer.TransferConfig(spec=spec, tile_size=0)
compiled = lambda f, *a: jax.jit(jax.value_and_grad(f, has_aux=True)).lower(
    *a).compile()
for tile in (0, 24):
  one, _ = transfer.objective_for(base.replace(tile_size=tile), (96, 80))
  four, _ = transfer.objective_for(
      base.replace(tile_size=tile, image_devices="all"), (96, 80))
  c1 = compiled(one, x, params, targets, weights)
  (v1, _), g1 = c1(x, params, targets, weights)
  mesh = transfer.image_mesh(base.replace(image_devices=4))
  xs, args = transfer.place_on_mesh(mesh, x, (params, targets, weights))
  c4 = compiled(four, xs, *args)
  (v4, _), g4 = c4(xs, *args)
  assert len(g4.sharding.device_set) == 4, g4.sharding
  dv = abs(float(v4 - v1)) / abs(float(v1))
  dg = float(jnp.linalg.norm((g4 - g1).ravel()) / jnp.linalg.norm(g1.ravel()))
  print("tile", tile, "value", dv, "grad", dg)
  assert dv < 1e-4 and dg < 1e-4, (dv, dg)
  # Per-device temporary memory (XLA's buffer assignment): untiled it falls
  # with 4 devices; tiled, 4 tiles go at once, one per device, so it stays
  # one tile's (4 windows on each device would be ~3x).
  m1, m4 = (c.memory_analysis().temp_size_in_bytes for c in (c1, c4))
  print("tile", tile, "temp bytes per device", m1, m4)
  assert m4 < (0.75 if tile == 0 else 1.3) * m1, (m1, m4)
print("ok")
"""


def test_rows_sharded_over_four_devices_equal_one():
  run_on_virtual_devices(_SHARDED)


def test_image_devices_values():
  config = transfer.TransferConfig()
  assert transfer.image_device_count(config) == 1
  assert transfer.image_mesh(config) is None
  have = jax.local_device_count()
  assert transfer.image_device_count(config.replace(image_devices="all")) == (
      have)
  for bad in (0, have + 1, "two"):
    with pytest.raises(NSTError, match="image_devices"):
      transfer.check_config(config.replace(image_devices=bad))


def test_targets_computed_in_tiles(params):
  spec = objective.Spec(("relu3_2",), SHALLOW,
                        style={"relu1_1": R.Gram(), "relu2_1": R.Moments(),
                               "relu3_1": R.CentralMoments(order=3)})
  content, styles = _img(88, 80, 7), [_img(72, 96, 8)]
  whole = make_targets(params, content, styles, spec)
  tiled = make_targets(params, content, styles, spec, tile_size=16)
  assert tiling.plan("vgg16", spec.layers, (88, 80), 16).count > 9
  for a, b in zip(jax.tree_util.tree_leaves(tiled),
                  jax.tree_util.tree_leaves(whole)):
    assert a.shape == b.shape and _rel(a, b) < 1e-5


@pytest.mark.parametrize("script,flags,fragments", [
    ("stylize.py", ["--style_stat=swd", "--tile_size=64"],
     ["--tile_size", "SlicedWasserstein", "position averages"]),
    ("stylize.py", ["--tile_size=big"],
     ["--tile_size must be 'auto' or a number"]),
    ("stylize.py", ["--image_devices=99"],
     ["--image_devices must be between 1 and"]),
    ("style_grid.py", ["--tile_size=64"], ["a grid batches its cells"]),
])
def test_command_refuses_in_one_line(tmp_path, script, flags, fragments):
  images = scripting.ROOT.parent / "shared" / "images"
  out = ([f"--output={tmp_path / 'out.png'}"] if script == "stylize.py"
         else [f"--output_dir={tmp_path / 'grid'}"])
  proc = scripting.run(script, f"--content={images / 'tubingen.jpg'}",
                       f"--style={images / 'starry_night.jpg'}", "--size=64",
                       *out, *flags)
  scripting.assert_one_line_error(proc, *fragments)
  assert not list(tmp_path.iterdir())


def test_multiscale_adam_snapshots_and_stop_when_tiled(params):
  spec = objective.Spec(("relu2_2",), SHALLOW)
  config = transfer.TransferConfig(
      spec=spec, weights=objective.LossWeights(style=1e3), conv="direct",
      tile_size=16).replace(solver=dict(method="adam", maxiter=4))
  content, style = np.asarray(_img(72, 64, 9)), np.asarray(_img(64, 64, 10))
  snapshots, levels, asked = [], [], []

  def should_stop():   # Ctrl-C during the second level, after 2 iterations
    asked.append(1)
    return len(levels) == 1 and len(snapshots) >= 3

  result = transfer.stylize_multiscale(
      params, content, [style], [48, 72], config, snapshot_every=1,
      on_snapshot=lambda i, x: snapshots.append((i, x.shape)),
      on_level=lambda s, r: levels.append((s, r.status)),
      should_stop=should_stop)
  assert levels[0] == (48, "max_iterations")
  assert levels[1][1] == "interrupted" and result.image.shape == (72, 64, 3)
  assert [s for _, s in snapshots][:4] == [(48, 43, 3)] * 4
  assert (72, 64, 3) in [s for _, s in snapshots]


_RERUN_COVARIANCE = r"""
import dataclasses, sys
sys.path.insert(0, sys.argv[1])
import jax
from conftest import random_image as img, tiny_vgg16_params
from nst_jax import objective, representations as R, tiling
from nst_jax.targets import make_targets
params = tiny_vgg16_params()
rep = {"relu1_1": R.Covariance(), "relu2_1": R.Covariance(),
       "relu3_1": R.CentralMoments(order=4)}
spec = objective.Spec(("relu3_2",), ("relu1_1", "relu2_1", "relu3_1"),
                      pooling="max", style=rep)
targets = make_targets(params, img(88, 80, 1),
                                 [img(80, 72, 2), img(64, 70, 3)], spec,
                                 style_blend_weights=[2.0, 1.0])
weights = objective.make_weights(spec, content_weight=3.0, style_weight=1e3,
                                 tv_weight=2.0)
p = dataclasses.replace(tiling.plan("vgg16", spec.layers, (88, 80), 24),
                        reuse_last=False)
step = jax.jit(jax.value_and_grad(tiling.objective_function(spec, p),
                                  has_aux=True))
x = img(88, 80, 4)
for _ in range(3):
  jax.block_until_ready(step(x, params, targets, weights))
print("ok")
"""


def test_rerunning_pass_2_with_two_batched_eigh_finishes():
  """Regression: every window rerun in pass 2, ``Covariance`` on two layers
  and two style images (a batch of 2 matrices per layer) hung on the second
  evaluation on this 2-core CPU: jaxlib split both layers' batched eigh over
  XLA's pool from inside its two workers and blocked both
  (``statistics.each_matrix`` decomposes one matrix per call). In a fresh
  process with a timeout, so that a hang fails this test, not the suite."""
  import subprocess  # pylint: disable=g-import-not-at-top
  here = str(pathlib.Path(__file__).parent)
  try:
    out = subprocess.run([sys.executable, "-c", _RERUN_COVARIANCE, here],
                         env=dict(os.environ, JAX_PLATFORMS="cpu"),
                         capture_output=True, text=True, timeout=150)
  except subprocess.TimeoutExpired:
    pytest.fail("three evaluations did not finish in 150 s (a hang)")
  assert out.returncode == 0 and out.stdout.strip().endswith("ok"), (
      out.stdout + out.stderr[-3000:])
