"""The error policy (nst_jax.errors): one exception family, one phrasing of a
bad choice, parameters named in backquotes, and the command line's
translation of those names into flags (cli.flag_message, cli.run_main)."""

import numpy as np
import pytest

from nst_jax import cli
from nst_jax import color
from nst_jax import errors
from nst_jax import figures
from nst_jax import io
from nst_jax import losses
from nst_jax import networks
from nst_jax import solvers
from nst_jax import vgg
from nst_jax import winograd
from nst_jax.errors import NSTError


def test_nst_error_is_a_value_error():
  assert issubclass(NSTError, ValueError)
  with pytest.raises(ValueError):
    errors.check_choice("init", "chaos", ("content", "noise"))


def test_param_writes_a_name_in_backquotes():
  assert errors.param("learning_rate") == "`learning_rate`"


def test_check_choice_message_and_silence():
  errors.check_choice("init", "noise", ("content", "noise"))  # no error
  with pytest.raises(NSTError) as info:
    errors.check_choice("init", "chaos", ("content", "noise", "style"))
  assert str(info.value) == (
      "unknown `init` 'chaos': use one of content, noise, style")
  with pytest.raises(NSTError, match="use one of 1, 2"):
    errors.check_choice("levels", 3, iter([1, 2]))   # any iterable


@pytest.mark.parametrize("message, want", [
    ("unknown `init` 'chaos': use one of content, noise",
     "unknown --init 'chaos': use one of content, noise"),
    ("`learning_rate` must be > 0 and `history_size` >= 1",
     "--learning_rate must be > 0 and --history_size >= 1"),
    ("`styles`[2] must be an image", "--styles[2] must be an image"),
    ("no parameter here: 'a' `not a name`", "no parameter here: 'a' `not a name`"),
    # Parts of the config and representation fields map to their flags.
    ("`solver.maxiter` must be >= 0", "--iterations must be >= 0"),
    ("unknown `init.kind` 'x'", "unknown --init 'x'"),
    ("`Eigen.rank` must be >= 0", "--style_rank must be >= 0"),
])
def test_flag_message_turns_parameters_into_flags(message, want):
  assert cli.flag_message(message) == want
  assert cli.flag_message(NSTError(message)) == want


def test_run_main_prints_flags_and_exits_1(capsys):
  def main(argv):
    del argv
    raise NSTError(f"{errors.param('size')} must be >= 16, got 4")
  with pytest.raises(SystemExit) as info:
    cli.run_main(main)(["prog"])
  assert info.value.code == 1
  assert capsys.readouterr().err == "error: --size must be >= 16, got 4\n"


def test_run_main_leaves_other_errors_alone():
  def main(argv):
    raise KeyError(argv[0])
  with pytest.raises(KeyError):
    cli.run_main(main)(["prog"])


# --- the policy in the library's own checks ----------------------------------


def _image(shape=(4, 4, 3)):
  return np.random.default_rng(0).uniform(size=shape).astype(np.float32)


@pytest.mark.parametrize("call, message", [
    (lambda: color.match_color(_image(), _image(), mode="reinhard"),
     "unknown `mode` 'reinhard': use one of none, histogram, cdf"),
    (lambda: color.match_color(_image(), _image(), transform="svd"),
     "unknown `transform` 'svd': use one of sqrt, cholesky"),
    (lambda: color.rgb_to_luma_chroma(_image(), "lab"),
     "unknown `space` 'lab': use one of yiq, ycbcr"),
    (lambda: vgg.resolve_conv("fft"),
     "unknown `conv` 'fft': use one of auto, direct, winograd"),
    (lambda: networks.layer_names("resnet50"),
     "unknown `network` 'resnet50': use one of vgg16, vgg19, alexnet"),
    (lambda: vgg.check_layers("vgg16", ["relu9_9"], "style_layers"),
     "unknown `style_layers` 'relu9_9': use one of conv1_1, relu1_1"),
    (lambda: solvers.minimize(lambda x: (x.sum(), None), np.zeros(2),
                              solvers.SolverConfig(method="newton")),
     "unknown `method` 'newton': use one of optax_lbfgs, lbfgs, adam"),
])
def test_choices_are_checked_by_check_choice(call, message):
  with pytest.raises(NSTError) as info:
    call()
  assert str(info.value).startswith(message)


@pytest.mark.parametrize("call, name", [
    (lambda: color.match_color(_image((4, 4)), _image()), "`style`"),
    (lambda: color.luminance_images(_image(), [_image(), _image((2, 2))]),
     "`styles`[1]"),
    (lambda: color.combine_luminance(_image(), _image((5, 4, 3))),
     "`result` and `content`"),
    (lambda: color.luma_chroma_to_rgb(_image((4, 4, 4))), "`ycc`"),
    (lambda: winograd.transform_kernel(np.zeros((5, 5, 1, 1))), "`kernel`"),
    (lambda: vgg.features({}, np.zeros((4, 4, 3)), ("relu1_1",)), "`images`"),
    (lambda: solvers.minimize(lambda x: (x.sum(), None), np.zeros(2),
                              solvers.SolverConfig(maxiter=-1)), "`maxiter`"),
])
def test_messages_name_parameters_not_flags(call, name):
  with pytest.raises(NSTError) as info:
    call()
  assert name in str(info.value) and "--" not in str(info.value)


# --- the rule: NSTError for what a user can cause, ValueError for code ----------


_HISTORY = [{"iteration": 0, "total": 2.0, "content": 1.0, "style": 1.0,
             "tv": 0.0}, {"iteration": 5, "total": 1.0, "content": 0.5,
                          "style": 0.5, "tv": 0.0}]


def _png(tmp_path):
  path = tmp_path / "a.png"
  io.save_image(path, _image())
  return path


@pytest.mark.parametrize("call, name", [
    (lambda p: io.load_image(_png(p), max_pixels=0), "`max_pixels`"),
    (lambda p: io.image_to_uint8(np.full((2, 2, 3), np.nan, np.float32)),
     "`image` contains non-finite"),
    (lambda p: losses.local_gram_loss(np.ones((4, 4, 2), np.float32),
                                      np.ones((4, 4, 2), np.float32),
                                      window=-1), "`window`"),
    (lambda p: figures.loss_curves([]), "`history`"),
    (lambda p: figures.loss_curves([{"iteration": 0}]), "`history` record 0"),
    (lambda p: figures.loss_curves(_HISTORY, width=50, height=50), "`width`"),
    (lambda p: figures.metric_panels([figures.Panel(
        [figures.Series("swd", [0.0, 1.0], [1.0, 2.0])], "β", "SWD",
        log_x=True)]), "log x axis"),
])
def test_what_a_user_can_cause_is_an_nst_error(tmp_path, call, name):
  with pytest.raises(NSTError) as info:
    call(tmp_path)
  assert name in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("call", [
    lambda: io.image_to_uint8(np.zeros((2, 2), np.float32)),
    lambda: figures.side_by_side([]),
    lambda: figures.side_by_side([_image()], labels=["a", "b"]),
    lambda: losses.content_loss(np.ones((4, 4, 2)), np.ones((4, 5, 2))),
])
def test_programming_errors_stay_plain_value_errors(call):
  with pytest.raises(ValueError) as info:
    call()
  assert not isinstance(info.value, NSTError), info.value
