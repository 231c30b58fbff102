"""nst_jax: neural style transfer as pure, jit-compiled JAX functions.

Data flows one way: image I/O (``io``) and colour control (``color``) → VGG
features (``vgg``, fast 3×3 convolutions in ``winograd``) → statistics
(``statistics``) → losses (``losses``) → style representations as values
(``representations``) → objective (``objective``) → solvers (``solvers``,
batched and sharded in ``sharded``) → one transfer (``transfer``) or a grid
of them (``grid``), or folders of photos in buckets of equal shape
(``batch``), or a method beyond Gatys (``methods``: STROTSS from
``strotss``, ``hypercolumns`` and ``parameterize``; NNST from ``nnst``
and ``oklab``); ``memory`` estimates what a run needs, ``figures`` draws
results, ``metrics`` scores them (LPIPS, style distances, SSIM, Fréchet). The public names are re-exported here; ``weights`` (the converter)
and ``io`` touch the disk (``batch.find_images`` lists folders), nothing else
does.
"""

from nst_jax import batch
from nst_jax import checkpoint
from nst_jax import config
from nst_jax import color
from nst_jax import figures
from nst_jax import grid
from nst_jax import guided
from nst_jax import masks
from nst_jax import io
from nst_jax import losses
from nst_jax import hypercolumns
from nst_jax import memory
from nst_jax import methods
from nst_jax import metrics
from nst_jax import nnst
from nst_jax import oklab
from nst_jax import parameterize
from nst_jax import networks
from nst_jax import objective
from nst_jax import problem
from nst_jax import representations
from nst_jax import run
from nst_jax import sharded
from nst_jax import solvers
from nst_jax import statistics
from nst_jax import strotss
from nst_jax import synthetic
from nst_jax import targets
from nst_jax import tiling
from nst_jax import transfer
from nst_jax import vgg
from nst_jax import weights
from nst_jax import winograd
from nst_jax import video
from nst_jax import video_io
from nst_jax.batch import find_images, stylize_batch
from nst_jax.color import (combine_luminance, luminance_images, match_color,
                           match_luminance)
from nst_jax.errors import NSTError
from nst_jax.figures import loss_curves
from nst_jax.io import load_image, resize_long_edge, resize_to, save_image
from nst_jax.losses import content_loss, gram_loss, total_variation_loss
from nst_jax.methods import Gatys, MethodResult, Nnst, Strotss, method
from nst_jax.oklab import color_transfer
from nst_jax.metrics import (Lpips, MetricNetworks, frechet_distance,
                             gram_distance, load_metric_networks, lpips,
                             patch_frechet_distance, score, score_set,
                             sliced_wasserstein_distance, ssim,
                             style_distances)
from nst_jax.grid import GridAxes, GridResult, style_grid
from nst_jax.guided import (ContentAware, GuidedGram, GuidedMoments, Guides,
                            guided_gram, guided_gram_sums)
from nst_jax.targets import make_targets
from nst_jax.objective import (LossWeights, Spec, Targets, Weights,
                               coarse_view, coarse_view_loss, loss_terms,
                               make_objective, make_weights,
                               objective_function, stack_targets)
from nst_jax.representations import (CentralMoments, Covariance, Eigen, Gram,
                                     Local, Moments, SlicedWasserstein,
                                     Spatial)
from nst_jax.sharded import minimize_cells
from nst_jax.solvers import (Checkpoint, Hook, SolveResult, SolverConfig,
                             SolverState, minimize, minimize_batched,
                             state_template)
from nst_jax.statistics import (channel_mean_covariance, channel_moments,
                                gram_eigen, gram_matrix, gram_spectrum,
                                local_gram, low_rank_gram, project_features,
                                spatial_autocorrelation, sqrtm_psd)
from nst_jax.transfer import Levels, RunState, pyramid
from nst_jax.transfer import (Init, StylePatches, TransferConfig,
                              TransferResult, stylize, stylize_multiscale)
from nst_jax.color import ColorControl
from nst_jax.representations import (position_averaged, position_maps_of,
                                     takes_position_maps)
from nst_jax.tiling import Plan as TilePlan
from nst_jax.vgg import features, load_params, prepare_params
from nst_jax.video import (DISFlow, FarnebackFlow, Temporal, TemporalTargets,
                           consistency_mask, long_term_weights,
                           stylize_video, temporal_error, temporal_errors,
                           temporal_loss, warp)

__all__ = [
    "tiling", "position_averaged", "TilePlan", "position_maps_of",
    "takes_position_maps", "guided_gram_sums",
    "NSTError", "Hook", "SolveResult", "SolverConfig", "Spec", "Targets",
    "TransferConfig", "TransferResult", "Weights", "content_loss", "features",
    "gram_loss", "gram_matrix", "io", "load_image", "load_params", "loss_terms",
    "losses", "make_objective", "make_targets", "make_weights", "minimize",
    "networks", "objective", "resize_long_edge", "resize_to", "save_image",
    "solvers", "statistics", "stylize", "total_variation_loss", "transfer",
    "vgg", "weights", "synthetic", "channel_mean_covariance",
    "channel_moments", "gram_eigen", "gram_spectrum", "local_gram",
    "low_rank_gram", "project_features", "spatial_autocorrelation",
    "sqrtm_psd", "color", "figures", "combine_luminance", "luminance_images",
    "match_color", "match_luminance", "loss_curves", "minimize_batched",
    "stylize_multiscale", "winograd", "prepare_params", "grid", "sharded",
    "memory", "representations", "GridAxes", "GridResult", "style_grid",
    "LossWeights", "objective_function", "stack_targets", "CentralMoments",
    "Covariance", "Eigen", "Gram", "Local", "Moments", "SlicedWasserstein",
    "Spatial", "minimize_cells", "Init", "StylePatches", "ColorControl",
    "metrics", "Lpips", "MetricNetworks", "frechet_distance", "gram_distance",
    "load_metric_networks", "lpips", "patch_frechet_distance", "score",
    "score_set", "sliced_wasserstein_distance", "ssim", "style_distances",
    "guided", "masks", "ContentAware", "GuidedGram", "Guides", "guided_gram",
    "GuidedMoments",
    "video", "video_io", "DISFlow", "FarnebackFlow", "Temporal",
    "TemporalTargets", "consistency_mask", "long_term_weights",
    "stylize_video", "temporal_error", "temporal_errors", "temporal_loss",
    "warp",
    "checkpoint", "Checkpoint", "SolverState", "state_template", "RunState",
    "Levels", "pyramid", "coarse_view", "coarse_view_loss",
    "batch", "find_images", "stylize_batch",
    "config", "problem", "run", "targets",
    "methods", "method", "Gatys", "Strotss", "Nnst", "MethodResult",
    "strotss", "nnst", "hypercolumns", "parameterize", "oklab",
    "color_transfer",
]
__version__ = "0.1.0"
