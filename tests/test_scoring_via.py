"""``metrics.scoring_images(..., via=)`` where rounding matters: the shape a
result passes through is the content's own at ``via``, so a result made at
``via`` (as ``nst-stylize --size=via`` makes it from this content) is not
resampled before the downsampling every result shares. No networks: the
images only."""

import numpy as np
import pytest

from nst_jax import io, metrics
from nst_jax.errors import NSTError


def test_a_result_made_at_via_is_not_resampled_first():
  """Content 50×95: at 64 px it is 34×64, whose double (68×128) misses the
  content's own shape at 128 px (67×128) by a row. A 67×128 result scored
  through 128 must equal the same result scored straight."""
  rng = np.random.default_rng(3)
  content = rng.uniform(size=(50, 95, 3)).astype(np.float32)
  style = rng.uniform(size=(40, 40, 3)).astype(np.float32)
  made = io.long_edge_shape(content.shape[:2], 128)
  assert made == (67, 128)
  assert io.long_edge_shape(io.long_edge_shape(made, 64), 128) != made
  result = rng.uniform(size=(*made, 3)).astype(np.float32)
  _, _, through = metrics.scoring_images(content, style, [result], 64,
                                         via=128)
  _, _, straight = metrics.scoring_images(content, style, [result], 64)
  assert through.shape == straight.shape == (1, 34, 64, 3)
  np.testing.assert_array_equal(through, straight)


def test_via_out_of_range_is_named_as_via():
  """Beyond ``io.MAX_RESIZE_EDGE`` the error names ``via`` (not the ``size``
  of the resize inside)."""
  image = np.full((30, 40, 3), 0.5, np.float32)
  with pytest.raises(NSTError, match="`via` must be at most 16384 px, got "
                     "20000"):
    metrics.scoring_images(image, image, [image], 64, via=20000)
