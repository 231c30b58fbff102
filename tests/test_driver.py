"""The configuration, the problem layer and the one run loop: every driver
(one image, a pyramid, folders, grids, video) goes through the same decision
of how the objective is evaluated (``problem.evaluation``) and the same run
loop (``run.run_problem``), so features compose.

A tiny random VGG-16 (conftest.tiny_vgg16_params) on shallow layers: the
images are small but span several tiles, so a driver that ignored the
evaluation (video before issue 22 ran untiled whatever ``tile_size`` said)
or computed its targets another way shows up as a difference far above
float32 rounding.
"""

import json

import numpy as np
import pytest

from nst_jax import config as C
from nst_jax import objective
from nst_jax import problem
from nst_jax import representations as R
from nst_jax import transfer
from nst_jax import video
from nst_jax.errors import NSTError
from conftest import tiny_vgg16_params
from conftest import random_image as _img

SHALLOW = ("relu1_1", "relu2_1", "relu3_1")


@pytest.fixture(scope="module")
def params():
  return tiny_vgg16_params()


def _config(**parts):
  spec = objective.Spec(content_layers=("relu2_1",), style_layers=SHALLOW)
  base = transfer.TransferConfig(spec=spec, tile_size=0)
  return base.replace(solver=dict(maxiter=3), **parts)


# --- the schedule ----------------------------------------------------------------


def test_schedule_levels_are_the_default_pyramid_or_the_given_scales():
  s = C.Schedule()
  assert s.levels(512, 100) == list(zip(*transfer.pyramid(512, 100)))
  assert s.levels(512, 100) == [(256, 100), (512, 20)]
  assert s.levels(300, 100) == [(300, 100)]        # below 2·256: one level
  assert C.Schedule(pyramid_base=0).levels(1024, 7) == [(1024, 7)]
  given = C.Schedule(scales=(32, 64), scale_iterations=(5, 2))
  assert given.levels(999, 1) == [(32, 5), (64, 2)]
  assert C.Schedule(scales=(32, 64)).levels(64, 4) == [(32, 4), (64, 4)]


@pytest.mark.parametrize("schedule,fragment", [
    (C.Schedule(scales=(64, 32)), "must increase"),
    (C.Schedule(scales=(0, 32)), "positive"),
    (C.Schedule(scale_iterations=(3,)), "needs `scales`"),
    (C.Schedule(scales=(32, 64), scale_iterations=(3,)), "1 iteration counts"),
    (C.Schedule(pyramid_base=-1), "pyramid_base"),
    (C.Schedule(style_scale=0.0), "style_scale"),
])
def test_schedule_refuses_before_any_work(schedule, fragment):
  with pytest.raises(NSTError, match=fragment):
    transfer.check_config(transfer.TransferConfig(schedule=schedule))


# --- the evaluation, decided once ---------------------------------------------------


def test_the_evaluation_is_decided_once_and_read_everywhere():
  cfg = _config(tile_size=16)
  ev = problem.evaluation(cfg, (40, 48))
  assert ev.tile == 16 and ev.plan.count > 1 and ev.devices == 1
  assert transfer.estimate_memory(cfg, (40, 48)) == ev.bytes
  assert transfer.tile_size_for(cfg, (40, 48)) == 16
  assert transfer.tiling_message(cfg, (40, 48)) == ev.message()
  assert "tiled, 16 px interiors" in ev.message()
  untiled = problem.evaluation(_config(), (40, 48))
  assert untiled.tile == 0 and untiled.plan is None
  assert untiled.message().startswith("untiled")
  assert ev.tiles_of((40, 48), SHALLOW, "vgg16").count == ev.plan.count
  assert untiled.tiles_of((40, 48), SHALLOW, "vgg16") is None


def test_extra_terms_add_to_the_total_and_are_recorded(params):
  cfg = _config()
  content = np.asarray(_img(32, 40, 0))
  style = np.asarray(_img(32, 32, 1))
  plain = problem.make_problem(params, content, [style], cfg)
  double = problem.Term("again", lambda image, data: data * image.sum())
  p = problem.make_problem(params, content, [style], cfg, terms=(double,),
                           term_data=(np.float32(2.0),))
  total0, terms0 = plain.fun(plain.x0, *plain.args)
  total1, terms1 = p.fun(p.x0, *p.args)
  extra = 2.0 * float(np.asarray(content).sum())
  np.testing.assert_allclose(float(terms1["again"]), extra, rtol=1e-6)
  np.testing.assert_allclose(float(total1), float(total0) + extra, rtol=1e-6)
  assert float(terms1["total"]) == float(total1)


# --- a batch of cells: the same run loop ----------------------------------------------


def test_a_batch_of_cells_runs_through_run_problem_like_each_cell_alone(params):
  """``run_problem`` of a ``Problem`` with ``cells`` (three cells, chunks of
  two: the second chunk padded): every cell's records, at the same
  iterations, equal the records of its own one-image run, ``on_log`` sees
  ``{cell: record}`` of the running chunk, ``on_chunk`` follows each chunk,
  and what is for one image only is refused."""
  from nst_jax import grid, run, sharded  # pylint: disable=g-import-not-at-top
  cfg = _config().replace(solver=dict(maxiter=4))
  contents = [np.asarray(_img(32, 40, k)) for k in range(3)]
  style = np.asarray(_img(32, 32, 5))
  two = grid.GridAxes(style_layer_sets=(SHALLOW,),
                      style_weight=(800.0, 3000.0)).cells()
  cells = [dict(two[0], content=0), dict(two[1], content=1),
           dict(two[0], content=2)]
  cfg = grid.cell_config(cfg, (SHALLOW,))
  p = grid.cells_problem(params, contents, [style], cells, cfg,
                         mesh=sharded.cell_mesh(), chunk_size=2)
  logged, chunks = [], []
  result = run.run_problem(p, cfg.solver, log_every=2, on_log=logged.append,
                           on_chunk=lambda d, t: chunks.append((d, t)))
  assert chunks == [(2, 3), (3, 3)]
  assert [sorted(l) for l in logged] == [[0, 1], [0, 1], [0, 1], [2], [2],
                                         [2]]
  assert result.image.shape == (3, 32, 40, 3) and len(result.status) == 3
  for k, history in enumerate(result.loss_history):
    alone = transfer.stylize(
        params, contents[k], [style],
        cfg.replace(weights=dict(style=cells[k]["style_weight"])),
        log_every=2)
    assert [r["iteration"] for r in history] == [
        r["iteration"] for r in alone.loss_history]
    for ours, theirs in zip(history, alone.loss_history):
      for term in ("total", "content", "style", "tv"):
        assert ours[term] == pytest.approx(theirs[term], rel=1e-4), (k, term)
    np.testing.assert_allclose(result.image[k], alone.image, atol=1e-4)
  with pytest.raises(ValueError, match="not a batch of cells"):
    run.run_problem(p, cfg.solver, on_snapshot=lambda i, x: None,
                    snapshot_every=1)


def test_a_parameterised_problem_reports_and_returns_its_image():
  """``Problem.image_of``: the run optimises another variable (here the
  image less 0.5) and its snapshots, live ``Progress.x()`` and result are
  the image of that variable, clipped to [0, 1]."""
  from nst_jax import run, solvers  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  target = np.linspace(-0.45, 0.45, 4 * 5 * 3, dtype=np.float32).reshape(
      4, 5, 3)
  def fun(x, params, t):
    del params
    total = jnp.sum((x - t) ** 2)
    return total, {"total": total, "content": total, "style": 0.0 * total,
                   "tv": 0.0 * total, "style_layers": jnp.zeros((1,))}
  spec = objective.Spec(content_layers=(), style_layers=("relu1_1",))
  p = problem.Problem(fun, ({}, target), jnp.zeros((4, 5, 3)), spec,
                      problem.untiled((4, 5)), image_of=lambda x: x + 0.5)
  snapshots, shown = [], []
  result = run.run_problem(
      p, solvers.SolverConfig(maxiter=6), snapshot_every=3,
      on_snapshot=lambda i, im: snapshots.append(im),
      on_progress=lambda pr: pr.x is not None and shown.append(
          np.asarray(pr.x())), progress_seconds=0.0)
  np.testing.assert_allclose(result.image, target + 0.5, atol=1e-5)
  np.testing.assert_allclose(snapshots[-1], target + 0.5, atol=1e-5)
  np.testing.assert_allclose(shown[-1], target + 0.5, atol=1e-5)


def test_map_cells_applies_a_chunk_function_as_one_call_would():
  from nst_jax import sharded  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  x = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
  per = np.array([1.0, 2.0, 3.0, 4.0, 5.0], np.float32)
  fn = jax.jit(lambda x, shared, per: {"y": x * shared + per[:, None]})
  out = sharded.map_cells(fn, x, (np.float32(2.0), per), (None, 0),
                          chunk_size=2)
  np.testing.assert_array_equal(out["y"], x * 2.0 + per[:, None])


# --- video: the frames go through the same problem and run loop ---------------------


def _clip(frames=3, shape=(40, 48)):
  source = np.asarray(_img(96, 96, 7))
  clip, _ = video.pan_zoom_clip(source, frames=frames, shape=shape)
  return clip


@pytest.mark.xla_defaults
def test_video_tiled_equals_untiled(params, monkeypatch):
  """``tile_size`` reaches every frame — its objective is the tiled one,
  content targets included — and the tiled video equals the untiled one
  (before, both ran untiled)."""
  clip = _clip()
  style = np.asarray(_img(40, 40, 3))
  untiled = video.stylize_video(params, clip, [style], _config())
  plans = []
  for name in ("objective_function", "content_features"):
    real = getattr(problem.tiling, name)
    monkeypatch.setattr(problem.tiling, name,
                        lambda *a, real=real, name=name: plans.append(name)
                        or real(*a))
  tiled = video.stylize_video(params, clip, [style], _config(tile_size=16))
  assert plans.count("content_features") >= len(clip)   # every frame
  assert "objective_function" in plans
  for a, b in zip(untiled.results, tiled.results):
    np.testing.assert_allclose(a.terms["total"], b.terms["total"], rtol=2e-3)
    assert np.abs(a.image - b.image).max() <= 2 / 255 + 1e-6
    assert "temporal" in a.terms
  assert untiled.results[1].terms["temporal"] > 0


def test_video_refuses_an_untileable_representation_as_stylize_does(params):
  cfg = _config(tile_size=16).replace(spec=dict(style=R.Spatial()))
  with pytest.raises(NSTError) as single:
    transfer.stylize(params, np.asarray(_img(40, 48, 0)),
                     [np.asarray(_img(40, 48, 1))], cfg)
  with pytest.raises(NSTError) as frames:
    video.stylize_video(params, _clip(2), [np.asarray(_img(40, 48, 1))], cfg)
  assert str(frames.value) == str(single.value)
  assert "tile" in str(single.value)


# --- folders and grids paint the single command's levels ----------------------------


def test_a_folder_paints_coarse_to_fine_like_the_single_command(tmp_path,
                                                               vgg16_params):
  """``nst-stylize --output_dir`` at --size=128 --pyramid_base=64 paints the
  levels 64 → 128 px like ``nst-stylize`` (before, a folder painted one
  level): each image equals the single command's picture."""
  del vgg16_params  # the commands load the real weights
  import scripting  # pylint: disable=g-import-not-at-top
  from nst_jax import io  # pylint: disable=g-import-not-at-top
  root = scripting.ROOT
  photos = tmp_path / "photos"
  photos.mkdir()
  image = io.load_image(root / "examples" / "chelsea.png")
  io.save_image(photos / "a.png", io.resize_to(image, (96, 128)))
  io.save_image(photos / "b.png", io.resize_to(image[:, ::-1], (96, 128)))
  style = root / "examples" / "style_brushwork.png"
  flags = ("--size=128", "--pyramid_base=64", "--iterations=4", "--quiet",
           "--content_layers=relu2_1", "--style_layers=relu1_1,relu2_1")
  folder = scripting.run("stylize.py", f"--content={photos}",
                         f"--style={style}", f"--output_dir={tmp_path / 'out'}",
                         *flags)
  scripting.assert_ok(folder)
  for name in ("a", "b"):
    single = scripting.run("stylize.py", f"--content={photos / name}.png",
                           f"--style={style}",
                           f"--output={tmp_path / name}_single.png", *flags)
    scripting.assert_ok(single)
    record = json.loads((tmp_path / f"out/{name}_style_brushwork.json"
                         ).read_text())
    alone = json.loads((tmp_path / f"{name}_single.json").read_text())
    # 4 iterations at 64 px, a fifth of them (1) at 128 px, in both.
    assert record["iterations"] == alone["iterations"] == 5
    got = io.load_image(tmp_path / f"out/{name}_style_brushwork.png")
    want = io.load_image(tmp_path / f"{name}_single.png")
    assert got.shape == want.shape == (96, 128, 3)
    # The cells run batched (vmap): float32 rounding, seen through 8 bits.
    assert np.abs(got - want).max() <= 2 / 255 + 1e-6
    assert np.abs(got - want).mean() < 0.05 / 255
    assert record["loss_history"][-1]["total"] == pytest.approx(
        alone["loss_history"][-1]["total"], rel=1e-3)


def test_a_grid_paints_the_schedules_levels_like_one_transfer(params):
  """A grid is a batch with one content: through the levels of
  ``config.schedule`` (32 → 48 px here), each cell equals ``transfer.paint``
  of its own configuration."""
  from nst_jax import grid  # pylint: disable=g-import-not-at-top
  cfg = _config(schedule=C.Schedule(scales=(32, 48), scale_iterations=(3, 1)))
  content = np.asarray(_img(36, 48, 0))
  style = np.asarray(_img(40, 40, 1))
  axes = grid.GridAxes(style_layer_sets=(SHALLOW,), style_weight=(800.0,))
  cells = grid.style_grid(params, content, [style], axes, cfg)
  alone = transfer.paint(params, content, [style],
                         cfg.replace(weights=dict(style=800.0)))
  assert int(cells.iterations[0]) == alone.iterations == 4
  np.testing.assert_allclose(cells.images[0], alone.image, atol=1e-4)
  assert cells.images[0].shape == (36, 48, 3)


def test_video_blends_its_styles(params):
  """Blend weights reach every frame's style target: weights (1, 0) paint
  the first style's video."""
  clip = _clip(2, (32, 40))
  a = np.asarray(_img(40, 40, 3))
  b = np.asarray(0.2 + 0.1 * _img(40, 40, 4))   # other statistics
  one = video.stylize_video(params, clip, [a], _config())
  blend = video.stylize_video(params, clip, [a, b],
                              _config(weights=dict(style_blend=(1.0, 0.0))))
  even = video.stylize_video(params, clip, [a, b], _config())
  np.testing.assert_allclose(blend.results[-1].image, one.results[-1].image,
                             atol=1.5 / 255)
  for r, o, e in zip(blend.results, one.results, even.results):
    assert r.terms["style"] == pytest.approx(o.terms["style"], rel=1e-5)
    assert abs(e.terms["style"] - o.terms["style"]) > 3e-3 * o.terms["style"]


def test_a_video_paints_the_schedules_levels(params):
  """Every frame goes through ``config.schedule``'s levels (24 → 48 px):
  the first frame, which has no predecessor, equals ``transfer.paint`` of
  it; the next ones are painted at both levels too."""
  clip = _clip(2, (36, 48))
  style = np.asarray(_img(40, 40, 3))
  cfg = _config(schedule=C.Schedule(scales=(24, 48), scale_iterations=(3, 2)))
  result = video.stylize_video(params, clip, [style], cfg)
  alone = transfer.paint(params, clip[0], [style], cfg)
  first = result.results[0]
  assert first.iterations == alone.iterations == 5
  assert first.image.shape == (36, 48, 3)
  np.testing.assert_allclose(first.image, video.quantize(alone.image),
                             atol=1.01 / 255)
  assert result.results[1].iterations == 5
  with pytest.raises(NSTError, match="must be the frames' long edge"):
    video.stylize_video(params, clip, [style], _config(
        schedule=C.Schedule(scales=(24, 40))))


_VIDEO_ROWS = r"""
import sys
sys.path.insert(0, sys.argv[1])
import jax, numpy as np
from nst_jax import objective, transfer, video
from conftest import tiny_vgg16_params, random_image
assert jax.local_device_count() == 2
params = tiny_vgg16_params()
clip, _ = video.pan_zoom_clip(np.asarray(random_image(96, 96, 7)), frames=2,
                              shape=(32, 40))
style = np.asarray(random_image(40, 40, 3))
spec = objective.Spec(content_layers=("relu2_1",),
                      style_layers=("relu1_1", "relu2_1"))
config = transfer.TransferConfig(spec=spec, tile_size=0).replace(
    solver=dict(maxiter=2))
one = video.stylize_video(params, clip, [style], config)
two = video.stylize_video(params, clip, [style],
                          config.replace(image_devices=2))
for a, b in zip(one.results, two.results):
  assert abs(a.terms["total"] - b.terms["total"]) <= 1e-3 * a.terms["total"]
  assert np.abs(a.image - b.image).max() <= 2 / 255 + 1e-6
print("ok")
"""


def test_video_rows_over_two_devices_equal_one():
  """``image_devices`` reaches every frame (the Evaluation's mesh): a video
  with its rows over 2 virtual CPU devices equals the one-device video."""
  from conftest import run_on_virtual_devices  # pylint: disable=g-import-not-at-top
  run_on_virtual_devices(_VIDEO_ROWS, count=2)
