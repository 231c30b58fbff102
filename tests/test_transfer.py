"""End-to-end tests of nst_jax.transfer.stylize with the real VGG-16 weights.

Tiny images (long edge 64 or less). The one run with the default
configuration (all five style layers, relu4_2, optax L-BFGS) is marked slow;
the others read only shallow layers so that they compile in seconds.

Runs that must end on the same image (the same seed twice; a stopped run and
a shorter one) are compared bit for bit on XLA:CPU and to float32 rounding
grown over a few iterations on a GPU (``conftest.tol``), whose kernels may
reduce in another order from one run or program to the next.
"""

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import configs
from conftest import tiny_vgg16_params, tol

from nst_jax import color
from nst_jax import io
from nst_jax import objective
from nst_jax import transfer
from nst_jax.errors import NSTError

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"

# Shallow layers only: fast to compile, enough to exercise the pipeline.
LIGHT = dict(content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"))


@pytest.fixture(scope="module")
def content():
  return io.resize_long_edge(io.load_image(EXAMPLES / "chelsea.png"), 64)


@pytest.fixture(scope="module")
def style():
  return io.resize_long_edge(io.load_image(EXAMPLES / "style_brushwork.png"), 64)


@pytest.fixture(scope="module")
def params():
  """Random VGG-16 weights: these tests check the run's mechanics, which do
  not depend on training (the slow test above uses the real weights)."""
  return tiny_vgg16_params()


@pytest.fixture(scope="module")
def small(content):
  return io.resize_long_edge(content, 32)


@pytest.mark.slow
def test_default_stylize_lowers_the_loss(vgg16_params, content, style):
  assert content.shape == (43, 64, 3) and style.shape == (48, 64, 3)
  config = configs.config(iterations=30)
  logged = []
  result = transfer.stylize(vgg16_params, content, [style], config,
                            log_every=10, on_log=logged.append)
  assert result.image.shape == content.shape
  assert result.image.dtype == np.float32
  assert result.image.min() >= 0.0 and result.image.max() <= 1.0
  assert result.iterations == 30
  assert result.status == "max_iterations"
  # The default optimizer takes its first trial step almost always.
  assert 30 <= result.function_evaluations <= 1.3 * 30
  history = result.loss_history
  assert [h["iteration"] for h in history] == [0, 10, 20, 30]
  assert logged == history
  for h in history:
    assert h["total"] == pytest.approx(h["content"] + h["style"] + h["tv"],
                                       rel=1e-5)
  first, last = history[0], history[-1]
  assert first["content"] == pytest.approx(0.0, abs=1e-3)  # init = content
  assert last["style"] < 0.2 * first["style"]
  assert last["total"] < 0.5 * first["total"]
  # The image moved away from the content image, towards the style.
  assert np.abs(result.image - content).mean() > 0.01
  assert result.wall_seconds > 0


def _light(**kwargs):
  return configs.config(**{**LIGHT, **kwargs})


def test_light_stylize_loss_history(params, small, style):
  result = transfer.stylize(params, small, [style],
                            _light(iterations=7), log_every=3)
  assert [h["iteration"] for h in result.loss_history] == [0, 3, 6, 7]
  assert result.loss_history[-1]["total"] < result.loss_history[0]["total"]
  assert result.image.shape == small.shape


def test_noise_init_is_deterministic_per_seed(params, small, style):
  runs = {}
  for key, seed in (("a", 3), ("b", 3), ("c", 4)):
    runs[key] = transfer.stylize(params, small, [style],
                                 _light(init="noise", seed=seed, iterations=2))
  np.testing.assert_allclose(runs["a"].image, runs["b"].image, rtol=0,
                             atol=tol(0, 1e-5))
  untimed = lambda r: [{k: v for k, v in h.items() if k != "seconds"}
                       for h in r.loss_history]
  if jax.default_backend() == "cpu":   # the very same numbers
    assert untimed(runs["a"]) == untimed(runs["b"])
  else:                                # rounding (conftest.tol)
    for x, y in zip(untimed(runs["a"]), untimed(runs["b"]), strict=True):
      assert x["iteration"] == y["iteration"]
      assert x["total"] == pytest.approx(y["total"], rel=1e-5)
  assert np.abs(runs["a"].image - runs["c"].image).mean() > 0.05
  # Noise, not the content image: the content term starts large.
  assert runs["a"].loss_history[0]["content"] > 1.0


def test_init_style_starts_at_resized_style(params, small, style):
  result = transfer.stylize(params, small, [style],
                            _light(init="style", iterations=0))
  assert result.iterations == 0
  want = io.resize_to(style, small.shape[:2])
  assert want.shape == small.shape
  np.testing.assert_allclose(result.image, want, atol=1e-6)
  assert [h["iteration"] for h in result.loss_history] == [0]


def test_init_content_with_zero_iterations_returns_content(params, small,
                                                            style):
  result = transfer.stylize(params, small, [style], _light(iterations=0))
  np.testing.assert_allclose(result.image, small, atol=1e-7)
  assert result.loss_history[0]["content"] == pytest.approx(0.0, abs=1e-6)


def test_too_small_image_raises_mentioning_size(params, style):
  tiny = np.full((8, 8, 3), 0.5, np.float32)
  with pytest.raises(NSTError, match="`size`") as info:
    transfer.stylize(params, tiny, [style], transfer.TransferConfig())
  assert "relu5_1" in str(info.value)


@pytest.mark.parametrize("shape,ok", [((8, 8), False), ((15, 64), False),
                                      ((16, 16), True), ((32, 48), True)])
def test_check_image_size_boundary(shape, ok):
  """relu5_1 comes after four poolings: 16 px is the smallest edge."""
  config = transfer.TransferConfig()
  if ok:
    transfer.check_image_size(config, shape)
  else:
    with pytest.raises(NSTError, match="`size`"):
      transfer.check_image_size(config, shape)


def test_huge_weights_raise_non_finite(vgg16_params, small, style):
  """Trained weights: their style loss at the content image is large enough
  that β = 1e38 overflows float32 (random weights' is not)."""
  config = _light(style_weight=1e38, iterations=5)
  with pytest.raises(NSTError, match="NaN or infinite"):
    transfer.stylize(vgg16_params, small, [style], config)


def test_nan_objective_raises(params, small, style, monkeypatch):
  real = objective.objective_function

  def nan_after_first_step(spec):
    fun = real(spec)

    def broken(image, *args):
      total, terms = fun(image, *args)
      moved = jnp.max(jnp.abs(image - jnp.asarray(small))) > 0
      return jnp.where(moved, jnp.nan, total), terms

    return broken

  monkeypatch.setattr(objective, "objective_function", nan_after_first_step)
  with pytest.raises(NSTError, match="NaN or infinite"):
    transfer.stylize(params, small, [style],
                     _light(optimizer="adam", iterations=5))


@pytest.mark.parametrize("kwargs,match", [
    (dict(network="vgg11"), "vgg11"),
    (dict(optimizer="sgd"), "sgd"),
    (dict(init="zeros"), "zeros"),
    (dict(iterations=-1), "solver.maxiter"),
    (dict(learning_rate=0.0), "solver.learning_rate"),
    (dict(style_layers=("relu9_1",)), "relu9_1"),
    (dict(content_layers=(), style_layers=()), "nothing to optimise"),
    (dict(color_transfer="lab"), "color.transfer"),
    (dict(color_space="hsv"), "color.space"),
])
def test_bad_config_raises(params, small, style, kwargs, match):
  with pytest.raises(NSTError, match=match):
    transfer.stylize(params, small, [style],
                     configs.config(**kwargs))


# --- history records, progress, interruption --------------------------------------


def test_history_records_seconds_and_style_layers(params, small, style):
  result = transfer.stylize(params, small, [style], _light(iterations=4),
                            log_every=2)
  seconds = [h["seconds"] for h in result.loss_history]
  assert seconds == sorted(seconds) and seconds[-1] <= result.wall_seconds
  for h in result.loss_history:
    assert list(h["style_layers"]) == ["relu1_1", "relu2_1"]
    assert sum(h["style_layers"].values()) == pytest.approx(h["style"],
                                                            rel=1e-5)


def test_progress_and_stop(params, small, style):
  seen = []
  result = transfer.stylize(
      params, small, [style], _light(iterations=50),
      on_progress=seen.append, should_stop=lambda: len(seen) > 3,
      progress_seconds=1e-9, terms_seconds=0.0)
  assert result.status == "interrupted"
  assert result.iterations == 3 == seen[-1].iteration
  assert seen[0].iteration == 0 and seen[0].record is None  # before compiling
  assert [p.iteration for p in seen] == [0, 1, 2, 3]
  assert all(p.iterations == 50 for p in seen)
  # Records refreshed at each chunk (terms_seconds=0) and the current value.
  assert [p.record["iteration"] for p in seen[1:]] == [1, 2, 3]
  assert seen[-1].value == pytest.approx(seen[-1].record["total"], rel=1e-4)
  assert result.loss_history[-1]["iteration"] == 3
  # Interrupted at 3 is where an uninterrupted 3-iteration run ends.
  short = transfer.stylize(params, small, [style], _light(iterations=3))
  np.testing.assert_allclose(result.image, short.image, rtol=0,
                             atol=tol(0, 1e-5))


def test_multiscale_stops_at_the_interrupted_level(params, content,
                                                   style):
  levels = []
  result = transfer.stylize_multiscale(
      params, content, [style], [32, 48, 64], _light(iterations=4),
      on_level=lambda s, r: levels.append(s),
      should_stop=lambda: len(levels) == 1, progress_seconds=1e-9)
  assert levels == [32, 48]
  assert result.status == "interrupted"
  assert max(result.image.shape[:2]) == 48


@pytest.mark.parametrize("size, scale, want", [(256, 1.0, 256),
                                               (256, 0.5, 128),
                                               (300, 1.5, 450), (3, 0.1, 1)])
def test_style_size(size, scale, want):
  assert transfer.style_size(size, scale) == want


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_style_size_rejects_bad_scales(scale):
  with pytest.raises(NSTError, match="`style_scale`"):
    transfer.style_size(256, scale)


# --- colour control -----------------------------------------------------------


@pytest.mark.parametrize("space", color.COLOR_SPACES)
def test_original_colors_keep_the_contents_chrominance(params, content,
                                                       style, space):
  config = _light(iterations=15, original_colors=True, color_space=space)
  result = transfer.stylize(params, content, [style], config)
  got = color.rgb_to_luma_chroma(result.image, space)
  want = color.rgb_to_luma_chroma(content, space)
  # Chrominance: the content's, up to clipping to [0, 1].
  chroma_diff = np.abs(got[..., 1:] - want[..., 1:]).mean()
  assert chroma_diff < 0.01
  # Luma: moved by the transfer.
  assert np.abs(got[..., 0] - want[..., 0]).mean() > 0.01
  plain = transfer.stylize(params, content, [style],
                           _light(iterations=15))
  plain_chroma = color.rgb_to_luma_chroma(plain.image, space)[..., 1:]
  assert np.abs(plain_chroma - want[..., 1:]).mean() > 5 * chroma_diff


def _prepare_colors(content, styles, config):
  return config.color.prepare(content, styles)


def test_prepare_colors(content, style):
  same_c, same_s = _prepare_colors(content, [style], _light())
  np.testing.assert_array_equal(same_c, content)
  np.testing.assert_array_equal(same_s[0], style)
  c, (s,) = _prepare_colors(content, [style],
                                    _light(color_transfer="histogram"))
  np.testing.assert_array_equal(c, content)
  # The recoloured style has (up to clipping) the content's mean colour.
  np.testing.assert_allclose(s.reshape(-1, 3).mean(0),
                             content.reshape(-1, 3).mean(0), atol=0.02)
  assert np.abs(style.reshape(-1, 3).mean(0) -
                content.reshape(-1, 3).mean(0)).max() > 0.1
  c, (s,) = _prepare_colors(content, [style],
                                    _light(original_colors=True))
  for image in (c, s):   # grey: three equal channels
    np.testing.assert_array_equal(image[..., 0], image[..., 1])
    np.testing.assert_array_equal(image[..., 0], image[..., 2])
  assert s[..., 0].mean() == pytest.approx(c[..., 0].mean(), abs=0.01)


def test_config_is_composed_of_parts():
  """Each part holds its fields once; ``replace`` changes fields of a part
  and keeps the rest; ``objective_spec`` is the spec part itself (or the
  network's default), not a copy of config fields."""
  from nst_jax import representations, solvers
  config = transfer.TransferConfig()
  assert config.objective_spec().style == representations.Gram()
  assert config.objective_spec().style_layers == (
      "relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
  changed = config.replace(solver=dict(maxiter=7), conv="direct")
  assert changed.solver == solvers.SolverConfig(maxiter=7)
  assert changed.conv == "direct" and config.solver.maxiter == 500
  spec = objective.Spec(("relu2_1",), ("relu1_1",),
                        style=representations.Moments())
  assert config.replace(spec=spec).objective_spec() is spec
  # A dict for the spec part starts from the network's default spec.
  swd = config.replace(spec=dict(style=representations.SlicedWasserstein()))
  assert swd.objective_spec().content_layers == ("relu4_2",)
  alex = transfer.TransferConfig(network="alexnet").objective_spec()
  assert alex.content_layers == ("relu4",)
  field_names = {f.name for f in dataclasses.fields(transfer.TransferConfig)}
  assert field_names == {"network", "spec", "weights", "solver", "init",
                         "color", "patches", "conv", "tile_size",
                         "image_devices", "schedule", "memory_budget"}
