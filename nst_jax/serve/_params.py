"""A web job's parameters: ``nst-stylize``'s own flags, by name.

``params`` is a JSON object of ``nst-stylize`` flag names to values
(``{"size": 256, "style_weight": 1e5, "original_colors": true}``), parsed
by the flags' own parsers (``cli.apply_params``' rule: a list, tuple or bool
as is, anything else as command-line text), so a value ``nst-stylize``
refuses is refused here with the same bounds. Flags that name files or
write beside the output (``content``, ``output``, ``weights``, masks,
``--plot`` …) are the server's, not a job's. ``resolve`` returns the full
flag values of the job — every recorded flag of ``nst-stylize``, defaults
filled in (``cli.resolve_device_defaults``) — which ``job_setup`` applies
again to build the run, as ``nst-stylize --from_json`` would.

absl keeps flag values in one global (``flags.FLAGS``): every use here
holds ``LOCK`` and restores the values it found (``flagsaver``), so the
server's request threads and its worker never see each other's values.
"""

import functools
import re
import threading
from typing import Any, Dict, List, NamedTuple, Sequence

from absl import flags
from absl.testing import flagsaver

from nst_jax import cli
from nst_jax import transfer
from nst_jax.errors import NSTError

LOCK = threading.RLock()
FLAGS = flags.FLAGS
# Flags a job may not set: files of the server's disk, side outputs, the
# device's memory, and what must be chosen before JAX starts.
SERVER_ONLY = ("content", "style", "output", "output_dir", "from_json",
               "weights", "content_mask", "style_masks", "style_colors",
               "mask_blur", "mask_downsample", "plot", "sheet", "save_every",
               "evaluate", "score_size", "quiet", "deterministic",
               "image_devices", "memory_budget")
# Flags of nst-stylize that no job may set (none at present: the methods
# beyond Gatys are served, as nst-stylize --method runs them).
NOT_SERVED = ()


@functools.cache
def recorded() -> Sequence[str]:
  """Every flag an nst-stylize run records (its JSON record's "params").
  The first call defines nst-stylize's flags in this process (importing
  the command), so that importing this package defines none; call it
  outside ``flagsaver``, which deletes the flags defined inside it."""
  # pylint: disable=g-import-not-at-top,protected-access
  from nst_jax.commands import stylize
  return tuple(stylize._RECORDED)


def allowed() -> Sequence[str]:
  """The flags a job may set: ``recorded()`` less ``SERVER_ONLY`` and
  ``NOT_SERVED``."""
  return tuple(n for n in recorded()
               if n not in SERVER_ONLY and n not in NOT_SERVED)


class ParamError(NSTError):
  """A bad job parameter; ``name`` is the parameter (a flag name)."""

  def __init__(self, name: str, message: str):
    super().__init__(message)
    self.name = name


class Limits(NamedTuple):
  """What one job may ask of the server: the output's long edge and the
  iterations (of every level together)."""
  max_size: int = 1024
  max_iterations: int = 2000


class Setup(NamedTuple):
  """A job's run, built from its flag values (``job_setup``): the
  configuration, the levels ``(size, iterations)`` of
  ``config.schedule.levels`` (of the method's stages, NNST's final pass
  last), the content and style files, the network, the loss log's period,
  and the method beyond Gatys (``methods.Strotss`` or ``Nnst``; ``None``
  for Gatys, which ``config`` is)."""
  config: transfer.TransferConfig
  levels: List[tuple]
  content: str
  styles: List[str]
  network: str
  log_every: int
  values: Dict[str, Any]
  method: Any = None


def _reset() -> None:
  """Every recorded flag back to its default, as not given."""
  for name in recorded():
    FLAGS[name].unparse()


def _parse(name: str, value: Any) -> None:
  try:
    cli.parse_value(FLAGS[name], value)
  except (flags.Error, ValueError) as e:
    raise ParamError(name, f"params: {name}={value!r} is not valid: "
                     f"{' '.join(str(e).split())}") from None


def _check_limits(levels, limits: Limits | None, size_name: str,
                  iterations_name: str) -> None:
  if limits is None:
    return
  if max(s for s, _ in levels) > limits.max_size:
    raise ParamError(size_name, f"params: {size_name} is over this server's "
                     f"--max_size={limits.max_size} px")
  total = sum(n for _, n in levels)
  if total > limits.max_iterations:
    raise ParamError(iterations_name, f"params: {iterations_name} asks for "
                     f"{total} iterations, over this server's "
                     f"--max_iterations={limits.max_iterations}")


def _configure_method(limits: Limits | None):
  """The flags (applied) of a STROTSS or NNST job, as ``nst-stylize
  --method`` reads them (``commands._method``): a flag the method does not
  use is refused, its iterations are the method's per level unless given;
  returns ``(config, levels, method)``."""
  # pylint: disable=g-import-not-at-top
  from nst_jax import methods
  from nst_jax.commands import _method
  name = FLAGS.method
  given = [n for n in _method.refused(recorded(), name)
           if n not in SERVER_ONLY]
  if given:
    raise ParamError(given[0], f"params: method={name} does not use "
                     f"{given[0]}")
  if len(FLAGS.style) != 1:
    raise ParamError("style", f"params: method={name} takes one style "
                     f"image, got {len(FLAGS.style)}")
  cli.resolve_device_defaults()
  try:
    m = _method.method_of_flags(name)
  except NSTError as e:
    raise ParamError(_named(str(e), {}), "params: "
                     + cli.flag_message(e).replace("--", "")) from None
  if not FLAGS["iterations"].present:   # recorded as each level's count
    FLAGS.iterations = m.settings.iterations
  levels = list(m.stages())
  _check_limits(levels, limits, "size", "iterations")
  # (not cli.transfer_config(): it would record Gatys' resolved layers,
  # which the command's --method record leaves at their defaults)
  return transfer.TransferConfig(), levels, m


def _configure(values: Dict[str, Any], limits: Limits | None):
  """Applies ``values`` to the (reset) flags and builds the configuration,
  as ``nst-stylize``'s ``main`` does; returns ``(config, levels, method)``
  (``method`` ``None`` for Gatys)."""
  for name, value in values.items():
    _parse(name, value)
  if FLAGS.method != "gatys":
    return _configure_method(limits)
  from nst_jax.commands import _method  # pylint: disable=g-import-not-at-top
  given = _method.gatys_refused()
  if given:
    raise ParamError(given[0], f"params: {given[0]} belongs to method="
                     f"{' or '.join(_method.ONLY[given[0]])}, not gatys")
  cli.resolve_device_defaults(size=not FLAGS.scales)
  if FLAGS.scale_iterations is not None and FLAGS.scales is None:
    raise ParamError("scale_iterations", "params: scale_iterations needs "
                     "scales")
  try:
    config = cli.transfer_config()
    levels = config.schedule.levels(FLAGS.size, FLAGS.iterations)
  except NSTError as e:
    raise ParamError(_named(str(e), values), "params: "
                     + cli.flag_message(e).replace("--", "")) from None
  _check_limits(levels + [(FLAGS.size or 0, 0)], limits,
                "scales" if FLAGS.scales else "size",
                "scale_iterations" if FLAGS.scale_iterations else "iterations")
  if FLAGS.style_weight is None:   # recorded as the β the run used
    FLAGS.style_weight = (config.weights.style,)
  blend = config.weights.style_blend
  if blend is not None and len(blend) != len(FLAGS.style):
    raise ParamError("style_blend_weights", f"params: {len(blend)} style "
                     f"blend weights for {len(FLAGS.style)} style images")
  return config, levels, None


def _named(message: str, given: Dict[str, Any]) -> str:
  """The parameter a library message is about: the first flag it names
  (``--name`` or ```name```), else the first given parameter whose value
  it quotes, else ``params``."""
  for name in re.findall(r"--([a-z_0-9]+)", cli.flag_message(message)):
    if name in recorded():
      return name
  for name, value in given.items():
    values = value if isinstance(value, (list, tuple)) else str(value).split(
        ",")
    if any(str(v) and f"'{v}'" in message for v in values):
      return name
  return "params"


def check_sizes(setup: "Setup", content_shape, style_shapes) -> None:
  """Refuses (``ParamError``) a job whose images, at each level's size,
  are too small for its layers or too large for the device's memory, as
  its run would (``transfer.check_image_size``, ``check_memory``), before
  it queues. Shapes are the uploads' ``(H, W)``."""
  # pylint: disable=g-import-not-at-top
  from nst_jax import io
  from nst_jax import methods
  if setup.method is not None:
    try:
      methods.check_shapes(setup.method, tuple(content_shape),
                           tuple(style_shapes[0]))
    except NSTError as e:
      raise ParamError("size", "params: " + cli.flag_message(e).replace(
          "--", "")) from None
    return
  config = setup.config
  name = "scales" if config.schedule.scales is not None else "size"
  for size, _ in setup.levels:
    shape = io.long_edge_shape(tuple(content_shape), size)
    try:
      transfer.check_image_size(config, shape)
      transfer.check_memory(config, shape)
      style = transfer.style_size(size, config.schedule.style_scale)
      for style_shape in style_shapes:
        transfer.check_image_size(
            config, io.long_edge_shape(tuple(style_shape), style))
    except NSTError as e:
      raise ParamError(name, f"params: {name}: "
                       f"{cli.flag_message(e)}") from None


def resolve(params: Any, *, content: str, styles: Sequence[str],
            output: str, limits: Limits = Limits()) -> Dict[str, Any]:
  """The full flag values of a job whose ``params`` (a dict of flag names
  to values) paint ``content`` in the style of ``styles`` into
  ``output``. Raises ``ParamError`` naming the parameter for a name that is
  not an ``nst-stylize`` flag or is the server's, a value its flag refuses,
  a configuration the library refuses, or a size or iteration count over
  ``limits``."""
  if not isinstance(params, dict):
    raise ParamError("params", "params must be a JSON object of nst-stylize "
                     "flag names to values")
  for name in params:
    if not isinstance(name, str) or name not in recorded():
      raise ParamError(str(name), f"params: unknown parameter {name!r} (not "
                       "an nst-stylize flag)")
    if name in SERVER_ONLY:
      raise ParamError(name, f"params: {name} is set by the server, not by "
                       "a job")
    if name in NOT_SERVED:
      raise ParamError(name, f"params: {name} is not served")
  recorded()   # defines the flags outside flagsaver, which would drop them
  with LOCK, flagsaver.flagsaver():
    _reset()
    _configure({**params, "content": content, "style": list(styles),
                "output": output}, limits)
    return cli.flag_values(recorded())


def job_setup(values: Dict[str, Any]) -> Setup:
  """The run of a job from its full flag values (``resolve``'s)."""
  recorded()
  with LOCK, flagsaver.flagsaver():
    _reset()
    config, levels, method = _configure(values, None)
    return Setup(config, levels, FLAGS.content, list(FLAGS.style),
                 FLAGS.network, FLAGS.log_every,
                 cli.flag_values(recorded()), method)


def choices() -> Dict[str, Any]:
  """What the page offers: each allowed flag's default, help and (for an
  enum) its choices."""
  out = {}
  with LOCK:
    for name in allowed():
      flag = FLAGS[name]
      entry = {"default": flag.default, "help": flag.help}
      if isinstance(flag.parser, flags.EnumParser):
        entry["choices"] = list(flag.parser.enum_values)
      out[name] = entry
  return out
