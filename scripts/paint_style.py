"""Paints a licence-clean example style image procedurally.

The picture is an expressive, Van-Gogh-like swirl painting: thousands of short
curved brush strokes follow a smooth random flow field (the curl of a stream
function made of a few sinusoids and Gaussian vortices), in a bold palette of
deep blues with yellow and orange halos around the vortices. Strokes are laid
down coarse to fine, each with a darker rim and a light ridge to suggest
impasto, on a 2x canvas that is then downsampled, softened a little and given
a woven-canvas texture.

The output is reproducible byte for byte for a given ``--seed`` and ``--size``.
It is the bundled example style image::

  python scripts/paint_style.py --output examples/style_brushwork.png
"""


# pylint: disable=wrong-import-position
import numpy as np
from absl import flags
from PIL import Image, ImageDraw, ImageFilter

from nst_jax import cli
from nst_jax import io as nst_io
from nst_jax.errors import NSTError

_OUTPUT = flags.DEFINE_string("output", "examples/style_brushwork.png",
                             "Where to write the PNG.")
cli.define_flags("size", "seed", defaults={"size": 512})
FLAGS = flags.FLAGS

ASPECT = 0.75  # height / width
SUPERSAMPLE = 2

DEEP_BLUES = np.array([
    (14, 26, 70), (22, 44, 110), (30, 64, 146), (44, 90, 170),
    (64, 118, 190), (96, 150, 205), (140, 184, 220), (36, 78, 120),
], dtype=np.float64)
EARTH = np.array([  # in band order, light and dark alternating
    (38, 70, 62), (112, 124, 60), (160, 136, 58), (52, 92, 74),
    (78, 128, 132), (28, 46, 54), (134, 110, 50), (60, 104, 66),
], dtype=np.float64)
WARMS = np.array([
    (246, 214, 72), (252, 232, 130), (240, 170, 44), (222, 118, 32),
    (250, 246, 200), (200, 150, 40),
], dtype=np.float64)

# (strokes per megapixel of the final image, steps, step length and brush
# width as fractions of the final width): coarse underpainting to fine detail.
LAYERS = (
    (1500, 10, 0.010, 0.030),
    (6000, 9, 0.008, 0.017),
    (14000, 8, 0.006, 0.010),
    (14000, 6, 0.005, 0.006),
)


class FlowField:
  """A divergence-free 2-D flow: the curl of a random stream function.

  Positions are ``(n, 2)`` arrays of ``(x, y)`` in units of the image width
  (x in [0, 1], y in [0, ASPECT]).
  """

  def __init__(self, rng: np.random.Generator):
    n_waves = 4
    angles = rng.uniform(0, 2 * np.pi, n_waves)
    freqs = rng.uniform(3.0, 7.0, n_waves)
    directions = np.stack([np.cos(angles), np.sin(angles)], -1)
    self.wave_k = directions * freqs[:, None]
    self.wave_phase = rng.uniform(0, 2 * np.pi, n_waves)
    self.wave_amp = rng.uniform(0.012, 0.025, n_waves)
    n_vortices = 5
    self.centres = np.stack([rng.uniform(0.08, 0.92, n_vortices),
                             rng.uniform(0.08, 0.62 * ASPECT, n_vortices)], -1)
    self.radii = rng.uniform(0.07, 0.15, n_vortices)
    self.strength = rng.choice([-1.0, 1.0], n_vortices) * rng.uniform(
        0.04, 0.08, n_vortices)
    self.drift = 0.05  # a broad left-to-right current, like wind
    # A rolling horizon: below it, long low waves of earthy strokes.
    self.ground_level = rng.uniform(0.76, 0.82) * ASPECT
    self.ground_amp = rng.uniform(0.025, 0.05, 2)
    self.ground_freq = rng.uniform(2.5, 6.0, 2)
    self.ground_phase = rng.uniform(0, 2 * np.pi, 2)

  def depth(self, p: np.ndarray) -> np.ndarray:
    """(n, 2) positions -> (n,) signed distance below the horizon."""
    horizon = self.ground_level + np.sum(self.ground_amp * np.sin(
        p[:, :1] * self.ground_freq + self.ground_phase), -1)
    return p[:, 1] - horizon

  def ground(self, p: np.ndarray) -> np.ndarray:
    """(n, 2) positions -> (n,) in [0, 1]: 1 below the horizon."""
    return 1.0 / (1.0 + np.exp(-self.depth(p) / 0.01))

  def velocity(self, p: np.ndarray) -> np.ndarray:
    """(n, 2) positions -> (n, 2) unit flow directions."""
    # Stream function psi; velocity = (d psi / dy, -d psi / dx).
    phase = p @ self.wave_k.T + self.wave_phase  # (n, waves)
    dpsi = (self.wave_amp * np.cos(phase)) @ self.wave_k  # (n, 2)
    d = p[:, None, :] - self.centres[None]  # (n, vortices, 2)
    r2 = np.sum(d * d, -1)
    g = self.strength * np.exp(-r2 / (2 * self.radii ** 2)) / self.radii ** 2
    dpsi -= np.sum(g[..., None] * d, axis=1)
    dpsi[:, 1] += self.drift
    v = np.stack([dpsi[:, 1], -dpsi[:, 0]], -1)
    v /= np.linalg.norm(v, axis=-1, keepdims=True) + 1e-9
    hills = np.stack([np.ones(len(p)), 0.25 * np.sin(
        p[:, 0] * 7.0 + 5.0 * p[:, 1])], -1)
    hills /= np.linalg.norm(hills, axis=-1, keepdims=True)
    b = self.ground(p)[:, None]
    v = (1 - b) * v + b * hills
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-9)

  def warmth(self, p: np.ndarray) -> np.ndarray:
    """(n, 2) positions -> (n,) in [0, 1]: 1 in the bright cores and halos."""
    d = p[:, None, :] - self.centres[None]
    r = np.sqrt(np.sum(d * d, -1)) / self.radii
    core = np.exp(-(r / 0.45) ** 2)
    halo = 0.55 * np.exp(-((r - 0.95) / 0.12) ** 2)
    warmth = np.clip(np.max(core + halo, axis=1), 0.0, 1.0)
    return warmth * (1.0 - self.ground(p))


def trace(field: FlowField, starts: np.ndarray, steps: int, step: float,
          rng: np.random.Generator) -> np.ndarray:
  """Streamlines from ``starts`` (n, 2): (n, steps + 1, 2), midpoint rule.

  Each stroke gets a slight random curl so that neighbouring strokes do not
  run exactly parallel, and half of them are traced backwards.
  """
  n = len(starts)
  direction = rng.choice([-1.0, 1.0], n)[:, None]
  bend = rng.normal(0.0, 0.08, n)
  points = [starts]
  p = starts
  for i in range(steps):
    v1 = field.velocity(p)
    v2 = field.velocity(p + 0.5 * step * direction * v1)
    angle = bend * i
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    v2 = np.concatenate([c * v2[:, :1] - s * v2[:, 1:],
                         s * v2[:, :1] + c * v2[:, 1:]], -1)
    p = p + step * direction * v2
    points.append(p)
  return np.stack(points, 1)


def stroke_colours(field: FlowField, starts: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
  """(n, 2) stroke starts -> (n, 3) RGB in [0, 255] from the palette."""
  n = len(starts)
  warm = field.warmth(starts)
  use_warm = rng.random(n) < warm ** 1.5
  # Blues get lighter towards the halos and darker far from any vortex.
  shade = np.clip(0.35 + 0.9 * warm + rng.normal(0, 0.18, n), 0, 0.999)
  blues = DEEP_BLUES[np.minimum((shade * 7).astype(int), 6)]
  teal = rng.random(n) < 0.06
  blues[teal] = DEEP_BLUES[7]
  warms = WARMS[rng.integers(0, len(WARMS), n)]
  colours = np.where(use_warm[:, None], warms, blues)
  # Earth colours in rolling bands that follow the horizon.
  band = field.depth(starts) * 70.0 + 1.5 * np.sin(starts[:, 0] * 9.0)
  band = np.floor(band + rng.normal(0, 0.6, n)).astype(int) % len(EARTH)
  earth = EARTH[band]
  on_ground = rng.random(n) < field.ground(starts)
  colours[on_ground] = earth[on_ground]
  colours += rng.normal(0, 7, (n, 3))
  return np.clip(colours, 0, 255)


def _shade(colour: np.ndarray, factor: float, lift: float = 0.0) -> tuple:
  return tuple(int(v) for v in np.clip(colour * factor + lift, 0, 255))


def _brush_stroke(draw: ImageDraw.ImageDraw, points: list, colour: np.ndarray,
                  width: int) -> None:
  """One stroke: dark rim, body with rounded ends, a groove and a ridge."""
  def dab(point, radius, fill):
    x, y = point
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill)

  rim, body = _shade(colour, 0.72), _shade(colour, 1.0)
  draw.line(points, fill=rim, width=width + 2, joint="curve")
  dab(points[0], width / 2 + 1, rim)
  dab(points[-1], width / 2 + 1, rim)
  draw.line(points, fill=body, width=width, joint="curve")
  dab(points[0], width / 2, body)
  dab(points[-1], width / 2, body)
  inner = points[1:-1]
  if len(inner) < 2 or width < 5:
    return
  thin = max(1, width // 5)
  groove = [(x + 0.22 * width, y + 0.22 * width) for x, y in inner]
  ridge = [(x - 0.22 * width, y - 0.22 * width) for x, y in inner]
  draw.line(groove, fill=_shade(colour, 0.86), width=thin, joint="curve")
  draw.line(ridge, fill=_shade(colour, 1.08, 22), width=thin, joint="curve")


def paint(size: int, seed: int) -> np.ndarray:
  """Paints the picture: float32 (round(size * 0.75), size, 3) in [0, 1]."""
  rng = np.random.default_rng(seed)
  field = FlowField(rng)
  width, height = size, max(1, round(size * ASPECT))
  big_w, big_h = width * SUPERSAMPLE, height * SUPERSAMPLE
  canvas = Image.new("RGB", (big_w, big_h), (20, 36, 86))
  draw = ImageDraw.Draw(canvas)
  scale = big_w  # positions are in units of the width
  megapixels = width * height / 1e6
  for density, steps, step, brush in LAYERS:
    n = max(1, int(density * megapixels))
    starts = np.stack([rng.uniform(-0.02, 1.02, n),
                       rng.uniform(-0.02, ASPECT + 0.02, n)], -1)
    paths = trace(field, starts, steps, step, rng) * scale
    colours = stroke_colours(field, starts, rng)
    widths = np.maximum(2, brush * scale * rng.uniform(0.7, 1.3, n))
    for path, colour, w in zip(paths, colours, widths):
      points = [tuple(xy) for xy in np.round(path, 1)]
      w = int(round(w))
      _brush_stroke(draw, points, colour, w)
  canvas = canvas.resize((width, height), Image.Resampling.LANCZOS)
  canvas = canvas.filter(ImageFilter.GaussianBlur(0.5))
  image = np.asarray(canvas, dtype=np.float32) / 255.0
  return np.clip(image * canvas_texture(height, width, rng)[..., None], 0, 1)


def canvas_texture(height: int, width: int,
                   rng: np.random.Generator) -> np.ndarray:
  """A woven-canvas brightness modulation around 1, float32 (H, W)."""
  y, x = np.mgrid[0:height, 0:width].astype(np.float32)
  weave = np.sin(x * 2.1) * np.sin(y * 2.1)
  grain = rng.normal(0, 1, (height, width))
  for axis in (0, 1):  # binomial [1, 2, 1] / 4 smoothing, std about 0.6
    grain = 0.5 * grain + 0.25 * (np.roll(grain, 1, axis)
                                  + np.roll(grain, -1, axis))
  grain /= grain.std() + 1e-9
  return (1.0 + 0.025 * weave + 0.045 * grain).astype(np.float32)


def main(argv):
  if len(argv) > 1:
    raise NSTError(f"unexpected arguments: {' '.join(argv[1:])}")
  size, seed = FLAGS.size, cli.one("seed")
  if size < 16:
    raise NSTError(f"--size must be at least 16, got {size}")
  image = paint(size, seed)
  nst_io.save_image(_OUTPUT.value, image, metadata={
      "Software": "nst_jax scripts/paint_style.py",
      "Description": f"procedural brushwork, seed {seed}, size {size}"})
  print(f"wrote {_OUTPUT.value} ({image.shape[1]}x{image.shape[0]})")


if __name__ == "__main__":
  cli.run(main)
