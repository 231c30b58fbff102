"""STROTSS and NNST as methods of the one run loop (``nst_jax.methods``):
composed configuration, the stages they run, reproducibility from the seed,
the run loop's hooks, and the command's ``--method``.

A tiny random VGG-16 (conftest.tiny_vgg16_params) and settings cut down to
shallow layers and few samples keep every compiled program small; the
formulas themselves are tested against numpy in test_strotss.py,
test_nnst.py, test_hypercolumns.py, test_parameterize.py and test_oklab.py.
"""

import json

import numpy as np
import pytest
from PIL import Image

from nst_jax import guided
from nst_jax import methods
from nst_jax import nnst
from nst_jax import strotss
from nst_jax.errors import NSTError
from conftest import tiny_vgg16_params
from conftest import random_image as _img
from conftest import random_image as jnp_image
import scripting

SMALL_STROTSS = dict(layers=("relu1_1", "relu2_1"), samples=32,
                     style_samples=40, style_draws=1, iterations=2,
                     pyramid_levels=2)
SMALL_NNST = dict(layers=("relu1_1", "relu2_1"), size=48, scales=2,
                  iterations=2, pyramid_levels=2, zero_bands=1)


@pytest.fixture(scope="module")
def params():
  return tiny_vgg16_params()


def test_a_method_is_composed_from_its_defaults_and_changed_in_one_part():
  m = methods.method("strotss", size=256, settings=dict(content_weight=8.0))
  assert isinstance(m, methods.Strotss) and m.size == 256
  assert m.settings.content_weight == 8.0
  assert m.settings.iterations == strotss.DEFAULTS.iterations   # the rest
  assert m.sizes() == (64, 128, 256)
  assert methods.Strotss(size=512).sizes() == (64, 128, 256, 512)
  assert methods.Strotss(size=100).sizes() == (100,)   # no level < 64 px
  assert methods.Strotss(size=200).sizes() == (100, 200)
  n = methods.method("nnst", settings=dict(alpha=0.5))
  assert n.settings.alpha == 0.5 and n.settings.size == nnst.DEFAULTS.size
  assert n.sizes() == (64, 128, 256, 512)
  assert methods.method("nnst", size=256).settings.size == 256   # as STROTSS
  g = methods.method("gatys", config=dict(solver=dict(maxiter=7)))
  assert g.config.solver.maxiter == 7
  # each stage's long side and iterations (the web app's limits count them)
  n_it, s_it = nnst.DEFAULTS.iterations, strotss.DEFAULTS.iterations
  assert n.stages() == ((64, n_it), (128, n_it), (256, n_it), (512, n_it),
                        (512, n_it))   # the levels, then the final pass
  assert methods.method("nnst", settings=dict(final_pass=False)).stages() \
      == ((64, n_it), (128, n_it), (256, n_it), (512, n_it))
  assert m.stages() == ((64, s_it), (128, s_it), (256, s_it))
  with pytest.raises(NSTError, match="method"):
    methods.method("picasso")
  with pytest.raises(NSTError, match="alpha"):
    methods.method("nnst", settings=dict(alpha=1.5))


def _strotss(size=64, seed=0):
  return methods.Strotss(settings=strotss.Settings(**SMALL_STROTSS),
                         size=size, seed=seed)


def test_strotss_runs_its_levels_and_is_reproducible_from_its_seed(params):
  content, style = np.asarray(_img(48, 64, 0)), np.asarray(_img(40, 40, 1))
  logged, stages, snapshots = [], [], []
  result = methods.paint(
      params, content, [style], _strotss(size=128), log_every=1,
      on_log=logged.append, on_stage=lambda *a: stages.append(a),
      snapshot_every=2, on_snapshot=lambda i, x: snapshots.append(i))
  assert stages == [(64, "level", 2), (128, "level", 2)]
  assert result.image.shape == (96, 128, 3)
  assert 0.0 <= result.image.min() and result.image.max() <= 1.0
  assert result.iterations == 4 and result.status == "max_iterations"
  assert [r["size"] for r in result.loss_history] == [64] * 3 + [128] * 3
  assert {"total", "content", "style", "remd", "moment", "palette"} <= set(
      result.loss_history[-1])
  assert [r["iteration"] for r in logged] == [0, 1, 2, 0, 1, 2]
  assert snapshots == [2, 4]   # counted over the whole run
  again = methods.paint(params, content, [style], _strotss(size=128))
  np.testing.assert_array_equal(again.image, result.image)
  other = methods.paint(params, content, [style], _strotss(size=128, seed=1))
  assert np.abs(other.image - result.image).max() > 1e-4   # positions differ


def test_strotss_stops_cleanly(params):
  content, style = np.asarray(_img(48, 64, 0)), np.asarray(_img(40, 40, 1))
  result = methods.paint(params, content, [style], _strotss(size=128),
                         should_stop=lambda: True)
  assert result.status == "interrupted"
  assert {r["size"] for r in result.loss_history} == {64}   # no later level


def test_nnst_runs_levels_final_pass_and_colour_transfer(params):
  content, style = np.asarray(_img(36, 48, 2)), np.asarray(_img(40, 40, 3))
  m = methods.Nnst(settings=nnst.Settings(**SMALL_NNST))
  stages = []
  result = methods.paint(params, content, [style], m,
                         on_stage=lambda *a: stages.append(a), log_every=1)
  assert stages == [(24, "level", 2), (48, "level", 2), (48, "final", 2)]
  assert result.image.shape == (36, 48, 3) and result.iterations == 6
  final = [r for r in result.loss_history if r.get("stage") == "final"]
  assert final and {"nnst_relu1_1", "nnst_relu2_1", "total"} <= set(final[-1])
  plain = methods.paint(params, content, [style], m.replace(
      settings=dict(colorize=False)))
  # the colour transfer changes the colours, not the run before it
  assert np.abs(plain.image - result.image).max() > 1e-3
  assert plain.iterations == result.iterations


def test_runs_that_differ_outside_the_losses_share_their_compiled_losses(
    params):
  """A second run with other iterations, colours, α, sizes … compiles no
  loss again: the losses' cache keys drop the settings no loss reads —
  and those settings truly change no loss value (each changed alone)."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  s = nnst.Settings(**SMALL_NNST)
  other = dataclasses.replace(s, colorize=False, iterations=7, alpha=0.3,
                              size=96, final_pass=False)
  assert methods._nnst_losses(s) is methods._nnst_losses(other)
  assert methods._nnst_losses(s) is not methods._nnst_losses(
      dataclasses.replace(s, sample_side=8))
  t = strotss.Settings(**SMALL_STROTSS)
  assert methods._strotss_loss(t) is methods._strotss_loss(
      dataclasses.replace(t, iterations=9, content_weight=3.0, style_draws=2))
  assert methods._strotss_loss(t) is not methods._strotss_loss(
      dataclasses.replace(t, samples=16))
  # No loss reads those fields: every attribute a loss reads of its
  # settings while it is traced (jax.eval_shape: nothing computed).
  class Reads:
    def __init__(self, settings):
      self.settings, self.names = settings, set()

    def __getattr__(self, name):
      self.names.add(name)
      return getattr(self.settings, name)
  image, style = jnp_image(32, 32, 4), jnp_image(32, 32, 5)
  key = jax.random.key(0)
  pool, layers = nnst.style_pool(params, style, s), nnst.layer_pool(
      params, style, s)
  targets = nnst.make_targets(params, image, style, pool, s)
  reads = Reads(s)
  jax.eval_shape(lambda x: nnst.loss(params, x, targets, reads), image)
  jax.eval_shape(lambda x: nnst.final_loss(params, x, layers, key, reads),
                 image)
  assert reads.names and not reads.names & set(methods._OUTSIDE_NNST_LOSS)
  reads = Reads(t)
  st = strotss.make_targets(params, image, style, t, key)
  jax.eval_shape(lambda x: strotss.objective(reads)(params, x, st, key),
                 image)
  assert reads.names and not reads.names & set(
      methods._OUTSIDE_STROTSS_LOSS), reads.names
  # The compiled preparations are keyed without those fields too, less what
  # each reads (methods._*_TARGETS_READ): the same trace of each.
  prepared = [
      (lambda r: nnst.style_pool(params, style, r), s, ()),
      (lambda r: nnst.layer_pool(params, style, r), s, ()),
      (lambda r: nnst.make_targets(params, image, style, pool, r,
                                   alpha=0.5), s, methods._NNST_TARGETS_READ),
      (lambda r: strotss.make_targets(params, image, style, r, key), t,
       methods._STROTSS_TARGETS_READ + ("content_weight",))]
  for fun, settings, kept in prepared:
    reads = Reads(settings)
    jax.eval_shape(lambda: fun(reads))
    outside = set(methods._OUTSIDE_NNST_LOSS if settings is s
                  else methods._OUTSIDE_STROTSS_LOSS)
    assert reads.names and not (reads.names - set(kept)) & outside, (
        reads.names)
  # alpha is an argument of the compiled NNST targets: one program for all.
  make = lambda alpha: methods._nnst_preparations(
      dataclasses.replace(s, alpha=alpha))[1](params, image, style, pool)
  before = methods._nnst_targets_jit._cache_size()
  a, b = make(0.2), make(0.9)
  assert methods._nnst_targets_jit._cache_size() <= before + 1
  np.testing.assert_array_equal(
      a.features, nnst.make_targets(params, image, style, pool,
                                    dataclasses.replace(s, alpha=0.2)).features)
  assert not np.array_equal(a.features, b.features)


def _two_colour_guides():
  """Content 32x48: left half region 0, right half region 1; style 40x40:
  top half region 0 (made red), bottom half region 1 (made blue)."""
  content = np.zeros((2, 32, 48), np.float32)
  content[0, :, :24] = content[1, :, 24:] = 1.0
  style_masks = np.zeros((2, 40, 40), np.float32)
  style_masks[0, :20] = style_masks[1, 20:] = 1.0
  style = np.asarray(_img(40, 40, 1)) * 0.3
  style[:20, :, 0] += 0.7
  style[20:, :, 2] += 0.7
  return guided.Guides(content, (style_masks,)), style


def test_guided_strotss_paints_each_region_from_its_style_region(params):
  """The official guided example's kind (regions paired by colour): the
  left of the output takes the red top of the painting, the right its blue
  bottom; unguided both halves take both colours."""
  guides, style = _two_colour_guides()
  content = np.full((32, 48, 3), 0.5, np.float32) + 0.1 * np.asarray(
      _img(32, 48, 0))
  m = _strotss(size=48).replace(settings=dict(
      iterations=40, learning_rate=0.05, last_learning_rate=0.05,
      content_weight=0.5))
  red_minus_blue = lambda x: x[..., 0] - x[..., 2]
  out = methods.paint(params, content, [style], m, guides=guides).image
  left, right = red_minus_blue(out[:, :24]).mean(), red_minus_blue(
      out[:, 24:]).mean()
  assert left > 0.15 and right < -0.15, (left, right)
  plain = methods.paint(params, content, [style], m).image
  gap = abs(red_minus_blue(plain[:, :24]).mean()
            - red_minus_blue(plain[:, 24:]).mean())
  assert gap < (left - right) / 2, (gap, left, right)


def test_methods_refuse_what_they_cannot_do(params):
  content, style = np.asarray(_img(36, 48, 2)), np.asarray(_img(40, 40, 3))
  with pytest.raises(NSTError, match="one style image"):
    methods.paint(params, content, [style, style], _strotss())
  with pytest.raises(NSTError, match="first level"):
    methods.paint(params, content, [style], methods.Nnst(
        settings=nnst.Settings(size=16, scales=3)))
  with pytest.raises(NSTError, match="first level of the style"):
    methods.paint(params, content, [np.zeros((6, 200, 3), np.float32)],
                  methods.Nnst(settings=nnst.Settings(**SMALL_NNST)))
  guides, _ = _two_colour_guides()
  with pytest.raises(NSTError, match="no masks"):
    methods.paint(params, content, [style], methods.Nnst(), guides=guides)
  one_region = guided.Guides(guides.content[:1], (guides.styles[0][:1],))
  with pytest.raises(NSTError, match="50.0% of the content mask is in no "
                     "region"):
    methods.paint(params, content, [style], _strotss(), guides=one_region)


def test_the_command_refuses_a_flag_the_method_does_not_use(tmp_path):
  """Before any work, one line (no traceback), nothing written."""
  images = scripting.ROOT / "examples"
  common = [f"--content={images / 'chelsea.png'}",
            f"--style={images / 'style_brushwork.png'}",
            f"--output={tmp_path / 'out.png'}"]
  for extra, fragment in [
      (["--method=strotss", "--style_weight=5"], "does not use --style_weight"),
      (["--method=nnst", "--content_weight=2"], "does not use --content_weight"),
      (["--method=strotss", "--alpha=0.5"], "does not use --alpha"),
      (["--method=nnst", f"--output_dir={tmp_path}"], "one content image"),
      (["--alpha=0.3"], "--alpha belongs to --method=nnst"),   # gatys
      (["--method=strotss", "--seed=1,2"], "one --seed"),
      (["--method=strotss", f"--content_mask={images / 'chelsea.png'}",
        "--mask_blur=2"], "does not use --mask_blur"),
      (["--method=nnst", f"--content_mask={images / 'chelsea.png'}"],
       "does not use --content_mask"),
  ]:   # (tiling, devices, masks, colour, blends, resume: test_composition)
    proc = scripting.run("stylize.py", *common, *extra)
    assert proc.returncode == 1, proc.stderr
    assert fragment in proc.stderr and "Traceback" not in proc.stderr
  assert not list(tmp_path.glob("*.png"))


def _mask_file(path, shape, split_rows: bool):
  """A two-colour mask of ``shape`` (red first half, blue the rest)."""
  mask = np.zeros(shape + (3,), np.uint8)
  if split_rows:
    mask[:shape[0] // 2] = (255, 0, 0)
    mask[shape[0] // 2:] = (0, 0, 255)
  else:
    mask[:, :shape[1] // 2] = (255, 0, 0)
    mask[:, shape[1] // 2:] = (0, 0, 255)
  Image.fromarray(mask).save(path)
  return path


def test_the_command_paints_with_strotss_and_records_it(tmp_path):
  """One end-to-end run: --method=strotss at 64 px (one level), one
  iteration, guided by masks (two regions paired by colour), scored
  (--evaluate: the command's one code path for both methods,
  _method.main); the record says the method, the masks, its terms and the
  scores."""
  images = scripting.ROOT / "examples"
  out = tmp_path / "s.png"
  content_mask = _mask_file(tmp_path / "cm.png", (
      Image.open(images / "chelsea.png").height,
      Image.open(images / "chelsea.png").width), split_rows=False)
  style_mask = _mask_file(tmp_path / "sm.png", (
      Image.open(images / "style_brushwork.png").height,
      Image.open(images / "style_brushwork.png").width), split_rows=True)
  proc = scripting.run("stylize.py", "--method=strotss", "--size=64",
                       "--iterations=1", "--quiet", "--log_every=1",
                       "--evaluate", "--score_size=64",
                       f"--content={images / 'chelsea.png'}",
                       f"--style={images / 'style_brushwork.png'}",
                       f"--content_mask={content_mask}",
                       f"--style_masks={style_mask}",
                       f"--output={out}")
  scripting.assert_ok(proc)
  record = json.loads(out.with_suffix(".json").read_text())
  assert record["params"]["method"] == "strotss"
  assert record["params"]["content_mask"] == str(content_mask)
  assert str(style_mask) in record["inputs"]
  assert record["iterations"] == 1
  assert {"remd", "moment", "palette", "size"} <= set(
      record["loss_history"][-1])
  assert record["evaluation"]["size"] == 64
  assert 0.0 < record["evaluation"]["lpips_vgg"] < 1.5
  # A record written before --coarse_weight (no key) runs again: records
  # of Gatys runs then had no coarse view (0), STROTSS never has one.
  del record["params"]["coarse_weight"]
  old = tmp_path / "old.json"
  old.write_text(json.dumps(record))
  again = scripting.run("stylize.py", f"--from_json={old}", "--quiet",
                        f"--output={tmp_path / 'again.png'}")
  scripting.assert_ok(again)
