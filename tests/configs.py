"""Test helper: ``TransferConfig`` from the command line's flat names.

The tests were written against the flat parameter names every user knows
from the command line (``iterations``, ``style_weight``, ``init`` …);
``config(**flat)`` builds the composed ``TransferConfig`` from them, so each
test says only what it changes.
"""

import dataclasses

from nst_jax import color
from nst_jax import objective
from nst_jax import representations
from nst_jax import solvers
from nst_jax import transfer

# flat name -> (part, field)
_PARTS = {
    "content_weight": ("weights", "content"), "style_weight": ("weights",
                                                               "style"),
    "tv_weight": ("weights", "tv"),
    "style_layer_weights": ("weights", "style_layers"),
    "style_blend_weights": ("weights", "style_blend"),
    "optimizer": ("solver", "method"), "iterations": ("solver", "maxiter"),
    "learning_rate": ("solver", "learning_rate"),
    "history_size": ("solver", "history_size"),
    "init": ("init", "kind"), "seed": ("init", "seed"),
    "color_transfer": ("color", "transfer"),
    "original_colors": ("color", "original_colors"),
    "color_space": ("color", "space"),
    "style_patches": ("patches", "count"), "patch_size": ("patches", "size"),
    "patch_mode": ("patches", "mode"),
    "pooling": ("spec", "pooling"), "content_layers": ("spec",
                                                       "content_layers"),
    "style_layers": ("spec", "style_layers"), "precision": ("spec",
                                                            "precision"),
    "remat": ("spec", "remat"), "style": ("spec", "style"),
}


def config(**flat) -> transfer.TransferConfig:
  """A ``TransferConfig`` with the flat names' values in their parts;
  ``network`` and ``conv`` are top-level fields."""
  top = {k: flat.pop(k) for k in ("network", "conv") if k in flat}
  base = transfer.TransferConfig(**top)
  parts = {}
  for name, value in flat.items():
    part, field = _PARTS[name]
    parts.setdefault(part, {})[field] = value
  return base.replace(**parts)
