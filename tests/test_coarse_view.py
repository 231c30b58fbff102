"""The coarse view of a coarse-to-fine run (``Schedule.coarse_weight``,
``objective.coarse_view_loss``, ``problem.with_coarse_view``; issue 26,
item 6): the image seen at the first level's size, its loss, its
gradients, and that it reaches the levels of every driver.

A tiny random VGG-16 (conftest.tiny_vgg16_params) on shallow layers,
24-48 px, a few iterations.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_image as _img

from nst_jax import batch
from nst_jax import config as C
from nst_jax import grid
from nst_jax import io
from nst_jax import objective
from nst_jax import problem
from nst_jax import transfer
from nst_jax import video
from nst_jax.errors import NSTError

from test_driver import SHALLOW, _config, params  # noqa: F401  (a fixture)


def test_the_view_is_ios_lanczos_resize():
  """``coarse_view`` is the antialiased Lanczos-3 resize of ``io.resize_to``
  (PIL's) before its clip, so the loss sees what the metrics see at that
  size, also at a sharp edge."""
  edges = np.zeros((64, 80, 3), np.float32)   # Lanczos overshoots here
  edges[:, 40:] = 1.0
  for image in (np.asarray(_img(64, 80, 0)), edges):
    for shape in ((32, 40), (16, 20), (31, 39)):
      got = np.asarray(objective.coarse_view(jnp.asarray(image), shape))
      assert got.shape == (*shape, 3)
      # io clips to [0, 1]; the view does not (its gradient reaches every
      # pixel).
      np.testing.assert_allclose(np.clip(got, 0, 1), io.resize_to(image, shape),
                                 atol=1e-5)


def test_the_loss_is_the_first_levels_objective_at_the_view(params):
  """``coarse_view_loss`` is ``loss_terms``' total of the downsampled image
  against the first level's targets; its gradient is finite, reaches every
  pixel of the large image, and agrees with a finite difference."""
  cfg = _config()
  spec = cfg.objective_spec()
  first = np.asarray(_img(24, 32, 1))
  style = np.asarray(_img(32, 32, 2))
  targets = problem.style_targets(params, first, [style], cfg)
  weights = cfg.weights.arrays(spec)
  image = jnp.asarray(_img(48, 64, 3))
  loss = jax.jit(lambda x: objective.coarse_view_loss(
      params, x, targets, weights, spec, (24, 32)))
  want = objective.loss_terms(params, objective.coarse_view(image, (24, 32)),
                              targets, weights, spec)["total"]
  assert float(loss(image)) == pytest.approx(float(want), rel=1e-5)
  grad = np.asarray(jax.grad(loss)(image))
  assert np.isfinite(grad).all() and (np.abs(grad) > 0).mean() > 0.9
  direction = np.asarray(_img(48, 64, 5)) - 0.5
  along = float(np.sum(grad * direction))
  # A central difference (float32, a ReLU network: a few per cent of
  # noise) agrees roughly.
  eps = 1e-2
  numeric = (float(loss(image + eps * direction))
             - float(loss(image - eps * direction))) / (2 * eps)
  assert along == pytest.approx(numeric, rel=0.1)


def test_with_coarse_view_adds_its_term_and_vmaps(params):
  """``with_coarse_view(f)``: ``f``'s terms plus ``coarse`` = weight ×
  ``coarse_view_loss`` at ``targets.coarse``, in ``total``; ``f`` itself
  never sees ``coarse``. Under ``jax.vmap`` over two cells each equals
  its own evaluation."""
  cfg = _config()
  spec = cfg.objective_spec()
  fun = objective.objective_function(spec)
  view = problem.CoarseView((24, 32), 0.5)
  wrapped = problem.with_coarse_view(fun, spec, view)
  assert problem.with_coarse_view(fun, spec, problem.CoarseView(
      (24, 32), 0.5)) is wrapped   # one objective, one compiled program
  weights = cfg.weights.arrays(spec)
  styles = [np.asarray(_img(32, 32, s)) for s in (5, 6)]
  fine = [problem.style_targets(params, np.asarray(_img(48, 64, 7)), [s], cfg)
          for s in styles]
  first = [problem.style_targets(params, np.asarray(_img(24, 32, 7)), [s],
                                 cfg) for s in styles]
  images = jnp.stack([jnp.asarray(_img(48, 64, k)) for k in (8, 9)])
  singles = []
  for k in range(2):
    total, terms = jax.jit(wrapped)(images[k], params,
                                    fine[k]._replace(coarse=first[k]),
                                    weights)
    plain, _ = fun(images[k], params, fine[k], weights)
    coarse = 0.5 * objective.coarse_view_loss(params, images[k], first[k],
                                              weights, spec, (24, 32))
    assert float(terms["coarse"]) == pytest.approx(float(coarse), rel=1e-5)
    assert float(total) == pytest.approx(float(plain + coarse), rel=1e-5)
    assert float(terms["total"]) == float(total)
    singles.append(float(total))
  stacked = objective.stack_targets(
      [f._replace(coarse=c) for f, c in zip(fine, first)])
  batched, _ = jax.vmap(wrapped, in_axes=(0, None, 0, None))(
      images, params, stacked, weights)
  np.testing.assert_allclose(np.asarray(batched), singles, rtol=1e-5)


def test_the_view_keeps_a_finer_level_close_to_the_first(params):
  """With the coarse view (the default) a finer level's result, seen at the
  first level's size, stays closer to the first level's objective than
  without it (``coarse_weight=0``), and only the finer level records a
  ``coarse`` term."""
  content = np.asarray(_img(24, 32, 0)) * 0.5 + 0.25
  content = io.resize_to(content, (48, 64))
  style = np.asarray(_img(48, 48, 1))
  def run(weight):
    cfg = _config(schedule=C.Schedule(scales=(32, 64),
                                      scale_iterations=(12, 12),
                                      coarse_weight=weight))
    return transfer.paint(params, content, [style], cfg, log_every=1), cfg
  (on, cfg), (off, _) = run(1.0), run(0.0)
  assert all("coarse" not in r for r in off.loss_history)
  assert all(("coarse" in r) == (r["size"] == 64) for r in on.loss_history)
  spec = cfg.objective_spec()
  first = problem.style_targets(params, io.resize_to(content, (24, 32)),
                                [io.resize_long_edge(style, 32)], cfg)
  def seen_small(image):
    return float(objective.coarse_view_loss(
        params, jnp.asarray(image), first, cfg.weights.arrays(spec), spec,
        (24, 32)))
  assert seen_small(on.image) < 0.8 * seen_small(off.image)


def test_the_coarse_view_reaches_every_drivers_levels(params, monkeypatch):
  """The one-image command, folders, grids and video all add the coarse
  view at the levels after the first (the composition matrix's
  ``coarse_view`` column): each driver's run traces
  ``objective.coarse_view_loss`` at the first level's shape."""
  seen = []
  loss = objective.coarse_view_loss
  def recording(params, image, targets, weights, spec, shape):
    seen.append((tuple(image.shape[-3:-1]), tuple(shape)))
    return loss(params, image, targets, weights, spec, shape)
  monkeypatch.setattr(objective, "coarse_view_loss", recording)
  cfg = _config(schedule=C.Schedule(scales=(24, 48), scale_iterations=(2, 1)))
  content = np.asarray(_img(36, 48, 0))
  style = np.asarray(_img(40, 40, 1))
  axes = grid.GridAxes(style_layer_sets=(SHALLOW,))
  runs = {
      "stylize": lambda: transfer.paint(params, content, [style], cfg),
      "folder": lambda: list(batch.stylize_batch(params, [content], [style],
                                                 axes, cfg)),
      "grid": lambda: grid.style_grid(params, content, [style], axes, cfg),
      "video": lambda: video.stylize_video(params, [content, content],
                                           [style], cfg),
  }
  for driver, run in runs.items():
    seen.clear()
    run()
    assert seen and set(seen) == {((36, 48), (18, 24))}, (driver, seen)
  seen.clear()
  transfer.paint(params, content, [style], cfg.replace(
      schedule=dict(coarse_weight=0.0)))
  assert not seen


@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf")])
def test_a_bad_weight_is_refused(weight):
  with pytest.raises(NSTError, match="coarse_weight"):
    C.Schedule(coarse_weight=weight).check()


def test_a_coarse_view_the_device_cannot_hold_is_refused_before_work(
    params, monkeypatch):
  """The view is evaluated whole: where the first level's untiled
  estimate exceeds the device's memory, every driver refuses in one line
  before any work (and ``coarse_weight=0`` runs)."""
  from nst_jax import memory, solvers  # pylint: disable=g-import-not-at-top
  cfg = _config(schedule=C.Schedule(scales=(24, 48), scale_iterations=(1, 1)),
                tile_size=16)
  content = np.asarray(_img(36, 48, 0))
  style = np.asarray(_img(40, 40, 1))
  # The levels are tiled (their estimates small); the view's whole
  # estimate does not fit.
  monkeypatch.setattr(memory, "available_bytes", lambda: 2**40)
  monkeypatch.setattr(problem, "_untiled_bytes", lambda *a: 2**41)
  def no_work(*args, **kwargs):
    raise AssertionError("optimised before refusing")
  monkeypatch.setattr(solvers, "minimize", no_work)
  with pytest.raises(NSTError, match="coarse view of the first level.*"
                     "coarse_weight"):
    transfer.paint(params, content, [style], cfg)
  with pytest.raises(NSTError, match="coarse view of the first level"):
    video.stylize_video(params, [content], [style], cfg)
  with pytest.raises(NSTError, match="coarse view of the first level"):
    grid.check_levels(cfg, content.shape[:2])
  problem.check_coarse_view(cfg.replace(schedule=dict(coarse_weight=0.0)),
                            (18, 24))


def test_re_drawn_targets_re_draw_the_coarse_views_too(params):
  """A representation that re-draws its targets (sliced Wasserstein with
  ``redraw_every``) re-draws the first level's targets in ``coarse`` at
  the same rounds, and leaves them alone between rounds."""
  from nst_jax import representations  # pylint: disable=g-import-not-at-top
  cfg = _config(spec=objective.Spec(
      content_layers=("relu2_1",), style_layers=("relu1_1",),
      style=representations.SlicedWasserstein(redraw_every=2)))
  spec = cfg.objective_spec()
  style = np.asarray(_img(32, 32, 1))
  fine = problem.style_targets(params, np.asarray(_img(48, 64, 0)), [style],
                               cfg)
  first = problem.style_targets(params, np.asarray(_img(24, 32, 0)), [style],
                                cfg)
  targets = fine._replace(coarse=first)
  assert objective.redraw_targets(spec, targets, 1) is None
  again = objective.redraw_targets(spec, targets, 2)
  leaves = lambda t: jax.tree_util.tree_leaves(t.style)
  assert any(not np.array_equal(a, b) for a, b in zip(
      leaves(again.coarse), leaves(first)))
  want = objective.redraw_targets(spec, first, 2)
  for a, b in zip(leaves(again.coarse), leaves(want)):
    np.testing.assert_array_equal(a, b)
