"""Masks (nst_jax.masks): colour-coded regions → guides, the two-region
transfer on real weights, and nst-stylize with masks end to end (record,
--from_json, one-line errors)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from nst_jax import guided
from nst_jax import io
from nst_jax import masks
from nst_jax import objective
from nst_jax import solvers
from nst_jax import transfer
from nst_jax import vgg
from nst_jax.errors import NSTError
import scripting

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def _mask(h, w, left, right, split=None):
  m = np.zeros((h, w, 3), np.uint8)
  split = w // 2 if split is None else split
  m[:, :split] = left
  m[:, split:] = right
  return m


def test_region_guides_from_colours():
  content = _mask(40, 50, RED, BLUE)
  content[5, 5] = (250, 5, 3)          # a stray anti-aliased pixel joins red
  style = _mask(6, 6, BLUE, GREEN)     # green is not in the content
  found = masks.region_guides(content, [RED, style])
  assert found.colors == (RED, BLUE) and found.unstyled == ()
  g = found.guides
  assert g.content.shape == (2, 40, 50)
  np.testing.assert_array_equal(g.content[0], np.asarray(content[..., 0] > 128,
                                                         np.float32))
  assert g.styles[0].shape == (2, 1, 1) and g.styles[0][:, 0, 0].tolist() == [
      1.0, 0.0]
  np.testing.assert_array_equal(g.styles[1][1], style[..., 2] == 255)
  assert g.styles[1][0].sum() == 0
  assert any("#00ff00" in n and "ignored" in n for n in found.notes)


def test_unstyled_colour_and_feathering():
  content = _mask(20, 20, RED, BLUE)
  found = masks.region_guides(content, [RED], blur=2.0)
  assert found.unstyled == (BLUE,) and found.guides.content.shape[0] == 1
  assert any("#0000ff" in n and "content loss only" in n for n in found.notes)
  g = found.guides.content[0]
  assert 0.0 < g[10, 10] < 1.0 and g[10, 0] > 0.99 and g[10, 19] < 0.01
  with pytest.raises(NSTError, match="none of the content mask's colours"):
    masks.region_guides(content, [GREEN])


def test_bad_mask_files(tmp_path):
  Image.fromarray(_mask(30, 40, RED, BLUE)).save(tmp_path / "m.png")
  (tmp_path / "empty.png").write_bytes(b"")
  with pytest.raises(NSTError, match="aspect ratios differ"):
    masks.load_guides(str(tmp_path / "m.png"), None, None, (40, 40), [(8, 8)])
  with pytest.raises(NSTError, match="empty.png"):
    masks.load_guides(str(tmp_path / "empty.png"), None, None, (30, 40),
                      [(8, 8)])
  with pytest.raises(NSTError, match="not a colour"):
    masks.load_guides(str(tmp_path / "m.png"), None, ["#12"], (30, 40),
                      [(8, 8)])
  with pytest.raises(NSTError, match="2 colours for 3 style images"):
    masks.load_guides(str(tmp_path / "m.png"), None, None, (30, 40),
                      [(8, 8)] * 3)
  found = masks.load_guides(str(tmp_path / "m.png"), None, None, (31, 41),
                            [(8, 8), (8, 8)])   # within 3 %: resized
  assert found.colors == (RED, BLUE) and found.guides.content.shape == (
      2, 31, 41)


def _region_distances(params, image, guides, styles, layers):
  """d[k, j] = Σ_l ‖guided Gram of region k of ``image`` − Gram of style
  j‖ / ‖Gram of style j‖ on VGG features."""
  features = jax.jit(vgg.features, static_argnums=(2, 3))   # not op by op
  feats = features(params, jnp.asarray(image)[None], layers, "max")
  style_grams = [features(params, jnp.asarray(s)[None], layers, "max")
                 for s in styles]
  d = np.zeros((guides.shape[0], len(styles)))
  for l in layers:
    f = feats[l][0]
    g = guided.resize_guides(guides, f.shape[:2])
    grams = np.asarray(guided.guided_gram(f, g))
    for j, sf in enumerate(style_grams):
      a = np.asarray(guided.guided_gram(sf[l][0], jnp.ones((1,) +
                                                           sf[l].shape[1:3])))[0]
      for k in range(guides.shape[0]):
        d[k, j] += np.linalg.norm(grams[k] - a) / np.linalg.norm(a)
  return d


def test_two_regions_two_styles_separate(vgg16_params, shared_images):
  """Left half in one style, right half in the other: with masks each
  region's Gram (relu3_1, relu4_1) is nearer its own style's; the same run
  without masks (a 50/50 blend everywhere) does not separate them."""
  # The left half of the photo and its mirror image: the halves' content is
  # the same, so nothing but the masks can make their styles differ.
  half = io.resize_to(io.load_image(shared_images / "tubingen.jpg"),
                      (48, 64))[:, :32]
  content = np.concatenate([half, half[:, ::-1]], axis=1)
  styles = [io.resize_long_edge(io.load_image(shared_images / n), 64)
            for n in ("starry_night.jpg", "the_scream.jpg")]
  h, w = content.shape[:2]
  found = masks.region_guides(_mask(h, w, RED, BLUE), [RED, BLUE])
  # The default layers but relu5_1 (one VGG block less to compile).
  config = transfer.TransferConfig(spec=objective.Spec(
      style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1"))).replace(
          solver=dict(maxiter=25))
  layers = ("relu3_1", "relu4_1")   # where the 25 iterations act most
  spec = config.objective_spec()
  results = {}
  for name, rep, guides in (("masked", guided.GuidedGram(), found.guides),
                            ("global", spec.style, None)):
    run = config.replace(spec=dict(style=rep))
    results[name] = transfer.stylize(vgg16_params, content, styles, run,
                                     log_every=0, guides=guides).image
  d = _region_distances(vgg16_params, results["masked"],
                        jnp.asarray(found.guides.content), styles, layers)
  assert d[0, 0] < d[0, 1] and d[1, 1] < d[1, 0], d
  d = _region_distances(vgg16_params, results["global"],
                        jnp.asarray(found.guides.content), styles, layers)
  assert not (d[0, 0] < d[0, 1] and d[1, 1] < d[1, 0]), d


def test_stylize_command_with_masks(tmp_path, vgg16_params, shared_images):
  """nst-stylize with a content mask and two style colours: the record holds
  the mask flags and the mask's sha256, --from_json reruns it to the same
  image; bad masks are one-line errors."""
  del vgg16_params  # the fixture checks that the weights are there
  content = shared_images / "tubingen.jpg"
  styles = f"{shared_images / 'starry_night.jpg'},{shared_images / 'the_scream.jpg'}"
  mask = tmp_path / "regions.png"
  Image.fromarray(_mask(48, 64, BLUE, RED, split=40)).save(mask)
  out = tmp_path / "out.png"
  common = ["--size=48", "--iterations=3", "--quiet", "--log_every=0",
            "--content_layers=relu2_1", "--style_layers=relu1_1,relu2_1"]
  proc = scripting.run("stylize.py", f"--content={content}",
                       f"--style={styles}", f"--content_mask={mask}",
                       "--style_colors=#ff0000,#0000ff", "--mask_blur=1",
                       f"--output={out}", *common)
  scripting.assert_ok(proc)
  record = json.loads((tmp_path / "out.json").read_text())
  assert record["params"]["content_mask"] == str(mask)
  assert record["params"]["style_colors"] == ["#ff0000", "#0000ff"]
  assert len(record["inputs"][str(mask)]) == 64
  rerun = tmp_path / "rerun.png"
  proc = scripting.run("stylize.py", f"--from_json={tmp_path / 'out.json'}",
                       f"--output={rerun}", "--quiet")
  scripting.assert_ok(proc)
  np.testing.assert_allclose(io.load_image(rerun), io.load_image(out),
                             atol=2 / 255)
  bad = [
      ([f"--content_mask={tmp_path / 'missing.png'}"], "missing.png"),
  ]
  Image.fromarray(_mask(48, 96, BLUE, RED)).save(tmp_path / "wide.png")
  bad.append(([f"--content_mask={tmp_path / 'wide.png'}"],
              "aspect ratios differ"))
  for flags, fragment in bad:
    proc = scripting.run("stylize.py", f"--content={content}",
                         f"--style={styles}", f"--output={tmp_path / 'x.png'}",
                         *common, *flags)
    scripting.assert_one_line_error(proc, fragment)
    assert not (tmp_path / "x.png").exists()


def test_style_grid_with_masks_matches_single_runs():
  """A grid over two style images with masks: each cell is the transfer of
  its style with that style's regions (guides.select), same image."""
  from conftest import tiny_vgg16_params, tol  # pylint: disable=g-import-not-at-top
  from nst_jax import grid  # pylint: disable=g-import-not-at-top
  params = tiny_vgg16_params()
  rng = np.random.default_rng(0)
  content = rng.uniform(size=(32, 32, 3)).astype(np.float32)
  styles = [rng.uniform(size=(24, 32, 3)).astype(np.float32),
            rng.uniform(size=(32, 24, 3)).astype(np.float32)]
  found = masks.region_guides(_mask(32, 32, RED, BLUE), [RED, BLUE])
  config = transfer.TransferConfig(
      spec=objective.Spec(("relu2_1",), ("relu1_1", "relu2_1"),
                          style=guided.GuidedGram()),
      solver=solvers.SolverConfig(maxiter=3), conv="direct")
  axes = grid.GridAxes(style=(0, 1),
                       style_layer_sets=(("relu1_1", "relu2_1"),),
                       style_weight=(1e3,))
  result = grid.style_grid(params, content, styles, axes, config,
                           guides=found.guides)
  for i in (0, 1):
    single = transfer.stylize(
        params, content, [styles[i]],
        config.replace(weights=dict(style=1e3)), log_every=0,
        guides=found.guides.select(i))
    np.testing.assert_allclose(result.images[i], single.image,
                               atol=tol(1e-5, 1e-4))
  assert not np.allclose(result.images[0], result.images[1])


def _shifted(color, shift):
  """``color`` moved by ``shift`` RGB levels (Euclidean), towards grey."""
  c = np.asarray(color, np.float64)
  direction = np.where(c > 127, -1.0, 1.0) / np.sqrt(3.0)
  return tuple(int(v) for v in np.rint(c + shift * direction))


@pytest.mark.parametrize("shift", [10, 17, 23])
def test_style_colours_within_tolerance_match(shift):
  """A style colour up to ``COLOR_TOLERANCE`` (24) RGB levels from a content
  colour is that region, as a style colour or as a style mask's colour."""
  content = _mask(20, 30, RED, BLUE)
  near_red, near_blue = _shifted(RED, shift), _shifted(BLUE, shift)
  assert 0 < np.linalg.norm(np.subtract(near_red, RED)) <= masks.COLOR_TOLERANCE
  found = masks.region_guides(content, [near_blue, _mask(8, 12, near_red,
                                                         near_blue)])
  assert found.colors == (RED, BLUE) and found.unstyled == ()
  assert not found.notes, found.notes
  assert found.guides.styles[0][:, 0, 0].tolist() == [0.0, 1.0]
  g = found.guides.styles[1]
  np.testing.assert_array_equal(g[0], _mask(8, 12, 1, 0)[..., 0])
  np.testing.assert_array_equal(g[1], _mask(8, 12, 0, 1)[..., 0])


@pytest.mark.parametrize("shift", [26, 40])
def test_style_colours_beyond_tolerance_do_not_match(shift):
  content = _mask(20, 30, RED, BLUE)
  far_red = _shifted(RED, shift)
  assert np.linalg.norm(np.subtract(far_red, RED)) > masks.COLOR_TOLERANCE
  found = masks.region_guides(content, [BLUE, _mask(8, 12, far_red, BLUE)])
  assert found.colors == (BLUE,) and found.unstyled == (RED,)
  assert any(masks.color_name(far_red) in n and "ignored" in n
             for n in found.notes), found.notes
  with pytest.raises(NSTError, match="none of the content mask's colours"):
    masks.region_guides(content, [far_red])


def _disks(colors, h, w):
  """A mask of three regions with curved borders: a background and two
  disks (JPEG blurs curved borders into many colours)."""
  y, x = np.mgrid[:h, :w]
  m = np.zeros((h, w, 3), np.uint8)
  m[:] = colors[0]
  m[(y - h / 2) ** 2 + (x - w / 3) ** 2 < (h / 3) ** 2] = colors[1]
  m[(y - h / 2) ** 2 + (x - 3 * w / 4) ** 2 < (h / 4) ** 2] = colors[2]
  return m


@pytest.mark.parametrize("colors", [(RED, BLUE, GREEN),
                                    ((200, 60, 60), (60, 60, 200),
                                     (230, 200, 40))], ids=["primary", "mid"])
@pytest.mark.parametrize("quality", [50, 75])
def test_jpeg_style_mask_keeps_its_regions(tmp_path, colors, quality):
  """A style mask saved as JPEG (Pillow, chroma subsampled): its colours
  shift by up to ~20 levels near the borders, yet every region of the style
  guides still covers almost all of its pixels (read back through
  ``load_guides``, as ``--style_masks`` does) and nothing of the others.
  (A tolerance compared with the squared distance, ~5 levels, loses half of
  the disks.)"""
  h, w = 48, 72
  Image.fromarray(_disks(colors, 30, 45)).save(tmp_path / "content.png")
  Image.fromarray(_disks(colors, h, w)).save(tmp_path / "style.jpg",
                                             quality=quality)
  found = masks.load_guides(str(tmp_path / "content.png"),
                            [str(tmp_path / "style.jpg")], None, (30, 45),
                            [(h, w)])
  assert found.colors == colors and found.unstyled == ()
  truth = masks.nearest_labels(_disks(colors, h, w), colors)
  g = found.guides.styles[0]
  for k in range(3):
    covered = float(g[k][truth == k].mean())
    leaked = float(g[k][truth != k].mean())
    assert covered > 0.95 and leaked < 0.05, (colors[k], covered, leaked,
                                               found.notes)
