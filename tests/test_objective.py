"""Tests of nst_jax.objective with a tiny random VGG-16 (no real weights).

The parameters have VGG-16's shapes (``networks.param_shapes``) but random
He-scaled values; the spec reads only shallow layers so that everything runs
on 32x32 images in a fraction of a second. Each term of ``loss_terms`` is
recomputed by hand in float64 numpy from the features, so a wrong weight, a
missing blend normalisation or a wrong reduction shows up.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax import losses
from nst_jax import networks
from nst_jax import objective
from nst_jax import representations
from nst_jax import statistics
from nst_jax import vgg
from nst_jax.errors import NSTError
from nst_jax.targets import make_targets
from conftest import tiny_vgg16_params, tol
from conftest import random_image as _img

SPEC = objective.Spec(content_layers=("relu2_2",),
                      style_layers=("relu1_1", "relu2_1", "relu3_1"),
                      pooling="avg", style=representations.Gram("paper"))


@pytest.fixture(scope="module")
def params():
  return tiny_vgg16_params()


@pytest.fixture(scope="module")
def problem(params):
  content = _img(32, 32, 1)
  styles = [_img(40, 24, 2), _img(24, 36, 3)]  # two styles of other sizes
  targets = make_targets(params, content, styles, SPEC,
                                   style_blend_weights=[3.0, 1.0])
  weights = objective.make_weights(SPEC, content_weight=2.0, style_weight=50.0,
                                   tv_weight=0.5,
                                   style_layer_weights=[0.2, 0.3, 0.5])
  return content, styles, targets, weights


def _np_feats(params, image, layers, pooling):
  out = vgg.features(params, jnp.asarray(image)[None], layers, pooling)
  return {k: np.asarray(v[0], np.float64) for k, v in out.items()}


def _np_gram(f):
  h, w, c = f.shape
  x = f.reshape(h * w, c)
  return x.T @ x / (h * w)


def test_make_targets_shapes_and_blend(params, problem):
  content, styles, targets, _ = problem
  assert set(targets.content) == {"relu2_2"}
  assert targets.content["relu2_2"].shape == (16, 16, 128)
  channels = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256}
  assert set(targets.style) == set(channels)
  for layer, c in channels.items():
    assert targets.style[layer].shape == (2, c, c)
  np.testing.assert_allclose(np.asarray(targets.style_blend), [0.75, 0.25],
                             rtol=1e-6)
  # The stacked Grams are those of each style image, in order.
  for s, style in enumerate(styles):
    feats = _np_feats(params, style, SPEC.style_layers, SPEC.pooling)
    for layer in SPEC.style_layers:
      want = _np_gram(feats[layer])
      np.testing.assert_allclose(np.asarray(targets.style[layer][s]), want,
                                 rtol=1e-4, atol=1e-5 * np.abs(want).max())
  feats = _np_feats(params, content, ("relu2_2",), SPEC.pooling)
  np.testing.assert_allclose(np.asarray(targets.content["relu2_2"]),
                             feats["relu2_2"], rtol=1e-5, atol=1e-5)


def test_make_targets_default_blend_is_equal(params):
  t = make_targets(params, _img(32, 32, 1),
                             [_img(32, 32, 2), _img(20, 20, 3), _img(24, 24, 4)],
                             SPEC)
  np.testing.assert_allclose(np.asarray(t.style_blend), [1 / 3] * 3, rtol=1e-6)


def _hand_terms(params, image, targets, weights, spec):
  """Every term recomputed in float64 numpy from the features."""
  feats = _np_feats(params, image, spec.layers, spec.pooling)
  content = sum(0.5 * np.sum((feats[l] - np.asarray(targets.content[l])) ** 2)
                for l in spec.content_layers)
  factor = {"paper": 4.0, "notes": 1.0}[spec.style.normalization]
  blend = np.asarray(targets.style_blend, np.float64)
  per_layer = []
  for l in spec.style_layers:
    g = _np_gram(feats[l])
    a = np.asarray(targets.style[l], np.float64)
    e = [np.sum((g - a[s]) ** 2) / (factor * g.shape[0] ** 2)
         for s in range(a.shape[0])]
    per_layer.append(np.dot(blend, e))
  x = np.asarray(image, np.float64)
  tv = (np.sum((x[1:] - x[:-1]) ** 2) + np.sum((x[:, 1:] - x[:, :-1]) ** 2))
  style_layers = (float(weights.style) * np.asarray(weights.style_layers)
                  * np.array(per_layer))
  # Spec.size_invariant: content and TV as per-pixel averages.
  scale = 1.0 / (x.shape[0] * x.shape[1]) if spec.size_invariant else 1.0
  return {"content": float(weights.content) * scale * content,
          "style": style_layers.sum(), "style_layers": style_layers,
          "tv": float(weights.tv) * scale * tv}


@pytest.mark.parametrize("normalization,size_invariant",
                         [("paper", True), ("notes", True), ("paper", False)])
def test_loss_terms_match_hand_computation(params, problem, normalization,
                                           size_invariant):
  content, styles, _, weights = problem
  spec = objective.Spec(SPEC.content_layers, SPEC.style_layers, SPEC.pooling,
                        representations.Gram(normalization),
                        size_invariant=size_invariant)
  targets = make_targets(params, content, styles, spec,
                                   style_blend_weights=[3.0, 1.0])
  image = _img(32, 32, 7)
  terms = jax.jit(objective.loss_terms, static_argnums=4)(
      params, image, targets, weights, spec)
  assert set(terms) == {"total", "content", "style", "tv", "style_layers"}
  for k in ("total", "content", "style", "tv"):
    assert terms[k].shape == (), k
  assert terms["style_layers"].shape == (3,)
  want = _hand_terms(params, image, targets, weights, spec)
  for k in ("content", "style", "tv", "style_layers"):
    np.testing.assert_allclose(np.asarray(terms[k]), want[k], rtol=1e-4,
                               err_msg=k)
    assert np.all(np.asarray(want[k]) > 0), k  # every term is exercised
  np.testing.assert_allclose(
      float(terms["total"]),
      float(terms["content"]) + float(terms["style"]) + float(terms["tv"]),
      rtol=1e-6)


def test_loss_terms_of_a_non_square_image(params):
  """The hand computation on a non-square image (content and result 24
  high, 40 wide; the style 40x24): the size-invariant factor is ``1/(H·W)``,
  which a square image cannot tell from ``1/H²`` or ``1/W²``."""
  h, w = 24, 40
  content = _img(h, w, 21)
  targets = make_targets(params, content, [_img(w, h, 22)], SPEC)
  weights = objective.make_weights(SPEC, content_weight=2.0, style_weight=50.0,
                                   tv_weight=0.5)
  image = _img(h, w, 23)
  terms = jax.jit(objective.loss_terms, static_argnums=4)(
      params, image, targets, weights, SPEC)
  want = _hand_terms(params, image, targets, weights, SPEC)
  for k in ("content", "style", "tv", "style_layers"):
    np.testing.assert_allclose(np.asarray(terms[k]), want[k], rtol=1e-4,
                               err_msg=k)
  for shape in ((h, w, 3), (w, h, 3), (h, w)):
    assert objective.size_scale(SPEC, shape) == 1.0 / (h * w)
  assert objective.size_scale(
      objective.Spec(size_invariant=False), (h, w, 3)) == 1.0


def test_loss_terms_match_library_building_blocks(params, problem):
  """The same, composed from statistics/losses directly (jnp, float32)."""
  content, _, targets, weights = problem
  image = _img(32, 32, 8)
  feats = vgg.features(params, image[None], SPEC.layers, SPEC.pooling)
  c = losses.content_loss(feats["relu2_2"][0], targets.content["relu2_2"])
  per = []
  for l in SPEC.style_layers:
    g = statistics.gram_matrix(feats[l][0])
    e = jnp.stack([losses.gram_loss(g, targets.style[l][s]) for s in range(2)])
    per.append(jnp.sum(targets.style_blend * e))
  style = weights.style * jnp.sum(weights.style_layers * jnp.stack(per))
  tv = losses.total_variation_loss(image)
  scale = 1.0 / (32 * 32)   # SPEC.size_invariant: per-pixel averages
  c, tv = c * scale, tv * scale
  terms = jax.jit(objective.loss_terms, static_argnums=4)(
      params, image, targets, weights, SPEC)
  np.testing.assert_allclose(float(terms["content"]), float(weights.content * c),
                             rtol=1e-5)
  np.testing.assert_allclose(float(terms["style"]), float(style), rtol=1e-5)
  np.testing.assert_allclose(float(terms["tv"]), float(weights.tv * tv),
                             rtol=1e-5)


def test_zero_at_targets(params):
  """Content image = content target and single style = same image: only tv."""
  image = _img(32, 32, 9)
  targets = make_targets(params, image, [image], SPEC)
  weights = objective.make_weights(SPEC, content_weight=1.0, style_weight=1e3,
                                   tv_weight=0.0)
  terms = jax.jit(objective.loss_terms, static_argnums=4)(
      params, image, targets, weights, SPEC)
  assert float(terms["content"]) == pytest.approx(0.0, abs=1e-6)
  assert float(terms["style"]) == pytest.approx(0.0, abs=1e-6)
  assert float(terms["tv"]) == 0.0


def test_weights_vmap_equals_separate_calls(params, problem):
  _, _, targets, _ = problem
  image = _img(32, 32, 10)
  grid = [objective.make_weights(SPEC, content_weight=1.0, style_weight=s,
                                 tv_weight=t, style_layer_weights=lw)
          for s, t, lw in [(1.0, 0.0, [1, 0, 0]), (100.0, 1.0, [0.2, 0.3, 0.5]),
                           (1e4, 0.1, [0, 0, 1])]]
  stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *grid)
  assert stacked.style_layers.shape == (3, 3)
  batched = jax.jit(jax.vmap(
      lambda w: objective.loss_terms(params, image, targets, w, SPEC)))(stacked)
  single = jax.jit(objective.loss_terms, static_argnums=4)
  totals = []
  for i, w in enumerate(grid):
    one = single(params, image, targets, w, SPEC)
    for k in ("total", "content", "style", "tv", "style_layers"):
      np.testing.assert_allclose(np.asarray(batched[k][i]), np.asarray(one[k]),
                                 rtol=1e-5, err_msg=k)
    totals.append(float(one["total"]))
  assert len(set(totals)) == 3  # the grid points really differ


def test_objective_gradient_matches_finite_differences(params, problem):
  """Directional derivatives of the objective in float64 (x64 for this test
  only): the image and thus all features are float64; targets stay float32."""
  _, _, targets, weights = problem
  rng = np.random.default_rng(11)
  with jax.enable_x64(True):
    fun = objective.make_objective(params, targets, weights, SPEC)
    f = lambda x: fun(x)[0]
    x = jnp.asarray(rng.uniform(0.2, 0.8, size=(32, 32, 3)), jnp.float64)
    value, grad = jax.jit(jax.value_and_grad(f))(x)
    assert value.dtype == jnp.float64 and grad.dtype == jnp.float64
    assert float(jnp.abs(grad).max()) > 0
    # ReLU kinks are dense with random weights: a small step keeps the
    # symmetric difference inside one linear piece; float64 keeps roundoff
    # (~1e-16·f/eps) far below the tolerance.
    eps = 1e-8
    for _ in range(4):
      v = jnp.asarray(rng.normal(size=x.shape))
      fd = (float(f(x + eps * v)) - float(f(x - eps * v))) / (2 * eps)
      an = float(jnp.vdot(grad, v))
      np.testing.assert_allclose(an, fd, rtol=1e-5)
  assert jnp.zeros(1).dtype == jnp.float32  # flag restored


def test_objective_does_not_recompile(params, problem, monkeypatch):
  _, _, targets, weights = problem
  traces = []
  real = objective.loss_terms

  def counting(*args, **kwargs):
    traces.append(1)
    return real(*args, **kwargs)

  monkeypatch.setattr(objective, "loss_terms", counting)
  objective.objective_function.cache_clear()
  fun = objective.make_objective(params, targets, weights, SPEC)
  v1, terms1 = fun(_img(32, 32, 12))
  v2, terms2 = fun(_img(32, 32, 13))
  assert float(v1) != float(v2)
  assert len(traces) == 1
  # New data of the same shapes reuse the compiled program too.
  fun2 = objective.make_objective(
      params, targets, weights._replace(style=weights.style * 2), SPEC)
  v3, _ = fun2(_img(32, 32, 13))
  assert float(v3) != float(v2)
  assert len(traces) == 1
  assert set(terms1) == {"total", "content", "style", "tv", "style_layers"}
  # Differentiating it reuses the traced objective (or traces it once more).
  g = jax.jit(jax.grad(lambda x: fun(x)[0]))
  g(_img(32, 32, 14))
  g(_img(32, 32, 15))
  assert len(traces) <= 2
  assert g._cache_size() == 1


# --- errors ---------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,match", [
    (dict(style_layer_weights=[1.0, 1.0]), "2 style layer weights for 3"),
    (dict(style_layer_weights=[1.0, 1.0, 1.0, 1.0]), "4 style layer weights"),
    (dict(style_layer_weights=[1.0, -1.0, 1.0]), "style_layer_weights"),
    (dict(style_layer_weights=[1.0, float("nan"), 1.0]), "style_layer_weights"),
    (dict(content_weight=-1.0), "content_weight"),
    (dict(style_weight=float("nan")), "style_weight"),
    (dict(style_weight=float("inf")), "style_weight"),
    (dict(tv_weight=-1e-3), "tv_weight"),
])
def test_make_weights_errors(kwargs, match):
  args = dict(content_weight=1.0, style_weight=1.0, tv_weight=0.0)
  args.update(kwargs)
  with pytest.raises(NSTError, match=match):
    objective.make_weights(SPEC, **args)


def test_make_weights_defaults():
  w = objective.make_weights(SPEC, content_weight=1.0, style_weight=2.0)
  np.testing.assert_allclose(np.asarray(w.style_layers), [1 / 3] * 3)
  assert float(w.tv) == objective.LossWeights().tv
  assert all(x.dtype == jnp.float32 for x in w)


def test_make_targets_errors(params):
  content = _img(32, 32, 1)
  with pytest.raises(NSTError, match="no style image"):
    make_targets(params, content, [], SPEC)
  with pytest.raises(NSTError, match="no content image"):
    make_targets(params, None, [_img(32, 32, 2)], SPEC)
  with pytest.raises(NSTError, match="relu6_1"):
    make_targets(params, content, [_img(32, 32, 2)],
                           objective.Spec(("relu6_1",), ()))
  with pytest.raises(NSTError, match="pooling"):
    make_targets(params, content, [content],
                           objective.Spec(("relu1_1",), (), pooling="min"))
  with pytest.raises(NSTError, match="Gram.normalization"):
    make_targets(params, content, [content], objective.Spec(
        ("relu1_1",), ("relu1_1",), style=representations.Gram("frobenius")))
  with pytest.raises(NSTError, match="blend"):
    make_targets(params, content, [content], SPEC,
                           style_blend_weights=[1.0, 2.0])
  with pytest.raises(NSTError, match="blend"):
    make_targets(params, content, [content, content], SPEC,
                           style_blend_weights=[0.0, 0.0])
  with pytest.raises(NSTError, match="blend"):
    make_targets(params, content, [content, content], SPEC,
                           style_blend_weights=[1.0, -0.5])


def test_texture_synthesis_without_content(params):
  spec = objective.Spec(content_layers=(), style_layers=("relu1_1", "relu2_1"))
  targets = make_targets(params, None, [_img(24, 24, 1)], spec)
  assert targets.content == {}
  weights = objective.make_weights(spec, content_weight=1.0, style_weight=1.0,
                                   tv_weight=0.0)
  fun = objective.make_objective(params, targets, weights, spec)
  total, terms = fun(_img(16, 16, 2))
  assert float(terms["content"]) == 0.0
  assert float(total) == pytest.approx(float(terms["style"]), rel=1e-6)


def test_weights_from_python_floats_do_not_recompile(params, problem):
  """``Weights`` built from Python floats are float32 arrays: the same
  compiled program serves them and ``make_weights``'s (a weakly typed float
  would compile a second program)."""
  content, styles, _, _ = problem
  targets = make_targets(params, content, styles, SPEC)
  fun = jax.jit(objective.objective_function(SPEC))
  image = _img(32, 32, 7)
  made = objective.make_weights(SPEC, content_weight=1.0, style_weight=2.0,
                                tv_weight=0.0)
  plain = objective.Weights(1.0, 2.0, 0.0, [1 / 3] * 3)
  assert plain.style.dtype == jnp.float32 and plain.style_layers.shape == (3,)
  fun(image, params, targets, made)
  before = fun._cache_size()
  value = fun(image, params, targets, plain)[0]
  assert fun._cache_size() == before
  np.testing.assert_allclose(float(value), float(
      fun(image, params, targets, made)[0]), rtol=1e-6)
  replaced = made._replace(style=3.0)
  assert replaced.style.dtype == jnp.float32
  fun(image, params, targets, replaced)
  assert fun._cache_size() == before
  # in_axes trees keep their ints and Nones.
  assert objective.Weights(None, 0, None, 0) == (None, 0, None, 0)


def test_stack_targets_vmaps_over_styles(params):
  """Targets of several styles stacked by ``stack_targets`` batch the
  objective over styles with ``jax.vmap`` (one image per style)."""
  content = _img(32, 32, 1)
  per_style = [make_targets(params, content, [_img(32, 32, s)], SPEC)
               for s in (2, 3, 4)]
  stacked = objective.stack_targets(per_style)
  weights = objective.make_weights(SPEC, content_weight=1.0, style_weight=1.0)
  fun = objective.objective_function(SPEC)
  images = jnp.stack([_img(32, 32, 5 + i) for i in range(3)])
  batched = jax.jit(jax.vmap(lambda x, t: fun(x, params, t, weights)[0]))(
      images, stacked)
  for i, t in enumerate(per_style):
    np.testing.assert_allclose(float(batched[i]), float(
        fun(images[i], params, t, weights)[0]), rtol=1e-5)


def test_make_objective_prepares_fast_kernels(params, monkeypatch):
  """``make_objective`` transforms the kernels for the chosen algorithm
  (Winograd where it applies) and gives the direct objective's values."""
  calls = []
  prepare = vgg.prepare_params
  monkeypatch.setattr(vgg, "prepare_params", lambda p, conv, layers: (
      calls.append(conv), prepare(p, conv, layers))[1])
  content = _img(32, 32, 1)
  spec = objective.Spec(("relu3_1",), ("relu3_1",))
  targets = make_targets(params, content, [_img(32, 32, 2)], spec)
  weights = objective.make_weights(spec, content_weight=1.0, style_weight=1.0)
  image = _img(32, 32, 3)
  direct = objective.make_objective(params, targets, weights, spec,
                                    conv="direct")(image)[0]
  fast = objective.make_objective(params, targets, weights, spec,
                                  conv="winograd")(image)[0]
  np.testing.assert_allclose(float(fast), float(direct),
                             rtol=tol(1e-4, 1e-3))
  assert calls == ["direct", "winograd"]


def _content_share(vgg16_params, size, size_invariant, style_weight=200.0):
  """‖∇ content term‖ / (‖∇ content‖ + ‖∇ style‖) at a noisy start of the
  bundled pair at ``size``: half content, half the style image seen at 64 px
  and resized, so that the start is the same picture at every size (noise
  drawn per pixel would be finer, relative to the picture, at 256 px, and
  its Gram mismatch with it)."""
  from nst_jax import io  # pylint: disable=g-import-not-at-top
  content = io.resize_long_edge(io.load_image("examples/chelsea.png"), size)
  style = io.resize_long_edge(io.load_image("examples/style_brushwork.png"),
                              size)
  spec = objective.Spec(size_invariant=size_invariant)
  targets = make_targets(vgg16_params, content, [style], spec)
  weights = objective.make_weights(spec, content_weight=1.0,
                                   style_weight=style_weight, tv_weight=0.0)
  noise = io.resize_to(io.resize_long_edge(style, 64), content.shape[:2])
  image = jnp.asarray(0.5 * content + 0.5 * noise, jnp.float32)

  def term(name):
    return lambda x, p, t: objective.loss_terms(p, x, t, weights, spec)[name]
  # Both gradients in one program (one compilation per call, not two), with
  # the weights and targets as arguments, not constants compiled in.
  g_content, g_style = jax.jit(lambda x, p, t: (
      jax.grad(term("content"))(x, p, t), jax.grad(term("style"))(x, p, t)))(
          image, vgg16_params, targets)
  c, s = float(jnp.linalg.norm(g_content)), float(jnp.linalg.norm(g_style))
  return c / (c + s)


@pytest.mark.slow
def test_size_invariance_keeps_the_content_share_of_the_gradient(vgg16_params):
  """Issue 12: with ``size_invariant`` the content term's share of the
  initial gradient is the same (within 10 %) at 128 and 256 px; with the
  paper's sums it is not (the content term grows with the pixel count)."""
  small = _content_share(vgg16_params, 128, True)
  large = _content_share(vgg16_params, 256, True)
  assert abs(large / small - 1) < 0.10, (small, large)
  # The paper's sums with the same balance at 128 px (β × the pixel count).
  paper_small = _content_share(vgg16_params, 128, False, 200.0 * 128 * 85)
  paper_large = _content_share(vgg16_params, 256, False, 200.0 * 128 * 85)
  assert paper_large / paper_small > 2, (paper_small, paper_large)


# --- one style weight for every painting (issue 26, item 5) ----------------


def test_style_scales_are_each_paintings_gram_norm(params, problem):
  """``n_s = (1/L) Σ_l Σ_ij Â_ij² / (4C²)`` in float64 numpy from each
  style's own Grams (the style term at zero features, Gatys eq. 4)."""
  content, styles, targets, _ = problem
  from nst_jax import targets as targets_lib
  shapes = vgg.feature_shapes("vgg16", content.shape[:2], SPEC.style_layers,
                              SPEC.pooling)
  scales = np.asarray(targets_lib.style_scales(SPEC, targets.style, shapes))
  expected = []
  for s in styles:
    f = _np_feats(params, s, SPEC.style_layers, SPEC.pooling)
    expected.append(np.mean([
        np.sum(np.square(_np_gram(f[l]))) / (4 * f[l].shape[-1] ** 2)
        for l in SPEC.style_layers]))
  np.testing.assert_allclose(scales, expected, rtol=1e-5)
  # The same under jit (a pure function of the targets).
  jitted = jax.jit(lambda t: targets_lib.style_scales(SPEC, t, shapes))
  np.testing.assert_allclose(jitted(targets.style), scales, rtol=1e-6)


def test_normalize_style_divides_each_blend_weight_by_its_scale(params,
                                                                 problem):
  content, styles, targets, _ = problem
  from nst_jax import targets as targets_lib
  normalized = make_targets(params, content, styles, SPEC,
                            style_blend_weights=[3.0, 1.0],
                            normalize_style=True)
  shapes = vgg.feature_shapes("vgg16", content.shape[:2], SPEC.style_layers,
                              SPEC.pooling)
  scales = targets_lib.style_scales(SPEC, targets.style, shapes)
  np.testing.assert_allclose(normalized.style_blend,
                             np.array([0.75, 0.25]) / scales, rtol=1e-6)
  # The scale is quadratic in the target (the Gram loss at zero): Grams ×4
  # (features ×2) give a scale ×16, so a normalised term is a fraction of
  # the painting's own size, the same for a painting and its brighter copy.
  doubled = jax.tree_util.tree_map(lambda a: 4 * a, targets.style)
  np.testing.assert_allclose(
      targets_lib.style_scales(SPEC, doubled, shapes), 16 * scales,
      rtol=1e-5)


@pytest.mark.parametrize("rep", [representations.SlicedWasserstein()],
                         ids=["swd"])
def test_style_scales_of_a_capped_map_equal_the_whole_images(params, rep):
  """A sampled representation's scale is evaluated on a zero map of at
  most ``SCALE_EDGE`` rows and columns: the whole image's value to 1 % (the
  sliced Wasserstein loss resamples quantiles; a position-averaged one's
  statistics of zeros do not depend on the count at all)."""
  from nst_jax import targets as targets_lib
  spec = objective.Spec(content_layers=(), style_layers=("relu1_1",),
                        style=rep)
  style = _img(96, 80, 4)
  t = make_targets(params, None, [style], spec)
  shapes = {"relu1_1": (150, 130, 64)}
  capped = targets_lib.style_scales(spec, t.style, shapes)
  whole = targets_lib.style_scales(spec, t.style, shapes, full=True)
  np.testing.assert_allclose(capped, whole, rtol=1e-2)


@pytest.mark.parametrize("name", representations.names())
def test_every_named_representation_has_a_finite_positive_scale(params, name):
  """``normalize_style`` works with every ``--style_stat``: each painting's
  scale (the term at zero features) is finite and positive, so the blend
  weights it divides stay finite."""
  entry = {e.name: e for e in representations.registered()}[name]
  spec = objective.Spec(content_layers=("relu2_1",),
                        style_layers=("relu1_1", "relu2_1"), pooling="avg",
                        style=entry.cls())
  content = _img(32, 32, 1)
  styles = [_img(32, 32, 2), _img(32, 32, 3)]
  plain = make_targets(params, content, styles, spec)
  normalized = make_targets(params, content, styles, spec,
                            normalize_style=True)
  scales = np.asarray(plain.style_blend) / np.asarray(normalized.style_blend)
  assert np.all(np.isfinite(scales)) and np.all(scales > 0), scales


def test_normalize_style_in_tiles_is_refused_up_front_only_where_needed():
  """A tiled run can scale a position-averaged representation (a small zero
  map) but not a guided one (its scale needs the whole image's map): the
  latter is refused by ``problem.check_memory``, which every driver calls
  for every level before any work, in one line naming the flag."""
  from nst_jax import guided, problem, transfer  # pylint: disable=g-import-not-at-top
  base = transfer.TransferConfig(tile_size=64).replace(
      weights=dict(normalize_style=True))
  problem.check_memory(base, (256, 256))   # Gram: scaled on a small map
  masks = base.replace(spec=dict(style=guided.guided_version(
      representations.Gram())))
  with pytest.raises(NSTError, match="normalize_style.*GuidedGram"):
    problem.check_memory(masks, (256, 256))
  problem.check_memory(masks.replace(tile_size=0), (256, 256))
  problem.check_memory(masks.replace(weights=dict(normalize_style=False)),
                       (256, 256))
