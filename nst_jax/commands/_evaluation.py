"""What the commands share to score results: ``nst-stylize --evaluate``,
``nst-grid --evaluate`` and ``scripts/evaluate.py``.

Thin wrappers over :mod:`nst_jax.metrics` that turn its arrays into JSON
records (plain floats, one dict per result) and say what each field means.
No flags are defined here, so every command can import it (the scoring
size is the shared ``--score_size``, default ``metrics.SCORE_SIZE``). A
result is scored as written, in 8 bits (``as_written``), so that
``--evaluate``'s scores are ``nst-evaluate``'s of the written PNG.
"""

from typing import Dict, Mapping, Sequence

import numpy as np

from nst_jax import io
from nst_jax import metrics

# What each per-result field is, for the JSON and the table's legend.
FIELDS = {
    "lpips_vgg": "LPIPS to the content, VGG-16 heads (lower: more faithful)",
    "lpips_alex": "LPIPS to the content, AlexNet heads (lower: more faithful)",
    "swd": "relative sliced Wasserstein distance to the style, VGG-16 "
           "relu1_1..relu5_1 (lower: more stylised)",
    "gram": "relative Gram distance to the style, VGG-16 relu1_1..relu5_1 "
            "(lower: more stylised)",
    "ssim": "SSIM on luminance to the content (higher: more faithful)",
}
# Short column headers of the table.
HEADERS = {"lpips_vgg": "LPIPS-VGG", "lpips_alex": "LPIPS-Alex",
           "swd": "style SWD", "gram": "Gram dist", "ssim": "SSIM"}
SET_NOTE = ("patch Fréchet distance between the style image's and the "
            "results' VGG-16 relu1_1..relu5_1 feature vectors, relative to "
            "the style's mean squared feature norm, averaged over the layers "
            "(lower: the set is closer to the painting). A stand-in for "
            "ArtFID's FID term: the Inception network trained on art that "
            "ArtFID uses cannot be fetched here.")


def as_written(image: np.ndarray) -> np.ndarray:
  """``image`` as its 8-bit PNG holds it (what ``nst-evaluate`` reads back);
  an image read from such a file is unchanged."""
  return io.image_to_uint8(image).astype(np.float32) / 255.0


def result_records(nets: metrics.MetricNetworks, content: np.ndarray,
                   style: np.ndarray, results: Sequence[np.ndarray], *,
                   size: int = metrics.SCORE_SIZE,
                   via: int | None = None) -> list:
  """One ``{field: float}`` per result, fields of ``metrics.SCORE_FIELDS``
  (:func:`nst_jax.metrics.score` at ``size``, through ``via``), each
  result ``as_written``."""
  scores = metrics.score(nets, content, style,
                         [as_written(r) for r in results], size=size, via=via)
  return [{field: float(scores[field][i]) for field in metrics.SCORE_FIELDS}
          for i in range(len(results))]


def set_record(nets: metrics.MetricNetworks, style: np.ndarray,
               results: Sequence[np.ndarray], *,
               size: int = metrics.SCORE_SIZE) -> Dict | None:
  """``{"count", "frechet", "frechet_layers", "note"}`` for two or more
  results of one style (:func:`nst_jax.metrics.score_set`); None for fewer."""
  if len(results) < 2:
    return None
  scored = metrics.score_set(nets, style, [as_written(r) for r in results],
                             size=size)
  return {"count": len(results), **scored, "note": SET_NOTE}


def run_evaluation(content: np.ndarray, styles: Mapping[str, np.ndarray],
                   result: np.ndarray, *,
                   size: int = metrics.SCORE_SIZE) -> Dict:
  """The ``"evaluation"`` of one run's record: the metrics of ``result``
  against ``content`` and the first of ``styles`` (``{path: image}``), at
  ``size``; with several styles (a blend) also ``"styles"``, the style
  distances to each."""
  nets = metrics.load_metric_networks()
  paths = list(styles)
  records = [result_records(nets, content, styles[p], [result], size=size)[0]
             for p in paths]
  out = {"size": size, "style_image": paths[0], **records[0]}
  if len(paths) > 1:
    out["styles"] = [{"style_image": p, "swd": r["swd"], "gram": r["gram"]}
                     for p, r in zip(paths, records)]
  return out


def evaluate_run(content: np.ndarray, styles: Mapping[str, np.ndarray],
                 result: np.ndarray, size: int, say) -> Dict:
  """``run_evaluation`` at ``size``, its scores also said in one line
  (``nst-stylize --evaluate``, whatever the method)."""
  evaluation = run_evaluation(content, styles, result, size=size)
  say(f"evaluation at {size} px: " + ", ".join(
      f"{HEADERS[k]} {evaluation[k]:.4f}" for k in FIELDS))
  return evaluation
