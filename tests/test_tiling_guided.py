"""The exact tiled objective (nst_jax.tiling) for guided representations
(nst_jax.guided: masks' GuidedGram and GuidedMoments, ContentAware) against
the untiled one, with an empty region; their targets computed in tiles; over
4 virtual devices; nst-stylize with masks in tiles.

A tiny random VGG-16 (conftest.tiny_vgg16_params), 88x80 px in 24 px tiles
(>= 9 windows whose margins cross the pooling boundaries), so a window's
guides cut at the wrong place, with the wrong owned weights or clamped at
the image's edge show up far above float32 rounding.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from nst_jax import guided
from nst_jax import masks
from nst_jax import objective
from nst_jax import representations as R
from nst_jax import tiling
from nst_jax import transfer
from nst_jax.targets import make_targets
from nst_jax.errors import NSTError
from conftest import require_file, tiny_vgg16_params
from conftest import random_image as _img, relative_error as _rel
from conftest import run_on_virtual_devices
import scripting

SHALLOW = ("relu1_1", "relu2_1", "relu3_1")
RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


@pytest.fixture(scope="module")
def params():
  return tiny_vgg16_params()


def _mask_guides(h, w, styles):
  """Three regions from a colour mask (diagonal stripes red, blue, green,
  feathered: every window's guides differ from its neighbours'), the first
  style masked red/blue, the second all green; and a fourth region that
  the content does not have (empty: its guide is 0 everywhere) but the
  first style does."""
  y, x = np.mgrid[:h, :w]
  m = np.asarray([RED, BLUE, GREEN], np.uint8)[((x + 2 * y) // 11) % 3]
  s = np.zeros(tuple(styles[0].shape[:2]) + (3,), np.uint8)
  s[:, : s.shape[1] // 2] = RED
  s[:, s.shape[1] // 2:] = BLUE
  found = masks.region_guides(m, [s, GREEN], blur=1.5)
  assert found.guides.content.shape[0] == 3
  g = found.guides
  content = np.concatenate([g.content, np.zeros_like(g.content[:1])])
  first = np.concatenate([g.styles[0], g.styles[0][:1]])     # present here
  second = np.concatenate([g.styles[1], np.zeros_like(g.styles[1][:1])])
  return guided.Guides(content, (first, second))


# Masks: guided Grams (both downsamplings, both normalisations) and guided
# moments beside an unguided layer (only the guided layers take maps).
CASES = {
    "masks": ({"relu1_1": guided.GuidedGram(), "relu1_2": R.Gram(),
               "relu2_1": guided.GuidedMoments(),
               "relu3_1": guided.GuidedGram("notes", downsample="inside")},
              ("relu2_2",)),
    "content_aware": (guided.ContentAware(clusters=3, window=1,
                                          guide_layer="relu2_1"),
                      ("relu2_2",)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_guided_tiled_equals_untiled(params, case):
  """Tiled loss and gradient equal untiled; and the targets computed in
  tiles (style statistics, each window with its slice of the style's
  guides; a content-aware guide layer's features) equal untiled ones."""
  rep, content_layers = CASES[case]
  h, w = 88, 80
  layers = tuple(rep) if isinstance(rep, dict) else SHALLOW
  spec = objective.Spec(content_layers, layers, pooling="max", style=rep)
  styles = [_img(64, 72, 2), _img(64, 72, 3)]
  guides = None if case == "content_aware" else _mask_guides(h, w, styles)
  make = lambda tile: make_targets(
      params, _img(h, w, 1), styles, spec, style_blend_weights=[2.0, 1.0],
      guides=guides, tile_size=tile)
  targets = make(0)
  assert tiling.plan("vgg16", layers, (64, 72), 24).count >= 9
  for a, b in zip(jax.tree_util.tree_leaves(make(24)),
                  jax.tree_util.tree_leaves(targets)):
    assert a.shape == b.shape and _rel(a, b) < 1e-5
  if guides is not None:   # the empty region is in the targets, weight 0
    for layer, rep_l in spec.style_by_layer():
      if guided.is_guided(rep_l):
        assert float(jnp.max(targets.style[layer]["guides"][3])) == 0.0
        assert float(jnp.max(targets.style[layer]["weight"][:, 3])) == 0.0
  weights = objective.make_weights(spec, content_weight=3.0,
                                   style_weight=1e3, tv_weight=2.0)
  p = tiling.plan("vgg16", spec.layers, (h, w), 24)
  assert p.count >= 9 and p.canvas != (h, w)    # windows reach past the image
  x = _img(h, w, 4)
  grad = lambda f: jax.jit(jax.value_and_grad(f, has_aux=True))(
      x, params, targets, weights)
  (v0, t0), g0 = grad(objective.objective_function(spec))
  (v1, t1), g1 = grad(tiling.objective_function(spec, p))
  assert np.isfinite(float(v0)) and float(t0["style"]) > 0
  assert abs(float(v1 - v0)) <= 1e-4 * abs(float(v0))
  assert _rel(t1["style_layers"], t0["style_layers"]) < 1e-4
  assert _rel(g1, g0) < 1e-4


def test_guided_tile_memory_holds_one_region_product_at_a_time(params):
  """guided_gram_sums' lax.map + jax.checkpoint per window: XLA's temporary
  memory of the tiled value-and-gradient grows by less than one window's
  (M, C) product at relu1_1 per extra region (8 regions against 1; all K
  products at once would add about 2.3 of them per region)."""
  h = w = 96
  layers = ("relu1_1", "relu2_1")
  spec = objective.Spec((), layers, style=guided.GuidedGram())
  weights = objective.make_weights(spec, content_weight=0.0,
                                   style_weight=1e3, tv_weight=0.0)
  p = tiling.plan("vgg16", layers, (h, w), 32)
  assert p.count == 9 and p.window == (38, 38)
  temp = {}
  for k in (1, 8):
    g = np.random.default_rng(k).uniform(size=(k, h, w)).astype(np.float32)
    targets = make_targets(params, _img(h, w, 1), [_img(h, w, 2)],
                                     spec, guides=guided.Guides(g, (g,)))
    compiled = jax.jit(jax.value_and_grad(
        tiling.objective_function(spec, p), has_aux=True)).lower(
            _img(h, w, 3), params, targets, weights).compile()
    temp[k] = compiled.memory_analysis().temp_size_in_bytes
  product = 38 * 38 * 64 * 4      # one window's (M, C) at relu1_1, bytes
  assert (temp[8] - temp[1]) / 7 < product, temp


def test_position_sums_of_guided_are_the_statistic():
  """The protocol's identities for maps: the loss from the sums over all
  positions (weights 1, the whole layer's guides) divided by H·W is the
  loss, and those averages are the statistic; the sums of two
  complementary halves add up to the whole's."""
  rng = np.random.default_rng(0)
  f = jnp.asarray(rng.normal(size=(6, 7, 5)), jnp.float32)
  g = jnp.asarray(rng.uniform(size=(3, 6, 7)), jnp.float32).at[1].set(0.0)
  for rep in (guided.GuidedGram(), guided.GuidedMoments()):
    stacked = rep.statistic(f[::-1] * 1.5, g)
    target = rep.target(jax.tree_util.tree_map(lambda a: a[None], stacked),
                        g)
    maps = R.position_maps_of(rep, target)
    whole = rep.position_sums(f, jnp.ones((6, 7)), maps)
    want = rep.loss(f, target)
    got = rep.loss_from_statistic(
        jax.tree_util.tree_map(lambda s: s / 42, whole), target)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(rep.statistic(f, g)),
                    jax.tree_util.tree_leaves(rep.position_sums(
                        f, jnp.ones((6, 7)), g))):
      np.testing.assert_allclose(a, b / 42, rtol=1e-5, atol=1e-7)
    top = jnp.zeros((6, 7)).at[:3].set(1.0)
    halves = jax.tree_util.tree_map(
        jnp.add, rep.position_sums(f, top, maps),
        rep.position_sums(f, 1.0 - top, maps))
    for a, b in zip(jax.tree_util.tree_leaves(halves),
                    jax.tree_util.tree_leaves(whole)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert R.position_maps_of(R.Gram(), {}) is None
  assert R.takes_position_maps(guided.ContentAware())


def test_guided_representations_are_tileable():
  for rep in (guided.GuidedGram(), guided.GuidedMoments(),
              guided.ContentAware()):
    spec = objective.Spec(("relu2_2",), SHALLOW, style=rep)
    tiling.check_tileable(spec)
    transfer.check_config(transfer.TransferConfig(spec=spec, tile_size=32))
  spec = objective.Spec(("relu2_2",), SHALLOW, style=R.SlicedWasserstein())
  with pytest.raises(NSTError, match="gram, eigen, moments, covariance, cmd, "
                     r"content_aware, or masks \(guided gram or moments\)"
                     ) as e:
    tiling.check_tileable(spec)
  assert "\n" not in str(e.value)


def test_guided_style_statistics_need_maps_in_tiles(params):
  spec = objective.Spec((), SHALLOW, style=guided.GuidedGram())
  p = tiling.plan("vgg16", spec.layers, (64, 64), 16)
  with pytest.raises(NSTError, match="GuidedGram at relu1_1 take "
                     "per-position maps") as e:
    tiling.style_statistics(params, _img(64, 64, 5), spec, p)
  assert "\n" not in str(e.value)


_SHARDED = r"""
import sys
sys.path.insert(0, sys.argv[1])
import jax, jax.numpy as jnp, numpy as np
from nst_jax import guided, objective, tiling, transfer
from nst_jax.targets import make_targets
from conftest import tiny_vgg16_params
from test_tiling_guided import _img, _mask_guides
assert jax.local_device_count() == 4
params = tiny_vgg16_params()
spec = objective.Spec(("relu1_2",), ("relu1_1", "relu1_2"),
                      style=guided.GuidedGram())
styles = [_img(64, 64, 2), _img(48, 64, 3)]
targets = make_targets(params, _img(72, 64, 1), styles, spec,
                                 guides=_mask_guides(72, 64, styles))
weights = objective.make_weights(spec, content_weight=1.0, style_weight=1e3,
                                 tv_weight=1.0)
x = _img(72, 64, 4)
base = transfer.TransferConfig(spec=spec, tile_size=16)
assert tiling.plan("vgg16", spec.layers, (72, 64), 16).count == 20
one, _ = transfer.objective_for(base.replace(tile_size=0), (72, 64))
four, _ = transfer.objective_for(base.replace(image_devices=4), (72, 64))
grad = lambda f: jax.jit(jax.value_and_grad(f, has_aux=True))
(v1, _), g1 = grad(one)(x, params, targets, weights)
mesh = transfer.image_mesh(base.replace(image_devices=4))
xs, args = transfer.place_on_mesh(mesh, x, (params, targets, weights))
(v4, _), g4 = grad(four)(xs, *args)
assert len(g4.sharding.device_set) == 4, g4.sharding
dv = abs(float(v4 - v1)) / abs(float(v1))
dg = float(jnp.linalg.norm((g4 - g1).ravel()) / jnp.linalg.norm(g1.ravel()))
print("value", dv, "grad", dg)
assert dv < 1e-4 and dg < 1e-4, (dv, dg)
print("ok")
"""


def test_guided_tiles_sharded_over_four_devices_equal_one():
  """--image_devices with masks: 4 tiles at a time, one per virtual CPU
  device (a subprocess), the same loss and gradient as one device
  untiled."""
  run_on_virtual_devices(_SHARDED)


def test_stylize_command_with_masks_in_tiles(tmp_path, shared_images):
  """nst-stylize with a content mask and --tile_size: 9 windows, the run
  completes and its record keeps the tile size."""
  from nst_jax import weights   # pylint: disable=g-import-not-at-top
  require_file(weights.weights_path("vgg16"))
  m = np.zeros((48, 64, 3), np.uint8)
  m[:, :40], m[:, 40:] = BLUE, RED
  Image.fromarray(m).save(tmp_path / "regions.png")
  out = tmp_path / "out.png"
  proc = scripting.run(
      "stylize.py", f"--content={shared_images / 'tubingen.jpg'}",
      f"--style={shared_images / 'starry_night.jpg'},"
      f"{shared_images / 'the_scream.jpg'}",
      f"--content_mask={tmp_path / 'regions.png'}",
      "--style_colors=#ff0000,#0000ff", "--size=48", "--iterations=2",
      "--log_every=0", "--content_layers=relu1_1",
      "--style_layers=relu1_1", "--tile_size=16", f"--output={out}")
  scripting.assert_ok(proc)
  assert "tiled, 16 px interiors: 9 windows" in proc.stdout + proc.stderr
  record = json.loads((tmp_path / "out.json").read_text())
  assert str(record["params"]["tile_size"]) == "16" and out.exists()
