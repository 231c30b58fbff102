"""Synthetic style targets: textures from invented Gram matrices.

Nikulin & Novak §6 (seed 001) "generate styles": keep only the Gram matrices
of a chosen set of layers, replace them by (a) a Gram with a single non-zero
entry or (b) a random sparse Gram ``|N(0, σ²)| ⊙ Bernoulli(p)``, and descend
from white noise with no content term. ``scripts/generate_styles.py`` draws
grids like the paper's Figs. 5-7 with these functions.

Grams here are location-averaged (``statistics.gram_matrix``: ``G = FᵀF/M``),
so a magnitude ``m`` on the diagonal entry ``(i, i)`` asks channel ``i`` for a
mean square of ``m``. A Gram is symmetric, and the generated image's always
is, so an off-diagonal entry is set at ``(i, j)`` and ``(j, i)``, and the
random sparse Gram is drawn on the upper triangle and mirrored.

Re-drawing: ``synthesize(..., redraw_every=K)`` draws new targets every ``K``
iterations from ``jax.random.fold_in(key, round)`` and restarts the solver
from the current image (its L-BFGS memory or Adam moments start afresh each
round: the objective has changed, and curvature pairs of the old one would
mislead the new one). ``K = 1`` re-draws every iteration — then each round is
one solver step on a fresh target (with Adam, one normalised gradient step).
``redraw_every=0`` keeps one draw for the whole run.
"""

import dataclasses
from typing import Any, Callable, Dict, NamedTuple, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import objective
from nst_jax import problem
from nst_jax import representations
from nst_jax import run
from nst_jax import solvers
from nst_jax import vgg
from nst_jax.errors import NSTError, param


def single_entry_gram(channels: int, *, row: int, col: int,
                      magnitude: float) -> jax.Array:
  """A ``(C, C)`` Gram that is zero except ``G[row, col] = G[col, row] =
  magnitude`` (§6, Fig. 5)."""
  if not (0 <= row < channels and 0 <= col < channels):
    raise NSTError(f"entry ({row}, {col}) is outside a {channels}x{channels} "
                   "Gram")
  g = jnp.zeros((channels, channels), jnp.float32)
  return g.at[row, col].set(magnitude).at[col, row].set(magnitude)


def random_single_entry_gram(key: jax.Array, channels: int, *,
                             magnitude: float) -> jax.Array:
  """``single_entry_gram`` at a position ``(i, j)`` drawn uniformly from
  ``key`` (jit-able: the position is traced)."""
  ki, kj = jax.random.split(key)
  i = jax.random.randint(ki, (), 0, channels)
  j = jax.random.randint(kj, (), 0, channels)
  g = jnp.zeros((channels, channels), jnp.float32)
  return g.at[i, j].set(magnitude).at[j, i].set(magnitude)


def sparse_random_gram(key: jax.Array, channels: int, *, sigma: float,
                       density: float) -> jax.Array:
  """``|N(0, σ²)| ⊙ Bernoulli(p)`` on the upper triangle (diagonal included),
  mirrored to a symmetric ``(C, C)`` (§6, Figs. 6-7); ``p = density``."""
  if not 0.0 <= density <= 1.0:
    raise NSTError(f"density must be in [0, 1], got {density}")
  kn, kb = jax.random.split(key)
  values = jnp.abs(sigma * jax.random.normal(kn, (channels, channels)))
  mask = jax.random.bernoulli(kb, density, (channels, channels))
  upper = jnp.triu(values * mask)
  return upper + jnp.triu(upper, 1).T


def layer_channels(params, layers: Sequence[str]) -> Dict[str, int]:
  """Channels of each layer, from shapes alone (nothing is computed)."""
  vgg.check_layers(vgg.network_of(params), layers)
  image = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
  shapes = jax.eval_shape(lambda p, x: vgg.features(p, x, tuple(layers)),
                          params, image)
  return {l: int(s.shape[-1]) for l, s in shapes.items()}


def targets_from_statistics(spec: objective.Spec,
                            stats: Dict[str, Any]) -> objective.Targets:
  """``Targets`` with no content and one style whose statistics are
  ``stats`` ``{layer: representation.statistic}`` (Grams ``(C, C)`` for the
  ``Gram`` representation): each layer's target is its representation's
  ``target`` of the statistic stacked as one style."""
  stacked = {l: jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], v)
             for l, v in stats.items()}
  return objective.Targets({}, objective.style_targets_of(stacked, spec),
                           jnp.ones((1,), jnp.float32))


class SynthesisResult(NamedTuple):
  """The image in [0, 1]; the weighted style loss of the noise start and of
  the result, both against the last draw; the number of draws (rounds)."""
  image: np.ndarray
  initial_loss: float
  final_loss: float
  draws: int


def synthesize(params, shape: Tuple[int, int], layers: Sequence[str],
               draw: Callable[[jax.Array], Dict[str, Any]], *,
               iterations: int = 100, redraw_every: int = 0, seed: int = 0,
               style_weight: float = 1.0, tv_weight: float = 0.0,
               pooling: str = "max", conv: str = "auto",
               style: Any = representations.Gram(),
               solver: solvers.SolverConfig | None = None) -> SynthesisResult:
  """Descends from uniform noise toward the statistics ``draw(key)`` gives
  (``{layer: statistic}`` for every layer in ``layers``: Grams ``(C, C)``
  for the default ``Gram`` representation), with no content term.

  ``style`` is the style representation (one for every layer, or
  ``{layer: representation}``); each draw becomes a target through its
  ``target``. ``shape`` is ``(H, W)``; the noise and the draws come from
  ``jax.random.key(seed)``. ``redraw_every = K > 0`` draws new targets every
  ``K`` iterations (module docstring); the image is clipped to [0, 1] between
  rounds. ``conv`` picks the convolution algorithm (``vgg.prepare_params``).
  """
  if iterations < 1 or redraw_every < 0:
    raise NSTError(f"{param('iterations')} must be >= 1 and "
                   f"{param('redraw_every')} >= 0, got {iterations} and "
                   f"{redraw_every}")
  spec = objective.Spec(content_layers=(), style_layers=tuple(layers),
                        pooling=pooling, style=style)
  objective.check_spec(spec, vgg.network_of(params))
  if objective.redraw_every(spec):
    raise NSTError("synthesize draws its own targets (`draw`, "
                   f"{param('redraw_every')}): a style representation that "
                   "re-draws its target cannot be used here")
  weights = objective.make_weights(spec, content_weight=0.0,
                                   style_weight=style_weight,
                                   tv_weight=tv_weight)
  params = vgg.prepare_params(params, conv, spec.layers)
  ev = problem.untiled((int(shape[0]), int(shape[1])))
  fun = problem.objective_of(spec, ev)
  key_noise, key_draw = jax.random.split(jax.random.key(seed))
  x = jax.random.uniform(key_noise, (*shape, 3), jnp.float32)
  per_round = redraw_every or iterations
  rounds = -(-iterations // per_round)
  base = solver or solvers.SolverConfig()
  evaluate = jax.jit(fun)
  x0 = x
  for r in range(rounds):   # each round a run of the one run loop
    stats = draw(jax.random.fold_in(key_draw, r))
    if set(stats) != set(layers):
      raise NSTError(f"draw gave statistics for {sorted(stats)}, expected "
                     f"{sorted(layers)}")
    targets = targets_from_statistics(spec, stats)
    steps = min(per_round, iterations - r * per_round)
    config = dataclasses.replace(base, maxiter=steps)
    args = (params, targets, weights)
    result = run.run_problem(
        problem.Problem(fun, args, jnp.array(x, jnp.float32, copy=True), spec,
                        ev), config, log_every=0,
        nonfinite_hint=f" (round {r} of the synthesis)")
    x = jnp.asarray(result.image)   # clipped to [0, 1]
  image = np.asarray(x)
  return SynthesisResult(image, float(evaluate(x0, *args)[0]),
                         float(evaluate(x, *args)[0]), rounds)
