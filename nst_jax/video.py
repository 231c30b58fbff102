"""Video style transfer with temporal consistency (Ruder, Dosovitskiy & Brox,
"Artistic style transfer for videos", GCPR 2016).

Each frame is stylised by the usual objective (``nst_jax.objective``) plus a
temporal term that penalises, outside occlusions and motion boundaries, the
difference to the previous stylised frame warped into the current one by the
optical flow; each frame starts from that warped frame. The pieces are pure
functions that research code can import:

* ``warp`` — bilinear backward warping by a flow field;
* ``frame_start`` — a frame's start image: the previous stylised frame
  warped, the configured init where the flow leaves the frame;
* ``consistency_mask`` — the forward–backward consistency check (their eq.
  5–6: disocclusions and motion boundaries get weight 0);
* ``long_term_weights`` — the long-term weights ``c_long`` (their §4.2);
* ``temporal_loss`` — their eq. 7 (short-term) and eq. 9 (long-term);
* ``loss_terms`` / ``objective_function`` — ``objective.loss_terms`` plus
  the weighted temporal term (the objective itself is not copied);
* ``temporal_error`` / ``temporal_errors`` — the consistency metric: the
  mean absolute difference between consecutive stylised frames after
  warping, outside occlusions (Ruder et al. §6.1 measure it on Sintel);
* ``stylize_video`` — the frame loop.

Optical flow comes from OpenCV (``DISFlow``, ``FarnebackFlow``: values with
one method, chosen by passing one); decoding and encoding are in
``nst_jax.video_io``.

Array contract: frames are float32 ``(H, W, 3)`` RGB in [0, 1]; a flow is
float32 ``(H, W, 2)`` in pixels, ``(dx, dy)`` per pixel, and "the flow from
frame a to frame b" is the field ``w`` with ``a(p) ≈ b(p + w(p))`` (OpenCV's
convention: ``calc(a, b)``), so ``warp(b, w)`` brings ``b`` into ``a``'s
pixel grid. Masks and weights are float32 ``(H, W)`` in [0, 1].
"""

import dataclasses
import functools
import time
from typing import Any, Callable, Dict, List, NamedTuple, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import io
from nst_jax import memory
from nst_jax import objective
from nst_jax import problem
from nst_jax import run
from nst_jax import solvers
from nst_jax import transfer
from nst_jax import vgg
from nst_jax.errors import NSTError, check_choice, param


# ---------------------------------------------------------------------------
# Warping, occlusions, the temporal loss.


def _check_flow(image_shape, flow) -> None:
  if flow.ndim != 3 or flow.shape[-1] != 2 or tuple(
      flow.shape[:2]) != tuple(image_shape[:2]):
    raise ValueError(f"a flow for an image of shape {tuple(image_shape)} must "
                     f"be (H, W, 2) = {tuple(image_shape[:2]) + (2,)}, got "
                     f"{tuple(flow.shape)}")


def sample_coordinates(flow: jax.Array) -> Tuple[jax.Array, jax.Array]:
  """``(x, y)`` = pixel grid + ``flow`` ``(H, W, 2)``: where each pixel of
  the first frame lands in the second; two ``(H, W)`` float32 arrays."""
  h, w = flow.shape[:2]
  ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32),
                        jnp.arange(w, dtype=jnp.float32), indexing="ij")
  return xs + flow[..., 0], ys + flow[..., 1]


@jax.jit
def warp(image: jax.Array, flow: jax.Array) -> jax.Array:
  """Backward warping: ``out(p) = image(p + flow(p))``, bilinear.

  ``image`` is ``(H, W, C)`` (any C: a frame, or a flow field itself),
  ``flow`` ``(H, W, 2)`` in pixels ``(dx, dy)``; returns ``(H, W, C)``
  float32. Coordinates outside the image are clamped to its border (edge
  replication; OpenCV's ``remap`` with ``INTER_LINEAR`` and
  ``BORDER_REPLICATE`` computes the same). Ruder et al. §3: the previous
  stylised frame ``x_{i-1}`` warped by the flow from frame ``i`` to ``i-1``
  is ``ω_{i-1→i}(x_{i-1})``.
  """
  _check_flow(image.shape, flow)
  image = jnp.asarray(image, jnp.float32)
  h, w = image.shape[:2]
  x, y = sample_coordinates(flow)
  x = jnp.clip(x, 0.0, w - 1.0)
  y = jnp.clip(y, 0.0, h - 1.0)
  x0 = jnp.clip(jnp.floor(x), 0, w - 1).astype(jnp.int32)
  y0 = jnp.clip(jnp.floor(y), 0, h - 1).astype(jnp.int32)
  x1 = jnp.minimum(x0 + 1, w - 1)
  y1 = jnp.minimum(y0 + 1, h - 1)
  fx = (x - x0)[..., None]
  fy = (y - y0)[..., None]
  top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
  bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
  return top * (1 - fy) + bottom * fy


def in_frame(flow: jax.Array, margin: float = 0.0) -> jax.Array:
  """``(H, W)`` float32: 1 where ``p + flow(p)`` lies inside the frame
  (``[0, W-1] × [0, H-1]``, pixel centres; widened by ``margin`` pixels on
  each side), 0 where the pixel comes from outside it."""
  h, w = flow.shape[:2]
  x, y = sample_coordinates(flow)
  inside = ((x >= -margin) & (x <= w - 1 + margin) & (y >= -margin) &
            (y <= h - 1 + margin))
  return inside.astype(jnp.float32)


@jax.jit
def frame_start(init: jax.Array, previous: jax.Array | None = None,
                flow: jax.Array | None = None) -> jax.Array:
  """The image a frame's optimisation starts from: the previous stylised
  frame warped into this one where the flow finds it, ``init`` elsewhere.

  ``init`` ``(H, W, 3)`` is the frame's configured start
  (``transfer.initial_image``: the content frame by default), ``previous``
  the stylised frame before ``(H, W, 3)`` in [0, 1] and ``flow`` the flow
  from this frame to it ``(H, W, 2)``; without them (the first frame, or no
  warm start) the result is ``init``. Returns ``(H, W, 3)`` float32:

    ``x0(p) = clip(ω(x_{i-1})(p), 0, 1)``  where ``p + flow(p)`` lies in
    the previous frame's area (``in_frame`` with a margin of half a pixel:
    the edge pixels' own footprint), ``init(p)`` where it does not.

  Ruder et al. (§3, "prev-warped") start frame ``i`` from ``ω(x_{i-1})``,
  which is undefined where the flow leaves the frame; their code
  (artistic-videos, ``warpImage``) fills those pixels with the VGG mean
  pixel rather than warped values. ``warp`` clamps to the border there, so
  a pan's uncovered strip would start as the edge column smeared into
  streaks, which the temporal loss (weight 0 there, 1 once warped inside)
  locks in from the next frame on (issue 22). Such pixels have no previous
  stylised value, so they start like a first frame does, from the
  configured init; the optimisation repaints them from there. Disocclusions
  inside the frame keep the warped value, as in the paper: it is stylised
  texture, and the temporal loss leaves it free (``consistency_mask``).
  """
  init = jnp.asarray(init, jnp.float32)
  if previous is None or flow is None:
    return init
  warped = jnp.clip(warp(previous, flow), 0.0, 1.0)
  inside = in_frame(flow, margin=0.5)[..., None] > 0
  return jnp.where(inside, warped, init)


@jax.jit
def consistency_mask(forward: jax.Array, backward: jax.Array) -> jax.Array:
  """Ruder et al.'s per-pixel weights ``c`` of the temporal loss: 0 at
  disocclusions and motion boundaries, 1 elsewhere (§3, eq. 5–6, after
  Sundaram, Brox & Keutzer 2010).

  ``forward`` ``w`` is the flow from the previous frame to the current one
  (in the previous frame's grid), ``backward`` ``ŵ`` the flow from the
  current frame to the previous one (in the current grid), both ``(H, W,
  2)``. With ``w̃(p) = w(p + ŵ(p))`` (the forward flow warped into the
  current frame), a pixel is disoccluded where

    ``|w̃ + ŵ|² > 0.01 (|w̃|² + |ŵ|²) + 0.5``   (eq. 5)

  and on a motion boundary where

    ``|∇û|² + |∇v̂|² > 0.01 |ŵ|² + 0.002``   (eq. 6)

  (``û, v̂`` the components of ``ŵ``; central differences). Pixels whose
  ``p + ŵ(p)`` leaves the frame have no previous pixel and get 0 as well.
  Returns ``(H, W)`` float32 in {0, 1}.
  """
  _check_flow(backward.shape, forward)
  _check_flow(forward.shape, backward)
  forward = jnp.asarray(forward, jnp.float32)
  backward = jnp.asarray(backward, jnp.float32)
  warped = warp(forward, backward)
  sq = lambda v: jnp.sum(jnp.square(v), axis=-1)
  disoccluded = sq(warped + backward) > 0.01 * (sq(warped) +
                                                sq(backward)) + 0.5
  grad_sq = 0.0
  for c in range(2):
    gy, gx = jnp.gradient(backward[..., c])
    grad_sq = grad_sq + gx ** 2 + gy ** 2
  boundary = grad_sq > 0.01 * sq(backward) + 0.002
  keep = ~(disoccluded | boundary)
  return keep.astype(jnp.float32) * in_frame(backward)


def long_term_weights(masks: jax.Array) -> jax.Array:
  """The long-term weights ``c_long`` (Ruder et al. §4.2): ``masks`` ``(K,
  H, W)`` are the consistency weights ``c^{(i-j, i)}`` of the frames ``j ∈
  J`` back, nearest first; frame ``i - j`` counts only where no nearer
  frame of ``J`` is valid:

    ``c_long^{(i-j, i)} = max(c^{(i-j, i)} − Σ_{k ∈ J, k < j} c^{(i-k, i)}, 0)``.

  Returns ``(K, H, W)`` float32 in [0, 1] (the first equals ``masks[0]``).
  """
  masks = jnp.asarray(masks, jnp.float32)
  before = jnp.cumsum(masks, axis=0) - masks
  return jnp.maximum(masks - before, 0.0)


def temporal_loss(image: jax.Array, warped: jax.Array,
                  weights: jax.Array) -> jax.Array:
  """Ruder et al.'s temporal loss (eq. 7; summed over ``J``, eq. 9):

    ``L = Σ_j (1/D) Σ_k c_k^{(j)} (x_k − ω_k^{(j)})²``,   ``D = H·W·3``.

  ``image`` ``x`` is ``(H, W, 3)``, ``warped`` ``ω`` the ``K`` previous
  stylised frames warped into it ``(K, H, W, 3)``, ``weights`` ``c`` ``(K,
  H, W)`` (``consistency_mask``, or ``long_term_weights`` of several);
  returns a float32 scalar. Pixels in [0, 1] (the paper's are 0-255, so the
  weight that balances it differs).
  """
  image = jnp.asarray(image, jnp.float32)
  if warped.ndim != 4 or warped.shape[1:] != image.shape or (
      weights.shape != warped.shape[:3]):
    raise ValueError(f"temporal loss of an image {tuple(image.shape)} needs "
                     f"warped frames (K, H, W, 3) and weights (K, H, W), got "
                     f"{tuple(warped.shape)} and {tuple(weights.shape)}")
  d = image.size
  diff = jnp.square(image[None] - warped) * weights[..., None]
  return jnp.sum(diff) / d


class TemporalTargets(NamedTuple):
  """The data of one frame's temporal term: the ``K`` previous stylised
  frames warped into this one ``(K, H, W, 3)``, their weights ``(K, H, W)``
  and the term's weight ``λ`` (a float32 scalar). A pytree: a new frame
  changes only data, never the compiled program."""
  warped: jax.Array
  weights: jax.Array
  weight: jax.Array


def no_temporal_targets(shape: Tuple[int, int, int],
                        count: int = 1) -> TemporalTargets:
  """Zero temporal data of ``count`` frames for an image ``shape`` (the
  first frame, or independent frames: same program, no term)."""
  k = max(int(count), 1)
  return TemporalTargets(jnp.zeros((k, *shape), jnp.float32),
                         jnp.zeros((k, *shape[:2]), jnp.float32),
                         jnp.float32(0.0))


def temporal_term(image: jax.Array, temporal: TemporalTargets) -> jax.Array:
  """``λ · temporal_loss(image, warped, weights)``: the weighted temporal
  term of one frame (Ruder et al. eq. 3's ``γ L_temporal``), a scalar."""
  return temporal.weight * temporal_loss(image, temporal.warped,
                                         temporal.weights)


# The temporal term as an extra term of the objective (``problem.Term``):
# the video frames go through the one run loop, untiled, tiled or
# row-sharded like any run, with this term added to the total.
TEMPORAL = problem.Term("temporal", temporal_term)


def loss_terms(params, image: jax.Array, targets: objective.Targets,
               weights: objective.Weights, temporal: TemporalTargets,
               spec: objective.Spec) -> Dict[str, jax.Array]:
  """``objective.loss_terms`` plus ``temporal = λ · temporal_loss`` (Ruder
  et al. eq. 3: ``L = α L_content + β L_style + γ L_temporal``, our tv term
  kept); ``total`` includes it."""
  terms = dict(objective.loss_terms(params, image, targets, weights, spec))
  terms["temporal"] = temporal_term(image, temporal)
  terms["total"] = terms["total"] + terms["temporal"]
  return terms


@functools.lru_cache(maxsize=None)
def objective_function(spec: objective.Spec):
  """``f(image, params, targets, weights, temporal) -> (total, terms)``:
  the per-frame objective for ``spec`` (``objective.objective_function``
  with the temporal data as a fifth argument). Same ``spec``, same function
  object, so one compiled program serves every frame."""
  def frame_objective(image, params, targets, weights, temporal):
    terms = loss_terms(params, image, targets, weights, temporal, spec)
    return terms["total"], terms
  return frame_objective


# ---------------------------------------------------------------------------
# The consistency metric.


@jax.jit
def temporal_error(current: jax.Array, previous: jax.Array, flow: jax.Array,
                   mask: jax.Array) -> jax.Array:
  """Mean absolute difference between a stylised frame and the previous
  stylised frame warped into it, outside occlusions:

    ``E = Σ_p c(p) Σ_ch |x_i(p) − ω(x_{i-1})(p)| / (3 Σ_p c(p))``

  ``current``, ``previous`` ``(H, W, 3)`` in [0, 1]; ``flow`` the flow from
  the current frame to the previous one ``(H, W, 2)``; ``mask`` ``c`` its
  ``consistency_mask`` ``(H, W)``. Returns a float32 scalar in [0, 1] (0
  when the mask is empty). Ruder et al. (§6.1) report this kind of error on
  Sintel with the ground-truth flow; here the flow is the one the run used.
  """
  diff = jnp.abs(jnp.asarray(current, jnp.float32) -
                 warp(previous, flow)) * mask[..., None]
  return jnp.sum(diff) / jnp.maximum(3.0 * jnp.sum(mask), 1.0)


def temporal_errors(frames: Sequence[np.ndarray], flows: Sequence[np.ndarray],
                    masks: Sequence[np.ndarray]) -> np.ndarray:
  """``temporal_error`` of each pair of consecutive frames: ``flows[i]``
  and ``masks[i]`` go from frame ``i + 1`` to frame ``i`` (``len(frames) -
  1`` of each). Returns float64 ``(N - 1,)``; its mean is the video's
  error."""
  if not (len(flows) == len(masks) == max(len(frames) - 1, 0)):
    raise ValueError(f"{len(frames)} frames need {max(len(frames) - 1, 0)} "
                     f"flows and masks, got {len(flows)} and {len(masks)}")
  return np.array([float(temporal_error(frames[i + 1], frames[i], flows[i],
                                        masks[i]))
                   for i in range(len(flows))], np.float64)


# ---------------------------------------------------------------------------
# Optical flow (OpenCV).


def _gray8(frame) -> np.ndarray:
  frame = np.asarray(frame, np.float32)
  gray = frame @ np.array([0.299, 0.587, 0.114], np.float32)
  return np.rint(np.clip(gray, 0.0, 1.0) * 255.0).astype(np.uint8)


def _cv2():
  try:
    import cv2  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise NSTError("optical flow needs OpenCV: pip install "
                   "'nst_jax[video]' (opencv-python-headless)") from None
  return cv2


@dataclasses.dataclass(frozen=True)
class DISFlow:
  """OpenCV's Dense Inverse Search flow (Kroeger et al., ECCV 2016) on the
  frames' luma (8-bit): fast and good on large motions. ``preset`` is
  ``"ultrafast"``, ``"fast"`` or ``"medium"``. ``flow(a, b)`` returns the
  flow from ``a`` to ``b`` ``(H, W, 2)`` float32."""
  preset: str = "medium"

  def __call__(self, first, second) -> np.ndarray:
    cv2 = _cv2()
    presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
               "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
    check_choice("flow.preset", self.preset, presets)
    dis = cv2.DISOpticalFlow_create(presets[self.preset])
    return np.asarray(dis.calc(_gray8(first), _gray8(second), None),
                      np.float32)


@dataclasses.dataclass(frozen=True)
class FarnebackFlow:
  """OpenCV's Farnebäck polynomial-expansion flow (SCIA 2003) on the
  frames' luma (8-bit), with OpenCV's documented example parameters:
  pyramid scale 0.5, ``levels``, window ``window``, 3 iterations, poly_n 5,
  poly_sigma 1.2. ``flow(a, b)`` returns the flow from ``a`` to ``b``."""
  levels: int = 3
  window: int = 15

  def __call__(self, first, second) -> np.ndarray:
    cv2 = _cv2()
    return np.asarray(cv2.calcOpticalFlowFarneback(
        _gray8(first), _gray8(second), None, 0.5, self.levels, self.window,
        3, 5, 1.2, 0), np.float32)


FLOWS = {"dis": DISFlow(), "farneback": FarnebackFlow()}


# ---------------------------------------------------------------------------
# The frame loop.


@dataclasses.dataclass(frozen=True)
class Temporal:
  """How frames are tied together (Ruder et al.):

  * ``weight`` — ``λ`` of the temporal loss (0: none). Pixels are in [0, 1]
    and the loss is a mean, so like the size-invariant objective it does
    not change with the frame size; the default 1e6 is calibrated against
    the Gram's default ``β = 800`` (``losses.DEFAULT_STYLE_WEIGHT``; scale
    it with β): on a 64 px pan, 10 iterations a frame, it halves the
    temporal error left by the warm start alone for a 1.4× style term,
    4e6 divides it by 3 for 2.1× (docs/benchmarks.md).
  * ``offsets`` — the set ``J`` of previous frames the loss looks back to:
    ``(1,)`` is the short-term loss (eq. 7), e.g. ``(1, 2, 4)`` the
    long-term one (eq. 9, weights ``long_term_weights``).
  * ``warm_start`` — start each frame from the previous stylised frame
    warped into it (their "prev-warped" initialisation), else from
    ``config.init``.
  * ``first_iterations`` — iterations of the first frame (0: the solver's
    ``maxiter``; Ruder et al. give the first frame more).

  ``INDEPENDENT`` is per-frame stylisation without any of it.
  """
  weight: float = 1e6
  offsets: Tuple[int, ...] = (1,)
  warm_start: bool = True
  first_iterations: int = 0

  def check(self) -> None:
    if not (self.weight >= 0 and np.isfinite(self.weight)):
      raise NSTError(f"{param('temporal_weight')} must be a finite number "
                     f">= 0, got {self.weight}")
    offsets = tuple(self.offsets)
    if not offsets or min(offsets) < 1 or list(offsets) != sorted(
        set(offsets)):
      raise NSTError(f"{param('long_term')} must be increasing frame offsets "
                     f">= 1 (e.g. 1,2,4), got {list(offsets)}")
    if self.first_iterations < 0:
      raise NSTError(f"{param('first_iterations')} must be >= 0, got "
                     f"{self.first_iterations}")


INDEPENDENT = Temporal(weight=0.0, offsets=(1,), warm_start=False)


class FrameResult(NamedTuple):
  """One finished frame: its index, the stylised image ``(H, W, 3)`` in
  [0, 1] (8-bit values, as written), solver counts and stop reason, seconds
  (compilation included), the final loss terms (weighted, with
  ``temporal``), and — for every frame but the first — the flow to the
  previous frame ``(H, W, 2)``, its ``consistency_mask`` ``(H, W)`` and
  the ``temporal_error`` against the previous stylised frame."""
  index: int
  image: np.ndarray
  iterations: int
  function_evaluations: int
  status: str
  seconds: float
  terms: Dict[str, float]
  flow: np.ndarray | None
  mask: np.ndarray | None
  temporal_error: float | None


class VideoResult(NamedTuple):
  """The stylised frames done (previous ones given to ``stylize_video``
  included), the ``FrameResult`` of each frame this call stylised, and
  whether the loop was interrupted between two frames."""
  frames: List[np.ndarray]
  results: List[FrameResult]
  interrupted: bool


def quantize(image) -> np.ndarray:
  """``image`` rounded to 8 bits, as float32 in [0, 1]: what a PNG or a
  video frame keeps. Frames are carried on in this form, so a resumed run
  (previous frames read back from PNG) equals an uninterrupted one."""
  return np.rint(np.clip(np.asarray(image, np.float32), 0, 1) *
                 255.0).astype(np.float32) / 255.0


def frame_flows(frames: Sequence[np.ndarray], index: int,
                offsets: Sequence[int], flow: Callable) -> list:
  """``[(j, backward, forward)]`` for each ``j`` of ``offsets`` with a frame
  ``index - j``: the flow from frame ``index`` to ``index - j`` and back."""
  out = []
  for j in offsets:
    if index - j >= 0:
      a, b = frames[index], frames[index - j]
      out.append((j, flow(a, b), flow(b, a)))
  return out


def temporal_targets(frames_done: Sequence[np.ndarray], index: int,
                     flows: list, weight: float, count: int
                     ) -> Tuple[TemporalTargets, np.ndarray | None]:
  """The temporal data of frame ``index`` from the stylised frames before it
  and ``frame_flows``: each previous frame warped by the backward flow, the
  consistency masks turned into long-term weights; padded with zero weights
  to ``count`` frames (one program for every frame). Returns it and the
  mask of offset 1 (``None`` for the first frame)."""
  if not flows:
    return None, None
  warped, masks = [], []
  for j, backward, forward in flows:
    warped.append(warp(frames_done[index - j], backward))
    masks.append(consistency_mask(forward, backward))
  weights = long_term_weights(jnp.stack(masks))
  pad = count - len(flows)
  warped = jnp.stack(warped)
  if pad > 0:
    warped = jnp.concatenate([warped, jnp.zeros((pad, *warped.shape[1:]),
                                                jnp.float32)])
    weights = jnp.concatenate([weights, jnp.zeros((pad, *weights.shape[1:]),
                                                  jnp.float32)])
  first = np.asarray(masks[0]) if flows[0][0] == 1 else None
  return TemporalTargets(warped, weights, jnp.float32(weight)), first


def _check_frames(frames: Sequence[np.ndarray]) -> Tuple[int, int, int]:
  if not len(frames):
    raise NSTError("no frames to stylise")
  shape = np.shape(frames[0])
  if len(shape) != 3 or shape[2] != 3:
    raise ValueError(f"frames must be (H, W, 3), got {shape}")
  for i, f in enumerate(frames):
    if np.shape(f) != shape:
      raise NSTError(f"frame {i} has shape {np.shape(f)}, frame 0 {shape}: "
                     "every frame must have the same size")
  return shape


class _Level(NamedTuple):
  """One level of a frame: its long edge, iterations and ``(H, W)``."""
  size: int
  iterations: int
  shape: Tuple[int, int]


def _at(image: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
  """``image`` ``(H, W, 3)`` at ``shape`` (itself when it has it)."""
  if tuple(np.shape(image)[:2]) == tuple(shape):
    return np.asarray(image, np.float32)
  return io.resize_to(np.asarray(image, np.float32), shape)


def _temporal_at(data: TemporalTargets, shape: Tuple[int, int]
                 ) -> TemporalTargets:
  """A frame's temporal data at a level of ``shape`` ``(h, w)``: the warped
  previous frames resized like images (``io.resize_to``), their weights
  bilinearly (``jax.image.resize``); itself at the frame's own shape."""
  if tuple(data.warped.shape[1:3]) == tuple(shape):
    return data
  warped = jnp.stack([jnp.asarray(_at(np.asarray(w), shape))
                      for w in data.warped])
  weights = jnp.clip(jax.image.resize(
      data.weights, (data.weights.shape[0], *shape), "linear"), 0.0, 1.0)
  return TemporalTargets(warped, weights, data.weight)


def stylize_video(params, frames: Sequence[np.ndarray],
                  styles: Sequence[np.ndarray],
                  config: transfer.TransferConfig = transfer.TransferConfig(),
                  temporal: Temporal = Temporal(), *,
                  flow: Callable = DISFlow(),
                  previous: Sequence[np.ndarray] = (),
                  on_frame: Callable[[FrameResult], None] | None = None,
                  on_progress: Callable[[int, solvers.Progress], None] | None
                  = None,
                  should_stop: Callable[[], bool] | None = None,
                  progress_seconds: float = 2.0,
                  checkpoint_every: int = 0,
                  on_checkpoint: Callable[[int, run.RunState], None] | None
                  = None,
                  resume: run.RunState | None = None) -> VideoResult:
  """Stylises ``frames`` (each ``(H, W, 3)`` float32 in [0, 1], one shape)
  in the style of ``styles``, frame by frame (Ruder et al. §3–4).

  The style targets are computed once; each frame gets its own content
  targets. Frame ``i`` minimises the usual objective plus
  ``temporal.weight`` × the temporal loss against the stylised frames
  ``i - j`` (``j ∈ temporal.offsets``) warped into it by the flow from
  frame ``i`` to ``i - j`` (``flow(a, b)``, e.g. ``DISFlow()``, computed on
  the content frames), weighted by the forward–backward consistency masks
  (long-term weights when ``J`` has several offsets); it starts from the
  previous stylised frame warped (``temporal.warm_start``,
  ``frame_start``), the first frame from ``config.init``.

  Every frame is painted through the levels of ``config.schedule`` for the
  frames' long edge (``nst-stylize``'s: ``transfer.paint``): one level uses
  ``styles`` as given (``nst-stylize-video`` resizes them to the output's
  style size, ``transfer.style_size``); several resize them to each
  level's style size and paint each level from the previous one upsampled,
  the first from the start image resized (a frame without a warm start
  from ``config.init`` drawn at that level, so that the first frame equals
  ``transfer.paint`` of it), with the temporal data resized to every level.
  Every frame uses one compiled program per level (the first frame's first
  level another if ``temporal.first_iterations`` differs: those are its
  iterations).

  ``previous`` holds the stylised frames already done (a resumed run: the
  loop starts at frame ``len(previous)``). After each frame,
  ``on_frame(FrameResult)``; during one, ``on_progress(index, Progress)``
  about every ``progress_seconds``; ``should_stop()`` is asked between
  frames (a frame is always finished). Stylised frames are rounded to 8
  bits (``quantize``) before they are carried on.

  Each frame is a ``problem.Problem`` (the temporal term an extra
  ``problem.Term``) minimised by ``run.run_problem``, so a frame is
  evaluated untiled, tiled or row-sharded as ``config`` says, and
  checkpoints like any run: ``on_checkpoint(index, RunState)`` receives the
  running frame's state every ``checkpoint_every`` iterations of a level
  (with several levels its ``level`` and ``before``, the finished levels'
  counts, as ``transfer.stylize_multiscale``'s), and ``resume=`` such a
  state of frame ``len(previous)`` continues that frame at its level (with
  the same ``previous``) to the frame an uninterrupted run paints.

  Raises ``NSTError`` for a bad configuration or frames, and when a frame's
  loss becomes NaN or infinite.
  """
  transfer.check_config(config)
  temporal.check()
  shape = _check_frames(frames)
  if config.color.active:
    raise NSTError("colour control (original colours, colour transfer) is "
                   "not available for video")
  spec = config.objective_spec()
  if objective.redraw_every(spec) > 0:
    raise NSTError(f"representations that re-draw their targets "
                   f"({param('swd_redraw_every')}) are not available for "
                   "video")
  transfer.check_image_size(config, shape[:2])
  # The levels of config.schedule (nst-stylize's), and for each how its
  # frames are evaluated — untiled, tiled or row-sharded — decided once for
  # the clip.
  levels = [_Level(size, n, io.long_edge_shape(shape[:2], size))
            for size, n in config.schedule.levels(max(shape[:2]),
                                                  config.solver.maxiter)]
  if levels[-1].size != max(shape[:2]):
    raise NSTError(f"the last of {param('scales')} ({levels[-1].size}) must "
                   f"be the frames' long edge ({max(shape[:2])})")
  evs = [problem.evaluation(config, lv.shape) for lv in levels]
  for lv, ev in zip(levels, evs):
    transfer.check_image_size(config, lv.shape)
    memory.check_fits(ev.bytes, lv.shape)
  if len(levels) > 1:
    problem.check_coarse_view(config, levels[0].shape)
  if resume is not None and not 0 <= resume.level < len(levels):
    raise NSTError(f"the resumed state is at level {resume.level}, but a "
                   f"frame has {len(levels)} levels")
  if len(previous) > len(frames):
    raise NSTError(f"{len(previous)} frames done but the video has "
                   f"{len(frames)}")
  for f in previous:
    if np.shape(f) != shape:
      raise NSTError(f"a finished frame has shape {np.shape(f)}, the video "
                     f"{shape}: start again without resuming")
  params = vgg.prepare_params(params, config.conv, spec.layers)
  frames = [np.asarray(f, np.float32) for f in frames]
  styles = [np.asarray(s, np.float32) for s in styles]
  several = len(levels) > 1
  # Each level's styles (resized as stylize_multiscale does; one level uses
  # them as given) and their targets, computed once for the clip.
  level_styles = [[io.resize_long_edge(s, transfer.style_size(
      lv.size, config.schedule.style_scale)) for s in styles]
                  if several else styles for lv in levels]
  base_targets = [problem.style_targets(
      params, _at(frames[0], lv.shape), ls, config, ev=ev)
                  for lv, ls, ev in zip(levels, level_styles, evs)]
  offsets = tuple(temporal.offsets)
  count = len(offsets)
  done = [quantize(f) for f in previous]
  results: List[FrameResult] = []
  # The metric always compares with the frame before, also when the loss
  # looks further back or not at all.
  metric_offsets = tuple(sorted(set(offsets) | {1}))
  for index in range(len(done), len(frames)):
    if should_stop is not None and should_stop() and results:
      return VideoResult(done, results, True)
    start = time.perf_counter()
    frame = frames[index]
    flows = frame_flows(frames, index, metric_offsets, flow)
    loss_flows = [f for f in flows if f[0] in offsets]
    data, _ = temporal_targets(done, index, loss_flows, temporal.weight,
                               count)
    if data is None or temporal.weight == 0:
      data = no_temporal_targets(shape, count)
    back1 = next((f for f in flows if f[0] == 1), None)
    warm = index > 0 and temporal.warm_start
    # The warm start at the frame's size; without one, each frame starts
    # from config.init at its first level, as transfer.paint does.
    x0 = frame_start(problem.initial_image(config.init.kind, frame,
                                           styles[0] if styles else None,
                                           config.init.seed),
                     done[index - 1], back1[1]) if warm else None
    # A resumed frame goes on at the state's level, after the levels it
    # finished (their counts in ``before``).
    resumed = resume if index == len(previous) else None
    before = (resumed.before if resumed is not None and
              resumed.before is not None else run.Levels())
    iterations, evaluations = before.iterations, before.evaluations
    for k in range(0 if resumed is None else resumed.level, len(levels)):
      lv, ev = levels[k], evs[k]
      solver = dataclasses.replace(config.solver, maxiter=lv.iterations)
      if index == 0 and k == 0 and temporal.first_iterations:
        solver = dataclasses.replace(solver,
                                     maxiter=temporal.first_iterations)
      level_frame = _at(frame, lv.shape)
      targets = base_targets[k]._replace(content=problem.content_targets(
          params, level_frame, config, ev=ev))
      init = (problem.initial_image(
          config.init.kind, level_frame,
          level_styles[k][0] if styles else None, config.init.seed)
              if x0 is None else _at(np.asarray(x0), lv.shape))
      view = problem.coarse_view_of(config, k, levels[0].shape)
      coarse = None if view is None else (view, base_targets[0]._replace(
          content=problem.content_targets(
              params, _at(frame, levels[0].shape), config, ev=evs[0])))
      p = problem.make_problem(
          params, level_frame, level_styles[k], config,
          init_image=init, targets=targets,
          terms=(TEMPORAL,), term_data=(_temporal_at(data, lv.shape),), ev=ev,
          coarse=coarse)
      # A state says at which level of the frame it is, and what the
      # levels before left (one level: as stylize's).
      at_level = (lambda s, i=index, k=k, finished=run.Levels(
          (), iterations, evaluations): on_checkpoint(
              i, s._replace(level=k, before=finished) if several else s))
      result = run.run_problem(
          p, solver, log_every=0,
          on_progress=None if on_progress is None else functools.partial(
              on_progress, index),
          progress_seconds=progress_seconds, started=start,
          checkpoint_every=checkpoint_every,
          on_checkpoint=None if on_checkpoint is None else at_level,
          resume=(resumed._replace(level=0, before=None)
                  if resumed is not None and k == resumed.level else None),
          nonfinite_hint=(f" (frame {index}), or "
                          f"{param('temporal_weight')}"))
      iterations += result.iterations
      evaluations += result.function_evaluations
      x0 = result.image   # the next level starts from it, upsampled
    terms = {k: v for k, v in result.loss_history[-1].items()
             if k not in ("iteration", "seconds", "style_layers")}
    image = quantize(result.image)
    error = mask = flow1 = None
    if back1 is not None:
      flow1 = back1[1]
      mask = np.asarray(consistency_mask(back1[2], back1[1]))
      error = float(temporal_error(image, done[index - 1], flow1, mask))
    done.append(image)
    results.append(FrameResult(
        index, image, iterations, evaluations, result.status,
        time.perf_counter() - start, terms, flow1, mask, error))
    if on_frame is not None:
      on_frame(results[-1])
  return VideoResult(done, results, False)


# ---------------------------------------------------------------------------
# A synthetic clip with known motion.


def pan_zoom_clip(image: np.ndarray, *, frames: int, shape: Tuple[int, int],
                  pan: Tuple[float, float] = (0.01, 0.004),
                  zoom: float = 1.01, start_scale: float = 0.8
                  ) -> Tuple[List[np.ndarray], List[np.ndarray]]:
  """A slow pan and zoom over ``image`` ``(h, w, 3)``: ``frames`` frames of
  ``shape`` ``(H, W)``, and the exact flow from each frame to the one before
  (``frames - 1`` fields ``(H, W, 2)``, the affine motion in closed form).

  Frame ``t`` shows the window of ``start_scale / zoom^t`` of the image's
  extent (aspect ``W/H``), its centre moving by ``pan`` (fractions of the
  image's width and height) per frame from the image's centre; pixels are
  sampled bicubically (OpenCV ``remap``). Frame ``t`` maps its pixel ``p``
  to the image point ``s_t · p + o_t``, so the flow from ``t`` to ``t - 1``
  is ``((s_t · p + o_t) − o_{t-1}) / s_{t-1} − p``.
  """
  cv2 = _cv2()
  image = np.asarray(image, np.float32)
  h, w = image.shape[:2]
  oh, ow = shape
  aspect = ow / oh
  ys, xs = np.meshgrid(np.arange(oh, dtype=np.float64),
                       np.arange(ow, dtype=np.float64), indexing="ij")

  def window(t):
    extent = start_scale / zoom ** t
    win_w = min(w, h * aspect) * extent
    scale = win_w / ow          # image pixels per frame pixel
    cx = w / 2 + pan[0] * w * t
    cy = h / 2 + pan[1] * h * t
    return scale, (cx - scale * (ow - 1) / 2, cy - scale * (oh - 1) / 2)

  out, flows = [], []
  for t in range(frames):
    s, (ox, oy) = window(t)
    map_x = (s * xs + ox).astype(np.float32)
    map_y = (s * ys + oy).astype(np.float32)
    if map_x.min() < 0 or map_y.min() < 0 or map_x.max() > w - 1 or (
        map_y.max() > h - 1):
      raise NSTError(f"frame {t} of the pan leaves the image: fewer frames "
                     "or a smaller pan or zoom")
    out.append(np.clip(cv2.remap(image, map_x, map_y, cv2.INTER_CUBIC,
                                 borderMode=cv2.BORDER_REPLICATE), 0, 1))
    if t > 0:
      ps, (px, py) = window(t - 1)
      fx = (s * xs + ox - px) / ps - xs
      fy = (s * ys + oy - py) / ps - ys
      flows.append(np.stack([fx, fy], -1).astype(np.float32))
  return out, flows
