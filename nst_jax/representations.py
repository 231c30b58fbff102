"""Style representations as values: what "style" means at one layer.

A representation is any hashable object (the library's are frozen
dataclasses) with three pure methods and two flags:

* ``statistic(features)`` — the features ``(H, W, C)`` float32 of one style
  image at one layer → a pytree of arrays. Where the representation allows
  it the statistic is a *position average* (``averageable``), so the
  statistics of several crops average into the statistic of their union
  (style patches, ``TransferConfig.patches``).
* ``target(stacked)`` — those statistics stacked over ``S`` styles on a
  leading axis → the target pytree the loss compares with (an
  eigen-decomposition, a matrix square root, sorted projections …), computed
  once per run.
* ``loss(features, target)`` — the features ``(H, W, C)`` of the image being
  optimised and the stacked target → the unweighted loss against each
  style, ``(S,)`` float32. Must be jit-, grad- and vmap-able.
* ``same_size`` — true when the loss compares maps position by position; the
  style image must then have the content's size (``transfer`` resizes it).
* ``averageable`` — false when the statistics of crops cannot be averaged
  (optional attribute, default true).
* ``suggested_style_weight`` — β that gives this representation about the
  Gram's style strength at its default ``STYLE_WEIGHT`` (optional, default
  ``STYLE_WEIGHT``; the command line uses it when ``--style_weight`` is not
  given).

Two optional methods make a representation *position-averaged*, which the
exact tiled objective (``nst_jax.tiling``, ``--tile_size``) needs:

* ``position_sums(features, weights)`` — features ``(H, W, C)`` and weights
  ``(H, W)`` (1 for the positions a tile owns, 0 elsewhere) → the pytree of
  weighted sums over positions whose quotient by ``M = Σ weights`` is the
  statistic: ``statistic(F) == sums(F, ones) / (H·W)`` leaf by leaf;
* ``loss_from_statistic(statistic, target)`` — the loss from the generated
  image's statistic alone: ``loss(F, target) ==
  loss_from_statistic(statistic(F), target)``.

A representation whose loss needs more than such averages (sorting all
positions, comparing maps position by position) has neither
(``position_averaged`` is false).

A third optional method serves sums that weigh positions by per-position
data of the target (the optimised image's guides of ``nst_jax.guided``):

* ``position_maps(target)`` — the pytree of maps ``(..., H_l, W_l)`` over
  the whole layer that the sums need (constants: no gradient). The tiled
  objective cuts each window's slice ``(..., h, w)`` (zero past the image)
  and calls ``position_sums(features, weights, maps)`` with it; the
  identities become ``loss(F, target) == loss_from_statistic(
  position_sums(F, ones, position_maps(target)) / (H·W), target)`` and,
  with the layer's guides ``g`` as maps (a style image's for its
  statistics), ``statistic(F, g) == position_sums(F, ones, g) / (H·W)``
  (``takes_position_maps``, ``position_maps_of``).

An optional ``redraw(target, round)`` lets a representation re-draw the
random part of its target (``SlicedWasserstein(redraw_every=K)``): the
transfer calls it every ``redraw_every`` iterations.

The objective never asks which representation it holds: it calls these
methods. ``objective.Spec(style=...)`` takes one representation for every
style layer or a dict ``{layer: representation}``. A researcher's own
representation is a class with the same methods (see README, "Your own
style representation"), used exactly like the built-ins.

The command line names representations: ``from_name`` is the one table
from ``--style_stat`` and its parameter flags to these values.
"""

import dataclasses
from typing import Any, Callable, Dict, Mapping, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import losses
from nst_jax import statistics
from nst_jax import guided
from nst_jax.errors import NSTError, check_choice, param

_HIGHEST = jax.lax.Precision.HIGHEST
NORMALIZATIONS = losses.GRAM_NORMALIZATIONS
STYLE_WEIGHT = losses.DEFAULT_STYLE_WEIGHT  # the Gram's β; see losses


def _check_normalization(owner: str, normalization: str) -> None:
  check_choice(f"{owner}.normalization", normalization, NORMALIZATIONS)


def _stack_like(value: jax.Array, target: jax.Array) -> jax.Array:
  """The generated image's statistic broadcast over the target's ``S``."""
  return jnp.broadcast_to(value, target.shape)


@dataclasses.dataclass(frozen=True)
class Gram:
  """Gram matrix of the channels (Gatys, Ecker & Bethge 2016, eqs. 3-5).

  Statistic: ``Ĝ = FᵀF / M`` ``(C, C)`` (``statistics.gram_matrix``; a
  position average). Loss ``Σ(Ĝ−Â)²/(4C²)`` (``"paper"``, eq. 4) or
  ``Σ(Ĝ−Â)²/C²`` (``"notes"``, seed 000): ``losses.gram_loss``.
  """
  normalization: str = "paper"
  same_size = False
  suggested_style_weight = STYLE_WEIGHT
  averageable = True

  def __post_init__(self):
    _check_normalization("Gram", self.normalization)

  def statistic(self, features):
    return statistics.gram_matrix(features)

  def target(self, stacked):
    return stacked

  def loss(self, features, target):
    gram = _stack_like(statistics.gram_matrix(features), target)
    return losses.gram_loss(gram, target, normalization=self.normalization)

  def position_sums(self, features, weights):
    return _weighted_gram(features, weights)

  def loss_from_statistic(self, statistic, target):
    return losses.gram_loss(_stack_like(statistic, target), target,
                            normalization=self.normalization)


@dataclasses.dataclass(frozen=True)
class Spatial:
  """Per-channel spatial autocorrelation (Nikulin & Novak §7, seed 001).

  Statistic ``(C, 2H−1, 2W−1)`` (``statistics.spatial_autocorrelation``),
  compared position by position: the style image must have the content's
  size. Loss ``losses.spatial_loss``.
  """
  normalization: str = "paper"
  same_size = True
  suggested_style_weight = STYLE_WEIGHT
  averageable = True

  def __post_init__(self):
    _check_normalization("Spatial", self.normalization)

  def statistic(self, features):
    return statistics.spatial_autocorrelation(features)

  def target(self, stacked):
    return stacked

  def loss(self, features, target):
    corr = _stack_like(statistics.spatial_autocorrelation(features), target)
    return losses.spatial_loss(corr, target, normalization=self.normalization)


@dataclasses.dataclass(frozen=True)
class Local:
  """Windowed Grams compared position by position (Nikulin & Novak §9).

  ``window`` ``s`` is the half-width of the window (0: pointwise products).
  The statistic is the style's features themselves (the windowed Grams are
  never materialised; ``losses.local_gram_loss``), so crops cannot be
  averaged and the style must have the content's size.
  """
  window: int = 0
  normalization: str = "paper"
  same_size = True
  suggested_style_weight = STYLE_WEIGHT
  averageable = False

  def __post_init__(self):
    _check_normalization("Local", self.normalization)
    if int(self.window) < 0:
      raise NSTError(f"{param('Local.window')} must be >= 0, got "
                     f"{self.window}")

  def statistic(self, features):
    return features

  def target(self, stacked):
    return stacked

  def loss(self, features, target):
    return losses.local_gram_loss(_stack_like(features, target), target,
                                  window=int(self.window),
                                  normalization=self.normalization)


EIGEN_LOSSES = ("reconstruction", "spectrum", "projected")


@dataclasses.dataclass(frozen=True)
class Eigen:
  """The Gram's eigen-decomposition (thesis, seed 002).

  ``rank`` ``r`` keeps the top-r eigenpairs of each style Gram (0: all).
  ``loss``: ``"reconstruction"`` — Gram loss to the rank-r reconstruction
  ``V_r Λ_r V_rᵀ``; ``"spectrum"`` — the r largest eigenvalues
  (``losses.spectrum_loss``); ``"projected"`` — Grams of the features
  projected onto the style's top-r eigenvectors, ``VᵀĜV`` against ``Λ_r``.
  """
  rank: int = 0
  loss_kind: str = "reconstruction"
  normalization: str = "paper"
  same_size = False
  suggested_style_weight = STYLE_WEIGHT
  averageable = True

  def __post_init__(self):
    _check_normalization("Eigen", self.normalization)
    check_choice("Eigen.loss_kind", self.loss_kind, EIGEN_LOSSES)
    if int(self.rank) < 0:
      raise NSTError(f"{param('Eigen.rank')} must be >= 0 (0: full), got "
                     f"{self.rank}")

  def statistic(self, features):
    return statistics.gram_matrix(features)

  def target(self, stacked):
    rank = int(self.rank)
    if self.loss_kind == "reconstruction":
      return statistics.low_rank_gram(stacked, rank=rank)
    if self.loss_kind == "spectrum":
      return statistics.gram_spectrum(stacked, rank=rank)
    _, basis = statistics.gram_eigen(stacked, rank=rank)
    return {"basis": basis, "gram": jnp.einsum(
        "...ci,...cd,...dj->...ij", basis, stacked, basis, precision=_HIGHEST)}

  def loss(self, features, target):
    gram = statistics.gram_matrix(features)
    if self.loss_kind == "reconstruction":
      return losses.gram_loss(_stack_like(gram, target), target,
                              normalization=self.normalization)
    if self.loss_kind == "spectrum":
      values = statistics.gram_spectrum(gram, rank=int(self.rank))
      return losses.spectrum_loss(_stack_like(values, target), target,
                                  normalization=self.normalization)
    reduced = jnp.einsum("sci,cd,sdj->sij", target["basis"], gram,
                         target["basis"], precision=_HIGHEST)
    return losses.gram_loss(reduced, target["gram"],
                            normalization=self.normalization)

  def position_sums(self, features, weights):
    return _weighted_gram(features, weights)

  def loss_from_statistic(self, statistic, target):
    if self.loss_kind == "reconstruction":
      return losses.gram_loss(_stack_like(statistic, target), target,
                              normalization=self.normalization)
    if self.loss_kind == "spectrum":
      values = statistics.gram_spectrum(statistic, rank=int(self.rank))
      return losses.spectrum_loss(_stack_like(values, target), target,
                                  normalization=self.normalization)
    reduced = jnp.einsum("sci,cd,sdj->sij", target["basis"], statistic,
                         target["basis"], precision=_HIGHEST)
    return losses.gram_loss(reduced, target["gram"],
                            normalization=self.normalization)


@dataclasses.dataclass(frozen=True)
class Moments:
  """Per-channel mean and standard deviation (thesis, seed 002).

  Statistic: the raw moments ``E[F]``, ``E[F²]`` (position averages); target
  ``(S, 2, C)`` by ``statistics.moments_from_raw`` — the same function (and
  constant) ``statistics.channel_moments`` uses for the generated image.
  Loss ``losses.moments_loss``.
  """
  same_size = False
  suggested_style_weight = STYLE_WEIGHT
  averageable = True

  def statistic(self, features):
    return {"mean": jnp.mean(features, axis=(0, 1)),
            "square": jnp.mean(jnp.square(features), axis=(0, 1))}

  def target(self, stacked):
    return statistics.moments_from_raw(stacked["mean"], stacked["square"])

  def loss(self, features, target):
    moments = _stack_like(statistics.channel_moments(features), target)
    return losses.moments_loss(moments, target)

  def position_sums(self, features, weights):
    w = weights[..., None]
    return {"mean": jnp.sum(w * features, axis=(0, 1)),
            "square": jnp.sum(w * jnp.square(features), axis=(0, 1))}

  def loss_from_statistic(self, statistic, target):
    moments = statistics.moments_from_raw(statistic["mean"],
                                          statistic["square"])
    return losses.moments_loss(_stack_like(moments, target), target)


@dataclasses.dataclass(frozen=True)
class Covariance:
  """Mean and covariance, compared as Gaussians by the 2-Wasserstein
  distance (thesis, seed 002; ``losses.gaussian_w2_loss``).

  Statistic: the mean and the location-averaged Gram (position averages);
  the target holds the mean and the square root of the covariance
  (``statistics.covariance_from_gram``, ``statistics.sqrtm_psd``).
  """
  same_size = False
  suggested_style_weight = STYLE_WEIGHT
  averageable = True

  def statistic(self, features):
    return {"mean": jnp.mean(features, axis=(0, 1)),
            "gram": statistics.gram_matrix(features)}

  def target(self, stacked):
    cov = statistics.covariance_from_gram(stacked["mean"], stacked["gram"])
    return {"mean": stacked["mean"], "cov_sqrt": statistics.sqrtm_psd(cov)}

  def loss(self, features, target):
    mean, cov = statistics.channel_mean_covariance(features)
    tm, tc = target["mean"], target["cov_sqrt"]
    return losses.gaussian_w2_loss(_stack_like(mean, tm), _stack_like(cov, tc),
                                   tm, tc)

  def position_sums(self, features, weights):
    return {"mean": jnp.sum(weights[..., None] * features, axis=(0, 1)),
            "gram": _weighted_gram(features, weights)}

  def loss_from_statistic(self, statistic, target):
    mean = statistic["mean"]
    cov = statistics.covariance_from_gram(mean, statistic["gram"])
    tm, tc = target["mean"], target["cov_sqrt"]
    return losses.gaussian_w2_loss(_stack_like(mean, tm), _stack_like(cov, tc),
                                   tm, tc)


@dataclasses.dataclass(frozen=True)
class SlicedWasserstein:
  """Sliced Wasserstein distance between the feature distributions (Heitz,
  Vanhoey, Chambon & Belcour, "A Sliced Wasserstein Loss for Neural Texture
  Synthesis", CVPR 2021).

  The features of each position are a point in ``R^C``; both point sets are
  projected on ``directions`` random unit vectors (0: ``C`` of them, as in
  the paper), each projection is sorted, and the sorted values are compared
  (``losses.sliced_wasserstein_loss``): the exact 1-D optimal transport per
  direction. It matches the whole marginal distribution along each
  direction, not only its first two moments as the Gram does.

  Statistic: ``samples`` positions of the style's features ``(P, C)``
  (a seeded random subset when the layer has more, every position repeated
  evenly when it has fewer), so styles of any size stack. Target: the
  directions ``(C, D)`` drawn from ``seed`` and the sorted projections
  ``(S, D, P)``; with ``redraw_every = K > 0`` the points are kept too and
  ``redraw`` draws new directions every ``K`` iterations (the paper draws
  new ones at every step). The generated image's projections are compared
  with the style's quantiles resampled to its number of positions.
  """
  directions: int = 0
  samples: int = 16384
  seed: int = 0
  redraw_every: int = 0
  same_size = False
  # β matching the Gram's initial style loss at its β (×1.5): the loss at the content
  # image is 0.51-0.92x the Gram's over five paintings (256 px, VGG-16,
  # 2026-11-30; geometric mean 0.65).
  suggested_style_weight = 1.5 * STYLE_WEIGHT
  averageable = False

  def __post_init__(self):
    for name, value, low in (("directions", self.directions, 0),
                             ("samples", self.samples, 1),
                             ("redraw_every", self.redraw_every, 0)):
      name = f"SlicedWasserstein.{name}"
      if int(value) < low:
        raise NSTError(f"{param(name)} must be >= {low}, got {value}")

  def _directions(self, channels: int, round_: int = 0) -> jax.Array:
    key = jax.random.fold_in(jax.random.key(self.seed), round_)
    return statistics.random_directions(key, channels,
                                        int(self.directions) or channels)

  def statistic(self, features):
    h, w, c = features.shape
    points = features.reshape(h * w, c)
    m, p = h * w, int(self.samples)
    if m > p:
      index = jax.random.choice(jax.random.key(self.seed), m, (p,),
                                replace=False)
    else:
      index = jnp.asarray(np.arange(p) * m // p)
    return points[index]

  def _sorted(self, points, directions):
    return statistics.sorted_projections(points, directions)

  def target(self, stacked):
    directions = self._directions(stacked.shape[-1])
    target = {"directions": directions,
              "sorted": self._sorted(stacked, directions)}
    if int(self.redraw_every) > 0:
      target["points"] = stacked
    return target

  def redraw(self, target, round_: int):
    """New directions for round ``round_`` (``fold_in(key(seed), round)``)
    and the style's sorted projections on them."""
    if "points" not in target:
      return target
    directions = self._directions(target["points"].shape[-1], round_)
    return {**target, "directions": directions,
            "sorted": self._sorted(target["points"], directions)}

  def loss(self, features, target):
    h, w, c = features.shape
    projections = jnp.einsum("mc,cd->dm", features.reshape(h * w, c),
                             target["directions"], precision=_HIGHEST)
    return jax.vmap(losses.sliced_wasserstein_loss, in_axes=(None, 0))(
        projections, target["sorted"])


@dataclasses.dataclass(frozen=True)
class CentralMoments:
  """Central moment discrepancy (Kalischek, Wegner & Schindler, "In the
  Light of Feature Distributions: Moment Matching for Neural Style
  Transfer", CVPR 2021).

  Per channel, the mean and the central moments ``E[(F−μ)^k]`` up to
  ``order`` ``K`` are matched with ``Σ_k ‖c_k(F) − c_k(S)‖₂``
  (``losses.central_moment_discrepancy``). The CMD assumes features on a
  bounded interval; with ``squash`` (default) they are first mapped by a
  sigmoid, which bounds every moment and keeps orders up to 5 comparable.
  The authors' code squashes the convolutions' outputs (conv1_1 … conv5_1),
  whose negative values the sigmoid keeps apart; on this library's default
  style layers (relu1_1 … relu5_1) the squashed values lie in [½, 1) and
  every negative pre-activation maps to ½. Give ``Spec(style_layers=
  ("conv1_1", …))`` for the paper's choice.

  Statistic: the raw moments ``E[(σ(F) − ½)^k]`` (position averages, so
  patches average; about ½ because central moments do not depend on the
  shift and smaller raw moments lose less to float32 cancellation: order 5
  stays within ~1e-6 of a float64 reference where unshifted raw moments
  lost 5e-4); target: the mean and central moments from them by the
  binomial expansion (``statistics.central_from_raw``).
  """
  order: int = 5
  squash: bool = True
  same_size = False
  # β matching the Gram's initial style loss at its β (×1.8): the loss at the content
  # image is 0.36-0.81x the Gram's over five paintings (256 px, VGG-16,
  # 2026-11-30; geometric mean 0.54).
  suggested_style_weight = 1.8 * STYLE_WEIGHT
  averageable = True

  def __post_init__(self):
    if int(self.order) < 1:
      raise NSTError(f"{param('CentralMoments.order')} must be >= 1, got "
                     f"{self.order}")

  @property
  def _shift(self) -> float:
    return 0.5 if self.squash else 0.0

  def _map(self, features):
    return jax.nn.sigmoid(features) if self.squash else features

  def statistic(self, features):
    return statistics.raw_moments(self._map(features) - self._shift,
                                  int(self.order))

  def target(self, stacked):
    central = statistics.central_from_raw(stacked)
    return central.at[..., 0, :].add(self._shift)   # the mean, unshifted

  def loss(self, features, target):
    moments = statistics.central_moments(self._map(features), int(self.order))
    return losses.central_moment_discrepancy(_stack_like(moments, target),
                                             target)

  def position_sums(self, features, weights):
    shifted = self._map(features) - self._shift
    w, power, rows = weights[..., None], shifted, []
    for k in range(int(self.order)):
      if k:
        power = power * shifted
      rows.append(jnp.sum(w * power, axis=(0, 1)))
    return jnp.stack(rows, axis=-2)

  def loss_from_statistic(self, statistic, target):
    # The same route as ``target``: central moments by the binomial expansion
    # of the shifted raw moments (equal to ``loss``'s centred ones to ~1e-6).
    moments = self.target(statistic)
    return losses.central_moment_discrepancy(_stack_like(moments, target),
                                             target)


# --- helpers the objective uses ---------------------------------------------


def _weighted_gram(features, weights):
  """``Σ_p w_p f_p f_pᵀ`` ``(C, C)`` of features ``(H, W, C)`` and position
  weights ``(H, W)``: the Gram's position sum (``statistics.gram_matrix`` is
  it over ``M`` with unit weights)."""
  h, w, c = features.shape
  flat = features.reshape(h * w, c)
  return jnp.einsum("mi,mj->ij", flat * weights.reshape(h * w, 1), flat,
                    precision=_HIGHEST)


def position_averaged(representation) -> bool:
  """Whether the representation's loss is a function of position averages
  (it has ``position_sums`` and ``loss_from_statistic``): what the exact
  tiled objective needs."""
  return all(callable(getattr(representation, m, None))
             for m in ("position_sums", "loss_from_statistic"))


def takes_position_maps(representation) -> bool:
  """Whether the representation's ``position_sums`` takes a third argument,
  its window of ``position_maps(target)`` (guided representations)."""
  return callable(getattr(representation, "position_maps", None))


def position_maps_of(representation, target):
  """``representation.position_maps(target)`` (the per-position maps its
  ``position_sums`` takes as a third argument), or ``None`` for a
  representation whose sums need none."""
  if not takes_position_maps(representation):
    return None
  return representation.position_maps(target)


def averageable(representation) -> bool:
  """Whether the statistics of several crops may be averaged."""
  return bool(getattr(representation, "averageable", True))


def redraw_every(representation) -> int:
  """Iterations between re-draws of the representation's target (0: never)."""
  return int(getattr(representation, "redraw_every", 0) or 0)


def check(representation, *, where: str = "style") -> None:
  """Raises ``NSTError`` unless ``representation`` has the protocol's
  methods and is hashable (a jit static argument)."""
  missing = [m for m in ("statistic", "target", "loss")
             if not callable(getattr(representation, m, None))]
  if missing or not hasattr(representation, "same_size"):
    what = ", ".join(missing + ([] if hasattr(representation, "same_size")
                                else ["same_size"]))
    raise NSTError(f"{param(where)} {representation!r} is not a style "
                   f"representation: it lacks {what}")
  try:
    hash(representation)
  except TypeError:
    raise NSTError(f"{param(where)} {representation!r} must be hashable (a "
                   "frozen dataclass)") from None


# --- the one name table -----------------------------------------------------

# name -> (factory from the parameter values, the parameters it reads).
# ``gram_normalization`` is honoured only by the representations that read it;
# ``from_name`` refuses a non-default value for the others.
_TABLE: Dict[str, Tuple[Callable[..., Any], Tuple[str, ...]]] = {
    "gram": (lambda p: Gram(p["gram_normalization"]), ("gram_normalization",)),
    "spatial": (lambda p: Spatial(p["gram_normalization"]),
                ("gram_normalization",)),
    "local": (lambda p: Local(p["local_window"], p["gram_normalization"]),
              ("gram_normalization", "local_window")),
    "eigen": (lambda p: Eigen(p["style_rank"], p["eigen_loss"],
                              p["gram_normalization"]),
              ("gram_normalization", "style_rank", "eigen_loss")),
    "moments": (lambda p: Moments(), ()),
    "covariance": (lambda p: Covariance(), ()),
    "swd": (lambda p: SlicedWasserstein(p["swd_directions"], p["swd_samples"],
                                        p["seed"], p["swd_redraw_every"]),
            ("swd_directions", "swd_samples", "swd_redraw_every")),
    "cmd": (lambda p: CentralMoments(p["cmd_order"]), ("cmd_order",)),
    "content_aware": (lambda p: guided.ContentAware(
        p["ca_clusters"], p["ca_window"], p["ca_temperature"],
        p["ca_layer"], p["gram_normalization"], p["seed"]),
                      ("gram_normalization", "ca_clusters", "ca_window",
                       "ca_temperature", "ca_layer")),
}
NAMES = tuple(_TABLE)
# The parameters of the table with their defaults (the command line's flags).
DEFAULTS = {"gram_normalization": "paper", "local_window": 0,
            "style_rank": 0, "eigen_loss": "reconstruction",
            "swd_directions": 0, "swd_samples": 16384, "swd_redraw_every": 0,
            "cmd_order": 5, "seed": 0, "ca_clusters": 8, "ca_window": 2,
            "ca_temperature": 0.05, "ca_layer": "relu4_2"}


def from_name(name: str, style_layers: Sequence[str] = (), *,
              local_window: Sequence[int] | int = (0,), **params):
  """The representation that ``name`` and its parameters describe.

  ``params`` are the keys of ``DEFAULTS`` (the command line's flags).
  ``local_window`` may give one window per style layer: the result is then a
  dict ``{layer: Local(window)}``; otherwise one value for every layer.
  Raises ``NSTError`` for an unknown name, an unknown parameter, or a
  parameter the named representation does not read set to a non-default
  value (it would be silently ignored).
  """
  check_choice("style_stat", name, NAMES)
  unknown = sorted(set(params) - set(DEFAULTS))
  if unknown:
    raise NSTError(f"unknown style parameter {param(unknown[0])}")
  windows = ((int(local_window),) if np.ndim(local_window) == 0
             else tuple(int(w) for w in local_window)) or (0,)
  values = {**DEFAULTS, **params, "local_window": windows[0]}
  factory, reads = _TABLE[name]
  for key, value in params.items():
    if key != "seed" and key not in reads and value != DEFAULTS[key]:
      raise NSTError(f"{param(key)} does not apply to the {name} style "
                     f"representation (it reads "
                     f"{', '.join(map(param, reads)) or 'no parameter'})")
  if windows != (0,) and "local_window" not in reads:
    raise NSTError(f"{param('local_window')} does not apply to the {name} "
                   "style representation")
  if len(windows) == 1:
    return factory(values)
  if len(windows) != len(style_layers):
    raise NSTError(f"{param('local_window')} must be one integer >= 0 or one "
                   f"per style layer ({len(style_layers)}), got "
                   f"{','.join(map(str, windows))}")
  return {layer: factory({**values, "local_window": w})
          for layer, w in zip(style_layers, windows)}


@dataclasses.dataclass(frozen=True)
class PerLayer:
  """One representation per layer, hashable: ``objective.Spec`` stores a
  ``{layer: representation}`` mapping as this (pairs sorted by layer name,
  so equal mappings give equal, equally hashed specs)."""
  pairs: Tuple[Tuple[str, Any], ...]

  @classmethod
  def of(cls, mapping: Mapping[str, Any]) -> "PerLayer":
    return cls(tuple(sorted(mapping.items(), key=lambda kv: kv[0])))

  def as_dict(self) -> Dict[str, Any]:
    return dict(self.pairs)


def per_layer(style, layers: Sequence[str]) -> Tuple[Tuple[str, Any], ...]:
  """``((layer, representation), …)`` for ``layers``, from one
  representation or a mapping ``{layer: representation}`` (a dict or
  ``PerLayer``; it must name exactly these layers)."""
  if isinstance(style, PerLayer):
    style = style.as_dict()
  if isinstance(style, Mapping):
    missing = [l for l in layers if l not in style]
    extra = [l for l in style if l not in layers]
    if missing or extra:
      raise NSTError(
          f"the style representations name layers "
          f"{', '.join(style) or 'none'} but the style layers are "
          f"{', '.join(layers) or 'none'}")
    return tuple((l, style[l]) for l in layers)
  return tuple((l, style) for l in layers)
