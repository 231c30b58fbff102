"""One definition of every common flag, by group (``define_flags``,
``FLAG_GROUPS``), their ``--help`` by topic (``help_text``), the library
values built from them (``transfer_config``, ``grid_axes``: defaults read
from the dataclasses), recorded values applied again (``apply_params``) and
deprecated names (``define_deprecated_alias``); library messages' parameter
names shown as flags (``flag_message``)."""

import re
from typing import Any, Dict, Sequence

import jax
from absl import flags

from nst_jax import guided  # noqa: F401  (registers its representations)
from nst_jax import representations
from nst_jax.errors import NSTError


# Library parameters whose flag has another name (the others are the same);
# the style representations' fields come from their registry
# (``representations.register``).
PARAM_FLAGS = {
    "solver.method": "optimizer", "solver.maxiter": "iterations",
    "maxiter": "iterations", "solver.learning_rate": "learning_rate",
    "solver.history_size": "history_size", "init.kind": "init",
    "init.seed": "seed", "patches.count": "style_patches",
    "patches.size": "patch_size", "patches.mode": "patch_mode",
    "color.transfer": "color_transfer", "color.space": "color_space",
    "color.original_colors": "original_colors",
    "weights.content": "content_weight", "weights.style": "style_weight",
    "weights.tv": "tv_weight", "weights.style_layers": "style_layer_weights",
    "weights.style_blend": "style_blend_weights",
    "weights.normalize_style": "normalize_style",
    **representations.param_flags(),
}


def flag_message(message: str) -> str:
  """``message`` for a script's user: each parameter that the library wrote
  as ```name``` (``errors.param``) becomes its flag, ``--name`` or the
  flag ``PARAM_FLAGS`` names (``solver.maxiter`` → ``--iterations``)."""
  return re.sub(r"`([A-Za-z_][\w.]*)`",
                lambda m: "--" + PARAM_FLAGS.get(m.group(1), m.group(1)),
                str(message))


# What asks for a command's help (absl's --help, --helpshort and -?, and
# -h); absl's --helpfull still lists every flag, absl's own too.
HELP_ARGS = ("--help", "-help", "--helpshort", "-helpshort", "-?", "-h")

# The sections of --help, in order: the shared groups (``FLAG_GROUPS``) and
# the topics of the commands' own flags (``_OWN_TOPICS``).
_SECTIONS = {
    "images": "Images", "method": "Method", "model": "Model and weights",
    "loss": "Loss weights", "representation": "Style representation",
    "masks": "Masks (guided transfer)", "solver": "Solver",
    "init": "Initial image", "color": "Colour", "schedule": "Coarse to fine",
    "video": "Video", "grid": "Grid", "evaluation": "Evaluation",
    "runs": "Running again and resuming", "compute": "Compute",
    "output": "Output", "distributed": "Several processes or hosts",
    "server": "Server",
}
# The topic of a flag by its name, before the group that defined it (the
# commands' own flags have none); a flag of neither is listed under "Other
# flags".
_OWN_TOPICS = {
    "style_scale": "images", "input": "images", "results": "images",
    "network": "model", "from_file": "model", "weights_dir": "model",
    "force": "model",
    "scales": "schedule", "scale_iterations": "schedule",
    "pyramid_base": "schedule", "coarse_weight": "schedule",
    "temporal_weight": "video", "long_term": "video", "warm_start": "video",
    "independent": "video", "first_iterations": "video", "flow": "video",
    "fps": "video", "max_frames": "video",
    "preset": "grid", "chunk_size": "compute",
    "evaluate": "evaluation", "score_size": "evaluation", "via": "evaluation",
    "from_json": "runs", "resume": "runs",
    "output": "output", "output_dir": "output", "log_every": "output",
    "save_every": "output", "plot": "output", "sheet": "output",
    "json": "output", "work_dir": "output", "save_flows": "output",
    "audio": "output", "print_every": "output",
    "host": "server", "port": "server", "data_dir": "server",
    "token": "server", "max_upload_mb": "server", "max_queue": "server",
    "max_size": "server", "max_iterations": "server",
    "checkpoint_every": "server", "preview_seconds": "server",
}
_ALIAS_HELP = re.compile(r"Alias for --(\w+)\.$")


def _flag_entry(flag, aliases: Sequence[str], width: int) -> str:
  """One flag of ``--help``: ``--name (or --alias): help (default: …)
  (syntax)``, wrapped to ``width`` columns."""
  name = f"--[no]{flag.name}" if flag.boolean else f"--{flag.name}"
  name += "".join(f" (or --{a})" for a in aliases)
  text = f"{name}: {' '.join(str(flag.help or '').split())}"
  if flag.default is not None:
    text += f" (default: {flag.default_as_str})"
  syntax = getattr(flag.parser, "syntactic_help", "")
  if syntax and not flag.boolean:
    text += f" ({syntax})"
  return flags.text_wrap(text, width, indent="      ", firstline_indent="  ")


def help_text(prog: str, about: str | None = None, *,
              width: int = 80) -> str:
  """A command's ``--help``: ``about`` (its module's docstring), then every
  flag the command defined, grouped by topic (the shared groups of
  ``FLAG_GROUPS``, the topics of ``_OWN_TOPICS``), each with its help,
  default and syntax. absl's own flags (logging, debugging) are left to
  ``--helpfull``, and so are deprecated names (``DEPRECATED_FLAGS``)."""
  ours = [f for module, listed in flags.FLAGS.flags_by_module_dict().items()
          if not module.startswith("absl") for f in listed]
  aliases: Dict[str, list] = {}
  entries: Dict[str, Any] = {}
  for flag in ours:
    if flag.name in DEPRECATED_FLAGS or flag.name in entries:
      continue
    target = _ALIAS_HELP.match(str(flag.help or ""))
    if target and target.group(1) in flags.FLAGS:
      aliases.setdefault(target.group(1), []).append(flag.name)
    else:
      entries[flag.name] = flag
  sections: Dict[str, list] = {}
  for name, flag in entries.items():
    topic = _OWN_TOPICS.get(name) or _DEFINED_IN.get(name, "other")
    sections.setdefault(topic, []).append(
        _flag_entry(flag, aliases.get(name, ()), width))
  lines = [f"Usage: {prog} [flags]"]
  if about and about.strip():
    lines += ["", about.strip("\n")]
  lines += ["", "Flags (--helpfull also lists absl's own: logging, "
            "debugging):"]
  order = [*_SECTIONS, *sorted(set(sections) - set(_SECTIONS) - {"other"}),
           "other"]   # a group without a heading here still shows
  for topic in order:
    if topic in sections:
      title = _SECTIONS.get(topic) or (
          "Other flags" if topic == "other" else topic.capitalize())
      lines += ["", f"{title}:", *sections[topic]]
  return "\n".join(lines)


def _asks_for_help(argv) -> bool:
  args = list(argv[1:])
  if "--" in args:
    args = args[:args.index("--")]
  return any(a in HELP_ARGS for a in args)


def parse_value(flag, value) -> None:
  """Sets absl ``flag`` from a recorded or posted JSON ``value`` as its own
  parser reads it (None: no value; lists, tuples and booleans as they are,
  the rest as text). Raises absl's ``flags.Error`` or ``ValueError``."""
  if value is None:
    flag.value = None
  else:
    flag.parse(value if isinstance(value, (list, tuple, bool))
               else str(value))


def apply_params(values: dict, *, skip: Sequence[str] = ()) -> list[str]:
  """Sets every flag named in ``values`` that the command line did not give
  (command-line flags win) and is not in ``skip``; returns the names of
  recorded parameters this script does not know (left alone). Values are
  parsed like command-line text, so a bad one is an ``NSTError``. A
  parameter recorded under a flag's former name (``DEPRECATED_FLAGS``:
  ``checkpoint``) sets the flag of the new name (``remat``)."""
  unknown = []
  values = {DEPRECATED_FLAGS.get(k, k) if DEPRECATED_FLAGS.get(k) not in values
            else k: v for k, v in values.items()}   # records of old names
  for name, value in values.items():
    if name in skip or name in DEPRECATED_FLAGS:
      continue
    if name not in flags.FLAGS:
      unknown.append(name)
      continue
    flag = flags.FLAGS[name]
    if flag.present:
      continue
    try:
      parse_value(flag, value)
    except (flags.Error, ValueError) as e:
      raise NSTError(f"recorded --{name}={value!r} is not valid: "
                     f"{' '.join(str(e).split())}") from None
  return unknown


# ---------------------------------------------------------------------------
# The flags the commands share: one name, type, default and help text each.
#
# A command calls ``define_flags(group, ...)`` at import for the groups it
# honours and builds its configuration with ``transfer_config()`` (or, for a
# grid, ``layer_sets()``/``numbers()`` per axis). A group a command does not
# define is an option it cannot honour: absl refuses the unknown flag.


class _NumbersParser(flags.ArgumentParser):
  """Comma-separated numbers → a tuple (``"1e7,1e8"`` → ``(1e7, 1e8)``); a
  number or a list of numbers is taken as is (values from a run record)."""

  def __init__(self, kind=float, lower_bound=None):
    super().__init__()
    self.kind, self.lower_bound = kind, lower_bound

  def parse(self, argument):
    items = (argument if isinstance(argument, (list, tuple))
             else [argument] if isinstance(argument, (int, float))
             else [a for a in str(argument).split(",") if a.strip()])
    try:
      values = tuple(self.kind(float(a)) if self.kind is int and
                     float(a).is_integer() else self.kind(a) for a in items)
    except (TypeError, ValueError):
      raise ValueError(f"expected comma-separated "
                       f"{'integers' if self.kind is int else 'numbers'}, got "
                       f"{argument!r}") from None
    if self.lower_bound is not None and any(v < self.lower_bound
                                            for v in values):
      raise ValueError(f"every value must be >= {self.lower_bound}")
    return values

  def flag_type(self):
    return "comma-separated numbers"


class _SetsParser(flags.ArgumentParser):
  """Sets separated by ``;``, items by ``,`` (``"relu1_1;relu1_1,relu2_1"``
  → two sets); a list is one set (a run record's value)."""

  def __init__(self, item=str):
    super().__init__()
    self.item = item

  def parse(self, argument):
    if isinstance(argument, (list, tuple)):
      groups = [list(argument)] if not argument or not isinstance(
          argument[0], (list, tuple)) else [list(g) for g in argument]
    else:
      groups = [g.split(",") for g in str(argument).split(";") if g.strip()]
    try:
      return tuple(tuple(self.item(str(v).strip()) for v in g if str(v).strip())
                   for g in groups)
    except ValueError:
      raise ValueError(f"expected comma-separated values, sets separated by "
                       f"';', got {argument!r}") from None

  def flag_type(self):
    return "sets"


def _serialize_sets(value):
  return ";".join(",".join(str(v) for v in g) for g in value or ())


# Renamed flags, {old name: new name}, as the commands of this process
# defined them (``define_deprecated_alias``).
DEPRECATED_FLAGS: Dict[str, str] = {}


def define_deprecated_alias(old: str, new: str) -> None:
  """Keeps flag ``new``'s former name ``old`` working: an alias that prints
  a one-line deprecation note when given (``parse_flags``), left out of
  ``--help`` (``--helpfull`` lists it) and of run records, and a recorded
  run that recorded ``old`` runs again with it (``apply_params``)."""
  flags.DEFINE_alias(old, new)
  flags.FLAGS[old].help = f"Deprecated name of --{new}; use --{new}."
  DEPRECATED_FLAGS[old] = new


def deprecation_notes() -> list[str]:
  """One ``warning: --old is deprecated: use --new`` line per deprecated
  name the command line gave."""
  return [f"warning: --{old} is deprecated: use --{new}"
          for old, new in DEPRECATED_FLAGS.items()
          if old in flags.FLAGS and flags.FLAGS[old].present]


def define_numbers(name, default, help_text, kind=float, lower_bound=None):
  """A flag of comma-separated numbers whose value is a tuple (the one
  parser of such lists)."""
  flags.DEFINE(_NumbersParser(kind, lower_bound), name, default, help_text,
               serializer=flags.CsvListSerializer(","))


def define_sets(name, default, help_text, item=str):
  """A flag of sets (``a,b;c``) whose value is a tuple of tuples."""
  parser = _SetsParser(item)
  serializer = flags.ArgumentSerializer()
  serializer.serialize = _serialize_sets
  flags.DEFINE(parser, name, default, help_text, serializer=serializer)


def _define_images():
  flags.DEFINE_string("content", None, "Content image (any format Pillow "
                      "reads).")
  flags.DEFINE_list("style", None, "Style image(s), comma-separated.")
  flags.DEFINE_integer("size", None, "Long edge of the output in pixels; style "
                       "images are resized to it (default: 512 on a GPU/TPU, "
                       "256 on a CPU).", lower_bound=1, upper_bound=16384)


def _define_network():
  from nst_jax import networks, vgg  # pylint: disable=g-import-not-at-top
  flags.DEFINE_enum("network", "vgg16", list(networks.NETWORKS),
                    "Recognition network (weights from nst-fetch-weights), or "
                    "see --weights.")
  flags.DEFINE_string("weights", None, "Path to a converted .npz to use "
                      "instead of the fetched <network>.npz.")
  flags.DEFINE_enum("pooling", "max", list(vgg.POOLING), "Pooling.")
  flags.DEFINE_list("content_layers", None, "Content layers (default: "
                    "relu4_2; relu4 for alexnet).")
  define_sets("style_layers", None, "Style layers (default: relu1_1, "
               "relu2_1, relu3_1, relu4_1, relu5_1); a grid takes several "
               "sets separated by ';'.")
  define_sets("style_layer_weights", None, "One weight per style layer "
               "(default: 1/number of layers); in a grid, one list per set, "
               "separated by ';'.", item=float)


def _define_loss():
  from nst_jax import objective  # pylint: disable=g-import-not-at-top
  default = objective.LossWeights()
  define_numbers("content_weight", (default.content,), "α; a grid takes "
                  "several (an axis).", lower_bound=0)
  suggested = ", ".join(
      f"{e.name} {e.style_weight:g}" for e in representations.registered()
      if e.name is not None)
  define_numbers("style_weight", None, "β (default: the representation's "
                 f"suggestion: {suggested}; gram's measured, "
                 "docs/benchmarks/quality.md); a grid takes several (an "
                 "axis).", lower_bound=0)
  define_numbers("tv_weight", (default.tv,), "Total-variation weight γ; a "
                  "grid takes several (an axis).", lower_bound=0)
  flags.DEFINE_bool("size_invariant", objective.Spec().size_invariant,
                    "Divide the content and TV terms by the pixel count so "
                    "that the same α/β/γ give the same look at every --size "
                    "(--nosize_invariant: the paper's sums, whose style "
                    "fades as the size grows).")
  flags.DEFINE_bool("normalize_style", default.normalize_style,
                    "Divide each style image's term by its own scale (the "
                    "term at all-zero features; it differs ~11x between "
                    "paintings), narrowing how unequally one --style_weight "
                    "paints them; about --style_weight=1700 weighs a "
                    "painting of average scale as the default does "
                    "(docs/benchmarks/quality.md).")
  define_numbers("style_blend_weights", None, "One weight per style image "
                  "(default: equal).", lower_bound=0)


def _define_style():
  from nst_jax import objective  # pylint: disable=g-import-not-at-top
  from nst_jax import representations as rep  # pylint: disable=g-import-not-at-top
  d = rep.defaults()
  flags.DEFINE_enum("style_stat", "gram", list(rep.names()),
                    "Style representation: gram (Gatys), spatial (per-channel "
                    "autocorrelation, Nikulin & Novak §7), local (windowed "
                    "Gram, §9), eigen (Gram spectrum, thesis), moments (mean "
                    "and std), covariance (mean + covariance, Wasserstein-2), "
                    "swd (sliced Wasserstein, Heitz et al. 2021), cmd "
                    "(central moment discrepancy, Kalischek et al. 2021) or "
                    "content_aware (guided Grams over soft content regions, "
                    "Nikulin & Novak §9).")
  flags.DEFINE_enum("gram_normalization", d["gram_normalization"],
                    list(rep.NORMALIZATIONS), "gram/spatial/local/eigen: "
                    "'paper' 1/(4N²M²) or 'notes' 1/(NM) Gram with 1/K² loss.")
  flags.DEFINE_integer("style_rank", d["style_rank"], "eigen: keep the top-r "
                       "eigenpairs of each style Gram (0: full rank).",
                       lower_bound=0)
  flags.DEFINE_enum("eigen_loss", d["eigen_loss"], list(rep.EIGEN_LOSSES),
                    "eigen: 'reconstruction' (Gram loss to the rank-r "
                    "reconstruction), 'spectrum' (the r largest eigenvalues) "
                    "or 'projected' (Grams of the features projected onto the "
                    "style's top-r eigenvectors).")
  define_numbers("local_window", (0,), "local: window s (0: pointwise), one "
                  "for all style layers or one per style layer.", kind=int,
                  lower_bound=0)
  flags.DEFINE_integer("swd_directions", d["swd_directions"], "swd: random "
                       "directions per layer (0: as many as channels).",
                       lower_bound=0)
  flags.DEFINE_integer("swd_samples", d["swd_samples"], "swd: style positions "
                       "kept per layer (a seeded subset).", lower_bound=1)
  flags.DEFINE_integer("swd_redraw_every", d["swd_redraw_every"], "swd: draw "
                       "new directions every N iterations (0: fixed by "
                       "--seed).", lower_bound=0)
  flags.DEFINE_integer("cmd_order", d["cmd_order"], "cmd: highest central "
                       "moment matched.", lower_bound=1)
  flags.DEFINE_integer("ca_clusters", d["ca_clusters"], "content_aware: soft "
                       "regions K (k-means of the content-layer features of "
                       "content and style; 1: the plain Gram).",
                       lower_bound=1)
  flags.DEFINE_integer("ca_window", d["ca_window"], "content_aware: §9's "
                       "window s, w = 1/(1+dx²+dy²) (0: pointwise).",
                       lower_bound=0)
  flags.DEFINE_float("ca_temperature", d["ca_temperature"], "content_aware: "
                     "softness T of the region assignments (squared "
                     "distances of unit features, 0-2).", lower_bound=1e-6)
  flags.DEFINE_string("ca_layer", d["ca_layer"], "content_aware: the layer "
                      "whose features define the regions.")
  default = objective.PATCH_MODES
  flags.DEFINE_integer("style_patches", 0, "Style targets from N seeded random "
                       "crops of each style image (0: the whole image).",
                       lower_bound=0)
  flags.DEFINE_integer("patch_size", 128, "Side of the style patches in "
                       "pixels (after resizing to --size).", lower_bound=1)
  flags.DEFINE_enum("patch_mode", "mean", list(default), "mean: one target "
                    "averaged over the patches; instances: N styles of weight "
                    "1/N.")


def _define_masks():
  from nst_jax import guided  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("content_mask", None, "Colour-coded regions of the "
                      "content (any size, the content's aspect): each colour "
                      "takes the style of the style regions of that colour "
                      "(Gatys et al. 2017 §4); a colour no style has keeps "
                      "only the content loss. Needs --style_stat=gram "
                      "or moments; with --method=strotss, its guidance "
                      "(every colour needs a style region).")
  flags.DEFINE_list("style_masks", None, "One colour-coded mask per style "
                    "image (default: each style image is one region, of "
                    "--style_colors or of the content mask's colours in "
                    "order of first appearance).")
  flags.DEFINE_list("style_colors", None, "The region colour (#rrggbb) of "
                    "each style image, without --style_masks.")
  flags.DEFINE_float("mask_blur", 0.0, "Feather the masks' edges by a "
                     "Gaussian of this many pixels.", lower_bound=0)
  flags.DEFINE_enum("mask_downsample", "resize", list(guided.DOWNSAMPLES),
                    "How masks reach each layer: resize, or inside (eroded "
                    "by one position per layer, Gatys et al. 2017 §4.1).")


def mask_files() -> list:
  """The mask files a run reads (``--content_mask``, ``--style_masks``):
  recorded with their sha256 and protected from being overwritten."""
  f = flags.FLAGS
  if "content_mask" not in f:
    return []
  return [p for p in [f.content_mask, *(f.style_masks or [])] if p]


def load_masks(content_shape, style_shapes):
  """``guided.Guides`` from ``--content_mask`` and the other mask flags
  (``masks.load_guides``), or ``None`` without a content mask; each mask at
  its image's shape. Logs what the masks leave unstyled or ignore, and the
  regions."""
  from absl import logging  # pylint: disable=g-import-not-at-top
  from nst_jax import masks  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  if "content_mask" not in f or not f.content_mask:
    return None
  found = masks.load_guides(f.content_mask, f.style_masks, f.style_colors,
                            content_shape, style_shapes, blur=f.mask_blur)
  for note in found.notes:
    logging.warning("%s", note)
  logging.info("mask regions: %s", ", ".join(map(masks.color_name,
                                                 found.colors)))
  return found.guides


def _define_solver():
  from nst_jax import solvers  # pylint: disable=g-import-not-at-top
  default = solvers.SolverConfig()
  flags.DEFINE_enum("optimizer", default.method, list(solvers.METHODS),
                    "optax_lbfgs (default, ~1 evaluation per iteration), lbfgs "
                    "(jaxopt, zoom line search), adam or rmsprop (first-order, "
                    "--learning_rate).")
  flags.DEFINE_integer("iterations", None, "Iterations (default: 500 on a "
                       "GPU/TPU, 300 on a CPU).", lower_bound=0)
  flags.DEFINE_float("learning_rate", default.learning_rate,
                     "Step size of adam and rmsprop.", lower_bound=0)
  flags.DEFINE_integer("history_size", default.history_size, "L-BFGS memory.",
                       lower_bound=1)


def _define_init():
  from nst_jax import transfer  # pylint: disable=g-import-not-at-top
  flags.DEFINE_enum("init", "content", list(transfer.INITS),
                    "Starting image (Nikulin & Novak §4).")
  define_numbers("seed", (0,), "Seed of the noise init, the style patches "
                 "and the swd directions; a grid takes several, an axis of "
                 "its noise inits (patches and swd use the first).",
                 kind=int)


def _define_color():
  from nst_jax import color  # pylint: disable=g-import-not-at-top
  flags.DEFINE_bool("original_colors", False, "Keep the content's colours: "
                    "transfer on luminance only and put the content's "
                    "chrominance back (Gatys et al. 2016, 'Preserving Color', "
                    "§2.2).")
  flags.DEFINE_enum("color_space", "yiq", list(color.COLOR_SPACES),
                    "Luma/chroma space of --original_colors.")
  flags.DEFINE_enum("color_transfer", "none", list(color.COLOR_TRANSFERS),
                    "Recolour the style images to the content's colours "
                    "before the transfer: histogram (mean and covariance, "
                    "'Preserving Color' §2.1) or cdf (exact per-channel "
                    "histograms).")


def _define_compute():
  from nst_jax import vgg  # pylint: disable=g-import-not-at-top
  flags.DEFINE_enum("precision", "float32", list(vgg.PRECISIONS),
                    "Convolution precision: float32, tf32 (TF32 tensor cores "
                    "on GPUs) or bf16 (bfloat16 operands, float32 "
                    "accumulation).")
  flags.DEFINE_enum("conv", "auto", list(vgg.CONV_ALGORITHMS),
                    "Convolution algorithm: winograd (F(4x4,3x3) for the 3x3 "
                    "layers with >= 256 channels), direct, or auto (winograd "
                    "on the CPU, where it is faster; direct on GPUs).")
  flags.DEFINE_string("tile_size", "auto", "Exact tiled objective: tile "
                      "interiors of N px (long edge), evaluated one at a "
                      "time (memory of one tile, the whole image's loss and "
                      "gradient); 0: untiled; auto: untiled when the memory "
                      "estimate fits the device, else tiled (printed).")
  flags.DEFINE_string("memory_budget", None, "Memory a run may use, e.g. "
                      "8GB (binary units: GB = GiB); --tile_size=auto tiles "
                      "when the estimate with the process around it exceeds "
                      "it. Default: the device's memory less 10 %.")
  flags.DEFINE_string("image_devices", "1", "Shard the image's rows over N "
                      "local devices (all: every one); XLA partitions the "
                      "network.")
  flags.DEFINE_bool("remat", False, "Gradient rematerialisation "
                    "(jax.checkpoint) per VGG block: activations recomputed "
                    "in the backward pass instead of kept (one more forward "
                    "pass; on the CPU it measured no memory saving: see "
                    "docs/benchmarks.md). Not --resume's run checkpoints.")
  define_deprecated_alias("checkpoint", "remat")
  flags.DEFINE_bool("deterministic", False, "Deterministic GPU reductions "
                    "(XLA's --xla_gpu_deterministic_ops): the same image on "
                    "the same device, a little slower; no effect on the CPU.")


def _define_distributed():
  flags.DEFINE_string("coordinator_address", None, "host:port of process 0, "
                      "to run over several processes or hosts "
                      "(jax.distributed; CPUs use gloo collectives).")
  flags.DEFINE_integer("num_processes", None, "Number of processes (hosts).",
                       lower_bound=1)
  flags.DEFINE_integer("process_id", None, "This process's index (0 writes "
                       "the outputs).", lower_bound=0)


def join_processes() -> bool:
  """``jax.distributed.initialize`` on ``--coordinator_address``,
  ``--num_processes`` and ``--process_id`` (call it before anything starts
  JAX's backend); False without a coordinator. Refuses in one line flags
  that cannot describe a run, and a coordinator that cannot be joined."""
  address = flags.FLAGS.coordinator_address
  if not address:
    return False
  processes, index = flags.FLAGS.num_processes, flags.FLAGS.process_id
  if processes is None or index is None:
    raise NSTError("--coordinator_address needs --num_processes and "
                   "--process_id")
  if not 0 <= index < processes:
    raise NSTError(f"--process_id={index} must be in 0..{processes - 1} "
                   f"(--num_processes={processes})")
  try:
    jax.distributed.initialize(address, processes, index)
  except (RuntimeError, ValueError) as e:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise NSTError(f"cannot join {address} as process {index} of "
                   f"{processes}: {first}") from None
  return True


def _define_output():
  flags.DEFINE_bool("quiet", False, "No progress bar or messages; errors "
                    "only.")


def _define_schedule():
  from nst_jax import config  # pylint: disable=g-import-not-at-top
  default = config.Schedule()
  define_numbers("scales", default.scales, "Coarse-to-fine long edges, e.g. "
                 "256,512,1024: each level starts from the upsampled result "
                 "of the previous one; the last is the output size "
                 "(overrides --size).", kind=int, lower_bound=1)
  define_numbers("scale_iterations", default.scale_iterations, "Iterations "
                 "of each --scales level (default: --iterations at every "
                 "level).", kind=int, lower_bound=0)
  flags.DEFINE_integer(
      "pyramid_base", default.pyramid_base, "Without --scales, a --size of "
      "at least twice this long edge is painted coarse to fine, so that it "
      "keeps the large-scale look of a small result: levels halving --size "
      "down to this (512: 256,512; 1024: 256,512,1024), the first "
      "--iterations iterations, each finer one "
      f"{config.PYRAMID_FINE_FRACTION:.0%} of them (nst_jax.config.Schedule)."
      " 0: one level at --size.", lower_bound=0)
  flags.DEFINE_float(
      "coarse_weight", default.coarse_weight, "At every coarse-to-fine "
      "level after the first, the first level's loss at the image seen at "
      "the first level's size is added with this weight, so that a large "
      "result keeps the small one's look and only adds detail "
      "(nst_jax.objective.coarse_view_loss). 0: off.", lower_bound=0.0)
  flags.DEFINE_float("style_scale", default.style_scale, "Long edge of the "
                     "style images relative to each level's: below 1 the "
                     "style's strokes and motifs come out larger, above 1 "
                     "smaller.", lower_bound=1e-3)


def _define_method():
  from nst_jax import nnst  # pylint: disable=g-import-not-at-top
  flags.DEFINE_enum("method", "gatys", ["gatys", "strotss", "nnst"],
                    "gatys (Gatys et al. 2016: every other flag), strotss "
                    "(Kolkin et al. 2019: relaxed optimal transport and "
                    "self-similarity) or nnst (Kolkin et al. 2022: neural "
                    "neighbours), each with the official settings "
                    "(nst_jax.methods); with strotss or nnst only --size, "
                    "--iterations (per level), --seed, --content_weight "
                    "(strotss, times the official 16) and --alpha (nnst) "
                    "change them.")
  flags.DEFINE_float("alpha", nnst.DEFAULTS.alpha, "NNST's content "
                     "preservation in [0, 1] (--method=nnst; 1 keeps the "
                     "most content).", lower_bound=0.0, upper_bound=1.0)


def _define_evaluation():
  from nst_jax import metrics  # pylint: disable=g-import-not-at-top
  flags.DEFINE_integer("score_size", metrics.SCORE_SIZE, "Long edge at which "
                       "results are scored (nst-evaluate, and --evaluate of "
                       "nst-stylize and nst-grid; nst_jax.metrics): the "
                       "content, the style and every result resized to it, so "
                       "that results of any --size compare and the commands "
                       "agree; recorded with the scores.", lower_bound=1,
                       upper_bound=16384)


FLAG_GROUPS = {"images": _define_images, "model": _define_network,
               "loss": _define_loss, "representation": _define_style,
               "masks": _define_masks,
               "solver": _define_solver, "init": _define_init,
               "color": _define_color, "compute": _define_compute,
               "output": _define_output, "evaluation": _define_evaluation,
               "schedule": _define_schedule, "method": _define_method,
               "distributed": _define_distributed}


def define_flags(*items: str, defaults: Dict[str, Any] | None = None
                 ) -> list[str]:
  """Defines shared flags and returns their names. Each item is a group
  (a key of ``FLAG_GROUPS``: every flag of it) or the name of one flag of a
  group (only that flag). ``defaults`` changes a default for this command
  (e.g. a figure script's smaller ``size``); name, type and help stay the
  ones here."""
  wanted: Dict[str, set | None] = {}
  # A group must not shadow a flag of another group (``init`` is both the
  # group and its flag).
  shadowed = {g for g in FLAG_GROUPS if _GROUP_OF.get(g, g) != g}
  if shadowed:
    raise ValueError(f"group names {shadowed} are also flag names")
  for item in items:
    if item in FLAG_GROUPS:
      wanted[item] = None
      continue
    item = DEPRECATED_FLAGS.get(item, item)
    group = _group_of(item)
    if wanted.get(group, set()) is not None:
      wanted.setdefault(group, set()).add(item)
  names = []
  for group, only in wanted.items():
    before = set(flags.FLAGS)
    FLAG_GROUPS[group]()
    for name in [n for n in flags.FLAGS if n not in before]:
      target = DEPRECATED_FLAGS.get(name, name)  # an alias goes with its flag
      if only is None or target in only:
        _DEFINED_IN[name] = group
        if name not in DEPRECATED_FLAGS:   # recorded under the new name only
          names.append(name)
      else:
        delattr(flags.FLAGS, name)
  for name, value in (defaults or {}).items():
    flags.FLAGS.set_default(name, value)
  return names


def _group_of(name: str) -> str:
  """The group that defines flag ``name`` (found by defining each group in
  a scratch set of flags)."""
  if not _GROUP_OF:
    for group, define in FLAG_GROUPS.items():
      before = set(flags.FLAGS)
      define()
      for n in [n for n in flags.FLAGS if n not in before]:
        _GROUP_OF[n] = group
        delattr(flags.FLAGS, n)
  if name not in _GROUP_OF:
    raise ValueError(f"no shared flag {name!r}")
  return _GROUP_OF[name]


_GROUP_OF: Dict[str, str] = {}
# The group of each shared flag this process defined (``define_flags``).
_DEFINED_IN: Dict[str, str] = {}


def flag_values(names: Sequence[str]) -> Dict[str, Any]:
  """``{name: value}`` for a run record; a one-element numbers flag is
  recorded as its number (as records always had it)."""
  out = {}
  for name in names:
    value = flags.FLAGS[name].value
    if isinstance(value, tuple) and len(value) == 1 and isinstance(
        value[0], (int, float)) and name != "local_window":
      value = value[0]
    elif isinstance(value, tuple) and name in ("style_layers",
                                               "style_layer_weights"):
      value = list(value[0]) if len(value) == 1 else _serialize_sets(value)
    elif isinstance(value, tuple):
      value = list(value)
    out[name] = value
  return out


def one(name: str):
  """The single value of a numbers or sets flag (a grid takes several)."""
  value = flags.FLAGS[name].value
  if value is None:
    return None
  if len(value) != 1:
    raise NSTError(f"--{name} takes one value here, got {len(value)} (several "
                   "values are the axes of a grid: nst-grid)")
  return value[0]


def representation(style_layers: Sequence[str]):
  """The style representation the ``style`` flags name (the name table,
  ``representations.from_name``)."""
  from nst_jax import representations as rep  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  params = {k: f[k].value for k in rep.defaults()
            if k not in ("local_window", "seed") and k in f}
  seed = f["seed"].value[0] if "seed" in f and f["seed"].value else 0
  value = rep.from_name(f.style_stat, tuple(style_layers),
                        local_window=f.local_window, seed=seed, **params)
  if "content_mask" in f and f.content_mask:   # masks: the guided version
    from nst_jax import guided  # pylint: disable=g-import-not-at-top
    value = guided.guided_version(value, f.mask_downsample)
  elif "content_mask" in f and (f.style_masks or f.style_colors):
    raise NSTError("--style_masks and --style_colors need --content_mask")
  return value


def transfer_config(*, grid: bool = False):
  """The ``TransferConfig`` of one run from the shared flags the command
  defined; a flag it did not define keeps the library's default.
  ``--content_layers`` and (but in a grid) ``--style_layers`` left out are
  set to the network's default layers, so that a run record names the layers
  the run used.

  With ``grid`` the flags that are axes of a grid (weights, layer sets,
  seeds) may hold several values: the config then takes the union of the
  layer sets, the first seed and default loss weights, which the grid's
  axes replace cell by cell (``grid_axes``)."""
  # pylint: disable=g-import-not-at-top
  from nst_jax import color, networks, objective, solvers, transfer
  f = flags.FLAGS

  def val(name, default=None):
    return f[name].value if name in f and f[name].value is not None else (
        default)

  def single(name, default=None):
    return one(name) if name in f and f[name].value is not None else default

  network = val("network", "vgg16")
  content_layers = tuple(val("content_layers",
                             networks.DEFAULT_CONTENT_LAYERS[network]))
  sets = val("style_layers")
  if grid and sets:
    order = networks.layer_names(network)
    union = {l for s in sets for l in s}
    style_layers = tuple(sorted(union, key=lambda l: (
        order.index(l) if l in order else len(order), l)))
  else:
    style_layers = single("style_layers")
  style_layers = tuple(style_layers or networks.DEFAULT_STYLE_LAYERS[network])
  # Layers left to the network's defaults are recorded as the ones used.
  if "content_layers" in f and f["content_layers"].value is None:
    f["content_layers"].value = list(content_layers)
  if not grid and "style_layers" in f and f["style_layers"].value is None:
    f["style_layers"].value = (style_layers,)
  spec = objective.Spec(
      content_layers, style_layers, pooling=val("pooling", "max"),
      style=(representation(style_layers) if "style_stat" in f
             else objective.Spec().style),
      precision=val("precision", "float32"),
      remat=bool(val("remat", False)),
      size_invariant=bool(val("size_invariant",
                              objective.Spec().size_invariant)))
  default = objective.LossWeights()
  blend = val("style_blend_weights")
  normalize = bool(val("normalize_style", default.normalize_style))
  if grid:
    weights = objective.LossWeights(style_blend=blend,
                                    normalize_style=normalize)
  else:
    layer_weights = single("style_layer_weights")
    weights = objective.LossWeights(
        content=single("content_weight", default.content),
        style=single("style_weight", spec.suggested_style_weight()),
        tv=single("tv_weight", default.tv),
        style_layers=None if layer_weights is None else tuple(layer_weights),
        style_blend=blend, normalize_style=normalize)
  solver = solvers.SolverConfig()
  solver = solvers.SolverConfig(
      method=val("optimizer", solver.method),
      maxiter=val("iterations", solver.maxiter),
      learning_rate=val("learning_rate", solver.learning_rate),
      history_size=val("history_size", solver.history_size))
  seeds = val("seed", (0,))
  init = transfer.Init(val("init", "content"),
                       seeds[0] if grid else single("seed", 0))
  colors = color.ColorControl(val("color_transfer", "none"),
                              bool(val("original_colors", False)),
                              val("color_space", "yiq"))
  patches = transfer.StylePatches(val("style_patches", 0),
                                  val("patch_size", 128),
                                  val("patch_mode", "mean"))
  default_schedule = transfer.Schedule()
  scales, scale_iterations = val("scales"), val("scale_iterations")
  schedule = transfer.Schedule(
      scales=None if scales is None else tuple(scales),
      scale_iterations=(None if scale_iterations is None
                        else tuple(scale_iterations)),
      pyramid_base=val("pyramid_base", default_schedule.pyramid_base),
      style_scale=val("style_scale", default_schedule.style_scale),
      coarse_weight=val("coarse_weight", default_schedule.coarse_weight))
  config = transfer.TransferConfig(
      network=network, spec=spec, weights=weights, solver=solver, init=init,
      color=colors, patches=patches, conv=val("conv", "auto"),
      tile_size=val("tile_size", "auto"),
      memory_budget=val("memory_budget"),
      image_devices=val("image_devices", 1), schedule=schedule)
  if grid and (str(config.tile_size) not in ("auto", "0")
               or str(config.image_devices) != "1"):
    raise NSTError("--tile_size and --image_devices apply to one image "
                   "(nst-stylize); a grid batches its cells instead")
  transfer.check_config(config)
  return config


def grid_axes(config, n_styles: int):
  """The ``grid.GridAxes`` the axis flags give: every style image, each
  layer set (``;``-separated) with its weights, and every α, β, γ and seed
  (β defaults to the representation's suggestion)."""
  from nst_jax import grid, networks  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  sets = f.style_layers or (networks.DEFAULT_STYLE_LAYERS[config.network],)
  weights = f.style_layer_weights or (None,)
  style = f.style_weight or (config.objective_spec().suggested_style_weight(),)
  return grid.GridAxes(
      style=tuple(range(n_styles)), style_layer_sets=tuple(sets),
      style_layer_weights=tuple(weights), content_weight=f.content_weight,
      style_weight=tuple(style), tv_weight=f.tv_weight, seed=f.seed)
