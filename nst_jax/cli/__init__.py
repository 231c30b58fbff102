"""What the commands share: flags, errors, progress and run records.

One definition of every common flag (``define_flags`` by group or by name;
``transfer_config`` and ``grid_axes`` build the library's values from
them), one-line errors (``run_main``: every ``NSTError`` and an interrupted
run end as ``error: <message>`` on stderr with a non-zero exit status, its
parameters shown as flags by ``flag_message``, never a traceback), the
``tqdm`` progress bar, clean Ctrl-C, device defaults and reading recorded
runs. The commands themselves are in ``nst_jax.commands``.

The package is split by job: ``_flags`` (the flag definitions, ``--help``,
the configuration built from flags, recorded values applied again),
``_progress`` (the progress bar, Ctrl-C), ``_records`` (what a run records
and reading it back) and ``_runtime`` (a command's run: errors, log lines,
the compilation cache, the device). Their names are re-exported here.
"""

# The modules the tests patch through cli (cli.os, cli.jax, cli.flags).
import os  # noqa: F401

import jax  # noqa: F401
from absl import flags  # noqa: F401

from nst_jax.cli import _progress
from nst_jax.cli._progress import (  # noqa: F401
    ProgressBar,
    StopOnInterrupt,
    _AutoBar,
    _Frame,
    _TerminalBar,
    _in_notebook,
    _terms_text,
)
from nst_jax.cli import _records
from nst_jax.cli._records import (  # noqa: F401
    load_run_inputs,
    load_run_params,
    params_json,
)
from nst_jax.cli import _flags
from nst_jax.cli._flags import (  # noqa: F401
    DEPRECATED_FLAGS,
    FLAG_GROUPS,
    HELP_ARGS,
    PARAM_FLAGS,
    _ALIAS_HELP,
    _DEFINED_IN,
    _GROUP_OF,
    _NumbersParser,
    _OWN_TOPICS,
    _SECTIONS,
    _SetsParser,
    _asks_for_help,
    _define_color,
    _define_compute,
    _define_distributed,
    _define_evaluation,
    _define_images,
    _define_init,
    _define_loss,
    _define_masks,
    _define_network,
    _define_output,
    _define_schedule,
    _define_solver,
    _define_style,
    _flag_entry,
    _group_of,
    _serialize_sets,
    apply_params, parse_value,
    define_deprecated_alias,
    define_flags,
    define_numbers,
    define_sets,
    deprecation_notes,
    flag_message,
    flag_values,
    grid_axes,
    help_text,
    join_processes,
    load_masks,
    mask_files,
    one,
    representation,
    transfer_config,
)
from nst_jax.cli import _runtime
from nst_jax.cli._runtime import (  # noqa: F401
    CACHE_DIR_ENV,
    DETERMINISTIC_XLA_FLAG,
    DEVICE_DEFAULTS,
    PlainLogLines,
    _backends_initialized,
    apply_deterministic,
    command_start,
    compilation_cache_dir,
    device_defaults,
    device_description,
    enable_compilation_cache,
    parse_flags,
    plain_log_lines,
    resolve_device_defaults,
    run,
    run_main,
)
