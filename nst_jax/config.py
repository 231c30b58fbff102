"""Configuration: everything that defines a run besides the images and the
weights, as one composed, hashable value (``TransferConfig``), and the checks
that refuse a configuration no run could use before any work.

The parts each hold their own fields once (flax's composed configs): the
network and the objective's ``Spec``, the loss weights, the solver, the
starting image, colour control, style patches, the convolution algorithm,
the evaluation plan (``tile_size``, ``image_devices``) and the coarse-to-fine
``Schedule`` (levels, iterations per level, ``pyramid_base``,
``style_scale``). Commands read their flag defaults from these dataclasses;
the problem layer (``nst_jax.problem``) turns a configuration and images into
what a run minimises, and the run loop (``nst_jax.run``) minimises it.
"""

import dataclasses
from typing import List, Sequence, Tuple

import jax
import numpy as np

from nst_jax.color import ColorControl as _ColorControl
from nst_jax import io
from nst_jax import memory
from nst_jax import networks
from nst_jax import objective
from nst_jax import solvers
from nst_jax import tiling
from nst_jax import vgg
from nst_jax.errors import NSTError, check_choice, param

def style_size(size: int, style_scale: float) -> int:
  """The long edge of the style images for a ``size`` px output: ``size ·
  style_scale`` (jcjohnson/neural-style's ``-style_scale``: below 1 the
  style's brush strokes and motifs come out larger relative to the picture,
  above 1 smaller)."""
  if not (style_scale > 0 and np.isfinite(style_scale)):
    raise NSTError(f"{param('style_scale')} must be a positive number, got "
                   f"{style_scale}")
  return max(1, int(round(size * style_scale)))


# The default pyramid (``pyramid``): levels down to this long edge. 256 px
# is the size the default style weight was calibrated at (docs/benchmarks.md,
# issue 12); a larger output painted at one scale gets finer strokes and none
# of the painting's large structures (VGG's receptive fields cover less of
# it), so it starts from the 256 px result instead.
PYRAMID_BASE = 256
# Iterations of every level after the first, as a fraction of the first's:
# measured on The Scream at 512 px (docs/benchmarks.md), 500 + 100 kept the
# 256 px look better than 300 + 200 (style SWD at 256 px 0.162 against
# 0.172; one level of 500: 0.219) at less than half one level's cost.
PYRAMID_FINE_FRACTION = 0.2
# The weight of the coarse view at every level after the first
# (``objective.coarse_view_loss``: the first level's objective at the image
# seen at the first level's size), relative to the level's own objective.
# Measured on eight paintings at 256, 512 and 1024 px
# (docs/benchmarks/quality.md, issue 26, item 6).
COARSE_WEIGHT = 1.0


def pyramid(size: int, iterations: int, base: int = PYRAMID_BASE
            ) -> Tuple[List[int], List[int]]:
  """``(scales, scale_iterations)`` of the default coarse-to-fine run for an
  output long edge ``size`` and ``iterations``: ``size`` halved while the
  half is at least ``base`` (512 → 256, 512; 1000 → 250, 500, 1000 with
  ``base=200``), the coarsest level ``iterations`` and each finer one
  ``PYRAMID_FINE_FRACTION`` of them (at least 1): a finer level starts from the upsampled result and only adds detail.
  ``base`` 0, ``size`` below ``2·base`` or no iterations give one level:
  ``([size], [iterations])``."""
  size, iterations, base = int(size), int(iterations), int(base)
  if size < 1 or base < 0:
    raise NSTError(f"pyramid: size {size} and base {base} must be positive")
  scales = [size]
  while base > 0 and iterations > 0 and scales[0] // 2 >= base:
    scales.insert(0, scales[0] // 2)
  fine = max(1, int(round(iterations * PYRAMID_FINE_FRACTION)))
  return scales, [iterations] + [fine] * (len(scales) - 1)



INITS = ("content", "style", "noise")


@dataclasses.dataclass(frozen=True)
class Init:
  """The starting image (Nikulin & Novak §4): ``"content"``, ``"style"``
  (the first style image resized) or ``"noise"`` (uniform, drawn from
  ``jax.random.key(seed)``). ``seed`` also seeds the style patches."""
  kind: str = "content"
  seed: int = 0


@dataclasses.dataclass(frozen=True)
class StylePatches:
  """Style targets from ``count`` seeded random ``size × size`` crops of each
  style image (0: the whole image), averaged into one target (``"mean"``)
  or kept as ``count`` styles of weight ``1/count`` (``"instances"``): the
  thesis's style patches (seed 002)."""
  count: int = 0
  size: int = 128
  mode: str = "mean"


@dataclasses.dataclass(frozen=True)
class Schedule:
  """Coarse to fine: the image pyramid of the peers (jcjohnson/neural-style's
  multires recipe, pystiche's ``ImagePyramid``), as configuration.

  * ``scales`` — the levels' long edges, increasing; the last is the output
    size (``None``: the default pyramid of the output size, ``pyramid``);
  * ``scale_iterations`` — iterations of each level (``None``: with
    ``scales``, ``solver.maxiter`` at every level; the default pyramid gives
    the first level ``solver.maxiter`` and each finer one
    ``PYRAMID_FINE_FRACTION`` of them);
  * ``pyramid_base`` — the default pyramid halves the output size down to
    this long edge (0: one level);
  * ``style_scale`` — the style images' long edge relative to each level's
    (``style_size``);
  * ``coarse_weight`` — at every level after the first, the first level's
    objective at the image seen at the first level's size
    (``objective.coarse_view_loss``) is added with this weight, so that a
    large result seen small keeps the first level's look (0: off; default
    ``COARSE_WEIGHT``, measured).

  ``levels(size, iterations)`` gives the ``(long edge, iterations)`` of each
  level for an output long edge ``size``; every driver (one image, folders,
  grids, video) paints through the same levels.
  """
  scales: Tuple[int, ...] | None = None
  scale_iterations: Tuple[int, ...] | None = None
  pyramid_base: int = PYRAMID_BASE
  style_scale: float = 1.0
  coarse_weight: float = COARSE_WEIGHT

  def check(self) -> None:
    """Raises ``NSTError`` for levels no run could use."""
    if self.scales is not None:
      scales = [int(s) for s in self.scales]
      if not scales or min(scales) < 1:
        raise NSTError(f"{param('scales')} must be positive long edges, got "
                       f"{scales}")
      if scales != sorted(scales):
        raise NSTError(f"{param('scales')} must increase (coarse to fine), "
                       f"got {scales}")
    if self.scale_iterations is not None:
      if self.scales is None:
        raise NSTError(f"{param('scale_iterations')} needs "
                       f"{param('scales')}")
      if len(self.scale_iterations) != len(self.scales):
        raise NSTError(f"got {len(self.scale_iterations)} iteration counts "
                       f"for {len(self.scales)} scales")
      if min(int(n) for n in self.scale_iterations) < 0:
        raise NSTError(f"{param('scale_iterations')} must be >= 0, got "
                       f"{list(self.scale_iterations)}")
    if int(self.pyramid_base) < 0:
      raise NSTError(f"{param('pyramid_base')} must be >= 0, got "
                     f"{self.pyramid_base}")
    style_size(1, self.style_scale)
    if not (self.coarse_weight >= 0 and np.isfinite(self.coarse_weight)):
      raise NSTError(f"{param('coarse_weight')} must be a finite number >= 0,"
                     f" got {self.coarse_weight}")

  def levels(self, size: int, iterations: int) -> List[Tuple[int, int]]:
    """``[(long edge, iterations)]`` of every level, coarse to fine, for an
    output long edge ``size`` (ignored with explicit ``scales``, whose last
    is the output) and ``iterations`` (``solver.maxiter``)."""
    self.check()
    if self.scales is not None:
      counts = (self.scale_iterations if self.scale_iterations is not None
                else [iterations] * len(self.scales))
      return [(int(s), int(n)) for s, n in zip(self.scales, counts)]
    scales, counts = pyramid(size, iterations, self.pyramid_base)
    return list(zip(scales, counts))


@dataclasses.dataclass(frozen=True)
class TransferConfig:
  """Everything that defines a run besides the images and the weights,
  composed of parts that each hold their own fields once:

  * ``network`` and ``spec`` (``objective.Spec``: layers, pooling, style
    representation, precision, gradient checkpointing; ``None`` takes the
    network's default layers — Gatys et al. 2016: relu4_2; relu1_1 …
    relu5_1 — with the ``Gram`` representation);
  * ``weights`` (``objective.LossWeights``: α, β, γ, per-layer and blend
    weights). The default β = 800 at α = 1 (``losses.DEFAULT_STYLE_WEIGHT``)
    was chosen by measurement against the Lua implementation's published
    pictures (docs/benchmarks.md) for the torchvision weights and the
    size-invariant content term (``objective.Spec.size_invariant``); the
    paper's α/β = 1e-3…1e-4 refers to Caffe's 0-255 input and summed
    content term;
  * ``solver`` (``solvers.SolverConfig``: method, iterations, step size,
    L-BFGS memory); ``init`` (``Init``); ``color``
    (``color.ColorControl``); ``patches`` (``StylePatches``);
  * ``conv``, the convolution algorithm (``vgg.CONV_ALGORITHMS``);
  * ``tile_size``: the exact tiled objective (``nst_jax.tiling``) with tile
    interiors of that many pixels, 0 untiled, ``"auto"`` untiled when the
    memory estimate fits the device and tiled otherwise (``tile_size_for``);
  * ``memory_budget``: what ``"auto"`` fits in (``memory.budget_bytes``:
    ``"8GB"`` or bytes; None: the device's memory less a margin);
  * ``image_devices``: the image's rows sharded over that many local devices
    (``"all"``: every one), XLA partitioning the network
    (``problem.image_mesh``);
  * ``schedule`` (``Schedule``): the coarse-to-fine levels every driver
    paints through.

  Change one field of a part with ``config.replace(solver=dict(maxiter=10))``.
  """
  network: str = "vgg16"
  spec: objective.Spec | None = None
  weights: objective.LossWeights = objective.LossWeights()
  solver: solvers.SolverConfig = solvers.SolverConfig()
  init: Init = Init()
  color: _ColorControl = _ColorControl()
  patches: StylePatches = StylePatches()
  conv: str = "auto"
  tile_size: int | str = "auto"
  image_devices: int | str = 1
  schedule: Schedule = Schedule()
  memory_budget: int | str | None = None

  def objective_spec(self) -> objective.Spec:
    """``spec``, or the network's default layers with the Gram style."""
    if self.spec is not None:
      return self.spec
    return objective.Spec(networks.DEFAULT_CONTENT_LAYERS[self.network],
                          networks.DEFAULT_STYLE_LAYERS[self.network])

  def replace(self, **parts) -> "TransferConfig":
    """A copy with parts replaced: a part given as a dict changes only those
    fields of it (``replace(solver=dict(maxiter=10), conv="direct")``)."""
    changes = {}
    for name, value in parts.items():
      if isinstance(value, dict):
        current = (self.objective_spec() if name == "spec"
                   else getattr(self, name))
        value = dataclasses.replace(current, **value)
      changes[name] = value
    return dataclasses.replace(self, **changes)


def check_config(config: TransferConfig) -> None:
  """Raises ``NSTError`` for a configuration no run could use."""
  check_choice("network", config.network, networks.NETWORKS)
  check_choice("solver.method", config.solver.method, solvers.METHODS)
  check_choice("init.kind", config.init.kind, INITS)
  if config.solver.maxiter < 0:
    raise NSTError(f"{param('solver.maxiter')} must be >= 0, got "
                   f"{config.solver.maxiter}")
  if not config.solver.learning_rate > 0:
    raise NSTError(f"{param('solver.learning_rate')} must be > 0, got "
                   f"{config.solver.learning_rate}")
  if config.solver.history_size < 1:
    raise NSTError(f"{param('solver.history_size')} must be >= 1, got "
                   f"{config.solver.history_size}")
  check_choice("conv", config.conv, vgg.CONV_ALGORITHMS)
  objective.check_spec(config.objective_spec(), config.network)
  if config.patches.count < 0 or config.patches.size < 1:
    raise NSTError(f"{param('patches.count')} must be >= 0 and "
                   f"{param('patches.size')} >= 1, got {config.patches.count} "
                   f"and {config.patches.size}")
  check_choice("patches.mode", config.patches.mode, objective.PATCH_MODES)
  if config.memory_budget is not None:
    memory.parse_bytes(config.memory_budget)
  if tiling.parse_tile_size(config.tile_size) not in (0, "auto"):
    tiling.check_tileable(config.objective_spec())
  image_device_count(config)
  config.color.check()
  config.schedule.check()


def check_image_size(config: TransferConfig, shape: Tuple[int, int]) -> None:
  """Refuses images too small to reach the deepest layer (without computing)."""
  objective.check_image_size(config.network, config.objective_spec(), shape)


def check_style_sizes(config: TransferConfig, shapes: Sequence[Tuple[int, int]],
                      size: int, names: Sequence[str]) -> None:
  """Refuses (``NSTError``, before any work) a style image of ``shapes``
  ``(H, W)`` that at ``size`` px on its long edge (``style_size`` of the
  run's) is too small for the style layers; ``names`` name them (paths)."""
  for name, shape in zip(names, shapes):
    style_shape = io.long_edge_shape(tuple(shape[:2]), size)
    try:
      check_image_size(config, style_shape)
    except NSTError:
      raise NSTError(f"style image {name} at {style_shape[1]}x"
                     f"{style_shape[0]} ({param('style_scale')}="
                     f"{config.schedule.style_scale}) is too small for the "
                     f"style layers: raise {param('style_scale')} or "
                     f"{param('size')}") from None


def image_device_count(config: TransferConfig) -> int:
  """The number of devices ``config.image_devices`` names (``"all"``: every
  device, of every process after ``jax.distributed.initialize``); raises
  ``NSTError`` for more than there are."""
  value, have = config.image_devices, jax.device_count()
  if isinstance(value, str) and value.strip().lower() == "all":
    return have
  try:
    count = int(value)
  except (TypeError, ValueError):
    raise NSTError(f"{param('image_devices')} must be a number or 'all', got "
                   f"{value!r}") from None
  if not 1 <= count <= have:
    raise NSTError(f"{param('image_devices')} must be between 1 and the "
                   f"{have} device(s), got {count}")
  return count
