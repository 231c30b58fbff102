"""Style representations as values: what "style" means at one layer.

A representation is a hashable value (the library's are frozen
dataclasses) with a small core and optional *capabilities*.

The core, which every representation has (``Representation``):

* ``statistic(features, guides=None)`` — the features ``(H, W, C)`` float32
  of one style image at one layer → a pytree of arrays.
* ``target(stacked, guides=None)`` — those statistics stacked over ``S``
  styles on a leading axis → the target pytree the loss compares with (an
  eigen-decomposition, a matrix square root, sorted projections …),
  computed once per run.
* ``loss(features, target)`` — the features ``(H, W, C)`` of the image being
  optimised and the stacked target → the unweighted loss against each
  style, ``(S,)`` float32. Must be jit-, grad- and vmap-able.
* ``same_size`` — true when the loss compares maps position by position; the
  style image must then have the content's size (``transfer`` resizes it).

``guides`` are given only to a ``Guided`` representation (below); the others
are never passed any and may leave the parameter out. Subclassing
``Representation`` is optional: any hashable object with the core (a
dataclass, a NamedTuple) is a representation.

A capability is an abstract class the representation inherits (the
abstract/final pattern of equinox; optax's ``GradientTransformationExtraArgs``
is a capability of the same kind), never an attribute that callers probe:

* ``PositionAveraged`` — the loss is a function of position averages, which
  the exact tiled objective (``nst_jax.tiling``, ``--tile_size``) needs:
  ``position_sums(features, weights, maps=None)`` (the weighted sums over
  positions whose quotient by ``M = Σ weights`` is the statistic) and
  ``loss_from_statistic(statistic, target)``; ``loss`` is derived from them.
* ``Averageable`` — the statistics of several equal-size crops of a style
  average into one target (style patches, ``patch_mode="mean"``).
* ``Guided`` (``nst_jax.guided``: masks, content-aware style) — the
  statistic and target take guides, ``layer_guides(guides, shape)`` brings
  image-level guides to a layer and ``position_maps(target)`` gives the
  optimised image's guides held in the target; ``MakesGuides`` adds
  ``guide_layer`` and ``make_guides(content_features, style_features)``.
* ``Redrawn`` — ``redraw_every`` ``K`` and ``redraw(target, round)``: the
  transfer re-draws the random part of the target every ``K`` iterations
  (``SlicedWasserstein(redraw_every=K)``).

``check`` verifies a representation once, where it enters (``objective.Spec``):
a value without the core is refused (``NSTError``), a class that misses part
of the core or of a capability it inherits is a programming error
(``TypeError`` naming the member and the rule). Everywhere else the library
asks ``isinstance`` through the few functions below (``position_averaged``,
``takes_position_maps``, ``averageable``, ``redraw_every``).

One registry (``register``) holds what the command line needs of a
representation: its ``--style_stat`` name, the style weight β it suggests and
the flags of its parameters. ``from_name``, ``names``, ``defaults``,
``param_flags`` (``cli.PARAM_FLAGS``), ``suggested_style_weight`` and the
list of tileable names are generated from it. ``nst_jax.guided`` registers
its own representations when imported (``import nst_jax`` does); this
module does not import it. A researcher's own representation (see docs/library/own-representation.md,
"Your own style representation") is used exactly like the built-ins and
may be registered too.
"""

import abc
import dataclasses
import inspect
from typing import Any, Callable, Dict, Mapping, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import losses
from nst_jax import statistics
from nst_jax.errors import NSTError, check_choice, param

_HIGHEST = jax.lax.Precision.HIGHEST
NORMALIZATIONS = losses.GRAM_NORMALIZATIONS
STYLE_WEIGHT = losses.DEFAULT_STYLE_WEIGHT  # the Gram's β; see losses


# --- the core and the capabilities ---------------------------------------------


class Representation(abc.ABC):
  """The core of a style representation (see the module docstring):
  ``statistic``, ``target``, ``loss`` and the class attribute
  ``same_size``. Inheriting it is optional (``check`` accepts any value
  with the core); the capabilities below inherit it."""

  @abc.abstractmethod
  def statistic(self, features, guides=None):
    """``(H, W, C)`` features of one style image → a pytree."""

  @abc.abstractmethod
  def target(self, stacked, guides=None):
    """Statistics stacked over ``S`` styles → the target pytree."""

  @abc.abstractmethod
  def loss(self, features, target):
    """``(H, W, C)`` features and the target → ``(S,)``."""


class PositionAveraged(Representation):
  """A representation whose loss is a function of position averages.

  ``position_sums(features, weights, maps=None)``: features ``(H, W, C)``
  and weights ``(H, W)`` (1 for the positions a tile owns, 0 elsewhere) →
  the pytree of weighted sums over positions whose quotient by ``M = Σ
  weights`` is the statistic: ``statistic(F) == position_sums(F, ones) /
  (H·W)`` leaf by leaf. A ``Guided`` one also takes ``maps``, its window of
  ``position_maps(target)`` (the tiled objective cuts each window's slice),
  and ``statistic(F, g) == position_sums(F, ones, g) / (H·W)``.

  ``loss_from_statistic(statistic, target)``: the loss from the generated
  image's averages alone.

  ``loss`` is derived from the two: the sums over every position (weights 1,
  the whole layer's maps) divided by ``H·W``, then ``loss_from_statistic``
  — the tiled objective's formula for a tile that owns the whole layer, so
  tiled and untiled runs compute one formula. A subclass may override it
  with a direct formula equal to it up to float32 rounding
  (``CentralMoments``, the guided Grams).
  """

  @abc.abstractmethod
  def position_sums(self, features, weights, maps=None):
    """Features ``(H, W, C)``, weights ``(H, W)`` → the weighted sums."""

  @abc.abstractmethod
  def loss_from_statistic(self, statistic, target):
    """The generated image's statistic and the target → ``(S,)``."""

  def loss(self, features, target):
    h, w = features.shape[:2]
    maps = position_maps_of(self, target)
    sums = self.position_sums(features, jnp.ones((h, w), features.dtype),
                              *(() if maps is None else (maps,)))
    return self.loss_from_statistic(
        jax.tree_util.tree_map(lambda s: s / (h * w), sums), target)


class Averageable(Representation):
  """A representation whose statistics of several equal-size crops of one
  style average into one target (style patches, ``patch_mode="mean"``):
  the statistic is an average over positions (or over the positions of each
  offset) that does not depend on anything but the crop's features. No
  members beyond the core."""


class Guided(Representation):
  """A representation that weighs positions by guides (``nst_jax.guided``).

  ``statistic(features, guides)`` and ``target(stacked, guides)`` receive
  layer guides ``(K, h, w)`` as their second argument: the style image's
  for the statistic, the optimised image's for the target (which keeps
  them, so ``loss(features, target)`` keeps the core's signature).

  ``layer_guides(guides, shape)``: image-level guides ``(K, H_g, W_g)`` →
  ``(K, h, w)`` at a layer of spatial shape ``(h, w)``.
  ``position_maps(target)``: the optimised image's guides at this layer
  ``(..., H_l, W_l)``, held in the target (constants, no gradient): what a
  position-averaged one's ``position_sums`` takes as ``maps``.

  Without ``MakesGuides`` the caller gives the guides
  (``targets.make_targets(guides=...)``: masks).
  """

  @abc.abstractmethod
  def layer_guides(self, guides, shape):
    """``(K, H_g, W_g)`` → ``(K, h, w)``."""

  @abc.abstractmethod
  def position_maps(self, target):
    """The optimised image's guides at this layer, from the target."""


class MakesGuides(Guided):
  """A guided representation that computes its own image-level guides from
  the features at its ``guide_layer`` (a layer name, an attribute):
  ``make_guides(content_features, style_features) -> guided.Guides``
  (``guided.ContentAware``)."""

  @abc.abstractmethod
  def make_guides(self, content_features, style_features):
    """Content ``(h, w, C)`` and each style's features → ``Guides``."""


class Redrawn(Representation):
  """A representation with a random target that the transfer re-draws:
  ``redraw_every`` ``K`` (an int attribute, 0: never) and ``redraw(target,
  round)`` → the target of round ``round`` (called every ``K``
  iterations)."""

  @abc.abstractmethod
  def redraw(self, target, round_: int):
    """The target re-drawn for round ``round_``."""


# Each capability's members (methods and attributes) and its rule, for
# ``check``'s messages.
_CORE = ("statistic", "target", "loss", "same_size")
_CAPABILITIES = (
    (PositionAveraged, ("position_sums", "loss_from_statistic"),
     "a position-averaged representation has position_sums(features, "
     "weights, maps=None) and loss_from_statistic(statistic, target)"),
    (Guided, ("layer_guides", "position_maps"),
     "a guided representation has layer_guides(guides, shape) and "
     "position_maps(target), and its statistic and target take guides"),
    (MakesGuides, ("guide_layer", "make_guides"),
     "a representation that makes its guides has guide_layer and "
     "make_guides(content_features, style_features)"),
    (Redrawn, ("redraw_every", "redraw"),
     "a re-drawn representation has redraw_every (an int >= 0) and "
     "redraw(target, round)"),
)


def _has(value, member: str) -> bool:
  """Whether ``value`` has ``member``, implemented (not an abstract method
  it inherits)."""
  found = getattr(type(value), member, None)
  if getattr(found, "__isabstractmethod__", False):
    return False
  return hasattr(value, member)


def check(representation, *, where: str = "style") -> None:
  """Checks a style representation once, where it enters
  (``objective.Spec``).

  Raises ``NSTError`` for a value that is no representation at all (none of
  the core: ``statistic``, ``target``, ``loss``, ``same_size``), and
  ``TypeError`` for a programming error of a representation's class: part
  of the core missing, not hashable (a jit static argument), a capability
  it inherits without that capability's members, all of a capability's
  methods without inheriting it (a capability is declared by inheriting
  its class, never found by probing), or a method that cannot take what
  the library passes it (guides to a ``Guided`` one's ``statistic`` and
  ``target``, maps to its ``position_sums``, neither to the others)."""
  rep, name = representation, type(representation).__name__
  missing = [m for m in _CORE if not _has(rep, m)]
  if len(missing) == len(_CORE):
    raise NSTError(f"{param(where)} {rep!r} is not a style representation "
                   "(a value with statistic, target, loss and same_size, "
                   "e.g. Gram() or representations.from_name('gram'))")
  if missing:
    raise TypeError(
        f"{name} is not a style representation: it lacks "
        f"{', '.join(missing)} (every representation has statistic("
        "features, guides=None), target(stacked, guides=None), "
        "loss(features, target) and same_size)")
  try:
    hash(rep)
  except TypeError:
    raise TypeError(f"{name} must be hashable (a frozen dataclass or a "
                    "NamedTuple): a representation is a jit static "
                    "argument") from None
  for capability, members, rule in _CAPABILITIES:
    cap = f"representations.{capability.__name__}"
    if isinstance(rep, capability):
      lacking = [m for m in members if not _has(rep, m)]
      if lacking:
        raise TypeError(f"{name} inherits {cap} but lacks "
                        f"{', '.join(lacking)}: {rule}")
    elif all(_has(rep, m) for m in members):
      raise TypeError(f"{name} has {' and '.join(members)} but does not "
                      f"inherit {cap}: a capability is declared by "
                      f"inheriting its class ({rule})")
  if isinstance(rep, Redrawn) and not int(rep.redraw_every) >= 0:
    raise TypeError(f"{name}.redraw_every must be an int >= 0, got "
                    f"{rep.redraw_every!r}")
  # What the callers pass: guides only to a Guided one, maps to its sums.
  guided = isinstance(rep, Guided)
  calls = [("statistic", 2 if guided else 1), ("target", 2 if guided else 1)]
  if isinstance(rep, PositionAveraged):
    calls.append(("position_sums", 3 if guided else 2))
  for method, count in calls:
    if not _takes(getattr(rep, method), count):
      raise TypeError(
          f"{name}.{method} must take {count} positional argument"
          + ("s" if count > 1 else "")
          + (" (a Guided representation's statistic and target take guides,"
             " its position_sums takes maps)" if guided else
             " (guides are given only to a representations.Guided one)"))


def _takes(method, count: int) -> bool:
  """Whether ``method`` can be called with ``count`` positional arguments
  (a signature Python cannot read is taken to accept them)."""
  try:
    inspect.signature(method).bind(*[None] * count)
  except TypeError:
    return False
  except ValueError:
    return True
  return True


def position_averaged(representation) -> bool:
  """Whether the representation's loss is a function of position averages
  (``PositionAveraged``): what the exact tiled objective needs."""
  return isinstance(representation, PositionAveraged)


def takes_position_maps(representation) -> bool:
  """Whether the representation's ``position_sums`` takes a third argument,
  its window of ``position_maps(target)`` (``Guided`` ones)."""
  return isinstance(representation, Guided)


def position_maps_of(representation, target):
  """``representation.position_maps(target)`` (the per-position maps its
  ``position_sums`` takes as a third argument), or ``None`` for a
  representation whose sums need none."""
  if not takes_position_maps(representation):
    return None
  return representation.position_maps(target)


def averageable(representation) -> bool:
  """Whether the statistics of several crops may be averaged
  (``Averageable``)."""
  return isinstance(representation, Averageable)


def redraw_every(representation) -> int:
  """Iterations between re-draws of the representation's target (0: never;
  ``Redrawn``)."""
  if not isinstance(representation, Redrawn):
    return 0
  return int(representation.redraw_every)


# --- the registry: names, suggested weights, parameter flags -------------------


@dataclasses.dataclass(frozen=True)
class Registered:
  """What the command line knows of a representation class: its
  ``--style_stat`` ``name`` (``None``: not named there), the β it
  suggests (``style_weight``: about the Gram's style strength at its
  ``STYLE_WEIGHT``), ``flags`` ``((field, flag), …)`` for its dataclass
  fields set by command-line flags, and ``masks_of``, the unguided class
  whose guided version for user masks this is (``guided.guided_version``)."""
  cls: type
  name: str | None
  style_weight: float
  flags: Tuple[Tuple[str, str], ...]
  masks_of: type | None


_REGISTRY: Dict[type, Registered] = {}


def register(*, name: str | None = None, style_weight: float = STYLE_WEIGHT,
             flags: Mapping[str, str] | None = None,
             masks_of: type | None = None) -> Callable[[type], type]:
  """A class decorator that enters a representation class in the registry
  (see ``Registered``) and returns it unchanged; ``register(...)(cls)``
  for a class defined elsewhere. ``flags`` maps the class's dataclass
  fields to flag names; a named class must build from its flags' values
  alone (its other fields have defaults), and one flag has one default
  (the field's) in every class that reads it. Raises ``ValueError`` for a
  name or flag default that clashes with another class's, ``TypeError``
  for a field the class does not have."""
  def enter(cls: type) -> type:
    flags_ = tuple((flags or {}).items())
    fields = ({f.name: f for f in dataclasses.fields(cls)}
              if dataclasses.is_dataclass(cls) else {})
    unknown = [f for f, _ in flags_ if f not in fields]
    if unknown:
      raise TypeError(f"register: {cls.__name__} has no dataclass field "
                      f"{', '.join(unknown)}")
    required = [f for f in fields.values() if f.name not in dict(flags_)
                and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING]
    if name is not None and required:
      raise TypeError(f"register: {cls.__name__} is named {name!r} but its "
                      f"field {required[0].name} has no default and no flag")
    for other in _REGISTRY.values():
      if other.cls is not cls and name is not None and other.name == name:
        raise ValueError(f"register: the name {name!r} is "
                         f"{other.cls.__name__}'s")
    if masks_of is not None and not issubclass(cls, Guided):
      raise TypeError(f"register: {cls.__name__} is the masks version of "
                      f"{masks_of.__name__} but does not inherit Guided")
    if not float(style_weight) > 0:
      raise ValueError(f"register: {cls.__name__}'s style_weight must be > 0")
    entry = Registered(cls, name, float(style_weight), flags_, masks_of)
    known = _flag_defaults(list(_REGISTRY.values()))
    for flag, value in _flag_defaults([entry]).items():
      if flag in known and known[flag] != value:
        raise ValueError(f"register: the flag {flag} has the default "
                         f"{known[flag]!r}, {cls.__name__}'s is {value!r}")
    _REGISTRY[cls] = entry
    return cls
  return enter


def _flag_defaults(entries) -> Dict[str, Any]:
  """``{flag: default}`` of the entries' flags (the fields' defaults)."""
  out = {}
  for entry in entries:
    fields = {f.name: f for f in dataclasses.fields(entry.cls)}
    for field, flag in entry.flags:
      if fields[field].default is not dataclasses.MISSING:
        out.setdefault(flag, fields[field].default)
  return out


def registered() -> Tuple[Registered, ...]:
  """Every registered class's entry, in the order of registration (this
  module's, then ``nst_jax.guided``'s, then any others)."""
  return tuple(_REGISTRY.values())


def _named() -> Dict[str, Registered]:
  return {e.name: e for e in _REGISTRY.values() if e.name is not None}


def names() -> Tuple[str, ...]:
  """The ``--style_stat`` names."""
  return tuple(_named())


def defaults() -> Dict[str, Any]:
  """``{flag: default}`` of the named representations' parameters (the
  command line's flags): the fields' defaults."""
  return _flag_defaults(_named().values())


def param_flags() -> Dict[str, str]:
  """``{"Class.field": flag}`` of every registered class (``cli.PARAM_FLAGS``:
  a message naming ```Eigen.rank``` shows ``--style_rank``)."""
  return {f"{e.cls.__name__}.{field}": flag for e in _REGISTRY.values()
          for field, flag in e.flags}


def suggested_style_weight(representation) -> float:
  """The β its registered class suggests (``STYLE_WEIGHT``, the Gram's,
  for a class that is not registered)."""
  entry = _REGISTRY.get(type(representation))
  return STYLE_WEIGHT if entry is None else entry.style_weight


def masks_version(representation) -> type | None:
  """The registered guided class that is ``representation``'s version for
  user masks (``Registered.masks_of``), or ``None``."""
  for entry in _REGISTRY.values():
    if entry.masks_of is type(representation):
      return entry.cls
  return None


def tileable_names() -> str:
  """The names of the position-averaged representations, for messages:
  ``"gram, eigen, …, or masks (guided gram or moments)"``."""
  named = [e.name for e in _REGISTRY.values()
           if e.name is not None and issubclass(e.cls, PositionAveraged)]
  masks = [_REGISTRY[e.masks_of].name for e in _REGISTRY.values()
           if e.masks_of in _REGISTRY and issubclass(e.cls, PositionAveraged)
           and _REGISTRY[e.masks_of].name is not None]
  if masks:
    named.append(f"masks (guided {' or '.join(masks)})")
  if len(named) < 2:
    return "".join(named)
  return ", ".join(named[:-1]) + ", or " + named[-1]


def __getattr__(attribute: str):
  # ``NAMES`` and ``DEFAULTS``, read from the registry when asked for (so that
  # they include what ``nst_jax.guided`` registers after this module).
  if attribute == "NAMES":
    return names()
  if attribute == "DEFAULTS":
    return defaults()
  raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")


def from_name(name: str, style_layers: Sequence[str] = (), *,
              local_window: Sequence[int] | int = (0,), **params):
  """The representation that ``name`` and its parameters describe.

  ``params`` are the keys of ``defaults()`` (the command line's flags).
  ``local_window`` may give one window per style layer: the result is then a
  dict ``{layer: Local(window)}``; otherwise one value for every layer.
  Raises ``NSTError`` for an unknown name, an unknown parameter, or a
  parameter the named representation does not read set to a non-default
  value (it would be silently ignored); ``seed`` is the run's and applies to
  every representation.
  """
  named = _named()
  check_choice("style_stat", name, tuple(named))
  default = defaults()
  unknown = sorted(set(params) - set(default))
  if unknown:
    raise NSTError(f"unknown style parameter {param(unknown[0])}")
  windows = ((int(local_window),) if np.ndim(local_window) == 0
             else tuple(int(w) for w in local_window)) or (0,)
  values = {**default, **params, "local_window": windows[0]}
  entry = named[name]
  reads = tuple(flag for _, flag in entry.flags)
  for key, value in params.items():
    if key != "seed" and key not in reads and value != default[key]:
      raise NSTError(f"{param(key)} does not apply to the {name} style "
                     f"representation (it reads "
                     f"{', '.join(map(param, reads)) or 'no parameter'})")
  if windows != (0,) and "local_window" not in reads:
    raise NSTError(f"{param('local_window')} does not apply to the {name} "
                   "style representation")
  make = lambda v: entry.cls(**{field: v[flag] for field, flag in entry.flags})
  if len(windows) == 1:
    return make(values)
  if len(windows) != len(style_layers):
    raise NSTError(f"{param('local_window')} must be one integer >= 0 or one "
                   f"per style layer ({len(style_layers)}), got "
                   f"{','.join(map(str, windows))}")
  return {layer: make({**values, "local_window": w})
          for layer, w in zip(style_layers, windows)}


# --- the built-in representations ----------------------------------------------


def _check_normalization(owner: str, normalization: str) -> None:
  check_choice(f"{owner}.normalization", normalization, NORMALIZATIONS)


def _stack_like(value: jax.Array, target: jax.Array) -> jax.Array:
  """The generated image's statistic broadcast over the target's ``S``."""
  return jnp.broadcast_to(value, target.shape)


@register(name="gram", flags={"normalization": "gram_normalization"})
@dataclasses.dataclass(frozen=True)
class Gram(PositionAveraged, Averageable):
  """Gram matrix of the channels (Gatys, Ecker & Bethge 2016, eqs. 3-5).

  Statistic: ``Ĝ = FᵀF / M`` ``(C, C)`` (``statistics.gram_matrix``; a
  position average). Loss ``Σ(Ĝ−Â)²/(4C²)`` (``"paper"``, eq. 4) or
  ``Σ(Ĝ−Â)²/C²`` (``"notes"``, seed 000): ``losses.gram_loss``.
  """
  normalization: str = "paper"
  same_size = False

  def __post_init__(self):
    _check_normalization("Gram", self.normalization)

  def statistic(self, features):
    return statistics.gram_matrix(features)

  def target(self, stacked):
    return stacked

  def position_sums(self, features, weights):
    return _weighted_gram(features, weights)

  def loss_from_statistic(self, statistic, target):
    return losses.gram_loss(_stack_like(statistic, target), target,
                            normalization=self.normalization)


@register(name="spatial", flags={"normalization": "gram_normalization"})
@dataclasses.dataclass(frozen=True)
class Spatial(Averageable):
  """Per-channel spatial autocorrelation (Nikulin & Novak §7, seed 001).

  Statistic ``(C, 2H−1, 2W−1)`` (``statistics.spatial_autocorrelation``),
  compared position by position: the style image must have the content's
  size. Loss ``losses.spatial_loss``.
  """
  normalization: str = "paper"
  same_size = True

  def __post_init__(self):
    _check_normalization("Spatial", self.normalization)

  def statistic(self, features):
    return statistics.spatial_autocorrelation(features)

  def target(self, stacked):
    return stacked

  def loss(self, features, target):
    corr = _stack_like(statistics.spatial_autocorrelation(features), target)
    return losses.spatial_loss(corr, target, normalization=self.normalization)


@register(name="local", flags={"window": "local_window",
                             "normalization": "gram_normalization"})
@dataclasses.dataclass(frozen=True)
class Local(Representation):
  """Windowed Grams compared position by position (Nikulin & Novak §9).

  ``window`` ``s`` is the half-width of the window (0: pointwise products).
  The statistic is the style's features themselves (the windowed Grams are
  never materialised; ``losses.local_gram_loss``), so crops cannot be
  averaged and the style must have the content's size.
  """
  window: int = 0
  normalization: str = "paper"
  same_size = True

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


@register(name="eigen", flags={"rank": "style_rank", "loss_kind": "eigen_loss",
                             "normalization": "gram_normalization"})
@dataclasses.dataclass(frozen=True)
class Eigen(PositionAveraged, Averageable):
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


@register(name="moments")
@dataclasses.dataclass(frozen=True)
class Moments(PositionAveraged, Averageable):
  """Per-channel mean and standard deviation (thesis, seed 002).

  Statistic: the raw moments ``E[F]``, ``E[F²]`` (position averages); target
  ``(S, 2, C)`` by ``statistics.moments_from_raw`` — the same function (and
  constant) ``statistics.channel_moments`` uses for the generated image.
  Loss ``losses.moments_loss`` (of ``statistics.moments_from_raw`` of the
  generated image's raw moments, as ``statistics.channel_moments``).
  """
  same_size = False

  def statistic(self, features):
    return {"mean": jnp.mean(features, axis=(0, 1)),
            "square": jnp.mean(jnp.square(features), axis=(0, 1))}

  def target(self, stacked):
    return statistics.moments_from_raw(stacked["mean"], stacked["square"])

  def position_sums(self, features, weights):
    w = weights[..., None]
    return {"mean": jnp.sum(w * features, axis=(0, 1)),
            "square": jnp.sum(w * jnp.square(features), axis=(0, 1))}

  def loss_from_statistic(self, statistic, target):
    moments = statistics.moments_from_raw(statistic["mean"],
                                          statistic["square"])
    return losses.moments_loss(_stack_like(moments, target), target)


@register(name="covariance")
@dataclasses.dataclass(frozen=True)
class Covariance(PositionAveraged, Averageable):
  """Mean and covariance, compared as Gaussians by the 2-Wasserstein
  distance (thesis, seed 002; ``losses.gaussian_w2_loss``).

  Statistic: the mean and the location-averaged Gram (position averages);
  the target holds the mean and the square root of the covariance
  (``statistics.covariance_from_gram``, ``statistics.sqrtm_psd``); the
  generated image's covariance comes from its mean and Gram the same way
  (as ``statistics.channel_mean_covariance``).
  """
  same_size = False

  def statistic(self, features):
    return {"mean": jnp.mean(features, axis=(0, 1)),
            "gram": statistics.gram_matrix(features)}

  def target(self, stacked):
    cov = statistics.covariance_from_gram(stacked["mean"], stacked["gram"])
    return {"mean": stacked["mean"], "cov_sqrt": statistics.sqrtm_psd(cov)}

  def position_sums(self, features, weights):
    return {"mean": jnp.sum(weights[..., None] * features, axis=(0, 1)),
            "gram": _weighted_gram(features, weights)}

  def loss_from_statistic(self, statistic, target):
    mean = statistic["mean"]
    cov = statistics.covariance_from_gram(mean, statistic["gram"])
    tm, tc = target["mean"], target["cov_sqrt"]
    return losses.gaussian_w2_loss(_stack_like(mean, tm), _stack_like(cov, tc),
                                   tm, tc)


# β matching the Gram's initial style loss at its β (×1.5): the loss at the
# content image is 0.51-0.92x the Gram's over five paintings (256 px, VGG-16,
# 2026-11-30; geometric mean 0.65).
@register(name="swd", style_weight=1.5 * STYLE_WEIGHT,
          flags={"directions": "swd_directions", "samples": "swd_samples",
                 "seed": "seed", "redraw_every": "swd_redraw_every"})
@dataclasses.dataclass(frozen=True)
class SlicedWasserstein(Redrawn):
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


# β matching the Gram's initial style loss at its β (×1.8): the loss at the
# content image is 0.36-0.81x the Gram's over five paintings (256 px, VGG-16,
# 2026-11-30; geometric mean 0.54).
@register(name="cmd", style_weight=1.8 * STYLE_WEIGHT,
          flags={"order": "cmd_order"})
@dataclasses.dataclass(frozen=True)
class CentralMoments(PositionAveraged, Averageable):
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
    # Overrides the derived loss: the centred moments directly, more accurate
    # in float32 than the binomial route of ``loss_from_statistic`` (equal to
    # ~1e-6).
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


# --- helpers ---------------------------------------------------------------


def _weighted_gram(features, weights):
  """``Σ_p w_p f_p f_pᵀ`` ``(C, C)`` of features ``(H, W, C)`` and position
  weights ``(H, W)``: the Gram's position sum (``statistics.gram_matrix`` is
  it over ``M`` with unit weights)."""
  h, w, c = features.shape
  flat = features.reshape(h * w, c)
  return jnp.einsum("mi,mj->ij", flat * weights.reshape(h * w, 1), flat,
                    precision=_HIGHEST)


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
